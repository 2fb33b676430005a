#!/usr/bin/env bash
# funcs inside nginx with the OpenResty Lua module (Debian 12: nginx-light and
# libnginx-mod-http-lua, which runs on OpenResty's LuaJIT, libluajit2-5.1-2).
#
# Starts nginx in the foreground (daemon off, master and 2 workers) on a free loopback port,
# with its own prefix under a temporary folder (nginx.conf, error log, pid file, temp paths,
# funcs' artefact cache). Each worker loads examples/app in init_worker_by_lua (after the
# fork: funcs' threads belong to the worker that made them), and content_by_lua handlers
# call the functions. The script then
#   1. compares whole response bodies (curl) with the expected ones: compute, the three
#      `answer`s, records (aggregate_tags), an error object, funcs.async polled with
#      is_complete() and ngx.sleep();
#   2. runs `wrk -t2 -c16 -d5s` on /compute and requires 0 non-2xx responses and 0 socket
#      errors (wrk's own summary lines);
#   3. stops nginx with SIGQUIT (graceful), waits at most NGINX_STOP_SECS, then SIGKILL (a
#      failure), and requires every worker to have logged "exited with code 0";
#   4. fails on any [emerg], [alert], [crit] or [error] line, "exited on signal", a core
#      dump, a Rust panic or an "undefined symbol" in the error log. What funcs itself wrote
#      on stderr (nginx points the workers' stderr at the error log: lines "funcs: ...") is
#      printed as warnings, without failing the check.
# Prints "nginx: ok (N requests, R req/s, ...)" or "nginx: FAILED: <why>" and the tail of the
# error log; the exit status says which (2: could not even start the check).
#
#   scripts/nginx-check.sh
# Environment:
#   NGINX_FUNCS_SO    the LuaJIT build of funcs (build/luajit/funcs.so). It is copied into the
#                     prefix and loaded from there, so that a rebuild overwriting it in place
#                     (scripts/build.sh uses cp) cannot pull pages from under running workers.
#   NGINX_WRK_SECS    wrk's duration in seconds (5)
#   NGINX_STOP_SECS   how long a graceful stop may take (10)
#   NGINX_KEEP=1      keep the prefix folder (printed) instead of removing it
#   NGINX_LUA_DEBS=1  use the private copy of the Lua module (below) even when one is installed
#
# Packages: nginx-light, curl and wrk are installed with apt-get when missing. The Lua module
# is used from the system when libnginx-mod-http-lua is installed. When it is not, it is NOT
# installed: on Debian 12 it needs lua-resty-core, which needs OpenResty's LuaJIT
# (libluajit2-5.1-2), and that conflicts with the stock libluajit-5.1-2 behind the `luajit`
# interpreter and libluajit-5.1-dev, so installing it would remove those. Instead its .debs
# (libnginx-mod-http-lua libnginx-mod-http-ndk lua-resty-core lua-resty-lrucache
# libluajit2-5.1-2 libpcre3) are fetched with `apt-get download` into build/nginx-lua/ and
# unpacked there (dpkg-deb -x), and nginx runs with that LuaJIT on LD_LIBRARY_PATH (the
# master loads the modules; the forked workers inherit them). The system is not changed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
repo=$PWD
so=${NGINX_FUNCS_SO:-build/luajit/funcs.so}
wrk_secs=${NGINX_WRK_SECS:-5}
stop_secs=${NGINX_STOP_SECS:-10}

die() { echo "nginx: FAILED: $*" >&2; exit 2; }
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

# --- packages ---------------------------------------------------------------------------
missing=()
command -v nginx >/dev/null || missing+=(nginx-light)
command -v curl >/dev/null || missing+=(curl)
command -v wrk >/dev/null || missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq || die "apt-get update"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]}"
fi

# The Lua module calls into the Nginx Development Kit (ndk_set_var_*): NDK is loaded first.
modules=/usr/lib/nginx/modules # Debian's (/usr/share/nginx/modules links to it)
lib_path=""                    # LD_LIBRARY_PATH for the private copy
lua_share=""                   # resty.core of the private copy, for lua_package_path
installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]; }
if [ "${NGINX_LUA_DEBS:-0}" != 1 ] && installed libnginx-mod-http-lua \
    && [ -f "$modules/ngx_http_lua_module.so" ] && [ -f "$modules/ndk_http_module.so" ]; then
  lua_mod=$modules/ngx_http_lua_module.so
  ndk_mod=$modules/ndk_http_module.so
  lua_from="system"
else
  root=$repo/build/nginx-lua/root
  if [ ! -f "$root/usr/lib/nginx/modules/ngx_http_lua_module.so" ]; then
    debs=$repo/build/nginx-lua/debs
    rm -rf "$debs" "$root" && mkdir -p "$debs" "$root" || die "mkdir build/nginx-lua"
    echo "fetching the Lua module into build/nginx-lua (apt-get download)"
    get() { (cd "$debs" && apt-get download -q "$@" >/dev/null 2>"$debs/download.log"); }
    pkgs=(libnginx-mod-http-lua libnginx-mod-http-ndk lua-resty-core lua-resty-lrucache
      libluajit2-5.1-2 libpcre3)
    get "${pkgs[@]}" || { $sudo apt-get update -qq; get "${pkgs[@]}"; } \
      || die "apt-get download ${pkgs[*]}: $(grep -v unsandboxed "$debs/download.log")"
    for d in "$debs"/*.deb; do dpkg-deb -x "$d" "$root" || die "dpkg-deb -x $d"; done
  fi
  lua_mod=$root/usr/lib/nginx/modules/ngx_http_lua_module.so
  ndk_mod=$root/usr/lib/nginx/modules/ndk_http_module.so
  lib_path=$(dirname "$(find "$root" -name 'libluajit-5.1.so.2' | head -n 1)")
  [ -n "$lib_path" ] && [ "$lib_path" != . ] || die "no libluajit-5.1.so.2 in $root"
  pcre=$(find "$root" -name 'libpcre.so.3' | head -n 1)
  [ -n "$pcre" ] && [ "$(dirname "$pcre")" != "$lib_path" ] && lib_path="$lib_path:$(dirname "$pcre")"
  lua_share="$root/usr/share/lua/5.1/?.lua;"
  lua_from="build/nginx-lua"
fi
[ -f "$lua_mod" ] && [ -f "$ndk_mod" ] || die "no ngx_http_lua_module.so / ndk_http_module.so"
unresolved=$(LD_LIBRARY_PATH=$lib_path ldd "$lua_mod" | grep 'not found')
[ -z "$unresolved" ] || die "$lua_mod: $unresolved"
[ -f "$so" ] || die "no $so (scripts/build.sh luajit builds it)"

# --- prefix, port, configuration --------------------------------------------------------
prefix=$(mktemp -d /tmp/nginx-check.XXXXXX) || die "mktemp"
nginx_pid=""
cleanup() { # after a failure: kill our master and its workers (they outlive a killed master)
  if [ -n "$nginx_pid" ] && kill -0 "$nginx_pid" 2>/dev/null; then
    kill -KILL $(ps -o pid= --ppid "$nginx_pid") "$nginx_pid" 2>/dev/null
    wait "$nginx_pid" 2>/dev/null
  fi
  if [ "${NGINX_KEEP:-0}" = 1 ]; then echo "nginx: prefix kept in $prefix"; else rm -rf "$prefix"; fi
}
trap cleanup EXIT
mkdir -p "$prefix/lib" "$prefix/tmp" "$prefix/cache" || die "mkdir in $prefix"
cp "$so" "$prefix/lib/funcs.so" || die "cp $so"
# The registry and the Lua files too: the workers (user nobody when run as root) may not be
# able to read a checkout under /root.
cp -r examples/app "$prefix/app" && cp -r lua "$prefix/lua" || die "cp registry"
if [ -n "$lua_share" ]; then # the private copy's resty.core, likewise
  cp -r "$root/usr/share/lua/5.1" "$prefix/resty" || die "cp resty"
  lua_share="$prefix/resty/?.lua;"
fi

# Run as root, nginx's workers switch to `user` (the built-in default is nobody): say so
# explicitly and give that user the prefix (temp files) and funcs' artefact cache, which
# must belong to the user who runs it. Workers need no more: what they read is in the prefix.
user_line=""
if [ "$(id -u)" -eq 0 ]; then
  user_line="user nobody nogroup;"
  chmod -R a+rX "$prefix" && chown nobody:nogroup "$prefix/cache" "$prefix/tmp" || die "chown"
fi

port=""
for _ in $(seq 50); do # a port nothing answers on (a bind race with others is unlikely)
  p=$((20000 + RANDOM % 40000))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || die "no free port"

cat >"$prefix/nginx.conf" <<EOF
# Written by scripts/nginx-check.sh.
daemon off;
master_process on;
worker_processes 2;
$user_line
pid $prefix/nginx.pid;
error_log $prefix/error.log notice;

load_module $ndk_mod;
load_module $lua_mod;

# nginx clears the environment of its workers; funcs' artefact cache goes to the prefix.
env FUNCS_CACHE_DIR=$prefix/cache;
env FUNCS_QUIET=1;

events { worker_connections 256; }

http {
  access_log off;
  client_body_temp_path $prefix/tmp/body;
  proxy_temp_path $prefix/tmp/proxy;
  fastcgi_temp_path $prefix/tmp/fastcgi;
  uwsgi_temp_path $prefix/tmp/uwsgi;
  scgi_temp_path $prefix/tmp/scgi;
  default_type text/plain;

  lua_package_cpath "$prefix/lib/?.so;;";
  lua_package_path "$prefix/lua/?.lua;$lua_share;";

  # Per worker, after the fork: the registry, its pools and threads live in this worker.
  init_worker_by_lua_block {
    funcs = require("funcs")
    assert(funcs.load("$prefix/app"))
  }

  server {
    listen 127.0.0.1:$port;

    # /compute?a=6&b=7 -> 42 (runs on this worker's thread: see the README)
    location = /compute {
      content_by_lua_block {
        local v, err = funcs.call("examples:compute", tonumber(ngx.var.arg_a), tonumber(ngx.var.arg_b))
        if err then ngx.status = 500; ngx.say(err:kind(), " ", tostring(err)); return end
        ngx.say(v)
      }
    }
    location = /answers {
      content_by_lua_block {
        ngx.say(funcs.call("examples:answer"), " ", funcs.call("examples:answer_file"), " ",
          funcs.call("examples:answer_raw"))
      }
    }
    location = /tags {
      content_by_lua_block {
        local users = {
          { id = 1, name = "Alice", tags = { "admin", "dev" }, active = true },
          { id = 2, name = "Bob", tags = {}, active = false },
          { id = 3, name = "Carol", tags = { "ops" }, active = true },
        }
        ngx.say(table.concat(assert(funcs.call("examples:aggregate_tags", users)), ","))
      }
    }
    # A bad call is a value, not a Lua error: kind and message.
    location = /error {
      content_by_lua_block {
        local v, err = funcs.call("examples:compute", 6, "seven")
        ngx.say(tostring(v), " ", err:kind(), " ", tostring(err))
      }
    }
    # funcs.async, polled without blocking the worker: ngx.sleep yields to the event loop.
    location = /async {
      content_by_lua_block {
        local f = assert(funcs.async("examples:compute", tonumber(ngx.var.arg_a), tonumber(ngx.var.arg_b)))
        while not f:is_complete() do ngx.sleep(0.001) end
        local v, err = f:result()
        ngx.say(tostring(v), " ", tostring(err))
      }
    }
  }
}
EOF

# --- start --------------------------------------------------------------------------------
log=$prefix/error.log
fail() {
  echo "nginx: FAILED: $*"
  echo "--- $log: first errors ---"
  grep -m 3 -A 2 -E '\[(emerg|alert|crit|error)\]' "$log"
  echo "--- $log: tail ---"
  tail -n 15 "$log" 2>/dev/null
  exit 1
}
LD_LIBRARY_PATH=$lib_path nginx -p "$prefix" -c "$prefix/nginx.conf" -e "$log" \
  >>"$prefix/stdout.log" 2>&1 &
nginx_pid=$!
url=http://127.0.0.1:$port
ready=""
for _ in $(seq 300); do # up to 30 s: a cold artefact cache compiles the registry first
  kill -0 "$nginx_pid" 2>/dev/null || fail "nginx exited at start"
  if curl -s -o /dev/null --max-time 5 "$url/answers"; then ready=1; break; fi
  sleep 0.1
done
[ -n "$ready" ] || fail "no answer on $url within 30 s"
workers=$(ps -o pid= --ppid "$nginx_pid" | xargs)

# --- answers --------------------------------------------------------------------------------
errors=0
expect() { # path, status, body (without the newline ngx.say adds: the body must be "$3\n")
  local got status
  got=$(curl -s --max-time 10 -w '|%{http_code}' "$url$1")
  status=${got##*|}
  got=${got%|*}
  if [ "$status" != "$2" ] || [ "$got" != "$3"$'\n' ]; then
    echo "GET $1: expected $2 $(printf %q "$3"$'\n'), got $status $(printf %q "$got")"
    errors=$((errors + 1))
  fi
}
expect "/compute?a=6&b=7" 200 "42"
expect "/compute?a=6" 500 "INVALID failed to call \`examples:compute\`: argument 2 (b): expected u32, got nil"
expect "/answers" 200 "42 42 42"
expect "/tags" 200 "admin,dev,ops"
expect "/error" 200 "nil INVALID failed to call \`examples:compute\`: argument 2 (b): expected u32, got string"
expect "/async?a=6&b=7" 200 "42 nil"
[ "$errors" -eq 0 ] || fail "$errors wrong answer(s)"

# --- load -----------------------------------------------------------------------------------
wrk_out=$(wrk -t2 -c16 -d"${wrk_secs}s" "$url/compute?a=6&b=7" 2>&1)
echo "$wrk_out"
requests=$(awk '/requests in/ {print $1}' <<<"$wrk_out")
rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$wrk_out")
non2xx=$(awk -F': *' '/Non-2xx or 3xx responses/ {print $2}' <<<"$wrk_out")
sock=$(sed -n 's/.*Socket errors: \(.*\)/\1/p' <<<"$wrk_out")
[ -n "$requests" ] && [ "$requests" -gt 0 ] || fail "wrk made no requests"
[ -z "$non2xx" ] || fail "wrk: $non2xx non-2xx responses"
[ -z "$sock" ] || fail "wrk: socket errors: $sock"
expect "/compute?a=6&b=7" 200 "42"
[ "$errors" -eq 0 ] || fail "wrong answer after the load"

# --- stop -----------------------------------------------------------------------------------
stop_start=$(date +%s.%N)
kill -QUIT "$nginx_pid"
for _ in $(seq $((stop_secs * 10))); do
  kill -0 "$nginx_pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$nginx_pid" 2>/dev/null; then
  fail "still running ${stop_secs} s after SIGQUIT (killed)" # cleanup kills it
fi
wait "$nginx_pid"
rc=$?
stop_secs_taken=$(awk -v a="$stop_start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}')
[ "$rc" -eq 0 ] || fail "nginx exited with status $rc"
for w in $workers; do
  kill -0 "$w" 2>/dev/null && fail "worker $w outlived the master"
  grep -q "worker process $w exited with code 0" "$log" || fail "worker $w did not exit with code 0"
done

# --- error log ------------------------------------------------------------------------------
bad=$(grep -E '\[(emerg|alert|crit|error)\]|exited on signal|core dumped|panicked|undefined symbol' "$log")
[ -z "$bad" ] || fail "the error log has: $(head -n 5 <<<"$bad")"

warnings=$(grep '^funcs: ' "$log")
[ -z "$warnings" ] || { echo "nginx: warning: funcs wrote:"; sed 's/^/  /' <<<"$warnings"; }

echo "nginx: ok ($requests requests, $rps req/s, 0 errors; Lua module from $lua_from;" \
  "workers $workers stopped in ${stop_secs_taken} s; $(grep -c . <<<"${warnings:-}" || true) funcs warning(s))"
