-- `luarocks make` builds funcs.so with cargo for the Lua that luarocks runs for
-- (`--lua-version=5.4`, `5.1`, or a LuaJIT setup) and installs it with the Lua files of lua/.
-- Needs the Rust toolchain (cargo); the first build compiles wasmtime (minutes).
rockspec_format = "3.0"
package = "funcs"
version = "0.1.0-1"
source = {
   url = "git+https://example.invalid/funcs.git", -- `luarocks make` builds the checkout at hand
}
description = {
   summary = "Run WebAssembly functions declared in a YAML registry from Lua",
   detailed = [[
      Lua values go in, become WIT component values, run in a sandboxed wasmtime instance
      from a worker pool, and come back as Lua values. Written in Rust on mlua and wasmtime.
   ]],
   license = "MIT",
}
dependencies = {
   "lua >= 5.1, < 5.5",
}
test_dependencies = {
   "busted",
}
build = {
   type = "make",
   build_target = "rock",
   build_variables = {
      LUA = "$(LUA)",
   },
   install_target = "rock-install",
   install_variables = {
      LUA = "$(LUA)",
      INST_LIBDIR = "$(LIBDIR)",
      INST_LUADIR = "$(LUADIR)",
   },
}
test = {
   type = "busted",
}
