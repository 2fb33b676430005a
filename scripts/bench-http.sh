#!/usr/bin/env bash
# HTTP under load with wrk (Debian's package), in one run: the plain-function greeter, the C
# incoming-handler (spec/fixtures/c-http) and the CPython one served by funcs, and the same two
# handler components served by `wasmtime serve` (wasmtime-cli built with cargo at our wasmtime
# version, into build/wasmtime-cli; the first build takes 15 to 25 minutes).
#   scripts/bench-http.sh [seconds for the plain function and the C handler, default 10]
#                         [for the CPython handler, 40]
# (the CPython handler answers a few hundred requests a second: 40 s give 10,000+ requests)
# Prints each run's wrk summary, then `http-<row> <requests/s> req/s` and `http99-<row> <p99> ms`
# lines.
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
  assert(funcs.load('build/guests/c-http'))
  local function save(id, file)
    local f = assert(io.open('$tmp/' .. file, 'w'))
    f:write(assert(funcs.http.start(id)))
    f:close()
  end
  save('examples:api', 'plain')
  save('hh:service', 'handler')
  save('ch:service', 'c-handler')
  funcs.http.serve('examples:api')" &
"$wasmtime" serve --addr 127.0.0.1:18931 -S cli=y build/guests/python-http/handler.wasm \
  >/dev/null 2>&1 &
"$wasmtime" serve --addr 127.0.0.1:18932 build/guests/c-http/guest.wasm >/dev/null 2>&1 &
# Up to 5 minutes: a first run compiles the CPython component (not yet in the cache).
ready=""
for _ in $(seq 1500); do
  if [ -s "$tmp/plain" ] && [ -s "$tmp/handler" ] && [ -s "$tmp/c-handler" ] &&
    curl -s -o /dev/null -d x http://127.0.0.1:18931/ &&
    curl -s -o /dev/null -d x http://127.0.0.1:18932/; then
    ready=1
    break
  fi
  sleep 0.2
done
[ -n "$ready" ] || { echo "bench-http: the servers did not start" >&2; exit 1; }

summary=$tmp/summary
run() {
  echo "== $2"
  local out
  out=$(wrk -t2 -c32 -d"$4s" --latency -s "$tmp/post.lua" "$3")
  echo "$out" | grep -E 'requests in|Requests/sec|  99%|  50%|Non-2xx|Socket errors'
  # Errors or non-2xx answers make the row's rate meaningless: none is written then.
  if ! echo "$out" | grep -qE 'Non-2xx|Socket errors'; then
    echo "http-$1 $(echo "$out" | awk '/Requests\/sec/ { print $2 }') req/s" >> "$summary"
    # wrk prints the 99th percentile as 950.00us, 14.85ms or 1.02s: in ms.
    echo "http99-$1 $(echo "$out" | awk '$1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
      print (u == "us" ? v / 1000 : (u == "s" ? v * 1000 : (u == "m" ? v * 60000 : v))) }') ms" >> "$summary"
  fi
}
run plain "funcs, plain function (greet)" "http://$(cat "$tmp/plain")/api/greet" "$secs"
run c-handler "funcs, incoming-handler (C)" "http://$(cat "$tmp/c-handler")/h/greet" "$secs"
run c-handler-wasmtime "wasmtime serve, the same C incoming-handler" "http://127.0.0.1:18932/h/greet" "$secs"
run python-handler "funcs, incoming-handler (CPython)" "http://$(cat "$tmp/handler")/h/greet" "$handler_secs"
run python-handler-wasmtime "wasmtime serve, the same CPython incoming-handler" "http://127.0.0.1:18931/h/greet" "$handler_secs"
cat "$summary"
