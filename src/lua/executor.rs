//! Executors (`funcs.new()`, and the default one behind `funcs.call` and `funcs.async`):
//! calls on the direct path, on the general path, and started on a pool.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Weak};

use mlua::prelude::*;

use super::future::Future;
use super::{error, guard, host, number, string_arg};
use crate::error::{Error, Kind};
use crate::function::{Args, CallOptions};
use crate::host::HostCall;
use crate::pool::Handle;
use crate::runtime::Runtime;
use crate::value::{self, Output};

/// The error of a call made where the Lua stack cannot grow to hold its arguments while they
/// are read (a runaway recursion, or out of memory).
pub(super) const STACK_OVERFLOW: &std::ffi::CStr =
    c"stack overflow (no room on the Lua stack for a call's arguments)";

/// `funcs.new()`: calls with options of their own (`timeout`).
#[derive(Clone)]
pub(super) struct Executor {
    pub(super) runtime: Arc<Runtime>,
    pub(super) options: CallOptions,
    pub(super) fns: Rc<host::HostFns>,
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
    /// The executor of `funcs.call` and `funcs.async`: no options of its own.
    pub(super) fn new(runtime: Arc<Runtime>, fns: Rc<host::HostFns>) -> Executor {
        Executor {
            runtime,
            options: CallOptions::default(),
            fns,
            recent: RefCell::default(),
        }
    }

    /// `call(id, ...)`: `value` or `nil, err`. `direct`: whether to try the direct path
    /// first (`false` after `fast::call` tried it).
    pub(super) fn call(
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
                    let called =
                        guard::lua_code(|| f.call::<LuaMultiValue>(LuaMultiValue::from_iter(args)));
                    return match called {
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
            self.convert(lua, &handle, &args)
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
        // The drops of resources Lua defines that the call's store held.
        host::settle(lua, &self.fns);
        match result {
            Ok(output) => to_lua(lua, &output),
            Err(e) => error::fail(lua, e),
        }
    }

    /// A call on the direct path (`value::direct`), on this thread with the arguments on the
    /// Lua stack; `None` when an argument makes it give up (the general path then names it).
    pub(super) fn call_direct(
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
    pub(super) unsafe fn direct_here(
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
    pub(super) fn start(
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
            host::settle(lua, &self.fns);
            submitted.map(|done| Future {
                done,
                id,
                runtime: self.runtime.clone(),
                fns: self.fns.clone(),
                handles: None,
            })
        });
        match result {
            Ok(f) => guard::userdata(lua, f)?.into_lua_multi(lua),
            Err(e) => error::fail(lua, e),
        }
    }

    /// The function the ID argument names (a Lua error if it is not a string).
    pub(super) fn function(
        &self,
        id: &LuaValue,
        name: &str,
    ) -> LuaResult<Result<Arc<Handle>, Error>> {
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
    pub(super) fn named(&self, id: &[u8]) -> Option<Arc<Handle>> {
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
    pub(super) fn arguments(
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
        Ok(self.convert(lua, handle, args))
    }

    /// The arguments converted to the function's parameter types on this thread (those of
    /// resources Lua defines by type).
    pub(super) fn convert(
        &self,
        lua: &Lua,
        handle: &Handle,
        args: &[LuaValue],
    ) -> Result<Args, Error> {
        let function = handle.0.function();
        let typed = function.lua_params().zip(function.lua_resources());
        let mut values = Vec::with_capacity(args.len());
        for (i, arg) in args.iter().enumerate() {
            let value = match &typed {
                Some((params, reps)) if i < params.len() => {
                    let number = |r: &wasmtime::component::ResourceType| function.lua_type(r);
                    host::typed(lua, reps, arg, &params[i], &number, &|_| None)
                }
                _ => value::from_lua(arg),
            };
            values.push(value.map_err(|e| function.arg_error(i, e))?);
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
            read_options(t, "with_options", &mut next.options)?;
            userdata(lua, next)
        });
    }
}

/// An executor as Lua holds it: a userdata whose user value is a table of its own `call`,
/// on the fast path as `funcs.call` is (`fast::method`); its metatable's `__index`
/// (`methods::index`) looks there first, then at the methods every executor shares (`call`
/// among them, for an executor whose user value a script replaced).
///
/// # Errors
/// Lua's own (out of memory).
pub(super) fn userdata(lua: &Lua, executor: Executor) -> LuaResult<LuaAnyUserData> {
    let ud = guard::userdata(lua, executor.clone())?;
    let general = {
        let executor = executor.clone();
        lua.create_function(move |lua, (id, args): (LuaValue, LuaVariadic<LuaValue>)| {
            executor.call(lua, &id, args, "call", false)
        })?
    };
    let own = lua.create_table()?;
    // (Lua 5.1: not wrapped by `guard::reentry`'s check, as `funcs.call` is not: it enters
    // mlua itself only when it must)
    own.raw_set("call", super::fast::method(lua, executor, general)?)?;
    super::methods::set(lua, &ud, own)?;
    Ok(ud)
}

/// Reads an options table (`{timeout = ms}`) of function `func` into `options`.
///
/// # Errors
/// A Lua error naming a bad or unknown option.
pub(super) fn read_options(t: &LuaTable, func: &str, options: &mut CallOptions) -> LuaResult<()> {
    for pair in t.pairs::<LuaValue, LuaValue>() {
        let (k, v) = pair?;
        let k = k.as_string().map(|s| s.to_string_lossy());
        match (k.as_deref(), v) {
            (Some("timeout"), LuaValue::Nil) => options.timeout_ms = None,
            (Some("timeout"), v) => match number(&v) {
                Some(ms) if ms >= 1.0 && ms.fract() == 0.0 => options.timeout_ms = Some(ms as u64),
                _ => {
                    return Err(LuaError::runtime(format!(
                        "bad option 'timeout' to '{func}' (positive integer of milliseconds expected)"
                    )));
                }
            },
            (k, _) => {
                return Err(LuaError::runtime(format!(
                    "bad option '{}' to '{func}' (known: timeout)",
                    k.unwrap_or("?")
                )));
            }
        }
    }
    Ok(())
}

/// A call's result as Lua values.
pub(super) fn to_lua(lua: &Lua, output: &Output) -> LuaResult<LuaMultiValue> {
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
