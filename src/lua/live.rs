//! The direct path of instances (SPEC section 15): `inst:call(export, ...)`, a handle's
//! methods, constructors and `h:drop()` as plain Lua C functions, made as `funcs.call` is
//! (`fast`): the arguments are read where Lua left them and lowered straight into the guest
//! (`value::direct`), the result pushed from a tape (or the new handle's userdata), with none
//! of mlua's per-call work. Everything the direct path does not take (an entry with host
//! functions or resources Lua defines, handles among the other arguments, a resource in
//! another result, calls `inst:async` queued, a receiver that is not an instance or handle
//! funcs knows) goes to the general function, the mlua one, with the same arguments.
//!
//! They find their instance or handle by the address of its userdata in a [`ByAddress`]
//! (the instances of the Lua state; the handles of one `require("funcs")`), which holds it
//! while its userdata lives: the userdata's memory is never read, so a value `debug` dressed
//! as one is only an unknown address. A handle's userdata holds nothing ([`new_handle`]).

use std::collections::HashMap;
use std::ffi::c_int;
use std::rc::Rc;

use mlua::ffi;
use mlua::prelude::*;

use super::fast::{self, Step};
use super::instance::{Bound, Face};
use crate::instance::{Handle, Returned};
use crate::value::direct::{LuaArgs, reserve_on_entry};
use crate::value::{Output, Value};

/// Instances or handles by the address of their userdata (see the module doc).
pub(super) struct ByAddress<T>(std::cell::RefCell<HashMap<usize, T, super::guard::Hasher>>);

impl<T> Default for ByAddress<T> {
    fn default() -> Self {
        ByAddress(std::cell::RefCell::default())
    }
}

impl<T: Clone> ByAddress<T> {
    /// Records what the userdata at `address` holds.
    pub(super) fn insert(&self, address: usize, value: T) {
        self.0.borrow_mut().insert(address, value);
    }

    /// Forgets the userdata at `address` (its finalizer runs).
    pub(super) fn remove(&self, address: usize) {
        // Dropped outside the borrow: what it holds may reach this table again.
        let gone = self.0.borrow_mut().remove(&address);
        drop(gone);
    }

    pub(super) fn get(&self, address: usize) -> Option<T> {
        self.0.borrow().get(&address).cloned()
    }
}

/// The instances of this Lua state by address, which every load of the module in it shares
/// (as it shares the metatable of instances, whose `call` reads them).
pub(super) fn instances(lua: &Lua) -> Rc<ByAddress<Rc<Face>>> {
    if let Some(instances) = lua.app_data_ref::<Rc<ByAddress<Rc<Face>>>>() {
        return instances.clone();
    }
    let instances = Rc::<ByAddress<Rc<Face>>>::default();
    lua.set_app_data(instances.clone());
    instances
}

/// Whether `f` is the instances' `call` (`guard` leaves it unwrapped: it checks its
/// receiver itself).
pub(super) fn is_call(f: ffi::lua_CFunction) -> bool {
    f as *const () as usize == call_fast as *const () as usize
}

/// Makes `call` of instances (in their metatable's `__index`, which `ud` has) the direct
/// path's, with the one there as its general function; once per Lua state (a module loaded
/// again in the state finds it made, and shares its instances: [`instances`]).
///
/// # Errors
/// Lua's own (out of memory).
pub(super) fn install_call(
    lua: &Lua,
    ud: &LuaAnyUserData,
    instances: Rc<ByAddress<Rc<Face>>>,
) -> LuaResult<()> {
    // SAFETY: the closures work on the stacks `exec_raw` gives them; an mlua userdata has a
    // metatable.
    let index: LuaValue = unsafe {
        lua.exec_raw(ud, |state| {
            if ffi::lua_getmetatable(state, 1) == 0 {
                ffi::lua_pushnil(state);
            } else {
                ffi::lua_getfield(state, -1, c"__index".as_ptr());
            }
            ffi::lua_replace(state, 1);
            ffi::lua_settop(state, 1);
        })?
    };
    let LuaValue::Table(index) = index else {
        return Ok(());
    };
    let general: LuaFunction = index.raw_get("call")?;
    // SAFETY: as above.
    let made = unsafe {
        lua.exec_raw::<bool>(&general, |state| {
            let made = ffi::lua_tocfunction(state, 1).is_some_and(is_call);
            ffi::lua_settop(state, 0);
            ffi::lua_pushboolean(state, c_int::from(made));
        })?
    };
    if !made {
        index.raw_set("call", fast::closure(lua, instances, general, call_fast)?)?;
    }
    Ok(())
}

/// A method of the handles of one resource: the export it calls.
struct Method {
    handles: Rc<ByAddress<Bound>>,
    export: String,
}

/// The function of method `export` of handles, `general` for what the direct path leaves.
///
/// # Errors
/// Lua's own (out of memory).
pub(super) fn method(
    lua: &Lua,
    handles: Rc<ByAddress<Bound>>,
    export: String,
    general: LuaFunction,
) -> LuaResult<LuaFunction> {
    fast::closure(
        lua,
        Rc::new(Method { handles, export }),
        general,
        method_fast,
    )
}

/// `inst:call(export, ...)`.
unsafe extern "C-unwind" fn call_fast(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: the state upvalue is checked to be a cell of the instances; `finish` ends the
    // call.
    unsafe {
        let step = match fast::state::<ByAddress<Rc<Face>>>(state) {
            Some(instances) => fast::guarded(|| {
                let top = ffi::lua_gettop(state);
                if top < 2
                    || ffi::lua_type(state, 1) != ffi::LUA_TUSERDATA
                    || ffi::lua_type(state, 2) != ffi::LUA_TSTRING
                {
                    return Step::General;
                }
                let Some(face) = instances.get(ffi::lua_touserdata(state, 1) as usize) else {
                    return Step::General;
                };
                let mut len = 0;
                let export = ffi::lua_tolstring(state, 2, &mut len);
                let export = std::slice::from_raw_parts(export.cast::<u8>(), len);
                direct(state, &face, export, None, 3, top, false)
            }),
            None => Step::General,
        };
        // (the general function is the instances' `call`, which `guard` wrapped)
        fast::finish_with(state, step, 1, true)
    }
}

/// `h:method(...)`.
unsafe extern "C-unwind" fn method_fast(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: as `call_fast`.
    unsafe {
        let step = match fast::state::<Method>(state) {
            Some(method) => fast::guarded(|| {
                let top = ffi::lua_gettop(state);
                if top < 1 || ffi::lua_type(state, 1) != ffi::LUA_TUSERDATA {
                    return Step::General;
                }
                match method.handles.get(ffi::lua_touserdata(state, 1) as usize) {
                    Some(h) => direct(
                        state,
                        &h.face,
                        method.export.as_bytes(),
                        Some(&h.handle),
                        2,
                        top,
                        false,
                    ),
                    None => Step::General,
                }
            }),
            None => Step::General,
        };
        fast::finish(state, step, 1)
    }
}

/// The call of `export` on `face`'s instance with the arguments at `first..=top` (after
/// `this`, a method's handle), if the direct path takes it; `handles`: whether a result
/// that is a new handle can be pushed (by a constructor's push function).
///
/// # Safety
/// `state` is the running thread, its stack the call's arguments.
unsafe fn direct(
    state: *mut ffi::lua_State,
    face: &Face,
    export: &[u8],
    this: Option<&Handle>,
    first: c_int,
    top: c_int,
    handles: bool,
) -> Step {
    let count = (top + 1 - first).max(0) as usize;
    let args = |stack| {
        // SAFETY: the arguments stay at first..=top for the whole synchronous call; the
        // room is made before wasmtime runs, and nothing was pushed since the entry.
        unsafe { reserve_on_entry(state, stack).map(|limit| LuaArgs::new(state, first, limit)) }
    };
    match face
        .instance()
        .call_direct(export, this, count, args, handles, face.options())
    {
        Ok(Some(Returned::Tape(tape))) => Step::Done(Output::Tape(tape)),
        Ok(Some(Returned::Handle(h))) => Step::Done(Output::Value(Value::Handle(h))),
        Ok(None) => {
            // As the general function gets them.
            // SAFETY: `top` is where the arguments ended.
            unsafe { ffi::lua_settop(state, top) };
            Step::General
        }
        Err(e) => Step::Failed(e),
    }
}

/// A constructor of one resource's handles (`Class.new`): the export it calls.
struct Constructor {
    face: Rc<Face>,
    export: String,
    handles: Rc<ByAddress<Bound>>,
}

/// The constructor `export` of `face`'s instance, `general` for what the direct path leaves;
/// its handles get `metatable` (as [`new_handle`] makes them).
///
/// # Errors
/// Lua's own (out of memory).
pub(super) fn constructor(
    lua: &Lua,
    face: Rc<Face>,
    export: String,
    handles: Rc<ByAddress<Bound>>,
    general: LuaFunction,
    metatable: LuaTable,
) -> LuaResult<LuaFunction> {
    let made = Rc::new(Constructor {
        face,
        export,
        handles,
    });
    // SAFETY: the closure works on the stack `exec_raw` gives it, in protected mode: the
    // metatable, then the cell, as `push_handle`'s upvalues.
    let push = unsafe {
        lua.exec_raw::<LuaFunction>(metatable, |state| {
            fast::new_cell(state, made.clone());
            ffi::lua_pushcclosure(state, push_handle, 2);
        })?
    };
    fast::closure_pushing(lua, made, general, Some(push), constructor_fast)
}

/// `Class.new(...)`. The handle's userdata is made first, while this frame owns nothing
/// (making it may raise a Lua error), above the arguments; it is the result when the call
/// gives a handle, and garbage otherwise.
unsafe extern "C-unwind" fn constructor_fast(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: as `call_fast`; the upvalue 1 of the push function is the handles' metatable
    // (`constructor`), or the handle gets none and is found by no method.
    unsafe {
        let top = ffi::lua_gettop(state);
        ffi::lua_pushvalue(state, fast::PUSH);
        if ffi::lua_getupvalue(state, -1, 1).is_null() {
            ffi::lua_pushnil(state);
        }
        new_handle(state, top + 2);
        ffi::lua_replace(state, top + 1);
        ffi::lua_settop(state, top + 1);
        let Some(made) = fast::state::<Constructor>(state) else {
            ffi::lua_settop(state, top);
            return fast::finish(state, Step::General, 1);
        };
        let step = fast::guarded(|| {
            direct(
                state,
                &made.face,
                made.export.as_bytes(),
                None,
                1,
                top,
                true,
            )
        });
        match step {
            Step::Done(Output::Value(Value::Handle(h))) => {
                let address = ffi::lua_touserdata(state, top + 1) as usize;
                made.handles
                    .insert(address, Bound::new(h, made.face.clone()));
                drop(made);
                1
            }
            step => {
                drop(made);
                ffi::lua_settop(state, top);
                fast::finish(state, step, 1)
            }
        }
    }
}

/// A constructor's push function, which holds the handles' metatable for
/// `constructor_fast` (upvalue 1). Called (in a protected call, as `fast` pushes results)
/// only for a handle the constructor did not make first: a new userdata with that metatable,
/// recorded in the cell's handles.
unsafe extern "C-unwind" fn push_handle(state: *mut ffi::lua_State) -> c_int {
    let at = fast::output();
    // SAFETY: `finish` set it to an output it owns until its protected call returns; Lua
    // errors are raised with nothing owned by this frame.
    unsafe {
        ffi::lua_settop(state, 0);
        let Some(Output::Value(Value::Handle(h))) = at.as_ref() else {
            ffi::lua_pushstring(
                state,
                c"funcs: internal function called outside a constructor".as_ptr(),
            );
            ffi::lua_error(state)
        };
        new_handle(state, ffi::lua_upvalueindex(1));
        // (a cell a script replaced: the handle is pushed unrecorded, a userdata that is no
        // handle; the guest's handle is dropped before the instance's next call)
        if let Some(made) = fast::cell_value::<Constructor>(state, ffi::lua_upvalueindex(2)) {
            made.handles.insert(
                ffi::lua_touserdata(state, -1) as usize,
                Bound::new(h.clone(), made.face.clone()),
            );
        }
        1
    }
}

/// Pushes a new handle userdata with the metatable at `metatable` (its resource's). Its
/// memory is never read: the handle it stands for is recorded by its address.
///
/// # Safety
/// `state` is the running thread, in protected mode (this allocates); `metatable` is a
/// valid index (a value not a table is left out).
pub(super) unsafe fn new_handle(state: *mut ffi::lua_State, metatable: c_int) {
    unsafe {
        let ud = ffi::lua_newuserdata(state, 1).cast::<u8>();
        ud.write(0);
        if ffi::lua_type(state, metatable) == ffi::LUA_TTABLE {
            ffi::lua_pushvalue(state, metatable);
            ffi::lua_setmetatable(state, -2);
        }
    }
}

/// `__gc` of handles: forgets the handle of the userdata (its guest handle dropped before
/// the instance's next call, if nothing else holds it).
pub(super) fn finalizer(lua: &Lua, handles: Rc<ByAddress<Bound>>) -> LuaResult<LuaFunction> {
    let none = lua.create_function(|_, ()| Ok(()))?;
    fast::closure(lua, handles, none, finalize)
}

unsafe extern "C-unwind" fn finalize(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: any value may be given (`debug` reaches the metamethod): only an address in the
    // table is forgotten. A panic must not unwind into Lua.
    unsafe {
        if ffi::lua_type(state, 1) == ffi::LUA_TUSERDATA
            && let Some(handles) = fast::state::<ByAddress<Bound>>(state)
        {
            let address = ffi::lua_touserdata(state, 1) as usize;
            let _ =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handles.remove(address)));
        }
        0
    }
}

/// `h:drop()`: `true`, or `nil, err`; `general` (the mlua one) for what it leaves.
pub(super) fn dropper(
    lua: &Lua,
    handles: Rc<ByAddress<Bound>>,
    general: LuaFunction,
) -> LuaResult<LuaFunction> {
    fast::closure(lua, handles, general, drop_fast)
}

unsafe extern "C-unwind" fn drop_fast(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: as `call_fast`.
    unsafe {
        let step = match fast::state::<ByAddress<Bound>>(state) {
            Some(handles) => fast::guarded(|| {
                if ffi::lua_gettop(state) < 1 || ffi::lua_type(state, 1) != ffi::LUA_TUSERDATA {
                    return Step::General;
                }
                let Some(b) = handles.get(ffi::lua_touserdata(state, 1) as usize) else {
                    return Step::General;
                };
                // A destructor that may call host functions, or one that must wait for
                // queued calls, goes the general way.
                let instance = b.face.instance();
                if instance.pool().0.function().has_hosts() || instance.queued().is_some() {
                    return Step::General;
                }
                match b.handle.drop_now() {
                    Ok(()) => Step::Done(Output::Value(Value::Bool(true))),
                    Err(e) => Step::Failed(e),
                }
            }),
            None => Step::General,
        };
        fast::finish(state, step, 1)
    }
}
