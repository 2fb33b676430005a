//! Values between Lua and WebAssembly, in two steps.
//!
//! Lua values first become an owned, thread-safe [`Value`] on the Lua thread (`from_lua`); that
//! value becomes WIT `Val`s, directed by the function's signature, where the call runs
//! (`to_wit`, `core`); results come back the same way (`from_wit`, then `to_lua`). One direction
//! per file. [`Value`] is the dynamic shape a Go host would use, and what futures and the HTTP
//! transport carry.
//!
//! A blocking call of a component without WASI skips both steps: [`direct`] writes the Lua
//! stack into guest memory and reads results back onto it.

mod core;
pub mod direct;
mod from_lua;
mod from_wit;
mod to_lua;
mod to_wit;

use std::fmt;

pub use self::core::{CoreType, from_core, to_core};
pub use self::from_lua::{LuaResources, Userdata, from_lua, from_lua_typed, from_lua_with};
pub use self::from_wit::from_wit;
pub use self::to_lua::{RESOURCES, to_lua, to_lua_with};
pub use self::to_wit::to_wit;

/// Whether a WIT type holds a resource (`own`/`borrow`) anywhere.
pub fn holds_resource(ty: &wasmtime::component::Type) -> bool {
    holds_resource_where(ty, &|_| true)
}

/// Whether a WIT type holds a resource of a type `which` accepts anywhere.
pub fn holds_resource_where(
    ty: &wasmtime::component::Type,
    which: &dyn Fn(&wasmtime::component::ResourceType) -> bool,
) -> bool {
    use wasmtime::component::Type;
    let holds = |t: &Type| holds_resource_where(t, which);
    match ty {
        Type::Own(r) | Type::Borrow(r) => which(r),
        Type::List(l) => holds(&l.ty()),
        Type::Record(r) => r.fields().any(|f| holds(&f.ty)),
        Type::Tuple(t) => t.types().any(|t| holds(&t)),
        Type::Variant(v) => v.cases().any(|c| c.ty.as_ref().is_some_and(holds)),
        Type::Option(o) => holds(&o.ty()),
        Type::Result(r) => {
            r.ok().as_ref().is_some_and(holds) || r.err().as_ref().is_some_and(holds)
        }
        Type::Map(m) => holds(&m.key()) || holds(&m.value()),
        Type::FixedLengthList(l) => holds(&l.ty()),
        _ => false,
    }
}

/// A call's result as it comes back: a [`Value`] from the general path, or a
/// [`Tape`](direct::Tape) from a call whose arguments went as an [`Image`](direct::Image).
#[derive(Debug, Clone)]
pub enum Output {
    Value(Value),
    Tape(direct::Tape),
}

impl Output {
    /// The result as a [`Value`] (for callers that are not Lua).
    pub fn into_value(self) -> Value {
        match self {
            Output::Value(v) => v,
            Output::Tape(tape) => tape.to_value(),
        }
    }
}

/// Tables nested deeper than this are rejected (also what stops a cyclic table).
pub const MAX_DEPTH: usize = 128;

/// An owned Lua value, detached from any Lua state.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A Lua string: bytes, not necessarily UTF-8.
    Bytes(Vec<u8>),
    /// A table whose keys are exactly `1..=n` (and `{}`).
    Array(Vec<Value>),
    /// Any other table, in no particular order.
    Map(Vec<(Value, Value)>),
    /// A Lua value that cannot cross (function, userdata, thread), by its Lua type name.
    Unsupported(&'static str),
    /// A resource handle of an instance (SPEC section 15): crosses only in that instance's
    /// calls.
    Handle(std::sync::Arc<crate::instance::Handle>),
    /// A Lua value crossing as a resource Lua defines (SPEC section 15): its rep, which the
    /// Lua thread maps back to the value.
    Lua(std::sync::Arc<crate::host::resource::LuaRef>),
}

impl Value {
    /// A string value.
    pub fn str(s: impl Into<String>) -> Value {
        Value::Bytes(s.into().into_bytes())
    }

    /// Lua's `type()` of this value, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "boolean",
            Value::Int(_) | Value::Float(_) => "number",
            Value::Bytes(_) => "string",
            Value::Array(_) | Value::Map(_) => "table",
            Value::Unsupported(name) => name,
            Value::Handle(_) => "userdata",
            Value::Lua(_) => "resource",
        }
    }

    /// The value at string key `key` of a map (`None` for arrays and absent keys).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| matches!(k, Value::Bytes(b) if b == key.as_bytes()))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// One step of a path inside a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A 1-based list or tuple position.
    Index(usize),
    /// A record field, variant case or result arm.
    Field(String),
}

/// A conversion failure at a path inside one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvError {
    /// Outermost segment first.
    path: Vec<Segment>,
    message: String,
}

impl ConvError {
    pub fn new(message: impl Into<String>) -> Self {
        ConvError {
            path: Vec::new(),
            message: message.into(),
        }
    }

    /// Puts `segment` in front of the path; called while unwinding out of nested values.
    pub fn at(mut self, segment: Segment) -> Self {
        self.path.insert(0, segment);
        self
    }

    pub fn at_index(self, zero_based: usize) -> Self {
        self.at(Segment::Index(zero_based + 1))
    }

    pub fn at_field(self, name: &str) -> Self {
        self.at(Segment::Field(name.to_string()))
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The path as text, `[2].tags[1]`; empty at the top of a value.
    pub fn path(&self) -> String {
        let mut out = String::new();
        for segment in &self.path {
            match segment {
                Segment::Index(i) => out.push_str(&format!("[{i}]")),
                Segment::Field(name) if out.is_empty() => out.push_str(name),
                Segment::Field(name) => {
                    out.push('.');
                    out.push_str(name);
                }
            }
        }
        out
    }
}

impl fmt::Display for ConvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path(), self.message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_reads_like_lua_indexing() {
        let e = ConvError::new("expected string, got number")
            .at_index(0)
            .at_field("tags")
            .at_index(1);
        assert_eq!(e.to_string(), "[2].tags[1]: expected string, got number");
        let e = ConvError::new("x").at_field("b").at_field("a");
        assert_eq!(e.path(), "a.b");
    }
}
