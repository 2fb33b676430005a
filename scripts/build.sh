#!/usr/bin/env bash
# Builds funcs.so for one Lua version into build/<lua>/funcs.so.
#   scripts/build.sh [lua5.4|lua5.3|lua5.2|lua5.1|luajit]
# Every Lua version shares one release build of wasmtime; only the funcs crate is rebuilt.
set -euo pipefail
lua=${1:-lua5.4}
case "$lua" in
  lua5.4) features="lua54,module" ;;
  lua5.3) features="lua53,module" ;;
  lua5.2) features="lua52,module" ;;
  lua5.1) features="lua51,module" ;;
  luajit) features="luajit,module" ;;
  *) echo "unknown Lua: $lua (lua5.4, lua5.3, lua5.2, lua5.1 or luajit)" >&2; exit 2 ;;
esac
cargo build --release --locked --no-default-features --features "$features"
mkdir -p "build/$lua"
cp target/release/libfuncs.so "build/$lua/funcs.so"
