# The two commands of the README: `make demo` and `make test`.
.PHONY: demo test build bench bench-http soak soak-calls soak-resources fuzz stress clean rock-check nginx-check clean-room

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

# A long life (bench/longlife.lua): 10,000 reloads, each registering the host interface again,
# with calls on every pool kind and with pool.reuse; resident memory, descriptors, threads, Lua
# registry and memory, live pools and instances after 500 and at the end; fails on growth.
# make soak SOAK_RELOADS="2000 200" for a shorter one.
soak:
	scripts/build.sh lua5.4 >/dev/null
	LUA_CPATH="build/lua5.4/?.so;;" lua5.4 bench/longlife.lua $(SOAK_RELOADS)

# A million calls on each path (direct, general, async, HTTP), resident memory before and after:
# 100,000 create/drop cycles of resource handles and instances (SPEC 15): resident memory flat.
soak-resources:
	scripts/build.sh lua5.4 >/dev/null
	scripts/guests.sh c-res
	FUNCS_CACHE_DIR=$(PWD)/build/cache LUA_CPATH="build/lua5.4/?.so;;" lua5.4 bench/resources.lua $(SOAK_ARGS)

# make soak-calls SOAK_ARGS="1000000 http" runs one path.
soak-calls:
	scripts/build.sh lua5.4 >/dev/null
	LUA_CPATH="build/lua5.4/?.so;;" lua5.4 bench/soak.lua $(SOAK_ARGS)

# The fuzz campaign over the whole Lua surface (fuzz/surface.lua in child processes of
# FUZZ_CHUNK executions each; crashes, hangs, panics and unclean errors are reported with their
# seed, taken from the clock unless FUZZ_SEED=N is given to replay a campaign; see
# scripts/fuzz.sh): make fuzz FUZZ_EXECS=5000000 FUZZ_LUA=luajit
FUZZ_EXECS ?= 1000000
FUZZ_LUA ?= lua5.4
fuzz:
	scripts/build.sh $(FUZZ_LUA) >/dev/null
	FUZZ_LUA=$(FUZZ_LUA) scripts/fuzz.sh $(FUZZ_EXECS)

# wrk -t2 -c32 for 30 s against an HTTP endpoint while its registry is reloaded every 100 ms:
# 0 errors, 0 lost calls (scripts/reload-load.sh; installs wrk when missing).
stress:
	scripts/build.sh lua5.4 >/dev/null
	scripts/reload-load.sh 30

clean:
	rm -rf build target

# Not part of `make test`: `make demo` and `make test` of the committed HEAD in a fresh Debian
# bookworm chroot (needs root; the base is kept in build/clean-room, see the script's header).
# make clean-room CLEAN_ROOM_FLAGS=--fresh   (or --prepare-only)
clean-room:
	scripts/clean-room.sh $(CLEAN_ROOM_FLAGS)

# The rock for each interpreter (or ROCK_LUAS="lua5.4"): `luarocks make`, `luarocks pack`, and
# the binary rock installed without a Rust toolchain on PATH (scripts/rock-check.sh).
ROCK_LUAS ?= lua5.4 lua5.3 lua5.2 lua5.1 luajit
rock-check:
	scripts/rock-check.sh $(ROCK_LUAS)

# funcs in nginx with the Lua module, under wrk (scripts/nginx-check.sh).
nginx-check:
	scripts/build.sh luajit >/dev/null
	scripts/nginx-check.sh
