//! The state one `require("funcs")` owns: its registry, and loading and calling through it.
//!
//! Lua-free, so that it can be driven from Rust tests and benches as well.

use std::path::Path;
use std::sync::{Arc, OnceLock, RwLock};

use crate::engine::TickerGuard;

use crate::error::Result;
use crate::function::Function;
use crate::registry::{Registry, Summary};
use crate::value::Value;

/// A registry and the operations on it.
#[derive(Default)]
pub struct Runtime {
    registry: RwLock<Registry>,
    /// Held from the first load with a deadline until the runtime is dropped.
    ticker: OnceLock<TickerGuard>,
}

impl Runtime {
    /// Loads (or reloads) the registry files under `path`; atomic.
    ///
    /// # Errors
    /// See [`Registry::prepare`].
    pub fn load(&self, path: &Path) -> Result<Summary> {
        // Reading and compiling happen outside the write lock: calls go on meanwhile.
        let prepared = self.registry().prepare(path)?;
        if prepared.has_deadlines() {
            self.ticker.get_or_init(TickerGuard::acquire);
        }
        let mut registry = self.registry.write().unwrap_or_else(|e| e.into_inner());
        Ok(registry.commit(prepared))
    }

    /// The function `id`, to call.
    ///
    /// # Errors
    /// See [`Registry::function`].
    pub fn function(&self, id: &str) -> Result<Arc<Function>> {
        self.registry().function(id)
    }

    /// Calls function `id` with `args`.
    ///
    /// # Errors
    /// See [`Function::call`].
    pub fn call(&self, id: &str, args: &[Value]) -> Result<Value> {
        self.function(id)?.call(args)
    }

    fn registry(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(|e| e.into_inner())
    }
}
