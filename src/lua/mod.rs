//! The `funcs` table Lua gets from `require("funcs")`, and everything that touches mlua
//! userdata.
//!
//! API misuse (a non-string ID) raises a Lua error; failures of loading and calling return
//! `nil, err` with an [`error::ErrorObject`].

pub mod error;

use std::path::Path;
use std::sync::Arc;

use mlua::prelude::*;

use crate::error::Error;
use crate::registry::Summary;
use crate::runtime::Runtime;
use crate::value::{self, Value};

/// Builds the module table around a new [`Runtime`].
///
/// # Errors
/// Only Lua's own failures (out of memory).
pub fn module(lua: &Lua) -> LuaResult<LuaTable> {
    let runtime = Arc::new(Runtime::default());
    let funcs = lua.create_table()?;

    let rt = runtime.clone();
    funcs.set(
        "load",
        lua.create_function(move |lua, path: LuaValue| {
            let path = string_arg(&path, 1, "load")?;
            match rt.load(Path::new(&path)) {
                Ok(summary) => summary_table(lua, &summary)?.into_lua_multi(lua),
                Err(e) => error::fail(lua, e),
            }
        })?,
    )?;

    let rt = runtime.clone();
    funcs.set(
        "call",
        lua.create_function(move |lua, mut args: LuaMultiValue| {
            let id = args.pop_front().unwrap_or(LuaValue::Nil);
            let id = string_arg(&id, 1, "call")?;
            match call(&rt, &id, &args) {
                Ok(v) => value::to_lua(lua, &v)?.into_lua_multi(lua),
                Err(e) => error::fail(lua, e),
            }
        })?,
    )?;

    funcs.set("errors", error::kinds(lua)?)?;
    funcs.set("_VERSION", env!("CARGO_PKG_VERSION"))?;
    Ok(funcs)
}

/// Converts the Lua arguments (on this thread) and calls `id`.
fn call(runtime: &Runtime, id: &str, args: &LuaMultiValue) -> Result<Value, Error> {
    let function = runtime.function(id)?;
    let mut values = Vec::with_capacity(args.len());
    for (i, arg) in args.iter().enumerate() {
        values.push(value::from_lua(arg).map_err(|e| function.arg_error(i, e))?);
    }
    function.call(&values)
}

/// A string argument, or a Lua error in the style of `luaL_argerror`.
fn string_arg(v: &LuaValue, n: usize, func: &str) -> LuaResult<String> {
    match v {
        LuaValue::String(s) => Ok(s.to_string_lossy()),
        other => Err(LuaError::runtime(format!(
            "bad argument #{n} to '{func}' (string expected, got {})",
            // Lua's own `type()` names: integers are numbers too.
            if other.is_integer() {
                "number"
            } else {
                other.type_name()
            }
        ))),
    }
}

/// `{entries = {"ns:a", ...}, skipped = {{id = "ns:b", kind = "function.lua"}, ...}}`.
fn summary_table(lua: &Lua, summary: &Summary) -> LuaResult<LuaTable> {
    let t = lua.create_table()?;
    t.set(
        "entries",
        lua.create_sequence_from(summary.entries.iter().cloned())?,
    )?;
    let skipped = lua.create_table()?;
    for (id, kind) in &summary.skipped {
        let item = lua.create_table()?;
        item.set("id", id.as_str())?;
        item.set("kind", kind.as_str())?;
        skipped.push(item)?;
    }
    t.set("skipped", skipped)?;
    Ok(t)
}
