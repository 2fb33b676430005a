//! The direct path of instances (SPEC section 15): `inst:call(export, ...)` and a handle's
//! methods as plain Lua C functions, made as `funcs.call` is (`fast`): the arguments are read
//! where Lua left them and lowered straight into the guest (`value::direct`), the result
//! pushed from a tape, with none of mlua's per-call work. Everything the direct path does not
//! take (an entry with host functions or resources Lua defines, handles among the arguments,
//! a resource in the result, calls `inst:async` queued, a receiver that is not an instance or
//! handle of this Lua state) goes to the general function, the mlua one, with the same
//! arguments.
//!
//! They find their instance or handle by the address of its userdata in a [`ByAddress`],
//! which holds those of one `require("funcs")` while their userdata live: the userdata's
//! memory is never read, so a value `debug` dressed as one is only an unknown address.

use std::collections::HashMap;
use std::ffi::c_int;
use std::rc::Rc;

use mlua::ffi;
use mlua::prelude::*;

use super::fast::{self, Step};
use super::instance::{Bound, Face};
use crate::instance::Handle;
use crate::value::Output;
use crate::value::direct::{LuaArgs, reserve_on_entry};

/// Instances or handles by the address of their userdata (see the module doc).
pub(super) struct ByAddress<T>(std::cell::RefCell<HashMap<usize, Rc<T>, super::guard::Hasher>>);

impl<T> Default for ByAddress<T> {
    fn default() -> Self {
        ByAddress(std::cell::RefCell::default())
    }
}

impl<T> ByAddress<T> {
    /// Records what the userdata at `address` holds.
    pub(super) fn insert(&self, address: usize, value: Rc<T>) {
        self.0.borrow_mut().insert(address, value);
    }

    /// Forgets the userdata at `address` (its finalizer runs).
    pub(super) fn remove(&self, address: usize) {
        // Dropped outside the borrow: what it holds may reach this table again.
        let gone = self.0.borrow_mut().remove(&address);
        drop(gone);
    }

    fn get(&self, address: usize) -> Option<Rc<T>> {
        self.0.borrow().get(&address).cloned()
    }
}

/// The instances of this Lua state by address, which every load of the module in it shares
/// (as it shares the metatable of instances, whose `call` reads them).
pub(super) fn instances(lua: &Lua) -> Rc<ByAddress<Face>> {
    if let Some(instances) = lua.app_data_ref::<Rc<ByAddress<Face>>>() {
        return instances.clone();
    }
    let instances = Rc::<ByAddress<Face>>::default();
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
    instances: Rc<ByAddress<Face>>,
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
    // SAFETY: the state upvalue is checked to be a cell of a `Call`; `finish` ends the call.
    unsafe {
        let step = match fast::state::<ByAddress<Face>>(state) {
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
                direct(state, &face, export, None, 3, top)
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
/// `this`, a method's handle), if the direct path takes it.
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
) -> Step {
    let count = (top + 1 - first).max(0) as usize;
    let args = |stack| {
        // SAFETY: the arguments stay at first..=top for the whole synchronous call; the
        // room is made before wasmtime runs, and nothing was pushed since the entry.
        unsafe { reserve_on_entry(state, stack).map(|limit| LuaArgs::new(state, first, limit)) }
    };
    match face
        .instance()
        .call_direct(export, this, count, args, face.options())
    {
        Ok(Some(tape)) => Step::Done(Output::Tape(tape)),
        Ok(None) => {
            // As the general function gets them.
            // SAFETY: `top` is where the arguments ended.
            unsafe { ffi::lua_settop(state, top) };
            Step::General
        }
        Err(e) => Step::Failed(e),
    }
}
