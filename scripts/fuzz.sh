#!/usr/bin/env bash
# A fuzz campaign over funcs' Lua surface (SPEC section 13): fuzz/surface.lua in child
# interpreters, a chunk of executions each, so that a crash, abort or hang of one child is
# recorded (with its seed and the operation it was running) and the campaign goes on.
#   scripts/fuzz.sh [total executions, default 1000000]
# Environment:
#   FUZZ_SEED           base seed (child k runs seed + k; default: the clock, in seconds, printed
#                       first); a child is replayed with
#                       FUZZ_SEED=<its seed> FUZZ_EXECS=<its chunk> $FUZZ_LUA fuzz/surface.lua
#                       (with LUA_CPATH="$FUZZ_SO_DIR/?.so;;"; the program runs on every Lua)
#   FUZZ_CHUNK          executions per child (200000)
#   FUZZ_STALL          seconds a child may spend in one operation before it counts as hung (120)
#   FUZZ_CHILD_TIMEOUT  seconds a child may run in all before it counts as hung (3600)
#   FUZZ_SO             the module under test (build/$FUZZ_LUA/funcs.so); it is copied to
#   FUZZ_SO_DIR         (/tmp/fuzz-so/$FUZZ_LUA) first and loaded from there, so that a rebuild during the
#                       campaign does not swap it under the children
#   FUZZ_OUT            the folder for the children's output and the findings (build/fuzz/<seed>)
#   FUZZ_LUA            the interpreter (lua5.4; lua5.3, lua5.2, lua5.1, luajit)
# Prints, at the end: executions, children, crashes, hangs, panics, unclean errors (by class),
# clean errors by kind, executions per second. Exits non-zero when any of crashes, hangs,
# panics or unclean errors is not zero.
set -uo pipefail
cd "$(dirname "$0")/.."
total=${1:-${FUZZ_EXECS:-1000000}}
chunk=${FUZZ_CHUNK:-200000}
seed=${FUZZ_SEED:-$(date +%s)}
stall=${FUZZ_STALL:-120}
child_timeout=${FUZZ_CHILD_TIMEOUT:-3600}
lua=${FUZZ_LUA:-lua5.4}
so=${FUZZ_SO:-build/$lua/funcs.so}
so_dir=${FUZZ_SO_DIR:-/tmp/fuzz-so/$lua}
out=${FUZZ_OUT:-build/fuzz/$lua-$seed}

[ -f "$so" ] || { echo "fuzz: no $so (scripts/build.sh $lua builds it)" >&2; exit 2; }
mkdir -p "$so_dir" "$out"
# A new file renamed into place: never rewrite a module that a running process has mapped.
if ! cmp -s "$so" "$so_dir/funcs.so"; then
  cp "$so" "$so_dir/funcs.so.$$" && mv -f "$so_dir/funcs.so.$$" "$so_dir/funcs.so"
fi
export LUA_CPATH="$so_dir/?.so;;"
export FUNCS_CACHE_DIR=${FUNCS_CACHE_DIR:-$PWD/build/cache}
: > "$out/findings.txt"

children=$(( (total + chunk - 1) / chunk ))
echo "fuzz: seed $seed, $lua, $total executions in $children child(ren) of at most $chunk, module $so (run from $so_dir/funcs.so)"
echo "fuzz: module sha256 $(sha256sum "$so_dir/funcs.so" | cut -c1-16)..., output in $out"

crashes=0
hangs=0
panics=0
done_execs=0
started=$(date +%s.%N)
for ((k = 0; k < children; k++)); do
  n=$chunk
  left=$((total - k * chunk))
  [ "$left" -lt "$n" ] && n=$left
  s=$((seed + k))
  base="$out/child-$k"
  : > "$base.state"
  FUZZ_SEED=$s FUZZ_EXECS=$n FUZZ_STATE="$base.state" FUZZ_FINDINGS="$out/findings.txt" \
    "$lua" fuzz/surface.lua > "$base.out" 2> "$base.err" &
  pid=$!
  child_start=$(date +%s)
  hung=""
  # The watchdog: the state file is rewritten before every operation.
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    now=$(date +%s)
    age=$((now - $(stat -c %Y "$base.state")))
    if [ "$age" -gt "$stall" ]; then hung="no new operation for ${age} s"
    elif [ $((now - child_start)) -gt "$child_timeout" ]; then hung="child ran over ${child_timeout} s"
    fi
    if [ -n "$hung" ]; then
      kill -KILL "$pid" 2>/dev/null
      break
    fi
  done
  wait "$pid" 2>/dev/null
  rc=$?
  last=$(tr -s ' ' < "$base.state" | head -c 300)
  child_panics=$(grep -a -c "panicked" "$base.err")
  if [ "$child_panics" -eq 0 ] && grep -a -q "RUST_BACKTRACE" "$base.err"; then child_panics=1; fi
  panics=$((panics + child_panics))
  summary=$(grep -a '^fuzz: ' "$base.out" | tail -n 1)
  if [ -n "$hung" ]; then
    hangs=$((hangs + 1))
    echo "child $k (seed $s): HANG ($hung); last operation: $last"
  elif [ "$rc" -ne 0 ] || [ -z "$summary" ]; then
    crashes=$((crashes + 1))
    what="exit status $rc"
    [ "$rc" -gt 128 ] && what="killed by signal $((rc - 128)) ($(kill -l $((rc - 128)) 2>/dev/null))"
    echo "child $k (seed $s): CRASH ($what); last operation: $last"
    grep -a -v '^FUZZ-FINDING' "$base.err" | grep -a -v '^\s*[0-9]*: \|^\s*at ' | tail -n 8 | sed 's/^/    /'
  else
    echo "child $k (seed $s): $summary, panics $child_panics"
  fi
  if [ "$child_panics" -gt 0 ]; then
    echo "  panics of child $k (seed $s), last operation: $last"
    grep -a -A2 "panicked" "$base.err" | head -n 12 | sed 's/^/    /'
  fi
  if [ -n "$summary" ]; then
    done_execs=$((done_execs + $(grep -a '^@@ executions' "$base.out" | cut -f2)))
  else
    # A child that died: the operations it started.
    done_execs=$((done_execs + $(awk '{print $1 + 0; exit}' "$base.state")))
  fi
done
ended=$(date +%s.%N)

echo
echo "== fuzz summary (seed $seed)"
awk -v execs="$done_execs" -v secs="$(echo "$ended - $started" | bc)" -v children="$children" \
    -v crashes="$crashes" -v hangs="$hangs" -v panics="$panics" -F'\t' '
  /^@@ max_/ { key = substr($1, 4); if ($2 > sum[key]) sum[key] = $2; next }
  /^@@ / { key = substr($1, 4); sum[key] += $2 }
  END {
    printf "executions          %d\n", execs
    printf "wall time           %.1f s (%.0f executions/s)\n", secs, execs / secs
    printf "children            %d\n", children
    printf "crashes             %d\n", crashes
    printf "hangs               %d\n", hangs
    printf "panics              %d\n", panics
    printf "unclean errors      %d\n", sum["unclean"]
    for (k in sum) if (k ~ /^unclean /) printf "  %-40s %d\n", substr(k, 9), sum[k]
    printf "succeeded           %d\n", sum["ok"]
    printf "clean errors by kind:\n"
    printf "  %-40s %d\n", "raised Lua errors (misuse)", sum["raised"]
    for (k in sum) if (k ~ /^kind /) printf "  %-40s %d\n", substr(k, 6), sum[k]
    printf "shutdowns           %d\n", sum["shutdowns"]
    printf "finalizers run      %d\n", sum["finalizers run"]
    printf "metamethods or argument functions run by funcs: %d\n", sum["metamethod or argument function runs"]
    printf "most threads in a child: %d; largest resident memory: %d MiB\n", sum["max_threads"], sum["max_rss_kb"] / 1024
  }' "$out"/child-*.out
echo "most frequent messages (all in $out/child-*.out):"
grep -a -h '^@@ msg ' "$out"/child-*.out | sed 's/^@@ msg //' |
  awk -F'\t' '{ sum[$1] += $2 } END { for (k in sum) printf "%10d  %s\n", sum[k], k }' | sort -rn | head -n 12
if [ -s "$out/findings.txt" ]; then
  echo "findings ($out/findings.txt):"
  # One line per class and message (the first seed that hit it).
  sort -t$'\t' -k1,1 -k5,5 -u "$out/findings.txt" | cut -c1-400 | sed 's/^/  /'
fi
unclean=$(grep -a -h '^@@ unclean	' "$out"/child-*.out | awk -F'\t' '{ s += $2 } END { print s + 0 }')
[ $((crashes + hangs + panics + unclean)) -eq 0 ]
