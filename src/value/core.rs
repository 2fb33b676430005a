//! [`Value`] to and from core wasm values, for core modules called without the canonical ABI.
//!
//! A core function whose WIT signature has only scalar types takes and returns one core value
//! per WIT value; these are the scalars it knows. Anything else goes through a component
//! (see `compile`).

use std::fmt;

use wasmtime::{Val, ValType};

use super::{ConvError, Value};
use crate::error::expected;

/// A WIT scalar type that crosses as one core value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoreType {
    Bool,
    S8,
    U8,
    S16,
    U16,
    S32,
    U32,
    S64,
    U64,
    F32,
    F64,
    Char,
}

impl CoreType {
    /// The WIT scalar of this name (`s32`, `f64`, ...), if it is one.
    pub fn from_wit(name: &str) -> Option<CoreType> {
        Some(match name {
            "bool" => CoreType::Bool,
            "s8" => CoreType::S8,
            "u8" => CoreType::U8,
            "s16" => CoreType::S16,
            "u16" => CoreType::U16,
            "s32" => CoreType::S32,
            "u32" => CoreType::U32,
            "s64" => CoreType::S64,
            "u64" => CoreType::U64,
            "f32" | "float32" => CoreType::F32,
            "f64" | "float64" => CoreType::F64,
            "char" => CoreType::Char,
            _ => return None,
        })
    }

    /// The WIT type a bare core value type stands for (`i32` is `s32`).
    pub fn from_core(ty: &ValType) -> Option<CoreType> {
        Some(match ty {
            ValType::I32 => CoreType::S32,
            ValType::I64 => CoreType::S64,
            ValType::F32 => CoreType::F32,
            ValType::F64 => CoreType::F64,
            _ => return None,
        })
    }

    /// Whether the core value type `ty` carries this type in the canonical ABI.
    pub fn matches(self, ty: &ValType) -> bool {
        match self {
            CoreType::S64 | CoreType::U64 => matches!(ty, ValType::I64),
            CoreType::F32 => matches!(ty, ValType::F32),
            CoreType::F64 => matches!(ty, ValType::F64),
            _ => matches!(ty, ValType::I32),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            CoreType::Bool => "bool",
            CoreType::S8 => "s8",
            CoreType::U8 => "u8",
            CoreType::S16 => "s16",
            CoreType::U16 => "u16",
            CoreType::S32 => "s32",
            CoreType::U32 => "u32",
            CoreType::S64 => "s64",
            CoreType::U64 => "u64",
            CoreType::F32 => "f32",
            CoreType::F64 => "f64",
            CoreType::Char => "char",
        }
    }
}

impl fmt::Display for CoreType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Converts `value` to the core value carrying WIT type `ty`.
///
/// # Errors
/// The same wrong-type and range errors as for components.
pub fn to_core(value: &Value, ty: CoreType) -> Result<Val, ConvError> {
    use wasmtime::component::{Type, Val as W};
    let wit = match ty {
        CoreType::Bool => Type::Bool,
        CoreType::S8 => Type::S8,
        CoreType::U8 => Type::U8,
        CoreType::S16 => Type::S16,
        CoreType::U16 => Type::U16,
        CoreType::S32 => Type::S32,
        CoreType::U32 => Type::U32,
        CoreType::S64 => Type::S64,
        CoreType::U64 => Type::U64,
        CoreType::F32 => Type::Float32,
        CoreType::F64 => Type::Float64,
        CoreType::Char => Type::Char,
    };
    Ok(match super::to_wit(value, &wit)? {
        W::Bool(b) => Val::I32(b.into()),
        W::S8(i) => Val::I32(i.into()),
        W::U8(i) => Val::I32(i.into()),
        W::S16(i) => Val::I32(i.into()),
        W::U16(i) => Val::I32(i.into()),
        W::S32(i) => Val::I32(i),
        W::U32(i) => Val::I32(i as i32),
        W::S64(i) => Val::I64(i),
        W::U64(i) => Val::I64(i as i64),
        W::Float32(f) => Val::F32(f.to_bits()),
        W::Float64(f) => Val::F64(f.to_bits()),
        W::Char(c) => Val::I32(c as i32),
        other => return Err(ConvError::new(expected(ty, format!("{other:?}")))),
    })
}

/// Converts a core result carrying WIT type `ty` to a [`Value`].
///
/// # Errors
/// A core value that is not a valid `ty` (a `char` that is no scalar value, a `bool` not 0/1).
pub fn from_core(val: &Val, ty: CoreType) -> Result<Value, ConvError> {
    let bad = || ConvError::new(format!("guest returned an invalid {ty}: {val:?}"));
    Ok(match (ty, val) {
        (CoreType::Bool, Val::I32(0)) => Value::Bool(false),
        (CoreType::Bool, Val::I32(1)) => Value::Bool(true),
        (CoreType::S8, Val::I32(i)) => Value::Int((*i as i8).into()),
        (CoreType::U8, Val::I32(i)) => Value::Int((*i as u8).into()),
        (CoreType::S16, Val::I32(i)) => Value::Int((*i as i16).into()),
        (CoreType::U16, Val::I32(i)) => Value::Int((*i as u16).into()),
        (CoreType::S32, Val::I32(i)) => Value::Int((*i).into()),
        (CoreType::U32, Val::I32(i)) => Value::Int((*i as u32).into()),
        (CoreType::S64 | CoreType::U64, Val::I64(i)) => Value::Int(*i),
        (CoreType::F32, Val::F32(bits)) => Value::Float(f32::from_bits(*bits).into()),
        (CoreType::F64, Val::F64(bits)) => Value::Float(f64::from_bits(*bits)),
        (CoreType::Char, Val::I32(i)) => Value::str(char::from_u32(*i as u32).ok_or_else(bad)?),
        _ => return Err(bad()),
    })
}
