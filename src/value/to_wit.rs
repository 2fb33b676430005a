//! [`Value`] to component-model [`Val`], directed by the WIT type.

use wasmtime::component::types::{Flags, Record, ResultType, Variant};
use wasmtime::component::{Type, Val};

use super::{ConvError, Value};
use crate::error::expected;

/// Converts `value` to a [`Val`] of type `ty`.
///
/// # Errors
/// A value of the wrong shape or out of range, with the path inside `value`.
pub fn to_wit(value: &Value, ty: &Type) -> Result<Val, ConvError> {
    Ok(match ty {
        Type::Bool => match value {
            Value::Bool(b) => Val::Bool(*b),
            other => return Err(mismatch("boolean", other)),
        },
        Type::S8 => Val::S8(int(value, "s8")?),
        Type::U8 => Val::U8(int(value, "u8")?),
        Type::S16 => Val::S16(int(value, "s16")?),
        Type::U16 => Val::U16(int(value, "u16")?),
        Type::S32 => Val::S32(int(value, "s32")?),
        Type::U32 => Val::U32(int(value, "u32")?),
        Type::S64 => Val::S64(int(value, "s64")?),
        Type::U64 => Val::U64(u64_of(value)?),
        Type::Float32 => Val::Float32(float(value, "f32")? as f32),
        Type::Float64 => Val::Float64(float(value, "f64")?),
        Type::Char => Val::Char(char_of(value)?),
        Type::String => Val::String(string(value)?),
        Type::List(list) => {
            let elem = list.ty();
            match (value, &elem) {
                (Value::Bytes(bytes), Type::U8) => {
                    Val::List(bytes.iter().map(|b| Val::U8(*b)).collect())
                }
                _ => Val::List(
                    array(value, "list")?
                        .iter()
                        .enumerate()
                        .map(|(i, v)| to_wit(v, &elem).map_err(|e| e.at_index(i)))
                        .collect::<Result<_, _>>()?,
                ),
            }
        }
        Type::Record(record) => self::record(value, record)?,
        Type::Tuple(tuple) => {
            let items = array(value, "tuple")?;
            let types: Vec<Type> = tuple.types().collect();
            if items.len() != types.len() {
                return Err(ConvError::new(format!(
                    "expected a tuple of {} element(s), got {}",
                    types.len(),
                    items.len()
                )));
            }
            Val::Tuple(
                items
                    .iter()
                    .zip(&types)
                    .enumerate()
                    .map(|(i, (v, t))| to_wit(v, t).map_err(|e| e.at_index(i)))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::Option(option) => match value {
            Value::Nil => Val::Option(None),
            v => Val::Option(Some(Box::new(to_wit(v, &option.ty())?))),
        },
        Type::Result(result) => self::result(value, result)?,
        Type::Variant(variant) => self::variant(value, variant)?,
        Type::Enum(en) => {
            let names: Vec<&str> = en.names().collect();
            Val::Enum(case_name(value, &names, "enum case")?.to_string())
        }
        Type::Flags(flags) => self::flags(value, flags)?,
        Type::Own(ty) => match crate::host::resource::lower(value, ty, true) {
            Some(lowered) => lowered?,
            None => crate::instance::lower(value, ty, true)?,
        },
        Type::Borrow(ty) => match crate::host::resource::lower(value, ty, false) {
            Some(lowered) => lowered?,
            None => crate::instance::lower(value, ty, false)?,
        },
        Type::Map(map) => {
            let (kt, vt) = (map.key(), map.value());
            let pairs: &[(Value, Value)] = match value {
                Value::Map(pairs) => pairs,
                Value::Array(items) if items.is_empty() => &[],
                other => return Err(mismatch("table", other)),
            };
            Val::Map(
                pairs
                    .iter()
                    .map(|(k, v)| {
                        let key = to_wit(k, &kt)?;
                        let val = to_wit(v, &vt).map_err(|e| match k {
                            Value::Bytes(b) => e.at_field(&String::from_utf8_lossy(b)),
                            _ => e,
                        })?;
                        Ok((key, val))
                    })
                    .collect::<Result<_, ConvError>>()?,
            )
        }
        other => {
            return Err(ConvError::new(format!(
                "values of WIT type `{}` cannot be passed from Lua",
                type_name(other)
            )));
        }
    })
}

fn mismatch(want: &str, got: &Value) -> ConvError {
    ConvError::new(expected(want, got.type_name()))
}

/// An integer of type `T`, from an integer or an integral float, range-checked.
fn int<T: TryFrom<i64>>(value: &Value, name: &str) -> Result<T, ConvError> {
    let i = match value {
        Value::Int(i) => *i,
        Value::Float(f) if f.fract() == 0.0 && *f >= -(2f64.powi(63)) && *f < 2f64.powi(63) => {
            *f as i64
        }
        Value::Float(f) if f.is_finite() && f.fract() != 0.0 => {
            return Err(ConvError::new(format!("{f} is not an integer ({name})")));
        }
        Value::Float(f) => return Err(out_of_range(f, name)),
        other => return Err(mismatch(name, other)),
    };
    T::try_from(i).map_err(|_| out_of_range(i, name))
}

/// A u64: integers keep their 64 bits (negative ones are the values above `i64::MAX`, the
/// Lua 5.3 convention); floats must be integral and in `0..2^64`.
fn u64_of(value: &Value) -> Result<u64, ConvError> {
    match value {
        Value::Int(i) => Ok(*i as u64),
        Value::Float(f) if f.fract() == 0.0 && *f >= 0.0 && *f < 2f64.powi(64) => Ok(*f as u64),
        Value::Float(f) if f.is_finite() && f.fract() != 0.0 => {
            Err(ConvError::new(format!("{f} is not an integer (u64)")))
        }
        Value::Float(f) => Err(out_of_range(f, "u64")),
        other => Err(mismatch("u64", other)),
    }
}

fn out_of_range(v: impl std::fmt::Display, name: &str) -> ConvError {
    ConvError::new(format!("{v} is out of range for {name}"))
}

fn float(value: &Value, name: &str) -> Result<f64, ConvError> {
    match value {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        other => Err(mismatch(name, other)),
    }
}

fn char_of(value: &Value) -> Result<char, ConvError> {
    match value {
        Value::Bytes(b) => {
            let s = std::str::from_utf8(b).map_err(|_| ConvError::new("invalid UTF-8 in char"))?;
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Ok(c),
                _ => Err(ConvError::new(format!(
                    "expected a one-character string, got {} characters",
                    s.chars().count()
                ))),
            }
        }
        Value::Int(_) | Value::Float(_) => {
            let code: u32 = int(value, "char")?;
            char::from_u32(code)
                .ok_or_else(|| ConvError::new(format!("{code} is not a Unicode scalar value")))
        }
        other => Err(mismatch("char", other)),
    }
}

fn string(value: &Value) -> Result<String, ConvError> {
    match value {
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_string()),
            Err(e) => Err(ConvError::new(format!(
                "invalid UTF-8 in string at byte {}",
                e.valid_up_to()
            ))),
        },
        other => Err(mismatch("string", other)),
    }
}

fn array<'v>(value: &'v Value, what: &str) -> Result<&'v [Value], ConvError> {
    match value {
        Value::Array(items) => Ok(items),
        Value::Map(_) => Err(ConvError::new(format!(
            "expected {what} (a table with keys 1..n), got a table with other keys"
        ))),
        other => Err(mismatch(what, other)),
    }
}

/// A field of a record table, by its WIT name or the snake_case spelling of it.
fn field<'v>(value: &'v Value, name: &str) -> Option<&'v Value> {
    value.get(name).or_else(|| {
        if name.contains('-') {
            value.get(&name.replace('-', "_"))
        } else {
            None
        }
    })
}

fn record(value: &Value, record: &Record) -> Result<Val, ConvError> {
    match value {
        Value::Map(_) => {}
        Value::Array(items) if items.is_empty() => {}
        other => return Err(mismatch("record", other)),
    }
    let mut fields = Vec::with_capacity(record.fields().len());
    for f in record.fields() {
        let val = match (field(value, f.name), &f.ty) {
            (None | Some(Value::Nil), Type::Option(_)) => Val::Option(None),
            (None | Some(Value::Nil), _) => {
                return Err(ConvError::new(format!("missing field `{}`", f.name)));
            }
            (Some(v), ty) => to_wit(v, ty).map_err(|e| e.at_field(f.name))?,
        };
        fields.push((f.name.to_string(), val));
    }
    Ok(Val::Record(fields))
}

/// The one `(key, value)` of a single-key table such as `{ok = 1}` or `{circle = 5}`.
fn single_pair(value: &Value) -> Option<(&str, &Value)> {
    match value {
        Value::Map(pairs) if pairs.len() == 1 => match &pairs[0] {
            (Value::Bytes(k), v) => std::str::from_utf8(k).ok().map(|k| (k, v)),
            _ => None,
        },
        _ => None,
    }
}

fn result(value: &Value, result: &ResultType) -> Result<Val, ConvError> {
    let payload = |ty: Option<Type>, v: &Value, arm: &str| match ty {
        Some(ty) => to_wit(v, &ty)
            .map(|v| Some(Box::new(v)))
            .map_err(|e| e.at_field(arm)),
        None => Ok(None),
    };
    match single_pair(value) {
        Some(("ok", v)) => Ok(Val::Result(Ok(payload(result.ok(), v, "ok")?))),
        Some(("err", v)) => Ok(Val::Result(Err(payload(result.err(), v, "err")?))),
        _ => Err(ConvError::new(format!(
            "expected result ({{ok = ...}} or {{err = ...}}), got {}",
            describe(value)
        ))),
    }
}

fn variant(value: &Value, variant: &Variant) -> Result<Val, ConvError> {
    let cases: Vec<_> = variant.cases().collect();
    let names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    let (name, payload) = match (value, single_pair(value)) {
        (Value::Bytes(_), _) => (case_name(value, &names, "variant case")?, None),
        (_, Some((k, v))) => (case_name(&Value::str(k), &names, "variant case")?, Some(v)),
        _ => {
            return Err(ConvError::new(format!(
                "expected variant ({{case = payload}} or a case name), got {}",
                describe(value)
            )));
        }
    };
    let case = cases
        .iter()
        .find(|c| c.name == name)
        .expect("name came from cases");
    let val = match (&case.ty, payload) {
        (Some(ty), Some(v)) => Some(Box::new(to_wit(v, ty).map_err(|e| e.at_field(name))?)),
        (Some(_), None) => {
            return Err(ConvError::new(format!(
                "variant case `{name}` needs a payload: {{{name} = ...}}"
            )));
        }
        (None, _) => None,
    };
    Ok(Val::Variant(name.to_string(), val))
}

/// A case name given as a string (kebab or snake case) or a 0-based index.
fn case_name<'n>(value: &Value, names: &[&'n str], what: &str) -> Result<&'n str, ConvError> {
    match value {
        Value::Bytes(b) => {
            let s = String::from_utf8_lossy(b);
            names
                .iter()
                .find(|n| **n == s || n.replace('-', "_") == s)
                .copied()
                .ok_or_else(|| {
                    ConvError::new(format!(
                        "unknown {what} `{s}` (expected one of: {})",
                        names.join(", ")
                    ))
                })
        }
        Value::Int(_) | Value::Float(_) => {
            let i: usize = int::<u32>(value, what).map(|i| i as usize)?;
            names.get(i).copied().ok_or_else(|| {
                ConvError::new(format!(
                    "{what} index {i} is out of range (0 to {})",
                    names.len().saturating_sub(1)
                ))
            })
        }
        other => Err(mismatch(what, other)),
    }
}

fn flags(value: &Value, flags: &Flags) -> Result<Val, ConvError> {
    let names: Vec<&str> = flags.names().collect();
    let set: Vec<String> = match value {
        Value::Int(_) | Value::Float(_) => {
            let mask: u64 = u64_of(value)?;
            if names.len() < 64 && mask >> names.len() != 0 {
                return Err(ConvError::new(format!(
                    "bitmask {mask} has bits beyond the {} flag(s)",
                    names.len()
                )));
            }
            names
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, n)| n.to_string())
                .collect()
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                case_name(v, &names, "flag")
                    .map(str::to_string)
                    .map_err(|e| e.at_index(i))
            })
            .collect::<Result<_, _>>()?,
        Value::Map(pairs) => {
            let mut set = Vec::new();
            for (k, v) in pairs {
                let name = case_name(k, &names, "flag")?;
                match v {
                    Value::Bool(true) => set.push(name.to_string()),
                    Value::Bool(false) => {}
                    other => return Err(mismatch("boolean", other).at_field(name)),
                }
            }
            set
        }
        other => return Err(mismatch("flags", other)),
    };
    Ok(Val::Flags(set))
}

fn describe(value: &Value) -> String {
    match value {
        Value::Map(pairs) => format!("a table with {} key(s)", pairs.len()),
        Value::Array(items) if items.is_empty() => "an empty table".to_string(),
        Value::Array(_) => "a list".to_string(),
        other => other.type_name().to_string(),
    }
}

/// The WIT spelling of a type's kind, for messages.
pub(crate) fn type_name(ty: &Type) -> &'static str {
    match ty {
        Type::Bool => "bool",
        Type::S8 => "s8",
        Type::U8 => "u8",
        Type::S16 => "s16",
        Type::U16 => "u16",
        Type::S32 => "s32",
        Type::U32 => "u32",
        Type::S64 => "s64",
        Type::U64 => "u64",
        Type::Float32 => "f32",
        Type::Float64 => "f64",
        Type::Char => "char",
        Type::String => "string",
        Type::List(_) => "list",
        Type::Map(_) => "map",
        Type::Record(_) => "record",
        Type::Tuple(_) => "tuple",
        Type::Variant(_) => "variant",
        Type::Enum(_) => "enum",
        Type::Option(_) => "option",
        Type::Result(_) => "result",
        Type::Flags(_) => "flags",
        Type::Own(_) => "own",
        Type::Borrow(_) => "borrow",
        Type::Future(_) => "future",
        Type::Stream(_) => "stream",
        Type::ErrorContext => "error-context",
        Type::FixedLengthList(_) => "fixed-length list",
    }
}
