//! The Lua face of instances a caller holds (SPEC section 15): `funcs.instantiate`, the
//! Instance userdata (`call`, `async`, `resource`, `close`), resource classes (tables of the
//! constructor and statics) and handle userdata (methods by WIT or snake_case name, `drop`,
//! `<close>`). The instance itself, its handles' fates and its caps are `crate::instance`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use mlua::prelude::*;

use super::future::Future;
use super::live::{self, ByAddress};
use super::{error, guard, host, string_arg};
use crate::error::Error;
use crate::function::CallOptions;
use crate::host::HostCall;
use crate::instance::{Handle, Instance};
use crate::pool::Completion;
use crate::runtime::Runtime;
use crate::value::{self, Output, Value};

/// What every instance of one `require("funcs")` shares.
pub(super) struct Ctx {
    pub(super) runtime: Arc<Runtime>,
    pub(super) fns: Rc<host::HostFns>,
    /// Whether the metatable of instances was guarded in this state.
    guarded: Cell<bool>,
    /// What the metatable of every handle has (made on first need).
    handle_prototype: RefCell<Option<LuaTable>>,
    /// The instances and handles alive, by address (the direct path of `call` and methods):
    /// the instances of every load of the module in this Lua state, whose `call` all share.
    instances: Rc<ByAddress<Rc<Face>>>,
    handles: Rc<ByAddress<Bound>>,
}

impl Ctx {
    /// Runs `f`, in which an instance's guest may run (a call, a destructor, instantiation),
    /// answering its host calls on this thread; then closes the instances and does the
    /// drops that guests and the collector left to the Lua thread.
    fn served<R>(&self, lua: &Lua, f: impl FnOnce() -> R) -> R {
        crate::instance::bury();
        let result = if self.runtime.has_hosts() {
            let serve = |call: &HostCall| host::serve(lua, &self.fns, call);
            crate::host::serving(self.runtime.inbox(), &serve, f)
        } else {
            f()
        };
        host::settle(lua, &self.fns);
        result
    }

    pub(super) fn new(lua: &Lua, runtime: Arc<Runtime>, fns: Rc<host::HostFns>) -> Ctx {
        Ctx {
            runtime,
            fns,
            guarded: Cell::new(false),
            handle_prototype: RefCell::new(None),
            instances: live::instances(lua),
            handles: Rc::default(),
        }
    }
}

/// One instance as Lua sees it: shared by its userdata, its classes and its handles.
pub(super) struct Face {
    instance: Arc<Instance>,
    options: CallOptions,
    ctx: Rc<Ctx>,
    /// The metatable of each resource's handles, by qualified resource name.
    metatables: RefCell<HashMap<String, LuaTable>>,
    /// The address of its userdata (0 until it is known).
    address: Cell<usize>,
}

/// `funcs.instantiate(id [, {timeout = ms}])`.
pub(super) fn instantiate(
    lua: &Lua,
    ctx: &Rc<Ctx>,
    id: &LuaValue,
    options: Option<LuaValue>,
) -> LuaResult<LuaMultiValue> {
    let id = string_arg(id, 1, "instantiate")?;
    let options = call_options(options)?;
    match ctx.served(lua, || ctx.runtime.instantiate(&id, &options)) {
        Ok(instance) => {
            let face = Rc::new(Face {
                instance,
                options,
                ctx: ctx.clone(),
                metatables: RefCell::default(),
                address: Cell::new(0),
            });
            let ud = guard::userdata(lua, LuaInstance(face.clone()))?;
            if !ctx.guarded.get() {
                guard::guard(lua, &ud)?;
                ctx.guarded.set(true);
                live::install_call(lua, &ud, ctx.instances.clone())?;
            }
            let address = ud.to_pointer() as usize;
            face.address.set(address);
            ctx.instances.insert(address, face);
            ud.into_lua_multi(lua)
        }
        Err(e) => error::fail(lua, e),
    }
}

/// The options table of `funcs.instantiate`: `timeout` (ms), every call's deadline.
fn call_options(options: Option<LuaValue>) -> LuaResult<CallOptions> {
    let mut out = CallOptions::default();
    let t = match options {
        None | Some(LuaValue::Nil) => return Ok(out),
        Some(LuaValue::Table(t)) => t,
        Some(other) => {
            return Err(LuaError::runtime(format!(
                "bad argument #2 to 'instantiate' (table expected, got {})",
                other.type_name()
            )));
        }
    };
    super::executor::read_options(&t, "instantiate", &mut out)?;
    Ok(out)
}

impl Face {
    /// Its instance.
    pub(super) fn instance(&self) -> &Arc<Instance> {
        &self.instance
    }

    /// The options of its calls.
    pub(super) fn options(&self) -> &CallOptions {
        &self.options
    }

    /// Calls `export` with `args` (handles among them, at any depth): its results, or
    /// `nil, err`.
    fn call(
        self: &Rc<Self>,
        lua: &Lua,
        export: &str,
        this: Option<Value>,
        args: impl Iterator<Item = LuaValue>,
    ) -> LuaResult<LuaMultiValue> {
        if let Err(e) = self.wait_queued(lua) {
            return error::fail(lua, e);
        }
        self.ctx
            .served(lua, || match self.run(lua, export, this, args) {
                Ok(v) => self.to_lua(lua, &v)?.into_lua_multi(lua),
                Err(e) => error::fail(lua, e),
            })
    }

    /// Waits, answering host calls, for the calls `inst:async` queued: the instance's other
    /// work waits behind them (SPEC section 15). `INVALID` from inside a host call while they
    /// run (the call waited for could be the one waiting for this host call).
    fn wait_queued(&self, lua: &Lua) -> Result<(), Error> {
        let Some(queued) = self.instance.queued() else {
            return Ok(());
        };
        if crate::host::answering() {
            return Err(Error::invalid(format!(
                "failed to use instance {} from a host function while calls queued by inst:async run",
                self.instance.describe()
            ))
            .with(|d| d.entry = Some(self.instance.id().to_string())));
        }
        let serve = |call: &HostCall| host::serve(lua, &self.ctx.fns, call);
        self.ctx.runtime.wait_serving(&queued, None, &serve);
        Ok(())
    }

    /// The call of [`Face::call`] and `inst:async`: its result as a value (inside `served`).
    /// `this`: a method's handle, the first argument.
    fn run(
        &self,
        lua: &Lua,
        export: &str,
        this: Option<Value>,
        args: impl Iterator<Item = LuaValue>,
    ) -> Result<Value, Error> {
        self.values(lua, export, this, args)
            .and_then(|values| self.instance.call(export, &values, &self.options))
    }

    /// The arguments as values (`this` first), handles recognised (and resources Lua
    /// defines, by type).
    fn values(
        &self,
        lua: &Lua,
        export: &str,
        this: Option<Value>,
        args: impl Iterator<Item = LuaValue>,
    ) -> Result<Vec<Value>, Error> {
        let typed = match self.ctx.runtime.reps().has_types() {
            true => self.instance.lua_params(export),
            false => None,
        };
        let handle_value = |ud: &LuaAnyUserData| {
            let b = self.ctx.handles.get(ud.to_pointer() as usize)?;
            Some(Value::Handle(b.handle.clone()))
        };
        let skip = usize::from(this.is_some());
        let mut values = Vec::with_capacity(skip + args.size_hint().0);
        values.extend(this);
        for (i, arg) in args.enumerate().map(|(i, arg)| (i + skip, arg)) {
            let value = match &typed {
                Some((params, reps)) if i < params.len() => {
                    let number = |r: &wasmtime::component::ResourceType| reps.type_of(r);
                    host::typed(lua, reps, &arg, &params[i], &number, &handle_value)
                }
                _ => value::from_lua_with(&arg, &handle_value),
            };
            values.push(value.map_err(|e| {
                Error::invalid(format!("{export}: argument {}: {e}", i + 1)).with(|d| {
                    d.entry = Some(self.instance.id().to_string());
                    d.argument = Some(i + 1);
                })
            })?);
        }
        Ok(values)
    }

    /// A result as Lua values, handles made userdata.
    fn to_lua(self: &Rc<Self>, lua: &Lua, v: &Value) -> LuaResult<LuaValue> {
        value::to_lua_with(lua, v, &|lua, h| self.handle(lua, h))
    }

    /// The userdata of a new handle.
    fn handle(self: &Rc<Self>, lua: &Lua, h: &Arc<Handle>) -> LuaResult<LuaValue> {
        let metatable = self.metatable(lua, h.qualified())?;
        // SAFETY: the closure works on the stack `exec_raw` gives it, in protected mode.
        let ud: LuaAnyUserData = unsafe {
            lua.exec_raw(metatable, |state| {
                live::new_handle(state, 1);
                mlua::ffi::lua_replace(state, 1);
                mlua::ffi::lua_settop(state, 1);
            })?
        };
        self.ctx.handles.insert(
            ud.to_pointer() as usize,
            Bound::new(h.clone(), self.clone()),
        );
        Ok(LuaValue::UserData(ud))
    }

    /// The metatable of the handles of resource `qualified` (made on first need): their
    /// methods (and `drop`) as `__index`, with what every handle's has
    /// ([`Ctx::handle_prototype`]).
    fn metatable(&self, lua: &Lua, qualified: &str) -> LuaResult<LuaTable> {
        if let Some(t) = self.metatables.borrow().get(qualified) {
            return Ok(t.clone());
        }
        let t = lua.create_table()?;
        let handles = self.ctx.handles.clone();
        let general =
            lua.create_function(move |lua, this: LuaValue| drop_handle(lua, &handles, this))?;
        t.raw_set(
            "drop",
            live::dropper(lua, self.ctx.handles.clone(), general)?,
        )?;
        // A resource the component imports has no methods here, only `drop`; one whose class
        // could not be read now (asked from inside the instance's own call) is asked again.
        // (On the direct path, `live`: not wrapped on Lua 5.1, as `funcs.call` is not.)
        let class = self.instance.class(qualified);
        if let Ok(class) = &class {
            for (name, export) in &class.methods {
                let general = method(lua, export.clone(), self.ctx.handles.clone())?;
                let f = live::method(lua, self.ctx.handles.clone(), export.clone(), general)?;
                t.raw_set(name.as_str(), f.clone())?;
                t.raw_set(name.replace('-', "_"), f)?;
            }
        }
        let metatable = lua.create_table()?;
        for pair in self
            .ctx
            .handle_prototype(lua)?
            .pairs::<LuaValue, LuaValue>()
        {
            let (k, v) = pair?;
            metatable.raw_set(k, v)?;
        }
        metatable.raw_set("__index", t)?;
        if class.is_ok() || !qualified.contains('#') {
            self.metatables
                .borrow_mut()
                .insert(qualified.to_string(), metatable.clone());
        }
        Ok(metatable)
    }

    /// `inst:resource(name)`: a table of the constructor (`new`) and the statics (WIT and
    /// snake_case names).
    fn class(self: &Rc<Self>, lua: &Lua, name: &str) -> LuaResult<LuaMultiValue> {
        let class = self
            .wait_queued(lua)
            .and_then(|()| self.ctx.served(lua, || self.instance.class(name)));
        let class = match class {
            Ok(class) => class,
            Err(e) => return error::fail(lua, e),
        };
        let t = lua.create_table()?;
        let general = |export: String| {
            let face = self.clone();
            lua.create_function(move |lua, args: LuaMultiValue| {
                face.call(lua, &export, None, args.into_iter())
            })
        };
        for (name, export) in &class.statics {
            let f = general(export.clone())?;
            t.raw_set(name.as_str(), f.clone())?;
            t.raw_set(name.replace('-', "_"), f)?;
        }
        guard::entered_fields(lua, &t)?;
        // (on the direct path, `live`: not wrapped on Lua 5.1, as `funcs.call` is not)
        if let Some(export) = &class.constructor {
            let metatable = self.metatable(lua, self.instance.resource_name(&class.ty))?;
            let f = live::constructor(
                lua,
                self.clone(),
                export.clone(),
                self.ctx.handles.clone(),
                general(export.clone())?,
                metatable,
            )?;
            t.raw_set("new", f)?;
        }
        t.into_lua_multi(lua)
    }
}

/// The function of a handle method: `h:name(...)` calls `export` with `h` borrowed first.
fn method(lua: &Lua, export: String, handles: Rc<ByAddress<Bound>>) -> LuaResult<LuaFunction> {
    lua.create_function(move |lua, (this, args): (LuaValue, LuaMultiValue)| {
        let this =
            bound(&handles, &this).map(|b| (b.face.clone(), Value::Handle(b.handle.clone())));
        let Some((face, this)) = this else {
            let short = export.rsplit(']').next().unwrap_or(&export);
            return Err(LuaError::runtime(format!(
                "bad argument #1 to '{short}' (a resource handle expected: call it as h:method(...))"
            )));
        };
        face.call(lua, &export, Some(this), args.into_iter())
    })
}

/// `h:drop()`: `true`, or `nil, err`.
fn drop_handle(lua: &Lua, handles: &ByAddress<Bound>, this: LuaValue) -> LuaResult<LuaMultiValue> {
    let handle = bound(handles, &this).map(|b| (b.handle.clone(), b.face.clone()));
    let Some((handle, face)) = handle else {
        return Err(LuaError::runtime(
            "bad argument #1 to 'drop' (a resource handle expected: call it as h:drop())",
        ));
    };
    let dropped = face
        .wait_queued(lua)
        .and_then(|()| face.ctx.served(lua, || handle.drop_now()));
    match dropped {
        Ok(()) => true.into_lua_multi(lua),
        Err(e) => error::fail(lua, e),
    }
}

/// The handle `value` is, if it is one (of this load of the module).
fn bound(handles: &ByAddress<Bound>, value: &LuaValue) -> Option<Bound> {
    match value {
        LuaValue::UserData(ud) => handles.get(ud.to_pointer() as usize),
        _ => None,
    }
}

/// An instance userdata.
pub(super) struct LuaInstance(Rc<Face>);

impl Drop for LuaInstance {
    fn drop(&mut self) {
        // (its finalizer runs: the address may be reused)
        self.0.ctx.instances.remove(self.0.address.get());
    }
}

impl LuaUserData for LuaInstance {
    fn add_methods<M: LuaUserDataMethods<Self>>(methods: &mut M) {
        methods.add_method(
            "call",
            |lua, this, (export, args): (LuaValue, LuaMultiValue)| {
                let export = string_arg(&export, 1, "call")?;
                this.0.call(lua, &export, None, args.into_iter())
            },
        );
        methods.add_method(
            "async",
            |lua, this, (export, args): (LuaValue, LuaMultiValue)| {
                let export = string_arg(&export, 1, "async")?;
                let face = &this.0;
                let inbox = face.ctx.runtime.inbox().clone();
                let done = if face.instance.queues() {
                    // On the entry's workers, after the calls queued before (one at a time);
                    // arguments read now (a bad one fails the future, the instance stays).
                    let done = Completion::signaling(inbox.clone());
                    // Values of resources Lua defines are read by the export's types, which
                    // the open store gives: not while a worker holds it for a queued call.
                    let ready = match face.instance.typed_args() {
                        true => face.wait_queued(lua),
                        false => Ok(()),
                    };
                    let queued = ready
                        .and_then(|()| face.values(lua, &export, None, args.into_iter()))
                        .and_then(|values| {
                            face.instance.queue(export.clone(), values, done.clone())
                        });
                    match queued {
                        Ok(_) => done,
                        Err(e) => Completion::completed(inbox, Err(e)),
                    }
                } else {
                    // An inline pool's: on the caller's thread, now (its future complete).
                    let result = face
                        .ctx
                        .served(lua, || face.run(lua, &export, None, args.into_iter()));
                    Completion::completed(inbox, result.map(Output::Value))
                };
                guard::userdata(
                    lua,
                    Future {
                        done,
                        id: face.instance.id().to_string(),
                        runtime: face.ctx.runtime.clone(),
                        fns: face.ctx.fns.clone(),
                        handles: Some(face.clone()),
                    },
                )
            },
        );
        methods.add_method("resource", |lua, this, name: LuaValue| {
            let name = string_arg(&name, 1, "resource")?;
            this.0.class(lua, &name)
        });
        methods.add_method("close", |lua, this, ()| {
            // (then the resources Lua defines that the instance held: their `__drop`)
            let closed = this
                .0
                .wait_queued(lua)
                .and_then(|()| this.0.ctx.served(lua, || this.0.instance.close()));
            match closed {
                Ok(()) => true.into_lua_multi(lua),
                Err(e) => error::fail(lua, e),
            }
        });
        methods.add_meta_method(LuaMetaMethod::ToString, |_, this, ()| {
            let i = &this.0.instance;
            Ok(format!("funcs.instance: {} ({})", i.describe(), i.status()))
        });
    }
}

impl Face {
    /// A future's result with its handles made userdata.
    pub(super) fn output(self: &Rc<Self>, lua: &Lua, output: &Output) -> LuaResult<LuaMultiValue> {
        match output {
            Output::Value(v) => self.to_lua(lua, v)?.into_lua_multi(lua),
            Output::Tape(tape) => self.to_lua(lua, &tape.to_value())?.into_lua_multi(lua),
        }
    }
}

/// A resource handle as its userdata stands for it: found by the userdata's address
/// (`live::ByAddress`). The userdata (`live::new_handle`) holds nothing; its metatable is
/// its resource's ([`Face::metatable`]), whose `__index` is the resource's methods.
#[derive(Clone)]
pub(super) struct Bound {
    pub(super) handle: Arc<Handle>,
    pub(super) face: Rc<Face>,
}

impl Bound {
    pub(super) fn new(handle: Arc<Handle>, face: Rc<Face>) -> Bound {
        Bound { handle, face }
    }
}

impl Ctx {
    /// What the metatable of every handle has ([`Face::metatable`] adds its methods):
    /// `__gc` (forgets the handle), `__tostring` and, on Lua 5.4 and 5.5, `__close` (drops
    /// it); made on first need.
    fn handle_prototype(&self, lua: &Lua) -> LuaResult<LuaTable> {
        if let Some(t) = self.handle_prototype.borrow().as_ref() {
            return Ok(t.clone());
        }
        let t = lua.create_table()?;
        let handles = self.handles.clone();
        let tostring = lua.create_function(move |_, this: LuaValue| {
            let b = bound(&handles, &this).ok_or_else(|| {
                LuaError::runtime("bad argument #1 to '__tostring' (a resource handle expected)")
            })?;
            let h = &b.handle;
            Ok(match h.dead() {
                None => format!("funcs.resource: {}", h.describe()),
                Some(_) => format!("funcs.resource: {} (dead)", h.describe()),
            })
        })?;
        t.raw_set("__tostring", tostring)?;
        #[cfg(any(feature = "lua54", feature = "lua55"))]
        {
            let handles = self.handles.clone();
            let close = lua.create_function(move |lua, (this, _): (LuaValue, LuaMultiValue)| {
                // A failed destructor ends the instance, which says so at its next call.
                if let Some(b) = bound(&handles, &this) {
                    let _ = b.face.ctx.served(lua, || b.handle.drop_now());
                }
                Ok(())
            })?;
            t.raw_set("__close", close)?;
        }
        // (Lua 5.1: wrapped as funcs' own functions are; not `__gc`)
        guard::entered_fields(lua, &t)?;
        t.raw_set("__gc", live::finalizer(lua, self.handles.clone())?)?;
        t.raw_set("__metatable", false)?;
        t.raw_set("__name", "funcs.resource")?;
        *self.handle_prototype.borrow_mut() = Some(t.clone());
        Ok(t)
    }
}
