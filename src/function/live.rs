//! A live instance of an entry, kept by its caller across calls (`funcs.instantiate`, SPEC
//! section 15): its store and instance, any export called by name, resource handles dropped.
//! What owns it, queues its calls and tracks its handles is `crate::instance`; this file is
//! the wasmtime side only.

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{ResourceAny, ResourceType, Type, TypedFunc, Val};
use wasmtime::{AsContextMut, Store};

use super::exports::find_export;
use super::{CallCtx, CallOptions, Function, Target};
use crate::engine::engine;
use crate::error::{Error, expected_args};
use crate::host::resource;
use crate::value::direct::{FlatResult, LuaArgs, MemoryResult, Mismatch, Shape, Tape};
use crate::value::{self, ConvError, CoreType, Value};

/// A store and the instance in it.
pub struct Live {
    store: Store<CallCtx>,
    opened: Opened,
    /// Exports looked up so far, by the name they were asked by.
    exports: Vec<(String, std::sync::Arc<Export>)>,
}

enum Opened {
    Core(wasmtime::Instance),
    Component(wasmtime::component::Instance),
}

/// An export ready to call: its function and types.
#[derive(Clone)]
pub enum Export {
    Core {
        func: wasmtime::Func,
        params: Vec<CoreType>,
        results: Vec<CoreType>,
        name: String,
    },
    Component {
        func: wasmtime::component::Func,
        params: Vec<(String, Type)>,
        results: Vec<Type>,
        /// The full name it bound (`ns:pkg/iface@1.0.0#func`).
        name: String,
        /// How the direct path calls it, if it may (see [`Live::call_direct`]).
        direct: Option<Direct>,
    },
}

/// An export the direct path may call: its typed function, whether it is a method (its
/// first parameter a borrowed handle, passed apart), and the Lua stack slots reading the
/// other arguments may take.
#[derive(Clone, Copy)]
pub struct Direct {
    typed: Typed,
    pub method: bool,
    pub stack: usize,
}

/// The typed function of a direct export, by the shape of its result (typechecked once).
#[derive(Clone, Copy)]
enum Typed {
    Unit(TypedFunc<LuaArgs, ()>),
    Flat(TypedFunc<LuaArgs, FlatResult>),
    Memory(TypedFunc<LuaArgs, MemoryResult>),
    /// A constructor's, or any export's whose one result is an `own` handle.
    Own(TypedFunc<LuaArgs, (ResourceAny,)>),
}

/// The result of a direct call: on a tape, or an `own` handle.
pub enum Lifted {
    Tape(Tape),
    Own(ResourceAny),
}

impl Direct {
    /// Whether the result is an `own` handle.
    pub fn owns(&self) -> bool {
        matches!(self.typed, Typed::Own(_))
    }
}

impl Export {
    /// The name it bound.
    pub fn name(&self) -> &str {
        match self {
            Export::Core { name, .. } | Export::Component { name, .. } => name,
        }
    }

    /// Its name without interface and kind: `counter.merge` for
    /// `ns:pkg/iface#[static]counter.merge`.
    pub fn short(&self) -> &str {
        let name = self.name();
        let name = name.rsplit('#').next().unwrap_or(name);
        match name.split_once(']') {
            Some((_, rest)) if name.starts_with('[') => rest,
            _ => name,
        }
    }

    /// How the direct path calls it, if it may.
    pub fn direct(&self) -> Option<Direct> {
        match self {
            Export::Component { direct, .. } => *direct,
            Export::Core { .. } => None,
        }
    }

    /// The WIT types of its parameters (none for a core export).
    pub fn params(&self) -> &[(String, Type)] {
        match self {
            Export::Component { params, .. } => params,
            Export::Core { .. } => &[],
        }
    }
}

/// A resource a component exports, with the exports that make and use it (their full names,
/// `iface#[method]counter.get`), for `inst:resource(name)`.
#[derive(Debug, Clone)]
pub struct Class {
    pub name: String,
    pub ty: ResourceType,
    pub constructor: Option<String>,
    /// `(WIT name, export)`.
    pub methods: Vec<(String, String)>,
    pub statics: Vec<(String, String)>,
}

impl Function {
    /// A new instance of this entry's component or module for a caller to keep, linked as
    /// its calls are (imports, WASI, limits; `max_memory_bytes` holds for its whole life).
    ///
    /// # Errors
    /// A failed instantiation (`INTERNAL`), or a WASI configuration that cannot be built.
    pub async fn open(&self, options: &CallOptions) -> Result<Live, Error> {
        let timeout = options.timeout(&self.limits);
        let mut store = self.store(timeout, options.control.as_ref(), false)?;
        let opened = match &self.target {
            Target::Core { pre, .. } => if self.asynchronous {
                pre.instantiate_async(&mut store).await
            } else {
                pre.instantiate(&mut store)
            }
            .map(Opened::Core),
            Target::Component { pre, .. } => if self.asynchronous {
                pre.instantiate_async(&mut store).await
            } else {
                pre.instantiate(&mut store)
            }
            .map(Opened::Component),
        };
        let opened = opened.map_err(|e| self.trap(e, &store))?;
        self.instances
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Live {
            store,
            opened,
            exports: Vec::new(),
        })
    }
}

impl Live {
    /// The export `name` (as `method` is named: `func`, `iface#func`).
    ///
    /// # Errors
    /// `INVALID` naming the exports there are.
    pub fn export(&mut self, f: &Function, name: &str) -> Result<std::sync::Arc<Export>, Error> {
        if let Some((_, export)) = self.exports.iter().find(|(n, _)| n == name) {
            return Ok(export.clone());
        }
        let export = match (&self.opened, &f.target) {
            (Opened::Core(instance), _) => {
                let func = instance.get_func(&mut self.store, name).ok_or_else(|| {
                    f.fail(Error::invalid(format!("no function export `{name}`")))
                })?;
                let ty = func.ty(&self.store);
                let core = |t: wasmtime::ValType| {
                    CoreType::from_core(&t).ok_or_else(|| {
                        f.fail(Error::invalid(format!(
                            "export `{name}` has non-numeric core types {ty}"
                        )))
                    })
                };
                Export::Core {
                    params: ty.params().map(core).collect::<Result<_, _>>()?,
                    results: ty.results().map(core).collect::<Result<_, _>>()?,
                    func,
                    name: name.to_string(),
                }
            }
            (Opened::Component(instance), Target::Component { pre, .. }) => {
                let (_, index, bound) = find_export(pre.component(), name)
                    .or_else(|e| in_interfaces(pre.component(), name).ok_or(e))
                    .map_err(|e| f.fail(Error::invalid(e)))?;
                let func = instance.get_func(&mut self.store, index).ok_or_else(|| {
                    f.fail(Error::invalid(format!("no function export `{name}`")))
                })?;
                let ty = func.ty(&self.store);
                let params: Vec<(String, Type)> =
                    ty.params().map(|(n, t)| (n.to_string(), t)).collect();
                let results: Vec<Type> = ty.results().collect();
                Export::Component {
                    direct: direct_of(&self.store, func, &params, &results),
                    params,
                    results,
                    func,
                    name: bound,
                }
            }
            (Opened::Component(_), Target::Core { .. }) => {
                unreachable!("a component target opens a component")
            }
        };
        let export = std::sync::Arc::new(export);
        self.exports.push((name.to_string(), export.clone()));
        Ok(export)
    }

    /// [`Live::export`] named by bytes; `None` for a name that is not UTF-8 or no export
    /// (the general path words it).
    pub fn export_bytes(&mut self, f: &Function, name: &[u8]) -> Option<std::sync::Arc<Export>> {
        match self.exports.iter().find(|(n, _)| n.as_bytes() == name) {
            Some((_, export)) => Some(export.clone()),
            None => self.export(f, std::str::from_utf8(name).ok()?).ok(),
        }
    }

    /// Calls `export` with arguments lowered by [`Live::lower`]: its results.
    ///
    /// # Errors
    /// The call's (a trap, deadline, fuel, cancel, host-function error): the store is
    /// poisoned then, and the instance must end.
    pub async fn call(
        &mut self,
        f: &Function,
        export: &Export,
        args: &Lowered,
        options: &CallOptions,
    ) -> Result<Results, Error> {
        let timeout = options.timeout(&f.limits);
        self.arm(f, timeout, options);
        let store = &mut self.store;
        let call = async {
            match (export, args) {
                (Export::Core { func, results, .. }, Lowered::Core(vals)) => {
                    let mut out = vec![wasmtime::Val::I32(0); results.len()];
                    if f.asynchronous {
                        func.call_async(&mut *store, vals, &mut out).await
                    } else {
                        func.call(&mut *store, vals, &mut out)
                    }
                    .map(|()| Results::Core(out))
                }
                (Export::Component { func, results, .. }, Lowered::Component(vals, lent)) => {
                    let mut out = vec![Val::Bool(false); results.len()];
                    if f.asynchronous {
                        func.call_async(&mut *store, vals, &mut out).await
                    } else {
                        func.call(&mut *store, vals, &mut out)
                    }?;
                    // Lua values lent as borrows go back (no `__drop`: no destructor).
                    for any in lent {
                        if f.asynchronous {
                            any.resource_drop_async(&mut *store).await
                        } else {
                            any.resource_drop(&mut *store)
                        }?;
                    }
                    Ok(Results::Component(out))
                }
                _ => unreachable!("arguments lowered for this export"),
            }
        };
        let result = if f.asynchronous {
            f.bounded(call, timeout, options.control.as_ref(), |e| {
                Err(wasmtime::Error::new(Stopped(e)))
            })
            .await
        } else {
            call.await
        };
        self.store.data_mut().outgoing.finish();
        result.map_err(|e| match e.downcast::<Stopped>() {
            Ok(Stopped(e)) => e,
            Err(e) => f.trap(e, &self.store),
        })
    }

    /// Calls an export on the direct path (`direct`, from [`Export::direct`]): `args`
    /// lowered from where they are (see `value::direct`), the result lifted onto a tape.
    /// `Ok(None)`: an argument the direct path does not take; nothing ran. For an entry that
    /// is not async; see [`Live::call_direct_async`].
    ///
    /// # Errors
    /// As [`Live::call`].
    pub fn call_direct(
        &mut self,
        f: &Function,
        direct: Direct,
        args: LuaArgs,
        options: &CallOptions,
    ) -> Result<Option<Lifted>, Error> {
        self.arm(f, options.timeout(&f.limits), options);
        let store = &mut self.store;
        let result = match direct.typed {
            Typed::Unit(t) => t.call(store, args).map(|()| Lifted::Tape(Tape::default())),
            Typed::Flat(t) => t.call(store, args).map(|r| Lifted::Tape(r.0)),
            Typed::Memory(t) => t.call(store, args).map(|r| Lifted::Tape(r.0)),
            Typed::Own(t) => t.call(store, args).map(|(r,)| Lifted::Own(r)),
        };
        self.direct_result(f, result)
    }

    /// [`Live::call_direct`] for an async entry (WASI), within the call's deadline and cancel
    /// also while the guest waits on the host.
    ///
    /// # Errors
    /// As [`Live::call`].
    pub async fn call_direct_async(
        &mut self,
        f: &Function,
        direct: Direct,
        args: LuaArgs,
        options: &CallOptions,
    ) -> Result<Option<Lifted>, Error> {
        let timeout = options.timeout(&f.limits);
        self.arm(f, timeout, options);
        let store = &mut self.store;
        let call = async {
            match direct.typed {
                Typed::Unit(t) => t
                    .call_async(store, args)
                    .await
                    .map(|()| Lifted::Tape(Tape::default())),
                Typed::Flat(t) => t.call_async(store, args).await.map(|r| Lifted::Tape(r.0)),
                Typed::Memory(t) => t.call_async(store, args).await.map(|r| Lifted::Tape(r.0)),
                Typed::Own(t) => t.call_async(store, args).await.map(|(r,)| Lifted::Own(r)),
            }
        };
        let result = f
            .bounded(call, timeout, options.control.as_ref(), |e| {
                Err(wasmtime::Error::new(Stopped(e)))
            })
            .await;
        self.direct_result(f, result)
    }

    /// The end of a direct call: `Ok(None)` for what the direct path gives up on.
    fn direct_result(
        &mut self,
        f: &Function,
        result: wasmtime::Result<Lifted>,
    ) -> Result<Option<Lifted>, Error> {
        self.store.data_mut().outgoing.finish();
        match result {
            Ok(lifted) => Ok(Some(lifted)),
            Err(e) if e.is::<Mismatch>() => Ok(None),
            Err(e) => Err(match e.downcast::<Stopped>() {
                Ok(Stopped(e)) => e,
                Err(e) => f.trap(e, &self.store),
            }),
        }
    }

    /// Runs the destructor of `resource` (an own handle of this store) now.
    ///
    /// # Errors
    /// A destructor that traps or runs past the deadline: the instance must end.
    pub async fn drop_resource(
        &mut self,
        f: &Function,
        resource: ResourceAny,
        options: &CallOptions,
    ) -> Result<(), Error> {
        if !f.asynchronous {
            return self.drop_resource_now(f, resource, options);
        }
        let timeout = options.timeout(&f.limits);
        self.arm(f, timeout, options);
        let store = &mut self.store;
        let result = f
            .bounded(
                async { resource.resource_drop_async(&mut *store).await },
                timeout,
                options.control.as_ref(),
                |e| Err(wasmtime::Error::new(Stopped(e))),
            )
            .await;
        result.map_err(|e| match e.downcast::<Stopped>() {
            Ok(Stopped(e)) => e,
            Err(e) => f.trap(e, &self.store),
        })
    }

    /// [`Live::drop_resource`] for an entry that is not async, on this thread.
    ///
    /// # Errors
    /// As [`Live::drop_resource`].
    pub fn drop_resource_now(
        &mut self,
        f: &Function,
        resource: ResourceAny,
        options: &CallOptions,
    ) -> Result<(), Error> {
        assert!(!f.asynchronous, "async entries drop on their runtime");
        self.arm(f, options.timeout(&f.limits), options);
        resource
            .resource_drop(&mut self.store)
            .map_err(|e| f.trap(e, &self.store))
    }

    /// Arms the store's limits for one call.
    fn arm(&mut self, f: &Function, timeout: Option<u64>, options: &CallOptions) {
        let data = self.store.data_mut();
        data.limiter.refused = false;
        data.timeout = timeout;
        data.control = options.control.clone();
        f.limits
            .arm(&mut self.store, timeout, options.control.as_ref(), false);
    }

    /// Converts the arguments of `export` (wrong counts and values are `INVALID`, naming the
    /// argument; nothing ran).
    ///
    /// # Errors
    /// As said.
    pub fn lower(
        &mut self,
        f: &Function,
        export: &Export,
        args: &[Value],
    ) -> Result<Lowered, Error> {
        let arg_error = |i: usize, name: &str, e: ConvError| {
            let path = e.path();
            f.fail(
                Error::invalid(format!(
                    "{}: argument {} ({name}): {e}",
                    export.short(),
                    i + 1
                ))
                .with(|d| {
                    d.argument = Some(i + 1);
                    d.path = (!path.is_empty()).then_some(path);
                }),
            )
        };
        match export {
            Export::Core { params, .. } => {
                if args.len() != params.len() {
                    return Err(count_error(f, export, params.len(), args.len()));
                }
                params
                    .iter()
                    .zip(args)
                    .enumerate()
                    .map(|(i, (ty, v))| {
                        value::to_core(v, *ty).map_err(|e| arg_error(i, &format!("p{}", i + 1), e))
                    })
                    .collect::<Result<_, _>>()
                    .map(Lowered::Core)
            }
            Export::Component { params, .. } => {
                if args.len() != params.len() {
                    return Err(count_error(f, export, params.len(), args.len()));
                }
                let lower = || {
                    params
                        .iter()
                        .zip(args)
                        .enumerate()
                        .map(|(i, ((name, ty), v))| {
                            value::to_wit(v, ty).map_err(|e| arg_error(i, name, e))
                        })
                        .collect::<Result<Vec<_>, _>>()
                };
                let (vals, lent) = match &f.lua_resources {
                    Some(reps) => {
                        resource::converting(&mut self.store.as_context_mut(), reps, lower)
                    }
                    None => (lower(), Vec::new()),
                };
                Ok(Lowered::Component(vals?, lent))
            }
        }
    }

    /// The results of `export` as a value (none: nil; one: itself; several: an array).
    ///
    /// # Errors
    /// A result that has no Lua form (`INTERNAL`).
    pub fn lift(
        &mut self,
        f: &Function,
        export: &Export,
        results: Results,
    ) -> Result<Value, Error> {
        let lift = || match (export, results) {
            (Export::Core { results: types, .. }, Results::Core(out)) => out
                .iter()
                .zip(types)
                .map(|(v, ty)| value::from_core(v, *ty))
                .collect(),
            (Export::Component { results: types, .. }, Results::Component(out)) => out
                .into_iter()
                .zip(types)
                .map(|(v, ty)| value::from_wit(v, ty))
                .collect::<Result<Vec<Value>, ConvError>>(),
            _ => unreachable!("results of this export"),
        };
        let values = match &f.lua_resources {
            Some(reps) => resource::converting(&mut self.store.as_context_mut(), reps, lift).0,
            None => lift(),
        };
        let mut values = values.map_err(|e| f.result_error(e))?;
        Ok(match values.len() {
            0 => Value::Nil,
            1 => values.pop().expect("one value"),
            _ => Value::Array(values),
        })
    }

    /// Every resource the component exports, at the top level (`name`) or in an exported
    /// interface (`ns:pkg/iface@1.0.0#name`).
    pub fn resource_names(&mut self, f: &Function) -> Vec<(ResourceType, String)> {
        let (Opened::Component(instance), Target::Component { pre, .. }) =
            (&self.opened, &f.target)
        else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for (name, item) in pre.component().component_type().exports(engine()) {
            match item.ty {
                ComponentItem::Resource(_) => {
                    if let Some(ty) = instance.get_resource(&mut self.store, name) {
                        found.push((ty, name.to_string()));
                    }
                }
                ComponentItem::ComponentInstance(iface) => {
                    let Some(parent) = instance.get_export_index(&mut self.store, None, name)
                    else {
                        continue;
                    };
                    for (res, item) in iface.exports(engine()) {
                        if !matches!(item.ty, ComponentItem::Resource(_)) {
                            continue;
                        }
                        let ty = instance
                            .get_export_index(&mut self.store, Some(&parent), res)
                            .and_then(|i| instance.get_resource(&mut self.store, i));
                        if let Some(ty) = ty {
                            found.push((ty, format!("{name}#{res}")));
                        }
                    }
                }
                _ => {}
            }
        }
        found
    }

    /// The resource `name` exports (`iface#name`, or `name` alone when one interface, or
    /// the component itself, exports a resource of that name), with its functions.
    ///
    /// # Errors
    /// `INVALID`: no such resource (naming those there are), or several.
    pub fn class(&mut self, f: &Function, name: &str) -> Result<Class, Error> {
        let (Opened::Component(instance), Target::Component { pre, .. }) =
            (&self.opened, &f.target)
        else {
            return Err(f.fail(Error::invalid(format!(
                "resource `{name}`: a core module exports no resources"
            ))));
        };
        let (iface, res) = match name.split_once('#') {
            Some((iface, res)) => (Some(iface), res),
            None => (None, name),
        };
        let matches = |n: &str| match iface {
            None => true,
            Some(iface) => {
                let unversioned = n.split('@').next().unwrap_or_default();
                n == iface || unversioned == iface || unversioned.rsplit('/').next() == Some(iface)
            }
        };
        let component = pre.component();
        // (interface or None for the top level, its function names)
        let mut found: Vec<(Option<String>, Vec<String>)> = Vec::new();
        let mut all = Vec::new();
        for (top, item) in component.component_type().exports(engine()) {
            match item.ty {
                ComponentItem::Resource(_) => {
                    all.push(top.to_string());
                    if iface.is_none() && top == res {
                        let funcs = component
                            .component_type()
                            .exports(engine())
                            .filter(|(_, i)| matches!(i.ty, ComponentItem::ComponentFunc(_)))
                            .map(|(n, _)| n.to_string())
                            .collect();
                        found.push((None, funcs));
                    }
                }
                ComponentItem::ComponentInstance(ci) => {
                    let mut funcs = Vec::new();
                    let mut has = false;
                    for (n, i) in ci.exports(engine()) {
                        match i.ty {
                            ComponentItem::Resource(_) => {
                                all.push(format!("{top}#{n}"));
                                has |= n == res;
                            }
                            ComponentItem::ComponentFunc(_) => funcs.push(n.to_string()),
                            _ => {}
                        }
                    }
                    if has && matches(top) {
                        found.push((Some(top.to_string()), funcs));
                    }
                }
                _ => {}
            }
        }
        let (iface, funcs) = match found.len() {
            1 => found.pop().expect("one"),
            0 => {
                return Err(f.fail(Error::invalid(format!(
                    "resource `{name}` is not exported (resources: {})",
                    if all.is_empty() {
                        "none".to_string()
                    } else {
                        all.join(", ")
                    }
                ))));
            }
            _ => {
                let names: Vec<String> = found
                    .iter()
                    .map(|(i, _)| format!("{}#{res}", i.as_deref().unwrap_or("")))
                    .collect();
                return Err(f.fail(Error::invalid(format!(
                    "resource `{name}` is ambiguous: {}; name its interface",
                    names.join(", ")
                ))));
            }
        };
        let full = |func: &str| match &iface {
            Some(i) => format!("{i}#{func}"),
            None => func.to_string(),
        };
        let ty = match &iface {
            Some(i) => instance
                .get_export_index(&mut self.store, None, i)
                .and_then(|p| instance.get_export_index(&mut self.store, Some(&p), res)),
            None => instance.get_export_index(&mut self.store, None, res),
        }
        .and_then(|i| instance.get_resource(&mut self.store, i))
        .ok_or_else(|| f.fail(Error::invalid(format!("resource `{name}` is not exported"))))?;
        let mut class = Class {
            name: res.to_string(),
            ty,
            constructor: None,
            methods: Vec::new(),
            statics: Vec::new(),
        };
        let (method, stat) = (format!("[method]{res}."), format!("[static]{res}."));
        for func in funcs {
            if func == format!("[constructor]{res}") {
                class.constructor = Some(full(&func));
            } else if let Some(m) = func.strip_prefix(&method) {
                class.methods.push((m.to_string(), full(&func)));
            } else if let Some(s) = func.strip_prefix(&stat) {
                class.statics.push((s.to_string(), full(&func)));
            }
        }
        Ok(class)
    }
}

/// A function `name` (no `#`) that one exported interface alone has, when the component
/// has none of that name at its top level: instances call exports by their short names.
fn in_interfaces(
    component: &wasmtime::component::Component,
    name: &str,
) -> Option<(
    wasmtime::component::types::ComponentFunc,
    wasmtime::component::ComponentExportIndex,
    String,
)> {
    if name.contains('#') {
        return None;
    }
    let mut found = None;
    for (iface, item) in component.component_type().exports(engine()) {
        let ComponentItem::ComponentInstance(ci) = item.ty else {
            continue;
        };
        if ci
            .exports(engine())
            .any(|(n, i)| n == name && matches!(i.ty, ComponentItem::ComponentFunc(_)))
        {
            if found.is_some() {
                // In several: the caller names the interface.
                return None;
            }
            found = find_export(component, &format!("{iface}#{name}")).ok();
        }
    }
    found
}

/// An export's arguments, converted (with the Lua values lent as borrows, to give back
/// after the call).
pub enum Lowered {
    Core(Vec<wasmtime::Val>),
    Component(Vec<Val>, Vec<ResourceAny>),
}

/// An export's results, as wasmtime gave them.
pub enum Results {
    Core(Vec<wasmtime::Val>),
    Component(Vec<Val>),
}

/// A call stopped from outside the guest (deadline or cancel while it waited on the host),
/// carried through wasmtime's error type.
#[derive(Debug)]
struct Stopped(Error);

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.message())
    }
}

impl std::error::Error for Stopped {}

fn count_error(f: &Function, export: &Export, want: usize, got: usize) -> Error {
    f.fail(Error::invalid(format!(
        "{}: {}",
        export.short(),
        expected_args(want, got)
    )))
}

/// How the direct path calls `func`, an export with these types, if it can.
fn direct_of(
    store: &Store<CallCtx>,
    func: wasmtime::component::Func,
    params: &[(String, Type)],
    results: &[Type],
) -> Option<Direct> {
    let types: Vec<Type> = params.iter().map(|(_, ty)| ty.clone()).collect();
    let (typed, method) = match results {
        // (a handle to make of the result: the parameters are planned as for no result)
        [Type::Own(_)] => {
            let (_, method) = value::direct::plan_live(&types, &[])?;
            (Typed::Own(func.typed(store).ok()?), method)
        }
        _ => {
            let (shape, method) = value::direct::plan_live(&types, results)?;
            let typed = match shape {
                Shape::Unit => Typed::Unit(func.typed(store).ok()?),
                Shape::Flat => Typed::Flat(func.typed(store).ok()?),
                Shape::Memory => Typed::Memory(func.typed(store).ok()?),
            };
            (typed, method)
        }
    };
    let layout = value::direct::Layout::new(&types[usize::from(method)..])?;
    Some(Direct {
        typed,
        method,
        stack: layout.stack(),
    })
}
