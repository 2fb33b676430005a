//! The worker threads of the pools that have them: queueing a call, starting a worker, a
//! worker's loop (take calls, wait, retire), and running one job to its completion however
//! it ends.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Waker};
use std::time::Instant;

use tokio::sync::futures::Notified;
use tokio::task::JoinSet;

use super::{Completion, InFlight, PER_WORKER, Pool, Slot, State, Task};
use crate::error::{Error, Kind};
use crate::function::{Args, CallOptions};
use crate::sync::{spin, unpoison};
use crate::value::Output;

pub(super) struct Job {
    pub(super) work: Work,
    pub(super) options: CallOptions,
    pub(super) done: Arc<Completion>,
}

impl Job {
    /// A call for the workers, cancelled through `done`.
    pub(super) fn new(work: Work, options: CallOptions, done: Arc<Completion>) -> Job {
        let options = CallOptions {
            control: Some(done.control.clone()),
            ..options
        };
        Job {
            work,
            options,
            done,
        }
    }
}

/// What a queued call does.
pub(super) enum Work {
    /// Call the function with these arguments.
    Call(Args),
    /// Run a task with the function (an incoming-handler answering a request).
    Task(Task),
}

impl Pool {
    /// Queues a job for the workers, waiting for room in a full queue (until the job is
    /// cancelled: see [`Pool::wake_submitters`]); adds a worker when the queued jobs
    /// outnumber the idle workers and the pool may grow. An idle worker counts as free until
    /// it takes a job, so two jobs queued before it wakes up get one worker each.
    pub(super) fn enqueue(self: &Arc<Self>, job: Job) -> Result<(), Error> {
        let mut st = self.lock();
        loop {
            if st.closing.is_some() {
                return Err(self.unavailable());
            }
            if st.queue.len() < self.spec.buffer {
                break;
            }
            if job.done.control.is_canceled() {
                return Err(Error::new(Kind::Canceled, "call canceled")
                    .with(|d| d.entry = Some(self.function.id().to_string())));
            }
            st = unpoison(self.room.wait(st));
        }
        st.queue.push_back(job);
        if st.queue.len() > st.idle
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

    /// Queues `task` for the pool's workers as one call (an instance's `inst:async`); `None`
    /// for a pool whose calls run on the caller's thread (nothing queued).
    ///
    /// # Errors
    /// As [`Pool::submit`].
    pub fn submit_task(
        self: &Arc<Self>,
        task: Task,
        options: CallOptions,
        done: Arc<Completion>,
    ) -> Result<Option<()>, Error> {
        if self.policy().on_caller() {
            return Ok(None);
        }
        self.enqueue(Job::new(Work::Task(task), options, done))
            .map(Some)
    }

    /// Wakes the submitters waiting for room in a full queue, so that those whose call was
    /// cancelled meanwhile give up (an HTTP request that ended, a service that stops).
    pub fn wake_submitters(&self) {
        let _st = self.lock();
        self.room.notify_all();
    }

    /// Starts a worker thread, counted once it exists.
    pub(super) fn spawn_worker(self: &Arc<Self>, st: &mut State) -> Result<(), Error> {
        let pool = self.clone();
        let thread = std::thread::Builder::new()
            .name(format!("funcs-{}", self.function.id()))
            .spawn(move || {
                // Counted idle by `spawn_worker`; uncounted however the worker ends.
                let idle = Idle {
                    pool: pool.clone(),
                    mark: Arc::new(Mark {
                        counted: true.into(),
                        calls: 0.into(),
                    }),
                };
                // A worker that panics (a bug of ours) leaves the pool consistent: its job was
                // completed by `Finish`, its slot released by `Slot`; it stops being counted.
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    rt.block_on(pool.clone().work_loop(idle));
                    Ok::<(), std::io::Error>(())
                }));
                match ran {
                    Ok(Ok(())) => {}
                    // E.g. out of file descriptors (a runtime needs an epoll and an event fd).
                    Ok(Err(e)) => pool.worker_lost(&format!("cannot build its runtime: {e}")),
                    Err(_) => pool.worker_lost("its worker panicked"),
                }
            })
            .map_err(|e| {
                Error::internal(format!(
                    "failed to call `{}`: cannot start a worker thread: {e}",
                    self.function.id()
                ))
            })?;
        st.workers += 1;
        st.idle += 1;
        let mut threads = unpoison(self.threads.lock());
        // Threads of retired workers have ended: nothing to keep for them.
        threads.retain(|t| !t.is_finished());
        threads.push(thread);
        Ok(())
    }

    /// A worker ended without its loop (its runtime could not be built, or it panicked):
    /// it is no longer counted, and if it was the last, the calls queued fail with
    /// `UNAVAILABLE` and `reason` instead of waiting for a worker that will not come. The
    /// pool stays usable: the next call starts a worker again.
    fn worker_lost(&self, reason: &str) {
        let failed = {
            let mut st = self.lock();
            st.workers -= 1;
            if st.workers == 0 {
                std::mem::take(&mut st.queue)
            } else {
                Default::default()
            }
        };
        self.room.notify_all();
        self.work.notify_waiters();
        // The last worker of a closed pool: the reaper releases it.
        self.poke();
        if failed.is_empty() {
            return;
        }
        let id = self.function.id();
        eprintln!("[{id}] a worker of `{id}` could not run: {reason}");
        for job in failed {
            let error = Error::new(
                Kind::Unavailable,
                format!("failed to call `{id}`: no worker could run it: {reason}"),
            )
            .with(|d| d.entry = Some(id.to_string()));
            self.record(Some(&error), Instant::now());
            job.done.complete(Err(error));
        }
    }

    /// A worker: takes calls while it may, waits otherwise, ends when closed and drained
    /// or idle past its time.
    async fn work_loop(self: Arc<Self>, mut idle: Idle) {
        let asynchronous = self.function.is_async();
        let mut tasks = JoinSet::new();
        loop {
            let notified = self.work.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            while tasks.try_join_next().is_some() {}
            let job = {
                let mut st = self.lock();
                if tasks.is_empty() {
                    idle.set(&mut st, true);
                }
                let may_take = if asynchronous {
                    // A worker busy with async calls is not free: its calls may be using the
                    // thread (a CPU-bound one runs again as soon as what it waited for is
                    // there). It takes only the calls no idle worker will, those beyond what
                    // the pool could grow for (`enqueue` added workers for the rest); an idle
                    // worker takes any.
                    tasks.len() < PER_WORKER && (idle.counted() || st.queue.len() > st.idle)
                } else {
                    st.busy < self.spec.size
                };
                match st.queue.front() {
                    Some(_) if may_take => {
                        idle.set(&mut st, false);
                        if asynchronous {
                            idle.mark.calls.fetch_add(1, Ordering::Relaxed);
                        } else {
                            st.busy += 1;
                        }
                        let job = st.queue.pop_front().expect("checked");
                        st.running.push(job.done.control.clone());
                        Some(job)
                    }
                    _ if st.closing.is_some() && st.queue.is_empty() && tasks.is_empty() => {
                        idle.set(&mut st, false);
                        st.workers -= 1;
                        drop(st);
                        // The last worker of a closed pool: the reaper releases it.
                        self.poke();
                        return;
                    }
                    _ => None,
                }
            };
            match job {
                Some(job) => {
                    self.room.notify_all();
                    if asynchronous {
                        tasks.spawn(self.clone().run_job(job, Some(idle.mark.clone())));
                        // Let the call run before taking another: a CPU-bound one keeps this
                        // thread until it ends or waits, so the calls queued meanwhile go to
                        // other workers (added up to the pool's size) instead of queueing
                        // behind it here; one that waits leaves the thread free for more.
                        tokio::task::yield_now().await;
                    } else {
                        let _slot = Slot {
                            pool: &self,
                            held: true,
                        };
                        self.clone().run_job(job, None).await;
                    }
                }
                None => {
                    let empty = tasks.is_empty();
                    // The next call often comes within microseconds (a caller's loop): spin
                    // for it before this thread sleeps, unless calls of its own wait here.
                    if empty && spin(|| notified_now(notified.as_mut())).is_some() {
                        continue;
                    }
                    let retire = tokio::select! {
                        () = &mut notified => false,
                        Some(_) = tasks.join_next(), if !empty => false,
                        () = tokio::time::sleep(self.policy().idle()), if empty => true,
                    };
                    let mut st = self.lock();
                    if retire
                        && tasks.is_empty()
                        && st.queue.is_empty()
                        && st.workers > self.policy().min_workers(&self.spec)
                    {
                        idle.set(&mut st, false);
                        st.workers -= 1;
                        return;
                    }
                }
            }
        }
    }

    /// Runs a job; `mark`: of the async worker running it (see [`Mark`]).
    pub(super) async fn run_job(self: Arc<Self>, job: Job, mark: Option<Arc<Mark>>) {
        // Completes the call even if this future is dropped by a panic.
        let finish = Finish {
            pool: &self,
            done: &job.done,
            started: Instant::now(),
            mark: mark.as_deref(),
        };
        let result = if job.done.control.is_canceled() {
            Err(Error::new(Kind::Canceled, "call canceled"))
        } else {
            self.in_flight.fetch_add(1, Ordering::Relaxed);
            let _flight = InFlight(&self.in_flight);
            let started = Instant::now();
            let result = match job.work {
                Work::Call(args) => self.function.run(&args, &job.options).await,
                Work::Task(task) => task(self.function.clone(), job.options)
                    .await
                    .map(Output::Value),
            };
            self.record(result.as_ref().err(), started);
            result
        };
        std::mem::forget(finish);
        self.finish(&job.done, result, mark.as_deref());
    }

    /// Ends a job: no longer running (its worker idle if it was its last call), its result
    /// given.
    pub(super) fn finish(
        &self,
        done: &Completion,
        result: Result<Output, Error>,
        mark: Option<&Mark>,
    ) {
        {
            let mut st = self.lock();
            if let Some(i) = st
                .running
                .iter()
                .position(|c| Arc::ptr_eq(c, &done.control))
            {
                st.running.swap_remove(i);
            }
            if let Some(mark) = mark {
                mark.ended(&mut st);
            }
        }
        done.complete(result);
    }
}

/// A worker's place among the pool's idle ones (`State::idle`): counted while it has no
/// call, given up when it takes one or ends, a panic included.
struct Idle {
    pool: Arc<Pool>,
    mark: Arc<Mark>,
}

/// Whether a worker is counted idle, and the calls it runs: shared with those calls, so
/// that the last one to end counts the worker idle as it completes (under the same lock),
/// not when the worker's loop comes round: a call submitted right after sees the worker
/// free, and a busy worker does not take it for want of one.
#[derive(Default)]
pub(super) struct Mark {
    counted: std::sync::atomic::AtomicBool,
    calls: std::sync::atomic::AtomicUsize,
}

impl Mark {
    /// Counts the worker idle or not; under the state lock.
    fn set(&self, st: &mut State, idle: bool) {
        if idle != self.counted.load(Ordering::Relaxed) {
            if idle {
                st.idle += 1;
            } else {
                st.idle -= 1;
            }
            self.counted.store(idle, Ordering::Relaxed);
        }
    }

    /// One of its calls ended; under the state lock.
    pub(super) fn ended(&self, st: &mut State) {
        if self.calls.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.set(st, true);
        }
    }
}

impl Idle {
    /// Counts the worker idle or not, under the state lock.
    fn set(&mut self, st: &mut State, idle: bool) {
        self.mark.set(st, idle);
    }

    fn counted(&self) -> bool {
        self.mark.counted.load(Ordering::Relaxed)
    }
}

impl Drop for Idle {
    fn drop(&mut self) {
        // Only when the worker ends other than by its loop's returns (which uncount it
        // under the lock they hold): a panic, or its runtime failing to start.
        let mut st = self.pool.lock();
        self.mark.set(&mut st, false);
    }
}

/// Fills a job's completion when its run is dropped before it ends (a panic, or the runtime
/// it ran on shutting down): the waiter gets an `INTERNAL` or `CANCELED` error instead of
/// waiting forever.
struct Finish<'a> {
    pool: &'a Pool,
    done: &'a Completion,
    started: Instant,
    mark: Option<&'a Mark>,
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        let error = if std::thread::panicking() {
            Error::internal(format!(
                "failed to call `{}`: internal error: the call's worker panicked",
                self.pool.function.id()
            ))
        } else {
            // Dropped unfinished: the runtime it ran on (an HTTP service's) shut down.
            self.pool.stopped()
        }
        .with(|d| d.entry = Some(self.pool.function.id().to_string()));
        self.pool.record(Some(&error), self.started);
        self.pool.finish(self.done, Err(error), self.mark);
    }
}

/// Whether `notified` fired (polled without a waker to call: the spin before a worker sleeps).
fn notified_now(notified: Pin<&mut Notified<'_>>) -> Option<()> {
    let mut cx = Context::from_waker(Waker::noop());
    notified.poll(&mut cx).is_ready().then_some(())
}
