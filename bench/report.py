"""Writes BENCHMARKS.md (and benchmarks.png) from one `make bench` run's outputs.

Usage: report.py <results dir>. The dir holds `funcs.txt`, `funcs-host.txt`, `rust.txt`,
`wasmtime-py.txt`, `jco.txt` (`name fresh_ns warm_ns` lines), `limits.txt`, `pools.txt`,
`pools-on-demand.txt`, `cache.txt`, `paths.txt`, `instructions.txt`, `http.txt` (`name value
unit` lines), `http-wrk.txt` (wrk's summaries) and `machine.txt`.
"""
import os
import sys

results = sys.argv[1]
root = os.path.join(os.path.dirname(__file__), "..")


def rows(name):
    table = {}
    path = os.path.join(results, name)
    if not os.path.exists(path):
        return table
    for line in open(path):
        parts = line.split()
        if len(parts) >= 3:
            table[parts[0]] = [None if p == "-" else float(p) for p in parts[1:3]]
    return table


def lines(name):
    path = os.path.join(results, name)
    return open(path).read().strip().splitlines() if os.path.exists(path) else []


funcs, rust, py, jco = rows("funcs.txt"), rows("rust.txt"), rows("wasmtime-py.txt"), rows("jco.txt")
funcs_host = rows("funcs-host.txt")
cases = ["answer", "compute", "echo-1k", "transform-users-10", "transform-users-100", "transform-users-1000"]


def us(ns):
    return "-" if ns is None else (f"{ns / 1000:.2f}" if ns < 100_000 else f"{ns / 1000:,.0f}")


def ratio(a, b):
    return "-" if a is None or b is None else f"{a / b:.2f}x"


def get(table, case, i):
    return table.get(case, [None, None])[i]


def values(name, prefix):
    """`prefix<row> <value> ...` lines of a results file, by row."""
    table = {}
    for line in lines(name):
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(prefix):
            table[parts[0].removeprefix(prefix)] = float(parts[1])
    return table


def paths_table(table, header, unit):
    """Rows of the paths of a call against the first (`inline`), with issue 15's targets."""
    base = table.get("inline")
    out.append(f"| {header} | {unit} | vs inline | target | met |")
    out.append("|---|---|---|---|---|")
    for name, value in table.items():
        limit = 1.1 if name == "inline-wasi" else 1.25
        r = value / base if base else None
        met = "-" if r is None or name == "inline" else ("yes" if r <= limit else "no")
        out.append(f"| {name} | {value:,.0f} | {'-' if r is None else f'{r:.2f}x'} | "
                   f"{'-' if name == 'inline' else f'{limit}x'} | {met} |")
    out.append("")


out = []
out.append("# Benchmarks\n")
out.append("Written by `make bench` (`scripts/bench.sh`) from one run; do not edit by hand.\n")
out.append("Machine: " + " ".join(lines("machine.txt")) + "\n")
out.append("## Calls: funcs from Lua 5.4 vs the same work elsewhere (µs per call)\n")
out.append("*Fresh*: a new instance per call (funcs: `pool: inline`; the pooling allocator where it "
           "can be reserved). *Warm*: one instance called again (funcs: `pool.reuse`). Rust: "
           "`benches/raw.rs`, wasmtime directly with dynamically typed `Val`s built once outside the "
           "loop (no conversion from a scripting language). wasmtime-py: the `wasmtime` package from "
           "PyPI. jco: the component transpiled by `jco transpile`, on Node.js (`answer`: Node's "
           "built-in WebAssembly). Best of 3 rounds each.\n")
out.append("| case | funcs fresh | Rust fresh | ratio | funcs warm | Rust warm | ratio | jco warm | jco fresh | wasmtime-py fresh | wasmtime-py warm |")
out.append("|---|---|---|---|---|---|---|---|---|---|---|")
for c in cases:
    ff, fw = get(funcs, c, 0), get(funcs, c, 1)
    rf, rw = get(rust, c, 0), get(rust, c, 1)
    out.append(f"| {c} | {us(ff)} | {us(rf)} | {ratio(ff, rf)} | {us(fw)} | {us(rw)} | {ratio(fw, rw)} | "
               f"{us(get(jco, c, 1))} | {us(get(jco, c, 0))} | {us(get(py, c, 0))} | {us(get(py, c, 1))} |")
out.append("")
out.append("## Host calls: a guest calling its host (µs per call)\n")
out.append("minimal.wasm's `compute-using-host` calls its import `test:minimal/host@0.1.0#add` once "
           "per call; the import is a function of the calling language: Lua for funcs (`funcs.host`, "
           "`bench/host.lua`: an `inline` pool runs the guest on the caller's thread, a `lazy` one on "
           "a worker, which hands each host call to the Lua thread), Python for wasmtime-py (the "
           "component `Linker`'s `add_func`), JS for jco (the import object of `instantiate`). "
           "*compute*: the same component's export without the host call (funcs: `bench/host.lua`'s "
           "`compute-no-host`). Fresh and warm as above; each ratio is host-call over compute within "
           "one runtime.\n")
out.append("| runtime | host-call fresh | compute fresh | ratio | host-call warm | compute warm | ratio |")
out.append("|---|---|---|---|---|---|---|")
host_rows = [
    ("funcs, caller's thread", get(funcs_host, "host-call-caller-thread", 0), get(funcs_host, "host-call-caller-thread", 1),
     get(funcs_host, "compute-no-host", 0), get(funcs_host, "compute-no-host", 1)),
    ("funcs, from a worker", get(funcs_host, "host-call-from-worker", 0), get(funcs_host, "host-call-from-worker", 1),
     get(funcs_host, "compute-no-host", 0), get(funcs_host, "compute-no-host", 1)),
    ("wasmtime-py", get(py, "host-call", 0), get(py, "host-call", 1), get(py, "compute", 0), get(py, "compute", 1)),
    ("jco", get(jco, "host-call", 0), get(jco, "host-call", 1), get(jco, "compute", 0), get(jco, "compute", 1)),
]
for name, hf, hw, cf, cw in host_rows:
    out.append(f"| {name} | {us(hf)} | {us(cf)} | {ratio(hf, cf)} | {us(hw)} | {us(cw)} | {ratio(hw, cw)} |")
out.append("")
out.append("One host call's round trip (`bench/host.lua`'s `bench:pings`, a WAT component calling its "
           "import `ping`, a Lua function, 1,000 times per call; µs per host call over 21 interleaved "
           "rounds): on the caller's thread (`inline` pool) and from a worker (`funcs.async` on a "
           "`lazy` pool, the Lua thread waiting in `future:wait`). Target (issue 27): from a worker, "
           "a median of at most 10 µs.\n")
out.append("| where | median | fastest round | slowest round | target | met |")
out.append("|---|---|---|---|---|---|")
trips = {}
for line in lines("funcs-host.txt"):
    parts = line.split()
    if parts and parts[0].startswith("round-trip-"):
        trips[parts[0].removeprefix("round-trip-")] = [float(p) for p in parts[1:4]]
for where, label, limit in (("caller-thread", "caller's thread", None), ("from-worker", "from a worker", 10_000)):
    if where in trips:
        med, lo, hi = trips[where]
        met = "-" if limit is None else ("yes" if med <= limit else "no")
        out.append(f"| {label} | {us(med)} | {us(lo)} | {us(hi)} | {'-' if limit is None else '10 µs'} | {met} |")
out.append("")
out.append("funcs' host-call on the caller's thread over the peers' host-call:\n")
out.append("| against | fresh | warm |")
out.append("|---|---|---|")
for name, table in (("wasmtime-py", py), ("jco", jco)):
    out.append(f"| {name} | {ratio(get(funcs_host, 'host-call-caller-thread', 0), get(table, 'host-call', 0))} | "
               f"{ratio(get(funcs_host, 'host-call-caller-thread', 1), get(table, 'host-call', 1))} |")
out.append("")
out.append("## Targets\n")
targets = [
    ("answer fresh within 1.5x of Rust", get(funcs, "answer", 0), get(rust, "answer", 0), 1.5),
    ("compute fresh within 1.5x of Rust", get(funcs, "compute", 0), get(rust, "compute", 0), 1.5),
    ("transform-users-1000 fresh within 1.3x of Rust", get(funcs, "transform-users-1000", 0), get(rust, "transform-users-1000", 0), 1.3),
    ("compute warm faster than jco", get(funcs, "compute", 1), get(jco, "compute", 1), 1.0),
    ("transform-users-1000 warm within 1.2x of jco", get(funcs, "transform-users-1000", 1), get(jco, "transform-users-1000", 1), 1.2),
]
for c in cases:
    targets.append((f"{c} faster than wasmtime-py (fresh)", get(funcs, c, 0), get(py, c, 0), 1.0))
out.append("| target | funcs | against | ratio | met |")
out.append("|---|---|---|---|---|")
for name, a, b, limit in targets:
    met = "-" if a is None or b is None else ("yes" if a / b <= limit else "no")
    out.append(f"| {name} | {us(a)} | {us(b)} | {ratio(a, b)} | {met} |")
out.append("")
out.append("## Artefact cache: the same registries loaded cold, then warm\n")
out.append("```\n" + "\n".join(lines("cache.txt")) + "\n```\n")
out.append("## Limits\n")
out.append("```\n" + "\n".join(lines("limits.txt")) + "\n```\n")
out.append("## Pools\n")
out.append("```\n" + "\n".join(lines("pools.txt") + lines("pools-on-demand.txt")) + "\n```\n")
out.append("## Paths: one component on every path a call can take (µs per call)\n")
out.append("mapper.wasm's `transform-users` over 1,000 records (`bench/paths.lua`, median of 7 interleaved rounds): "
           "`pool: inline` without imports is the direct path; *wasi* entries grant "
           "`[wasi:cli, wasi:io, wasi:clocks, wasi:filesystem]`; lazy pools of 2 through `funcs.call` "
           "and `funcs.async(...):wait()`. Targets (issue 15): every path within 1.25x of the first "
           "row, the inline WASI row within 1.1x.\n")
paths_table(values("paths.txt", "paths-"), "path", "µs")


out.append("## Instructions per call (callgrind)\n")
out.append("Counted, not timed (`bench/instructions.sh`): each case makes one call and then 0 or N "
           "more under `valgrind --tool=callgrind`, every thread counted; the difference over N. "
           "funcs from Lua 5.4 (`bench/instructions.lua`), Rust through `benches/raw.rs count`.\n")
ins = values("instructions.txt", "instructions-")
out.append("| case | funcs | Rust | ratio | target | met |")
out.append("|---|---|---|---|---|---|")
# res-*: a live instance of the C counters guest (SPEC 15; targets of issue 28): `c:get()`,
# `Counter.new(1):drop()`, `inst:call("get-total")`.
for case, limit in [("answer-fresh", 1.3), ("answer-warm", None), ("compute-fresh", None), ("compute-warm", 3.0),
                    ("res-get", 2.0), ("res-new-drop", 2.0), ("res-total", 1.5)]:
    a, b = ins.get(case + "-funcs"), ins.get(case + "-rust")
    met = "-" if limit is None or a is None or b is None else ("yes" if a / b <= limit else "no")
    out.append(f"| {case} | {'-' if a is None else f'{a:,.0f}'} | {'-' if b is None else f'{b:,.0f}'} | "
               f"{ratio(a, b)} | {'-' if limit is None else f'{limit}x'} | {met} |")
out.append("")
# An executor's call against funcs.call (issue 27: within 1.1x).
out.append("| executor (`funcs.new():with_options(...)`) | `ex:call` | `funcs.call` | ratio | target | met |")
out.append("|---|---|---|---|---|---|")
for case in ["answer-warm", "compute-warm"]:
    a, b = ins.get(case + "-executor"), ins.get(case + "-funcs")
    met = "-" if a is None or b is None else ("yes" if a / b <= 1.1 else "no")
    out.append(f"| {case} | {'-' if a is None else f'{a:,.0f}'} | {'-' if b is None else f'{b:,.0f}'} | "
               f"{ratio(a, b)} | 1.1x | {met} |")
out.append("")
paths_table({k.removeprefix("paths-"): v for k, v in ins.items() if k.startswith("paths-")},
            "path (transform-users, 1,000 records)", "instructions")

out.append("## HTTP under wrk (requests per second, 99th percentile latency)\n")
out.append("`scripts/bench-http.sh`: `wrk -t2 -c32` POSTs on loopback, the server on the same 2 "
           "cores. funcs' plain function (`examples:api`'s greet), the C incoming-handler "
           "(`spec/fixtures/c-http`, wit-bindgen and zig) and the CPython one, each handler served "
           "by funcs and by `wasmtime serve` (wasmtime-cli 48.0.8). Targets (issue 27): the C "
           "handler's throughput at least 1.0x `wasmtime serve`'s, its p99 at most 1.5x.\n")
http = values("http.txt", "http-")
p99 = values("http.txt", "http99-")
out.append("| row | req/s | vs `wasmtime serve` | p99 ms | vs `wasmtime serve` | met |")
out.append("|---|---|---|---|---|---|")
for name, value in http.items():
    peer, lat, peer_lat = http.get(name + "-wasmtime"), p99.get(name), p99.get(name + "-wasmtime")
    met = "-"
    if name == "c-handler" and peer and lat and peer_lat:
        met = "yes" if value >= peer and lat <= 1.5 * peer_lat else "no"
    out.append(f"| {name} | {value:,.0f} | {ratio(value, peer) if peer else '-'} | "
               f"{'-' if lat is None else f'{lat:.2f}'} | {ratio(lat, peer_lat) if lat and peer_lat else '-'} | {met} |")
out.append("\n```\n" + "\n".join(l for l in lines("http-wrk.txt") if not l.startswith("http-")) + "\n```\n")

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [("funcs fresh", funcs, 0), ("Rust fresh", rust, 0), ("funcs warm", funcs, 1),
              ("Rust warm", rust, 1), ("jco warm", jco, 1), ("wasmtime-py fresh", py, 0)]
    fig, ax = plt.subplots(figsize=(11, 5))
    width = 0.13
    for i, (label, table, col) in enumerate(series):
        xs = [j + (i - len(series) / 2) * width for j in range(len(cases))]
        ys = [(get(table, c, col) or 0) / 1000 for c in cases]
        ax.bar(xs, ys, width, label=label)
    ax.set_yscale("log")
    ax.set_xticks(range(len(cases)))
    ax.set_xticklabels(cases, rotation=15)
    ax.set_ylabel("µs per call (log scale)")
    ax.set_title("funcs from Lua vs Rust on wasmtime, jco and wasmtime-py")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(root, "benchmarks.png"), dpi=90)
    out.insert(3, "![calls](benchmarks.png)\n")
except ImportError:
    out.append("(no chart: matplotlib is missing)\n")

open(os.path.join(root, "BENCHMARKS.md"), "w").write("\n".join(out) + "\n")
print("wrote BENCHMARKS.md")
