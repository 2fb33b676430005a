#!/usr/bin/env bash
# Builds funcs.so for Lua 5.4 and runs the demo on the examples registry.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh lua5.4
LUA_CPATH="build/lua5.4/?.so;;" LUA_PATH="lua/?.lua;;" lua5.4 examples/demo.lua
