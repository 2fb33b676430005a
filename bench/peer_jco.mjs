// The same calls from Node.js: components transpiled by jco (`jco transpile --instantiation
// async`; bench.sh runs it into build/bench/jco), and core `answer` on Node's built-in
// WebAssembly. A fresh instance per call (instantiate again, core modules compiled once) and
// a warm one. Prints `name fresh_ns warm_ns` lines, like bench/peer_wasmtime_py.py.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cli, clocks, filesystem, io } from '@bytecodealliance/preview2-shim';

const root = new URL('..', import.meta.url).pathname;
const out = join(root, 'build/bench/jco');

async function measure(f, n) {
  for (let i = 0; i < Math.max(3, n / 100); i++) await f();
  let best = Infinity;
  for (let r = 0; r < 3; r++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await f();
    best = Math.min(best, Number(process.hrtime.bigint() - start) / n);
  }
  return best;
}

function check(ok, what) {
  if (!ok) throw new Error(`wrong result: ${what}`);
}

// Core answer on WebAssembly.
const answerModule = await WebAssembly.compile(await readFile(join(root, 'examples/app/wasm/answer_raw.wasm')));
const answerFresh = await measure(async () => {
  const inst = await WebAssembly.instantiate(answerModule, {});
  check(inst.exports.answer() === 42, 'answer');
}, 2000);
const answerInst = await WebAssembly.instantiate(answerModule, {});
const answerWarm = await measure(() => check(answerInst.exports.answer() === 42, 'answer'), 100000);
console.log(`answer ${answerFresh.toFixed(0)} ${answerWarm.toFixed(0)}`);

const trap = new Proxy({}, { get: (_, name) => () => { throw new Error(`unprovided import ${String(name)}`); } });
const wasi = {
  'wasi:cli/environment': cli.environment,
  'wasi:cli/exit': cli.exit,
  'wasi:cli/stderr': cli.stderr,
  'wasi:cli/stdin': cli.stdin,
  'wasi:cli/stdout': cli.stdout,
  'wasi:clocks/wall-clock': clocks.wallClock,
  'wasi:filesystem/preopens': filesystem.preopens,
  'wasi:filesystem/types': filesystem.types,
  'wasi:io/error': io.error,
  'wasi:io/streams': io.streams,
};

async function component(name, imports) {
  const { instantiate } = await import(join(out, name, `${name}.js`));
  const modules = new Map();
  const getCoreModule = async (path) => {
    if (!modules.has(path)) modules.set(path, await WebAssembly.compile(await readFile(join(out, name, path))));
    return modules.get(path);
  };
  const fresh = () => instantiate(getCoreModule, imports);
  return { fresh, warm: await fresh() };
}

const minimal = await component('minimal', { 'test:minimal/host': trap });
console.log(`compute ${(await measure(async () => check((await minimal.fresh()).compute(6, 7) === 42, 'compute'), 2000)).toFixed(0)} ${(await measure(() => check(minimal.warm.compute(6, 7) === 42, 'compute'), 100000)).toFixed(0)}`);

// host-call: compute-using-host calls the import test:minimal/host@0.1.0#add, here a JS
// function, once per call. The transpiled instantiate reads the import object under the
// interface's name without its version ('test:minimal/host'), as for the trap above.
let adds = 0;
const host = await component('minimal', { 'test:minimal/host': { add: (a, b) => { adds++; return a + b; } } });
console.log(`host-call ${(await measure(async () => check((await host.fresh()).computeUsingHost(6, 7) === 13, 'host-call'), 2000)).toFixed(0)} ${(await measure(() => check(host.warm.computeUsingHost(6, 7) === 13, 'host-call'), 100000)).toFixed(0)}`);
check(adds > 0, 'host-call adds');

const strings = await component('strings', { 'test:strings/host': trap });
const kib = 'x'.repeat(1024);
console.log(`echo-1k ${(await measure(async () => check((await strings.fresh()).echo(kib) === kib, 'echo'), 2000)).toFixed(0)} ${(await measure(() => check(strings.warm.echo(kib) === kib, 'echo'), 50000)).toFixed(0)}`);

const mapper = await component('mapper', { ...wasi, 'test:mapper/types': {} });
for (const [n, iters] of [[10, 2000], [100, 500], [1000, 50]]) {
  const users = Array.from({ length: n }, (_, i) => ({ id: i + 1, name: `user${i + 1}`, tags: ['admin', 'dev'], active: (i + 1) % 2 === 0 }));
  const fresh = await measure(async () => check((await mapper.fresh()).transformUsers(users).length === n, 'transform'), iters);
  const warm = await measure(() => check(mapper.warm.transformUsers(users).length === n, 'transform'), iters);
  console.log(`transform-users-${n} ${fresh.toFixed(0)} ${warm.toFixed(0)}`);
}
