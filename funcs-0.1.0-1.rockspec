-- `luarocks make` builds funcs.so with cargo through luarocks-build-rust-mlua (the backend of
-- the mlua world) for the Lua that luarocks runs for: `--lua-version=5.1` to `5.5`, or LuaJIT
-- (a 5.1 setup whose interpreter is luajit). The backend picks mlua's feature for that Lua
-- (lua51 to lua55, luajit) and adds `module`; the Lua files of lua/ come along.
-- Needs the Rust toolchain (cargo); the first build compiles wasmtime (minutes). A binary rock
-- (`luarocks pack funcs`) installs without it: see the README, "Install".
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
   "lua >= 5.1, < 5.6",
}
build_dependencies = {
   "luarocks-build-rust-mlua >= 0.2.6",
}
test_dependencies = {
   "busted",
}
build = {
   type = "rust-mlua",
   -- target/release/libfuncs.so becomes funcs.so in the tree's library folder.
   modules = { "funcs" },
   -- The crate's default feature is the Lua of the in-process tests (lua54): off, so that
   -- the backend's feature for the Lua at hand is the only one.
   default_features = false,
   features = { "module" },
   install = {
      lua = {
         "lua/funcs.d.lua", -- the type definitions, for the Lua language server
         ["funcs.await"] = "lua/funcs/await.lua",
         ["funcs.luv"] = "lua/funcs/luv.lua",
         ["funcs.cqueues"] = "lua/funcs/cqueues.lua",
      },
   },
}
test = {
   type = "busted",
}
