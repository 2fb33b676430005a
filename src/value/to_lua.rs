//! [`Value`] to Lua values, on the Lua thread.

use mlua::prelude::*;

use super::Value;

/// Builds the Lua value for `value`.
///
/// # Errors
/// Only Lua's own failures (out of memory).
pub fn to_lua(lua: &Lua, value: &Value) -> LuaResult<LuaValue> {
    to_lua_with(lua, value, &|_, _| Ok(LuaValue::Nil))
}

/// Makes resource handles (SPEC section 15) through `handle`, at any depth.
///
/// # Errors
/// As [`to_lua`], and `handle`'s.
pub fn to_lua_with(lua: &Lua, value: &Value, handle: &Handles<'_>) -> LuaResult<LuaValue> {
    Ok(match value {
        Value::Nil | Value::Unsupported(_) => LuaValue::Nil,
        Value::Handle(h) => handle(lua, h)?,
        Value::Lua(r) => resource(lua, r)?,
        Value::Bool(b) => LuaValue::Boolean(*b),
        Value::Int(i) => int(*i),
        Value::Float(f) => LuaValue::Number(*f),
        Value::Bytes(b) => LuaValue::String(lua.create_string(b)?),
        Value::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, to_lua_with(lua, item, handle)?)?;
            }
            LuaValue::Table(t)
        }
        Value::Map(pairs) => {
            let t = lua.create_table_with_capacity(0, pairs.len())?;
            for (k, v) in pairs {
                let v = to_lua_with(lua, v, handle)?;
                // Field and case names are UTF-8: pushed as they are, without a string handle.
                match k {
                    Value::Bytes(b) => match std::str::from_utf8(b) {
                        Ok(name) => t.raw_set(name, v)?,
                        Err(_) => t.raw_set(lua.create_string(b)?, v)?,
                    },
                    k => t.raw_set(to_lua_with(lua, k, handle)?, v)?,
                }
            }
            LuaValue::Table(t)
        }
    })
}

/// The Lua value of a resource Lua defines (kept by `lua/host.rs` while it crosses).
fn resource(lua: &Lua, r: &crate::host::resource::LuaRef) -> LuaResult<LuaValue> {
    let values: LuaTable = lua.named_registry_value(RESOURCES)?;
    match values.raw_get::<LuaValue>(r.rep)? {
        LuaValue::Nil => Err(LuaError::runtime(format!("{r:?} is gone"))),
        v => Ok(v),
    }
}

/// The name of the registry table of the Lua values crossing as resources, by rep.
pub const RESOURCES: &str = "funcs.resources";

/// How a resource handle becomes a Lua value.
pub type Handles<'a> =
    dyn Fn(&Lua, &std::sync::Arc<crate::instance::Handle>) -> LuaResult<LuaValue> + 'a;

/// An integer as Lua holds it (Lua 5.1 and LuaJIT turn it into a float when pushing it).
#[allow(clippy::unnecessary_cast)]
fn int(i: i64) -> LuaValue {
    LuaValue::Integer(i as LuaInteger)
}
