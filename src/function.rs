//! A function ready to call: its compiled artefact, its export and signature, and the call.
//!
//! Core modules with scalar signatures are called as core functions; components (and core
//! modules whose `wit` needs the canonical ABI, wrapped into components at load) go through
//! the component model with `Val`s. Every call gets a fresh instance from an `InstancePre`,
//! so no guest state survives a call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::{Component, ComponentExportIndex, ResourceTable, ResourceType, Type};
use wasmtime::{ExternType, Store, Trap, WasmBacktrace};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::sync::unpoison;
use crate::compile::{self, Artefact};
use crate::engine::{engine, engine_for};
use crate::error::{Error, Kind, expected_args};
use crate::limits::{Canceled, Control, Limits, MemoryLimiter};
use crate::signature::{ScalarSig, Signature};
use crate::value::direct::{self, FlatResult, LuaArgs, MemoryResult, Mismatch, Shape, Tape};
use crate::value::{self, ConvError, CoreType, Value};
use crate::wasi::{self, WasiSpec};

/// Per-call store data.
pub struct CallCtx {
    table: ResourceTable,
    limiter: MemoryLimiter,
    /// WASIp2, for components with granted interfaces (boxed: a store without WASI is made
    /// faster when it is small).
    wasi: Option<Box<WasiCtx>>,
    /// WASIp1, for core modules importing `wasi_snapshot_preview1`.
    p1: Option<Box<WasiP1Ctx>>,
    /// This call's deadline in ms, for the error message.
    timeout: Option<u64>,
    /// wasi:http, for `wasi:http/incoming-handler` components.
    http: WasiHttpCtx,
    hooks: NoOutgoingRequests,
}

/// Outgoing requests are not linked (`wasi:http/outgoing-handler` is a stub), so this is
/// never asked; it refuses if it is.
struct NoOutgoingRequests;

type OutgoingDone = Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>;

impl wasmtime_wasi_http::WasiHttpHooks for NoOutgoingRequests {
    fn send_request(
        &mut self,
        _request: hyper::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _done: OutgoingDone,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    hyper::Response<wasmtime_wasi_http::WasiBody>,
                    OutgoingDone,
                )>,
            > + Send,
    > {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

impl CallCtx {
    pub fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    fn p1(&mut self) -> &mut WasiP1Ctx {
        self.p1
            .as_mut()
            .expect("WASIp1 is linked only with its context")
    }
}

impl WasiHttpView for CallCtx {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl WasiView for CallCtx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: self
                .wasi
                .as_mut()
                .expect("WASI is linked only with its context"),
            table: &mut self.table,
        }
    }
}

/// What an entry may import: the granted WASI interfaces and what its guests see.
#[derive(Debug, Clone, Default)]
pub struct Sandbox {
    pub granted: Vec<&'static str>,
    /// `transport: wasi-http`: a component exporting `wasi:http/incoming-handler` gets
    /// `wasi:http/types` and serves requests whole.
    pub http: bool,
    pub wasi: WasiSpec,
}

/// How one call runs beyond the entry's own limits.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// Replaces `limits.max_execution_ms` (an executor's `timeout`).
    pub timeout_ms: Option<u64>,
    /// Lets the call be cancelled (futures).
    pub control: Option<Arc<Control>>,
}

impl CallOptions {
    fn timeout(&self, limits: &Limits) -> Option<u64> {
        self.timeout_ms
            .or(limits.max_execution_ms)
            .map(|ms| ms.min(crate::limits::MAX_TIMEOUT_MS))
    }
}

/// Arguments converted to a function's parameter types by [`Function::lower`].
#[derive(Debug, Clone)]
pub enum Args {
    Core(Vec<wasmtime::Val>),
    Component(Vec<wasmtime::component::Val>),
}

/// The body of a request served to an incoming-handler (bounded by the HTTP server).
pub type IncomingBody = http_body_util::combinators::UnsyncBoxBody<
    bytes::Bytes,
    wasmtime_wasi_http::p2::bindings::http::types::ErrorCode,
>;

/// How an HTTP response carries a function's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Text,
    Bytes,
    Json,
}

/// An instance of a function's module or component, by the export called.
enum Instance {
    Core(wasmtime::Func),
    Component(wasmtime::component::Func),
}

/// An instance kept for more calls (`pool.reuse`), with its store.
struct Warm {
    store: Store<CallCtx>,
    instance: Instance,
    /// Calls made in it so far.
    uses: usize,
}

/// A callable export of a compiled entry.
pub struct Function {
    id: String,
    method: String,
    /// The export `method` bound: `ns:pkg/iface@0.2.0#func`, or the method itself.
    bound: String,
    /// Its results hold a resource, which cannot reach Lua: calls are refused (at load, so
    /// that no call walks the types).
    returns_resource: bool,
    target: Target,
    limits: Limits,
    sandbox: Sandbox,
    /// Whether calls go through wasmtime's async support (WASI host calls may wait).
    asynchronous: bool,
    /// Set when blocking calls may take the direct path (`value::direct`).
    direct: Option<Shape>,
    /// Instances created, for `funcs.stats`.
    instances: AtomicU64,
    /// `transport: wasi-http`: the function may serve HTTP endpoints.
    http: bool,
    /// Calls one instance may serve (`pool.reuse`); 0 or 1: a fresh instance per call.
    reuse: usize,
    warm: Mutex<Vec<Warm>>,
    /// Held so that other entries with the same bytes find it (the shared map is weak).
    _artefact: Arc<Artefact>,
}

enum Target {
    Core {
        pre: wasmtime::InstancePre<CallCtx>,
        export: wasmtime::ModuleExport,
        params: Vec<(String, CoreType)>,
        results: Vec<CoreType>,
        /// Links WASIp1 (async).
        p1: bool,
    },
    Component {
        pre: wasmtime::component::InstancePre<CallCtx>,
        export: ComponentExportIndex,
        params: Vec<(String, Type)>,
        results: Vec<Type>,
        /// Set for `wasi:http/incoming-handler` components with the wasi-http transport.
        handler: Option<ProxyPre<CallCtx>>,
        /// The full name of the export `method` bound.
        bound: String,
    },
}

impl Function {
    /// Compiles `bytes` (sharing artefacts with other entries) and prepares `method`.
    ///
    /// `wit` is only read for core modules.
    ///
    /// # Errors
    /// A message (without the entry ID) for what does not fit: compile errors, an unknown
    /// method, a signature that does not match the core export.
    pub fn build(
        id: &str,
        method: &str,
        bytes: &[u8],
        wit: Option<&str>,
        limits: Limits,
        sandbox: Sandbox,
        reuse: usize,
    ) -> Result<Function, String> {
        let fuel = limits.max_fuel.is_some();
        let artefact = compile::compile(bytes, fuel)?;
        let mut wrapped_artefact = None;
        let granted = &sandbox.granted;
        let target = match (&*artefact, wit) {
            (Artefact::Component(component), _) => {
                component_target(component, method, fuel, granted, sandbox.http)?
            }
            (Artefact::Module(module), None) => core_target(module, method, None, fuel, granted)?,
            (Artefact::Module(module), Some(wit)) => {
                let sig = Signature::parse(wit)?;
                match sig.scalar(method)? {
                    Some(scalar) => core_target(module, method, Some(scalar), fuel, granted)?,
                    None => {
                        let wrapped = compile::compile(&sig.componentize(bytes)?, fuel)?;
                        let Artefact::Component(component) = &*wrapped else {
                            unreachable!("componentize makes components")
                        };
                        let target = component_target(component, method, fuel, granted, false)?;
                        wrapped_artefact = Some(wrapped.clone());
                        target
                    }
                }
            }
        };
        let asynchronous = match &target {
            Target::Core { p1, .. } => *p1,
            Target::Component { handler, .. } => !sandbox.granted.is_empty() || handler.is_some(),
        };
        let direct = match &target {
            Target::Component {
                params, results, ..
            } if !asynchronous => {
                let params: Vec<Type> = params.iter().map(|(_, ty)| ty.clone()).collect();
                direct::plan(&params, results)
            }
            _ => None,
        };
        let (bound, returns_resource) = match &target {
            Target::Component { bound, results, .. } => {
                (bound.clone(), results.iter().any(value::holds_resource))
            }
            Target::Core { .. } => (method.to_string(), false),
        };
        Ok(Function {
            id: id.to_string(),
            method: method.to_string(),
            bound,
            returns_resource,
            target,
            limits,
            sandbox,
            asynchronous,
            direct,
            instances: AtomicU64::new(0),
            http: false,
            reuse,
            warm: Mutex::new(Vec::new()),
            _artefact: wrapped_artefact.unwrap_or(artefact),
        })
    }

    /// Marks the function as served over HTTP (`transport: wasi-http`).
    pub fn with_http(mut self, http: bool) -> Self {
        self.http = http;
        self
    }

    pub fn is_http(&self) -> bool {
        self.http
    }

    /// What an HTTP response body made from the result is: a WIT `string` is text, a
    /// `list<u8>` bytes, anything else JSON.
    pub fn body_kind(&self) -> BodyKind {
        match &self.target {
            Target::Component { results, .. } => match results.as_slice() {
                [Type::String] => BodyKind::Text,
                [Type::List(l)] if matches!(l.ty(), Type::U8) => BodyKind::Bytes,
                _ => BodyKind::Json,
            },
            Target::Core { .. } => BodyKind::Json,
        }
    }

    /// Whether calls must run on a Tokio runtime (WASI host calls may wait there).
    pub fn is_async(&self) -> bool {
        self.asynchronous
    }

    /// The export the method bound (`ns:pkg/iface@0.2.0#func`, or the method itself).
    pub fn bound(&self) -> &str {
        &self.bound
    }

    /// Instances created so far.
    pub fn instances(&self) -> u64 {
        self.instances.load(Ordering::Relaxed)
    }

    /// The entry ID, `ns:name`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The entry's limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The number of parameters.
    pub fn arity(&self) -> usize {
        match &self.target {
            Target::Core { params, .. } => params.len(),
            Target::Component { params, .. } => params.len(),
        }
    }

    /// The name of parameter `index` (0-based); `p1`, `p2`... for core functions without `wit`.
    pub fn param_name(&self, index: usize) -> &str {
        match &self.target {
            Target::Core { params, .. } => params.get(index).map(|(n, _)| n.as_str()),
            Target::Component { params, .. } => params.get(index).map(|(n, _)| n.as_str()),
        }
        .unwrap_or("?")
    }

    /// Calls a function that is not [async](Function::is_async) on this thread.
    ///
    /// # Errors
    /// See [`Function::run`].
    pub fn call(&self, args: &Args, options: &CallOptions) -> Result<Value, Error> {
        assert!(!self.asynchronous, "async entries run on a Tokio runtime");
        let (mut store, instance, uses) = self.checkout(options)?;
        let (instance, result) = now(self.invoke(&mut store, instance, args));
        if let Some(instance) = instance
            && result.is_ok()
        {
            self.checkin(store, instance, uses);
        }
        result
    }

    /// Calls the function in a fresh instance; async entries must be polled on a Tokio
    /// runtime.
    ///
    /// No result gives [`Value::Nil`], one result that value, several an array.
    ///
    /// # Errors
    /// `INVALID` for a wrong argument count or value (naming the argument and path);
    /// `TIMEOUT` past the deadline; `CANCELED`; `NOT_FOUND` for a missing required WASI
    /// variable; `INTERNAL` for traps, guest exits and instantiation failures.
    pub async fn run(&self, args: &Args, options: &CallOptions) -> Result<Value, Error> {
        let timeout = options.timeout(&self.limits);
        let control = options.control.as_ref();
        let (mut store, instance, uses) = self.checkout(options)?;
        let (instance, result) = if self.asynchronous {
            let call = self.invoke(&mut store, instance, args);
            self.bounded(call, timeout, control, |e| (None, Err(e)))
                .await
        } else {
            self.invoke(&mut store, instance, args).await
        };
        if let Some(instance) = instance
            && result.is_ok()
        {
            self.checkin(store, instance, uses);
        }
        result
    }

    /// Whether blocking calls may take the direct path ([`Function::call_direct`]).
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Calls on the Lua thread, reading the arguments from `state`'s stack at `first..` and
    /// lifting the result onto a [`Tape`] (see `value::direct`).
    ///
    /// `Ok(None)`: an argument the direct path does not take, or a wrong count. Nothing of the
    /// call ran (the instance it may have started is dropped): make it on the general path.
    ///
    /// # Safety
    /// `state` is the running Lua thread, with `count` arguments at `first..`, and this
    /// function [is direct](Function::is_direct).
    ///
    /// # Errors
    /// As [`Function::run`], but for argument errors (above).
    pub unsafe fn call_direct(
        &self,
        state: *mut mlua::ffi::lua_State,
        first: std::ffi::c_int,
        count: usize,
        options: &CallOptions,
    ) -> Result<Option<Tape>, Error> {
        let Some(shape) = self.direct else {
            unreachable!("checked by is_direct")
        };
        if count != self.arity() {
            return Ok(None);
        }
        let (mut store, instance, uses) = self.checkout(options)?;
        let instance = match instance {
            Some(instance) => instance,
            None => now(self.instantiate(&mut store))?,
        };
        let Instance::Component(func) = instance else {
            unreachable!("components make component instances")
        };
        // SAFETY: the caller's promise, passed on.
        let args = unsafe { LuaArgs::new(state, first) };
        let result = match shape {
            Shape::Unit => func
                .typed::<LuaArgs, ()>(&store)
                .and_then(|f| f.call(&mut store, args))
                .map(|()| Tape::default()),
            Shape::Flat => func
                .typed::<LuaArgs, FlatResult>(&store)
                .and_then(|f| f.call(&mut store, args))
                .map(|r| r.0),
            Shape::Memory => func
                .typed::<LuaArgs, MemoryResult>(&store)
                .and_then(|f| f.call(&mut store, args))
                .map(|r| r.0),
        };
        match result {
            Ok(tape) => {
                self.checkin(store, instance, uses);
                Ok(Some(tape))
            }
            Err(e) if e.is::<Mismatch>() => Ok(None),
            Err(e) => Err(self.trap(e, &store)),
        }
    }

    /// A warm instance with its store, limits armed again, or a new store and no instance;
    /// with the calls the instance served.
    fn checkout(
        &self,
        options: &CallOptions,
    ) -> Result<(Store<CallCtx>, Option<Instance>, usize), Error> {
        let timeout = options.timeout(&self.limits);
        let control = options.control.as_ref();
        let warm = match self.reuse {
            0 | 1 => None,
            _ => unpoison(self.warm.lock()).pop(),
        };
        Ok(match warm {
            Some(Warm {
                mut store,
                instance,
                uses,
            }) => {
                store.data_mut().limiter.refused = false;
                store.data_mut().timeout = timeout;
                self.limits.arm(&mut store, timeout, control);
                (store, Some(instance), uses)
            }
            None => (self.store(timeout, control)?, None, 0),
        })
    }

    /// Keeps an instance after a call that ended well (a trap may leave it broken) while it
    /// has uses left.
    fn checkin(&self, store: Store<CallCtx>, instance: Instance, uses: usize) {
        if uses + 1 < self.reuse {
            let warm = Warm {
                store,
                instance,
                uses: uses + 1,
            };
            unpoison(self.warm.lock())
                .push(warm);
        }
    }

    /// Whether this is a `wasi:http/incoming-handler` served whole over HTTP.
    pub fn is_handler(&self) -> bool {
        matches!(
            &self.target,
            Target::Component {
                handler: Some(_),
                ..
            }
        )
    }

    /// Runs the incoming-handler on `request`; its response goes to `respond` as soon as
    /// the guest sets it (the body streams while the guest writes it).
    ///
    /// # Errors
    /// As [`Function::run`]; the request is answered by the caller then.
    pub async fn handle_http(
        &self,
        request: hyper::Request<IncomingBody>,
        respond: tokio::sync::oneshot::Sender<
            Result<hyper::Response<HyperOutgoingBody>, ErrorCode>,
        >,
        options: &CallOptions,
    ) -> Result<Value, Error> {
        let Target::Component {
            handler: Some(handler),
            ..
        } = &self.target
        else {
            unreachable!("checked by is_handler")
        };
        let timeout = options.timeout(&self.limits);
        let control = options.control.as_ref();
        let mut store = self.store(timeout, control)?;
        let call = async {
            self.instances.fetch_add(1, Ordering::Relaxed);
            let proxy = handler
                .instantiate_async(&mut store)
                .await
                .map_err(|e| self.trap(e, &store))?;
            let http = |e: wasmtime::Error| self.fail(Error::internal(format!("{e:#}")));
            let req = store
                .data_mut()
                .http()
                .new_incoming_request(Scheme::Http, request)
                .map_err(http)?;
            let out = store
                .data_mut()
                .http()
                .new_response_outparam(respond)
                .map_err(http)?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
                .map_err(|e| self.trap(e, &store))?;
            Ok(Value::Nil)
        };
        self.bounded(call, timeout, control, Err).await
    }

    /// Runs `call` until it ends, its deadline passes or it is cancelled: a guest waiting on
    /// the host does not tick, so the deadline and cancellation also stop the wait itself.
    /// `stopped` makes the output for the error of a call stopped that way.
    async fn bounded<T>(
        &self,
        call: impl Future<Output = T>,
        timeout: Option<u64>,
        control: Option<&Arc<Control>>,
        stopped: impl FnOnce(Error) -> T,
    ) -> T {
        let canceled = async {
            match control {
                Some(c) => c.canceled().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            done = call => done,
            () = sleep_for(timeout) => stopped(self.fail(self.timeout_error(timeout))),
            () = canceled => stopped(self.fail(Error::new(Kind::Canceled, "call canceled"))),
        }
    }

    /// Converts Lua-side values to this function's parameter types (on the caller's
    /// thread, so that a bad argument fails the call before it is queued).
    ///
    /// # Errors
    /// `INVALID`, naming the argument and the path inside it, or a wrong count.
    pub fn lower(&self, args: &[Value]) -> Result<Args, Error> {
        if args.len() != self.arity() {
            return Err(self.fail(Error::invalid(expected_args(self.arity(), args.len()))));
        }
        // Refused before the guest runs: a constructor must not run for nothing.
        if self.returns_resource {
            return Err(self.fail(Error::invalid(
                "result: resources cannot be returned to Lua",
            )));
        }
        Ok(match &self.target {
            Target::Core { params, .. } => Args::Core(
                params
                    .iter()
                    .zip(args)
                    .enumerate()
                    .map(|(i, ((_, ty), v))| {
                        value::to_core(v, *ty).map_err(|e| self.arg_error(i, e))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Target::Component { params, .. } => Args::Component(
                params
                    .iter()
                    .zip(args)
                    .enumerate()
                    .map(|(i, ((_, ty), v))| value::to_wit(v, ty).map_err(|e| self.arg_error(i, e)))
                    .collect::<Result<_, _>>()?,
            ),
        })
    }

    /// Calls in `instance`, or in a new one: the instance (to keep) and the result.
    async fn invoke(
        &self,
        store: &mut Store<CallCtx>,
        instance: Option<Instance>,
        args: &Args,
    ) -> (Option<Instance>, Result<Value, Error>) {
        let instance = match instance {
            Some(i) => i,
            None => match self.instantiate(store).await {
                Ok(i) => i,
                Err(e) => return (None, Err(e)),
            },
        };
        let result = self.call_in(store, &instance, args).await;
        (Some(instance), result)
    }

    /// A new instance, with its export looked up.
    async fn instantiate(&self, store: &mut Store<CallCtx>) -> Result<Instance, Error> {
        self.instances.fetch_add(1, Ordering::Relaxed);
        let asynchronous = self.asynchronous;
        let instance = match &self.target {
            Target::Core { pre, export, .. } => {
                let instance = if asynchronous {
                    pre.instantiate_async(&mut *store).await
                } else {
                    pre.instantiate(&mut *store)
                };
                instance.map(|i| {
                    let export = i.get_module_export(&mut *store, export);
                    Instance::Core(
                        export
                            .and_then(wasmtime::Extern::into_func)
                            .expect("export checked at load"),
                    )
                })
            }
            Target::Component { pre, export, .. } => {
                let instance = if asynchronous {
                    pre.instantiate_async(&mut *store).await
                } else {
                    pre.instantiate(&mut *store)
                };
                instance.map(|i| {
                    Instance::Component(
                        i.get_func(&mut *store, export)
                            .expect("export checked at load"),
                    )
                })
            }
        };
        instance.map_err(|e| self.trap(e, store))
    }

    async fn call_in(
        &self,
        store: &mut Store<CallCtx>,
        instance: &Instance,
        args: &Args,
    ) -> Result<Value, Error> {
        let asynchronous = self.asynchronous;
        match (&self.target, instance, args) {
            (Target::Core { results, .. }, Instance::Core(func), Args::Core(vals)) => {
                // Core functions have a result or two: no allocation for them.
                let mut buf = [wasmtime::Val::I32(0); 2];
                let mut vec;
                let out = match buf.get_mut(..results.len()) {
                    Some(out) => out,
                    None => {
                        vec = vec![wasmtime::Val::I32(0); results.len()];
                        &mut vec[..]
                    }
                };
                if asynchronous {
                    func.call_async(&mut *store, vals, out).await
                } else {
                    func.call(&mut *store, vals, out)
                }
                .map_err(|e| self.trap(e, store))?;
                let values = out
                    .iter()
                    .zip(results)
                    .map(|(v, ty)| value::from_core(v, *ty));
                collect_results(values).map_err(|e| self.result_error(e))
            }
            (
                Target::Component { results, .. },
                Instance::Component(func),
                Args::Component(vals),
            ) => {
                let mut out = vec![wasmtime::component::Val::Bool(false); results.len()];
                if asynchronous {
                    func.call_async(&mut *store, vals, &mut out).await
                } else {
                    func.call(&mut *store, vals, &mut out)
                }
                .map_err(|e| self.trap(e, store))?;
                let values = out
                    .into_iter()
                    .zip(results)
                    .map(|(v, ty)| value::from_wit(v, ty));
                collect_results(values).map_err(|e| self.result_error(e))
            }
            _ => unreachable!("arguments and instances made by this function"),
        }
    }

    /// A store for one call: limits armed, WASI context made (env read now).
    fn store(
        &self,
        timeout: Option<u64>,
        control: Option<&Arc<Control>>,
    ) -> Result<Store<CallCtx>, Error> {
        let (mut wasi, mut p1) = (None, None);
        match &self.target {
            Target::Core { p1: true, .. } => {
                p1 = Some(Box::new(
                    self.sandbox
                        .wasi
                        .builder(&self.id)
                        .map_err(|e| self.fail(e))?
                        .build_p1(),
                ))
            }
            Target::Component { .. } if self.asynchronous => {
                wasi = Some(Box::new(
                    self.sandbox
                        .wasi
                        .context(&self.id)
                        .map_err(|e| self.fail(e))?,
                ))
            }
            _ => {}
        }
        let ctx = CallCtx {
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(self.limits.max_memory_bytes),
            wasi,
            p1,
            timeout,
            http: WasiHttpCtx::new(),
            hooks: NoOutgoingRequests,
        };
        let mut store = Store::new(engine_for(self.limits.max_fuel.is_some()), ctx);
        // The pooling allocator bounds tables itself; on-demand stores need the limiter's
        // table cap even without a memory limit.
        if self.limits.max_memory_bytes.is_some()
            || *crate::engine::allocator() != crate::engine::Allocator::Pooling
        {
            store.limiter(|ctx| &mut ctx.limiter);
        }
        self.limits.arm(&mut store, timeout, control);
        Ok(store)
    }

    fn timeout_error(&self, timeout: Option<u64>) -> Error {
        Error::new(
            Kind::Timeout,
            format!(
                "execution time limit of {} ms exceeded",
                timeout.unwrap_or_default()
            ),
        )
    }

    /// `failed to call `id`: <message>`, with the entry and method in the details.
    fn fail(&self, e: Error) -> Error {
        let (id, method) = (self.id.clone(), self.method.clone());
        e.context(format_args!("failed to call `{}`", self.id))
            .with(|d| {
                d.entry = Some(id);
                d.method = Some(method);
            })
    }

    /// The error for argument `index` (0-based) failing to convert.
    pub fn arg_error(&self, index: usize, e: ConvError) -> Error {
        let name = self.param_name(index);
        let path = e.path();
        self.fail(
            Error::invalid(format!("argument {} ({name}): {e}", index + 1)).with(|d| {
                d.argument = Some(index + 1);
                d.path = (!path.is_empty()).then_some(path);
            }),
        )
    }

    fn result_error(&self, e: ConvError) -> Error {
        self.fail(Error::internal(format!("result: {e}")))
    }

    /// Classifies a wasmtime failure by its type, never by its text.
    fn trap(&self, e: wasmtime::Error, store: &Store<CallCtx>) -> Error {
        let backtrace = e.downcast_ref::<WasmBacktrace>().map(|bt| bt.to_string());
        let limits = &self.limits;
        if let Some(exit) = e.downcast_ref::<I32Exit>() {
            let code = exit.0;
            return self.fail(
                Error::internal(format!("guest exited with code {code}"))
                    .with(|d| d.exit_code = Some(code)),
            );
        }
        if e.downcast_ref::<Canceled>().is_some() {
            return self.fail(Error::new(Kind::Canceled, "call canceled"));
        }
        if let Some(denied) = e.downcast_ref::<Ungranted>() {
            return self.fail(Error::new(Kind::PermissionDenied, denied.to_string()));
        }
        let trap = e.downcast_ref::<Trap>();
        let error = match trap {
            Some(Trap::Interrupt) => self.timeout_error(store.data().timeout),
            Some(Trap::OutOfFuel) => Error::internal(format!(
                "fuel limit of {} exhausted",
                limits.max_fuel.unwrap_or_default()
            )),
            Some(trap) if store.data().limiter.refused => Error::internal(format!(
                "{trap} (after memory growth beyond the limit of {} bytes was refused)",
                limits.max_memory_bytes.unwrap_or_default()
            )),
            Some(trap) => Error::internal(trap.to_string()),
            None => Error::internal(e.root_cause().to_string()),
        };
        let code = trap.map(|trap| snake_case(&format!("{trap:?}")));
        self.fail(error.with(|d| {
            d.trap = code;
            d.backtrace = backtrace;
        }))
    }
}

/// The output of a future of a function that is not async: without WASI nothing awaits, so
/// it is done after one poll, with no runtime.
fn now<F: Future>(future: F) -> F::Output {
    match std::pin::pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("a call without async host functions never waits"),
    }
}

/// Resolves after `ms`, or never.
async fn sleep_for(ms: Option<u64>) {
    match ms {
        Some(ms) => tokio::time::sleep(std::time::Duration::from_millis(ms)).await,
        None => std::future::pending().await,
    }
}

/// No result is `nil`, one result is itself, several are one array.
fn collect_results(
    mut values: impl ExactSizeIterator<Item = Result<Value, ConvError>>,
) -> Result<Value, ConvError> {
    match values.len() {
        0 => Ok(Value::Nil),
        1 => values.next().expect("one value"),
        _ => values.collect::<Result<_, _>>().map(Value::Array),
    }
}

/// `UnreachableCodeReached` to `unreachable_code_reached`.
fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn core_target(
    module: &wasmtime::Module,
    method: &str,
    sig: Option<ScalarSig>,
    fuel: bool,
    granted: &[&str],
) -> Result<Target, String> {
    let ty = match module.get_export(method) {
        Some(ExternType::Func(ty)) => ty,
        Some(_) => return Err(format!("export `{method}` is not a function")),
        None => {
            let names: Vec<_> = module
                .exports()
                .filter(|e| matches!(e.ty(), ExternType::Func(_)))
                .map(|e| e.name().to_string())
                .collect();
            return Err(format!(
                "method `{method}` is not exported (functions: {})",
                names.join(", ")
            ));
        }
    };
    let core_params: Vec<_> = ty.params().collect();
    let core_results: Vec<_> = ty.results().collect();
    let (params, results) = match sig {
        Some(ScalarSig { params, results }) => {
            let fits = params.len() == core_params.len()
                && results.len() == core_results.len()
                && params
                    .iter()
                    .zip(&core_params)
                    .all(|((_, w), c)| w.matches(c))
                && results.iter().zip(&core_results).all(|(w, c)| w.matches(c));
            if !fits {
                return Err(format!(
                    "the wit signature of `{method}` does not match the core export {ty}"
                ));
            }
            (params, results)
        }
        None => {
            let scalar = |t: &wasmtime::ValType| CoreType::from_core(t);
            match (
                core_params.iter().map(scalar).collect::<Option<Vec<_>>>(),
                core_results.iter().map(scalar).collect::<Option<Vec<_>>>(),
            ) {
                (Some(p), Some(r)) => (
                    p.into_iter()
                        .enumerate()
                        .map(|(i, t)| (format!("p{}", i + 1), t))
                        .collect(),
                    r,
                ),
                _ => {
                    return Err(format!(
                        "`{method}` has non-numeric core types {ty}; give the entry a `wit` signature"
                    ));
                }
            }
        }
    };
    let mut linker = wasmtime::Linker::new(engine_for(fuel));
    // WASIp1 is one module: any granted WASI interface grants it, with the entry's config.
    let p1 = !granted.is_empty()
        && module
            .imports()
            .any(|i| i.module() == "wasi_snapshot_preview1");
    if p1 {
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, CallCtx::p1)
            .map_err(|e| format!("{e:#}"))?;
    }
    if !p1 {
        // WASI the entry does not grant: a call into it is denied, by name.
        for import in module.imports() {
            if let (ExternType::Func(ty), "wasi_snapshot_preview1") = (import.ty(), import.module())
            {
                let denied = Ungranted(format!("wasi_snapshot_preview1::{}", import.name()));
                linker
                    .func_new(import.module(), import.name(), ty, move |_, _, _| {
                        Err(denied.clone().into())
                    })
                    .map_err(|e| format!("{e:#}"))?;
            }
        }
    }
    linker
        .define_unknown_imports_as_traps(module)
        .map_err(|e| format!("{e:#}"))?;
    let pre = linker
        .instantiate_pre(module)
        .map_err(|e| format!("failed to prepare instances: {e:#}"))?;
    Ok(Target::Core {
        pre,
        export: module
            .get_export_index(method)
            .ok_or_else(|| format!("no export `{method}`"))?,
        params,
        results,
        p1,
    })
}

fn component_target(
    component: &Component,
    method: &str,
    fuel: bool,
    granted: &[&'static str],
    http: bool,
) -> Result<Target, String> {
    let (func, export, bound) = find_export(component, method)?;
    let mut linker = wasmtime::component::Linker::new(engine_for(fuel));
    wasi::link(&mut linker, granted).map_err(|e| format!("{e:#}"))?;
    let handler = http
        && component
            .component_type()
            .exports(engine())
            .any(|(name, _)| name.starts_with("wasi:http/incoming-handler@"));
    let mut granted = granted.to_vec();
    if handler {
        wasi::link_http(&mut linker, &mut granted).map_err(|e| format!("{e:#}"))?;
    }
    stub_imports(&mut linker, component, &granted).map_err(|e| format!("{e:#}"))?;
    let pre = linker
        .instantiate_pre(component)
        .map_err(|e| format!("failed to prepare instances: {e:#}"))?;
    let handler = match handler {
        true => Some(
            ProxyPre::new(pre.clone())
                .map_err(|e| format!("not a wasi:http/proxy component: {e:#}"))?,
        ),
        false => None,
    };
    Ok(Target::Component {
        pre,
        export,
        params: func.params().map(|(n, t)| (n.to_string(), t)).collect(),
        results: func.results().collect(),
        handler,
        bound,
    })
}

/// Defines every import that is not granted as a trap naming it. Granted interfaces are
/// left to the linker, which matches a guest's `@0.2.8` with our `@0.2.12` by semver
/// (wasmtime's own `define_unknown_imports_as_traps` would shadow them with stubs).
fn stub_imports(
    linker: &mut wasmtime::component::Linker<CallCtx>,
    component: &Component,
    granted: &[&str],
) -> wasmtime::Result<()> {
    let ty = component.component_type();
    let imports: Vec<_> = ty.imports(engine()).collect();
    // Resources of granted interfaces, which a stubbed interface may use (`pollable`).
    let mut real = Vec::new();
    for (name, item) in &imports {
        let unversioned = name.split('@').next().unwrap_or_default();
        if let ComponentItem::ComponentInstance(instance) = &item.ty
            && granted.contains(&unversioned)
        {
            for (export, item) in instance.exports(engine()) {
                if let ComponentItem::Resource(ty) = item.ty {
                    real.push((ty, format!("{unversioned}.{export}")));
                }
            }
        }
    }
    let resource = |ty: &ResourceType, what: &str| -> wasmtime::Result<ResourceType> {
        match real.iter().find(|(t, _)| t == ty) {
            None => Ok(ResourceType::host::<Stub>()),
            Some((_, owner)) => wasi::host_resource(owner).ok_or_else(|| {
                wasmtime::format_err!(
                    "`{what}` uses the resource `{owner}`; grant both interfaces or neither"
                )
            }),
        }
    };
    for (name, item) in imports {
        let unversioned = name.split('@').next().unwrap_or_default();
        if granted.contains(&unversioned) {
            continue;
        }
        match item.ty {
            ComponentItem::ComponentInstance(instance) => {
                // Something funcs provides, which this entry's `imports` does not grant.
                let grantable = unversioned.starts_with("wasi:http/")
                    || wasi::grants(&[unversioned.to_string()]).is_ok_and(|g| !g.is_empty());
                let mut inner = linker.instance(name)?;
                for (export, item) in instance.exports(engine()) {
                    match item.ty {
                        ComponentItem::ComponentFunc(_) if grantable => {
                            let denied = Ungranted(format!("{name}#{export}"));
                            inner.func_new(export, move |_, _, _, _| Err(denied.clone().into()))?;
                        }
                        ComponentItem::ComponentFunc(_) => {
                            let full = format!("{name}#{export}");
                            inner.func_new(export, move |_, _, _, _| {
                                wasmtime::bail!("unknown import: `{full}` has not been defined")
                            })?;
                        }
                        ComponentItem::Resource(ty) => {
                            let host = resource(&ty, name)?;
                            inner.resource(export, host, |_, _| Ok(()))?;
                        }
                        _ => {}
                    }
                }
            }
            ComponentItem::ComponentFunc(_) => {
                let full = name.to_string();
                linker.root().func_new(name, move |_, _, _, _| {
                    wasmtime::bail!("unknown import: `{full}` has not been defined")
                })?;
            }
            ComponentItem::Resource(ty) => {
                let host = resource(&ty, name)?;
                linker.root().resource(name, host, |_, _| Ok(()))?;
            }
            _ => wasmtime::bail!("import `{name}` cannot be stubbed"),
        }
    }
    Ok(())
}

/// The host type of resources in imports nobody provides.
struct Stub;

/// A call into an import funcs could provide but the entry's `imports` does not grant.
#[derive(Debug, Clone, thiserror::Error)]
#[error("`{0}` is not granted to this entry (see its `imports`)")]
struct Ungranted(String);

/// Finds `func` or `iface#func` among a component's exports, and the name it bound
/// (`ns:pkg/iface@1.0.0#func`). An interface may be named in full (`ns:pkg/iface@1.0.0`),
/// without its version, or by its last segment (`iface`); a name without a version that
/// matches several exported versions binds the highest version that has the function.
fn find_export(
    component: &Component,
    method: &str,
) -> Result<(ComponentFunc, ComponentExportIndex, String), String> {
    let not_found = || {
        format!(
            "method `{method}` is not exported (functions: {})",
            export_names(component).join(", ")
        )
    };
    let Some((iface, name)) = method.split_once('#') else {
        return match component.get_export(None, method) {
            Some((ComponentItem::ComponentFunc(func), index)) => {
                Ok((func, index, method.to_string()))
            }
            _ => Err(not_found()),
        };
    };
    let matches = |n: &str| {
        let unversioned = n.split('@').next().unwrap_or_default();
        n == iface || unversioned == iface || unversioned.rsplit('/').next() == Some(iface)
    };
    let mut best: Option<(
        Option<semver::Version>,
        ComponentFunc,
        ComponentExportIndex,
        String,
    )> = None;
    for (full, _) in component.component_type().exports(engine()) {
        if !matches(full) {
            continue;
        }
        let Some((ComponentItem::ComponentInstance(_), parent)) = component.get_export(None, full)
        else {
            continue;
        };
        let Some((ComponentItem::ComponentFunc(func), index)) =
            component.get_export(Some(&parent), name)
        else {
            continue;
        };
        let version = full
            .split_once('@')
            .and_then(|(_, v)| semver::Version::parse(v).ok());
        if best.as_ref().is_none_or(|(v, ..)| version > *v) {
            best = Some((version, func, index, format!("{full}#{name}")));
        }
    }
    best.map(|(_, func, index, bound)| (func, index, bound))
        .ok_or_else(not_found)
}

/// Every exported function, `iface#func` for those inside exported instances.
fn export_names(component: &Component) -> Vec<String> {
    let mut names = Vec::new();
    for (name, item) in component.component_type().exports(engine()) {
        match item.ty {
            ComponentItem::ComponentFunc(_) => names.push(name.to_string()),
            ComponentItem::ComponentInstance(instance) => {
                for (func, item) in instance.exports(engine()) {
                    if matches!(item.ty, ComponentItem::ComponentFunc(_)) {
                        names.push(format!("{name}#{func}"));
                    }
                }
            }
            _ => {}
        }
    }
    names
}
