-- A stand-in for the LuaRocks build backend `luarocks-build-rust-mlua`, for machines that
-- cannot reach the LuaRocks server (the project's CI reaches only crates.io, PyPI, npm and
-- Debian). It implements the part of that backend's rockspec contract funcs-0.1.0-1.rockspec
-- uses, so that `luarocks make --deps-mode=none` builds the way it does with the real backend:
--
--   build.type = "rust-mlua"
--   build.modules = { "name" } or { name = "crate_lib" }   target/release/lib<crate_lib>.so
--                                                          becomes <name>.so in the tree
--   build.default_features = false                         cargo --no-default-features
--   build.features = { ... } or "..."                      added to the Lua's own feature
--   build.target_path = "target"                           cargo --target-dir
--
-- The Lua's own feature: lua51, lua52, lua53, lua54 or lua55 from the Lua luarocks runs for, luajit
-- when that Lua is LuaJIT. scripts/rock-check.sh puts this folder on LUA_PATH only when the
-- real backend is not installed (`luarocks show luarocks-build-rust-mlua` fails).
local cfg = require("luarocks.core.cfg")
local dir = require("luarocks.dir")
local fs = require("luarocks.fs")
local path = require("luarocks.path")
local util = require("luarocks.util")

local backend = {}

local function lua_feature()
  local v = cfg.lua_version
  if v == "5.1" then
    local jit = cfg.luajit_version or (util.get_luajit_version and util.get_luajit_version())
    return jit and "luajit" or "lua51"
  end
  local known = { ["5.2"] = "lua52", ["5.3"] = "lua53", ["5.4"] = "lua54", ["5.5"] = "lua55" }
  return known[v], ("Lua %s is not supported"):format(tostring(v))
end

function backend.run(rockspec, no_install)
  local build = rockspec.build or {}
  if not fs.is_tool_available("cargo", "Cargo") then
    return nil, "cargo was not found: this rock is written in Rust and needs a Rust toolchain"
  end
  local feature, err = lua_feature()
  if not feature then return nil, err end
  local features = { feature }
  if type(build.features) == "string" then
    features[#features + 1] = build.features
  elseif type(build.features) == "table" then
    for _, f in ipairs(build.features) do features[#features + 1] = f end
  end
  local target = build.target_path or "target"
  local cmd = { "cargo", "build", "--release", "--target-dir=" .. fs.Q(target) }
  if build.default_features == false then cmd[#cmd + 1] = "--no-default-features" end
  cmd[#cmd + 1] = "--features=" .. fs.Q(table.concat(features, ","))
  if not fs.execute(table.concat(cmd, " ")) then
    return nil, "cargo build failed"
  end
  if no_install or not build.modules then return true end

  local libdir = path.lib_dir(rockspec.name, rockspec.version)
  fs.make_dir(libdir)
  for key, crate_lib in pairs(build.modules) do
    local name = type(key) == "number" and crate_lib or key
    local from = dir.path(target, "release", "lib" .. crate_lib .. "." .. cfg.external_lib_extension)
    local to = dir.path(libdir, name .. "." .. cfg.lib_extension)
    local ok, copy_err = fs.copy(from, to, "exec")
    if not ok then
      return nil, ("could not install %s as %s: %s"):format(from, to, tostring(copy_err))
    end
  end
  return true
end

return backend
