//! funcs: run WebAssembly functions declared in a YAML registry from Lua.
//!
//! `require("funcs")` gives a table with `load`, `call` and `errors`; see the README for the
//! API and `SPEC.md` for the behaviour. This file only assembles the module: the registry,
//! compilation, values and calls live in their own modules, and only `lua` and `value` touch
//! mlua (`function.rs` hands a Lua stack through to `value::direct`).

pub mod compile;
pub mod engine;
pub mod error;
pub mod function;
pub mod http;
pub mod limits;
pub mod lua;
pub mod pool;
pub mod registry;
pub mod runtime;
pub mod signature;
pub mod sync;
pub mod value;
pub mod wasi;

use mlua::prelude::*;

/// The module entry point: `luaopen_funcs` when built with the `module` feature.
///
/// # Errors
/// Only Lua's own failures (out of memory).
#[cfg_attr(feature = "module", mlua::lua_module(name = "funcs"))]
pub fn funcs(lua: &Lua) -> LuaResult<LuaTable> {
    lua::module(lua)
}
