#!/usr/bin/env bash
# Builds the guests that come from other toolchains into build/guests/:
#   python/       a CPython component (componentize-py, PyPI) with its registry;
#   python-http/  a CPython wasi:http/incoming-handler, against wasmtime-wasi-http's WIT;
#   python-host/  a CPython component calling its host (funcs.host, wippy:runtime/funcs).
# Skips a build when its sources did not change since the last one.
set -euo pipefail
cd "$(dirname "$0")/.."

COMPONENTIZE_PY_VERSION=0.25.1

# componentize-py lives in a venv under build/ (Debian's own Python refuses a system-wide
# `pip install`), made on first use.
VENV=build/tools/venv
ensure_componentize_py() {
    if ! "$VENV/bin/componentize-py" --version 2>/dev/null | grep -q "$COMPONENTIZE_PY_VERSION"; then
        echo "guests.sh: installing componentize-py $COMPONENTIZE_PY_VERSION from PyPI into $VENV" >&2
        [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
        "$VENV/bin/python" -m pip install --quiet "componentize-py==$COMPONENTIZE_PY_VERSION"
    fi
    export PATH="$PWD/$VENV/bin:$PATH"
}

# build <src> <out> <wasm name> <wit dir> <world> [files to copy...]
build() {
    local src=$1 out=$2 wasm=$3 wit=$4 world=$5
    shift 5
    local stamp
    stamp=$(cat "$src/app.py" "$src/_index.yaml.in" "$0" $(find "$wit" -name '*.wit' | sort) |
        sha256sum | cut -d' ' -f1)
    if [ -f "$out/$wasm" ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
        return 0
    fi
    ensure_componentize_py
    rm -rf "$out"
    mkdir -p "$out/scratch"
    for f in "$@"; do cp -r "$src/$f" "$out/"; done
    componentize-py -d "$wit" -w "$world" componentize -p "$src" app -o "$out/$wasm" >/dev/null
    local hash
    hash=$(sha256sum "$out/$wasm" | cut -d' ' -f1)
    sed "s/@HASH@/$hash/" "$src/_index.yaml.in" > "$out/_index.yaml"
    echo "$stamp" > "$out/.stamp"
    echo "guests.sh: built $out/$wasm ($(du -h "$out/$wasm" | cut -f1))" >&2
}

build spec/fixtures/python build/guests/python guest.wasm spec/fixtures/python/wit guest \
    data secret.txt

build spec/fixtures/python-host build/guests/python-host guest.wasm spec/fixtures/python-host/wit \
    guest

# The wasi:http WIT our host implements, from the wasmtime-wasi-http crate's sources.
http_wit=$(cargo metadata --format-version 1 --locked 2>/dev/null | python3 -c '
import json, os, sys
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == "wasmtime-wasi-http":
        print(os.path.join(os.path.dirname(p["manifest_path"]), "wit"))
        break')
build spec/fixtures/python-http build/guests/python-http handler.wasm "$http_wit" \
    wasi:http/proxy@0.2.12
