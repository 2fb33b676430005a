//! Host functions (SPEC section 10): interfaces a guest imports whose functions Lua provides
//! (`funcs.host`). This module knows no Lua: an interface is a set of function names with
//! keys the Lua side maps to its functions; linking defines each imported function as an
//! async host function that carries a [`HostCall`] to the Lua thread and waits for its
//! answer. When the guest runs on the Lua thread itself (inside [`serving`]), the call is
//! answered right there; otherwise it goes to the Lua state's inbox ([`Signal`]), which
//! the Lua thread services whenever it waits inside funcs.
//!
//! An interface may define resources (SPEC section 15, resources Lua defines): each is linked
//! as a `ResourceType::host_dynamic` type whose values are Lua values, counted in
//! [`resource`].

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub mod resource;

use tokio::sync::oneshot;
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::{Component, Linker, ResourceType, Type, Val};

pub use self::resource::{Ledger, Reps};
use crate::engine::engine;
use crate::limits::Control;
use crate::signal::Signal;
pub use crate::signal::{HostCall, HostKey};
use crate::value::{self, CoreType, Value};

/// The name under which top-level functions a world imports are registered.
pub const ROOT: &str = "$root";

/// The reference runtime's host interface, which funcs provides itself: a guest calls any
/// function funcs can call (`call-string`, `call-bytes`). Granted as `funcs` or by name.
pub const FUNCS: &str = "wippy:runtime/funcs";
/// The keys of its two functions; keys of Lua functions start at [`FIRST_KEY`].
pub const CALL_STRING: HostKey = 0;
pub const CALL_BYTES: HostKey = 1;
pub const FIRST_KEY: HostKey = 2;

/// An interface registered with `funcs.host`.
///
/// Held by the registrations (until replaced) and by the entries that linked it (until they
/// are reloaded away and their last call ended); when the last goes, its keys are handed
/// back (`released`) so that the Lua side lets go of its functions.
#[derive(Debug)]
pub struct HostInterface {
    /// As registered: `ns:pkg/iface`, `ns:pkg/iface@1.0.0`, a plain name, or [`ROOT`].
    pub name: String,
    /// By WIT name (kebab-case).
    pub functions: HashMap<String, HostKey>,
    /// Resources Lua defines, by WIT name.
    pub resources: HashMap<String, HostResource>,
    /// Where the keys go when the interface is dropped (the Lua side's list of keys to free).
    pub released: Option<Arc<Mutex<Vec<HostKey>>>>,
}

impl Drop for HostInterface {
    fn drop(&mut self) {
        if let Some(released) = &self.released {
            let mut released = crate::sync::unpoison(released.lock());
            released.extend(self.functions.values().copied());
            for r in self.resources.values() {
                released.extend(r.functions.values().copied());
                released.extend(r.constructor);
                released.extend(r.drop);
            }
        }
    }
}

/// A resource Lua defines: its type (`ResourceType::host_dynamic(ty)`) and the keys of its
/// functions.
#[derive(Debug)]
pub struct HostResource {
    pub ty: u32,
    /// `new`.
    pub constructor: Option<HostKey>,
    /// Methods and statics, by WIT name.
    pub functions: HashMap<String, HostKey>,
    /// `__drop`.
    pub drop: Option<HostKey>,
}

impl HostInterface {
    /// Whether this interface provides the import `import` (an instance import's name):
    /// the same name, or the same without the version when registered without one.
    pub fn provides(&self, import: &str) -> bool {
        self.name == import
            || (!self.name.contains('@') && import.split('@').next() == Some(self.name.as_str()))
    }
}

/// An interface an entry grants, with the inbox its calls go to.
#[derive(Debug, Clone)]
pub struct HostGrant {
    pub interface: Arc<HostInterface>,
    pub inbox: Arc<Signal>,
    /// Host calls of the entry, shared by all its grants (`funcs_host_calls_total`).
    pub calls: Arc<AtomicU64>,
    /// The resources Lua defines in the Lua state.
    pub reps: Arc<Reps>,
}

/// Every interface registered with `funcs.host` when a load starts, and the inbox of the
/// Lua state: what an entry's `imports` may grant besides WASI.
#[derive(Debug, Clone, Default)]
pub struct HostSet {
    pub interfaces: Vec<Arc<HostInterface>>,
    pub inbox: Arc<Signal>,
    pub reps: Arc<Reps>,
}

impl HostSet {
    /// The registered interface an `imports` item names (`ns:pkg/iface`, with or without a
    /// version, a plain name, or `$root`).
    pub fn grant(&self, import: &str) -> Option<HostGrant> {
        let unversioned = import.split('@').next().unwrap_or_default();
        if import == "funcs" || unversioned == FUNCS {
            let functions = HashMap::from([
                ("call-string".to_string(), CALL_STRING),
                ("call-bytes".to_string(), CALL_BYTES),
            ]);
            let interface = HostInterface {
                name: FUNCS.to_string(),
                functions,
                resources: HashMap::new(),
                released: None,
            };
            return Some(HostGrant {
                interface: Arc::new(interface),
                inbox: self.inbox.clone(),
                calls: Arc::default(),
                reps: self.reps.clone(),
            });
        }
        // The same name, or the same without a version on one side.
        let found = self
            .interfaces
            .iter()
            .find(|i| i.name == import)
            .or_else(|| {
                self.interfaces.iter().find(|i| {
                    i.name.split('@').next() == Some(unversioned)
                        && !(i.name.contains('@') && import.contains('@'))
                })
            })?;
        Some(HostGrant {
            interface: found.clone(),
            inbox: self.inbox.clone(),
            calls: Arc::default(),
            reps: self.reps.clone(),
        })
    }
}

/// What a host function needs of the store it is called from.
pub trait HostState {
    /// The call's cancel.
    fn control(&self) -> Option<&Arc<Control>>;
    /// The own handles of resources Lua defines that the store's guest holds.
    fn ledger(&mut self) -> &mut Ledger;
}

/// A host function failed: its Lua error, or a result of the wrong shape. The guest traps;
/// the call fails `INTERNAL` naming the function (`err:details().host`).
#[derive(Debug, Clone, thiserror::Error)]
#[error("host function `{name}` failed: {message}")]
pub struct HostFailure {
    pub name: String,
    pub message: String,
}

impl HostFailure {
    fn of(name: &str) -> impl Fn(String) -> HostFailure + '_ {
        move |message| HostFailure {
            name: name.to_string(),
            message,
        }
    }
}

/// Answers a host call on the Lua thread.
pub type Serve<'a> = dyn Fn(&HostCall) -> Result<Value, String> + 'a;

thread_local! {
    /// The inbox whose calls this thread answers right away, and how.
    static SERVING: Cell<Option<(*const Signal, *const Serve<'static>)>> = const { Cell::new(None) };
}

/// Runs `body` with this thread answering the host calls of `inbox` through `serve` (the
/// Lua thread, while a call of its runs here).
pub fn serving<'s, R>(inbox: &Signal, serve: &'s Serve<'s>, body: impl FnOnce() -> R) -> R {
    struct Restore(Option<(*const Signal, *const Serve<'static>)>);
    impl Drop for Restore {
        fn drop(&mut self) {
            SERVING.with(|s| s.set(self.0));
        }
    }
    // SAFETY (of the later dereference in `ask`): the pointers are set only for the
    // extent of `body`, and restored when it ends, by return or unwind; `inbox` and `serve`
    // outlive that. The lifetime is erased to store them.
    let serve: *const Serve<'static> =
        unsafe { std::mem::transmute::<&'s Serve<'s>, &'static Serve<'static>>(serve) };
    let _restore = Restore(SERVING.with(|s| s.replace(Some((inbox as *const Signal, serve)))));
    body()
}

/// Answers one host call waiting in the inbox this thread serves (a thread that must wait
/// for something else, such as an inline slot another thread holds while its guest waits
/// for this thread); whether there was one.
pub fn answer_one_here() -> bool {
    let Some((inbox, serve)) = SERVING.with(Cell::get) else {
        return false;
    };
    // SAFETY: see `serving`: both are alive while they are set on this thread.
    let inbox = unsafe { &*inbox };
    let Some(call) = inbox.next_call() else {
        return false;
    };
    if !call.abandoned() {
        // SAFETY: as above.
        let result = unsafe { (*serve)(&call) };
        call.answer(result);
    }
    true
}

/// Whether this thread answers host calls right now: Lua code running now was called by a
/// host function (or funcs waits for a call on this thread).
pub fn answering() -> bool {
    SERVING.with(Cell::get).is_some()
}

/// How this thread answers the host calls of `inbox`, if it serves them.
fn served_here(inbox: &Signal) -> Option<*const Serve<'static>> {
    match SERVING.with(Cell::get) {
        Some((serving, serve)) if std::ptr::eq(serving, inbox) => Some(serve),
        _ => None,
    }
}

/// What [`link`] linked: the imports' names, and the resources Lua defines among them (the
/// component's own type of each, and its type number).
#[derive(Debug, Default)]
pub struct Linked {
    pub names: Vec<String>,
    pub resources: Vec<(ResourceType, u32)>,
}

/// The resources of a component's imports that are aliases of one an earlier import brings
/// (WIT `use`: an `(eq ...)` bound), as (import, export), `export` empty at the top. wasmtime's
/// linker takes those as the earlier one is defined: defining one again would make another
/// type, which it refuses ("mismatched resource types").
pub fn aliases(component: &Component) -> Vec<(String, String)> {
    let mut seen: Vec<ResourceType> = Vec::new();
    let mut out = Vec::new();
    let mut note = |ty: ResourceType, name: &str, export: &str| {
        if seen.contains(&ty) {
            out.push((name.to_string(), export.to_string()));
        } else {
            seen.push(ty);
        }
    };
    for (name, item) in component.component_type().imports(engine()) {
        match item.ty {
            ComponentItem::ComponentInstance(instance) => {
                for (export, item) in instance.exports(engine()) {
                    if let ComponentItem::Resource(ty) = item.ty {
                        note(ty, name, export);
                    }
                }
            }
            ComponentItem::Resource(ty) => note(ty, name, ""),
            _ => {}
        }
    }
    out
}

/// Whether `export` of import `name` is one of [`aliases`].
pub fn is_alias(aliases: &[(String, String)], name: &str, export: &str) -> bool {
    aliases.iter().any(|(n, e)| n == name && e == export)
}

/// Links the granted host interfaces a component imports, their resources included
/// (but [`aliases`], which need nothing).
///
/// # Errors
/// An import of a granted interface that the interface does not provide (a function, or a
/// resource without its table), named.
pub fn link<T: HostState + Send + 'static>(
    linker: &mut Linker<T>,
    component: &Component,
    grants: &[HostGrant],
) -> Result<Linked, String> {
    let mut linked = Linked::default();
    let err = |e: wasmtime::Error| format!("{e:#}");
    let aliases = aliases(component);
    for (name, item) in component.component_type().imports(engine()) {
        match item.ty {
            ComponentItem::ComponentInstance(instance) => {
                let Some(grant) = grants.iter().find(|g| g.interface.provides(name)) else {
                    let unversioned = name.split('@').next();
                    if let Some(g) = grants
                        .iter()
                        .find(|g| g.interface.name.split('@').next() == unversioned)
                    {
                        return Err(format!(
                            "the guest imports `{name}`, but the host interface is registered as `{}`",
                            g.interface.name
                        ));
                    }
                    continue;
                };
                let mut inner = linker.instance(name).map_err(err)?;
                for (export, item) in instance.exports(engine()) {
                    let full = format!("{name}#{export}");
                    match item.ty {
                        ComponentItem::ComponentFunc(_) => {
                            let key = lookup(grant, export, &full)?;
                            let f = host_fn::<T>(grant, key, full.into());
                            inner.func_new_async(export, f).map_err(err)?;
                        }
                        ComponentItem::Resource(_) if is_alias(&aliases, name, export) => {}
                        ComponentItem::Resource(ty) => {
                            let r = resource_of(grant, export)?;
                            inner
                                .resource(export, ResourceType::host_dynamic(r.ty), dropped::<T>)
                                .map_err(err)?;
                            linked.resources.push((ty, r.ty));
                        }
                        // Named types (records, variants, ...) need nothing linked.
                        ComponentItem::Type(_) => {}
                        _ => {
                            return Err(format!(
                                "`{full}`: this kind of import cannot be given in Lua"
                            ));
                        }
                    }
                }
                linked.names.push(name.to_string());
            }
            ComponentItem::ComponentFunc(_) => {
                let Some(grant) = grants.iter().find(|g| g.interface.name == ROOT) else {
                    continue;
                };
                let key = lookup(grant, name, name)?;
                let f = host_fn::<T>(grant, key, name.into());
                linker.root().func_new_async(name, f).map_err(err)?;
                linked.names.push(name.to_string());
            }
            ComponentItem::Resource(_) if is_alias(&aliases, name, "") => {}
            ComponentItem::Resource(ty) => {
                let Some(grant) = grants.iter().find(|g| g.interface.name == ROOT) else {
                    continue;
                };
                let r = resource_of(grant, name)?;
                linker
                    .root()
                    .resource(name, ResourceType::host_dynamic(r.ty), dropped::<T>)
                    .map_err(err)?;
                linked.resources.push((ty, r.ty));
                linked.names.push(name.to_string());
            }
            _ => {}
        }
    }
    Ok(linked)
}

/// The destructor of resources Lua defines: the guest dropped an own handle (`__drop` runs
/// on the Lua thread once guests hold none).
fn dropped<T: HostState>(
    mut store: wasmtime::StoreContextMut<'_, T>,
    rep: u32,
) -> wasmtime::Result<()> {
    store.data_mut().ledger().released(rep, true);
    Ok(())
}

/// The resource `name` of the grant's interface.
fn resource_of<'g>(grant: &'g HostGrant, name: &str) -> Result<&'g HostResource, String> {
    grant.interface.resources.get(name).ok_or_else(|| {
        format!(
            "`{}`: resource `{name}` is not registered (funcs.host needs a table of its functions under `{name}`)",
            grant.interface.name
        )
    })
}

/// The key of `function` (`[constructor]r`, `[method]r.f` and `[static]r.f` in resource
/// `r`'s table).
fn lookup(grant: &HostGrant, function: &str, full: &str) -> Result<HostKey, String> {
    if let Some((kind, rest)) = function.strip_prefix('[').and_then(|f| f.split_once(']')) {
        let (res, func) = match (kind, rest.split_once('.')) {
            ("method" | "static", Some((res, func))) => (res, Some(func)),
            _ => (rest, None),
        };
        let r = resource_of(grant, res)?;
        let key = match func {
            None => r.constructor,
            Some(func) => r.functions.get(func).copied(),
        };
        return key.ok_or_else(|| {
            let mut has: Vec<&str> = r.functions.keys().map(String::as_str).collect();
            if r.constructor.is_some() {
                has.push("new");
            }
            has.sort_unstable();
            format!(
                "the guest imports `{full}`, which resource `{res}` of the host interface `{}` does not have (it has: {})",
                grant.interface.name,
                has.join(", ")
            )
        });
    }
    grant
        .interface
        .functions
        .get(function)
        .copied()
        .ok_or_else(|| {
            format!(
                "the guest imports `{full}`, which the host interface `{}` does not have (it has: {})",
                grant.interface.name,
                names(&grant.interface.functions)
            )
        })
}

fn names(functions: &HashMap<String, HostKey>) -> String {
    let mut names: Vec<_> = functions.keys().map(String::as_str).collect();
    names.sort_unstable();
    names.join(", ")
}

/// Hands a host call to the Lua thread (right here when this thread serves `inbox`) and
/// waits for its answer.
async fn ask(
    inbox: &Signal,
    calls: &AtomicU64,
    key: HostKey,
    name: &Arc<str>,
    control: Option<Arc<Control>>,
    args: Vec<Value>,
    result: Option<Type>,
) -> Result<Value, HostFailure> {
    let fail = HostFailure::of(name);
    calls.fetch_add(1, Ordering::Relaxed);
    let call = HostCall::new(key, name.clone(), args, result, control);
    if let Some(serve) = served_here(inbox) {
        // SAFETY: see `serving`: set only while `serve` is alive on this thread.
        return unsafe { (*serve)(&call) }.map_err(fail);
    }
    let mut answer = inbox.push(call);
    // The Lua thread usually answers within microseconds: spin before this thread sleeps.
    let spun = crate::sync::spin(|| match answer.try_recv() {
        Err(oneshot::error::TryRecvError::Empty) => None,
        got => Some(got.map_err(|_| ())),
    });
    let got = match spun {
        Some(got) => got,
        None => answer.await.map_err(|_| ()),
    };
    match got {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(message)) => Err(fail(message)),
        Err(_) => Err(fail("the Lua state closed before answering".into())),
    }
}

/// Links the granted host interfaces a core module imports (by module name: `env`); the
/// `(module, name)` pairs linked.
///
/// # Errors
/// An import of a granted module the interface does not provide, or with a core type other
/// than i32, i64, f32 or f64, named.
pub fn link_core<T: HostState + Send + 'static>(
    linker: &mut wasmtime::Linker<T>,
    module: &wasmtime::Module,
    grants: &[HostGrant],
) -> Result<(), String> {
    for import in module.imports() {
        let wasmtime::ExternType::Func(ty) = import.ty() else {
            continue;
        };
        let Some(grant) = grants.iter().find(|g| g.interface.name == import.module()) else {
            continue;
        };
        let full = format!("{}::{}", import.module(), import.name());
        // Lua's snake_case keys were stored in kebab-case: a core name may have either.
        let key = lookup(grant, import.name(), &full).or_else(|e| {
            grant
                .interface
                .functions
                .get(&import.name().replace('_', "-"))
                .copied()
                .ok_or(e)
        })?;
        let scalar = |t: &wasmtime::ValType| {
            CoreType::from_core(t).ok_or_else(|| {
                format!("`{full}` has the core type {t}: only i32, i64, f32 and f64 cross to Lua")
            })
        };
        let params = ty
            .params()
            .map(|t| scalar(&t))
            .collect::<Result<Vec<_>, _>>()?;
        let results = ty
            .results()
            .map(|t| scalar(&t))
            .collect::<Result<Vec<_>, _>>()?;
        let (inbox, name): (_, Arc<str>) = (grant.inbox.clone(), full.into());
        let counter = grant.calls.clone();
        let interface = grant.interface.clone();
        linker
            .func_new_async(import.module(), import.name(), ty, move |caller, args, out| {
                let _interface = &interface;
                let (inbox, name, params, results) = (inbox.clone(), name.clone(), params.clone(), results.clone());
                let counter = counter.clone();
                let control = caller.data().control().cloned();
                Box::new(async move {
                    let fail = HostFailure::of(&name);
                    let mut values = Vec::with_capacity(args.len());
                    for (val, ty) in args.iter().zip(&params) {
                        values.push(value::from_core(val, *ty).map_err(|e| fail(e.to_string()))?);
                    }
                    let value = ask(&inbox, &counter, key, &name, control, values, None).await?;
                    let value = match (results.len(), value) {
                        (0, _) => return Ok(()),
                        (1, v) => vec![v],
                        (n, Value::Array(items)) if items.len() == n => items,
                        (n, _) => return Err(fail(format!("expected an array of {n} results")).into()),
                    };
                    for ((slot, ty), v) in out.iter_mut().zip(&results).zip(&value) {
                        *slot = value::to_core(v, *ty).map_err(|e| fail(format!("bad return value: {e}")))?;
                    }
                    Ok(())
                })
            })
            .map_err(|e| format!("{e:#}"))?;
    }
    Ok(())
}

/// The host function `key` of the grant's interface, as a dynamic async host function; it
/// holds the interface (whose functions the Lua side keeps while it lives).
#[allow(clippy::type_complexity)]
fn host_fn<T: HostState + Send + 'static>(
    grant: &HostGrant,
    key: HostKey,
    name: Arc<str>,
) -> impl for<'a> Fn(
    wasmtime::StoreContextMut<'a, T>,
    ComponentFunc,
    &'a [Val],
    &'a mut [Val],
) -> Box<dyn Future<Output = wasmtime::Result<()>> + Send + 'a>
+ Send
+ Sync
+ 'static {
    let (inbox, counter, interface, reps) = (
        grant.inbox.clone(),
        grant.calls.clone(),
        grant.interface.clone(),
        grant.reps.clone(),
    );
    move |mut store, ty, params, results| {
        let _interface = &interface;
        let inbox = inbox.clone();
        let counter = counter.clone();
        let name = name.clone();
        let reps = reps.clone();
        let control = store.data().control().cloned();
        Box::new(async move {
            let fail = HostFailure::of(&name);
            // Resources Lua defines cross with the store (a borrow is released as it is read).
            let (args, _) = resource::converting(&mut store, &reps, || {
                params
                    .iter()
                    .zip(ty.params())
                    .enumerate()
                    .map(|(i, (val, (_, ty)))| {
                        value::from_wit(val.clone(), &ty)
                            .map_err(|e| fail(format!("argument {}: {e}", i + 1)))
                    })
                    .collect::<Result<Vec<_>, _>>()
            });
            let types: Vec<Type> = ty.results().collect();
            // The Lua side makes resources of the values at their places in the result.
            let typed = match types.as_slice() {
                [ty] if value::holds_resource(ty) => Some(ty.clone()),
                _ => None,
            };
            let value = ask(&inbox, &counter, key, &name, control, args?, typed).await?;
            let (filled, _) = resource::converting(&mut store, &reps, || {
                match (types.as_slice(), results) {
                    ([], _) => {}
                    ([ty], [slot]) => {
                        *slot = value::to_wit(&value, ty)
                            .map_err(|e| fail(format!("bad return value: {e}")))?;
                    }
                    (types, slots) => {
                        // Several results (not made by WIT today): one Lua array.
                        let items = match &value {
                            Value::Array(items) if items.len() == types.len() => items,
                            _ => {
                                let n = types.len();
                                return Err(fail(format!("expected an array of {n} results")));
                            }
                        };
                        for ((slot, ty), item) in slots.iter_mut().zip(types).zip(items) {
                            *slot = value::to_wit(item, ty)
                                .map_err(|e| fail(format!("bad return value: {e}")))?;
                        }
                    }
                }
                Ok(())
            });
            filled?;
            Ok(())
        })
    }
}
