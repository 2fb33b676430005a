#!/usr/bin/env bash
# Installs the Debian packages the demo and the tests need, when they are missing.
set -euo pipefail
# curl: the demo and the HTTP specs call the endpoints with it.
packages=(lua5.4 lua5.1 luajit lua-busted luarocks curl)
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
