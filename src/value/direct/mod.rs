//! The direct path of a blocking call: Lua arguments go straight into the guest's memory and
//! results come straight out of it, both directed by the component's own types.
//!
//! The general path copies a Lua value into an owned [`super::Value`], that into wasmtime
//! `Val`s, and back the same way: a few allocations per table and per key, which is most of the
//! time of a call taking a list of records. Here the Lua stack is read while wasmtime lowers
//! the arguments (through its `Lower` and `Lift` traits, the ones its derive macros implement),
//! and results are lifted into a flat [`Tape`] that becomes Lua values in one pass.
//!
//! It takes what the general path takes and gives up ([`Mismatch`]) on anything else, before
//! the guest runs; the caller then makes the call on the general path, whose error names the
//! argument and the path inside it. One difference: a record table is read only at the keys its
//! type names, so unrelated keys (even one that makes a cycle) are never looked at.
//!
//! Types it knows: all but resources, futures, streams and maps (see [`plan`]). A function
//! with others, with more than one result, or whose parameters flatten to more than
//! [`MAX_FLAT`] core values or include a variant or result at the top, always takes the
//! general path.
//!
//! `Lower` and `Lift` are wasmtime's hidden, unstable traits; the version is pinned in
//! Cargo.toml and `spec/direct_spec.lua` compares this path with the general one for every
//! type it takes.

mod image;
mod lift;
mod lower;
mod stack;

pub use image::{Image, ImageArgs, Layout};
pub use lift::{FlatResult, MemoryResult, Tape, push};
pub use lower::LuaArgs;
pub use stack::{install, reserve, reserve_on_entry};

use wasmtime::component::Type;

use super::Value;

/// Parameters flattening to more core values than this go through memory in the canonical
/// ABI; the direct path leaves those functions to the general path.
pub const MAX_FLAT: usize = 16;

/// Records and tuples with more fields, and flags with more names, take the general path.
const MAX_FIELDS: usize = 64;

/// How a function's result comes back on the direct path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// No result.
    Unit,
    /// One scalar, enum or flags in one core value.
    Flat,
    /// Anything larger, in memory behind a pointer the guest returns.
    Memory,
}

/// A Lua boolean or number on a Lua stack as the general path reads it (`value::from_lua`):
/// `None` for any other type.
///
/// # Safety
/// `state` is the running Lua thread and `idx` a valid index of its stack.
pub unsafe fn lua_scalar(state: *mut mlua::ffi::lua_State, idx: std::ffi::c_int) -> Option<Value> {
    let lua = stack::Stack::new(state, 0);
    match lua.number(idx) {
        Some(stack::Number::Int(i)) => Some(Value::Int(i)),
        Some(stack::Number::Float(f)) => Some(Value::Float(f)),
        None => lua.bool(idx).ok().map(Value::Bool),
    }
}

/// The shape of the result when the direct path can make calls with these types.
pub fn plan(params: &[Type], results: &[Type]) -> Option<Shape> {
    if !params.iter().all(flat_param) || params.iter().map(flat).sum::<usize>() > MAX_FLAT {
        return None;
    }
    match results {
        [] => Some(Shape::Unit),
        [ty] if !known(ty) => None,
        [ty] => match (flat(ty), ty) {
            (1, ty) if scalar(ty) || matches!(ty, Type::Enum(_) | Type::Flags(_)) => {
                Some(Shape::Flat)
            }
            (0 | 1, _) => None,
            _ => Some(Shape::Memory),
        },
        _ => None,
    }
}

/// [`plan`] for an export of a live instance: a method's first parameter, the handle it
/// borrows, is passed apart ([`LuaArgs::after`]). With whether it is such a method.
pub fn plan_live(params: &[Type], results: &[Type]) -> Option<(Shape, bool)> {
    match params.split_first() {
        Some((Type::Borrow(_), rest)) if rest.iter().map(flat).sum::<usize>() < MAX_FLAT => {
            plan(rest, results).map(|shape| (shape, true))
        }
        _ => plan(params, results).map(|shape| (shape, false)),
    }
}

/// Whether the direct path knows `ty`, wherever it is.
fn known(ty: &Type) -> bool {
    match ty {
        ty if scalar(ty) => true,
        Type::String | Type::Enum(_) => true,
        Type::Flags(flags) => flags.names().len() <= MAX_FIELDS,
        Type::List(list) => known(&list.ty()),
        Type::Option(option) => known(&option.ty()),
        Type::Record(record) => {
            record.fields().len() <= MAX_FIELDS && record.fields().all(|f| known(&f.ty))
        }
        Type::Tuple(tuple) => tuple.types().len() <= MAX_FIELDS && tuple.types().all(|t| known(&t)),
        Type::Variant(variant) => variant.cases().all(|c| c.ty.as_ref().is_none_or(known)),
        Type::Result(result) => {
            result.ok().as_ref().is_none_or(known) && result.err().as_ref().is_none_or(known)
        }
        _ => false,
    }
}

/// Booleans, integers, floats and chars.
fn scalar(ty: &Type) -> bool {
    matches!(
        ty,
        Type::Bool
            | Type::S8
            | Type::U8
            | Type::S16
            | Type::U16
            | Type::S32
            | Type::U32
            | Type::S64
            | Type::U64
            | Type::Float32
            | Type::Float64
            | Type::Char
    )
}

/// Whether the direct path passes a parameter of type `ty` as core values: a known type
/// without a variant or result outside of lists (those would need joined core types).
fn flat_param(ty: &Type) -> bool {
    match ty {
        Type::Variant(_) | Type::Result(_) => false,
        Type::Option(option) => flat_param(&option.ty()),
        Type::Record(record) => known(ty) && record.fields().all(|f| flat_param(&f.ty)),
        Type::Tuple(tuple) => known(ty) && tuple.types().all(|t| flat_param(&t)),
        _ => known(ty),
    }
}

/// The number of core values a known type flattens to (canonical ABI).
fn flat(ty: &Type) -> usize {
    match ty {
        Type::String | Type::List(_) => 2,
        Type::Record(record) => record.fields().map(|f| flat(&f.ty)).sum(),
        Type::Tuple(tuple) => tuple.types().map(|t| flat(&t)).sum(),
        Type::Option(option) => 1 + flat(&option.ty()),
        Type::Flags(flags) => flags.names().len().div_ceil(32),
        Type::Variant(variant) => {
            1 + variant
                .cases()
                .map(|c| c.ty.as_ref().map_or(0, flat))
                .max()
                .unwrap_or(0)
        }
        Type::Result(result) => {
            1 + result
                .ok()
                .as_ref()
                .map_or(0, flat)
                .max(result.err().as_ref().map_or(0, flat))
        }
        _ => 1,
    }
}

/// An argument the direct path does not take; nothing of the call has run.
#[derive(Debug)]
pub struct Mismatch;

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an argument the direct path does not take")
    }
}

impl std::error::Error for Mismatch {}

fn mismatch<T>() -> wasmtime::Result<T> {
    Err(wasmtime::Error::new(Mismatch))
}
