//! The Lua stack as the direct path reads it: types, numbers, strings, tables' fields and
//! items, variant cases, without anything that could raise a Lua error (no metamethods, no
//! allocation), since the reads happen inside wasmtime's frames. A value that does not fit
//! is a [`Mismatch`](super::Mismatch): the call goes to the general path, which names it.

use std::ffi::c_int;

use mlua::ffi;
use wasmtime::Result;

use super::{MAX_FIELDS, mismatch};

/// A Lua stack, read without anything that could raise a Lua error (no metamethods, no
/// allocation): the reads happen inside wasmtime's frames. It never grows the stack there
/// (growing may raise on Lua 5.1 and LuaJIT): values are pushed only below `limit`, the top of
/// the room [`reserve`] made before the call; a value that needs more gives up.
#[derive(Clone, Copy)]
pub(super) struct Stack {
    pub(super) state: *mut ffi::lua_State,
    limit: c_int,
}

/// A Lua number as mlua sees it: an integer when it is one.
pub(super) enum Number {
    Int(i64),
    Float(f64),
}

impl Stack {
    /// A stack that may push values below `limit` (see [`reserve`]).
    pub(super) fn new(state: *mut ffi::lua_State, limit: c_int) -> Stack {
        Stack { state, limit }
    }

    pub(super) fn kind(self, idx: c_int) -> c_int {
        unsafe { ffi::lua_type(self.state, idx) }
    }

    pub(super) fn top(self) -> c_int {
        unsafe { ffi::lua_gettop(self.state) }
    }

    pub(super) fn set_top(self, top: c_int) {
        unsafe { ffi::lua_settop(self.state, top) }
    }

    /// Whether `n` more values (and a few for iterating) fit below the limit.
    pub(super) fn room(self, n: usize) -> Result<()> {
        match c_int::try_from(n) {
            Ok(n) if self.top().saturating_add(n).saturating_add(4) <= self.limit => Ok(()),
            _ => mismatch(),
        }
    }

    pub(super) fn number(self, idx: c_int) -> Option<Number> {
        if self.kind(idx) != ffi::LUA_TNUMBER {
            return None;
        }
        #[cfg(any(feature = "lua53", feature = "lua54", feature = "lua55"))]
        unsafe {
            if ffi::lua_isinteger(self.state, idx) != 0 {
                return Some(Number::Int(ffi::lua_tointegerx(
                    self.state,
                    idx,
                    std::ptr::null_mut(),
                )));
            }
            Some(Number::Float(ffi::lua_tonumberx(
                self.state,
                idx,
                std::ptr::null_mut(),
            )))
        }
        #[cfg(not(any(feature = "lua53", feature = "lua54", feature = "lua55")))]
        {
            // Lua 5.1, 5.2 and LuaJIT have only floats; mlua calls those that are integers integers.
            let n = unsafe { ffi::lua_tonumberx(self.state, idx, std::ptr::null_mut()) };
            let i = n as i64;
            // In range first: `as` saturates, and i64::MAX as a float is 2^63.
            let in_range = (-(2f64.powi(63))..2f64.powi(63)).contains(&n);
            Some(if in_range && (i as f64).to_bits() == n.to_bits() {
                Number::Int(i)
            } else {
                Number::Float(n)
            })
        }
    }

    /// An integer of type `T`: a Lua integer, or an integral float, in range.
    pub(super) fn int<T: TryFrom<i64>>(self, idx: c_int) -> Result<T> {
        let i = match self.number(idx) {
            Some(Number::Int(i)) => i,
            Some(Number::Float(f))
                if f.fract() == 0.0 && (-(2f64.powi(63))..2f64.powi(63)).contains(&f) =>
            {
                f as i64
            }
            _ => return mismatch(),
        };
        T::try_from(i).or_else(|_| mismatch())
    }

    /// A u64: integers keep their 64 bits, floats must be integral and in `0..2^64`.
    pub(super) fn u64(self, idx: c_int) -> Result<u64> {
        match self.number(idx) {
            Some(Number::Int(i)) => Ok(i as u64),
            Some(Number::Float(f)) if f.fract() == 0.0 && (0.0..2f64.powi(64)).contains(&f) => {
                Ok(f as u64)
            }
            _ => mismatch(),
        }
    }

    pub(super) fn float(self, idx: c_int) -> Result<f64> {
        match self.number(idx) {
            Some(Number::Int(i)) => Ok(i as f64),
            Some(Number::Float(f)) => Ok(f),
            None => mismatch(),
        }
    }

    pub(super) fn bool(self, idx: c_int) -> Result<bool> {
        match self.kind(idx) {
            ffi::LUA_TBOOLEAN => Ok(unsafe { ffi::lua_toboolean(self.state, idx) } != 0),
            _ => mismatch(),
        }
    }

    /// The bytes of a Lua string (not of a number, which `lua_tolstring` would convert).
    pub(super) fn bytes<'a>(self, idx: c_int) -> Option<&'a [u8]> {
        if self.kind(idx) != ffi::LUA_TSTRING {
            return None;
        }
        let mut len = 0;
        // SAFETY: the string stays on the stack, so alive, while the call reads it.
        unsafe {
            let ptr = ffi::lua_tolstring(self.state, idx, &mut len);
            Some(std::slice::from_raw_parts(ptr.cast::<u8>(), len))
        }
    }

    pub(super) fn str<'a>(self, idx: c_int) -> Result<&'a str> {
        match self.bytes(idx).map(std::str::from_utf8) {
            Some(Ok(s)) => Ok(s),
            _ => mismatch(),
        }
    }

    pub(super) fn char(self, idx: c_int) -> Result<char> {
        if self.kind(idx) == ffi::LUA_TNUMBER {
            return char::from_u32(self.int(idx)?).map_or_else(mismatch, Ok);
        }
        let mut chars = self.str(idx)?.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => Ok(c),
            _ => mismatch(),
        }
    }

    /// The 0-based case of an enum or flag: its name (kebab or snake case) or its index.
    pub(super) fn case<'n>(
        self,
        idx: c_int,
        names: impl ExactSizeIterator<Item = &'n String>,
    ) -> Result<u32> {
        if self.kind(idx) == ffi::LUA_TNUMBER {
            let i: u32 = self.int(idx)?;
            return if (i as usize) < names.len() {
                Ok(i)
            } else {
                mismatch()
            };
        }
        match self.bytes(idx) {
            Some(key) => case_named(key, names),
            None => mismatch(),
        }
    }

    /// A variant: a case name, or `{case = payload}` with the payload pushed on the stack.
    pub(super) fn case_and_payload<'n>(
        self,
        idx: c_int,
        names: impl ExactSizeIterator<Item = &'n String>,
    ) -> Result<(u32, Option<c_int>)> {
        if self.kind(idx) == ffi::LUA_TSTRING {
            return Ok((self.case(idx, names)?, None));
        }
        let (key, payload) = self.single(idx)?;
        Ok((case_named(key, names)?, Some(payload)))
    }

    /// A result: `{ok = ...}` (0) or `{err = ...}` (1), the value pushed on the stack.
    pub(super) fn ok_or_err(self, idx: c_int) -> Result<(u32, Option<c_int>)> {
        match self.single(idx)? {
            (b"ok", payload) => Ok((0, Some(payload))),
            (b"err", payload) => Ok((1, Some(payload))),
            _ => mismatch(),
        }
    }

    /// The string key of a table with one key, and its value pushed on the stack.
    pub(super) fn single<'a>(self, idx: c_int) -> Result<(&'a [u8], c_int)> {
        if self.kind(idx) != ffi::LUA_TTABLE {
            return mismatch();
        }
        self.room(2)?;
        unsafe {
            ffi::lua_pushnil(self.state);
            if ffi::lua_next(self.state, idx) == 0 {
                return mismatch();
            }
            // The key stays alive in the table, which is on the stack.
            let Some(key) = self.bytes(-2) else {
                return mismatch();
            };
            ffi::lua_insert(self.state, -2);
            let value = self.top() - 1;
            if ffi::lua_next(self.state, idx) != 0 {
                return mismatch();
            }
            Ok((key, value))
        }
    }

    /// Flags as bits: a bitmask, a list of names (or indices), or `{name = true, ...}`.
    pub(super) fn flags<'n>(
        self,
        idx: c_int,
        names: impl ExactSizeIterator<Item = &'n String> + Clone,
    ) -> Result<u64> {
        let n = names.len();
        match self.kind(idx) {
            ffi::LUA_TNUMBER => {
                let mask = self.u64(idx)?;
                if n < 64 && mask >> n != 0 {
                    return mismatch();
                }
                Ok(mask)
            }
            ffi::LUA_TTABLE => {
                let list = self.list_len(idx)?.is_some();
                let mut bits = 0u64;
                unsafe {
                    ffi::lua_pushnil(self.state);
                    while ffi::lua_next(self.state, idx) != 0 {
                        let set = if list {
                            Some(self.case(-1, names.clone())?)
                        } else {
                            let bit = self.case(-2, names.clone())?;
                            self.bool(-1)?.then_some(bit)
                        };
                        if let Some(bit) = set {
                            bits |= 1 << bit;
                        }
                        ffi::lua_pop(self.state, 1);
                    }
                }
                Ok(bits)
            }
            _ => mismatch(),
        }
    }

    /// Pushes `t[k]` of the table at `idx` (an absolute index), without metamethods.
    pub(super) fn index(self, idx: c_int, k: usize) {
        unsafe { ffi::lua_rawgeti(self.state, idx, k as ffi::lua_Integer) };
    }

    /// How many entries the table at `idx` has.
    pub(super) fn entries(self, idx: c_int) -> Result<usize> {
        self.room(2)?;
        let mut n = 0;
        unsafe {
            ffi::lua_pushnil(self.state);
            while ffi::lua_next(self.state, idx) != 0 {
                n += 1;
                ffi::lua_pop(self.state, 1);
            }
        }
        Ok(n)
    }

    /// `n` when a table's keys are exactly `1..=n` (0 for the empty table).
    pub(super) fn list_len(self, idx: c_int) -> Result<Option<i64>> {
        self.room(2)?;
        let (mut keys, mut ints, mut max) = (0i64, 0i64, 0i64);
        unsafe {
            ffi::lua_pushnil(self.state);
            while ffi::lua_next(self.state, idx) != 0 {
                keys += 1;
                if let Some(Number::Int(k)) = self.number(-2)
                    && k >= 1
                {
                    ints += 1;
                    max = max.max(k);
                }
                ffi::lua_pop(self.state, 1);
            }
        }
        Ok((ints == keys && max == keys).then_some(keys))
    }

    /// The values of a record table by field, pushed on the stack (0: absent). The record's
    /// WIT name wins over its snake-case spelling; a table that is a list is refused, as the
    /// general path does.
    pub(super) fn fields<'n>(
        self,
        idx: c_int,
        names: impl ExactSizeIterator<Item = &'n String> + Clone,
    ) -> Result<[c_int; MAX_FIELDS]> {
        if self.kind(idx) != ffi::LUA_TTABLE {
            return mismatch();
        }
        self.room(names.len())?;
        let mut slots = [0; MAX_FIELDS];
        let mut exact = 0u64;
        unsafe {
            ffi::lua_pushnil(self.state);
            while ffi::lua_next(self.state, idx) != 0 {
                let found = self.bytes(-2).and_then(|key| {
                    match names.clone().position(|n| n.as_bytes() == key) {
                        Some(j) => Some((j, true)),
                        None => names
                            .clone()
                            .position(|n| snake_eq(n, key))
                            .map(|j| (j, false)),
                    }
                });
                if let Some((j, is_exact)) = found
                    && (is_exact || exact & (1 << j) == 0)
                {
                    if is_exact {
                        exact |= 1 << j;
                    }
                    if slots[j] == 0 {
                        // Under the key, which `lua_next` needs on top.
                        ffi::lua_insert(self.state, -2);
                        slots[j] = self.top() - 1;
                    } else {
                        ffi::lua_replace(self.state, slots[j]);
                    }
                    continue;
                }
                ffi::lua_pop(self.state, 1);
            }
        }
        // No field found: the table may be a list, which the general path refuses.
        if slots.iter().all(|s| *s == 0) && self.list_len(idx)?.is_some_and(|n| n > 0) {
            return mismatch();
        }
        Ok(slots)
    }

    /// The items of a table with keys exactly `1..=n`, pushed on the stack in order.
    pub(super) fn items(self, idx: c_int, n: usize) -> Result<[c_int; MAX_FIELDS]> {
        if self.kind(idx) != ffi::LUA_TTABLE {
            return mismatch();
        }
        self.room(n)?;
        let mut slots = [0; MAX_FIELDS];
        let mut count = 0;
        unsafe {
            ffi::lua_pushnil(self.state);
            while ffi::lua_next(self.state, idx) != 0 {
                match self.number(-2) {
                    Some(Number::Int(k)) if (1..=n as i64).contains(&k) => {
                        ffi::lua_insert(self.state, -2);
                        slots[k as usize - 1] = self.top() - 1;
                        count += 1;
                    }
                    _ => return mismatch(),
                }
            }
        }
        if count != n {
            return mismatch();
        }
        Ok(slots)
    }
}

/// The case named `key` (kebab or snake case), by position.
fn case_named<'n>(key: &[u8], mut names: impl Iterator<Item = &'n String>) -> Result<u32> {
    match names.position(|n| n.as_bytes() == key || snake_eq(n, key)) {
        Some(i) => Ok(i as u32),
        None => mismatch(),
    }
}

/// `name` in snake case (`tag-count` as `tag_count`) is `key`.
fn snake_eq(name: &str, key: &[u8]) -> bool {
    name.contains('-')
        && name.len() == key.len()
        && name
            .bytes()
            .zip(key)
            .all(|(n, k)| n == *k || (n == b'-' && *k == b'_'))
}

/// Whether the value at `src` is missing (absent from its table, or nil).
pub(super) fn absent(lua: Stack, src: Option<c_int>) -> bool {
    src.is_none_or(|idx| lua.kind(idx) == ffi::LUA_TNIL)
}

/// Stack slots [`reserve`] makes at most: a call whose arguments need more (records of many
/// fields nested deep) gives up and takes the general path.
pub(super) const MAX_RESERVE: usize = 4000;

/// Makes room for `n` values above the top of `state`'s stack before wasmtime runs, so that
/// nothing inside its frames grows the stack: the [`Stack`] limit, or `None` when the stack
/// cannot grow that far (a runaway recursion, or out of memory).
///
/// Never raises a Lua error. On Lua 5.2 to 5.5 `lua_checkstack` does not; on Lua 5.1 and
/// LuaJIT it raises when it cannot grow the stack (LuaJIT by a C++ exception, which no Rust
/// frame may see), so the stack grows first in a protected call, and `lua_checkstack` then
/// finds the room already there.
///
/// # Safety
/// `state` is the running Lua thread with three free slots (a C function has them on entry).
pub unsafe fn reserve(state: *mut ffi::lua_State, n: usize) -> Option<c_int> {
    let n = c_int::try_from(n).ok()?;
    unsafe {
        #[cfg(any(feature = "lua51", feature = "luajit"))]
        if !grow(state, n) {
            return None;
        }
        if ffi::lua_checkstack(state, n) == 0 {
            return None;
        }
        Some(ffi::lua_gettop(state) + n)
    }
}

/// [`reserve`] near the entry of a C function: Lua gives a C function `LUA_MINSTACK` free
/// slots, so `n` up to that many less [`ON_ENTRY`] need no growing (on Lua 5.1 and LuaJIT,
/// no protected call).
///
/// # Safety
/// As [`reserve`]; at most [`ON_ENTRY`] values were pushed since the C function was entered.
pub unsafe fn reserve_on_entry(state: *mut ffi::lua_State, n: usize) -> Option<c_int> {
    unsafe {
        match c_int::try_from(n) {
            Ok(n) if n <= ffi::LUA_MINSTACK - ON_ENTRY => Some(ffi::lua_gettop(state) + n),
            _ => reserve(state, n),
        }
    }
}

/// The values a C function may push before [`reserve_on_entry`].
pub const ON_ENTRY: c_int = 4;

/// The registry key of [`grow_stack`] (its address).
#[cfg(any(feature = "lua51", feature = "luajit"))]
static GROW_KEY: u8 = 0;

/// Grows the stack to `n` free slots in a protected call of [`grow_stack`]; `false` when it
/// could not (or when the registry no longer holds `grow_stack`: a script may change it).
#[cfg(any(feature = "lua51", feature = "luajit"))]
unsafe fn grow(state: *mut ffi::lua_State, n: c_int) -> bool {
    unsafe {
        ffi::lua_pushlightuserdata(state, (&raw const GROW_KEY).cast_mut().cast());
        ffi::lua_rawget(state, ffi::LUA_REGISTRYINDEX);
        let ours = ffi::lua_tocfunction(state, -1).map(|f| f as *const () as usize)
            == Some(grow_stack as *const () as usize);
        if !ours {
            ffi::lua_pop(state, 1);
            return false;
        }
        ffi::lua_pushinteger(state, (n + 8).into());
        let grown = ffi::lua_pcall(state, 1, 1, 0) == 0 && ffi::lua_toboolean(state, -1) != 0;
        ffi::lua_pop(state, 1);
        grown
    }
}

/// `grow_stack(n)`: whether the stack has room for `n` more values; raises when growing
/// fails (Lua 5.1, LuaJIT).
#[cfg(any(feature = "lua51", feature = "luajit"))]
unsafe extern "C-unwind" fn grow_stack(state: *mut ffi::lua_State) -> c_int {
    unsafe {
        let n = ffi::lua_tointeger(state, 1) as c_int;
        let grown = ffi::lua_checkstack(state, n);
        ffi::lua_pushboolean(state, grown);
        1
    }
}

/// Puts [`grow_stack`] in the registry for [`reserve`] (Lua 5.1 and LuaJIT; nothing on the
/// others).
///
/// # Errors
/// Lua's own (out of memory).
pub fn install(lua: &mlua::Lua) -> mlua::Result<()> {
    #[cfg(any(feature = "lua51", feature = "luajit"))]
    // SAFETY: pushes two values and sets them as a registry entry.
    unsafe {
        lua.exec_raw::<()>((), |state| {
            ffi::lua_pushlightuserdata(state, (&raw const GROW_KEY).cast_mut().cast());
            ffi::lua_pushcfunction(state, grow_stack);
            ffi::lua_rawset(state, ffi::LUA_REGISTRYINDEX);
        })?;
    }
    #[cfg(not(any(feature = "lua51", feature = "luajit")))]
    let _ = lua;
    Ok(())
}
