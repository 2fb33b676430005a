//! Lua arguments to guest memory: wasmtime's `Lower` for the values on the Lua stack.

use std::ffi::c_int;
use std::mem::MaybeUninit;

use mlua::ffi;
use wasmtime::component::__internal::wasmtime_environ::component::RecordField;
use wasmtime::component::__internal::{
    CanonicalAbiInfo, ComponentTypes, InstanceType, InterfaceType, LowerContext,
};
use wasmtime::component::{ComponentNamedList, ComponentType, Lower};
use wasmtime::{Result, ValRaw, bail};

use super::{MAX_FIELDS, MAX_FLAT, mismatch};

/// The arguments of a call: values `first..first + n` of a Lua stack.
pub struct LuaArgs {
    state: *mut ffi::lua_State,
    first: c_int,
}

impl LuaArgs {
    /// # Safety
    /// `state` is the running Lua thread, with the arguments at `first..` on its stack for as
    /// long as the call lasts, and the call is synchronous on this thread.
    pub unsafe fn new(state: *mut ffi::lua_State, first: c_int) -> LuaArgs {
        LuaArgs { state, first }
    }
}

// SAFETY: wasmtime asks component values to be `Send + Sync` for async calls, which may move
// them between threads. `LuaArgs` only lives inside one synchronous call on the Lua thread (see
// `LuaArgs::new`).
unsafe impl Send for LuaArgs {}
unsafe impl Sync for LuaArgs {}

// SAFETY: `Lower` is `MAX_FLAT` `ValRaw`s and all of them are written; `typecheck` accepts only
// a parameter list of at most `MAX_FLAT` core values, which is therefore passed flat (the
// size and alignment in `ABI`, used only for parameters passed in memory, never are).
unsafe impl ComponentType for LuaArgs {
    type Lower = [ValRaw; MAX_FLAT];

    const ABI: CanonicalAbiInfo = CanonicalAbiInfo {
        size32: 0,
        align32: 1,
        size64: 0,
        align64: 1,
        flat_count: Some(MAX_FLAT as u8),
    };

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> Result<()> {
        let InterfaceType::Tuple(params) = ty else {
            bail!("expected a parameter list");
        };
        let mut flat = 0;
        for ty in types.types[*params].types.iter() {
            match types.types.canonical_abi(ty).flat_count {
                Some(n) => flat += usize::from(n),
                None => bail!("parameters too large for the direct path"),
            }
        }
        if flat > MAX_FLAT {
            bail!("parameters too large for the direct path");
        }
        Ok(())
    }
}

// SAFETY: a parameter list, as wasmtime's tuples are.
unsafe impl ComponentNamedList for LuaArgs {}

// SAFETY: writes every `ValRaw` of `dst`, and guest memory only through `LowerContext`.
unsafe impl Lower for LuaArgs {
    fn linear_lower_to_flat<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        dst: &mut MaybeUninit<Self::Lower>,
    ) -> Result<()> {
        let InterfaceType::Tuple(params) = ty else {
            bail!("expected a parameter list");
        };
        let types: &ComponentTypes = cx.types;
        let lua = Stack(self.state);
        let mut out = Flat {
            values: [ValRaw::i64(0); MAX_FLAT],
            len: 0,
        };
        for (i, ty) in types[params].types.iter().enumerate() {
            lower_flat(cx, *ty, lua, Some(self.first + i as c_int), &mut out)?;
        }
        dst.write(out.values);
        Ok(())
    }

    fn linear_lower_to_memory<T>(
        &self,
        _cx: &mut LowerContext<'_, T>,
        _ty: InterfaceType,
        _offset: usize,
    ) -> Result<()> {
        bail!("the direct path passes parameters flat")
    }
}

/// Core values of the parameters, in order.
struct Flat {
    values: [ValRaw; MAX_FLAT],
    len: usize,
}

impl Flat {
    fn push(&mut self, v: ValRaw) {
        self.values[self.len] = v;
        self.len += 1;
    }
}

/// A Lua stack, read without anything that could raise a Lua error (no metamethods, no
/// allocation): the reads happen inside wasmtime's frames.
#[derive(Clone, Copy)]
struct Stack(*mut ffi::lua_State);

/// A Lua number as mlua sees it: an integer when it is one.
enum Number {
    Int(i64),
    Float(f64),
}

impl Stack {
    fn kind(self, idx: c_int) -> c_int {
        unsafe { ffi::lua_type(self.0, idx) }
    }

    fn top(self) -> c_int {
        unsafe { ffi::lua_gettop(self.0) }
    }

    fn set_top(self, top: c_int) {
        unsafe { ffi::lua_settop(self.0, top) }
    }

    fn room(self, n: usize) -> Result<()> {
        match unsafe { ffi::lua_checkstack(self.0, n as c_int + 4) } {
            0 => mismatch(),
            _ => Ok(()),
        }
    }

    fn number(self, idx: c_int) -> Option<Number> {
        if self.kind(idx) != ffi::LUA_TNUMBER {
            return None;
        }
        #[cfg(feature = "lua54")]
        unsafe {
            if ffi::lua_isinteger(self.0, idx) != 0 {
                return Some(Number::Int(ffi::lua_tointegerx(
                    self.0,
                    idx,
                    std::ptr::null_mut(),
                )));
            }
            Some(Number::Float(ffi::lua_tonumberx(
                self.0,
                idx,
                std::ptr::null_mut(),
            )))
        }
        #[cfg(not(feature = "lua54"))]
        {
            // Lua 5.1 and LuaJIT have only floats; mlua calls those that are integers integers.
            let n = unsafe { ffi::lua_tonumberx(self.0, idx, std::ptr::null_mut()) };
            let i = n as i64;
            Some(if n.is_finite() && (i as f64).to_bits() == n.to_bits() {
                Number::Int(i)
            } else {
                Number::Float(n)
            })
        }
    }

    /// An integer of type `T`: a Lua integer, or an integral float, in range.
    fn int<T: TryFrom<i64>>(self, idx: c_int) -> Result<T> {
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
    fn u64(self, idx: c_int) -> Result<u64> {
        match self.number(idx) {
            Some(Number::Int(i)) => Ok(i as u64),
            Some(Number::Float(f)) if f.fract() == 0.0 && (0.0..2f64.powi(64)).contains(&f) => {
                Ok(f as u64)
            }
            _ => mismatch(),
        }
    }

    fn float(self, idx: c_int) -> Result<f64> {
        match self.number(idx) {
            Some(Number::Int(i)) => Ok(i as f64),
            Some(Number::Float(f)) => Ok(f),
            None => mismatch(),
        }
    }

    fn bool(self, idx: c_int) -> Result<bool> {
        match self.kind(idx) {
            ffi::LUA_TBOOLEAN => Ok(unsafe { ffi::lua_toboolean(self.0, idx) } != 0),
            _ => mismatch(),
        }
    }

    /// The bytes of a Lua string (not of a number, which `lua_tolstring` would convert).
    fn bytes<'a>(self, idx: c_int) -> Option<&'a [u8]> {
        if self.kind(idx) != ffi::LUA_TSTRING {
            return None;
        }
        let mut len = 0;
        // SAFETY: the string stays on the stack, so alive, while the call reads it.
        unsafe {
            let ptr = ffi::lua_tolstring(self.0, idx, &mut len);
            Some(std::slice::from_raw_parts(ptr.cast::<u8>(), len))
        }
    }

    fn str<'a>(self, idx: c_int) -> Result<&'a str> {
        match self.bytes(idx).map(std::str::from_utf8) {
            Some(Ok(s)) => Ok(s),
            _ => mismatch(),
        }
    }

    fn char(self, idx: c_int) -> Result<char> {
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
    fn case<'n>(self, idx: c_int, names: impl ExactSizeIterator<Item = &'n String>) -> Result<u32> {
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
    fn case_and_payload<'n>(
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
    fn ok_or_err(self, idx: c_int) -> Result<(u32, Option<c_int>)> {
        match self.single(idx)? {
            (b"ok", payload) => Ok((0, Some(payload))),
            (b"err", payload) => Ok((1, Some(payload))),
            _ => mismatch(),
        }
    }

    /// The string key of a table with one key, and its value pushed on the stack.
    fn single<'a>(self, idx: c_int) -> Result<(&'a [u8], c_int)> {
        if self.kind(idx) != ffi::LUA_TTABLE {
            return mismatch();
        }
        self.room(2)?;
        unsafe {
            ffi::lua_pushnil(self.0);
            if ffi::lua_next(self.0, idx) == 0 {
                return mismatch();
            }
            // The key stays alive in the table, which is on the stack.
            let Some(key) = self.bytes(-2) else {
                return mismatch();
            };
            ffi::lua_insert(self.0, -2);
            let value = self.top() - 1;
            if ffi::lua_next(self.0, idx) != 0 {
                return mismatch();
            }
            Ok((key, value))
        }
    }

    /// Flags as bits: a bitmask, a list of names (or indices), or `{name = true, ...}`.
    fn flags<'n>(
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
                    ffi::lua_pushnil(self.0);
                    while ffi::lua_next(self.0, idx) != 0 {
                        let set = if list {
                            Some(self.case(-1, names.clone())?)
                        } else {
                            let bit = self.case(-2, names.clone())?;
                            self.bool(-1)?.then_some(bit)
                        };
                        if let Some(bit) = set {
                            bits |= 1 << bit;
                        }
                        ffi::lua_pop(self.0, 1);
                    }
                }
                Ok(bits)
            }
            _ => mismatch(),
        }
    }

    /// How many entries the table at `idx` has.
    fn entries(self, idx: c_int) -> Result<usize> {
        self.room(2)?;
        let mut n = 0;
        unsafe {
            ffi::lua_pushnil(self.0);
            while ffi::lua_next(self.0, idx) != 0 {
                n += 1;
                ffi::lua_pop(self.0, 1);
            }
        }
        Ok(n)
    }

    /// `n` when a table's keys are exactly `1..=n` (0 for the empty table).
    fn list_len(self, idx: c_int) -> Result<Option<i64>> {
        self.room(2)?;
        let (mut keys, mut ints, mut max) = (0i64, 0i64, 0i64);
        unsafe {
            ffi::lua_pushnil(self.0);
            while ffi::lua_next(self.0, idx) != 0 {
                keys += 1;
                if let Some(Number::Int(k)) = self.number(-2)
                    && k >= 1
                {
                    ints += 1;
                    max = max.max(k);
                }
                ffi::lua_pop(self.0, 1);
            }
        }
        Ok((ints == keys && max == keys).then_some(keys))
    }

    /// The values of a record table by field, pushed on the stack (0: absent). The record's
    /// WIT name wins over its snake-case spelling; a table that is a list is refused, as the
    /// general path does.
    fn fields(self, idx: c_int, names: &[RecordField]) -> Result<[c_int; MAX_FIELDS]> {
        if self.kind(idx) != ffi::LUA_TTABLE {
            return mismatch();
        }
        self.room(names.len())?;
        let mut slots = [0; MAX_FIELDS];
        let mut exact = 0u64;
        unsafe {
            ffi::lua_pushnil(self.0);
            while ffi::lua_next(self.0, idx) != 0 {
                let found = self.bytes(-2).and_then(|key| {
                    match names.iter().position(|n| n.name.as_bytes() == key) {
                        Some(j) => Some((j, true)),
                        None => names
                            .iter()
                            .position(|n| snake_eq(&n.name, key))
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
                        ffi::lua_insert(self.0, -2);
                        slots[j] = self.top() - 1;
                    } else {
                        ffi::lua_replace(self.0, slots[j]);
                    }
                    continue;
                }
                ffi::lua_pop(self.0, 1);
            }
        }
        // No field found: the table may be a list, which the general path refuses.
        if slots.iter().all(|s| *s == 0) && self.list_len(idx)?.is_some_and(|n| n > 0) {
            return mismatch();
        }
        Ok(slots)
    }

    /// The items of a table with keys exactly `1..=n`, pushed on the stack in order.
    fn items(self, idx: c_int, n: usize) -> Result<[c_int; MAX_FIELDS]> {
        if self.kind(idx) != ffi::LUA_TTABLE {
            return mismatch();
        }
        self.room(n)?;
        let mut slots = [0; MAX_FIELDS];
        let mut count = 0;
        unsafe {
            ffi::lua_pushnil(self.0);
            while ffi::lua_next(self.0, idx) != 0 {
                match self.number(-2) {
                    Some(Number::Int(k)) if (1..=n as i64).contains(&k) => {
                        ffi::lua_insert(self.0, -2);
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
fn absent(lua: Stack, src: Option<c_int>) -> bool {
    src.is_none_or(|idx| lua.kind(idx) == ffi::LUA_TNIL)
}

/// Lowers the value at `src` (`None`: absent) as one or more core values.
fn lower_flat<T>(
    cx: &mut LowerContext<'_, T>,
    ty: InterfaceType,
    lua: Stack,
    src: Option<c_int>,
    out: &mut Flat,
) -> Result<()> {
    let types: &ComponentTypes = cx.types;
    if let InterfaceType::Option(i) = ty {
        let payload = types[i].ty;
        if absent(lua, src) {
            out.push(ValRaw::i32(0));
            let n = types.canonical_abi(&payload).flat_count.unwrap_or_default();
            for _ in 0..n {
                out.push(ValRaw::i64(0));
            }
            return Ok(());
        }
        out.push(ValRaw::i32(1));
        return lower_flat(cx, payload, lua, src, out);
    }
    let Some(idx) = src else {
        return mismatch();
    };
    match ty {
        InterfaceType::Bool => out.push(ValRaw::i32(lua.bool(idx)?.into())),
        InterfaceType::S8 => out.push(ValRaw::i32(lua.int::<i8>(idx)?.into())),
        InterfaceType::U8 => out.push(ValRaw::u32(lua.int::<u8>(idx)?.into())),
        InterfaceType::S16 => out.push(ValRaw::i32(lua.int::<i16>(idx)?.into())),
        InterfaceType::U16 => out.push(ValRaw::u32(lua.int::<u16>(idx)?.into())),
        InterfaceType::S32 => out.push(ValRaw::i32(lua.int(idx)?)),
        InterfaceType::U32 => out.push(ValRaw::u32(lua.int(idx)?)),
        InterfaceType::S64 => out.push(ValRaw::i64(lua.int(idx)?)),
        InterfaceType::U64 => out.push(ValRaw::u64(lua.u64(idx)?)),
        InterfaceType::Float32 => out.push(ValRaw::f32((lua.float(idx)? as f32).to_bits())),
        InterfaceType::Float64 => out.push(ValRaw::f64(lua.float(idx)?.to_bits())),
        InterfaceType::Char => out.push(ValRaw::u32(lua.char(idx)?.into())),
        InterfaceType::Enum(i) => out.push(ValRaw::u32(lua.case(idx, types[i].names.iter())?)),
        InterfaceType::Flags(i) => {
            let bits = lua.flags(idx, types[i].names.iter())?;
            for word in 0..types[i].names.len().div_ceil(32) {
                out.push(ValRaw::u32((bits >> (32 * word)) as u32));
            }
        }
        InterfaceType::String => {
            let mut pair = MaybeUninit::<[ValRaw; 2]>::uninit();
            lua.str(idx)?.linear_lower_to_flat(cx, ty, &mut pair)?;
            // SAFETY: `linear_lower_to_flat` initialises the pair when it succeeds.
            let [ptr, len] = unsafe { pair.assume_init() };
            out.push(ptr);
            out.push(len);
        }
        InterfaceType::List(i) => {
            let (ptr, len) = lower_list(cx, types[i].element, lua, idx)?;
            out.push(ValRaw::i64(ptr as i64));
            out.push(ValRaw::i64(len as i64));
        }
        InterfaceType::Record(i) => {
            let fields = &types[i].fields;
            let top = lua.top();
            let slots = lua.fields(idx, fields)?;
            for (field, slot) in fields.iter().zip(slots) {
                lower_flat(cx, field.ty, lua, (slot != 0).then_some(slot), out)?;
            }
            lua.set_top(top);
        }
        InterfaceType::Tuple(i) => {
            let tys = &types[i].types;
            let top = lua.top();
            let slots = lua.items(idx, tys.len())?;
            for (ty, slot) in tys.iter().zip(slots) {
                lower_flat(cx, *ty, lua, Some(slot), out)?;
            }
            lua.set_top(top);
        }
        _ => return mismatch(),
    }
    Ok(())
}

/// Lists up to this long are given room before their entries are counted.
const SHORT_LIST: usize = 1024;

/// Stores the elements of the list at `idx` in guest memory: the pointer and length.
fn lower_list<T>(
    cx: &mut LowerContext<'_, T>,
    elem: InterfaceType,
    lua: Stack,
    idx: c_int,
) -> Result<(usize, usize)> {
    if elem == InterfaceType::U8
        && let Some(bytes) = lua.bytes(idx)
    {
        let ptr = cx.realloc(0, 0, 1, bytes.len())?;
        cx.as_slice_mut()[ptr..][..bytes.len()].copy_from_slice(bytes);
        return Ok((ptr, bytes.len()));
    }
    if lua.kind(idx) != ffi::LUA_TTABLE {
        return mismatch();
    }
    let n = unsafe { ffi::lua_rawlen(lua.0, idx) };
    // `#t` is a border, not a count: a sparse table claims 2^40 with a few entries. Before a
    // long list is given room in guest memory, its entries are counted (short ones are
    // checked below, after a small allocation that a mismatch throws away with the instance).
    if n > SHORT_LIST && lua.entries(idx)? != n {
        return mismatch();
    }
    let abi = cx.types.canonical_abi(&elem);
    let (size, align) = (abi.size32 as usize, abi.align32);
    let Some(bytes) = n.checked_mul(size) else {
        return mismatch();
    };
    let ptr = cx.realloc(0, 0, align, bytes)?;
    lua.room(2)?;
    let mut count = 0;
    unsafe {
        ffi::lua_pushnil(lua.0);
        while ffi::lua_next(lua.0, idx) != 0 {
            let at = match lua.number(-2) {
                Some(Number::Int(k)) if (1..=n as i64).contains(&k) => {
                    ptr + (k as usize - 1) * size
                }
                _ => return mismatch(),
            };
            store(cx, elem, lua, Some(lua.top()), at)?;
            ffi::lua_pop(lua.0, 1);
            count += 1;
        }
    }
    if count != n {
        return mismatch();
    }
    Ok((ptr, n))
}

/// Stores the value at `src` (`None`: absent) in guest memory at `offset`.
fn store<T>(
    cx: &mut LowerContext<'_, T>,
    ty: InterfaceType,
    lua: Stack,
    src: Option<c_int>,
    offset: usize,
) -> Result<()> {
    let types: &ComponentTypes = cx.types;
    if let InterfaceType::Option(i) = ty {
        if absent(lua, src) {
            cx.get::<1>(offset)[0] = 0;
            return Ok(());
        }
        cx.get::<1>(offset)[0] = 1;
        let at = offset + types[i].info.payload_offset32 as usize;
        return store(cx, types[i].ty, lua, src, at);
    }
    let Some(idx) = src else {
        return mismatch();
    };
    match ty {
        InterfaceType::Bool => *cx.get(offset) = [u8::from(lua.bool(idx)?)],
        InterfaceType::S8 => *cx.get(offset) = lua.int::<i8>(idx)?.to_le_bytes(),
        InterfaceType::U8 => *cx.get(offset) = lua.int::<u8>(idx)?.to_le_bytes(),
        InterfaceType::S16 => *cx.get(offset) = lua.int::<i16>(idx)?.to_le_bytes(),
        InterfaceType::U16 => *cx.get(offset) = lua.int::<u16>(idx)?.to_le_bytes(),
        InterfaceType::S32 => *cx.get(offset) = lua.int::<i32>(idx)?.to_le_bytes(),
        InterfaceType::U32 => *cx.get(offset) = lua.int::<u32>(idx)?.to_le_bytes(),
        InterfaceType::S64 => *cx.get(offset) = lua.int::<i64>(idx)?.to_le_bytes(),
        InterfaceType::U64 => *cx.get(offset) = lua.u64(idx)?.to_le_bytes(),
        InterfaceType::Float32 => *cx.get(offset) = (lua.float(idx)? as f32).to_le_bytes(),
        InterfaceType::Float64 => *cx.get(offset) = lua.float(idx)?.to_le_bytes(),
        InterfaceType::Char => *cx.get(offset) = u32::from(lua.char(idx)?).to_le_bytes(),
        InterfaceType::Enum(i) => {
            let case = lua.case(idx, types[i].names.iter())?;
            discriminant(cx, offset, types[i].info.size.into(), case);
        }
        InterfaceType::Flags(i) => {
            let bits = lua.flags(idx, types[i].names.iter())?;
            match types[i].names.len() {
                0 => {}
                1..=8 => *cx.get(offset) = (bits as u8).to_le_bytes(),
                9..=16 => *cx.get(offset) = (bits as u16).to_le_bytes(),
                n => {
                    for word in 0..n.div_ceil(32) {
                        *cx.get(offset + 4 * word) = ((bits >> (32 * word)) as u32).to_le_bytes();
                    }
                }
            }
        }
        InterfaceType::Variant(i) => {
            let top = lua.top();
            let (cases, info) = (&types[i].cases, &types[i].info);
            let (case, payload) = lua.case_and_payload(idx, cases.keys())?;
            let (_, ty) = cases
                .get_index(case as usize)
                .expect("a case of the variant");
            discriminant(cx, offset, info.size.into(), case);
            let at = offset + info.payload_offset32 as usize;
            store_payload(cx, *ty, lua, payload, at)?;
            lua.set_top(top);
        }
        InterfaceType::Result(i) => {
            let top = lua.top();
            let (case, payload) = lua.ok_or_err(idx)?;
            let ty = if case == 0 { types[i].ok } else { types[i].err };
            *cx.get(offset) = [case as u8];
            let at = offset + types[i].info.payload_offset32 as usize;
            store_payload(cx, ty, lua, payload, at)?;
            lua.set_top(top);
        }
        InterfaceType::String => lua.str(idx)?.linear_lower_to_memory(cx, ty, offset)?,
        InterfaceType::List(i) => {
            let (ptr, len) = lower_list(cx, types[i].element, lua, idx)?;
            *cx.get(offset) = (ptr as u32).to_le_bytes();
            *cx.get(offset + 4) = (len as u32).to_le_bytes();
        }
        InterfaceType::Record(i) => {
            let fields = &types[i].fields;
            let top = lua.top();
            let slots = lua.fields(idx, fields)?;
            let mut at = 0;
            for (field, slot) in fields.iter().zip(slots) {
                let field_at = types.canonical_abi(&field.ty).next_field32(&mut at) as usize;
                store(
                    cx,
                    field.ty,
                    lua,
                    (slot != 0).then_some(slot),
                    offset + field_at,
                )?;
            }
            lua.set_top(top);
        }
        InterfaceType::Tuple(i) => {
            let tys = &types[i].types;
            let top = lua.top();
            let slots = lua.items(idx, tys.len())?;
            let mut at = 0;
            for (ty, slot) in tys.iter().zip(slots) {
                let item_at = types.canonical_abi(ty).next_field32(&mut at) as usize;
                store(cx, *ty, lua, Some(slot), offset + item_at)?;
            }
            lua.set_top(top);
        }
        _ => return mismatch(),
    }
    Ok(())
}

/// Stores the payload of a variant case or result arm, which has one when `ty` is set.
fn store_payload<T>(
    cx: &mut LowerContext<'_, T>,
    ty: Option<InterfaceType>,
    lua: Stack,
    payload: Option<c_int>,
    offset: usize,
) -> Result<()> {
    match (ty, payload) {
        (Some(ty), Some(_)) => store(cx, ty, lua, payload, offset),
        (Some(_), None) => mismatch(),
        (None, _) => Ok(()),
    }
}

/// Writes a case number of `size` bytes.
fn discriminant<T>(cx: &mut LowerContext<'_, T>, offset: usize, size: u32, case: u32) {
    match size {
        1 => *cx.get(offset) = [case as u8],
        2 => *cx.get(offset) = (case as u16).to_le_bytes(),
        _ => *cx.get(offset) = case.to_le_bytes(),
    }
}
