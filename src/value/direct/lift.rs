//! Results out of guest memory: wasmtime's `Lift` onto a [`Tape`], then Lua values.

use std::ffi::c_int;

use mlua::ffi;
use wasmtime::component::__internal::wasmtime_environ::component::StringEncoding;
use wasmtime::component::__internal::{
    CanonicalAbiInfo, ComponentTypes, InstanceType, InterfaceType, LiftContext,
};
use wasmtime::component::{ComponentNamedList, ComponentType, Lift};
use wasmtime::{Result, ValRaw, bail};

use crate::value::Value;

/// A result, lifted out of guest memory as a flat list of items that [`push`] turns into Lua
/// values; strings are in one buffer.
#[derive(Debug, Default, Clone)]
pub struct Tape {
    /// A result that is one boolean or number, kept here rather than in `items` (so that it
    /// takes no room from this thread's spare tape).
    one: Option<Item>,
    items: Vec<Item>,
    bytes: Vec<u8>,
    /// Distinct field, case and flag names, by the address of the name in the component's
    /// types: Lua gets each one once per result, however many records use it.
    keys: Vec<(usize, u32, u32)>,
}

#[derive(Debug, Clone, Copy)]
enum Item {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// `bytes[start..start + len]`.
    Str(u32, u32),
    /// `keys[n]`.
    Key(u32),
    /// A list of the next `n` values.
    Array(u32),
    /// `n` pairs of a `Key` and a value.
    Map(u32),
}

thread_local! {
    /// A used tape kept for the next result on this thread, so that a call of a large result
    /// does not grow a new one.
    static SPARE: std::cell::Cell<Tape> = std::cell::Cell::new(Tape::default());
}

/// Tapes with room for more items or bytes than this are not kept (at most 1 MiB each).
const KEEP: usize = 1 << 16;

impl Tape {
    /// An empty tape, with the room of the last one [recycled](Tape::recycle) on this thread.
    pub fn new() -> Tape {
        SPARE.take()
    }

    /// Whether pushing it allocates nothing in Lua (no result, or one boolean or number), so
    /// that it cannot raise a Lua error.
    pub fn is_scalar(&self) -> bool {
        self.one.is_some()
            || matches!(
                self.items.as_slice(),
                [] | [Item::Nil | Item::Bool(_) | Item::Int(_) | Item::Float(_)]
            )
    }

    /// A tape of one boolean or number.
    fn one(item: Item) -> Tape {
        Tape {
            one: Some(item),
            ..Tape::default()
        }
    }

    /// Keeps this tape's room for the next result on this thread.
    pub fn recycle(mut self) {
        if self.items.capacity() == 0 && self.bytes.capacity() == 0 {
            // (nothing to keep: one scalar, or no result)
            return;
        }
        if self.items.capacity() <= KEEP && self.bytes.capacity() <= 16 * KEEP {
            self.items.clear();
            self.bytes.clear();
            self.keys.clear();
            SPARE.set(self);
        }
    }

    /// The value on the tape as a [`Value`] (nil for an empty tape), for callers that are
    /// not Lua.
    pub fn to_value(&self) -> Value {
        match (self.one, self.items.first()) {
            (Some(item), _) => self.value_of(item, &mut 0),
            (None, Some(_)) => self.value_at(&mut 0),
            (None, None) => Value::Nil,
        }
    }

    fn value_at(&self, next: &mut usize) -> Value {
        let item = self.items[*next];
        *next += 1;
        self.value_of(item, next)
    }

    /// `item` as a value, what it holds read from `next` on.
    fn value_of(&self, item: Item, next: &mut usize) -> Value {
        let bytes = |start: u32, len: u32| self.bytes[start as usize..][..len as usize].to_vec();
        match item {
            Item::Nil => Value::Nil,
            Item::Bool(b) => Value::Bool(b),
            Item::Int(i) => Value::Int(i),
            Item::Float(f) => Value::Float(f),
            Item::Str(start, len) => Value::Bytes(bytes(start, len)),
            Item::Key(k) => {
                let (_, start, len) = self.keys[k as usize];
                Value::Bytes(bytes(start, len))
            }
            Item::Array(n) => Value::Array((0..n).map(|_| self.value_at(next)).collect()),
            Item::Map(n) => Value::Map(
                (0..n)
                    .map(|_| (self.value_at(next), self.value_at(next)))
                    .collect(),
            ),
        }
    }

    /// `bytes[start..start + len]`, empty when out of range.
    fn slice(&self, start: u32, len: u32) -> &[u8] {
        let start = start as usize;
        self.bytes
            .get(start..start.saturating_add(len as usize))
            .unwrap_or_default()
    }

    fn str(&mut self, s: &[u8]) {
        let (start, len) = self.copy(s);
        self.items.push(Item::Str(start, len));
    }

    fn copy(&mut self, s: &[u8]) -> (u32, u32) {
        let start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(s);
        (start, s.len() as u32)
    }

    fn key(&mut self, name: &str) {
        let id = name.as_ptr() as usize;
        let k = match self.keys.iter().position(|(key, _, _)| *key == id) {
            Some(k) => k,
            None => {
                let (start, len) = self.copy(name.as_bytes());
                self.keys.push((id, start, len));
                self.keys.len() - 1
            }
        };
        self.items.push(Item::Key(k as u32));
    }

    /// `{name = true, ...}` for the names whose bit is set.
    fn flags<'n>(&mut self, names: impl Iterator<Item = &'n String>, bits: u64) {
        let at = self.items.len();
        self.items.push(Item::Map(0));
        let mut n = 0;
        for (i, name) in names.enumerate() {
            if bits & (1 << i) != 0 {
                self.key(name);
                self.items.push(Item::Bool(true));
                n += 1;
            }
        }
        self.items[at] = Item::Map(n);
    }

    /// `{name = payload}` follows.
    fn arm(&mut self, name: &str) {
        self.items.push(Item::Map(1));
        self.key(name);
    }
}

/// A result in one core value ([`Shape::Flat`](super::Shape::Flat)).
pub struct FlatResult(pub Tape);

/// A result in memory ([`Shape::Memory`](super::Shape::Memory)).
pub struct MemoryResult(pub Tape);

/// The one type of a result list.
fn only_result(ty: &InterfaceType, types: &ComponentTypes) -> Result<InterfaceType> {
    match ty {
        InterfaceType::Tuple(i) if types[*i].types.len() == 1 => Ok(types[*i].types[0]),
        _ => bail!("expected one result"),
    }
}

// SAFETY: `Lower` is one `ValRaw` and `typecheck` accepts one result of one core value.
unsafe impl ComponentType for FlatResult {
    type Lower = ValRaw;

    const ABI: CanonicalAbiInfo = CanonicalAbiInfo::SCALAR8;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> Result<()> {
        match types
            .types
            .canonical_abi(&only_result(ty, types.types)?)
            .flat_count
        {
            Some(1) => Ok(()),
            _ => bail!("expected a result of one core value"),
        }
    }
}

// SAFETY: a result list, as wasmtime's tuples are.
unsafe impl ComponentNamedList for FlatResult {}

// SAFETY: reads guest memory only through `LiftContext`.
unsafe impl Lift for FlatResult {
    fn linear_lift_from_flat(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        src: &Self::Lower,
    ) -> Result<Self> {
        let ty = only_result(&ty, cx.types)?;
        let item = match ty {
            InterfaceType::Bool => Item::Bool(bool::linear_lift_from_flat(cx, ty, src)?),
            InterfaceType::S8 => Item::Int(i8::linear_lift_from_flat(cx, ty, src)?.into()),
            InterfaceType::U8 => Item::Int(u8::linear_lift_from_flat(cx, ty, src)?.into()),
            InterfaceType::S16 => Item::Int(i16::linear_lift_from_flat(cx, ty, src)?.into()),
            InterfaceType::U16 => Item::Int(u16::linear_lift_from_flat(cx, ty, src)?.into()),
            InterfaceType::S32 => Item::Int(i32::linear_lift_from_flat(cx, ty, src)?.into()),
            InterfaceType::U32 => Item::Int(u32::linear_lift_from_flat(cx, ty, src)?.into()),
            InterfaceType::S64 => Item::Int(i64::linear_lift_from_flat(cx, ty, src)?),
            InterfaceType::U64 => Item::Int(u64::linear_lift_from_flat(cx, ty, src)? as i64),
            InterfaceType::Float32 => Item::Float(f32::linear_lift_from_flat(cx, ty, src)?.into()),
            InterfaceType::Float64 => Item::Float(f64::linear_lift_from_flat(cx, ty, src)?),
            InterfaceType::Char => {
                let c = char::linear_lift_from_flat(cx, ty, src)?;
                let mut tape = Tape::new();
                tape.str(c.encode_utf8(&mut [0; 4]).as_bytes());
                return Ok(FlatResult(tape));
            }
            InterfaceType::Enum(i) => {
                let names = &cx.types[i].names;
                let case = src.get_u32();
                if case as usize >= names.len() {
                    return Err(out_of_range(case, names.len()));
                }
                let mut tape = Tape::new();
                tape.key(&names[case as usize]);
                return Ok(FlatResult(tape));
            }
            InterfaceType::Flags(i) => {
                let names = &cx.types[i].names;
                let mut tape = Tape::new();
                tape.flags(names.iter(), src.get_u32().into());
                return Ok(FlatResult(tape));
            }
            _ => bail!("the direct path lifts only scalars from one core value"),
        };
        Ok(FlatResult(Tape::one(item)))
    }

    fn linear_lift_from_memory(
        _cx: &mut LiftContext<'_>,
        _ty: InterfaceType,
        _bytes: &[u8],
    ) -> Result<Self> {
        bail!("a result of one core value is not in memory")
    }
}

// SAFETY: `Lower` is two `ValRaw`s, so that wasmtime reads the result through the pointer the
// guest returns (results of more than one core value are in memory). `ABI` says the result is
// 0 bytes with alignment 1: wasmtime then hands `linear_lift_from_memory` an empty slice at
// that pointer, and the real size and alignment, which depend on the type, are checked there.
unsafe impl ComponentType for MemoryResult {
    type Lower = [ValRaw; 2];

    const ABI: CanonicalAbiInfo = CanonicalAbiInfo {
        size32: 0,
        align32: 1,
        size64: 0,
        align64: 1,
        flat_count: Some(2),
    };

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> Result<()> {
        match types
            .types
            .canonical_abi(&only_result(ty, types.types)?)
            .flat_count
        {
            Some(0 | 1) => bail!("expected a result in memory"),
            _ => Ok(()),
        }
    }
}

// SAFETY: a result list, as wasmtime's tuples are.
unsafe impl ComponentNamedList for MemoryResult {}

// SAFETY: reads guest memory only through `LiftContext`, bounds-checked.
unsafe impl Lift for MemoryResult {
    fn linear_lift_from_flat(
        _cx: &mut LiftContext<'_>,
        _ty: InterfaceType,
        _src: &Self::Lower,
    ) -> Result<Self> {
        bail!("a result in memory is not flat")
    }

    fn linear_lift_from_memory(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        bytes: &[u8],
    ) -> Result<Self> {
        let ty = only_result(&ty, cx.types)?;
        let memory = cx.memory();
        // `bytes` is the empty slice at the returned pointer (see `ABI`).
        let ptr = (bytes.as_ptr() as usize).wrapping_sub(memory.as_ptr() as usize);
        let abi = cx.types.canonical_abi(&ty);
        if !ptr.is_multiple_of(abi.align32 as usize) {
            bail!("return pointer not aligned");
        }
        let Some(bytes) = memory.get(ptr..).and_then(|m| m.get(..abi.size32 as usize)) else {
            bail!("pointer out of bounds of memory");
        };
        let mut tape = Tape::new();
        load(cx, ty, bytes, &mut tape)?;
        Ok(MemoryResult(tape))
    }
}

/// Lifts the value of type `ty` in `bytes` (its size) onto the tape.
fn load(cx: &mut LiftContext<'_>, ty: InterfaceType, bytes: &[u8], tape: &mut Tape) -> Result<()> {
    let types: &ComponentTypes = cx.types;
    let item = match ty {
        InterfaceType::Bool => Item::Bool(bool::linear_lift_from_memory(cx, ty, bytes)?),
        InterfaceType::S8 => Item::Int(i8::from_le_bytes([bytes[0]]).into()),
        InterfaceType::U8 => Item::Int(bytes[0].into()),
        InterfaceType::S16 => Item::Int(i16::from_le_bytes(array(bytes)).into()),
        InterfaceType::U16 => Item::Int(u16::from_le_bytes(array(bytes)).into()),
        InterfaceType::S32 => Item::Int(i32::from_le_bytes(array(bytes)).into()),
        InterfaceType::U32 => Item::Int(u32::from_le_bytes(array(bytes)).into()),
        InterfaceType::S64 => Item::Int(i64::from_le_bytes(array(bytes))),
        InterfaceType::U64 => Item::Int(u64::from_le_bytes(array(bytes)) as i64),
        InterfaceType::Float32 => Item::Float(f32::from_le_bytes(array(bytes)).into()),
        InterfaceType::Float64 => Item::Float(f64::from_le_bytes(array(bytes))),
        InterfaceType::Char => {
            let c = char::linear_lift_from_memory(cx, ty, bytes)?;
            tape.str(c.encode_utf8(&mut [0; 4]).as_bytes());
            return Ok(());
        }
        InterfaceType::String if cx.options().string_encoding == StringEncoding::Utf8 => {
            // Validated and copied straight onto the tape, without a `String` in between.
            let ptr = u32::from_le_bytes(array(bytes)) as usize;
            let len = u32::from_le_bytes(array(&bytes[4..])) as usize;
            let memory = cx.memory();
            let Some(s) = memory.get(ptr..).and_then(|m| m.get(..len)) else {
                bail!("string pointer/length out of bounds of memory");
            };
            cx.consume_fuel(len)?;
            // The error wasmtime's own lift gives, so both paths read the same.
            if let Err(e) = std::str::from_utf8(s) {
                return Err(e.into());
            }
            tape.str(s);
            return Ok(());
        }
        InterfaceType::String => {
            let s = String::linear_lift_from_memory(cx, ty, bytes)?;
            tape.str(s.as_bytes());
            return Ok(());
        }
        InterfaceType::Enum(i) => {
            let case = discriminant(bytes, types[i].info.size.into());
            let names = &types[i].names;
            if case as usize >= names.len() {
                return Err(out_of_range(case, names.len()));
            }
            tape.key(&names[case as usize]);
            return Ok(());
        }
        InterfaceType::Flags(i) => {
            let names = &types[i].names;
            let bits = match names.len() {
                0 => 0,
                1..=8 => bytes[0].into(),
                9..=16 => u16::from_le_bytes(array(bytes)).into(),
                n => (0..n.div_ceil(32)).fold(0u64, |bits, word| {
                    bits | u64::from(u32::from_le_bytes(array(&bytes[4 * word..]))) << (32 * word)
                }),
            };
            tape.flags(names.iter(), bits);
            return Ok(());
        }
        InterfaceType::Variant(i) => {
            let (cases, info) = (&types[i].cases, &types[i].info);
            let case = discriminant(bytes, info.size.into());
            let Some((name, ty)) = cases.get_index(case as usize) else {
                return Err(out_of_range(case, cases.len()));
            };
            cx.consume_fuel_array(2, size_of::<Item>())?;
            tape.arm(name);
            return load_payload(cx, *ty, &bytes[info.payload_offset32 as usize..], tape);
        }
        InterfaceType::Result(i) => {
            let (ty, name) = match bytes[0] {
                0 => (types[i].ok, "ok"),
                1 => (types[i].err, "err"),
                case => return Err(out_of_range(case.into(), 2)),
            };
            cx.consume_fuel_array(2, size_of::<Item>())?;
            tape.arm(name);
            let at = types[i].info.payload_offset32 as usize;
            return load_payload(cx, ty, &bytes[at..], tape);
        }
        InterfaceType::Option(i) => {
            match bytes[0] {
                0 => tape.items.push(Item::Nil),
                1 => {
                    let payload = types[i].ty;
                    let at = types[i].info.payload_offset32 as usize;
                    let size = types.canonical_abi(&payload).size32 as usize;
                    load(cx, payload, &bytes[at..][..size], tape)?;
                }
                case => return Err(out_of_range(case.into(), 2)),
            }
            return Ok(());
        }
        InterfaceType::List(i) => {
            let elem = types[i].element;
            let ptr = u32::from_le_bytes(array(bytes)) as usize;
            let len = u32::from_le_bytes(array(&bytes[4..])) as usize;
            let abi = types.canonical_abi(&elem);
            let size = abi.size32 as usize;
            // Bounds before alignment, as wasmtime's own lift checks them.
            let memory = cx.memory();
            let Some(items) = len
                .checked_mul(size)
                .and_then(|n| memory.get(ptr..)?.get(..n))
            else {
                bail!("list pointer/length out of bounds of memory");
            };
            if !ptr.is_multiple_of(abi.align32 as usize) {
                bail!("list pointer is not aligned");
            }
            if elem == InterfaceType::U8 {
                // Host memory grows with the bytes, counted as wasmtime counts them.
                cx.consume_fuel(len)?;
                tape.str(items);
                return Ok(());
            }
            // Host memory grows with the guest's list, as for wasmtime's own lifting.
            cx.consume_fuel_array(len, size_of::<Item>())?;
            tape.items.push(Item::Array(len as u32));
            for k in 0..len {
                load(cx, elem, &items[k * size..][..size], tape)?;
            }
            return Ok(());
        }
        InterfaceType::Record(i) => {
            let fields = &types[i].fields;
            // A map item, then a key and a value per field: counted, as a list's items are
            // (a list of records repeats them as often as the guest says).
            cx.consume_fuel_array(1 + 2 * fields.len(), size_of::<Item>())?;
            tape.items.push(Item::Map(fields.len() as u32));
            let mut at = 0;
            for field in fields.iter() {
                let abi = types.canonical_abi(&field.ty);
                let field_at = abi.next_field32(&mut at) as usize;
                tape.key(&field.name);
                load(
                    cx,
                    field.ty,
                    &bytes[field_at..][..abi.size32 as usize],
                    tape,
                )?;
            }
            return Ok(());
        }
        InterfaceType::Tuple(i) => {
            let tys = &types[i].types;
            cx.consume_fuel_array(1 + tys.len(), size_of::<Item>())?;
            tape.items.push(Item::Array(tys.len() as u32));
            let mut at = 0;
            for ty in tys.iter() {
                let abi = types.canonical_abi(ty);
                let item_at = abi.next_field32(&mut at) as usize;
                load(cx, *ty, &bytes[item_at..][..abi.size32 as usize], tape)?;
            }
            return Ok(());
        }
        _ => bail!("the direct path does not lift this type"),
    };
    tape.items.push(item);
    Ok(())
}

/// A variant case's or result arm's payload (`true` for none) at the start of `bytes`.
fn load_payload(
    cx: &mut LiftContext<'_>,
    ty: Option<InterfaceType>,
    bytes: &[u8],
    tape: &mut Tape,
) -> Result<()> {
    match ty {
        Some(ty) => {
            let size = cx.types.canonical_abi(&ty).size32 as usize;
            load(cx, ty, &bytes[..size], tape)
        }
        None => {
            tape.items.push(Item::Bool(true));
            Ok(())
        }
    }
}

/// A case number of `size` bytes.
/// wasmtime's wording for a case the type does not have, so that both paths read the same.
fn out_of_range(case: u32, len: usize) -> wasmtime::Error {
    wasmtime::format_err!("discriminant {case} out of range [0..{len})")
}

fn discriminant(bytes: &[u8], size: u32) -> u32 {
    match size {
        1 => bytes[0].into(),
        2 => u16::from_le_bytes(array(bytes)).into(),
        _ => u32::from_le_bytes(array(bytes)),
    }
}

/// The first `N` bytes.
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    bytes[..N].try_into().expect("N bytes")
}

/// Names a result may have on the stack while it is pushed, each pushed once; a result with
/// more distinct names pushes each where it is used (it would not fit on the stack:
/// `LUAI_MAXCSTACK` is 8,000 slots on Lua 5.1 and LuaJIT).
const KEY_SLOTS: usize = 256;

/// Pushes the value on `tape` (nil for an empty tape) onto `state`'s stack.
///
/// Panics nowhere (it runs where a panic could not be caught: see `lua::fast`); a malformed
/// tape pushes nils.
///
/// # Safety
/// `state` is the running Lua thread. Lua may raise an error (out of memory, or no room on
/// the stack): the caller's frames must own nothing that needs dropping, and none may be
/// a `catch_unwind` (LuaJIT's errors are foreign exceptions, which abort there).
pub unsafe fn push(state: *mut ffi::lua_State, tape: &Tape) {
    unsafe {
        if let Some(item) = tape.one {
            ffi::luaL_checkstack(state, 1, std::ptr::null());
            push_scalar(state, item);
            return;
        }
        if tape.items.is_empty() {
            ffi::luaL_checkstack(state, 1, std::ptr::null());
            ffi::lua_pushnil(state);
            return;
        }
        if tape.keys.len() > KEY_SLOTS {
            ffi::luaL_checkstack(state, 8, std::ptr::null());
            push_item(state, tape, 0, &mut 0);
            return;
        }
        // The keys first, under the value, pushed again by copying their stack slots.
        ffi::luaL_checkstack(state, tape.keys.len() as c_int + 8, std::ptr::null());
        let base = ffi::lua_gettop(state) + 1;
        for &(_, start, len) in &tape.keys {
            let key = tape.slice(start, len);
            ffi::lua_pushlstring(state, key.as_ptr().cast(), key.len());
        }
        push_item(state, tape, base, &mut 0);
        if !tape.keys.is_empty() {
            ffi::lua_replace(state, base);
            ffi::lua_settop(state, base);
        }
    }
}

/// Pushes a nil, boolean or number item (nothing for others).
unsafe fn push_scalar(state: *mut ffi::lua_State, item: Item) {
    unsafe {
        match item {
            Item::Nil => ffi::lua_pushnil(state),
            Item::Bool(b) => ffi::lua_pushboolean(state, b.into()),
            Item::Int(i) => ffi::lua_pushinteger(state, i as ffi::lua_Integer),
            Item::Float(f) => ffi::lua_pushnumber(state, f),
            _ => {}
        }
    }
}

/// Pushes the item at `next` and what it holds; `keys`: where the keys are on the stack (0:
/// not there, each is pushed as a string).
unsafe fn push_item(state: *mut ffi::lua_State, tape: &Tape, keys: c_int, next: &mut usize) {
    let item = tape.items.get(*next).copied().unwrap_or(Item::Nil);
    *next += 1;
    unsafe {
        match item {
            Item::Nil | Item::Bool(_) | Item::Int(_) | Item::Float(_) => push_scalar(state, item),
            Item::Str(start, len) => {
                let s = tape.slice(start, len);
                ffi::lua_pushlstring(state, s.as_ptr().cast(), s.len());
            }
            Item::Key(k) if keys != 0 => ffi::lua_pushvalue(state, keys + k as c_int),
            Item::Key(k) => {
                let (_, start, len) = tape.keys.get(k as usize).copied().unwrap_or_default();
                let s = tape.slice(start, len);
                ffi::lua_pushlstring(state, s.as_ptr().cast(), s.len());
            }
            Item::Array(n) => {
                ffi::luaL_checkstack(state, 4, std::ptr::null());
                ffi::lua_createtable(state, size_hint(n), 0);
                for k in 1..=n {
                    push_item(state, tape, keys, next);
                    ffi::lua_rawseti(state, -2, k.into());
                }
            }
            Item::Map(n) => {
                ffi::luaL_checkstack(state, 4, std::ptr::null());
                ffi::lua_createtable(state, 0, size_hint(n));
                for _ in 0..n {
                    push_item(state, tape, keys, next);
                    push_item(state, tape, keys, next);
                    ffi::lua_rawset(state, -3);
                }
            }
        }
    }
}

/// A table size for `lua_createtable` (a hint: a negative one is an error).
fn size_hint(n: u32) -> c_int {
    c_int::try_from(n).unwrap_or(c_int::MAX)
}
