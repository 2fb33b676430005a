//! A call's result slot: filled once by whoever runs the call, waited on by threads (a
//! condition variable) or by async code (a `Notify`), and cancellable.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::error::{Error, Kind};
use crate::limits::{Control, notified_until};
use crate::signal::Signal;
use crate::sync::{spin, unpoison};
use crate::value::Output;

/// The result of a call made with [`Pool::submit`](super::Pool::submit), filled in by whoever runs it.
#[derive(Debug, Default)]
pub struct Completion {
    /// Shared, so that readers convert it with the lock released (a conversion to Lua may
    /// run finalizers that come back here).
    result: Mutex<Option<Arc<Result<Output, Error>>>>,
    done: Condvar,
    /// Wakes async waiters (the HTTP server).
    notify: Notify,
    pub control: Arc<Control>,
    /// Raised when the call completes (futures of a Lua state: its event-loop descriptor);
    /// counted by `funcs.poll` when the flag is set (futures, not blocking calls).
    signal: Option<(Arc<Signal>, bool)>,
    /// Set with the result: read without the lock (by [`Signal::wait`]).
    finished: AtomicBool,
}

impl Completion {
    pub fn new() -> Arc<Completion> {
        Arc::new(Completion::default())
    }

    /// A future's completion: raises `signal` when it completes, counted by `funcs.poll`.
    pub fn signaling(signal: Arc<Signal>) -> Arc<Completion> {
        Arc::new(Completion {
            signal: Some((signal, true)),
            ..Completion::default()
        })
    }

    /// A blocking call's completion: wakes a thread waiting on `signal`, not counted.
    pub fn waking(signal: Arc<Signal>) -> Arc<Completion> {
        Arc::new(Completion {
            signal: Some((signal, false)),
            ..Completion::default()
        })
    }

    /// A future's completion for a call that ran before the future was made (an instance's
    /// `async`): complete already, counted by `funcs.poll` like the others.
    pub fn completed(signal: Arc<Signal>, result: Result<Output, Error>) -> Arc<Completion> {
        let done = Completion::signaling(signal);
        done.complete(result);
        done
    }

    pub(super) fn complete(&self, result: Result<Output, Error>) {
        let mut slot = unpoison(self.result.lock());
        if slot.is_none() {
            *slot = Some(Arc::new(result));
            self.finished.store(true, Ordering::Release);
            // Under the lock: whoever sees the result also sees it counted by `funcs.poll`.
            if let Some((signal, counted)) = &self.signal {
                signal.raise(*counted);
            }
        }
        self.done.notify_all();
        self.notify.notify_waiters();
    }

    /// Resolves once there is a result (for async waiters; threads use [`Completion::wait`]).
    pub async fn finished(&self) {
        notified_until(&self.notify, || self.is_complete()).await;
    }

    /// Interrupts the call if it runs, drops it if it waits, and completes with `error`
    /// (unless it already completed).
    pub fn cancel(&self, error: Error) {
        if !self.is_complete() {
            self.control.cancel();
            self.complete(Err(error));
        }
    }

    /// Whether [`Completion::cancel`] ended the call.
    pub fn is_canceled(&self) -> bool {
        self.control.is_canceled()
            && self
                .result()
                .is_some_and(|r| matches!(&*r, Err(e) if e.kind() == Kind::Canceled))
    }

    pub fn is_complete(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// The result when there is one (the lock is not held while the caller reads it).
    pub fn result(&self) -> Option<Arc<Result<Output, Error>>> {
        unpoison(self.result.lock()).clone()
    }

    /// Takes the result of a completion only its caller reads (a blocking call's), without
    /// copying it; `None` before there is one.
    pub fn take(&self) -> Option<Result<Output, Error>> {
        let taken = unpoison(self.result.lock()).take()?;
        Some(Arc::try_unwrap(taken).unwrap_or_else(|shared| Result::clone(&shared)))
    }

    /// Waits for the result, at most `timeout`; `false` if it did not come.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        if spin(|| self.is_complete().then_some(())).is_some() {
            return true;
        }
        let slot = unpoison(self.result.lock());
        match timeout {
            None => {
                let slot = unpoison(self.done.wait_while(slot, |r| r.is_none()));
                slot.is_some()
            }
            Some(t) => {
                let (slot, _) = unpoison(self.done.wait_timeout_while(slot, t, |r| r.is_none()));
                slot.is_some()
            }
        }
    }
}
