//! Component-model [`Val`] to [`Value`], directed by the WIT type.

use wasmtime::component::{Type, Val};

use super::{ConvError, Value};

/// Converts a result [`Val`] of type `ty` to the shape Lua gets (SPEC section 4).
///
/// The type is needed where the value alone is ambiguous: an empty `list<u8>` is still a
/// string of bytes.
///
/// # Errors
/// Futures and streams, which have no Lua form; resources outside an instance's call.
pub fn from_wit(val: Val, ty: &Type) -> Result<Value, ConvError> {
    Ok(match (val, ty) {
        (Val::Bool(b), _) => Value::Bool(b),
        (Val::S8(i), _) => Value::Int(i.into()),
        (Val::U8(i), _) => Value::Int(i.into()),
        (Val::S16(i), _) => Value::Int(i.into()),
        (Val::U16(i), _) => Value::Int(i.into()),
        (Val::S32(i), _) => Value::Int(i.into()),
        (Val::U32(i), _) => Value::Int(i.into()),
        (Val::S64(i), _) => Value::Int(i),
        (Val::U64(i), _) => Value::Int(i as i64),
        (Val::Float32(f), _) => Value::Float(f.into()),
        (Val::Float64(f), _) => Value::Float(f),
        (Val::Char(c), _) => Value::str(c),
        (Val::String(s), _) => Value::Bytes(s.into_bytes()),
        (Val::List(items), Type::List(list)) => {
            let elem = list.ty();
            if elem == Type::U8 {
                Value::Bytes(
                    items
                        .into_iter()
                        .map(|v| if let Val::U8(b) = v { b } else { 0 })
                        .collect(),
                )
            } else {
                Value::Array(self::list(items, std::iter::repeat(elem))?)
            }
        }
        (Val::FixedLengthList(items), Type::FixedLengthList(list)) => {
            Value::Array(self::list(items, std::iter::repeat(list.ty()))?)
        }
        (Val::Tuple(items), Type::Tuple(tuple)) => Value::Array(list(items, tuple.types())?),
        (Val::Record(fields), Type::Record(record)) => Value::Map(
            fields
                .into_iter()
                .zip(record.fields())
                .map(|((name, v), f)| {
                    let v = from_wit(v, &f.ty).map_err(|e| e.at_field(&name))?;
                    Ok((Value::Bytes(name.into_bytes()), v))
                })
                .collect::<Result<_, ConvError>>()?,
        ),
        (Val::Map(pairs), Type::Map(map)) => {
            let (kt, vt) = (map.key(), map.value());
            Value::Map(
                pairs
                    .into_iter()
                    .map(|(k, v)| Ok((from_wit(k, &kt)?, from_wit(v, &vt)?)))
                    .collect::<Result<_, ConvError>>()?,
            )
        }
        (Val::Variant(case, payload), Type::Variant(variant)) => {
            let ty = variant.cases().find(|c| c.name == case).and_then(|c| c.ty);
            arm(case, payload, ty)?
        }
        (Val::Enum(name), _) => Value::Bytes(name.into_bytes()),
        (Val::Option(None), _) => Value::Nil,
        (Val::Option(Some(v)), Type::Option(option)) => from_wit(*v, &option.ty())?,
        (Val::Result(Ok(payload)), Type::Result(result)) => {
            arm("ok".to_string(), payload, result.ok())?
        }
        (Val::Result(Err(payload)), Type::Result(result)) => {
            arm("err".to_string(), payload, result.err())?
        }
        (Val::Flags(names), _) => Value::Map(
            names
                .into_iter()
                .map(|n| (Value::Bytes(n.into_bytes()), Value::Bool(true)))
                .collect(),
        ),
        (Val::Resource(resource), _) => match crate::host::resource::lift(resource) {
            Some(lifted) => lifted?,
            None => crate::instance::lift(resource)?,
        },
        (Val::Future(_) | Val::Stream(_) | Val::ErrorContext(_), _) => {
            return Err(ConvError::new(
                "futures, streams and error contexts cannot be returned to Lua",
            ));
        }
        (val, ty) => {
            return Err(ConvError::new(format!(
                "internal: value {val:?} does not match its type {ty:?}"
            )));
        }
    })
}

fn list(items: Vec<Val>, types: impl Iterator<Item = Type>) -> Result<Vec<Value>, ConvError> {
    items
        .into_iter()
        .zip(types)
        .enumerate()
        .map(|(i, (v, ty))| from_wit(v, &ty).map_err(|e| e.at_index(i)))
        .collect()
}

/// `{name = payload}`, with `true` standing for no payload.
fn arm(name: String, payload: Option<Box<Val>>, ty: Option<Type>) -> Result<Value, ConvError> {
    let v = match (payload, ty) {
        (Some(v), Some(ty)) => from_wit(*v, &ty).map_err(|e| e.at_field(&name))?,
        _ => Value::Bool(true),
    };
    Ok(Value::Map(vec![(Value::Bytes(name.into_bytes()), v)]))
}
