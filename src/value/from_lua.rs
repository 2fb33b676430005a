//! Lua values to [`Value`], on the Lua thread.

use mlua::prelude::*;
use wasmtime::component::{ResourceType, Type};

use super::{ConvError, MAX_DEPTH, Value};
use crate::error::expected;

/// Copies a Lua value into an owned [`Value`].
///
/// Tables become [`Value::Array`] when their keys are exactly `1..=n` (the empty table too)
/// and [`Value::Map`] otherwise. Metatables are not consulted.
///
/// # Errors
/// A cyclic table, or one nested deeper than [`MAX_DEPTH`], with the path to where it was found.
pub fn from_lua(value: &LuaValue) -> Result<Value, ConvError> {
    from_lua_with(value, &|_| None)
}

/// Reads userdata through `userdata` (resource handles, SPEC section 15), at any depth.
///
/// # Errors
/// As [`from_lua`].
pub fn from_lua_with(value: &LuaValue, userdata: &Userdata<'_>) -> Result<Value, ConvError> {
    let mut seen = Walk {
        seen: Vec::new(),
        userdata,
    };
    convert(value, &mut seen)
}

/// What a userdata is as a [`Value`], if anything.
pub type Userdata<'a> = dyn Fn(&LuaAnyUserData) -> Option<Value> + 'a;

/// The tables being read (to refuse cycles) and how userdata are read.
struct Walk<'a> {
    seen: Vec<*const std::ffi::c_void>,
    userdata: &'a Userdata<'a>,
}

fn convert(value: &LuaValue, seen: &mut Walk<'_>) -> Result<Value, ConvError> {
    Ok(match value {
        LuaValue::Nil => Value::Nil,
        LuaValue::Boolean(b) => Value::Bool(*b),
        LuaValue::Integer(i) => Value::Int(*i),
        LuaValue::Number(n) => Value::Float(*n),
        LuaValue::String(s) => Value::Bytes(s.as_bytes().to_vec()),
        LuaValue::Table(t) => return table(t, seen),
        LuaValue::Function(_) => Value::Unsupported("function"),
        LuaValue::Thread(_) => Value::Unsupported("thread"),
        LuaValue::UserData(ud) => (seen.userdata)(ud).unwrap_or(Value::Unsupported("userdata")),
        LuaValue::LightUserData(_) => Value::Unsupported("userdata"),
        LuaValue::Error(_) => Value::Unsupported("error"),
        _ => Value::Unsupported("userdata"),
    })
}

fn table(t: &LuaTable, seen: &mut Walk<'_>) -> Result<Value, ConvError> {
    let ptr = t.to_pointer();
    if seen.seen.contains(&ptr) {
        return Err(ConvError::new("cyclic table"));
    }
    if seen.seen.len() >= MAX_DEPTH {
        return Err(ConvError::new(format!(
            "table nesting is deeper than {MAX_DEPTH} levels"
        )));
    }
    seen.seen.push(ptr);
    let result = table_entries(t, seen);
    seen.seen.pop();
    result
}

fn table_entries(t: &LuaTable, seen: &mut Walk<'_>) -> Result<Value, ConvError> {
    // One traversal. Lua visits the array part first, in order, so a plain sequence arrives
    // as keys 1, 2, 3, ... and is collected without hashing or sorting.
    // `#t` is only a hint: a sparse table can claim a border of 2^40 with a few entries, so
    // no more room is taken ahead than a modest list needs.
    let mut items = Vec::with_capacity(t.raw_len().min(4096));
    let mut others: Vec<(Value, Value)> = Vec::new();
    let mut failed = None;
    let walked = t.for_each(|k: LuaValue, v: LuaValue| {
        let result = match k {
            LuaValue::Integer(i) if others.is_empty() && i == items.len() as i64 + 1 => {
                convert(&v, seen)
                    .map(|v| items.push(v))
                    .map_err(|e| e.at_index(items.len()))
            }
            k => convert(&k, seen).and_then(|key| {
                let value = convert(&v, seen).map_err(|e| match &key {
                    Value::Bytes(b) => e.at_field(&String::from_utf8_lossy(b)),
                    Value::Int(i) => e.at_index((*i as usize).wrapping_sub(1)),
                    _ => e,
                })?;
                others.push((key, value));
                Ok(())
            }),
        };
        result.map_err(|e| {
            failed = Some(e);
            LuaError::runtime("stop")
        })
    });
    if let Some(e) = failed {
        return Err(e);
    }
    walked.map_err(lua_err)?;
    if others.is_empty() {
        return Ok(Value::Array(items));
    }
    let mut pairs: Vec<(Value, Value)> = items
        .into_iter()
        .enumerate()
        .map(|(i, v)| (Value::Int(i as i64 + 1), v))
        .collect();
    pairs.extend(others);
    // Keys 1..n visited out of order (a table filled backwards) still make a list.
    let n = pairs.len() as i64;
    if pairs
        .iter()
        .all(|(k, _)| matches!(k, Value::Int(i) if (1..=n).contains(i)))
    {
        pairs.sort_by_key(|(k, _)| if let Value::Int(i) = k { *i } else { 0 });
        let distinct = pairs.windows(2).all(|w| w[0].0 != w[1].0);
        if distinct {
            return Ok(Value::Array(pairs.into_iter().map(|(_, v)| v).collect()));
        }
    }
    Ok(Value::Map(pairs))
}

fn lua_err(e: LuaError) -> ConvError {
    ConvError::new(e.to_string())
}

/// How the places of a value that are resources Lua defines (SPEC section 15) become values:
/// which resource types those are, and what a Lua value at such a place crosses as (`own`
/// or not).
pub struct LuaResources<'a> {
    pub is_lua: &'a dyn Fn(&ResourceType) -> bool,
    pub value: &'a dyn Fn(&LuaValue, &ResourceType, bool) -> Result<Value, ConvError>,
}

/// Copies a Lua value given as WIT type `ty`: as [`from_lua_with`], but the places where
/// `ty` has a resource Lua defines are made by `resources` (its identity is the Lua value,
/// not its contents). Around them the value keeps the shape `value::to_wit` reads.
///
/// # Errors
/// As [`from_lua`], and `resources`'.
pub fn from_lua_typed(
    value: &LuaValue,
    ty: &Type,
    userdata: &Userdata<'_>,
    resources: &LuaResources<'_>,
) -> Result<Value, ConvError> {
    if !super::holds_resource_where(ty, resources.is_lua) {
        return from_lua_with(value, userdata);
    }
    let typed = |v: &LuaValue, ty: &Type| from_lua_typed(v, ty, userdata, resources);
    let table = |what: &str| match value {
        LuaValue::Table(t) => Ok(t),
        other => Err(ConvError::new(expected(what, other.type_name()))),
    };
    Ok(match ty {
        Type::Own(r) => return (resources.value)(value, r, true),
        Type::Borrow(r) => return (resources.value)(value, r, false),
        Type::Option(o) => match value {
            LuaValue::Nil => Value::Nil,
            v => typed(v, &o.ty())?,
        },
        Type::List(l) => {
            let (t, elem) = (table("list")?, l.ty());
            let mut items = Vec::new();
            for i in 1..=t.raw_len() {
                let v: LuaValue = t.raw_get(i).map_err(lua_err)?;
                items.push(typed(&v, &elem).map_err(|e| e.at_index(i - 1))?);
            }
            Value::Array(items)
        }
        Type::Tuple(tuple) => {
            let t = table("tuple")?;
            let mut items = Vec::new();
            for (i, ty) in tuple.types().enumerate() {
                let v: LuaValue = t.raw_get(i + 1).map_err(lua_err)?;
                items.push(typed(&v, &ty).map_err(|e| e.at_index(i))?);
            }
            Value::Array(items)
        }
        Type::Record(record) => {
            let t = table("record")?;
            let mut pairs = Vec::new();
            for f in record.fields() {
                let mut v: LuaValue = t.raw_get(f.name).map_err(lua_err)?;
                if v.is_nil() && f.name.contains('-') {
                    v = t.raw_get(f.name.replace('-', "_")).map_err(lua_err)?;
                }
                if !v.is_nil() {
                    let v = typed(&v, &f.ty).map_err(|e| e.at_field(f.name))?;
                    pairs.push((Value::str(f.name), v));
                }
            }
            Value::Map(pairs)
        }
        Type::Result(result) => {
            let t = table("result")?;
            let arms = [("ok", result.ok()), ("err", result.err())];
            let mut found = None;
            for (arm, ty) in arms {
                let v: LuaValue = t.raw_get(arm).map_err(lua_err)?;
                if !v.is_nil() {
                    let v = match ty {
                        Some(ty) => typed(&v, &ty).map_err(|e| e.at_field(arm))?,
                        None => from_lua_with(&v, userdata)?,
                    };
                    found = Some(Value::Map(vec![(Value::str(arm), v)]));
                    break;
                }
            }
            match found {
                Some(v) => v,
                None => from_lua_with(value, userdata)?,
            }
        }
        Type::Variant(variant) => {
            // `{case = payload}`: the payload by its case's type.
            let single = match value {
                LuaValue::Table(t) => {
                    let mut pairs = t.pairs::<LuaValue, LuaValue>();
                    match (pairs.next(), pairs.next()) {
                        (Some(Ok((LuaValue::String(k), v))), None) => {
                            Some((k.to_string_lossy(), v))
                        }
                        _ => None,
                    }
                }
                _ => None,
            };
            let case = single.as_ref().and_then(|(k, _)| {
                variant
                    .cases()
                    .find(|c| c.name == k.as_str() || c.name.replace('-', "_") == *k)
            });
            match (single, case) {
                (Some((k, v)), Some(case)) => {
                    let v = match &case.ty {
                        Some(ty) => typed(&v, ty).map_err(|e| e.at_field(case.name))?,
                        None => from_lua_with(&v, userdata)?,
                    };
                    Value::Map(vec![(Value::str(k), v)])
                }
                _ => from_lua_with(value, userdata)?,
            }
        }
        _ => from_lua_with(value, userdata)?,
    })
}
