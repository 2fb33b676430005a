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
//! sleep for such an answer first [`spin`]s for up to [`SPIN`], on machines with more than one
//! core: a call from a worker with a host call went from about 30 µs to a few.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{LockResult, PoisonError};
use std::time::{Duration, Instant};

/// The guard (or the guard and a wait's outcome) of a lock result, poisoned or not.
pub fn unpoison<G>(result: LockResult<G>) -> G {
    result.unwrap_or_else(PoisonError::into_inner)
}

/// How long [`spin`] polls before the caller sleeps.
pub const SPIN: Duration = Duration::from_micros(50);

/// Polls `ready` until it gives a value or [`SPIN`] has passed (at once on a machine with one
/// core, where the answer cannot come while this thread runs).
pub fn spin<T>(mut ready: impl FnMut() -> Option<T>) -> Option<T> {
    if let Some(v) = ready() {
        return Some(v);
    }
    if !several_cores() {
        return None;
    }
    let start = Instant::now();
    loop {
        for _ in 0..32 {
            std::hint::spin_loop();
        }
        if let Some(v) = ready() {
            return Some(v);
        }
        if start.elapsed() >= SPIN {
            return None;
        }
    }
}

/// Whether the process may run on more than one core (asked once).
fn several_cores() -> bool {
    static CORES: AtomicU8 = AtomicU8::new(0);
    match CORES.load(Ordering::Relaxed) {
        0 => {
            let several = std::thread::available_parallelism().map_or(1, usize::from) > 1;
            CORES.store(if several { 2 } else { 1 }, Ordering::Relaxed);
            several
        }
        n => n == 2,
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
        // Never returns early (on one core it returns at once without waiting).
        assert!(!several_cores() || start.elapsed() >= SPIN);
    }
}
