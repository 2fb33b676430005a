#!/usr/bin/env bash
# Runs every test: the Rust tests (in-process, vendored Lua), then the busted specs against
# the real funcs.so under a stock interpreter. Ends with both runners' summary lines and an
# exit code that is non-zero when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh || exit 1
# Guests from other toolchains (componentize-py): built once, reused while unchanged.
scripts/guests.sh || exit 1
# The Prometheus parser spec/metrics_spec.lua reads funcs.metrics() with (PyPI, in the
# project's venv, which guests.sh made).
[ -x build/tools/venv/bin/python ] || python3 -m venv build/tools/venv || exit 1
build/tools/venv/bin/python -c 'import prometheus_client' 2>/dev/null ||
  build/tools/venv/bin/python -m pip install --quiet "prometheus-client==0.26.0" || exit 1
# Compiled artefacts of the test runs stay in the build folder.
export FUNCS_CACHE_DIR="$PWD/build/cache"

log=$(mktemp -d)
status=0

cargo test --release --locked 2>&1 | tee "$log/cargo.txt"
cargo_status=${PIPESTATUS[0]}
[ "$cargo_status" -eq 0 ] || status=1

# Lua 5.5: the in-process tests of the Lua surface on mlua's vendored 5.5 (Debian 12 has no
# 5.5 interpreter for busted or luarocks).
cargo test --release --locked --no-default-features --features lua55 --test lua --test values_prop 2>&1 |
  tee "$log/cargo55.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

# Every interpreter: the module, busted's specs, then the rock (`luarocks make` finds the
# module's build fresh, so it compiles nothing) and, for LuaJIT, nginx with the Lua module.
busted_status=0
: >"$log/rock.txt"
for lua in lua5.4 lua5.3 lua5.2 lua5.1 luajit; do
  if ! scripts/build.sh "$lua"; then
    echo "build failed" > "$log/busted-$lua.txt"
    status=1
    continue
  fi
  FUNCS_LUA=$lua busted --lua="$lua" --cpath="build/$lua/?.so" --lpath="lua/?.lua" \
    --output=utfTerminal spec 2>&1 | tee "$log/busted-$lua.txt"
  [ "${PIPESTATUS[0]}" -eq 0 ] || busted_status=1
  scripts/rock-check.sh "$lua" 2>&1 | tee -a "$log/rock.txt"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  if [ "$lua" = luajit ]; then
    scripts/nginx-check.sh 2>&1 | tee -a "$log/rock.txt"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  fi
done
[ "$busted_status" -eq 0 ] || status=1

echo
echo "== summary"
grep -E '^test result:' "$log/cargo.txt" || echo "cargo test: no summary (build failed?)"
grep -E '^test result:' "$log/cargo55.txt" | sed 's/^/(Lua 5.5) /' ||
  echo "cargo test (Lua 5.5): no summary (build failed?)"
passed=0
failed=0
for f in "$log"/busted-*.txt; do
  [ -f "$f" ] || continue
  line=$(grep -E '[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors?' "$f" | tail -n 1)
  echo "busted ($(basename "$f" .txt | sed 's/busted-//')): ${line:-no summary}"
  # What failed, named in the summary (CI keeps only the end of the output).
  grep -E -A1 '^(Failure|Error) → ' "$f" | grep -v '^--$' | sed 's/^/    /' | head -n 20
  if [ -n "$line" ]; then
    set -- $(echo "$line" | grep -oE '[0-9]+' | head -n 3)
    passed=$((passed + $1))
    failed=$((failed + $2 + $3))
  else
    failed=$((failed + 1))
  fi
done
while read -r line; do
  echo "$line"
  case "$line" in
    *": ok"*) passed=$((passed + 1)) ;;
    *) failed=$((failed + 1)) ;;
  esac
done < <(grep -E '^(rock \(|binary rock \(|nginx: (ok|FAILED))' "$log/rock.txt")
for n in $(cat "$log/cargo.txt" "$log/cargo55.txt" | grep -E '^test result:' | sed -E 's/.* ([0-9]+) passed; ([0-9]+) failed.*/\1 \2/' | tr ' ' ':'); do
  passed=$((passed + ${n%%:*}))
  failed=$((failed + ${n##*:}))
done
rm -rf "$log"
# A build failure has no summary line to count: count it as a failure.
[ "$cargo_status" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1
[ "$failed" -eq 0 ] || status=1
echo "${passed} passed, ${failed} failed"
exit $status
