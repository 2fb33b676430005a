//! Userdata identity against the `debug` library. mlua knows its userdata by their
//! metatable, and `debug.setmetatable` gives any userdata (a file handle, a zero-size proxy)
//! the metatable of an Executor, a Future, an error object, an instance or a resource handle
//! (or gives one of those the metatable of another): mlua would then read that userdata's
//! memory as one of ours, in a method or in `__gc`. So every userdata of ours is made by
//! [`userdata`], which records its address and type; the functions in their metatables (the
//! methods in `__index` too) are wrapped by [`guard`] in C functions that check each argument
//! carrying the metatable is one of those addresses, of the metatable's type (a Lua error
//! otherwise), and `__gc` forgets the address and runs mlua's finalizer only for such a one.
//!
//! The wrappers own nothing across the calls they make, so Lua errors pass through them (as
//! `longjmp` or, on LuaJIT, a C++ exception).
//!
//! On Lua 5.1 they also refuse a call of funcs from a finalizer that interrupts another call of
//! funcs ([`reentry`]): mlua 0.12 makes its protected C functions there through one registry
//! slot filled in `lua_cpcall`, and Lua 5.1 runs a collector step, finalizers included, as that
//! call returns; a finalizer calling into mlua refills the slot, and the interrupted call runs
//! the wrong function (a crash). Lua code that funcs itself runs (host functions) may call funcs.

use std::any::TypeId;
use std::collections::HashMap;
use std::ffi::c_int;
use std::sync::{LazyLock, Mutex};

use mlua::ffi;
use mlua::prelude::*;

use crate::sync::unpoison;

/// The addresses of the live userdata funcs made, in every Lua state of the process, with
/// the Rust type each holds.
static LIVE: LazyLock<Mutex<ByAddress>> = LazyLock::new(Mutex::default);

/// The metatables [`guard`] wrapped, by address, with the type of their userdata: a
/// userdata of ours given the metatable of another of our types is not taken for one.
static METATABLES: LazyLock<Mutex<ByAddress>> = LazyLock::new(Mutex::default);

/// Types by address. Addresses are not chosen by an attacker and are already spread: a
/// multiplicative hash does (SipHash cost a method call some 300 instructions per lookup).
type ByAddress = HashMap<usize, TypeId, Hasher>;

/// The hasher of maps keyed by addresses.
pub(super) type Hasher = std::hash::BuildHasherDefault<AddressHasher>;

#[derive(Default)]
pub(super) struct AddressHasher(u64);

impl std::hash::Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_usize(&mut self, n: usize) {
        // Fibonacci hashing: the high bits are what a table of any size uses.
        self.0 = (n as u64)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(32);
    }
}

/// `value` as a userdata of ours, its address recorded.
///
/// # Errors
/// Lua's own (out of memory).
pub(super) fn userdata<T: LuaUserData + 'static>(lua: &Lua, value: T) -> LuaResult<LuaAnyUserData> {
    let ud = lua.create_userdata(value)?;
    unpoison(LIVE.lock()).insert(ud.to_pointer() as usize, TypeId::of::<T>());
    Ok(ud)
}

/// The functions of table `t` (the resource classes and handle methods of instances, made
/// after the `funcs` table) wrapped as [`reentry`] wraps those of `funcs` (Lua 5.1 only).
///
/// # Errors
/// Lua's own (out of memory).
pub(super) fn entered_fields(lua: &Lua, t: &LuaTable) -> LuaResult<()> {
    #[cfg(feature = "lua51")]
    // SAFETY: the closure works on the stack `exec_raw` gives it, in protected mode.
    unsafe {
        lua.exec_raw::<()>(t, |state| wrap_entered(state, 1))?;
    }
    #[cfg(not(feature = "lua51"))]
    let _ = (lua, t);
    Ok(())
}

/// Wraps the functions of `ud`'s metatable (shared by every userdata of its type in this Lua
/// state) as the module doc says. Once per type and state, on a userdata from [`userdata`].
///
/// # Errors
/// Lua's own (out of memory).
pub(super) fn guard(lua: &Lua, ud: &LuaAnyUserData) -> LuaResult<()> {
    // SAFETY: the closure works on the stack `exec_raw` gives it, in protected mode.
    unsafe {
        lua.exec_raw::<()>(ud, |state| {
            if ffi::lua_getmetatable(state, 1) == 0 {
                return;
            }
            if let Some(ty) = unpoison(LIVE.lock()).get(&(ffi::lua_touserdata(state, 1) as usize)) {
                unpoison(METATABLES.lock()).insert(ffi::lua_topointer(state, -1) as usize, *ty);
            }
            let mt = ffi::lua_gettop(state);
            wrap_fields(state, mt, mt);
            ffi::lua_getfield(state, mt, c"__index".as_ptr());
            if ffi::lua_type(state, -1) == ffi::LUA_TTABLE {
                wrap_fields(state, ffi::lua_gettop(state), mt);
            }
            ffi::lua_settop(state, 0);
        })
    }
}

/// Replaces each function in the table at `t` by a checking wrapper (`__gc` by a forgetting
/// one); `mt`: the metatable the wrappers recognise ours by.
///
/// # Safety
/// In protected mode: allocates.
unsafe fn wrap_fields(state: *mut ffi::lua_State, t: c_int, mt: c_int) {
    unsafe {
        let keys = function_keys(state, t);
        for key in keys {
            ffi::lua_pushlstring(state, key.as_ptr().cast(), key.len());
            ffi::lua_pushvalue(state, -1);
            ffi::lua_rawget(state, t);
            // Wrapped already (the module loaded again in this state shares mlua's metatables),
            // or the instances' `call`, which checks its receiver itself (`live`).
            let f = ffi::lua_tocfunction(state, -1).map(|f| f as *const () as usize);
            let call = ffi::lua_tocfunction(state, -1).is_some_and(super::live::is_call);
            if f == Some(checked as *const () as usize)
                || f == Some(finalize as *const () as usize)
                || call
            {
                ffi::lua_pop(state, 2);
                continue;
            }
            ffi::lua_pushvalue(state, mt);
            let wrapper = if key == b"__gc" { finalize } else { checked };
            ffi::lua_pushcclosure(state, wrapper, 2);
            ffi::lua_rawset(state, t);
        }
    }
}

/// The string keys of the functions in the table at `t` (read first: the table changes after).
///
/// # Safety
/// In protected mode: allocates.
unsafe fn function_keys(state: *mut ffi::lua_State, t: c_int) -> Vec<Vec<u8>> {
    unsafe {
        ffi::luaL_checkstack(state, 6, std::ptr::null());
        let mut keys = Vec::new();
        ffi::lua_pushnil(state);
        while ffi::lua_next(state, t) != 0 {
            if ffi::lua_type(state, -1) == ffi::LUA_TFUNCTION
                && ffi::lua_type(state, -2) == ffi::LUA_TSTRING
            {
                let mut len = 0;
                let key = ffi::lua_tolstring(state, -2, &mut len);
                keys.push(std::slice::from_raw_parts(key.cast::<u8>(), len).to_vec());
            }
            ffi::lua_pop(state, 1);
        }
        keys
    }
}

/// The wrapper's upvalues: the wrapped function and the metatable.
const WRAPPED: c_int = ffi::lua_upvalueindex(1);
const METATABLE: c_int = ffi::lua_upvalueindex(2);

/// Whether the value at `idx` is a userdata that carries the wrapper's metatable.
unsafe fn carries_ours(state: *mut ffi::lua_State, idx: c_int) -> bool {
    unsafe {
        if ffi::lua_type(state, idx) != ffi::LUA_TUSERDATA || ffi::lua_getmetatable(state, idx) == 0
        {
            return false;
        }
        let same = ffi::lua_rawequal(state, -1, METATABLE) != 0;
        ffi::lua_pop(state, 1);
        same
    }
}

/// Whether `ptr` is a live userdata of ours of the type of metatable `mt`.
fn live(ptr: *const std::ffi::c_void, mt: *const std::ffi::c_void) -> bool {
    let ty = unpoison(LIVE.lock()).get(&(ptr as usize)).copied();
    ty.is_some() && unpoison(METATABLES.lock()).get(&(mt as usize)).copied() == ty
}

/// A method or metamethod: every argument with the metatable must be ours.
unsafe extern "C-unwind" fn checked(state: *mut ffi::lua_State) -> c_int {
    unsafe {
        let n = ffi::lua_gettop(state);
        ffi::luaL_checkstack(state, 2, std::ptr::null());
        for idx in 1..=n {
            if carries_ours(state, idx)
                && !live(
                    ffi::lua_touserdata(state, idx),
                    ffi::lua_topointer(state, METATABLE),
                )
            {
                ffi::lua_pushstring(
                    state,
                    c"bad argument: a userdata given the metatable of a funcs object is not one"
                        .as_ptr(),
                );
                ffi::lua_error(state);
            }
        }
        ffi::lua_pushvalue(state, WRAPPED);
        ffi::lua_insert(state, 1);
        call_entered(state, n)
    }
}

/// The functions of the `funcs` table `t` (and its tables, one level down: `funcs.http`)
/// wrapped so that a call that interrupts another call of funcs is refused (Lua 5.1 only: see
/// the module doc; nothing on the others).
///
/// # Errors
/// Lua's own (out of memory).
pub(super) fn reentry(lua: &Lua, t: &LuaTable) -> LuaResult<()> {
    #[cfg(feature = "lua51")]
    // SAFETY: the closure works on the stack `exec_raw` gives it, in protected mode.
    unsafe {
        lua.exec_raw::<()>(t, |state| {
            // `funcs.call` is a C function that enters mlua only when it must (see `fast`).
            ffi::lua_getfield(state, 1, c"call".as_ptr());
            wrap_entered(state, 1);
            ffi::lua_setfield(state, 1, c"call".as_ptr());
            ffi::lua_pushnil(state);
            while ffi::lua_next(state, 1) != 0 {
                if ffi::lua_type(state, -1) == ffi::LUA_TTABLE {
                    wrap_entered(state, ffi::lua_gettop(state));
                }
                ffi::lua_pop(state, 1);
            }
        })?;
        // mlua's own error objects: their `__tostring` makes Lua values through mlua too.
        let probe = lua.create_function(|_, ()| Err::<(), _>(LuaError::runtime("probe")))?;
        lua.exec_raw::<()>(probe, |state| {
            ffi::lua_pushvalue(state, 1);
            if ffi::lua_pcall(state, 0, 0, 0) != 0
                && ffi::lua_type(state, -1) == ffi::LUA_TUSERDATA
                && ffi::lua_getmetatable(state, -1) != 0
            {
                let mt = ffi::lua_gettop(state);
                ffi::lua_getfield(state, mt, c"__tostring".as_ptr());
                let wrapped = ffi::lua_tocfunction(state, -1).map(|f| f as *const () as usize)
                    == Some(entered as *const () as usize);
                ffi::lua_pop(state, 1);
                if !wrapped {
                    wrap_entered(state, mt);
                }
            }
            ffi::lua_settop(state, 0);
        })?;
    }
    #[cfg(not(feature = "lua51"))]
    let _ = (lua, t);
    Ok(())
}

/// Replaces each function in the table at `t` by [`entered`] around it.
#[cfg(feature = "lua51")]
unsafe fn wrap_entered(state: *mut ffi::lua_State, t: c_int) {
    unsafe {
        let mut keys = function_keys(state, t);
        // A finalizer must not raise (Lua 5.1 lets its error out of the allocation that ran
        // it): `__gc` stays as it is.
        keys.retain(|k| k != b"__gc");
        for key in keys {
            ffi::lua_pushlstring(state, key.as_ptr().cast(), key.len());
            ffi::lua_pushvalue(state, -1);
            ffi::lua_rawget(state, t);
            ffi::lua_pushcclosure(state, entered, 1);
            ffi::lua_rawset(state, t);
        }
    }
}

/// A function of the `funcs` table, called through [`call_entered`].
#[cfg(feature = "lua51")]
unsafe extern "C-unwind" fn entered(state: *mut ffi::lua_State) -> c_int {
    unsafe {
        let n = ffi::lua_gettop(state);
        ffi::luaL_checkstack(state, 2, std::ptr::null());
        ffi::lua_pushvalue(state, WRAPPED);
        ffi::lua_insert(state, 1);
        call_entered(state, n)
    }
}

#[cfg(feature = "lua51")]
thread_local! {
    /// Calls of funcs running on this thread, outside Lua code funcs itself runs.
    static DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Calls the function under `n` arguments at the bottom of the stack: its results. On Lua
/// 5.1, refused (a Lua error) when it interrupts another call of funcs (see the module doc).
///
/// # Safety
/// `state` is the running Lua thread, the function and its arguments all its stack. A Lua
/// error may leave this function: the caller's frame owns nothing.
pub(super) unsafe fn call_entered(state: *mut ffi::lua_State, n: c_int) -> c_int {
    unsafe {
        #[cfg(feature = "lua51")]
        {
            if !enter() {
                refuse(state);
            }
            let status = ffi::lua_pcall(state, n, ffi::LUA_MULTRET, 0);
            leave();
            if status != 0 {
                ffi::lua_error(state);
            }
        }
        #[cfg(not(feature = "lua51"))]
        ffi::lua_call(state, n, ffi::LUA_MULTRET);
        ffi::lua_gettop(state)
    }
}

/// Enters mlua from a C function of funcs (`funcs.call`'s error path): `false` on Lua 5.1 when
/// that would interrupt another call of funcs (refuse it then: [`refuse`]); pair with [`leave`].
pub(super) fn enter() -> bool {
    #[cfg(feature = "lua51")]
    {
        if DEPTH.get() > 0 {
            return false;
        }
        DEPTH.set(1);
    }
    true
}

/// Ends what [`enter`] began.
pub(super) fn leave() {
    #[cfg(feature = "lua51")]
    DEPTH.set(0);
}

/// Raises the error of a call refused by [`enter`].
///
/// # Safety
/// `state` is the running Lua thread; the caller's frame owns nothing.
pub(super) unsafe fn refuse(state: *mut ffi::lua_State) -> ! {
    unsafe {
        ffi::lua_settop(state, 0);
        ffi::lua_pushstring(state, REFUSED.as_ptr());
        ffi::lua_error(state)
    }
}

/// The error of a call refused on Lua 5.1 (see the module doc).
const REFUSED: &std::ffi::CStr =
    c"funcs cannot be called by a finalizer that interrupts a call of funcs on Lua 5.1";

/// Runs `f`, Lua code funcs runs itself (a host function), as outside any call of funcs: it
/// may call funcs (Lua 5.1; on the others, just `f`).
pub(super) fn lua_code<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(feature = "lua51")]
    {
        let depth = DEPTH.replace(0);
        let r = f();
        DEPTH.set(depth);
        r
    }
    #[cfg(not(feature = "lua51"))]
    f()
}

/// `__gc`: mlua's finalizer for userdata of ours (forgotten first); nothing for any other.
unsafe extern "C-unwind" fn finalize(state: *mut ffi::lua_State) -> c_int {
    unsafe {
        if ffi::lua_type(state, 1) != ffi::LUA_TUSERDATA {
            return 0;
        }
        // Forgotten in any case: its memory is about to be freed. mlua's finalizer runs only
        // for a userdata of the type the metatable is for.
        let ptr = ffi::lua_touserdata(state, 1);
        let ours = live(ptr, ffi::lua_topointer(state, METATABLE));
        unpoison(LIVE.lock()).remove(&(ptr as usize));
        if ours {
            ffi::lua_settop(state, 1);
            ffi::lua_pushvalue(state, WRAPPED);
            ffi::lua_insert(state, 1);
            ffi::lua_call(state, 1, 0);
        }
        0
    }
}
