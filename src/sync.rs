//! Locks that outlive a panic, and the short spin before a thread sleeps for another's
//! answer: what this crate does with each, said once.
//!
//! A panic inside funcs is caught where it happens (pools, Lua-facing functions) and turned
//! into an `INTERNAL` error; the data behind every lock stays consistent because each guard
//! releases what it took (slots, counters, completions). So a poisoned lock is used as it is.
//!
//! A thread handing work to another (the Lua thread to a worker, a worker's host call to the
//! Lua thread) usually has its answer within microseconds, while waking a sleeping thread on
//! an idle core takes tens of them on a virtual machine (35 µs here). So a thread about to
//! sleep for such an answer first [`spin`]s for up to [`SPIN`], yielding its core each time it
//! finds no answer: on an idle machine it stays awake, on a busy one the threads with work run
//! (a service under load has many threads waiting). Measured with `bench/host.lua` and `wrk`:
//! a host call from a worker 65 µs -> 2.2, a plain HTTP function 14,100 -> 27,000 requests a
//! second; spinning without yielding halved the latter instead.

use std::sync::{LockResult, PoisonError};
use std::time::{Duration, Instant};

/// The guard (or the guard and a wait's outcome) of a lock result, poisoned or not.
pub fn unpoison<G>(result: LockResult<G>) -> G {
    result.unwrap_or_else(PoisonError::into_inner)
}

/// How long [`spin`] polls before the caller sleeps.
pub const SPIN: Duration = Duration::from_micros(50);

/// Polls `ready`, yielding this thread's core between polls, until it gives a value or
/// [`SPIN`] has passed.
pub fn spin<T>(mut ready: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = ready() {
            return Some(v);
        }
        if start.elapsed() >= SPIN {
            return None;
        }
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spin_gives_what_is_ready_and_gives_up_after_its_time() {
        assert_eq!(spin(|| Some(7)), Some(7));
        let mut polls = 0;
        assert_eq!(
            spin(|| {
                polls += 1;
                (polls == 3).then_some("third")
            }),
            Some("third")
        );
        let start = Instant::now();
        assert_eq!(spin(|| None::<()>), None);
        assert!(start.elapsed() >= SPIN);
    }
}
