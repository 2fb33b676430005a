//! Per-call limits: the deadline (epoch ticks), the linear-memory cap, the fuel budget.
//!
//! The deadline is armed on every call's own store, so it holds for every call, not only the
//! first; the ticker that makes it fire lives in `engine.rs`.

use wasmtime::{ResourceLimiter, Store};

use crate::engine::TICK;
use crate::registry::schema::LimitsConfig;

/// The limits of one entry; `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub max_execution_ms: Option<u64>,
    pub max_memory_bytes: Option<usize>,
    pub max_fuel: Option<u64>,
}

impl Limits {
    /// From validated config (negative values were refused by validation).
    pub fn from_config(config: Option<&LimitsConfig>) -> Limits {
        let Some(c) = config else {
            return Limits::default();
        };
        // 0 means "not set", as in the reference.
        let positive = |v: Option<i64>| v.filter(|v| *v > 0).map(|v| v as u64);
        Limits {
            max_execution_ms: positive(c.max_execution_ms),
            max_memory_bytes: positive(c.max_memory_bytes).map(|v| v as usize),
            max_fuel: positive(c.max_fuel),
        }
    }

    /// Arms the deadline and the fuel budget on a new store.
    pub fn arm<T>(&self, store: &mut Store<T>) {
        let ticks = match self.max_execution_ms {
            // One more tick than the limit: the current tick is already partly over.
            Some(ms) => ms.div_ceil(TICK.as_millis() as u64) + 1,
            // Never, in practice (wasmtime adds this to the current epoch, so not u64::MAX).
            None => 1 << 62,
        };
        store.set_epoch_deadline(ticks);
        if let Some(fuel) = self.max_fuel {
            store
                .set_fuel(fuel)
                .expect("fuel entries are compiled on the fuel engine");
        }
    }
}

/// Refuses linear-memory growth beyond the cap, and remembers that it did.
#[derive(Debug, Default)]
pub struct MemoryLimiter {
    max_bytes: Option<usize>,
    /// Set once growth was refused during this call.
    pub refused: bool,
}

impl MemoryLimiter {
    pub fn new(max_bytes: Option<usize>) -> Self {
        MemoryLimiter {
            max_bytes,
            refused: false,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if self.max_bytes.is_some_and(|max| desired > max) {
            self.refused = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}
