//! The state one `require("funcs")` owns: its registry, its pools, and loading and calling
//! through them.
//!
//! Lua-free, so that it can be driven from Rust tests and benches as well.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use crate::engine::TickerGuard;
use crate::error::{Error, Kind, Result};
use crate::function::{Args, CallOptions, Function};
use crate::host::{self, HostInterface, HostSet};
use crate::instance::Instance;
use crate::pool::{Completion, Handle, Reaper, Stats};
use crate::registry::{Entry, Registry, Summary};
use crate::signal::Signal;
use crate::sync::unpoison;
use crate::transport::http::{Lookup, Metrics, Server};
use crate::value::{Output, Value};

/// A registry and the operations on it.
#[derive(Default)]
pub struct Runtime {
    /// Shared with the HTTP servers, which look functions up per request.
    registry: Arc<RwLock<Registry>>,
    /// Running HTTP services, by ID.
    servers: Mutex<HashMap<String, Server>>,
    /// Every pool committed and not yet finished, to stop and join on shutdown; its thread
    /// releases the pools reloaded away once their last call ends.
    reaper: Reaper,
    /// Held from the first deadline or async call until the runtime is dropped.
    ticker: OnceLock<TickerGuard>,
    closed: std::sync::atomic::AtomicBool,
    /// Bumped by every load's commit: a function looked up before may be stale after.
    generation: std::sync::atomic::AtomicU64,
    /// The Lua thread's inbox: every future's completion (`funcs.fd`, `funcs.poll`) and host
    /// calls from workers.
    signal: Arc<Signal>,
    /// Interfaces registered with `funcs.host`, for the loads after.
    hosts: RwLock<Vec<Arc<HostInterface>>>,
    /// Set once an interface is registered or an entry grants `funcs`: from then on, waits
    /// inside funcs answer host calls.
    hosting: std::sync::atomic::AtomicBool,
    /// Instances made by [`Runtime::instantiate`], closed by [`Runtime::shutdown`].
    instances: Mutex<Vec<std::sync::Weak<Instance>>>,
    /// The resources Lua defines (`funcs.host`), and what guests hold of them.
    reps: Arc<host::Reps>,
}

impl Runtime {
    /// Loads (or reloads) the registry files under `path`, all or nothing.
    ///
    /// Entries loaded again get new pools; calls already admitted finish on the old ones,
    /// which stop once drained. Everything that can fail (reading, compiling, binding the
    /// services that start with the load) happens before the commit: a load that returns an
    /// error has changed no entry, pool, service or listener.
    ///
    /// # Errors
    /// See [`Registry::prepare`]; `UNAVAILABLE` when a service that starts with the load
    /// cannot bind its address, and after [`Runtime::shutdown`].
    pub fn load(&self, path: &Path) -> Result<Summary> {
        self.check_open()?;
        // Reading and compiling happen outside the write lock: calls go on meanwhile.
        let hosts = HostSet {
            interfaces: unpoison(self.hosts.read()).clone(),
            inbox: self.signal.clone(),
            reps: self.reps.clone(),
        };
        let prepared = self.registry().prepare(path, &hosts)?;
        // Held by the runtime only once committed (services need it too).
        let ticker = if self.ticker.get().is_none()
            && (prepared.has_deadlines() || !prepared.auto_start().is_empty())
        {
            Some(TickerGuard::acquire()?)
        } else {
            None
        };
        // Services that start with the load are bound now, serving only after the commit; a
        // service of the same ID already running is kept (its routes stay, the functions
        // behind them are swapped), so its listener serves through the reload. On a failure
        // those bound here are dropped, which closes them.
        let mut servers = self.servers();
        let mut starting = Vec::new();
        for (id, spec) in prepared.auto_start() {
            if servers.contains_key(id) {
                continue;
            }
            let endpoints = self.registry().endpoints(id, Some(&prepared));
            let server = Server::bind(id, spec, endpoints, self.lookup(), self.metrics_source())
                .map_err(|e| {
                    e.context(format_args!(
                        "did not load {}: `{id}` did not start",
                        path.display()
                    ))
                })?;
            starting.push((id.to_string(), server));
        }
        // The commit: nothing below fails.
        if prepared.has_hosts() {
            self.hosting
                .store(true, std::sync::atomic::Ordering::Release);
        }
        let new: Vec<_> = prepared.pools().cloned().collect();
        let summary = {
            let mut registry = unpoison(self.registry.write());
            let summary = registry.commit(prepared);
            self.generation
                .fetch_add(1, std::sync::atomic::Ordering::Release);
            summary
        };
        if let Some(ticker) = ticker {
            // Another thread may have set one meanwhile: this one is then dropped.
            let _ = self.ticker.set(ticker);
        }
        // The pools this load replaced are released by the reaper once their calls end.
        for pool in new {
            pool.start();
            self.reaper.track(pool);
        }
        for (id, mut server) in starting {
            server.serve();
            servers.insert(id, server);
        }
        Ok(summary)
    }

    /// The pool of function `id`.
    ///
    /// # Errors
    /// See [`Registry::function`].
    pub fn function(&self, id: &str) -> Result<Arc<Handle>> {
        self.check_open()?;
        self.registry().function(id)
    }

    /// Changes with every load: a handle looked up at one generation is the function of its
    /// ID as long as the generation and [`Runtime::is_open`] stay.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether [`Runtime::shutdown`] has not run.
    pub fn is_open(&self) -> bool {
        !self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A live instance of entry `id` for the caller to keep (`funcs.instantiate`).
    ///
    /// # Errors
    /// See [`Runtime::function`] and [`Instance::open`].
    pub fn instantiate(&self, id: &str, options: &CallOptions) -> Result<Arc<Instance>> {
        let handle = self.function(id)?;
        // Deadlines count epoch ticks.
        self.ensure_ticker()?;
        let instance = Instance::open(handle, options)?;
        let mut all = unpoison(self.instances.lock());
        all.retain(|i| i.strong_count() > 0);
        all.push(Arc::downgrade(&instance));
        Ok(instance)
    }

    /// Calls function `id` with `args` and waits for the result.
    ///
    /// # Errors
    /// See [`crate::function::Function::run`].
    pub fn call(&self, id: &str, args: &[Value]) -> Result<Value> {
        let handle = self.function(id)?;
        let args = handle.0.function().lower(args)?;
        self.call_with(&handle, args, CallOptions::default())
            .map(Output::into_value)
    }

    /// Calls through a handle from [`Runtime::function`].
    ///
    /// # Errors
    /// See [`crate::function::Function::run`].
    pub fn call_with(&self, handle: &Handle, args: Args, options: CallOptions) -> Result<Output> {
        if options.timeout_ms.is_some() {
            self.ensure_ticker()?;
        }
        handle.0.call(args, options)
    }

    /// [`Runtime::call_with`] answering host calls while it waits: through `serve` on this
    /// thread when the call runs here, and from the inbox when it runs on a worker.
    ///
    /// # Errors
    /// As [`Runtime::call_with`].
    pub fn call_serving(
        &self,
        handle: &Handle,
        args: Args,
        options: CallOptions,
        serve: &host::Serve<'_>,
    ) -> Result<Output> {
        if handle.0.runs_here() {
            return host::serving(&self.signal, serve, || {
                self.call_with(handle, args, options)
            });
        }
        if options.timeout_ms.is_some() {
            self.ensure_ticker()?;
        }
        let done = Completion::waking(self.signal.clone());
        handle.0.submit(args, options, done.clone())?;
        self.wait_serving(&done, None, serve);
        done.take().expect("waited for it")
    }

    /// Waits for `done` until `until`, answering host calls meanwhile (and serving this
    /// thread's own for what they call); whether it completed.
    pub fn wait_serving(
        &self,
        done: &Completion,
        until: Option<std::time::Instant>,
        serve: &host::Serve<'_>,
    ) -> bool {
        loop {
            self.serve_waiting(serve);
            if done.is_complete() {
                return true;
            }
            if !self.signal.wait(|| done.is_complete(), until) && !done.is_complete() {
                return false;
            }
        }
    }

    /// Answers the host calls waiting in the inbox (those nobody waits for any more are
    /// dropped); how many ran.
    pub fn serve_waiting(&self, serve: &host::Serve<'_>) -> usize {
        let mut ran = 0;
        while let Some(call) = self.signal.next_call() {
            if !call.abandoned() {
                let result = host::serving(&self.signal, serve, || serve(&call));
                call.answer(result);
                ran += 1;
            }
        }
        ran
    }

    /// Runs `f` as a call of `handle`'s pool on this thread (see [`Pool::here`]); the pool
    /// must [run calls here](Pool::runs_here).
    ///
    /// # Errors
    /// `f`'s, or `UNAVAILABLE` when the pool was closed.
    pub fn call_here<T>(
        &self,
        handle: &Handle,
        options: &CallOptions,
        f: impl FnOnce(&Function) -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        if options.timeout_ms.is_some() {
            self.ensure_ticker()?;
        }
        handle.0.here(f)
    }

    /// Starts a call; its result goes to the returned completion.
    ///
    /// # Errors
    /// `UNAVAILABLE` when the pool was closed.
    pub fn submit(
        &self,
        handle: &Handle,
        args: Args,
        options: CallOptions,
    ) -> Result<Arc<Completion>> {
        // Cancellation is checked on epoch ticks.
        self.ensure_ticker()?;
        let done = Completion::signaling(self.signal.clone());
        handle.0.submit(args, options, done.clone())?;
        Ok(done)
    }

    /// Registers (or replaces) a host interface for the loads after (`funcs.host`).
    pub fn register_host(&self, interface: HostInterface) {
        let mut hosts = unpoison(self.hosts.write());
        hosts.retain(|h| h.name != interface.name);
        hosts.push(Arc::new(interface));
        self.hosting
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether host calls may come (calls then wait answering them).
    pub fn has_hosts(&self) -> bool {
        self.hosting.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The Lua thread's inbox.
    pub fn inbox(&self) -> &Arc<Signal> {
        &self.signal
    }

    /// The resources Lua defines (`funcs.host`).
    pub fn reps(&self) -> &Arc<host::Reps> {
        &self.reps
    }

    /// A descriptor that becomes readable when a future completes (SPEC section 12).
    ///
    /// # Errors
    /// `INTERNAL` when the process cannot make a pipe.
    pub fn fd(&self) -> Result<std::os::fd::RawFd> {
        self.signal
            .fd()
            .map_err(|e| Error::internal(format!("cannot make the event-loop descriptor: {e}")))
    }

    /// Clears the descriptor of [`Runtime::fd`]; the futures completed since the last poll.
    pub fn poll(&self) -> usize {
        self.signal.take()
    }

    /// Counters of every function entry, by ID.
    pub fn stats(&self) -> Vec<(String, Stats)> {
        self.registry().stats()
    }

    /// [`Runtime::stats`] in the Prometheus text format (`funcs.metrics`).
    pub fn metrics(&self) -> String {
        crate::metrics::render(&self.stats())
    }

    /// Starts the `http.service` `id` with the endpoints loaded for it; its address.
    ///
    /// # Errors
    /// `NOT_FOUND` for an unknown service, `INVALID` if it already runs, `UNAVAILABLE` when
    /// its address cannot be bound or its runtime or thread cannot be made.
    pub fn start_http(&self, id: &str) -> Result<SocketAddr> {
        self.check_open()?;
        let mut servers = self.servers();
        if servers.contains_key(id) {
            return Err(Error::invalid(format!(
                "http.service `{id}` is already running"
            )));
        }
        let (spec, endpoints) = {
            let registry = self.registry();
            let Some(Entry::Service(spec)) = registry.get(id) else {
                return Err(Error::not_found(format!("http.service `{id}` not found")));
            };
            (spec.clone(), registry.endpoints(id, None))
        };
        self.ensure_ticker()?;
        let server = Server::start(id, &spec, endpoints, self.lookup(), self.metrics_source())?;
        let addr = server.addr;
        servers.insert(id.to_string(), server);
        Ok(addr)
    }

    /// How a service finds a route's function: in the registry, per request.
    fn lookup(&self) -> Lookup {
        let registry = self.registry.clone();
        Arc::new(move |func| unpoison(registry.read()).function(func))
    }

    /// The metrics text a service's `metrics` path serves.
    fn metrics_source(&self) -> Metrics {
        let registry = self.registry.clone();
        Arc::new(move || crate::metrics::render(&unpoison(registry.read()).stats()))
    }

    /// Stops the service `id`: no new connections, requests in flight finish.
    ///
    /// # Errors
    /// `NOT_FOUND` when it does not run.
    pub fn stop_http(&self, id: &str) -> Result<()> {
        let server = self.servers().remove(id);
        match server {
            Some(s) => {
                s.stop();
                Ok(())
            }
            None => Err(Error::not_found(format!(
                "http.service `{id}` is not running"
            ))),
        }
    }

    /// The address the service `id` listens on, while it runs.
    pub fn http_addr(&self, id: &str) -> Option<SocketAddr> {
        self.servers().get(id).map(|s| s.addr)
    }

    fn servers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Server>> {
        unpoison(self.servers.lock())
    }

    /// Stops every pool: queued calls fail with `UNAVAILABLE`, running ones are interrupted,
    /// and every worker thread is joined. Loads and calls fail afterwards.
    pub fn shutdown(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        let servers = std::mem::take(&mut *self.servers());
        for (_, server) in servers {
            server.stop();
        }
        let pools = self.reaper.take_all();
        for pool in &pools {
            pool.close(true);
        }
        for pool in &pools {
            pool.join();
        }
        // After the pools it may be releasing.
        self.reaper.stop();
        let instances = std::mem::take(&mut *unpoison(self.instances.lock()));
        for instance in instances.iter().filter_map(std::sync::Weak::upgrade) {
            // From a host function of its own call: it ends when the Lua state closes.
            let _ = instance.close();
        }
        crate::instance::bury();
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::new(Kind::Unavailable, "funcs was shut down"));
        }
        Ok(())
    }

    /// Holds the epoch ticker from now on (deadlines need it).
    fn ensure_ticker(&self) -> Result<()> {
        if self.ticker.get().is_none() {
            // Two threads may both acquire: the guard not kept is dropped, which is counted.
            let _ = self.ticker.set(TickerGuard::acquire()?);
        }
        Ok(())
    }

    fn registry(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        unpoison(self.registry.read())
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Worker threads run this library's code: they must end before Lua unloads it.
        self.shutdown();
    }
}
