#!/usr/bin/env bash
# Installs the Debian packages the demo and the tests need, when they are missing. The premise
# is a fresh Debian machine with the Rust toolchain (rustup) and Python 3: everything else the
# two commands of the README use comes from here, from PyPI (scripts/guests.sh, into a venv
# under build/) or from crates.io (cargo).
set -euo pipefail
packages=(
  # The interpreters the specs run under, and busted.
  lua5.4 lua5.1 luajit lua-busted
  # `luarocks make` (scripts/rock-check.sh) for 5.4 and 5.1: luarocks and the Lua headers it
  # looks for (5.1's only come along with luarocks by chance).
  luarocks liblua5.4-dev liblua5.1-0-dev
  # The C compiler: cargo links with it, and the in-process tests build a vendored Lua.
  gcc libc6-dev
  # The demo and the HTTP specs call the endpoints with curl; the reload-under-load spec
  # drives one with wrk.
  curl ca-certificates wrk
)
# The guests' build tools live in a venv (Debian's Python refuses `pip install` outside one).
python3 -c 'import ensurepip' >/dev/null 2>&1 || packages+=(python3-venv)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
