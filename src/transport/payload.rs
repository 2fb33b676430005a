//! The `payload` form of an HTTP call: a request body becomes the function's argument, its
//! result becomes the response body. No sockets here: [`super::http`] does the serving.

use wasmtime::component::Type;

use crate::value::Value;

/// How an HTTP response carries a function's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Text,
    Bytes,
    Json,
}

impl BodyKind {
    /// A WIT `string` is text, a `list<u8>` bytes, anything else (core results too: `None`)
    /// JSON.
    pub fn of(results: Option<&[Type]>) -> BodyKind {
        match results {
            Some([Type::String]) => BodyKind::Text,
            Some([Type::List(l)]) if matches!(l.ty(), Type::U8) => BodyKind::Bytes,
            _ => BodyKind::Json,
        }
    }
}

/// The arguments of a call made with a request body: none for a function without
/// parameters, `nil` for an empty body, else the body's bytes (the one string argument).
pub fn args(arity: usize, body: &[u8]) -> Vec<Value> {
    match arity {
        0 => vec![],
        _ if body.is_empty() => vec![Value::Nil],
        _ => vec![Value::Bytes(body.to_vec())],
    }
}

/// A response body made from a result: its content type and bytes; `None` for no result
/// (204).
pub fn body(result: Value, kind: BodyKind) -> Option<(&'static str, Vec<u8>)> {
    Some(match result {
        Value::Nil => return None,
        Value::Bytes(b) if kind == BodyKind::Text => ("text/plain; charset=utf-8", b),
        Value::Bytes(b) if kind == BodyKind::Bytes => ("application/octet-stream", b),
        v => (
            "application/json",
            serde_json::to_vec(&to_json(&v)).expect("JSON of plain values"),
        ),
    })
}

/// A result as JSON: records are objects, lists arrays, bytes strings (lossy UTF-8).
fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Nil => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Value::Bytes(b) => J::String(String::from_utf8_lossy(b).into_owned()),
        Value::Array(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Map(fields) => J::Object(
            fields
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
                        Value::Int(i) => i.to_string(),
                        other => other.type_name().to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        _ => J::Null,
    }
}
