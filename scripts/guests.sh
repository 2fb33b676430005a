#!/usr/bin/env bash
# Builds the guests that come from other toolchains into build/guests/:
#   python/  a CPython component (componentize-py, PyPI) with its registry.
# Skips the build when the sources did not change since the last one.
set -euo pipefail
cd "$(dirname "$0")/.."

COMPONENTIZE_PY_VERSION=0.25.1
src=spec/fixtures/python
out=build/guests/python

stamp=$(cat "$src/app.py" "$src/wit/guest.wit" "$src/_index.yaml.in" "$0" | sha256sum | cut -d' ' -f1)
if [ -f "$out/guest.wasm" ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
    exit 0
fi

if ! componentize-py --version 2>/dev/null | grep -q "$COMPONENTIZE_PY_VERSION"; then
    echo "guests.sh: installing componentize-py $COMPONENTIZE_PY_VERSION from PyPI" >&2
    python3 -m pip install --quiet "componentize-py==$COMPONENTIZE_PY_VERSION"
fi

rm -rf "$out"
mkdir -p "$out/scratch"
cp -r "$src/data" "$src/secret.txt" "$out/"
componentize-py -d "$src/wit" -w guest componentize -p "$src" app -o "$out/guest.wasm" >/dev/null
hash=$(sha256sum "$out/guest.wasm" | cut -d' ' -f1)
sed "s/@HASH@/$hash/" "$src/_index.yaml.in" > "$out/_index.yaml"
echo "$stamp" > "$out/.stamp"
echo "guests.sh: built $out/guest.wasm ($(du -h "$out/guest.wasm" | cut -f1))" >&2
