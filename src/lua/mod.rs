//! The `funcs` table Lua gets from `require("funcs")`, and everything that touches mlua
//! userdata.
//!
//! API misuse (a non-string ID) raises a Lua error; failures of loading and calling return
//! `nil, err` with an [`error::ErrorObject`].

pub mod error;
mod fast;
mod guard;
mod host;

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::sync::{Arc, Weak};

use mlua::prelude::*;

use std::time::Duration;

use crate::engine::Allocator;
use crate::error::{Error, Kind};
use crate::function::{Args, CallOptions};
use crate::host::HostCall;
use crate::pool::{Completion, Handle, Stats};
use crate::registry::Summary;
use crate::runtime::Runtime;
use crate::value::{self, Output};

/// The module entry point: `luaopen_funcs` when built with the `module` feature.
///
/// # Errors
/// Only Lua's own failures (out of memory).
#[cfg_attr(feature = "module", mlua::lua_module(name = "funcs"))]
pub fn funcs(lua: &Lua) -> LuaResult<LuaTable> {
    module(lua)
}

/// Builds the module table around a new [`Runtime`].
///
/// # Errors
/// Only Lua's own failures (out of memory).
pub fn module(lua: &Lua) -> LuaResult<LuaTable> {
    value::direct::install(lua)?;
    let runtime = Arc::new(Runtime::default());
    let funcs = lua.create_table()?;
    let fns = Rc::new(host::HostFns::new(runtime.clone()));

    let (rt, f) = (runtime.clone(), fns.clone());
    funcs.set(
        "host",
        lua.create_function(move |lua, (name, functions): (LuaValue, LuaValue)| {
            host::register(lua, &rt, &f, &name, &functions).map(|()| true)
        })?,
    )?;

    let (rt, f) = (runtime.clone(), fns.clone());
    funcs.set(
        "load",
        lua.create_function(move |lua, path: LuaValue| {
            let path = string_arg(&path, 1, "load")?;
            let loaded = rt.load(Path::new(&path));
            // Registrations the reloaded entries held may be gone now.
            f.release(lua);
            match loaded {
                Ok(summary) => summary_table(lua, &summary)?.into_lua_multi(lua),
                Err(e) => error::fail(lua, e),
            }
        })?,
    )?;

    let default = Executor {
        runtime: runtime.clone(),
        options: CallOptions::default(),
        fns: fns.clone(),
        recent: RefCell::default(),
    };
    let f = fns.clone();
    funcs.set(
        "register",
        lua.create_function(move |lua, (id, fun): (LuaValue, LuaValue)| {
            host::register_fn(lua, &f, &id, &fun).map(|()| true)
        })?,
    )?;

    // A C function that makes direct calls itself and leaves the rest to this one.
    let executor = default.clone();
    let general =
        lua.create_function(move |lua, (id, args): (LuaValue, LuaVariadic<LuaValue>)| {
            executor.call(lua, &id, args, "call", false)
        })?;
    funcs.set("call", fast::call(lua, default.clone(), general)?)?;
    let executor = default.clone();
    funcs.set(
        "async",
        lua.create_function(move |lua, (id, args): (LuaValue, LuaVariadic<LuaValue>)| {
            executor.start(lua, &id, &args, "async")
        })?,
    )?;
    let executor = default.clone();
    funcs.set(
        "new",
        lua.create_function(move |lua, ()| guard::userdata(lua, executor.clone()))?,
    )?;

    let rt = runtime.clone();
    funcs.set(
        "stats",
        lua.create_function(move |lua, id: Option<LuaValue>| {
            let all = rt.stats();
            match id {
                None | Some(LuaValue::Nil) => {
                    let t = lua.create_table()?;
                    for (id, stats) in &all {
                        t.set(id.as_str(), stats_table(lua, stats)?)?;
                    }
                    t.into_lua_multi(lua)
                }
                Some(id) => {
                    let id = string_arg(&id, 1, "stats")?;
                    match all.iter().find(|(i, _)| *i == id) {
                        Some((_, stats)) => stats_table(lua, stats)?.into_lua_multi(lua),
                        None => {
                            error::fail(lua, Error::not_found(format!("function `{id}` not found")))
                        }
                    }
                }
            }
        })?,
    )?;

    let rt = runtime.clone();
    funcs.set(
        "describe",
        lua.create_function(move |lua, id: LuaValue| {
            let id = string_arg(&id, 1, "describe")?;
            match rt.function(&id) {
                Ok(handle) => describe_table(lua, &handle)?.into_lua_multi(lua),
                Err(e) => error::fail(lua, e),
            }
        })?,
    )?;

    let rt = runtime.clone();
    funcs.set(
        "metrics",
        lua.create_function(move |_, ()| Ok(rt.metrics()))?,
    )?;

    // Event loops (SPEC section 12): watch `fd()` for reading, then `poll()`.
    let rt = runtime.clone();
    funcs.set(
        "fd",
        lua.create_function(move |lua, ()| match rt.fd() {
            Ok(fd) => fd.into_lua_multi(lua),
            Err(e) => error::fail(lua, e),
        })?,
    )?;
    let (rt, f) = (runtime.clone(), fns.clone());
    funcs.set(
        "poll",
        lua.create_function(move |lua, ()| {
            // Host calls first: clearing the descriptor after them leaves no stale byte.
            rt.serve_waiting(&|call: &HostCall| host::serve(lua, &f, call));
            Ok(rt.poll())
        })?,
    )?;

    let rt = runtime.clone();
    funcs.set(
        "shutdown",
        lua.create_function(move |_, ()| {
            rt.shutdown();
            Ok(())
        })?,
    )?;

    let http = lua.create_table()?;
    let rt = runtime.clone();
    http.set(
        "start",
        lua.create_function(move |lua, id: LuaValue| {
            let id = string_arg(&id, 1, "start")?;
            match rt.start_http(&id) {
                Ok(addr) => addr.to_string().into_lua_multi(lua),
                Err(e) => error::fail(lua, e),
            }
        })?,
    )?;
    let rt = runtime.clone();
    http.set(
        "stop",
        lua.create_function(move |lua, id: LuaValue| {
            let id = string_arg(&id, 1, "stop")?;
            match rt.stop_http(&id) {
                Ok(()) => true.into_lua_multi(lua),
                Err(e) => error::fail(lua, e),
            }
        })?,
    )?;
    let rt = runtime.clone();
    http.set(
        "addr",
        lua.create_function(move |_, id: LuaValue| {
            let id = string_arg(&id, 1, "addr")?;
            Ok(rt.http_addr(&id).map(|a| a.to_string()))
        })?,
    )?;
    let (rt, f) = (runtime.clone(), fns.clone());
    http.set(
        "serve",
        lua.create_function(move |lua, id: LuaValue| {
            let id = string_arg(&id, 1, "serve")?;
            if rt.http_addr(&id).is_none()
                && let Err(e) = rt.start_http(&id)
            {
                return error::fail(lua, e);
            }
            // Serves until the process is stopped, answering host calls (this thread has
            // nothing else to do).
            let never = Completion::new();
            loop {
                rt.wait_serving(&never, None, &|call: &HostCall| host::serve(lua, &f, call));
            }
        })?,
    )?;
    funcs.set("http", http)?;

    funcs.set(
        "engine",
        lua.create_function(|lua, ()| {
            let t = lua.create_table()?;
            match crate::engine::allocator() {
                Allocator::Pooling => t.set("allocator", "pooling")?,
                Allocator::OnDemand(reason) => {
                    t.set("allocator", "on-demand")?;
                    t.set("reason", reason.as_deref())?;
                }
            }
            t.set("wasmtime", crate::engine::WASMTIME_VERSION)?;
            // What a long-lived process holds: pools alive (reloaded ones until their last
            // call ends) and instances holding slots of the pooling allocator.
            t.set("pools", crate::pool::live_pools())?;
            if let Some((core, component)) = crate::engine::live_instances() {
                t.set("core_instances", core)?;
                t.set("component_instances", component)?;
            }
            Ok(t)
        })?,
    )?;

    // Stock Lua has no wall clock finer than a second: scripts timing calls use this.
    let origin = std::time::Instant::now();
    funcs.set(
        "clock",
        lua.create_function(move |_, ()| Ok(origin.elapsed().as_secs_f64()))?,
    )?;

    // The metatables of our userdata, checked against userdata given them by `debug`.
    let samples = [
        guard::userdata(lua, default.clone())?,
        guard::userdata(
            lua,
            Future {
                done: Completion::new(),
                id: String::new(),
                runtime: runtime.clone(),
                fns: fns.clone(),
            },
        )?,
        guard::userdata(lua, error::ErrorObject(Error::internal("")))?,
    ];
    for sample in &samples {
        guard::guard(lua, sample)?;
    }

    funcs.set("errors", error::kinds(lua)?)?;
    funcs.set("_VERSION", env!("CARGO_PKG_VERSION"))?;
    Ok(funcs)
}

/// The error of a call made where the Lua stack cannot grow to hold its arguments while they
/// are read (a runaway recursion, or out of memory).
const STACK_OVERFLOW: &std::ffi::CStr =
    c"stack overflow (no room on the Lua stack for a call's arguments)";

/// `funcs.new()`: calls with options of their own (`timeout`).
#[derive(Clone)]
struct Executor {
    runtime: Arc<Runtime>,
    options: CallOptions,
    fns: Rc<host::HostFns>,
    /// The function the last call named by a string, for the next call by the same ID.
    recent: RefCell<Option<Recent>>,
}

/// A function looked up by ID: valid while the runtime's generation is the same.
#[derive(Clone)]
struct Recent {
    id: Vec<u8>,
    generation: u64,
    /// Weak, so that a reload's old pool is not kept by it.
    handle: Weak<Handle>,
}

impl Executor {
    /// `call(id, ...)`: `value` or `nil, err`. `direct`: whether to try the direct path
    /// first (`false` after `fast::call` tried it).
    fn call(
        &self,
        lua: &Lua,
        id: &LuaValue,
        args: LuaVariadic<LuaValue>,
        name: &str,
        direct: bool,
    ) -> LuaResult<LuaMultiValue> {
        let handle = match self.function(id, name)? {
            Ok(handle) => handle,
            Err(e) if e.kind() == Kind::NotFound => {
                // A Lua function given to `funcs.register`?
                if let LuaValue::String(s) = id
                    && let Some(f) = self.fns.registered(lua, &s.to_string_lossy())
                {
                    // Its Lua errors fail the call like a guest's: `nil, err`.
                    return match f.call::<LuaMultiValue>(LuaMultiValue::from_iter(args)) {
                        Ok(values) => Ok(values),
                        Err(e) => {
                            let id = s.to_string_lossy();
                            let message = host::message(e);
                            error::fail(
                                lua,
                                Error::internal(format!("failed to call `{id}`: {message}"))
                                    .with(|d| d.entry = Some(id.to_string())),
                            )
                        }
                    };
                }
                return error::fail(lua, e);
            }
            Err(e) => return error::fail(lua, e),
        };
        // When the direct path gives up, so would the image: the general path names the value.
        let values = if handle.0.is_direct() {
            if direct && let Some(done) = self.call_direct(lua, &handle, &args)? {
                return done;
            }
            self.convert(&handle, &args)
        } else {
            self.arguments(lua, &handle, &args)?
        };
        let result = values.and_then(|values| {
            if self.runtime.has_hosts() {
                let serve = |call: &HostCall| host::serve(lua, &self.fns, call);
                self.runtime
                    .call_serving(&handle, values, self.options.clone(), &serve)
            } else {
                self.runtime
                    .call_with(&handle, values, self.options.clone())
            }
        });
        match result {
            Ok(output) => to_lua(lua, &output),
            Err(e) => error::fail(lua, e),
        }
    }

    /// A call on the direct path (`value::direct`), on this thread with the arguments on the
    /// Lua stack; `None` when an argument makes it give up (the general path then names it).
    fn call_direct(
        &self,
        lua: &Lua,
        handle: &Handle,
        args: &LuaVariadic<LuaValue>,
    ) -> LuaResult<Option<LuaResult<LuaMultiValue>>> {
        let mut outcome = None;
        // The result, owned out here: if pushing it raises a Lua error (out of memory), Lua
        // jumps over the frames inside `exec_raw`, which therefore own nothing with a
        // destructor by then.
        let mut tape = None;
        let stack = handle.0.function().layout().map_or(0, |l| l.stack());
        // SAFETY: the arguments are at 1..=n of the protected frame `exec_raw` runs this in,
        // for the whole synchronous call; the result is pushed in protected mode, from a frame
        // holding only references.
        let pushed: LuaResult<LuaValue> = unsafe {
            lua.exec_raw(args.clone(), |state| {
                let count = mlua::ffi::lua_gettop(state);
                let Some(limit) = value::direct::reserve(state, stack) else {
                    return;
                };
                let result = self.direct_here(state, handle, 1, count, limit);
                mlua::ffi::lua_settop(state, 0);
                outcome = Some(result.map(|result| {
                    tape = result;
                    tape.is_some()
                }));
                if let Some(tape) = &tape {
                    value::direct::push(state, tape);
                }
            })
        };
        if let Some(tape) = tape {
            tape.recycle();
        }
        let pushed = pushed?;
        let Some(outcome) = outcome else {
            return Err(LuaError::runtime(STACK_OVERFLOW.to_string_lossy()));
        };
        Ok(match outcome {
            Ok(true) => Some(pushed.into_lua_multi(lua)),
            Ok(false) => None,
            Err(e) => Some(error::fail(lua, e)),
        })
    }

    /// A call on the direct path of the arguments at `first..=last` of `state`'s stack: the
    /// result's tape, or `None` when an argument makes the direct path give up. A panic
    /// becomes an error (it must not unwind through Lua's C frames).
    ///
    /// # Safety
    /// `state` is the running Lua thread, the arguments stay where they are for the call, and
    /// [`value::direct::reserve`] made room up to `limit` (wasmtime's frames must not grow the
    /// stack: that may raise a Lua error).
    unsafe fn direct_here(
        &self,
        state: *mut mlua::ffi::lua_State,
        handle: &Handle,
        first: std::ffi::c_int,
        last: std::ffi::c_int,
        limit: std::ffi::c_int,
    ) -> Result<Option<value::direct::Tape>, Error> {
        let count = (last - first + 1).max(0) as usize;
        let call = std::panic::AssertUnwindSafe(|| {
            self.runtime.call_here(handle, &self.options, |function| {
                // SAFETY: the arguments stay at first..=last for the whole synchronous call.
                let args = unsafe { value::direct::LuaArgs::new(state, first, limit) };
                if function.is_async() {
                    // WASI on an inline pool: on its runtime, driven by this thread.
                    handle
                        .0
                        .block_on(function.call_direct_async(args, count, &self.options))
                } else {
                    function.call_direct(args, count, &self.options)
                }
            })
        });
        std::panic::catch_unwind(call).unwrap_or_else(|_| {
            Err(Error::internal(format!(
                "internal error in the call of `{}` (a bug: please report it)",
                handle.0.function().id()
            )))
        })
    }

    /// `async(id, ...)`: a Future or `nil, err`.
    fn start(
        &self,
        lua: &Lua,
        id: &LuaValue,
        args: &LuaVariadic<LuaValue>,
        name: &str,
    ) -> LuaResult<LuaMultiValue> {
        let handle = match self.function(id, name)? {
            Ok(handle) => handle,
            Err(e) => return error::fail(lua, e),
        };
        let result = self.arguments(lua, &handle, args)?.and_then(|values| {
            let id = handle.0.function().id().to_string();
            let submit = || self.runtime.submit(&handle, values, self.options.clone());
            // An inline pool runs the call now, on this thread: its host calls too.
            let submitted = if self.runtime.has_hosts() {
                let serve = |call: &HostCall| host::serve(lua, &self.fns, call);
                crate::host::serving(self.runtime.inbox(), &serve, submit)
            } else {
                submit()
            };
            submitted.map(|done| Future {
                done,
                id,
                runtime: self.runtime.clone(),
                fns: self.fns.clone(),
            })
        });
        match result {
            Ok(f) => guard::userdata(lua, f)?.into_lua_multi(lua),
            Err(e) => error::fail(lua, e),
        }
    }

    /// The function the ID argument names (a Lua error if it is not a string).
    fn function(&self, id: &LuaValue, name: &str) -> LuaResult<Result<Arc<Handle>, Error>> {
        if let LuaValue::String(s) = id {
            let bytes = s.as_bytes();
            if let Some(handle) = self.named(&bytes) {
                return Ok(Ok(handle));
            }
        }
        Ok(self.runtime.function(&string_arg(id, 1, name)?))
    }

    /// The function an ID names, from the last call's lookup when it is the same ID; `None`
    /// when there is none (or the ID is not UTF-8): the caller words the error.
    fn named(&self, id: &[u8]) -> Option<Arc<Handle>> {
        if let Some(recent) = &*self.recent.borrow()
            && *recent.id == *id
            && recent.generation == self.runtime.generation()
            && self.runtime.is_open()
            && let Some(handle) = recent.handle.upgrade()
        {
            return Some(handle);
        }
        let generation = self.runtime.generation();
        let handle = self.runtime.function(std::str::from_utf8(id).ok()?).ok()?;
        *self.recent.borrow_mut() = Some(Recent {
            id: id.to_vec(),
            generation,
            handle: Arc::downgrade(&handle),
        });
        Some(handle)
    }

    /// The arguments of a call that may run on another thread, checked on this one: for a
    /// function that may take the direct path, an image read off the Lua stack
    /// (`value::direct::Image`); converted values otherwise, and when reading the image
    /// gives up (so that the error names the argument).
    fn arguments(
        &self,
        lua: &Lua,
        handle: &Handle,
        args: &LuaVariadic<LuaValue>,
    ) -> LuaResult<Result<Args, Error>> {
        let function = handle.0.function();
        if let Some(layout) = function.layout() {
            // Owned out here: growing the stack may raise an out-of-memory error (Lua 5.1,
            // 5.2, LuaJIT), which jumps over the frames inside `exec_raw`.
            let mut image = value::direct::Image::default();
            let mut taken = false;
            // SAFETY: the arguments are at 1..=n of the protected frame `exec_raw` runs this
            // in.
            unsafe {
                lua.exec_raw::<()>(args.clone(), |state| {
                    let count = mlua::ffi::lua_gettop(state) as usize;
                    taken = image.read(state, 1, count, layout);
                    mlua::ffi::lua_settop(state, 0);
                })?;
            }
            if taken {
                return Ok(Ok(Args::Image(image)));
            }
        }
        Ok(self.convert(handle, args))
    }

    /// The arguments converted to the function's parameter types on this thread.
    fn convert(&self, handle: &Handle, args: &[LuaValue]) -> Result<Args, Error> {
        let function = handle.0.function();
        let mut values = Vec::with_capacity(args.len());
        for (i, arg) in args.iter().enumerate() {
            values.push(value::from_lua(arg).map_err(|e| function.arg_error(i, e))?);
        }
        function.lower(&values)
    }
}

impl LuaUserData for Executor {
    fn add_methods<M: LuaUserDataMethods<Self>>(methods: &mut M) {
        methods.add_method(
            "call",
            |lua, this, (id, args): (LuaValue, LuaVariadic<LuaValue>)| {
                this.call(lua, &id, args, "call", true)
            },
        );
        methods.add_method(
            "async",
            |lua, this, (id, args): (LuaValue, LuaVariadic<LuaValue>)| {
                this.start(lua, &id, &args, "async")
            },
        );
        methods.add_method("with_options", |lua, this, options: LuaValue| {
            let LuaValue::Table(t) = &options else {
                return Err(LuaError::runtime(format!(
                    "bad argument #1 to 'with_options' (table expected, got {})",
                    options.type_name()
                )));
            };
            let mut next = this.clone();
            for pair in t.pairs::<LuaValue, LuaValue>() {
                let (k, v) = pair?;
                let k = k.as_string().map(|s| s.to_string_lossy());
                match (k.as_deref(), v) {
                    (Some("timeout"), LuaValue::Nil) => next.options.timeout_ms = None,
                    (Some("timeout"), v) => match number(&v) {
                        Some(ms) if ms >= 1.0 && ms.fract() == 0.0 => {
                            next.options.timeout_ms = Some(ms as u64)
                        }
                        _ => {
                            return Err(LuaError::runtime(
                                "bad option 'timeout' to 'with_options' (positive integer of milliseconds expected)",
                            ));
                        }
                    },
                    (k, _) => {
                        return Err(LuaError::runtime(format!(
                            "bad option '{}' to 'with_options' (known: timeout)",
                            k.unwrap_or("?")
                        )));
                    }
                }
            }
            guard::userdata(lua, next)
        });
    }
}

/// A call's result as Lua values.
fn to_lua(lua: &Lua, output: &Output) -> LuaResult<LuaMultiValue> {
    match output {
        Output::Value(v) => value::to_lua(lua, v)?.into_lua_multi(lua),
        // SAFETY: pushed in protected mode (Lua raises an error on running out of memory),
        // from a frame holding only a reference.
        Output::Tape(tape) => unsafe {
            lua.exec_raw::<LuaValue>((), |state| value::direct::push(state, tape))?
                .into_lua_multi(lua)
        },
    }
}

/// The Lua side of a call started with `async`.
struct Future {
    done: Arc<Completion>,
    id: String,
    runtime: Arc<Runtime>,
    fns: Rc<host::HostFns>,
}

impl Future {
    fn result(&self, lua: &Lua) -> LuaResult<LuaMultiValue> {
        let Some(result) = self.done.result() else {
            return (LuaValue::Nil, LuaValue::Nil).into_lua_multi(lua);
        };
        match &*result {
            Ok(output) => to_lua(lua, output),
            Err(e) => error::fail(lua, e.clone()),
        }
    }
}

impl LuaUserData for Future {
    fn add_methods<M: LuaUserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("is_complete", |_, this, ()| Ok(this.done.is_complete()));
        methods.add_method("is_canceled", |_, this, ()| Ok(this.done.is_canceled()));
        methods.add_method("result", |lua, this, ()| this.result(lua));
        methods.add_method("wait", |lua, this, ms: Option<LuaValue>| {
            let timeout = match ms {
                None | Some(LuaValue::Nil) => None,
                Some(v) => match number(&v) {
                    // Beyond what a `Duration` holds (`math.huge`): no time limit.
                    Some(ms) if ms >= 0.0 => Duration::try_from_secs_f64(ms / 1000.0).ok(),
                    _ => {
                        return Err(LuaError::runtime(
                            "bad argument #1 to 'wait' (non-negative number of milliseconds expected)",
                        ));
                    }
                },
            };
            let completed = if this.runtime.has_hosts() {
                let until = timeout.and_then(|t| std::time::Instant::now().checked_add(t));
                let serve = |call: &HostCall| host::serve(lua, &this.fns, call);
                this.runtime.wait_serving(&this.done, until, &serve)
            } else {
                this.done.wait(timeout)
            };
            if completed {
                this.result(lua)
            } else {
                let ms = timeout.unwrap_or_default().as_millis();
                error::fail(
                    lua,
                    Error::new(
                        Kind::Timeout,
                        format!("waited {ms} ms for `{}`; the call goes on", this.id),
                    )
                    .with(|d| d.entry = Some(this.id.clone())),
                )
            }
        });
        methods.add_method("cancel", |_, this, ()| {
            this.done.cancel(
                Error::new(Kind::Canceled, format!("call of `{}` canceled", this.id))
                    .with(|d| d.entry = Some(this.id.clone())),
            );
            Ok(true)
        });
    }
}

/// A Lua number, integer or float.
fn number(v: &LuaValue) -> Option<f64> {
    match v {
        LuaValue::Integer(i) => Some(*i as f64),
        LuaValue::Number(n) => Some(*n),
        _ => None,
    }
}

fn stats_table(lua: &Lua, s: &Stats) -> LuaResult<LuaTable> {
    let t = lua.create_table()?;
    t.set("pool", s.kind)?;
    t.set("calls", s.calls)?;
    t.set("failures", s.failures)?;
    t.set("in_flight", s.in_flight)?;
    t.set("queued", s.queued)?;
    t.set("workers", s.workers)?;
    t.set("instances", s.instances)?;
    t.set("warm_instances", s.warm_instances)?;
    t.set("host_calls", s.host_calls)?;
    t.set("http_requests", s.http_client.requests)?;
    t.set("http_denied", s.http_client.denied)?;
    t.set("http_sent_bytes", s.http_client.sent_bytes)?;
    t.set("http_received_bytes", s.http_client.received_bytes)?;
    t.set("direct", s.direct)?;
    Ok(t)
}

/// `funcs.describe`'s table: what it takes to call an entry.
fn describe_table(lua: &Lua, handle: &Handle) -> LuaResult<LuaTable> {
    let pool = &handle.0;
    let f = pool.function();
    let t = lua.create_table()?;
    t.set("id", f.id())?;
    t.set("export", f.bound())?;
    match f.signature() {
        Ok(text) => t.set("signature", text)?,
        Err(e) => t.set("signature_error", e)?,
    }
    let spec = pool.spec();
    let p = lua.create_table()?;
    p.set("type", spec.kind.as_str())?;
    p.set("size", spec.size)?;
    if spec.buffer != usize::MAX {
        p.set("buffer", spec.buffer)?;
    }
    p.set("warm_start", spec.warm_start)?;
    t.set("pool", p)?;
    let limits = f.limits();
    let l = lua.create_table()?;
    l.set("max_execution_ms", limits.max_execution_ms)?;
    l.set("max_memory_bytes", limits.max_memory_bytes)?;
    l.set("max_fuel", limits.max_fuel)?;
    t.set("limits", l)?;
    t.set(
        "imports",
        lua.create_sequence_from(f.granted().iter().copied().chain(f.host_interfaces()))?,
    )?;
    t.set("http", f.is_http())?;
    t.set("direct", pool.is_direct())?;
    if let Some(client) = f.http_client_policy() {
        let c = lua.create_table()?;
        let hosts = client.allowed_hosts.iter().map(ToString::to_string);
        c.set("allowed_hosts", lua.create_sequence_from(hosts)?)?;
        c.set("allow_private_ip", client.allow_private_ip)?;
        c.set("timeout_ms", client.timeout_ms)?;
        c.set("max_response_bytes", client.max_response_bytes)?;
        c.set("max_request_bytes", client.max_request_bytes)?;
        t.set("http_client", c)?;
    }
    Ok(t)
}

/// A string argument, or a Lua error in the style of `luaL_argerror`.
pub(super) fn string_arg(v: &LuaValue, n: usize, func: &str) -> LuaResult<String> {
    match v {
        LuaValue::String(s) => Ok(s.to_string_lossy()),
        other => Err(LuaError::runtime(format!(
            "bad argument #{n} to '{func}' (string expected, got {})",
            // Lua's own `type()` names: integers are numbers too.
            if other.is_integer() {
                "number"
            } else {
                other.type_name()
            }
        ))),
    }
}

/// `{entries = {"ns:a", ...}, skipped = {{id = "ns:b", kind = "function.lua"}, ...},
/// bound = {["ns:a"] = "ns:pkg/iface@0.2.0#func", ...}}`.
fn summary_table(lua: &Lua, summary: &Summary) -> LuaResult<LuaTable> {
    let t = lua.create_table()?;
    t.set(
        "entries",
        lua.create_sequence_from(summary.entries.iter().cloned())?,
    )?;
    let skipped = lua.create_table()?;
    for (id, kind) in &summary.skipped {
        let item = lua.create_table()?;
        item.set("id", id.as_str())?;
        item.set("kind", kind.as_str())?;
        skipped.push(item)?;
    }
    t.set("skipped", skipped)?;
    let bound = lua.create_table()?;
    for (id, export) in &summary.bound {
        bound.set(id.as_str(), export.as_str())?;
    }
    t.set("bound", bound)?;
    Ok(t)
}
