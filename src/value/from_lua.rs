//! Lua values to [`Value`], on the Lua thread.

use mlua::prelude::*;

use super::{ConvError, MAX_DEPTH, Value};

/// Copies a Lua value into an owned [`Value`].
///
/// Tables become [`Value::Array`] when their keys are exactly `1..=n` (the empty table too)
/// and [`Value::Map`] otherwise. Metatables are not consulted.
///
/// # Errors
/// A cyclic table, or one nested deeper than [`MAX_DEPTH`], with the path to where it was found.
pub fn from_lua(value: &LuaValue) -> Result<Value, ConvError> {
    let mut seen = Vec::new();
    convert(value, &mut seen)
}

fn convert(value: &LuaValue, seen: &mut Vec<*const std::ffi::c_void>) -> Result<Value, ConvError> {
    Ok(match value {
        LuaValue::Nil => Value::Nil,
        LuaValue::Boolean(b) => Value::Bool(*b),
        LuaValue::Integer(i) => Value::Int(*i as i64),
        LuaValue::Number(n) => Value::Float(*n),
        LuaValue::String(s) => Value::Bytes(s.as_bytes().to_vec()),
        LuaValue::Table(t) => return table(t, seen),
        LuaValue::Function(_) => Value::Unsupported("function"),
        LuaValue::Thread(_) => Value::Unsupported("thread"),
        LuaValue::UserData(_) => Value::Unsupported("userdata"),
        LuaValue::LightUserData(_) => Value::Unsupported("userdata"),
        LuaValue::Error(_) => Value::Unsupported("error"),
        _ => Value::Unsupported("userdata"),
    })
}

fn table(t: &LuaTable, seen: &mut Vec<*const std::ffi::c_void>) -> Result<Value, ConvError> {
    let ptr = t.to_pointer();
    if seen.contains(&ptr) {
        return Err(ConvError::new("cyclic table"));
    }
    if seen.len() >= MAX_DEPTH {
        return Err(ConvError::new(format!(
            "table nesting is deeper than {MAX_DEPTH} levels"
        )));
    }
    seen.push(ptr);
    let result = table_entries(t, seen);
    seen.pop();
    result
}

fn table_entries(
    t: &LuaTable,
    seen: &mut Vec<*const std::ffi::c_void>,
) -> Result<Value, ConvError> {
    // The common case first: a plain sequence, read by index without hashing keys.
    let len = t.raw_len();
    let mut items = Vec::with_capacity(len);
    for i in 1..=len {
        let v: LuaValue = t.raw_get(i).map_err(lua_err)?;
        items.push(convert(&v, seen).map_err(|e| e.at_index(i - 1))?);
    }
    let mut extra = Vec::new();
    for pair in t.pairs::<LuaValue, LuaValue>() {
        let (k, v) = pair.map_err(lua_err)?;
        if let LuaValue::Integer(i) = k
            && i >= 1
            && (i as u64) <= len as u64
        {
            continue;
        }
        let key = convert(&k, seen)?;
        let value = convert(&v, seen).map_err(|e| match &key {
            Value::Bytes(b) => e.at_field(&String::from_utf8_lossy(b)),
            Value::Int(i) => e.at_index((*i as usize).wrapping_sub(1)),
            _ => e,
        })?;
        extra.push((key, value));
    }
    if extra.is_empty() {
        return Ok(Value::Array(items));
    }
    let mut pairs: Vec<(Value, Value)> = items
        .into_iter()
        .enumerate()
        .map(|(i, v)| (Value::Int(i as i64 + 1), v))
        .collect();
    pairs.extend(extra);
    Ok(Value::Map(pairs))
}

fn lua_err(e: LuaError) -> ConvError {
    ConvError::new(e.to_string())
}
