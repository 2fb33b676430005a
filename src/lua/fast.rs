//! `funcs.call` as a plain Lua C function: a call on the direct path reads its arguments
//! where Lua left them and pushes its result, with none of mlua's per-call work (a reference
//! per argument, a `Vec` of them, a protected frame to push them back). Everything else (an ID
//! that is not a string or names no entry, an entry off the direct path, an argument the
//! direct path gives up on) goes to the general `funcs.call`, an mlua function, with the same
//! arguments; a call that fails gets its `nil, err` from a second mlua function.
//!
//! Lua errors (out of memory while pushing the result) unwind by `longjmp` in the Lua builds
//! we load into: the frames they can cross here own nothing with a destructor.

use std::cell::RefCell;
use std::ffi::c_int;
use std::rc::Rc;

use mlua::ffi;
use mlua::prelude::*;

use super::{Executor, error};
use crate::error::Error;
use crate::pool::Handle;
use crate::value::direct::{lua_scalar, push};
use crate::value::{Output, Value};

/// What the C function needs between calls: owned by its userdata upvalue.
///
/// Results and errors wait here, not in a frame a Lua error could jump over, while they are
/// pushed. Pushing may run Lua's collector, whose finalizers may call `funcs.call` again: each
/// call keeps its own entry, innermost last, boxed so that it stays where it is as the list
/// grows, and removes it (and any an interrupted inner call left) when done.
struct Fast {
    executor: Executor,
    // Boxed: a reference to one is used while inner calls push more.
    #[allow(clippy::vec_box)]
    outputs: RefCell<Vec<Box<Output>>>,
    failed: Rc<RefCell<Vec<Error>>>,
}

/// The upvalues of the C function.
const GENERAL: c_int = ffi::lua_upvalueindex(1);
const FAIL: c_int = ffi::lua_upvalueindex(2);
const STATE: c_int = ffi::lua_upvalueindex(3);

/// What became of a call the C function looked at.
enum Step {
    /// Its result is `Fast::outputs[depth]`, at this address.
    Done(*const Output, usize),
    /// Its error is `Fast::failed[depth]`.
    Failed(usize),
    /// For the general function (nothing of the call ran).
    General,
}

/// `funcs.call`: calls on the direct path made by a C function, the others by `general`.
pub(super) fn call(lua: &Lua, executor: Executor, general: LuaFunction) -> LuaResult<LuaFunction> {
    let failed = Rc::new(RefCell::new(Vec::<Error>::new()));
    let pending = failed.clone();
    let fail = lua.create_function(move |lua, depth: usize| {
        let e = pending.borrow_mut().drain(depth..).next();
        error::fail(
            lua,
            e.unwrap_or_else(|| Error::internal("internal error: no error to report (a bug)")),
        )
    })?;
    let fast = Rc::new(Fast {
        executor,
        outputs: RefCell::default(),
        failed,
    });
    // SAFETY: the userdata is written before anything can see it and dropped once, by its
    // `__gc`; the closure takes the three values this frame pushed.
    unsafe {
        lua.exec_raw::<LuaFunction>((general, fail), |state| {
            let slot = ffi::lua_newuserdata(state, size_of::<Rc<Fast>>()).cast::<Rc<Fast>>();
            slot.write(fast);
            ffi::lua_createtable(state, 0, 1);
            ffi::lua_pushcfunction(state, drop_fast);
            ffi::lua_setfield(state, -2, c"__gc".as_ptr());
            ffi::lua_setmetatable(state, -2);
            ffi::lua_pushcclosure(state, call_fast, 3);
        })
    }
}

/// `__gc` of the userdata holding [`Fast`].
unsafe extern "C-unwind" fn drop_fast(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: only ever set as the metamethod of userdata holding an `Rc<Fast>`, which Lua
    // collects once.
    unsafe {
        let slot = ffi::lua_touserdata(state, 1).cast::<Rc<Fast>>();
        if !slot.is_null() {
            slot.drop_in_place();
        }
    }
    0
}

/// `funcs.call(id, ...)`.
unsafe extern "C-unwind" fn call_fast(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: upvalue 3 is the userdata `call` made, alive while this closure is; the
    // references below are the only things this frame holds when Lua may jump over it.
    unsafe {
        let fast = &**ffi::lua_touserdata(state, STATE).cast::<Rc<Fast>>();
        match fast.run(state) {
            Step::Done(output, depth) => {
                ffi::lua_settop(state, 0);
                match &*output {
                    Output::Tape(tape) => push(state, tape),
                    Output::Value(value) => push_value(state, value),
                }
                for output in fast.outputs.borrow_mut().drain(depth..) {
                    if let Output::Tape(tape) = *output {
                        tape.recycle();
                    }
                }
                1
            }
            Step::Failed(depth) => {
                ffi::lua_settop(state, 0);
                ffi::lua_pushvalue(state, FAIL);
                ffi::lua_pushinteger(state, depth as ffi::lua_Integer);
                ffi::lua_call(state, 1, 2);
                2
            }
            Step::General => {
                let n = ffi::lua_gettop(state);
                ffi::lua_pushvalue(state, GENERAL);
                ffi::lua_insert(state, 1);
                ffi::lua_call(state, n, ffi::LUA_MULTRET);
                ffi::lua_gettop(state)
            }
        }
    }
}

impl Fast {
    /// The call, if it is one for the direct path; what it owned is dropped on return.
    unsafe fn run(&self, state: *mut ffi::lua_State) -> Step {
        // SAFETY: `state` is the running thread, its stack the call's arguments.
        unsafe {
            let top = ffi::lua_gettop(state);
            if top < 1 || ffi::lua_type(state, 1) != ffi::LUA_TSTRING {
                return Step::General;
            }
            let mut len = 0;
            let id = ffi::lua_tolstring(state, 1, &mut len);
            let id = std::slice::from_raw_parts(id.cast::<u8>(), len);
            let Some(handle) = self.executor.named(id) else {
                return Step::General;
            };
            if handle.0.function().is_core() && !self.executor.runtime.has_hosts() {
                return self.core(state, &handle, top);
            }
            if !handle.0.is_direct() {
                return Step::General;
            }
            match self.executor.direct_here(state, &handle, 2, top) {
                Ok(Some(tape)) => self.done(Output::Tape(tape)),
                Ok(None) => {
                    // As the general function gets them.
                    ffi::lua_settop(state, top);
                    Step::General
                }
                Err(e) => self.failed(e),
            }
        }
    }

    /// Keeps a call's result for pushing.
    fn done(&self, output: Output) -> Step {
        let output = Box::new(output);
        let at: *const Output = &*output;
        let mut outputs = self.outputs.borrow_mut();
        outputs.push(output);
        Step::Done(at, outputs.len() - 1)
    }

    /// Keeps a call's error for the `nil, err` function.
    fn failed(&self, e: Error) -> Step {
        let mut failed = self.failed.borrow_mut();
        failed.push(e);
        Step::Failed(failed.len() - 1)
    }
}

impl Fast {
    /// A call of a core function whose arguments are all numbers and booleans (the only
    /// values its parameters take: the general path names any other).
    unsafe fn core(&self, state: *mut ffi::lua_State, handle: &Handle, top: c_int) -> Step {
        let mut values = Vec::with_capacity(top as usize - 1);
        for idx in 2..=top {
            // SAFETY: `idx` is on the stack.
            match unsafe { lua_scalar(state, idx) } {
                Some(v) => values.push(v),
                None => return Step::General,
            }
        }
        let executor = &self.executor;
        let call = std::panic::AssertUnwindSafe(|| {
            let args = handle.0.function().lower(&values)?;
            executor
                .runtime
                .call_with(handle, args, executor.options.clone())
        });
        let result = std::panic::catch_unwind(call).unwrap_or_else(|_| {
            Err(Error::internal(format!(
                "internal error in the call of `{}` (a bug: please report it)",
                handle.0.function().id()
            )))
        });
        match result {
            Ok(output) => self.done(output),
            Err(e) => self.failed(e),
        }
    }
}

/// Pushes `value` as `value::to_lua` makes it.
///
/// # Safety
/// `state` is the running Lua thread; Lua may raise an error (out of memory).
unsafe fn push_value(state: *mut ffi::lua_State, value: &Value) {
    unsafe {
        match value {
            Value::Nil | Value::Unsupported(_) => ffi::lua_pushnil(state),
            Value::Bool(b) => ffi::lua_pushboolean(state, (*b).into()),
            Value::Int(i) => ffi::lua_pushinteger(state, *i as ffi::lua_Integer),
            Value::Float(f) => ffi::lua_pushnumber(state, *f),
            Value::Bytes(b) => {
                ffi::lua_pushlstring(state, b.as_ptr().cast(), b.len());
            }
            Value::Array(items) => {
                ffi::luaL_checkstack(state, 4, std::ptr::null());
                ffi::lua_createtable(state, items.len().try_into().unwrap_or(0), 0);
                for (i, item) in items.iter().enumerate() {
                    push_value(state, item);
                    ffi::lua_rawseti(state, -2, (i + 1) as _);
                }
            }
            Value::Map(pairs) => {
                ffi::luaL_checkstack(state, 4, std::ptr::null());
                ffi::lua_createtable(state, 0, pairs.len().try_into().unwrap_or(0));
                for (k, v) in pairs {
                    push_value(state, k);
                    push_value(state, v);
                    ffi::lua_rawset(state, -3);
                }
            }
        };
    }
}
