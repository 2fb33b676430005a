//! funcs: run WebAssembly functions declared in a YAML registry from Lua.
//!
//! `require("funcs")` gives a table with `load`, `call` and `errors`; see the README for the
//! API and `SPEC.md` for the behaviour, and the README's Layout section for the map of these
//! modules. Only `lua` (the entry point, [`funcs`], and the Lua-facing objects) and `value`
//! (Lua values in and out, the direct path's stack reads) use the Lua bindings crate.

pub mod compile;
pub mod describe;
pub mod engine;
pub mod error;
pub mod function;
pub mod host;
pub mod instance;
pub mod limits;
pub mod lua;
pub mod metrics;
pub mod outgoing;
pub mod pool;
pub mod registry;
pub mod runtime;
pub mod signal;
pub mod signature;
pub mod sync;
pub mod transport;
pub mod value;
pub mod wasi;

pub use lua::funcs;
