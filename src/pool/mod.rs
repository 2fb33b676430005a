//! Worker pools: where an entry's calls run and how many at once.
//!
//! One pool per function entry. What differs between the kinds (`inline`, `lazy`, `static`,
//! `adaptive`: one file each, behind [`Policy`]) is a few decisions: the defaults of their
//! sizes, the workers started with the pool and kept however idle, how long an idle worker
//! lives, and whether calls run on the caller's thread. The machinery they share is here (a
//! queue, slots, shutdown) and in `workers` (the worker threads); a call's result slot is
//! [`Completion`]; what a pool counts for `funcs.stats` and `funcs.metrics` is `meter`; the
//! thread that releases pools reloaded away (and drops idle warm instances) is `reaper`.
//!
//! A worker is a thread with its own single-threaded Tokio runtime. For entries without
//! WASI a call occupies its thread from start to end, so the pool's size bounds how many run
//! at once; a blocking `funcs.call` of such an entry runs on the calling thread once it has
//! one of those slots (no hand-over to another thread). Entries with WASI may wait on the
//! host (sleep, I/O): their calls always run on workers, and a worker interleaves up to
//! [`PER_WORKER`] of them while they wait, so sleeping calls do not hold threads. Each queued
//! call claims an idle worker, and a worker is added for each one beyond them while the pool
//! may grow; a worker already running calls takes only those no idle worker is left for (at
//! the pool's size), so CPU-bound calls get a thread each up to the pool's size.

mod adaptive;
mod completion;
mod config;
mod inline;
mod lazy;
mod meter;
mod reaper;
mod r#static;
mod workers;

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::Notify;

pub use self::completion::Completion;
use self::config::Policy;
pub use self::config::{PoolConfig, PoolKind, PoolSpec};
use self::meter::Meter;
pub use self::meter::{BUCKETS, Metered};
pub use self::reaper::Reaper;
use self::workers::{Job, Work};
use crate::error::{Error, Kind};
use crate::function::{Args, CallOptions, Function};
use crate::limits::Control;
use crate::outgoing::ClientCounts;
use crate::sync::unpoison;
use crate::value::{Output, Value};

/// Calls one worker interleaves while they wait on the host.
pub const PER_WORKER: usize = 128;

/// The most workers (`size`, `workers`, `max_size`) a pool may have: each is a thread.
pub const MAX_WORKERS: i64 = 1024;

/// A task of [`Pool::start_here`]: leaves room for another however it ends, and completes
/// its job if it never ran.
struct Here {
    pool: Arc<Pool>,
    job: Option<Job>,
}

impl Drop for Here {
    fn drop(&mut self) {
        if let Some(job) = self.job.take() {
            self.pool.finish(&job.done, Err(self.pool.stopped()), None);
        }
        let last = self.pool.here.fetch_sub(1, Ordering::AcqRel) == 1;
        self.pool.here_room.notify_waiters();
        // The last task of a closed pool: it may be finished now.
        let closed = last && self.pool.lock().closing.is_some();
        if closed {
            self.pool.poke();
        }
    }
}

/// A caller of [`Pool::start_here`] waiting for room, counted while it waits.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counters of one pool, for `funcs.stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub kind: &'static str,
    pub calls: u64,
    pub failures: u64,
    pub in_flight: usize,
    pub queued: usize,
    pub workers: usize,
    pub instances: u64,
    /// Instances kept for more calls (`pool.reuse`).
    pub warm_instances: usize,
    /// Calls from the guest into host functions.
    pub host_calls: u64,
    /// Instances callers hold open (`funcs.instantiate`), and their live resource handles.
    pub open_instances: usize,
    pub live_handles: usize,
    /// Outgoing HTTP requests of the guest.
    pub http_client: ClientCounts,
    /// Blocking calls take the direct path (`value::direct`).
    pub direct: bool,
    /// Failures by kind, traps by code, durations.
    pub metered: Metered,
}

/// Work for a worker other than a call with arguments: given the function and the call's
/// options, the future that makes the call.
pub type Task = Box<
    dyn FnOnce(
            Arc<Function>,
            CallOptions,
        ) -> Pin<Box<dyn Future<Output = Result<Value, Error>> + Send>>
        + Send,
>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    /// Reloaded away: queued calls still run, then the workers stop.
    Drain,
    /// Shut down: queued calls fail, running ones are cancelled.
    Cancel,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    workers: usize,
    /// Workers with no call: started and not yet given one, or done with theirs. Each queued
    /// call claims one of them; calls beyond those start workers while the pool may grow.
    idle: usize,
    /// Calls of a non-async entry running now (each holds a thread).
    busy: usize,
    /// Controls of the calls running now, to cancel them on shutdown.
    running: Vec<Arc<Control>>,
    closing: Option<Closing>,
}

/// One entry's pool.
pub struct Pool {
    function: Arc<Function>,
    spec: PoolSpec,
    state: Mutex<State>,
    /// Callers waiting for queue room or a slot.
    room: Condvar,
    /// Workers waiting for calls.
    work: Notify,
    threads: Mutex<Vec<JoinHandle<()>>>,
    meter: Meter,
    in_flight: AtomicUsize,
    /// Tasks running on their submitter's runtime ([`Pool::start_here`]), and those waiting
    /// for room among them; woken when one ends.
    here: AtomicUsize,
    here_waiting: AtomicUsize,
    here_room: Notify,
    /// Runs an inline async entry's calls on the calling thread.
    local: OnceLock<tokio::runtime::Runtime>,
    /// Inline: one call at a time.
    inline: Mutex<()>,
    /// The thread holding `inline` (its marker, 0 for none): a host function calling the
    /// entry again on that thread would wait for itself.
    inline_owner: AtomicUsize,
    /// Shut down (`Closing::Cancel`), readable without the state lock.
    canceled: AtomicBool,
    /// The reaper that releases the pool once closed and finished (set once tracked).
    reaper: reaper::Link,
}

impl Pool {
    pub fn new(function: Arc<Function>, spec: PoolSpec) -> Arc<Pool> {
        let pool = Arc::new(Pool {
            function,
            spec,
            state: Mutex::new(State::default()),
            room: Condvar::new(),
            work: Notify::new(),
            threads: Mutex::new(Vec::new()),
            meter: Meter::default(),
            in_flight: AtomicUsize::new(0),
            here: AtomicUsize::new(0),
            here_waiting: AtomicUsize::new(0),
            here_room: Notify::new(),
            local: OnceLock::new(),
            inline: Mutex::new(()),
            inline_owner: AtomicUsize::new(0),
            canceled: AtomicBool::new(false),
            reaper: OnceLock::new(),
        });
        LIVE.fetch_add(1, Ordering::Relaxed);
        pool
    }

    pub fn function(&self) -> &Arc<Function> {
        &self.function
    }

    /// The pool's kind and sizes.
    pub fn spec(&self) -> &PoolSpec {
        &self.spec
    }

    /// Starts the workers a pool keeps from the beginning (static, warm adaptive).
    pub fn start(self: &Arc<Self>) {
        let want = self.policy().workers_at_start(&self.spec);
        let mut st = self.lock();
        // A worker that cannot start now is started when calls come (`enqueue`).
        while st.workers < want && self.spawn_worker(&mut st).is_ok() {}
    }

    /// Runs a call and waits for its result.
    ///
    /// # Errors
    /// The call's, or `UNAVAILABLE` when the pool was shut down.
    pub fn call(self: &Arc<Self>, args: Args, options: CallOptions) -> Result<Output, Error> {
        if self.runs_here() {
            return self.run_here(&args, &options);
        }
        let done = Completion::new();
        self.submit(args, options, done.clone())?;
        done.wait(None);
        done.take().expect("waited for it")
    }

    /// Whether blocking calls run on the caller's thread: in inline pools, and for entries
    /// without async host calls (holding one of the pool's slots, so the size still bounds
    /// them).
    pub fn on_caller(&self) -> bool {
        self.policy().on_caller()
    }

    pub fn runs_here(&self) -> bool {
        self.policy().on_caller() || !self.function.is_async()
    }

    /// Runs `f` on this thread as one call of the pool ([`Pool::runs_here`]): one at a time
    /// inline, otherwise holding a slot. `Ok(None)`, a call `f` did not make, is not counted.
    ///
    /// # Errors
    /// `f`'s, or `UNAVAILABLE` when the pool was shut down.
    pub fn here<T>(
        &self,
        f: impl FnOnce(&Function) -> Result<Option<T>, Error>,
    ) -> Result<Option<T>, Error> {
        let inline = self.policy().on_caller();
        let one = if inline {
            if self.canceled.load(Ordering::Acquire) {
                return Err(self.unavailable());
            }
            let me = this_thread();
            if self.inline_owner.load(Ordering::Acquire) == me {
                return Err(self.reentered());
            }
            let held = if self.function.has_hosts() {
                // Another thread's call (HTTP) may hold the slot while its guest waits for
                // this thread to answer a host call: answer them while waiting.
                loop {
                    match self.inline.try_lock() {
                        Ok(held) => break held,
                        Err(std::sync::TryLockError::Poisoned(p)) => break p.into_inner(),
                        Err(std::sync::TryLockError::WouldBlock) => {
                            if !crate::host::answer_one_here() {
                                std::thread::sleep(std::time::Duration::from_millis(1));
                            }
                        }
                    }
                }
            } else {
                unpoison(self.inline.lock())
            };
            self.inline_owner.store(me, Ordering::Release);
            Some(InlineHeld {
                owner: &self.inline_owner,
                _held: held,
            })
        } else {
            let mut st = self.lock();
            loop {
                if st.closing.is_some() {
                    return Err(self.unavailable());
                }
                if st.busy < self.spec.size {
                    break;
                }
                st = unpoison(self.room.wait(st));
            }
            st.busy += 1;
            None
        };
        // Released however `f` ends, a panic included.
        let _slot = Slot {
            pool: self,
            held: !inline,
        };
        let _one = one;
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let _flight = InFlight(&self.in_flight);
        let started = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&self.function)))
            .unwrap_or_else(|panic| Err(self.panicked(panic.as_ref())));
        if !matches!(result, Ok(None)) {
            self.record(result.as_ref().err(), started);
        }
        result
    }

    /// The error of a call that would wait for the inline slot its own caller holds.
    fn reentered(&self) -> Error {
        let id = self.function.id();
        Error::invalid(format!(
            "failed to call `{id}`: it is already running on this thread (an inline pool runs one call at a time) and was called again from a host function; give it a lazy pool"
        ))
        .with(|d| d.entry = Some(id.to_string()))
    }

    /// The error a call that panicked inside funcs ends with.
    fn panicked(&self, panic: &(dyn std::any::Any + Send)) -> Error {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        Error::internal(format!(
            "failed to call `{}`: internal error: {what}",
            self.function.id()
        ))
        .with(|d| d.entry = Some(self.function.id().to_string()))
    }

    /// Queues a call (waiting for room in a full static queue); its result goes to `done`.
    /// Inline pools run it now.
    ///
    /// # Errors
    /// `UNAVAILABLE` when the pool was shut down.
    pub fn submit(
        self: &Arc<Self>,
        args: Args,
        options: CallOptions,
        done: Arc<Completion>,
    ) -> Result<(), Error> {
        if self.policy().on_caller() {
            let options = CallOptions {
                control: Some(done.control.clone()),
                ..options
            };
            done.complete(self.run_here(&args, &options));
            return Ok(());
        }
        self.enqueue(Job::new(Work::Call(args), options, done))
    }

    /// Starts a task on the current Tokio runtime (an HTTP server's, for an
    /// incoming-handler), as a call of this pool: counted, cancelled with it, at most
    /// [`PER_WORKER`] per worker of its size at once (past that it waits for one to end,
    /// counted as queued). Its guest yields to the runtime on every epoch tick, so that a
    /// CPU-bound one does not hold a thread other requests need.
    ///
    /// # Errors
    /// `UNAVAILABLE` when the pool was shut down.
    pub async fn start_here(
        self: &Arc<Self>,
        task: Task,
        done: Arc<Completion>,
    ) -> Result<(), Error> {
        let room = self.spec.size.saturating_mul(PER_WORKER);
        let mut waiting = None;
        loop {
            let freed = self.here_room.notified();
            let mut freed = std::pin::pin!(freed);
            freed.as_mut().enable();
            {
                let mut st = self.lock();
                if st.closing.is_some() {
                    return Err(self.unavailable());
                }
                if self.here.load(Ordering::Acquire) < room {
                    self.here.fetch_add(1, Ordering::AcqRel);
                    st.running.push(done.control.clone());
                    break;
                }
            }
            if waiting.is_none() {
                self.here_waiting.fetch_add(1, Ordering::Relaxed);
                waiting = Some(Waiting(&self.here_waiting));
            }
            freed.await;
        }
        drop(waiting);
        let options = CallOptions {
            control: Some(done.control.clone()),
            yields: true,
            ..CallOptions::default()
        };
        let mut here = Here {
            pool: self.clone(),
            job: Some(Job {
                work: Work::Task(task),
                options,
                done,
            }),
        };
        // Dropped unpolled (the runtime shut down), `here` still completes the job.
        tokio::spawn(async move {
            let job = here.job.take().expect("taken once");
            here.pool.clone().run_job(job, None).await;
            drop(here);
        });
        Ok(())
    }

    /// Counters now.
    pub fn stats(&self) -> Stats {
        let metered = self.meter.read();
        let st = self.lock();
        Stats {
            kind: self.spec.kind.as_str(),
            calls: metered.count,
            failures: metered.failed(),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            queued: st.queue.len() + self.here_waiting.load(Ordering::Relaxed),
            workers: st.workers,
            instances: self.function.instances(),
            warm_instances: self.function.warm_instances(),
            host_calls: self.function.host_calls(),
            open_instances: self.function.opened().load(Ordering::Relaxed),
            live_handles: self.function.handles().load(Ordering::Relaxed),
            http_client: self.function.http_client(),
            direct: self.is_direct(),
            metered,
        }
    }

    /// Stops taking calls. `cancel`: queued calls fail with `UNAVAILABLE` and running ones
    /// are interrupted; otherwise queued calls still run. Workers end when idle.
    pub fn close(&self, cancel: bool) {
        let dropped = {
            let mut st = self.lock();
            if cancel {
                st.closing = Some(Closing::Cancel);
                self.canceled.store(true, Ordering::Release);
                for c in &st.running {
                    c.cancel();
                }
                std::mem::take(&mut st.queue)
            } else {
                st.closing.get_or_insert(Closing::Drain);
                VecDeque::new()
            }
        };
        for job in dropped {
            job.done.complete(Err(self.unavailable()));
        }
        self.room.notify_all();
        self.work.notify_waiters();
        // Without workers or tasks it is finished now; otherwise the last to end pokes again.
        self.poke();
    }

    /// Tells the reaper to look at this pool (closed: it may have finished). Never called
    /// with the state lock held.
    fn poke(&self) {
        if let Some(reaper) = self.reaper.get().and_then(std::sync::Weak::upgrade) {
            reaper.poke();
        }
    }

    /// Waits for every worker thread to end (after [`Pool::close`]).
    pub fn join(&self) {
        loop {
            let threads = std::mem::take(&mut *unpoison(self.threads.lock()));
            if threads.is_empty() {
                return;
            }
            for t in threads {
                let _ = t.join();
            }
        }
    }

    /// Whether the pool is closed and its workers are gone.
    pub fn finished(&self) -> bool {
        let st = self.lock();
        st.closing.is_some() && st.workers == 0 && self.here.load(Ordering::Acquire) == 0
    }

    /// What this pool's kind decides.
    fn policy(&self) -> &'static dyn Policy {
        self.spec.kind.policy()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        unpoison(self.state.lock())
    }

    fn unavailable(&self) -> Error {
        Error::new(
            Kind::Unavailable,
            format!(
                "the pool of `{}` was closed (reload or shutdown)",
                self.function.id()
            ),
        )
        .with(|d| d.entry = Some(self.function.id().to_string()))
    }

    /// The error of a call dropped unfinished with the runtime it ran on (an HTTP service's,
    /// stopped past its grace period).
    fn stopped(&self) -> Error {
        Error::new(
            Kind::Canceled,
            format!(
                "call of `{}` stopped: the service it ran for shut down",
                self.function.id()
            ),
        )
        .with(|d| d.entry = Some(self.function.id().to_string()))
    }

    fn release_slot(&self) {
        self.lock().busy -= 1;
        self.room.notify_all();
        self.work.notify_waiters();
    }

    /// Counts a call that started at `started` and ended now, with `error` if it failed.
    fn record(&self, error: Option<&Error>, started: Instant) {
        self.meter.record(error, started.elapsed());
    }

    /// Makes a call on this thread ([`Pool::here`]); an async entry (inline) on the pool's
    /// own runtime.
    fn run_here(&self, args: &Args, options: &CallOptions) -> Result<Output, Error> {
        let result = self.here(|function| {
            if function.is_async() {
                self.block_on(function.run(args, options)).map(Some)
            } else {
                function.call(args, options).map(Some)
            }
        });
        result.map(|value| value.expect("a call that ran"))
    }

    /// Whether blocking calls of this pool take the direct path: entries without WASI on
    /// every pool, entries with WASI on an inline one (on the caller's thread, see
    /// [`Pool::block_on`]).
    pub fn is_direct(&self) -> bool {
        self.function.is_direct() && (!self.function.is_async() || self.policy().on_caller())
    }

    /// Runs a call of an async entry to its end on this pool's runtime, driven by this
    /// thread (inline pools).
    ///
    /// # Errors
    /// `INVALID` inside another such call on this thread (a host function's), whose runtime
    /// drives the thread already; the call's own.
    pub fn block_on<T>(&self, call: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        if IN_BLOCK_ON.with(std::cell::Cell::get) {
            let id = self.function.id();
            return Err(Error::invalid(format!(
                "failed to call `{id}` from a host function: an inline entry with WASI or host imports cannot run inside another such call on the same thread; give it a lazy pool"
            ))
            .with(|d| d.entry = Some(id.to_string())));
        }
        let rt = match self.local.get() {
            Some(rt) => rt,
            None => {
                // Out of file descriptors, say: this call fails, a later one tries again.
                let built = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| {
                        let id = self.function.id();
                        Error::new(
                            Kind::Unavailable,
                            format!("failed to call `{id}`: cannot build its runtime: {e}"),
                        )
                        .with(|d| d.entry = Some(id.to_string()))
                    })?;
                // Another thread may have set one meanwhile: this one is dropped.
                let _ = self.local.set(built);
                self.local.get().expect("set above")
            }
        };
        IN_BLOCK_ON.with(|b| b.set(true));
        struct Leave;
        impl Drop for Leave {
            fn drop(&mut self) {
                IN_BLOCK_ON.with(|b| b.set(false));
            }
        }
        let _leave = Leave;
        rt.block_on(call)
    }
}

/// A slot of a pool held by a call on this thread (`busy`), given back on drop.
struct Slot<'a> {
    pool: &'a Pool,
    held: bool,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if self.held {
            self.pool.release_slot();
        }
    }
}

/// The inline slot, held by this thread until dropped.
struct InlineHeld<'a> {
    owner: &'a AtomicUsize,
    _held: std::sync::MutexGuard<'a, ()>,
}

impl Drop for InlineHeld<'_> {
    fn drop(&mut self) {
        // Before the guard is released (fields drop after this).
        self.owner.store(0, Ordering::Release);
    }
}

thread_local! {
    /// Whether this thread is inside an inline async call's `block_on` (a host function of
    /// that call runs Lua, which may call funcs again).
    static IN_BLOCK_ON: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is inside an inline async call's `block_on` (where another can not
/// start: see [`Pool::block_on`]).
pub fn in_block_on() -> bool {
    IN_BLOCK_ON.with(std::cell::Cell::get)
}

/// A marker of the calling thread, never 0.
fn this_thread() -> usize {
    thread_local!(static MARK: u8 = const { 0 });
    MARK.with(|m| std::ptr::from_ref(m) as usize)
}

/// Pools alive in this process (`funcs.engine().pools`).
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// The pools alive in this process: serving, or reloaded away and not yet released.
pub fn live_pools() -> usize {
    LIVE.load(Ordering::Relaxed)
}

impl Drop for Pool {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One call in flight, counted down on drop.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The registry's hold on a pool: when the last one goes (reload), the pool drains and its
/// workers stop.
pub struct Handle(pub Arc<Pool>);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.close(false);
    }
}
