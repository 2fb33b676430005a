//! Locks that outlive a panic: what this crate does with a poisoned lock, said once.
//!
//! A panic inside funcs is caught where it happens (pools, Lua-facing functions) and turned
//! into an `INTERNAL` error; the data behind every lock stays consistent because each guard
//! releases what it took (slots, counters, completions). So a poisoned lock is used as it is.

use std::sync::{LockResult, PoisonError};

/// The guard (or the guard and a wait's outcome) of a lock result, poisoned or not.
pub fn unpoison<G>(result: LockResult<G>) -> G {
    result.unwrap_or_else(PoisonError::into_inner)
}
