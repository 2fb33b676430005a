#!/usr/bin/env bash
# Instructions per call, counted by callgrind rather than timed (this machine's timings move by
# tens of percent): each case runs one call and then 0, or N, more; the difference over N is
# one call. funcs from Lua 5.4 through bench/instructions.lua (every thread counted: the
# worker's too), raw Rust on wasmtime through benches/raw.rs's `count` mode. Prints
# `instructions-<row> <per call>` lines. Run by scripts/bench.sh after its build.
set -euo pipefail
cd "$(dirname "$0")/.."
raw=$(cargo bench --locked --bench raw --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -1)
[ -x "$raw" ] || { echo "no benches/raw.rs binary" >&2; exit 1; }

collected() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

# per_call <row> <n> <command...>: the command's `N` is the number of calls.
per_call() {
  local row=$1 n=$2 zero=() many=() x
  shift 2
  for x in "$@"; do
    if [ "$x" = N ]; then zero+=(0); many+=("$n"); else zero+=("$x"); many+=("$x"); fi
  done
  local a b
  a=$(collected "${zero[@]}")
  b=$(collected "${many[@]}")
  echo "instructions-$row $(((b - a) / n))"
}

export LUA_CPATH="build/lua5.4/?.so;;"
luai=(lua5.4 bench/instructions.lua)

# Small calls: funcs against raw Rust, fresh and warm instances. 2,000 calls: what a process's
# start costs varies by some 100,000 instructions from run to run (hash seeds, addresses), which
# 200 calls would spread over each.
per_call answer-fresh-funcs 2000 "${luai[@]}" bench:answer N
per_call answer-fresh-rust 2000 "$raw" count answer fresh N
per_call answer-warm-funcs 2000 "${luai[@]}" bench:answer_warm N
per_call answer-warm-rust 2000 "$raw" count answer warm N
per_call compute-fresh-funcs 2000 "${luai[@]}" bench:compute N
per_call compute-fresh-rust 2000 "$raw" count compute fresh N
per_call compute-warm-funcs 2000 "${luai[@]}" bench:compute_warm N
per_call compute-warm-rust 2000 "$raw" count compute warm N
# An executor's call (funcs.new():with_options(...)), against funcs.call above.
per_call answer-warm-executor 2000 "${luai[@]}" bench:answer_warm N executor
per_call compute-warm-executor 2000 "${luai[@]}" bench:compute_warm N executor

# A live instance (SPEC 15): a method call on a handle, a constructor and a drop, a plain
# export, against the same on wasmtime directly.
per_call res-get-funcs 2000 "${luai[@]}" res:get N
per_call res-get-rust 2000 "$raw" count res-get warm N
per_call res-new-drop-funcs 2000 "${luai[@]}" res:new_drop N
per_call res-new-drop-rust 2000 "$raw" count res-new-drop warm N
per_call res-total-funcs 2000 "${luai[@]}" res:total N
per_call res-total-rust 2000 "$raw" count res-total warm N

# transform-users over 1,000 records on every path (bench/paths.lua's rows).
per_call paths-inline 20 "${luai[@]}" bench:transform_users N
per_call paths-inline-wasi 20 "${luai[@]}" bench:transform_users_wasi N
per_call paths-lazy-call 20 "${luai[@]}" bench:transform_users_lazy N
per_call paths-lazy-wasi-call 20 "${luai[@]}" bench:transform_users_wasi_lazy N
per_call paths-lazy-async 20 "${luai[@]}" bench:transform_users_lazy N async
per_call paths-lazy-wasi-async 20 "${luai[@]}" bench:transform_users_wasi_lazy N async
