//! Per-call limits: the deadline (epoch ticks), the linear-memory cap, the fuel budget.
//!
//! The deadline is armed on every call's own store, so it holds for every call, not only the
//! first; the ticker that makes it fire lives in `engine.rs`. The entry's `limits:` config
//! ([`LimitsConfig`]) is defined here and parsed by the registry.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Notify;
use wasmtime::{ResourceLimiter, Store, Trap, UpdateDeadline};

use crate::engine::TICK;

/// Deadlines longer than this (2^40 ms, about 34 years) are cut to it, so that no clock or
/// epoch arithmetic can overflow, whatever number a registry or an executor gives.
pub const MAX_TIMEOUT_MS: u64 = 1 << 40;

/// How long a call that [yields](Limits::arm) runs before it starts yielding on every tick.
const YIELD_AFTER: Duration = Duration::from_millis(2);

/// `limits:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_execution_ms: Option<i64>,
    pub max_memory_bytes: Option<i64>,
    pub max_fuel: Option<i64>,
    /// Instances of the entry callers may hold open (`funcs.instantiate`; default 64).
    pub max_instances: Option<i64>,
}

impl LimitsConfig {
    /// Problems of this config as `(field path, message)`, in the SPEC's wording.
    pub fn validate(&self) -> Vec<(String, String)> {
        [
            ("max_execution_ms", self.max_execution_ms),
            ("max_memory_bytes", self.max_memory_bytes),
            ("max_fuel", self.max_fuel),
            ("max_instances", self.max_instances),
        ]
        .into_iter()
        .filter(|(_, v)| v.is_some_and(|v| v < 0))
        .map(|(field, _)| {
            (
                format!("limits.{field}"),
                format!("limits.{field} cannot be negative"),
            )
        })
        .collect()
    }
}

/// The limits of one entry; `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub max_execution_ms: Option<u64>,
    pub max_memory_bytes: Option<usize>,
    pub max_fuel: Option<u64>,
    /// Open instances callers may hold (`funcs.instantiate`); `None`: the default, 64.
    pub max_instances: Option<usize>,
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
            max_instances: positive(c.max_instances).map(|v| v as usize),
        }
    }

    /// Arms the deadline (`timeout_ms`, the entry's or an executor's), the fuel budget and,
    /// for calls that can be cancelled, a check of `control` on every epoch tick, after
    /// which an async call that `yields` lets its runtime run other tasks.
    pub fn arm<T>(
        &self,
        store: &mut Store<T>,
        timeout_ms: Option<u64>,
        control: Option<&Arc<Control>>,
        yields: bool,
    ) {
        let timeout_ms = timeout_ms.map(|ms| ms.min(MAX_TIMEOUT_MS));
        match (timeout_ms, control) {
            // A store kept for more calls (`pool.reuse`) may still hold the callback of a
            // cancellable call: back to trapping at the deadline.
            // Never, in practice (wasmtime adds this to the current epoch, so not u64::MAX).
            (None, None) => {
                store.epoch_deadline_trap();
                store.set_epoch_deadline(1 << 62);
            }
            // One more tick than the limit: the current tick is already partly over.
            (Some(ms), None) => {
                store.epoch_deadline_trap();
                store.set_epoch_deadline(ms.div_ceil(TICK.as_millis() as u64) + 1);
            }
            (timeout, Some(control)) => {
                let armed = Instant::now();
                let deadline = timeout.map(|ms| armed + Duration::from_millis(ms));
                let control = control.clone();
                store.set_epoch_deadline(1);
                store.epoch_deadline_callback(move |_| {
                    if control.is_canceled() {
                        return Err(Canceled.into());
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(Trap::Interrupt.into());
                    }
                    // A short call (most HTTP requests) runs to its end: yielding it on the
                    // tick that happened to fall inside it queued it behind every other request
                    // (wrk's p99 3x its p90).
                    Ok(if yields && armed.elapsed() >= YIELD_AFTER {
                        UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
                    } else {
                        UpdateDeadline::Continue(1)
                    })
                });
            }
        }
        if let Some(fuel) = self.max_fuel {
            store
                .set_fuel(fuel)
                .expect("fuel entries are compiled on the fuel engine");
        }
    }
}

/// The cancel switch of one call: checked on every epoch tick while the guest runs, and
/// awaited while it waits on the host.
#[derive(Debug, Default)]
pub struct Control {
    canceled: AtomicBool,
    notify: Notify,
}

impl Control {
    /// Asks the call to stop; it ends with `CANCELED` at its next tick or host wait.
    pub fn cancel(&self) {
        self.canceled.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_canceled(&self) -> bool {
        self.canceled.load(Ordering::SeqCst)
    }

    /// Resolves once [`Control::cancel`] was called.
    pub async fn canceled(&self) {
        notified_until(&self.notify, || self.is_canceled()).await;
    }
}

/// Resolves once `done()` holds, checked again each time `notify` wakes its waiters (the
/// waiter is registered before the check, so a wake-up in between is not lost).
pub async fn notified_until(notify: &Notify, done: impl Fn() -> bool) {
    loop {
        let notified = notify.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        if done() {
            return;
        }
        notified.await;
    }
}

/// The error a cancelled guest is stopped with (downcast when the call is classified).
#[derive(Debug, thiserror::Error)]
#[error("call canceled")]
pub struct Canceled;

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
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // What the pooling allocator allows (`engine.rs`), for on-demand stores too.
        Ok(desired <= crate::engine::MAX_TABLE_ELEMENTS)
    }
}
