//! Userdata whose methods are a table in their user value: an executor's (its own `call`).
//! (A resource handle's metatable is its resource's own, `lua/instance.rs`.) Its `__index` is
//! [`index`], a plain C function: a method lookup costs no mlua callback nor guard check. It
//! reads no Rust memory, so any value given to it (`debug` reaches it, and can give any
//! userdata that metatable or user value) gets a Lua value or nil.

use std::ffi::c_int;

use mlua::ffi;
use mlua::prelude::*;

/// Makes `methods` the user value of `ud` (made by mlua, with a user value slot).
///
/// # Errors
/// Lua's own (out of memory).
pub(super) fn set(lua: &Lua, ud: &LuaAnyUserData, methods: LuaTable) -> LuaResult<()> {
    // SAFETY: the closure works on the stack `exec_raw` gives it: the userdata and a table,
    // which every Lua version takes as a user value.
    unsafe {
        lua.exec_raw::<()>((ud, methods), |state| {
            ffi::lua_setuservalue(state, 1);
        })
    }
}

/// Makes [`index`] the `__index` of `ud`'s metatable (once per type and state, after
/// `guard::guard`), with the table that was there (mlua's methods) as where a key missing
/// from the user value is looked up. `needs_table`: leave a metatable whose `__index` is not
/// a table as it is (it was made so before).
///
/// # Errors
/// Lua's own (out of memory).
pub(super) fn install(lua: &Lua, ud: &LuaAnyUserData, needs_table: bool) -> LuaResult<()> {
    // SAFETY: the closure works on the stack `exec_raw` gives it.
    unsafe {
        lua.exec_raw::<()>(ud, |state| {
            if ffi::lua_getmetatable(state, 1) == 0 {
                return;
            }
            ffi::lua_getfield(state, -1, c"__index".as_ptr());
            if ffi::lua_type(state, -1) == ffi::LUA_TTABLE {
                ffi::lua_pushcclosure(state, index, 1);
            } else if needs_table {
                return;
            } else {
                ffi::lua_pop(state, 1);
                ffi::lua_pushcfunction(state, index);
            }
            ffi::lua_setfield(state, -2, c"__index".as_ptr());
        })
    }
}

/// `__index`: the key in the userdata's user value, else in the upvalue table (if any).
unsafe extern "C-unwind" fn index(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: a C function's stack has room for LUA_MINSTACK values; nothing here raises (an
    // upvalue index past the function's upvalues reads as none or nil, never a table).
    unsafe {
        if ffi::lua_gettop(state) != 2 {
            ffi::lua_settop(state, 2);
        }
        if ffi::lua_type(state, 1) == ffi::LUA_TUSERDATA
            && ffi::lua_getuservalue(state, 1) == ffi::LUA_TTABLE
        {
            ffi::lua_pushvalue(state, 2);
            ffi::lua_rawget(state, -2);
            if ffi::lua_type(state, -1) != ffi::LUA_TNIL {
                return 1;
            }
        }
        ffi::lua_settop(state, 2);
        if ffi::lua_type(state, ffi::lua_upvalueindex(1)) != ffi::LUA_TTABLE {
            ffi::lua_pushnil(state);
            return 1;
        }
        ffi::lua_pushvalue(state, 2);
        ffi::lua_rawget(state, ffi::lua_upvalueindex(1));
        1
    }
}
