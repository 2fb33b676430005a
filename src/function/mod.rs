//! A function ready to call: its compiled artefact, its export and signature.
//!
//! Core modules with scalar signatures are called as core functions; components (and core
//! modules whose `wit` needs the canonical ABI, wrapped into components at load) go through
//! the component model. Every call gets a fresh instance from an `InstancePre` unless the
//! entry lets instances serve several calls (`pool.reuse`): then at most the pool's size of
//! them are kept between calls, each for at most the pool's idle time.
//!
//! The rooms: this file holds what a function is and builds it; `store` the per-call store
//! and its WASI and HTTP views; `link` what an entry's instances are linked with (granted
//! WASI, stubs naming every other import); `exports` finding the method among a component's
//! exports; `call` the call paths (blocking, async, direct); `handler` the whole-request
//! call of a `wasi:http/incoming-handler`; `classify` the errors calls end with.

mod call;
mod classify;
mod exports;
mod handler;
mod link;
mod live;
mod store;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::Store;
use wasmtime::component::{ComponentExportIndex, ResourceType, Type};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

pub use self::call::now;
pub use self::handler::IncomingBody;
use self::link::{component_target, core_target};
pub use self::live::{Class, Direct, Export, Lifted, Live, Lowered, Results};
pub use self::store::CallCtx;
use crate::compile::{self, Artefact};
use crate::describe;
use crate::host::HostGrant;
use crate::limits::{Control, Limits};
use crate::outgoing::{ClientCounts, HttpClient};
use crate::signature::Signature;
use crate::value::direct::{self, Image, Layout, Shape};
use crate::value::{self, CoreType};
use crate::wasi::WasiSpec;

/// What an entry may import: the granted WASI interfaces and what its guests see.
#[derive(Debug, Clone, Default)]
pub struct Sandbox {
    pub granted: Vec<&'static str>,
    /// Host interfaces (`funcs.host`) the entry's `imports` grants.
    pub hosts: Vec<HostGrant>,
    /// `transport: wasi-http`: a component exporting `wasi:http/incoming-handler` gets
    /// `wasi:http/types` and serves requests whole.
    pub http: bool,
    pub wasi: WasiSpec,
    /// Outgoing requests, when `imports` grants them (`wasi:http`): the `http_client` policy
    /// (deny all by default) and its counters.
    pub http_client: Option<Arc<HttpClient>>,
}

/// How one call runs beyond the entry's own limits.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// Replaces `limits.max_execution_ms` (an executor's `timeout`).
    pub timeout_ms: Option<u64>,
    /// Lets the call be cancelled (futures).
    pub control: Option<Arc<Control>>,
    /// A cancellable async call yields to its runtime on every epoch tick (calls on a
    /// runtime other requests share: an HTTP server's).
    pub yields: bool,
}

impl CallOptions {
    fn timeout(&self, limits: &Limits) -> Option<u64> {
        self.timeout_ms
            .or(limits.max_execution_ms)
            .map(|ms| ms.min(crate::limits::MAX_TIMEOUT_MS))
    }
}

/// Arguments converted to a function's parameter types by [`Function::lower`], or read
/// off the Lua stack as an image of them (`value::direct::Image`, for a direct function).
#[derive(Debug, Clone)]
pub enum Args {
    Core(Vec<wasmtime::Val>),
    Component(Vec<wasmtime::component::Val>),
    Image(Image),
    /// Values holding resources Lua defines: converted where the call runs (they need its
    /// store).
    Values(Vec<crate::value::Value>),
}

/// The export called, in its instance of the function's module or component.
enum Callee {
    Core(wasmtime::Func),
    Component(wasmtime::component::Func),
}

/// An instance kept for more calls (`pool.reuse`), with its store.
struct Warm {
    store: Store<CallCtx>,
    instance: Callee,
    /// Calls made in it so far.
    uses: usize,
    /// When its last call ended.
    since: Instant,
}

/// A callable export of a compiled entry.
pub struct Function {
    id: String,
    method: String,
    /// The export `method` bound: `ns:pkg/iface@0.2.0#func`, or the method itself.
    bound: String,
    /// Its parameters or results hold a resource of the guest's, which lives in an instance
    /// the caller holds: calls on a fresh instance are refused (found at load, so that no
    /// call walks the types).
    uses_resources: bool,
    /// The resources Lua defines (SPEC section 15), when the component imports some: they
    /// cross with the store of the call.
    lua_resources: Option<Arc<crate::host::Reps>>,
    /// The parameters or results of `method` hold some: its arguments are converted where
    /// the call runs ([`Args::Values`]).
    lua_values: bool,
    target: Target,
    limits: Limits,
    sandbox: Sandbox,
    /// Whether calls go through wasmtime's async support (WASI host calls may wait).
    asynchronous: bool,
    /// Set when blocking calls may take the direct path (`value::direct`).
    direct: Option<Shape>,
    /// The parameter types an [`Image`] of arguments is read with (direct functions).
    layout: Option<Layout>,
    /// Instances created, for `funcs.stats`.
    instances: AtomicU64,
    /// Instances open now for callers that hold them (`funcs.instantiate`), and the resource
    /// handles their calls gave that are alive.
    opened: std::sync::atomic::AtomicUsize,
    handles: std::sync::atomic::AtomicUsize,
    /// `transport: wasi-http`: the function may serve HTTP endpoints.
    http: bool,
    /// Calls one instance may serve (`pool.reuse`); 0 or 1: a fresh instance per call.
    reuse: usize,
    /// Instances kept for more calls, the least recently used first; at most `warm_cap`,
    /// none idle for `warm_idle` or longer (each holds a slot of the pooling allocator).
    warm: Mutex<Vec<Warm>>,
    warm_cap: usize,
    warm_idle: Duration,
    /// Held so that other entries with the same bytes find it (the shared map is weak).
    _artefact: Arc<Artefact>,
    /// A core module's `wit` field, for [`Function::signature`].
    wit: Option<String>,
    /// Where the bytes can be read again, for [`Function::signature`] of a component.
    origin: Option<Origin>,
}

/// Takes out the warm instances idle for `idle` or longer (the first ones: the list is in the
/// order their calls ended), to be dropped outside the lock.
fn expire(warm: &mut Vec<Warm>, idle: Duration) -> Vec<Warm> {
    let Some(first) = warm.first() else {
        return Vec::new();
    };
    let now = Instant::now();
    if now.duration_since(first.since) < idle {
        return Vec::new();
    }
    let n = warm
        .iter()
        .take_while(|w| now.duration_since(w.since) >= idle)
        .count();
    warm.drain(..n).collect()
}

/// Reads an entry's bytes again (the registry knows where they came from: a file, read and
/// hash-checked again, or a `function.wat` source, kept as text), so that a function does not
/// keep its bytes for the rare `funcs.describe`.
pub type Origin = Arc<dyn Fn() -> Result<Vec<u8>, String> + Send + Sync>;

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
        /// The resources Lua defines among the component's imports: their types as the
        /// component's type names them (in `params` and `results`), and their numbers.
        lua_types: Vec<(ResourceType, u32)>,
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
        let what = format!("`{id}`");
        let artefact = compile::compile_named(bytes, fuel, &what)?;
        let mut wrapped_artefact = None;
        let granted = &sandbox.granted;
        let target = match (&*artefact, wit) {
            (Artefact::Component(component), _) => component_target(
                component,
                method,
                fuel,
                granted,
                &sandbox.hosts,
                sandbox.http,
            )?,
            (Artefact::Module(module), None) => {
                core_target(module, method, None, fuel, granted, &sandbox.hosts)?
            }
            (Artefact::Module(module), Some(wit)) => {
                let sig = Signature::parse(wit)?;
                match sig.scalar(method)? {
                    Some(scalar) => {
                        core_target(module, method, Some(scalar), fuel, granted, &sandbox.hosts)?
                    }
                    None => {
                        let wrapped =
                            compile::compile_named(&sig.componentize(bytes)?, fuel, &what)?;
                        let Artefact::Component(component) = &*wrapped else {
                            unreachable!("componentize makes components")
                        };
                        let target = component_target(
                            component,
                            method,
                            fuel,
                            granted,
                            &sandbox.hosts,
                            false,
                        )?;
                        wrapped_artefact = Some(wrapped.clone());
                        target
                    }
                }
            }
        };
        let asynchronous = match &target {
            Target::Core { p1, .. } => *p1 || !sandbox.hosts.is_empty(),
            Target::Component { handler, .. } => {
                !sandbox.granted.is_empty() || !sandbox.hosts.is_empty() || handler.is_some()
            }
        };
        // Entries with WASI take it too, on runtimes the caller's thread drives (inline
        // pools); host functions call into Lua, so their entries do not.
        let (direct, layout) = match &target {
            Target::Component {
                params,
                results,
                handler: None,
                ..
            } if sandbox.hosts.is_empty() => {
                let params: Vec<Type> = params.iter().map(|(_, ty)| ty.clone()).collect();
                match direct::plan(&params, results) {
                    Some(shape) => (Some(shape), Layout::new(&params)),
                    None => (None, None),
                }
            }
            _ => (None, None),
        };
        let (bound, uses_resources, lua_resources, lua_values) = match &target {
            Target::Component {
                bound,
                params,
                results,
                lua_types,
                ..
            } => {
                let lua = |r: &ResourceType| lua_types.iter().any(|(t, _)| t == r);
                let guest = |r: &ResourceType| !lua(r);
                let holds = |which: &dyn Fn(&ResourceType) -> bool| {
                    results
                        .iter()
                        .any(|ty| value::holds_resource_where(ty, which))
                        || params
                            .iter()
                            .any(|(_, ty)| value::holds_resource_where(ty, which))
                };
                let reps = sandbox.hosts.first().map(|g| g.reps.clone());
                let reps = reps.filter(|_| !lua_types.is_empty());
                (bound.clone(), holds(&guest), reps, holds(&lua))
            }
            Target::Core { .. } => (method.to_string(), false, None, false),
        };
        Ok(Function {
            id: id.to_string(),
            method: method.to_string(),
            bound,
            uses_resources,
            lua_resources,
            lua_values,
            target,
            limits,
            sandbox,
            asynchronous,
            direct: direct.filter(|_| layout.is_some()),
            layout,
            instances: AtomicU64::new(0),
            opened: std::sync::atomic::AtomicUsize::new(0),
            handles: std::sync::atomic::AtomicUsize::new(0),
            http: false,
            reuse,
            warm: Mutex::new(Vec::new()),
            warm_cap: 1,
            warm_idle: Duration::from_secs(30),
            _artefact: wrapped_artefact.unwrap_or(artefact),
            wit: wit.map(str::to_string),
            origin: None,
        })
    }

    /// Bounds the instances kept for more calls (`pool.reuse`): at most `cap` (the pool's
    /// size), each dropped once idle for `idle` (the pool's idle time).
    pub fn with_warm(mut self, cap: usize, idle: Duration) -> Self {
        self.warm_cap = cap.max(1);
        self.warm_idle = idle;
        self
    }

    /// Whether instances serve several calls (`pool.reuse` above 1).
    pub fn reuses(&self) -> bool {
        self.reuse > 1
    }

    /// How long a warm instance is kept unused.
    pub fn warm_idle(&self) -> Duration {
        self.warm_idle
    }

    /// Drops the warm instances idle for the pool's idle time (housekeeping, also done
    /// whenever a call takes one).
    pub fn expire_warm(&self) {
        let expired = {
            let mut warm = crate::sync::unpoison(self.warm.lock());
            expire(&mut warm, self.warm_idle)
        };
        drop(expired);
    }

    /// Drops every warm instance (the pool was released).
    pub fn clear_warm(&self) {
        let all = std::mem::take(&mut *crate::sync::unpoison(self.warm.lock()));
        drop(all);
    }

    /// Tells where the bytes can be read again (see [`Origin`]).
    pub fn with_origin(mut self, origin: Origin) -> Self {
        self.origin = Some(origin);
        self
    }

    /// The method's signature as WIT text, with the named types it uses (`funcs.describe`):
    /// from the `wit` field of a core module, the bytes of a component (read again), or the
    /// core types of a core module without `wit`.
    ///
    /// # Errors
    /// The bytes cannot be read again or decoded.
    pub fn signature(&self) -> Result<String, String> {
        if let Some(wit) = &self.wit {
            let sig = Signature::parse(wit)?;
            return sig
                .describe(&self.method)
                .ok_or_else(|| format!("`{}` is not in the wit", self.method));
        }
        match &self.target {
            Target::Core {
                params, results, ..
            } => {
                let params: Vec<String> = params.iter().map(|(n, t)| format!("{n}: {t}")).collect();
                let results: Vec<String> = results.iter().map(|t| t.to_string()).collect();
                let result = match results.as_slice() {
                    [] => String::new(),
                    [one] => format!(" -> {one}"),
                    more => format!(" -> tuple<{}>", more.join(", ")),
                };
                Ok(format!(
                    "{}: func({}){result};\n",
                    self.method,
                    params.join(", ")
                ))
            }
            Target::Component { bound, .. } => {
                let origin = self
                    .origin
                    .as_ref()
                    .ok_or("the component's bytes are not at hand")?;
                let (resolve, world) = describe::component_world(&origin()?)?;
                describe::function(&resolve, world, bound)
                    .ok_or_else(|| format!("`{bound}` is not among the component's exports"))
            }
        }
    }

    /// The resources the component exports, each `(name, interface, WIT text)`
    /// (`funcs.describe`); none for a core module.
    ///
    /// # Errors
    /// The bytes cannot be read again or decoded.
    pub fn resources(&self) -> Result<Vec<(String, Option<String>, String)>, String> {
        let Target::Component { .. } = &self.target else {
            return Ok(Vec::new());
        };
        if self.wit.is_some() {
            // A core module wrapped into a component: its `wit` has no resources.
            return Ok(Vec::new());
        }
        let origin = self
            .origin
            .as_ref()
            .ok_or("the component's bytes are not at hand")?;
        let (resolve, world) = describe::component_world(&origin()?)?;
        Ok(describe::resources(&resolve, world))
    }

    /// The interfaces the entry grants (`imports`, as WASI interface names).
    pub fn granted(&self) -> &[&'static str] {
        &self.sandbox.granted
    }

    /// The host interfaces (`funcs.host`, `wippy:runtime/funcs`) the entry grants.
    pub fn host_interfaces(&self) -> impl Iterator<Item = &str> {
        self.sandbox.hosts.iter().map(|g| g.interface.name.as_str())
    }

    /// Marks the function as served over HTTP (`transport: wasi-http`).
    pub fn with_http(mut self, http: bool) -> Self {
        self.http = http;
        self
    }

    pub fn is_http(&self) -> bool {
        self.http
    }

    /// The WIT types of the results; `None` for a core function.
    pub fn results(&self) -> Option<&[Type]> {
        match &self.target {
            Target::Component { results, .. } => Some(results),
            Target::Core { .. } => None,
        }
    }

    /// Whether this is a core wasm function (scalar parameters and results).
    pub fn is_core(&self) -> bool {
        matches!(self.target, Target::Core { .. })
    }

    /// Whether calls must run on a Tokio runtime (WASI host calls may wait there).
    pub fn is_async(&self) -> bool {
        self.asynchronous
    }

    /// Whether the entry links host interfaces (its calls may wait for the Lua thread).
    pub fn has_hosts(&self) -> bool {
        !self.sandbox.hosts.is_empty()
    }

    /// The export the method bound (`ns:pkg/iface@0.2.0#func`, or the method itself).
    pub fn bound(&self) -> &str {
        &self.bound
    }

    /// Instances kept for more calls now (`pool.reuse`).
    pub fn warm_instances(&self) -> usize {
        crate::sync::unpoison(self.warm.lock()).len()
    }

    /// Instances open now for callers that hold them (`funcs.instantiate`).
    pub fn opened(&self) -> &std::sync::atomic::AtomicUsize {
        &self.opened
    }

    /// Resource handles alive in instances callers hold.
    pub fn handles(&self) -> &std::sync::atomic::AtomicUsize {
        &self.handles
    }

    /// Instances created so far.
    pub fn instances(&self) -> u64 {
        self.instances.load(Ordering::Relaxed)
    }

    /// The `http_client` policy, when the entry grants `wasi:http` (the default denies all).
    pub fn http_client_policy(&self) -> Option<&crate::outgoing::Policy> {
        self.sandbox.http_client.as_ref().map(|c| &c.policy)
    }

    /// Outgoing requests so far (zeros when the entry does not grant `wasi:http`).
    pub fn http_client(&self) -> ClientCounts {
        self.sandbox
            .http_client
            .as_ref()
            .map_or_else(ClientCounts::default, |c| c.stats.read())
    }

    /// Calls from the guest into host functions so far.
    pub fn host_calls(&self) -> u64 {
        self.sandbox
            .hosts
            .first()
            .map_or(0, |g| g.calls.load(Ordering::Relaxed))
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

    /// The WIT types of the parameters when the function's values hold resources Lua
    /// defines (arguments are then read by type: `value::from_lua_typed`).
    pub fn lua_params(&self) -> Option<Vec<Type>> {
        match (&self.target, self.lua_values) {
            (Target::Component { params, .. }, true) => {
                Some(params.iter().map(|(_, ty)| ty.clone()).collect())
            }
            _ => None,
        }
    }

    /// The resources Lua defines, when the component imports some.
    pub fn lua_resources(&self) -> Option<&Arc<crate::host::Reps>> {
        self.lua_resources.as_ref()
    }

    /// The number of the resource Lua defines that `ty` is (as this function's types, or
    /// the instantiated ones, name it).
    pub fn lua_type(&self, ty: &ResourceType) -> Option<u32> {
        let Target::Component { lua_types, .. } = &self.target else {
            return None;
        };
        lua_types
            .iter()
            .find(|(t, n)| t == ty || ResourceType::host_dynamic(*n) == *ty)
            .map(|(_, n)| *n)
    }

    /// The name of parameter `index` (0-based); `p1`, `p2`... for core functions without `wit`.
    pub fn param_name(&self, index: usize) -> &str {
        match &self.target {
            Target::Core { params, .. } => params.get(index).map(|(n, _)| n.as_str()),
            Target::Component { params, .. } => params.get(index).map(|(n, _)| n.as_str()),
        }
        .unwrap_or("?")
    }

    /// Whether blocking calls may take the direct path ([`Function::call_direct`], or
    /// [`Function::call_direct_async`] for an async entry).
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// The parameter types to read an [`Image`] of arguments with, for a function that may
    /// take the direct path.
    pub fn layout(&self) -> Option<&Layout> {
        self.layout.as_ref()
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
}
