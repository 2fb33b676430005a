//! `funcs.call` (and each executor's `call`, the same function bound to the executor, which
//! it skips on the stack) as a plain Lua C function: a call on the direct path reads its arguments
//! where Lua left them and pushes its result, with none of mlua's per-call work (a reference
//! per argument, a `Vec` of them, a protected frame to push them back). Everything else (an ID
//! that is not a string or names no entry, an entry off the direct path, an argument the
//! direct path gives up on) goes to the general `funcs.call`, an mlua function, with the same
//! arguments; a call that fails gets its `nil, err` from a second mlua function.
//!
//! Lua errors unwind by `longjmp` in the Lua builds we load into, over frames that must own
//! nothing with a destructor. So a result is pushed, and an error made into `nil, err`, in a
//! protected call (`lua_pcall`) whose error, if any, is raised again once this frame has
//! dropped what it owned; nothing between a call's start and that point can raise one (no
//! allocation). Pushing may run Lua's collector, whose finalizers may call `funcs.call`
//! again: each call owns its own result in its frame.
//!
//! LuaJIT raises errors as C++ exceptions, which abort the process if they meet Rust's
//! `catch_unwind`: so no call that may raise (pushing, growing the stack) runs inside one;
//! the stack the arguments are read in is reserved beforehand (`value::direct::reserve`).
//!
//! A script can reach this function's upvalues with the `debug` library, replace them, and
//! call the functions they hold. None of them trusts what it is given: the state userdata is
//! recognised by its size and the address it holds of itself, and the result or error to
//! push travels in a thread-local slot that the call fills and empties around its protected
//! call, never as an argument.

use std::ffi::c_int;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;

use mlua::ffi;
use mlua::prelude::*;

use super::executor::Executor;
use super::{error, guard};
use crate::error::Error;
use crate::pool::Handle;
use crate::value::direct::{lua_scalar, push};
use crate::value::{self, Output, Value};

/// What the C function needs between calls: owned by its userdata upvalue (`None` once Lua
/// has collected it: a finalizer that runs after it gets the general function).
struct Fast {
    executor: Executor,
}

/// The state userdata of a C function: what it needs (a [`Fast`], or another type for the
/// instances' functions), the userdata's own address, which no other userdata holds at its
/// start (`debug.setupvalue` may put any value in its place), and the type of what it holds
/// (a script may swap the upvalues of two of these functions).
#[repr(C)]
pub(super) struct Cell<T: 'static> {
    me: *const Cell<T>,
    kind: std::any::TypeId,
    fast: Option<Rc<T>>,
}

/// The upvalues of the C function.
const GENERAL: c_int = ffi::lua_upvalueindex(1);
const FAIL: c_int = ffi::lua_upvalueindex(2);
pub(super) const PUSH: c_int = ffi::lua_upvalueindex(3);
const STATE: c_int = ffi::lua_upvalueindex(4);

thread_local! {
    /// The result [`push_output`] pushes: set by a call just before its protected call, and
    /// taken by `push_output` (a call of it at any other time finds it empty).
    static OUTPUT: std::cell::Cell<*const Output> = const { std::cell::Cell::new(std::ptr::null()) };
    /// The error the `fail` function makes into `nil, err`, the same way.
    static FAILURE: std::cell::Cell<*const Error> = const { std::cell::Cell::new(std::ptr::null()) };
}

/// What became of a call the C function looked at.
pub(super) enum Step {
    Done(Output),
    Failed(Error),
    /// For the general function (nothing of the call ran).
    General,
    /// No room on the Lua stack for the arguments (nothing of the call ran).
    Overflow,
}

/// `funcs.call`: calls on the direct path made by a C function, the others by `general`.
pub(super) fn call(lua: &Lua, executor: Executor, general: LuaFunction) -> LuaResult<LuaFunction> {
    make(lua, executor, general, call_fast)
}

/// An executor's own `call` (`ex:call(id, ...)`): [`call`]'s function for `executor`, which
/// takes the executor (a userdata first) off the stack.
pub(super) fn method(
    lua: &Lua,
    executor: Executor,
    general: LuaFunction,
) -> LuaResult<LuaFunction> {
    make(lua, executor, general, call_method)
}

fn make(
    lua: &Lua,
    executor: Executor,
    general: LuaFunction,
    function: ffi::lua_CFunction,
) -> LuaResult<LuaFunction> {
    closure(lua, Rc::new(Fast { executor }), general, function)
}

/// A C function with the upvalues [`finish`] uses: `general` (for the calls it leaves), a
/// function making `nil, err`, one pushing a result, and the [`Cell`] of `fast`.
///
/// # Errors
/// Lua's own (out of memory).
pub(super) fn closure<T: 'static>(
    lua: &Lua,
    fast: Rc<T>,
    general: LuaFunction,
    function: ffi::lua_CFunction,
) -> LuaResult<LuaFunction> {
    closure_pushing(lua, fast, general, None, function)
}

/// [`closure`] whose results are pushed by `push` (a function that takes the output with
/// [`output`]) instead of the one that pushes tapes and values.
///
/// # Errors
/// Lua's own (out of memory).
pub(super) fn closure_pushing<T: 'static>(
    lua: &Lua,
    fast: Rc<T>,
    general: LuaFunction,
    push: Option<LuaFunction>,
    function: ffi::lua_CFunction,
) -> LuaResult<LuaFunction> {
    // `nil, err` for the error in `FAILURE`.
    let fail = lua.create_function(|lua, ()| {
        let at = FAILURE.replace(std::ptr::null());
        if at.is_null() {
            return Err(LuaError::runtime(
                "funcs: internal function called outside funcs.call",
            ));
        }
        // SAFETY: `call_fast` set it to an error it owns until its protected call returns.
        let e = unsafe { &*at };
        error::fail(lua, e.clone())
    })?;
    // SAFETY: the userdata is written before anything can see it and emptied once, by its
    // `__gc`; the closure takes the four values this frame pushed.
    unsafe {
        lua.exec_raw::<LuaFunction>((general, fail, push), |state| {
            if ffi::lua_type(state, 3) == ffi::LUA_TNIL {
                ffi::lua_pushcfunction(state, push_output);
                ffi::lua_replace(state, 3);
            }
            new_cell(state, fast);
            ffi::lua_pushcclosure(state, function, 4);
        })
    }
}

/// Pushes a new [`Cell`] of `fast`.
///
/// # Safety
/// `state` is the running thread, in protected mode (this allocates), with room for three
/// values.
pub(super) unsafe fn new_cell<T: 'static>(state: *mut ffi::lua_State, fast: Rc<T>) {
    // SAFETY: the userdata is written before anything can see it and emptied once, by its
    // `__gc`.
    unsafe {
        let cell = ffi::lua_newuserdata(state, size_of::<Cell<T>>()).cast::<Cell<T>>();
        cell.write(Cell {
            me: cell,
            kind: std::any::TypeId::of::<T>(),
            fast: Some(fast),
        });
        ffi::lua_createtable(state, 0, 2);
        ffi::lua_pushcfunction(state, drop_fast::<T>);
        ffi::lua_setfield(state, -2, c"__gc".as_ptr());
        // Not reachable from Lua (`debug.getupvalue` gives the userdata, not this).
        ffi::lua_pushboolean(state, 0);
        ffi::lua_setfield(state, -2, c"__metatable".as_ptr());
        ffi::lua_setmetatable(state, -2);
    }
}

/// What the [`Cell`] at `idx` holds, if the value there is one holding a `T`.
///
/// # Safety
/// `state` is the running Lua thread.
pub(super) unsafe fn cell_value<T: 'static>(
    state: *mut ffi::lua_State,
    idx: c_int,
) -> Option<Rc<T>> {
    unsafe { cell::<T>(state, idx).and_then(|cell| cell.fast.clone()) }
}

/// The output a call of a [`closure_pushing`] function set for its `push` to push (null
/// outside that protected call).
pub(super) fn output() -> *const Output {
    OUTPUT.replace(std::ptr::null())
}

/// The [`Cell`] at `idx`, if the value there is one holding a `T`.
///
/// # Safety
/// `state` is the running Lua thread.
unsafe fn cell<'a, T: 'static>(state: *mut ffi::lua_State, idx: c_int) -> Option<&'a mut Cell<T>> {
    unsafe {
        if ffi::lua_type(state, idx) != ffi::LUA_TUSERDATA
            || ffi::lua_rawlen(state, idx) != size_of::<Cell<T>>()
        {
            return None;
        }
        let cell = ffi::lua_touserdata(state, idx).cast::<Cell<T>>();
        // A userdata of this size can be read as one; only ours holds its own address.
        if cell.is_null()
            || (*cell).me != cell.cast_const()
            || (*cell).kind != std::any::TypeId::of::<T>()
        {
            return None;
        }
        Some(&mut *cell)
    }
}

/// What the [`closure`] running now holds, if its state upvalue is still its own.
///
/// # Safety
/// `state` is the running thread of a C function [`closure`] made.
pub(super) unsafe fn state<T: 'static>(state: *mut ffi::lua_State) -> Option<Rc<T>> {
    unsafe { cell_value::<T>(state, STATE) }
}

/// `__gc` of the userdata holding a `T`.
unsafe extern "C-unwind" fn drop_fast<T: 'static>(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: any value may be given (the metamethod can be reached with `debug`): only our
    // cell is emptied.
    unsafe {
        if let Some(cell) = cell::<T>(state, 1) {
            drop(cell.fast.take());
        }
    }
    0
}

/// Pushes the [`Output`] a call put in `OUTPUT` (in a protected call: pushing may raise a Lua
/// error, which this frame lets through, owning nothing).
unsafe extern "C-unwind" fn push_output(state: *mut ffi::lua_State) -> c_int {
    let at = output();
    // SAFETY: `call_fast` set it to an output it owns until its protected call returns.
    unsafe {
        ffi::lua_settop(state, 0);
        let Some(output) = at.as_ref() else {
            ffi::lua_pushstring(
                state,
                c"funcs: internal function called outside funcs.call".as_ptr(),
            );
            ffi::lua_error(state)
        };
        match output {
            Output::Tape(tape) => push(state, tape),
            Output::Value(value) => push_value(state, value),
        }
        1
    }
}

/// `ex:call(id, ...)`: as `funcs.call(id, ...)`, the executor (a userdata first) left aside.
unsafe extern "C-unwind" fn call_method(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: see `call_at`; a missing index 1 is LUA_TNONE.
    unsafe {
        let base = if ffi::lua_type(state, 1) == ffi::LUA_TUSERDATA {
            2
        } else {
            1
        };
        call_at(state, base)
    }
}

/// `funcs.call(id, ...)`.
unsafe extern "C-unwind" fn call_fast(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: see `call_at`.
    unsafe { call_at(state, 1) }
}

/// The call whose ID is at `base` (1, or 2 after an executor), its arguments after it.
///
/// # Safety
/// `state` is the running thread of one of the C functions [`make`] makes.
unsafe fn call_at(state: *mut ffi::lua_State, base: c_int) -> c_int {
    // SAFETY: upvalue 4 is checked to be a cell of a `Fast`; `finish` ends the call.
    unsafe {
        let step = match self::state::<Fast>(state) {
            Some(fast) => guarded(|| fast.run(state, base)),
            None => Step::General,
        };
        finish(state, step, base)
    }
}

/// Runs `f`, a call's work, with a panic (a bug of ours) failing the call: it must not unwind
/// into Lua's C frames. Nothing inside may raise a Lua error (a LuaJIT error would abort).
pub(super) fn guarded(f: impl FnOnce() -> Step) -> Step {
    std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Step::Failed(Error::internal(
            "internal error in a call of funcs (a bug: please report it)",
        ))
    })
}

/// Ends the call of a C function [`closure`] made, as `step` says: its result pushed, its
/// error as `nil, err`, or the call made by the general function with the arguments from
/// `base` on (below them: an executor or instance, left aside), through
/// `guard::call_entered`.
///
/// # Safety
/// `state` is the running thread of that function; this frame owns nothing but `step`.
pub(super) unsafe fn finish(state: *mut ffi::lua_State, step: Step, base: c_int) -> c_int {
    // SAFETY: as said.
    unsafe { finish_with(state, step, base, false) }
}

/// [`finish`] for a general function that enters funcs itself (one `guard` wrapped, which
/// checks its arguments): called as it is.
///
/// # Safety
/// As [`finish`].
pub(super) unsafe fn finish_with(
    state: *mut ffi::lua_State,
    step: Step,
    base: c_int,
    general_enters: bool,
) -> c_int {
    // SAFETY: until a protected call below nothing raises a Lua error; after it this frame
    // owns nothing.
    unsafe {
        let status = match step {
            Step::Done(output) => {
                ffi::lua_settop(state, 0);
                if scalar(&output) {
                    // Nothing allocated, so no error: no protected call needed.
                    match &output {
                        Output::Tape(tape) => push(state, tape),
                        Output::Value(value) => push_value(state, value),
                    }
                    if let Output::Tape(tape) = output {
                        tape.recycle();
                    }
                    return 1;
                }
                ffi::lua_pushvalue(state, PUSH);
                OUTPUT.set(&raw const output);
                let status = ffi::lua_pcall(state, 0, 1, 0);
                OUTPUT.set(std::ptr::null());
                if let Output::Tape(tape) = output {
                    tape.recycle();
                }
                status
            }
            Step::Failed(e) => {
                // `fail` is an mlua function (Lua 5.1: see `guard`).
                if !guard::enter() {
                    drop(e);
                    guard::refuse(state);
                }
                ffi::lua_settop(state, 0);
                ffi::lua_pushvalue(state, FAIL);
                FAILURE.set(&raw const e);
                let status = ffi::lua_pcall(state, 0, 2, 0);
                FAILURE.set(std::ptr::null());
                guard::leave();
                drop(e);
                status
            }
            Step::General => {
                if base > 1 {
                    ffi::lua_remove(state, 1);
                }
                let n = ffi::lua_gettop(state);
                ffi::lua_pushvalue(state, GENERAL);
                ffi::lua_insert(state, 1);
                if general_enters {
                    ffi::lua_call(state, n, ffi::LUA_MULTRET);
                    return ffi::lua_gettop(state);
                }
                return guard::call_entered(state, n);
            }
            Step::Overflow => {
                ffi::lua_settop(state, 0);
                ffi::lua_pushstring(state, super::executor::STACK_OVERFLOW.as_ptr());
                ffi::LUA_ERRRUN
            }
        };
        if status != ffi::LUA_OK {
            // The protected call's error (out of memory, a stack overflow), raised with
            // nothing left to drop.
            ffi::lua_error(state);
        }
        ffi::lua_gettop(state)
    }
}

impl Fast {
    /// The call, if it is one for the direct path; what it owned is dropped on return.
    unsafe fn run(&self, state: *mut ffi::lua_State, base: c_int) -> Step {
        // SAFETY: `state` is the running thread, its stack the call's arguments.
        unsafe {
            let top = ffi::lua_gettop(state);
            if top < base || ffi::lua_type(state, base) != ffi::LUA_TSTRING {
                return Step::General;
            }
            let mut len = 0;
            let id = ffi::lua_tolstring(state, base, &mut len);
            let id = std::slice::from_raw_parts(id.cast::<u8>(), len);
            let Some(handle) = self.executor.named(id) else {
                return Step::General;
            };
            if handle.0.function().is_core() && !self.executor.runtime.has_hosts() {
                return self.core(state, &handle, base + 1, top);
            }
            let Some(layout) = handle
                .0
                .function()
                .layout()
                .filter(|_| handle.0.is_direct())
            else {
                return Step::General;
            };
            // Room for reading the arguments, made before wasmtime runs (beyond what Lua gives
            // a C function, in a protected call on Lua 5.1 and LuaJIT, which raise when the
            // stack cannot grow). Nothing was pushed since the entry.
            let Some(limit) = value::direct::reserve_on_entry(state, layout.stack()) else {
                return Step::Overflow;
            };
            match self
                .executor
                .direct_here(state, &handle, base + 1, top, limit)
            {
                Ok(Some(tape)) => Step::Done(Output::Tape(tape)),
                Ok(None) => {
                    // As the general function gets them.
                    ffi::lua_settop(state, top);
                    Step::General
                }
                Err(e) => Step::Failed(e),
            }
        }
    }
}

impl Fast {
    /// A call of a core function whose arguments are all numbers and booleans (the only
    /// values its parameters take: the general path names any other).
    /// `first`: the index of the first argument.
    unsafe fn core(
        &self,
        state: *mut ffi::lua_State,
        handle: &Handle,
        first: c_int,
        top: c_int,
    ) -> Step {
        let mut values = Vec::with_capacity((top + 1 - first).max(0) as usize);
        for idx in first..=top {
            // SAFETY: `idx` is on the stack.
            match unsafe { lua_scalar(state, idx) } {
                Some(v) => values.push(v),
                None => return Step::General,
            }
        }
        // A panic is caught around the whole call (`call_fast`).
        let executor = &self.executor;
        let result = handle.0.function().lower(&values).and_then(|args| {
            executor
                .runtime
                .call_with(handle, args, executor.options.clone())
        });
        match result {
            Ok(output) => Step::Done(output),
            Err(e) => Step::Failed(e),
        }
    }
}

/// Whether pushing `output` allocates nothing in Lua (see `Tape::is_scalar`).
fn scalar(output: &Output) -> bool {
    match output {
        Output::Tape(tape) => tape.is_scalar(),
        Output::Value(v) => matches!(
            v,
            Value::Nil | Value::Unsupported(_) | Value::Bool(_) | Value::Int(_) | Value::Float(_)
        ),
    }
}

/// Pushes `value` as `value::to_lua` makes it.
///
/// # Safety
/// `state` is the running Lua thread; Lua may raise an error (out of memory).
unsafe fn push_value(state: *mut ffi::lua_State, value: &Value) {
    unsafe {
        match value {
            // (handles come only from an instance's calls, and resources Lua defines only
            // from entries with host functions: never through here)
            Value::Nil | Value::Unsupported(_) | Value::Handle(_) | Value::Lua(_) => {
                ffi::lua_pushnil(state)
            }
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
