#!/usr/bin/env bash
# The rock, as a LuaRocks user gets it, for one Lua (lua5.1, lua5.2, lua5.3, lua5.4 or luajit):
#   1. `luarocks make` of funcs-0.1.0-1.rockspec (build type rust-mlua) into a temporary tree;
#   2. from outside the repository, that Lua requires funcs and funcs.await, loads the examples
#      and calls one;
#   3. `luarocks pack funcs` makes the binary rock, which is installed into a second tree with a
#      PATH that has no cargo or rustc (a user without a toolchain), and used the same way.
#   scripts/rock-check.sh lua5.4 [lua5.1 ...]
# Prints `rock (<lua>): ok (...)` and `binary rock (<lua>): ok (...)` or FAILED lines; the exit
# code says whether all passed. Run after `scripts/build.sh <lua>`: cargo then finds the build
# fresh (same features, same target folder) and the rock costs no second compile.
#
# The backend: the real luarocks-build-rust-mlua when luarocks has it installed; otherwise,
# since the LuaRocks server is out of reach here, scripts/rock/ (a stand-in implementing the
# same rockspec fields) is put on LUA_PATH and dependencies are not fetched (--deps-mode=none).
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
status=0
[ $# -gt 0 ] || set -- lua5.4 lua5.3 lua5.2 lua5.1 luajit

# Runs <interpreter> from /tmp against the tree $1 and checks it loads funcs from there.
use_tree() {
  local tree=$1 v=$2 interp=$3 out
  out=$(cd /tmp && LUA_CPATH="$tree/lib/lua/$v/?.so" LUA_PATH="$tree/share/lua/$v/?.lua" \
    "$interp" -e "
      local funcs = require('funcs')
      assert(require('funcs.await'))
      assert(funcs.load('$repo/examples/app'))
      print(package.searchpath and package.searchpath('funcs', package.cpath) or package.cpath,
        funcs.call('examples:compute', 6, 7))" 2>&1)
  echo "$out"
  [[ "$out" == "$tree/lib/lua/$v/"*42 ]]
}

for lua in "$@"; do
  case "$lua" in
    lua5.1 | lua5.2 | lua5.3 | lua5.4) v=${lua#lua}; interp=$lua ;;
    luajit) v=5.1; interp=luajit ;;
    *) echo "rock ($lua): FAILED (unknown Lua)"; status=1; continue ;;
  esac
  work=$(mktemp -d)
  out=""
  args=(--lua-version="$v")
  if [ "$lua" = luajit ]; then
    # A LuaJIT setup: luarocks learns it is LuaJIT from the interpreter it is given.
    printf 'variables = { LUA = "%s", LUA_INCDIR = "/usr/include/luajit-2.1" }\n' \
      "$(command -v luajit)" >"$work/config.lua"
    export LUAROCKS_CONFIG="$work/config.lua"
  else
    unset LUAROCKS_CONFIG
  fi
  lua_path=${LUA_PATH:-;;}
  backend="luarocks-build-rust-mlua"
  if ! luarocks "${args[@]}" show luarocks-build-rust-mlua >/dev/null 2>&1; then
    lua_path="$repo/scripts/rock/?.lua;;"
    backend="stand-in backend scripts/rock"
  fi

  tree="$work/tree"
  if LUA_PATH="$lua_path" luarocks "${args[@]}" --tree="$tree" make --deps-mode=none \
      >"$work/make.log" 2>&1 && out=$(use_tree "$tree" "$v" "$interp"); then
    echo "rock ($lua): ok ($backend; $out)"
  else
    echo "rock ($lua): FAILED ($backend)"
    tail -n 20 "$work/make.log"
    echo "${out:-}"
    status=1
    rm -rf "$work"
    continue
  fi

  # The binary rock, installed where there is no Rust toolchain on PATH.
  bare=/usr/local/bin:/usr/bin:/bin
  if PATH=$bare command -v cargo >/dev/null || PATH=$bare command -v rustc >/dev/null; then
    echo "binary rock ($lua): FAILED (cargo or rustc is in $bare: no PATH without Rust to install into)"
    status=1
    rm -rf "$work"
    continue
  fi
  out=""
  tree2="$work/bare-tree"
  if (cd "$work" && luarocks "${args[@]}" --tree="$tree" pack funcs >"$work/pack.log" 2>&1) &&
    rock=$(ls "$work"/funcs-0.1.0-1.*.rock 2>/dev/null | head -n 1) && [ -n "$rock" ] &&
    PATH=$bare luarocks "${args[@]}" --tree="$tree2" install --deps-mode=none "$rock" \
      >"$work/install.log" 2>&1 &&
    out=$(PATH=$bare use_tree "$tree2" "$v" "$interp"); then
    echo "binary rock ($lua): ok ($(basename "$rock"), $(du -k "$rock" | cut -f1) KiB; $out)"
  else
    echo "binary rock ($lua): FAILED"
    cat "$work/pack.log" "$work/install.log" 2>/dev/null | tail -n 20
    echo "${out:-}"
    status=1
  fi
  rm -rf "$work"
done
exit $status
