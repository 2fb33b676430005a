#!/usr/bin/env bash
# HTTP under load with wrk (Debian's package), in one run: the plain-function greeter and the
# CPython incoming-handler served by funcs, and the same incoming-handler component served by
# `wasmtime serve` (wasmtime-cli built with cargo at our wasmtime version, into
# build/wasmtime-cli; the first build takes several minutes).
#   scripts/bench-http.sh [seconds for the plain function, default 10] [for the handlers, 40]
# (the CPython handler answers a few hundred requests a second: 40 s give 10,000+ requests)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
handler_secs=${2:-40}
scripts/deps.sh
command -v wrk >/dev/null || { sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo;
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk >/dev/null; }
scripts/guests.sh
scripts/build.sh lua5.4 >/dev/null
wasmtime=build/wasmtime-cli/bin/wasmtime
[ -x "$wasmtime" ] || cargo install --quiet --locked wasmtime-cli --version 48.0.8 --root build/wasmtime-cli

tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
cat > "$tmp/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = "World"
LUA

# funcs: both services in one process, addresses written to files.
LUA_CPATH="build/lua5.4/?.so;;" lua5.4 -e "
  local funcs = require('funcs')
  assert(funcs.load('examples/app'))
  assert(funcs.load('build/guests/python-http'))
  local function save(id, file)
    local f = assert(io.open('$tmp/' .. file, 'w'))
    f:write(assert(funcs.http.start(id)))
    f:close()
  end
  save('examples:api', 'plain')
  save('hh:service', 'handler')
  funcs.http.serve('examples:api')" &
"$wasmtime" serve --addr 127.0.0.1:18931 -S cli=y build/guests/python-http/handler.wasm \
  >/dev/null 2>&1 &
for _ in $(seq 100); do
  [ -s "$tmp/plain" ] && [ -s "$tmp/handler" ] && curl -s -o /dev/null -d x http://127.0.0.1:18931/ && break
  sleep 0.2
done

run() {
  echo "== $1"
  wrk -t2 -c32 -d"$3s" --latency -s "$tmp/post.lua" "$2" |
    grep -E 'requests in|Requests/sec|  99%|  50%|Non-2xx|Socket errors'
}
run "funcs, plain function (greet)" "http://$(cat "$tmp/plain")/api/greet" "$secs"
run "funcs, incoming-handler (CPython)" "http://$(cat "$tmp/handler")/h/greet" "$handler_secs"
run "wasmtime serve, the same incoming-handler" "http://127.0.0.1:18931/h/greet" "$handler_secs"
