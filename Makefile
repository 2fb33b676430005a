# The two commands of the README: `make demo` and `make test`.
.PHONY: demo test build bench bench-http soak clean rock rock-install clean-room

demo:
	scripts/demo.sh

test:
	scripts/test.sh

build:
	scripts/build.sh lua5.4

bench:
	scripts/bench.sh

# wrk against funcs' two HTTP forms and `wasmtime serve` (builds wasmtime-cli once).
bench-http:
	scripts/bench-http.sh

# A million calls on each path (a hundred thousand over HTTP), resident memory before and after.
soak:
	scripts/build.sh lua5.4 >/dev/null
	LUA_CPATH="build/lua5.4/?.so;;" lua5.4 bench/soak.lua

clean:
	rm -rf build target

# Not part of `make test`: `make demo` and `make test` of the committed HEAD in a fresh Debian
# bookworm chroot (needs root; the base is kept in build/clean-room, see the script's header).
# make clean-room CLEAN_ROOM_FLAGS=--fresh   (or --prepare-only)
clean-room:
	scripts/clean-room.sh $(CLEAN_ROOM_FLAGS)

# For `luarocks make` (funcs-0.1.0-1.rockspec): LUA is the interpreter luarocks builds for.
LUA ?= lua5.4
ROCK_LUA = $(shell $(LUA) -e 'print(jit and "luajit" or ({["Lua 5.1"] = "lua5.1", ["Lua 5.4"] = "lua5.4"})[_VERSION] or "unsupported")')

rock:
	scripts/build.sh $(ROCK_LUA)

rock-install:
	mkdir -p "$(INST_LIBDIR)" "$(INST_LUADIR)/funcs"
	cp build/$(ROCK_LUA)/funcs.so "$(INST_LIBDIR)/funcs.so"
	cp lua/funcs/await.lua "$(INST_LUADIR)/funcs/await.lua"
	cp lua/funcs.d.lua "$(INST_LUADIR)/funcs.d.lua"
