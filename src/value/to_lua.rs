//! [`Value`] to Lua values, on the Lua thread.

use mlua::prelude::*;

use super::Value;

/// Builds the Lua value for `value`.
///
/// # Errors
/// Only Lua's own failures (out of memory).
pub fn to_lua(lua: &Lua, value: &Value) -> LuaResult<LuaValue> {
    Ok(match value {
        Value::Nil | Value::Unsupported(_) => LuaValue::Nil,
        Value::Bool(b) => LuaValue::Boolean(*b),
        Value::Int(i) => int(*i),
        Value::Float(f) => LuaValue::Number(*f),
        Value::Bytes(b) => LuaValue::String(lua.create_string(b)?),
        Value::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, item)?)?;
            }
            LuaValue::Table(t)
        }
        Value::Map(pairs) => {
            let t = lua.create_table_with_capacity(0, pairs.len())?;
            for (k, v) in pairs {
                let v = to_lua(lua, v)?;
                // Field and case names are UTF-8: pushed as they are, without a string handle.
                match k {
                    Value::Bytes(b) => match std::str::from_utf8(b) {
                        Ok(name) => t.raw_set(name, v)?,
                        Err(_) => t.raw_set(lua.create_string(b)?, v)?,
                    },
                    k => t.raw_set(to_lua(lua, k)?, v)?,
                }
            }
            LuaValue::Table(t)
        }
    })
}

/// An integer as Lua holds it (Lua 5.1 and LuaJIT turn it into a float when pushing it).
#[allow(clippy::unnecessary_cast)]
fn int(i: i64) -> LuaValue {
    LuaValue::Integer(i as LuaInteger)
}
