#!/usr/bin/env bash
# Installs the Debian packages the demo and the tests need, when they are missing. The premise
# is a fresh Debian machine with the Rust toolchain (rustup) and Python 3: everything else the
# two commands of the README use comes from here, from PyPI (scripts/guests.sh, into a venv
# under build/) or from crates.io (cargo).
set -euo pipefail
packages=(
  # The interpreters the specs run under, and busted.
  lua5.4 lua5.3 lua5.2 lua5.1 luajit lua-busted
  # `luarocks make` (scripts/rock-check.sh) for each of them: luarocks and the Lua headers it
  # checks for before any build.
  luarocks liblua5.4-dev liblua5.3-dev liblua5.2-dev liblua5.1-0-dev libluajit-5.1-dev
  # The event loops the adapters lua/funcs/luv.lua and lua/funcs/cqueues.lua are tested with.
  lua-luv lua-cqueues
  # nginx for scripts/nginx-check.sh. Its Lua module is not installed here: on Debian 12 it
  # needs OpenResty's LuaJIT, which conflicts with the luajit above; the check unpacks the
  # module's packages under build/ instead (see its header).
  nginx-light
  # The C compiler: cargo links with it, and the in-process tests build a vendored Lua.
  gcc libc6-dev
  # The demo and the HTTP specs call the endpoints with curl; the reload-under-load spec
  # drives one with wrk.
  curl ca-certificates wrk
  # `make bench` counts instructions per call with callgrind (bench/instructions.sh).
  valgrind
)
# The guests' build tools live in a venv (Debian's Python refuses `pip install` outside one).
python3 -c 'import ensurepip' >/dev/null 2>&1 || packages+=(python3-venv)
missing=()
for p in "${packages[@]}"; do
  # Installed, not merely known (a removed package keeps the state "config-files").
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
