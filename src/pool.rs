//! Worker pools: where an entry's calls run and how many at once.
//!
//! - `inline`: on the calling thread, one call at a time.
//! - `lazy`: no workers until calls come; a worker is added when a call is queued and none is
//!   free, up to `max_size`; workers idle for 30 s retire.
//! - `static`: `workers` threads started with the pool (on load); a queue of `buffer` calls; a
//!   caller finding it full waits for room (backpressure, never a dropped call).
//! - `adaptive`: one worker from the first call (or from load with `warm_start`), more added
//!   like `lazy` when calls queue up and every worker is busy, up to `max_size`; workers idle
//!   for 5 s retire down to one.
//!
//! A worker is a thread with its own single-threaded Tokio runtime. For entries without
//! WASI a call occupies its thread from start to end, so the pool's size bounds how many run
//! at once; a blocking `funcs.call` of such an entry runs on the calling thread once it has
//! one of those slots (no hand-over to another thread). Entries with WASI may wait on the
//! host (sleep, I/O): their calls always run on workers, and a worker interleaves up to
//! [`PER_WORKER`] of them while they wait, so sleeping calls do not hold threads.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::sync::unpoison;
use crate::error::{Error, Kind};
use crate::function::{Args, CallOptions, Function};
use crate::limits::{Control, notified_until};
use crate::registry::schema::PoolConfig;
use crate::value::Value;

/// Calls one worker interleaves while they wait on the host.
pub const PER_WORKER: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    Inline,
    Lazy,
    Static,
    Adaptive,
}

impl PoolKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolKind::Inline => "inline",
            PoolKind::Lazy => "lazy",
            PoolKind::Static => "static",
            PoolKind::Adaptive => "adaptive",
        }
    }
}

/// A pool's shape, with SPEC section 5's defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSpec {
    pub kind: PoolKind,
    /// Static: its workers; lazy and adaptive: the most workers; inline: 1.
    pub size: usize,
    /// Queued calls before callers wait (static); unbounded otherwise.
    pub buffer: usize,
    pub warm_start: bool,
}

impl PoolSpec {
    /// From validated config.
    pub fn from_config(config: Option<&PoolConfig>) -> PoolSpec {
        let c = config.cloned().unwrap_or_default();
        let positive = |v: Option<i64>| v.filter(|v| *v > 0).map(|v| v as usize);
        let kind = match c.kind.as_deref() {
            Some("inline") => PoolKind::Inline,
            Some("lazy") => PoolKind::Lazy,
            Some("static") => PoolKind::Static,
            Some("adaptive") => PoolKind::Adaptive,
            _ if positive(c.workers).is_some() => PoolKind::Static,
            _ if positive(c.size).is_some() && positive(c.max_size).is_none() => PoolKind::Inline,
            _ => {
                return PoolSpec {
                    kind: PoolKind::Lazy,
                    size: positive(c.max_size).unwrap_or(100),
                    buffer: usize::MAX,
                    warm_start: false,
                };
            }
        };
        let (size, buffer) = match kind {
            PoolKind::Inline => (1, usize::MAX),
            PoolKind::Static => {
                let workers = positive(c.workers).or(positive(c.size)).unwrap_or(8);
                (workers, positive(c.buffer).unwrap_or(workers * 64))
            }
            PoolKind::Lazy => (positive(c.max_size).unwrap_or(16), usize::MAX),
            // The reference's page: "El maximo por defecto del pool elastico es 100 workers".
            PoolKind::Adaptive => (positive(c.max_size).unwrap_or(100), usize::MAX),
        };
        PoolSpec {
            kind,
            size,
            buffer,
            warm_start: c.warm_start.unwrap_or(false),
        }
    }

    /// Workers kept however idle.
    fn min_workers(&self) -> usize {
        match self.kind {
            PoolKind::Static => self.size,
            PoolKind::Adaptive => 1,
            PoolKind::Inline | PoolKind::Lazy => 0,
        }
    }

    /// How long a worker above the minimum stays idle before it retires.
    fn idle(&self) -> Duration {
        match self.kind {
            PoolKind::Adaptive => Duration::from_secs(5),
            _ => Duration::from_secs(30),
        }
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
    /// Blocking calls take the direct path (`value::direct`).
    pub direct: bool,
}

/// The result of a call made with [`Pool::submit`], filled in by whoever runs it.
#[derive(Debug, Default)]
pub struct Completion {
    result: Mutex<Option<Result<Value, Error>>>,
    done: Condvar,
    /// Wakes async waiters (the HTTP server).
    notify: Notify,
    pub control: Arc<Control>,
}

impl Completion {
    pub fn new() -> Arc<Completion> {
        Arc::new(Completion::default())
    }

    fn complete(&self, result: Result<Value, Error>) {
        let mut slot = unpoison(self.result.lock());
        if slot.is_none() {
            *slot = Some(result);
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
            && self.with_result(|r| matches!(r, Some(Err(e)) if e.kind() == Kind::Canceled))
    }

    pub fn is_complete(&self) -> bool {
        unpoison(self.result.lock())
            .is_some()
    }

    /// The result when there is one; `f` reads it in place.
    pub fn with_result<R>(&self, f: impl FnOnce(Option<&Result<Value, Error>>) -> R) -> R {
        f(unpoison(self.result.lock())
            .as_ref())
    }

    /// Waits for the result, at most `timeout`; `false` if it did not come.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
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

struct Job {
    work: Work,
    options: CallOptions,
    done: Arc<Completion>,
}

/// What a queued call does.
enum Work {
    /// Call the function with these arguments.
    Call(Args),
    /// Let a `wasi:http/incoming-handler` answer a request.
    Http(
        Box<hyper::Request<crate::function::IncomingBody>>,
        Responder,
    ),
}

/// Where an incoming-handler's response goes.
pub type Responder = tokio::sync::oneshot::Sender<
    Result<
        hyper::Response<wasmtime_wasi_http::p2::body::HyperOutgoingBody>,
        wasmtime_wasi_http::p2::bindings::http::types::ErrorCode,
    >,
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
    /// Workers waiting for a call.
    waiting: usize,
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
    calls: AtomicU64,
    failures: AtomicU64,
    in_flight: AtomicUsize,
    /// Runs an inline async entry's calls on the calling thread.
    local: OnceLock<tokio::runtime::Runtime>,
    /// Inline: one call at a time.
    inline: Mutex<()>,
    /// Shut down (`Closing::Cancel`), readable without the state lock.
    canceled: AtomicBool,
}

impl Pool {
    pub fn new(function: Arc<Function>, spec: PoolSpec) -> Arc<Pool> {
        Arc::new(Pool {
            function,
            spec,
            state: Mutex::new(State::default()),
            room: Condvar::new(),
            work: Notify::new(),
            threads: Mutex::new(Vec::new()),
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            local: OnceLock::new(),
            inline: Mutex::new(()),
            canceled: AtomicBool::new(false),
        })
    }

    pub fn function(&self) -> &Arc<Function> {
        &self.function
    }

    pub fn spec(&self) -> &PoolSpec {
        &self.spec
    }

    /// Starts the workers a pool keeps from the beginning (static, warm adaptive).
    pub fn start(self: &Arc<Self>) {
        let want = match self.spec.kind {
            PoolKind::Static => self.spec.size,
            PoolKind::Adaptive if self.spec.warm_start => 1,
            _ => 0,
        };
        let mut st = self.lock();
        // A worker that cannot start now is started when calls come (`enqueue`).
        while st.workers < want && self.spawn_worker(&mut st).is_ok() {}
    }

    /// Runs a call and waits for its result.
    ///
    /// # Errors
    /// The call's, or `UNAVAILABLE` when the pool was shut down.
    pub fn call(self: &Arc<Self>, args: Args, options: CallOptions) -> Result<Value, Error> {
        if self.runs_here() {
            return self.run_here(&args, &options);
        }
        let done = Completion::new();
        self.submit(args, options, done.clone())?;
        done.wait(None);
        done.with_result(|r| r.cloned().expect("waited for it"))
    }

    /// Whether blocking calls run on the caller's thread: in inline pools, and for entries
    /// without async host calls (holding one of the pool's slots, so the size still bounds
    /// them).
    pub fn runs_here(&self) -> bool {
        self.spec.kind == PoolKind::Inline || !self.function.is_async()
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
        let inline = self.spec.kind == PoolKind::Inline;
        let one = if inline {
            if self.canceled.load(Ordering::Acquire) {
                return Err(self.unavailable());
            }
            Some(unpoison(self.inline.lock()))
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
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&self.function)))
            .unwrap_or_else(|panic| Err(self.panicked(panic.as_ref())));
        if !matches!(result, Ok(None)) {
            self.count(result.is_err());
        }
        result
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
        let options = CallOptions {
            control: Some(done.control.clone()),
            ..options
        };
        if self.spec.kind == PoolKind::Inline {
            done.complete(self.run_here(&args, &options));
            return Ok(());
        }
        self.enqueue(Job {
            work: Work::Call(args),
            options,
            done,
        })
    }

    /// Queues a job for the workers, waiting for room in a full queue; adds a worker when
    /// none is free and the pool may grow.
    fn enqueue(self: &Arc<Self>, job: Job) -> Result<(), Error> {
        let mut st = self.lock();
        loop {
            if st.closing.is_some() {
                return Err(self.unavailable());
            }
            if st.queue.len() < self.spec.buffer {
                break;
            }
            st = unpoison(self.room.wait(st));
        }
        st.queue.push_back(job);
        if st.waiting == 0
            && st.workers < self.spec.size
            && let Err(e) = self.spawn_worker(&mut st)
            && st.workers == 0
        {
            // Nobody would ever take it.
            st.queue.pop_back();
            return Err(e);
        }
        drop(st);
        self.work.notify_waiters();
        Ok(())
    }

    /// Queues an HTTP request for an incoming-handler entry (always on a worker); the
    /// response goes to `respond`, the end of the call to `done`.
    ///
    /// # Errors
    /// `UNAVAILABLE` when the pool was shut down.
    pub fn submit_http(
        self: &Arc<Self>,
        request: hyper::Request<crate::function::IncomingBody>,
        respond: Responder,
        done: Arc<Completion>,
    ) -> Result<(), Error> {
        let options = CallOptions {
            control: Some(done.control.clone()),
            ..CallOptions::default()
        };
        self.enqueue(Job {
            work: Work::Http(Box::new(request), respond),
            options,
            done,
        })
    }

    /// Counters now.
    pub fn stats(&self) -> Stats {
        let st = self.lock();
        Stats {
            kind: self.spec.kind.as_str(),
            calls: self.calls.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            queued: st.queue.len(),
            workers: st.workers,
            instances: self.function.instances(),
            direct: self.function.is_direct(),
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
    }

    /// Waits for every worker thread to end (after [`Pool::close`]).
    pub fn join(&self) {
        loop {
            let threads =
                std::mem::take(&mut *unpoison(self.threads.lock()));
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
        st.closing.is_some() && st.workers == 0
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

    fn release_slot(&self) {
        self.lock().busy -= 1;
        self.room.notify_all();
        self.work.notify_waiters();
    }

    /// Counts a call that ended.
    fn count(&self, failed: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Makes a call on this thread ([`Pool::here`]); an async entry (inline) on the pool's
    /// own runtime.
    fn run_here(&self, args: &Args, options: &CallOptions) -> Result<Value, Error> {
        let result = self.here(|function| {
            if function.is_async() {
                let rt = self.local.get_or_init(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a Tokio runtime")
                });
                rt.block_on(function.run(args, options)).map(Some)
            } else {
                function.call(args, options).map(Some)
            }
        });
        result.map(|value| value.expect("a call that ran"))
    }

    /// Starts a worker thread, counted once it exists.
    fn spawn_worker(self: &Arc<Self>, st: &mut State) -> Result<(), Error> {
        let pool = self.clone();
        let thread = std::thread::Builder::new()
            .name(format!("funcs-{}", self.function.id()))
            .spawn(move || {
                // A worker that panics (a bug of ours) leaves the pool consistent: its job was
                // completed by `Finish`, its slot released by `Slot`; it stops being counted.
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    rt.block_on(pool.clone().work_loop());
                    Ok::<(), std::io::Error>(())
                }));
                if !matches!(ran, Ok(Ok(()))) {
                    pool.lock().workers -= 1;
                    pool.room.notify_all();
                }
            })
            .map_err(|e| {
                Error::internal(format!(
                    "failed to call `{}`: cannot start a worker thread: {e}",
                    self.function.id()
                ))
            })?;
        st.workers += 1;
        let mut threads = unpoison(self.threads.lock());
        // Threads of retired workers have ended: nothing to keep for them.
        threads.retain(|t| !t.is_finished());
        threads.push(thread);
        Ok(())
    }

    /// A worker: takes calls while it may, waits otherwise, ends when closed and drained
    /// or idle past its time.
    async fn work_loop(self: Arc<Self>) {
        let asynchronous = self.function.is_async();
        let mut tasks = JoinSet::new();
        loop {
            let notified = self.work.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            while tasks.try_join_next().is_some() {}
            let job = {
                let mut st = self.lock();
                let may_take = if asynchronous {
                    tasks.len() < PER_WORKER
                } else {
                    st.busy < self.spec.size
                };
                match st.queue.front() {
                    Some(_) if may_take => {
                        if !asynchronous {
                            st.busy += 1;
                        }
                        let job = st.queue.pop_front().expect("checked");
                        st.running.push(job.done.control.clone());
                        Some(job)
                    }
                    _ if st.closing.is_some() && st.queue.is_empty() && tasks.is_empty() => {
                        st.workers -= 1;
                        return;
                    }
                    _ => {
                        // A worker busy with async calls is not free: its calls may be using
                        // the thread, so a queued call is a reason to add a worker (up to
                        // the pool's size) rather than to wait behind them.
                        if tasks.is_empty() {
                            st.waiting += 1;
                        }
                        None
                    }
                }
            };
            match job {
                Some(job) => {
                    self.room.notify_all();
                    if asynchronous {
                        tasks.spawn(self.clone().run_job(job));
                    } else {
                        let _slot = Slot {
                            pool: &self,
                            held: true,
                        };
                        self.clone().run_job(job).await;
                    }
                }
                None => {
                    let idle = tasks.is_empty();
                    let retire = tokio::select! {
                        () = &mut notified => false,
                        Some(_) = tasks.join_next(), if !tasks.is_empty() => false,
                        () = tokio::time::sleep(self.spec.idle()), if idle => true,
                    };
                    let mut st = self.lock();
                    if idle {
                        st.waiting -= 1;
                    }
                    if retire
                        && tasks.is_empty()
                        && st.queue.is_empty()
                        && st.workers > self.spec.min_workers()
                    {
                        st.workers -= 1;
                        return;
                    }
                }
            }
        }
    }

    async fn run_job(self: Arc<Self>, job: Job) {
        // Completes the call even if this future is dropped by a panic.
        let finish = Finish {
            pool: &self,
            done: &job.done,
        };
        let result = if job.done.control.is_canceled() {
            Err(Error::new(Kind::Canceled, "call canceled"))
        } else {
            self.in_flight.fetch_add(1, Ordering::Relaxed);
            let _flight = InFlight(&self.in_flight);
            let result = match job.work {
                Work::Call(args) => self.function.run(&args, &job.options).await,
                Work::Http(request, respond) => {
                    self.function
                        .handle_http(*request, respond, &job.options)
                        .await
                }
            };
            self.count(result.is_err());
            result
        };
        std::mem::forget(finish);
        self.finish(&job.done, result);
    }

    /// Ends a job: no longer running, its result given.
    fn finish(&self, done: &Completion, result: Result<Value, Error>) {
        {
            let mut st = self.lock();
            if let Some(i) = st
                .running
                .iter()
                .position(|c| Arc::ptr_eq(c, &done.control))
            {
                st.running.swap_remove(i);
            }
        }
        done.complete(result);
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

/// One call in flight, counted down on drop.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Fills a job's completion when its run is dropped before it ends (a panic): the waiter gets
/// an `INTERNAL` error instead of waiting forever.
struct Finish<'a> {
    pool: &'a Pool,
    done: &'a Completion,
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        let error = Error::internal(format!(
            "failed to call `{}`: internal error: the call's worker panicked",
            self.pool.function.id()
        ))
        .with(|d| d.entry = Some(self.pool.function.id().to_string()));
        self.pool.count(true);
        self.pool.finish(self.done, Err(error));
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
