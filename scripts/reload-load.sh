#!/usr/bin/env bash
# HTTP under load while the registry is reloaded (SPEC section 13, issue 14): one Lua process
# serves an http.service, router and endpoint and reloads their registry (funcs.load of the
# same folder again) every 100 ms, while wrk -t2 -c32 POSTs "World" to the endpoint. Every
# response must be 200 "Hello, World!": no non-2xx, no socket errors (connect, read, write,
# timeout), no other body, and every reload must succeed.
#   scripts/reload-load.sh [seconds, default 30]
# Environment:
#   RELOAD_REGISTRY  the folder loaded and reloaded (spec/fixtures/http)
#   RELOAD_SERVICE   its http.service (web:service)
#   RELOAD_PATH      the endpoint (/api/greet)
#   RELOAD_EVERY_MS  the reload period (100)
#   RELOAD_MIN       reloads required (default: 80 % of seconds * 1000 / period)
#   RELOAD_CPATH     LUA_CPATH for the server; by default build/lua5.4/funcs.so is copied to
#                    /tmp/fuzz-so/funcs.so (renamed into place) and loaded from there
#   RELOAD_LUA       the interpreter (lua5.4)
# Prints wrk's output and one line "reload-load: requests=... non2xx=... ..." ; exits non-zero
# when anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
registry=${RELOAD_REGISTRY:-spec/fixtures/http}
service=${RELOAD_SERVICE:-web:service}
path=${RELOAD_PATH:-/api/greet}
every=${RELOAD_EVERY_MS:-100}
min_reloads=${RELOAD_MIN:-$((secs * 1000 / every * 8 / 10))}
lua=${RELOAD_LUA:-lua5.4}

command -v wrk >/dev/null || { sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo;
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk >/dev/null; }

if [ -n "${RELOAD_CPATH:-}" ]; then
  export LUA_CPATH="$RELOAD_CPATH"
else
  so=build/lua5.4/funcs.so
  [ -f "$so" ] || { echo "reload-load: no $so (scripts/build.sh lua5.4 builds it)" >&2; exit 2; }
  mkdir -p /tmp/fuzz-so
  if ! cmp -s "$so" /tmp/fuzz-so/funcs.so; then
    cp "$so" "/tmp/fuzz-so/funcs.so.$$" && mv -f "/tmp/fuzz-so/funcs.so.$$" /tmp/fuzz-so/funcs.so
  fi
  export LUA_CPATH="/tmp/fuzz-so/?.so;;"
fi
export FUNCS_CACHE_DIR=${FUNCS_CACHE_DIR:-$PWD/build/cache}

tmp=$(mktemp -d)
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# The server: starts the service, then reloads its registry every period until told to stop.
cat > "$tmp/server.lua" <<'LUA'
local funcs = require("funcs")
local registry, service, every, dir = arg[1], arg[2], tonumber(arg[3]), arg[4]
assert(funcs.load(registry))
local addr = assert(funcs.http.start(service))
local f = assert(io.open(dir .. "/addr.tmp", "w"))
f:write(addr)
f:close()
os.rename(dir .. "/addr.tmp", dir .. "/addr")
-- Waits until the load starts, then reloads until the stop file appears.
while not io.open(dir .. "/go") do os.execute("sleep 0.02") end
local reloads, failed, worst, first_error = 0, 0, 0, nil
local started = funcs.clock()
local next_at = started
while not io.open(dir .. "/stop") do
  local t0 = funcs.clock()
  local summary, err = funcs.load(registry)
  local took = funcs.clock() - t0
  if summary then reloads = reloads + 1 else failed = failed + 1; first_error = first_error or tostring(err) end
  if took > worst then worst = took end
  next_at = next_at + every / 1000
  local wait = next_at - funcs.clock()
  if wait > 0 then os.execute(("sleep %.3f"):format(wait)) else next_at = funcs.clock() end
end
local seconds = funcs.clock() - started
assert(funcs.http.stop(service))
print(("reloads=%d failed=%d seconds=%.1f slowest_ms=%.1f"):format(reloads, failed, seconds, worst * 1000))
if first_error then print("first reload error: " .. first_error) end
LUA

# wrk: POST "World"; counts status codes and bodies (all threads, in done()).
cat > "$tmp/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = "World"
wrk.headers["Content-Type"] = "text/plain"
local threads = {}
function setup(thread) table.insert(threads, thread) end
good, bad, codes, sample = 0, 0, "", ""
local seen = {}
function response(status, headers, body)
  if status == 200 and body == "Hello, World!" then
    good = good + 1
  else
    bad = bad + 1
    seen[status] = (seen[status] or 0) + 1
    local parts = {}
    for code, n in pairs(seen) do parts[#parts + 1] = code .. ":" .. n end
    codes = table.concat(parts, ",")
    if sample == "" then sample = status .. " " .. tostring(body):sub(1, 200) end
  end
end
function done(summary, latency, requests)
  local g, b, c, s = 0, 0, {}, ""
  for _, t in ipairs(threads) do
    g = g + t:get("good")
    b = b + t:get("bad")
    if t:get("codes") ~= "" then c[#c + 1] = t:get("codes") end
    if s == "" then s = t:get("sample") end
  end
  local e = summary.errors
  io.write(("RESULT requests=%d non2xx=%d connect=%d read=%d write=%d timeout=%d expected_body=%d unexpected=%d codes=%s\n")
    :format(summary.requests, e.status, e.connect, e.read, e.write, e.timeout, g, b, table.concat(c, ",")))
  if s ~= "" then io.write("first unexpected response: " .. s .. "\n") end
end
LUA

"$lua" "$tmp/server.lua" "$registry" "$service" "$every" "$tmp" > "$tmp/server.out" 2> "$tmp/server.err" &
server=$!
for _ in $(seq 300); do [ -s "$tmp/addr" ] && break; kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
[ -s "$tmp/addr" ] || { echo "reload-load: the server did not start"; cat "$tmp/server.err"; exit 1; }
url="http://$(cat "$tmp/addr")$path"
check=$(curl -s -d World "$url")
[ "$check" = "Hello, World!" ] || { echo "reload-load: $url answered: $check"; exit 1; }

echo "== wrk -t2 -c32 -d${secs}s POST $url while $registry is reloaded every ${every} ms ($LUA_CPATH)"
touch "$tmp/go"
wrk -t2 -c32 -d"${secs}s" -s "$tmp/post.lua" "$url" | tee "$tmp/wrk.out"
touch "$tmp/stop"
wait "$server" || { echo "reload-load: the server failed"; cat "$tmp/server.err"; exit 1; }
server=""
cat "$tmp/server.out"
grep -a -E "panicked|RUST_BACKTRACE" "$tmp/server.err" && { echo "reload-load: the server panicked"; exit 1; }

result=$(grep '^RESULT ' "$tmp/wrk.out" | sed 's/^RESULT //')
reloads=$(sed -n 's/.*reloads=\([0-9]*\).*/\1/p' "$tmp/server.out")
failed=$(sed -n 's/.*failed=\([0-9]*\).*/\1/p' "$tmp/server.out")
echo "reload-load: $result reloads=$reloads reload_failures=$failed"
get() { echo "$result" | sed -n "s/.*$1=\([0-9]*\).*/\1/p"; }
errors=$(( $(get non2xx) + $(get connect) + $(get read) + $(get write) + $(get timeout) + $(get unexpected) + failed ))
if [ "$errors" -ne 0 ] || [ "$reloads" -lt "$min_reloads" ] || [ "$(get requests)" -eq 0 ]; then
  echo "reload-load: FAILED ($errors errors, $reloads reloads of at least $min_reloads)"
  exit 1
fi
echo "reload-load: ok (0 errors, $reloads reloads)"
