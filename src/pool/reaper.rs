//! The reaper: one thread per runtime that keeps a long-lived process from holding what it
//! no longer uses. It releases a pool reloaded away once its last call has ended (joins its
//! worker threads, drops its function with its warm instances and compiled code), and drops
//! warm instances (`pool.reuse`) idle past their pool's idle time, so neither waits for
//! the next load nor runs on the Lua thread.
//!
//! It does not stop pools: a reload closes them (their `Handle` drops), `shutdown` cancels
//! them; it only waits for them to finish.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;

use super::Pool;
use crate::sync::unpoison;

/// The runtime's pools (serving and draining) and the thread that releases them.
#[derive(Default)]
pub struct Reaper {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// What the pools poke.
#[derive(Default)]
pub(super) struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    pools: Vec<Arc<Pool>>,
    /// A pool was closed or lost its last worker: look for finished ones.
    poked: bool,
    stop: bool,
    /// The thread could not be started: finished pools are released at the next `track`.
    unstarted: bool,
}

impl Shared {
    /// Asks the reaper to look for finished pools.
    pub(super) fn poke(&self) {
        unpoison(self.state.lock()).poked = true;
        self.wake.notify_one();
    }
}

impl Reaper {
    /// Tracks a started pool until it finishes (or [`Reaper::take_all`]).
    pub fn track(&self, pool: Arc<Pool>) {
        let _ = pool.reaper.set(Arc::downgrade(&self.shared));
        let mut thread = unpoison(self.thread.lock());
        if thread.is_none() {
            let shared = self.shared.clone();
            match std::thread::Builder::new()
                .name("funcs-reaper".into())
                .spawn(move || reap(&shared))
            {
                Ok(t) => *thread = Some(t),
                Err(_) => self.lock().unstarted = true,
            }
        }
        drop(thread);
        let reuses = pool.function().reuses();
        let finished = {
            let mut st = self.lock();
            st.pools.push(pool);
            if st.unstarted {
                take_finished(&mut st)
            } else {
                Vec::new()
            }
        };
        if reuses {
            // Its warm instances need housekeeping: the thread may be waiting without a
            // deadline.
            self.shared.wake.notify_one();
        }
        release(finished);
    }

    /// Every pool tracked now, no longer tracked (shutdown stops and joins them).
    pub fn take_all(&self) -> Vec<Arc<Pool>> {
        std::mem::take(&mut self.lock().pools)
    }

    /// Stops the thread, after the pools it is releasing.
    pub fn stop(&self) {
        self.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(t) = unpoison(self.thread.lock()).take() {
            let _ = t.join();
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        unpoison(self.shared.state.lock())
    }
}

/// The thread: waits for a poke (or the next housekeeping of warm instances), then
/// releases the finished pools and drops idle warm instances.
fn reap(shared: &Shared) {
    loop {
        let (finished, reusing) = {
            let mut st = unpoison(shared.state.lock());
            loop {
                if st.stop {
                    return;
                }
                if st.poked {
                    break;
                }
                // Warm instances expire after their pool's idle time: look at half of it.
                let housekeeping = st
                    .pools
                    .iter()
                    .filter(|p| p.function().reuses())
                    .map(|p| p.function().warm_idle() / 2)
                    .min();
                match housekeeping {
                    Some(every) => {
                        let (guard, waited) = unpoison(shared.wake.wait_timeout(st, every));
                        st = guard;
                        if waited.timed_out() {
                            break;
                        }
                    }
                    None => st = unpoison(shared.wake.wait(st)),
                }
            }
            st.poked = false;
            let finished = take_finished(&mut st);
            let reusing: Vec<Arc<Pool>> = st
                .pools
                .iter()
                .filter(|p| p.function().reuses())
                .cloned()
                .collect();
            (finished, reusing)
        };
        for pool in reusing {
            pool.function().expire_warm();
        }
        release(finished);
    }
}

/// The pools closed whose workers and tasks have all ended, out of the list.
fn take_finished(st: &mut State) -> Vec<Arc<Pool>> {
    let mut finished = Vec::new();
    st.pools.retain(|p| {
        let done = p.finished();
        if done {
            finished.push(p.clone());
        }
        !done
    });
    finished
}

/// Joins the pools' threads (they have left their loops) and drops them with their warm
/// instances.
fn release(pools: Vec<Arc<Pool>>) {
    for pool in pools {
        pool.join();
        pool.function().clear_warm();
    }
}

/// A pool's link to its runtime's reaper, set once tracked.
pub(super) type Link = std::sync::OnceLock<Weak<Shared>>;
