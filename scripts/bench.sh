#!/usr/bin/env bash
# `make bench`, in one run on this machine:
#   1. funcs.call from Lua 5.4 next to the same calls made from Rust on wasmtime: 100,000
#      calls per small case, fewer for the large ones, a fresh instance each;
#   2. limits (bench/limits.lua): deadline overshoot, sleeping calls sharing 2 workers, the
#      cost of a deadline;
#   3. pools (bench/pools.lua): inline vs 2 workers, fresh vs reused instances, with the
#      pooling allocator and with on-demand allocation.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/guests.sh
scripts/build.sh lua5.4
cargo build --release --locked --bench raw 2>/dev/null
raw=$(cargo bench --locked --bench raw 2>/dev/null)
lua=$(LUA_CPATH="build/lua5.4/?.so;;" lua5.4 bench/call.lua)
echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf '%-22s %14s %14s %8s\n' case "rust ns/call" "lua ns/call" ratio
while read -r name rust_ns; do
  lua_ns=$(echo "$lua" | awk -v n="$name" '$1 == n { print $2 }')
  printf '%-22s %14s %14s %8s\n' "$name" "$rust_ns" "$lua_ns" \
    "$(awk -v a="$lua_ns" -v b="$rust_ns" 'BEGIN { printf "%.2fx", a / b }')"
done <<< "$raw"

echo
echo "== limits"
LUA_CPATH="build/lua5.4/?.so;;" lua5.4 bench/limits.lua
echo "-- the same loop from Rust: no epoch checks compiled in, checks with no deadline, a deadline (ms)"
cargo bench --locked --bench epoch 2>/dev/null
echo
echo "== pools (allocator: pooling, then on-demand)"
LUA_CPATH="build/lua5.4/?.so;;" lua5.4 bench/pools.lua
FUNCS_ALLOCATOR=on-demand LUA_CPATH="build/lua5.4/?.so;;" lua5.4 bench/pools.lua | grep -v throughput

echo
echo "== artefact cache: the same registries loaded cold, then warm"
cache=$(mktemp -d)
FUNCS_CACHE_DIR=$cache LUA_CPATH="build/lua5.4/?.so;;" lua5.4 bench/cache.lua cold-start
FUNCS_CACHE_DIR=$cache LUA_CPATH="build/lua5.4/?.so;;" lua5.4 bench/cache.lua warm-start
rm -rf "$cache"
