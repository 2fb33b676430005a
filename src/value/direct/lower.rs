//! Lua arguments to guest memory: wasmtime's `Lower` for the values on the Lua stack.

use std::ffi::c_int;
use std::mem::MaybeUninit;

use mlua::ffi;
use wasmtime::component::__internal::{
    CanonicalAbiInfo, ComponentTypes, InstanceType, InterfaceType, LowerContext,
};
use wasmtime::component::{ComponentNamedList, ComponentType, Lower, ResourceAny};
use wasmtime::{Result, ValRaw, bail};

use super::stack::{Number, Stack, absent};
use super::{MAX_FLAT, mismatch};

/// The arguments of a call: values `first..first + n` of a Lua stack, after `this` for a
/// method of a live instance (`inst:call`, a handle's method: the handle it borrows, given,
/// not read from Lua).
pub struct LuaArgs {
    this: Option<ResourceAny>,
    state: *mut ffi::lua_State,
    first: c_int,
    /// The top of the room [`reserve`](super::reserve) made: nothing is pushed above it.
    limit: c_int,
}

impl LuaArgs {
    /// # Safety
    /// `state` is the running Lua thread, with the arguments at `first..` on its stack for as
    /// long as the call lasts, and the call is synchronous on this thread.
    pub unsafe fn new(state: *mut ffi::lua_State, first: c_int, limit: c_int) -> LuaArgs {
        LuaArgs {
            this: None,
            state,
            first,
            limit,
        }
    }

    /// These arguments after `this`, the handle a method borrows.
    pub fn after(self, this: Option<ResourceAny>) -> LuaArgs {
        LuaArgs { this, ..self }
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

    const ABI: CanonicalAbiInfo = PARAMS_ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> Result<()> {
        typecheck_params(ty, types)
    }
}

/// The ABI of parameters passed as at most [`MAX_FLAT`] core values.
pub(super) const PARAMS_ABI: CanonicalAbiInfo = CanonicalAbiInfo {
    size32: 0,
    align32: 1,
    size64: 0,
    align64: 1,
    flat_count: Some(MAX_FLAT as u8),
};

/// Accepts a parameter list of at most [`MAX_FLAT`] core values.
pub(super) fn typecheck_params(ty: &InterfaceType, types: &InstanceType<'_>) -> Result<()> {
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

// SAFETY: a parameter list, as wasmtime's tuples are.
unsafe impl ComponentNamedList for LuaArgs {}

// SAFETY: writes every `ValRaw` of `dst`, and guest memory only through `LowerContext`; the
// handle is lowered by wasmtime's own `Lower` of `ResourceAny`, which checks it against the
// parameter's type.
unsafe impl Lower for LuaArgs {
    fn linear_lower_to_flat<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        dst: &mut MaybeUninit<Self::Lower>,
    ) -> Result<()> {
        lower_params(cx, ty, self.this.as_ref(), self, dst)
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

/// Lowers the parameter list `ty`: `this` first (a method's handle, by wasmtime's own
/// `Lower` of `ResourceAny`), then the values of `args`.
#[inline]
fn lower_params<T>(
    cx: &mut LowerContext<'_, T>,
    ty: InterfaceType,
    this: Option<&ResourceAny>,
    args: &LuaArgs,
    dst: &mut MaybeUninit<[ValRaw; MAX_FLAT]>,
) -> Result<()> {
    let InterfaceType::Tuple(params) = ty else {
        bail!("expected a parameter list");
    };
    let types: &ComponentTypes = cx.types;
    let mut params = types[params].types.iter();
    let mut out = Flat::new(dst);
    if let Some(this) = this {
        let Some(ty) = params.next() else {
            return mismatch();
        };
        let mut slot = MaybeUninit::<ValRaw>::uninit();
        this.linear_lower_to_flat(cx, *ty, &mut slot)?;
        // SAFETY: `linear_lower_to_flat` initialises it when it succeeds.
        out.push(unsafe { slot.assume_init() });
    }
    let lua = Stack::new(args.state, args.limit);
    for (i, ty) in params.enumerate() {
        lower_flat(cx, *ty, lua, Some(args.first + i as c_int), &mut out)?;
    }
    Ok(())
}

/// Core values of the parameters, in order, written where wasmtime reads them (every value
/// initialised first).
pub(super) struct Flat<'a> {
    values: &'a mut [ValRaw; MAX_FLAT],
    len: usize,
}

impl Flat<'_> {
    pub(super) fn new(dst: &mut MaybeUninit<[ValRaw; MAX_FLAT]>) -> Flat<'_> {
        Flat {
            values: dst.write([ValRaw::i64(0); MAX_FLAT]),
            len: 0,
        }
    }

    pub(super) fn push(&mut self, v: ValRaw) {
        self.values[self.len] = v;
        self.len += 1;
    }
}

/// Lowers the value at `src` (`None`: absent) as one or more core values.
fn lower_flat<T>(
    cx: &mut LowerContext<'_, T>,
    ty: InterfaceType,
    lua: Stack,
    src: Option<c_int>,
    out: &mut Flat<'_>,
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
            let slots = lua.fields(idx, fields.iter().map(|f| &f.name))?;
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
    let n = unsafe { ffi::lua_rawlen(lua.state, idx) };
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
        ffi::lua_pushnil(lua.state);
        while ffi::lua_next(lua.state, idx) != 0 {
            let at = match lua.number(-2) {
                Some(Number::Int(k)) if (1..=n as i64).contains(&k) => {
                    ptr + (k as usize - 1) * size
                }
                _ => return mismatch(),
            };
            store(cx, elem, lua, Some(lua.top()), at)?;
            ffi::lua_pop(lua.state, 1);
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
            store_flags(cx, offset, types[i].names.len(), bits);
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
            let slots = lua.fields(idx, fields.iter().map(|f| &f.name))?;
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

/// Writes the bits of flags with `n` names.
pub(super) fn store_flags<T>(cx: &mut LowerContext<'_, T>, offset: usize, n: usize, bits: u64) {
    match n {
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

/// Writes a case number of `size` bytes.
pub(super) fn discriminant<T>(cx: &mut LowerContext<'_, T>, offset: usize, size: u32, case: u32) {
    match size {
        1 => *cx.get(offset) = [case as u8],
        2 => *cx.get(offset) = (case as u16).to_le_bytes(),
        _ => *cx.get(offset) = case.to_le_bytes(),
    }
}
