#!/usr/bin/env bash
# Installs the rock with `luarocks make` into a temporary tree, for Lua 5.4 and 5.1, and uses
# it from outside the repository: require("funcs"), load the examples, call one.
# Prints `rock (<lua>): ok` or `rock (<lua>): FAILED`; the exit code says whether all passed.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
status=0
for v in 5.4 5.1; do
  tree=$(mktemp -d)
  if luarocks --lua-version="$v" --tree="$tree" make >"$tree/log" 2>&1 &&
    out=$(cd /tmp && LUA_CPATH="$tree/lib/lua/$v/?.so" LUA_PATH="$tree/share/lua/$v/?.lua" \
      "lua$v" -e "
        local funcs = require('funcs')
        assert(require('funcs.await'))
        assert(funcs.load('$repo/examples/app'))
        print(package.searchpath and package.searchpath('funcs', package.cpath) or 'funcs.so',
          funcs.call('examples:compute', 6, 7))") &&
    [[ "$out" == *"$tree/lib/lua/$v/funcs.so"*42* || "$out" == "funcs.so"*42* ]]; then
    echo "rock (lua$v): ok ($out)"
  else
    echo "rock (lua$v): FAILED"
    tail -n 20 "$tree/log"
    echo "${out:-}"
    status=1
  fi
  rm -rf "$tree"
done
exit $status
