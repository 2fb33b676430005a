//! Arguments for a call that runs on another thread (a pool's worker, `funcs.async`): an
//! [`Image`], read off the Lua stack on the Lua thread and lowered into guest memory on the
//! worker.
//!
//! The Lua thread reads its stack as the direct path does ([`Stack`]), directed by the
//! function's [`Layout`] (its parameter types, kept from load), and records each value in the
//! order a walk of the types meets it: a scalar, enum case, flag set, option, variant case or
//! result arm as one word; a string or byte list as its length, its bytes appended to one
//! buffer; a list as its length, then its elements. No `String` per field, no `Val` tree: the
//! image is the intermediate value in the form the worker lowers fastest. The worker's `Lower`
//! ([`ImageArgs`]) walks the same types as wasmtime has them and writes each word where the
//! canonical ABI puts it.
//!
//! Reading gives up ([`Mismatch`](super::Mismatch)) where the direct path does, before the
//! call is queued: the caller then converts the arguments on the general path, whose error
//! names the argument and the path inside it.

use std::ffi::c_int;
use std::mem::MaybeUninit;

use mlua::ffi;
use wasmtime::component::__internal::{
    CanonicalAbiInfo, ComponentTypes, InstanceType, InterfaceType, LowerContext,
};
use wasmtime::component::{ComponentNamedList, ComponentType, Lower, Type};
use wasmtime::{Result, ValRaw, bail, format_err};

use super::lower::{Flat, PARAMS_ABI, discriminant, store_flags, typecheck_params};
use super::stack::{MAX_RESERVE, Stack, absent, reserve};
use super::{MAX_FLAT, mismatch};

/// The parameter types of a function, as the Lua thread walks them to make an [`Image`].
#[derive(Debug)]
pub struct Layout {
    nodes: Vec<Node>,
    /// The stack slots reading arguments of these types may use (see [`reserve`]).
    stack: usize,
}

#[derive(Debug)]
enum Node {
    Bool,
    S8,
    U8,
    S16,
    U16,
    S32,
    U32,
    S64,
    U64,
    F32,
    F64,
    Char,
    String,
    /// `list<u8>`: a Lua string, or a table of bytes.
    Bytes,
    List(Box<Node>),
    Option(Box<Node>),
    /// Field names and types.
    Record(Vec<String>, Vec<Node>),
    Tuple(Vec<Node>),
    Enum(Vec<String>),
    Flags(Vec<String>),
    /// Case names and payloads.
    Variant(Vec<String>, Vec<Option<Node>>),
    Result(Option<Box<Node>>, Option<Box<Node>>),
}

impl Layout {
    /// The layout of parameters of these types; `None` for a type the direct path does not
    /// take (see [`plan`](super::plan), which decides first).
    pub fn new(params: &[Type]) -> Option<Layout> {
        let nodes: Vec<Node> = params.iter().map(node).collect::<Option<_>>()?;
        let stack = nodes.iter().map(slots).sum::<usize>() + 8;
        Some(Layout {
            nodes,
            stack: stack.min(MAX_RESERVE),
        })
    }

    /// The stack slots to [`reserve`] before reading arguments of these types, on this path
    /// or the direct one (at most [`MAX_RESERVE`]: deeper values give up).
    pub fn stack(&self) -> usize {
        self.stack
    }
}

/// The stack slots reading a value of this type holds at most: a table's fields or items
/// with a key and a value being iterated, and what its deepest part holds above them.
fn slots(node: &Node) -> usize {
    let deepest = |nodes: &mut dyn Iterator<Item = &Node>| nodes.map(slots).max().unwrap_or(0);
    match node {
        Node::List(item) => 6 + slots(item),
        Node::Option(item) => slots(item),
        Node::Record(_, fields) => fields.len() + 6 + deepest(&mut fields.iter()),
        Node::Tuple(items) => items.len() + 6 + deepest(&mut items.iter()),
        Node::Variant(_, payloads) => 6 + deepest(&mut payloads.iter().flatten()),
        Node::Result(ok, err) => 6 + deepest(&mut ok.iter().chain(err.iter()).map(|b| b.as_ref())),
        Node::Bytes | Node::Flags(_) => 6,
        _ => 0,
    }
}

fn node(ty: &Type) -> Option<Node> {
    let boxed = |ty: &Type| node(ty).map(Box::new);
    Some(match ty {
        Type::Bool => Node::Bool,
        Type::S8 => Node::S8,
        Type::U8 => Node::U8,
        Type::S16 => Node::S16,
        Type::U16 => Node::U16,
        Type::S32 => Node::S32,
        Type::U32 => Node::U32,
        Type::S64 => Node::S64,
        Type::U64 => Node::U64,
        Type::Float32 => Node::F32,
        Type::Float64 => Node::F64,
        Type::Char => Node::Char,
        Type::String => Node::String,
        Type::List(list) => match list.ty() {
            Type::U8 => Node::Bytes,
            elem => Node::List(boxed(&elem)?),
        },
        Type::Option(option) => Node::Option(boxed(&option.ty())?),
        Type::Record(record) => Node::Record(
            record.fields().map(|f| f.name.to_string()).collect(),
            record
                .fields()
                .map(|f| node(&f.ty))
                .collect::<Option<_>>()?,
        ),
        Type::Tuple(tuple) => Node::Tuple(tuple.types().map(|t| node(&t)).collect::<Option<_>>()?),
        Type::Enum(en) => Node::Enum(en.names().map(str::to_string).collect()),
        Type::Flags(flags) => Node::Flags(flags.names().map(str::to_string).collect()),
        Type::Variant(variant) => {
            let mut names = Vec::new();
            let mut payloads = Vec::new();
            for case in variant.cases() {
                names.push(case.name.to_string());
                payloads.push(match &case.ty {
                    Some(ty) => Some(node(ty)?),
                    None => None,
                });
            }
            Node::Variant(names, payloads)
        }
        Type::Result(result) => {
            let arm = |ty: Option<Type>| match ty {
                Some(ty) => boxed(&ty).map(Some),
                None => Some(None),
            };
            Node::Result(arm(result.ok())?, arm(result.err())?)
        }
        _ => return None,
    })
}

/// The arguments of one call, checked and laid out on the Lua thread.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Image {
    words: Vec<u64>,
    bytes: Vec<u8>,
    count: usize,
}

impl Image {
    /// Reads values `first..first + count` of the Lua stack into `self` (empty) as arguments
    /// of `layout`'s types; `false` for a value the direct path does not take, or a wrong
    /// count. The stack is as it was afterwards.
    ///
    /// It reads within the room [`reserve`] makes first, so it raises no Lua error.
    ///
    /// # Safety
    /// `state` is the running Lua thread, with at least `first + count - 1` values and three
    /// free slots above them.
    pub unsafe fn read(
        &mut self,
        state: *mut ffi::lua_State,
        first: c_int,
        count: usize,
        layout: &Layout,
    ) -> bool {
        if count != layout.nodes.len() {
            return false;
        }
        // SAFETY: the caller's frame has the slots `reserve` needs.
        let Some(limit) = (unsafe { reserve(state, layout.stack) }) else {
            return false;
        };
        let lua = Stack::new(state, limit);
        let top = lua.top();
        self.count = count;
        let read = layout
            .nodes
            .iter()
            .enumerate()
            .try_for_each(|(i, node)| self.value(node, lua, Some(first + i as c_int)));
        lua.set_top(top);
        read.is_ok()
    }

    /// The number of arguments.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Records the value at `src` (`None`: absent) as a `node`.
    fn value(&mut self, node: &Node, lua: Stack, src: Option<c_int>) -> Result<()> {
        if let Node::Option(payload) = node {
            if absent(lua, src) {
                self.words.push(0);
                return Ok(());
            }
            self.words.push(1);
            return self.value(payload, lua, src);
        }
        let Some(idx) = src else {
            return mismatch();
        };
        let word = match node {
            Node::Bool => lua.bool(idx)?.into(),
            Node::S8 => lua.int::<i8>(idx)? as u64,
            Node::U8 => lua.int::<u8>(idx)?.into(),
            Node::S16 => lua.int::<i16>(idx)? as u64,
            Node::U16 => lua.int::<u16>(idx)?.into(),
            Node::S32 => lua.int::<i32>(idx)? as u64,
            Node::U32 => lua.int::<u32>(idx)?.into(),
            Node::S64 => lua.int::<i64>(idx)? as u64,
            Node::U64 => lua.u64(idx)?,
            Node::F32 => (lua.float(idx)? as f32).to_bits().into(),
            Node::F64 => lua.float(idx)?.to_bits(),
            Node::Char => u32::from(lua.char(idx)?).into(),
            Node::Enum(names) => lua.case(idx, names.iter())?.into(),
            Node::Flags(names) => lua.flags(idx, names.iter())?,
            Node::String => {
                let s = lua.str(idx)?;
                self.bytes.extend_from_slice(s.as_bytes());
                s.len() as u64
            }
            Node::Bytes => return self.byte_list(lua, idx),
            Node::List(elem) => {
                let n = list_len(lua, idx)?;
                self.words.push(n as u64);
                for k in 1..=n {
                    lua.index(idx, k);
                    if lua.kind(-1) == ffi::LUA_TNIL {
                        return mismatch();
                    }
                    self.value(elem, lua, Some(lua.top()))?;
                    lua.set_top(lua.top() - 1);
                }
                return Ok(());
            }
            Node::Record(names, nodes) => {
                let top = lua.top();
                let slots = lua.fields(idx, names.iter())?;
                for (node, slot) in nodes.iter().zip(slots) {
                    self.value(node, lua, (slot != 0).then_some(slot))?;
                }
                lua.set_top(top);
                return Ok(());
            }
            Node::Tuple(nodes) => {
                let top = lua.top();
                let slots = lua.items(idx, nodes.len())?;
                for (node, slot) in nodes.iter().zip(slots) {
                    self.value(node, lua, Some(slot))?;
                }
                lua.set_top(top);
                return Ok(());
            }
            Node::Variant(names, payloads) => {
                let top = lua.top();
                let (case, payload) = lua.case_and_payload(idx, names.iter())?;
                self.words.push(case.into());
                self.payload(payloads[case as usize].as_ref(), lua, payload)?;
                lua.set_top(top);
                return Ok(());
            }
            Node::Result(ok, err) => {
                let top = lua.top();
                let (case, payload) = lua.ok_or_err(idx)?;
                self.words.push(case.into());
                let arm = if case == 0 { ok } else { err };
                self.payload(arm.as_deref(), lua, payload)?;
                lua.set_top(top);
                return Ok(());
            }
            Node::Option(_) => unreachable!("handled above"),
        };
        self.words.push(word);
        Ok(())
    }

    /// A variant case's or result arm's payload, which it has when `node` is set.
    fn payload(&mut self, node: Option<&Node>, lua: Stack, payload: Option<c_int>) -> Result<()> {
        match (node, payload) {
            (Some(node), Some(_)) => self.value(node, lua, payload),
            (Some(_), None) => mismatch(),
            (None, _) => Ok(()),
        }
    }

    /// A `list<u8>`: the bytes of a string, or of a table of numbers.
    fn byte_list(&mut self, lua: Stack, idx: c_int) -> Result<()> {
        if let Some(bytes) = lua.bytes(idx) {
            self.words.push(bytes.len() as u64);
            self.bytes.extend_from_slice(bytes);
            return Ok(());
        }
        let n = list_len(lua, idx)?;
        self.words.push(n as u64);
        self.bytes.reserve(n);
        for k in 1..=n {
            lua.index(idx, k);
            self.bytes.push(lua.int::<u8>(-1)?);
            lua.set_top(lua.top() - 1);
        }
        Ok(())
    }
}

/// `n` for a table whose keys are `1..=n` (with room on the stack for an item); the items
/// are then read in order, each checked not to be nil, which with `n` entries proves the
/// keys.
fn list_len(lua: Stack, idx: c_int) -> Result<usize> {
    if lua.kind(idx) != ffi::LUA_TTABLE {
        return mismatch();
    }
    // `#t` is a border, not a count: entries are counted before anything is read.
    let n = unsafe { ffi::lua_rawlen(lua.state, idx) };
    if n > c_int::MAX as usize || lua.entries(idx)? != n {
        return mismatch();
    }
    lua.room(1)?;
    Ok(n)
}

/// An [`Image`] as the parameters of a typed call.
pub struct ImageArgs<'a>(pub &'a Image);

// SAFETY: as `LuaArgs`'s: `Lower` is `MAX_FLAT` `ValRaw`s, all written; `typecheck` accepts
// only parameter lists of at most `MAX_FLAT` core values, passed flat.
unsafe impl ComponentType for ImageArgs<'_> {
    type Lower = [ValRaw; MAX_FLAT];

    const ABI: CanonicalAbiInfo = PARAMS_ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> Result<()> {
        typecheck_params(ty, types)
    }
}

// SAFETY: a parameter list, as wasmtime's tuples are.
unsafe impl ComponentNamedList for ImageArgs<'_> {}

// SAFETY: writes every `ValRaw` of `dst`, and guest memory only through `LowerContext`.
unsafe impl Lower for ImageArgs<'_> {
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
        let mut image = Words {
            words: &self.0.words,
            bytes: &self.0.bytes,
        };
        let mut out = Flat::new(dst);
        for ty in types[params].types.iter() {
            image.flat(cx, *ty, &mut out)?;
        }
        if !image.words.is_empty() || !image.bytes.is_empty() {
            bail!("the arguments' image is longer than their types");
        }
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

/// What is left of an image to lower.
struct Words<'a> {
    words: &'a [u64],
    bytes: &'a [u8],
}

impl<'a> Words<'a> {
    fn word(&mut self) -> Result<u64> {
        let (&word, rest) = self
            .words
            .split_first()
            .ok_or_else(|| format_err!("the arguments' image is shorter than their types"))?;
        self.words = rest;
        Ok(word)
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.word()? as usize;
        if n > self.bytes.len() {
            bail!("the arguments' image is shorter than their types");
        }
        let (bytes, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(bytes)
    }

    fn str(&mut self) -> Result<&'a str> {
        Ok(std::str::from_utf8(self.bytes()?)?)
    }

    /// Lowers the next value, of type `ty`, as one or more core values.
    fn flat<T>(
        &mut self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        out: &mut Flat<'_>,
    ) -> Result<()> {
        let types: &ComponentTypes = cx.types;
        match ty {
            InterfaceType::Option(i) => {
                let payload = types[i].ty;
                if self.word()? == 0 {
                    out.push(ValRaw::i32(0));
                    let n = types.canonical_abi(&payload).flat_count.unwrap_or_default();
                    for _ in 0..n {
                        out.push(ValRaw::i64(0));
                    }
                } else {
                    out.push(ValRaw::i32(1));
                    self.flat(cx, payload, out)?;
                }
            }
            InterfaceType::Bool | InterfaceType::S8 | InterfaceType::S16 | InterfaceType::S32 => {
                out.push(ValRaw::i32(self.word()? as i32));
            }
            InterfaceType::U8
            | InterfaceType::U16
            | InterfaceType::U32
            | InterfaceType::Char
            | InterfaceType::Enum(_) => out.push(ValRaw::u32(self.word()? as u32)),
            InterfaceType::S64 | InterfaceType::U64 => out.push(ValRaw::i64(self.word()? as i64)),
            InterfaceType::Float32 => out.push(ValRaw::f32(self.word()? as u32)),
            InterfaceType::Float64 => out.push(ValRaw::f64(self.word()?)),
            InterfaceType::Flags(i) => {
                let bits = self.word()?;
                for word in 0..types[i].names.len().div_ceil(32) {
                    out.push(ValRaw::u32((bits >> (32 * word)) as u32));
                }
            }
            InterfaceType::String => {
                let mut pair = MaybeUninit::<[ValRaw; 2]>::uninit();
                self.str()?.linear_lower_to_flat(cx, ty, &mut pair)?;
                // SAFETY: `linear_lower_to_flat` initialises the pair when it succeeds.
                let [ptr, len] = unsafe { pair.assume_init() };
                out.push(ptr);
                out.push(len);
            }
            InterfaceType::List(i) => {
                let (ptr, len) = self.list(cx, types[i].element)?;
                out.push(ValRaw::i64(ptr as i64));
                out.push(ValRaw::i64(len as i64));
            }
            InterfaceType::Record(i) => {
                for field in types[i].fields.iter() {
                    self.flat(cx, field.ty, out)?;
                }
            }
            InterfaceType::Tuple(i) => {
                for ty in types[i].types.iter() {
                    self.flat(cx, *ty, out)?;
                }
            }
            _ => bail!("the direct path does not pass this type flat"),
        }
        Ok(())
    }

    /// Stores the next list, of `elem`s, in guest memory: its pointer and length.
    fn list<T>(
        &mut self,
        cx: &mut LowerContext<'_, T>,
        elem: InterfaceType,
    ) -> Result<(usize, usize)> {
        if elem == InterfaceType::U8 {
            let bytes = self.bytes()?;
            let ptr = cx.realloc(0, 0, 1, bytes.len())?;
            cx.as_slice_mut()[ptr..][..bytes.len()].copy_from_slice(bytes);
            return Ok((ptr, bytes.len()));
        }
        let n = self.word()? as usize;
        let abi = cx.types.canonical_abi(&elem);
        let (size, align) = (abi.size32 as usize, abi.align32);
        let Some(bytes) = n.checked_mul(size) else {
            bail!("list too large");
        };
        let ptr = cx.realloc(0, 0, align, bytes)?;
        for k in 0..n {
            self.store(cx, elem, ptr + k * size)?;
        }
        Ok((ptr, n))
    }

    /// Stores the next value, of type `ty`, in guest memory at `offset`.
    fn store<T>(
        &mut self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        offset: usize,
    ) -> Result<()> {
        let types: &ComponentTypes = cx.types;
        match ty {
            InterfaceType::Option(i) => {
                let some = self.word()?;
                cx.get::<1>(offset)[0] = some as u8;
                if some != 0 {
                    let at = offset + types[i].info.payload_offset32 as usize;
                    self.store(cx, types[i].ty, at)?;
                }
            }
            InterfaceType::Bool | InterfaceType::S8 | InterfaceType::U8 => {
                *cx.get(offset) = [self.word()? as u8];
            }
            InterfaceType::S16 | InterfaceType::U16 => {
                *cx.get(offset) = (self.word()? as u16).to_le_bytes();
            }
            InterfaceType::S32
            | InterfaceType::U32
            | InterfaceType::Char
            | InterfaceType::Float32 => *cx.get(offset) = (self.word()? as u32).to_le_bytes(),
            InterfaceType::S64 | InterfaceType::U64 | InterfaceType::Float64 => {
                *cx.get(offset) = self.word()?.to_le_bytes();
            }
            InterfaceType::Enum(i) => {
                let case = self.word()? as u32;
                discriminant(cx, offset, types[i].info.size.into(), case);
            }
            InterfaceType::Flags(i) => {
                let bits = self.word()?;
                store_flags(cx, offset, types[i].names.len(), bits);
            }
            InterfaceType::Variant(i) => {
                let (cases, info) = (&types[i].cases, &types[i].info);
                let case = self.word()? as u32;
                let Some((_, ty)) = cases.get_index(case as usize) else {
                    bail!("the arguments' image has a case its variant does not");
                };
                discriminant(cx, offset, info.size.into(), case);
                if let Some(ty) = *ty {
                    self.store(cx, ty, offset + info.payload_offset32 as usize)?;
                }
            }
            InterfaceType::Result(i) => {
                let case = self.word()?;
                let ty = if case == 0 { types[i].ok } else { types[i].err };
                *cx.get(offset) = [case as u8];
                if let Some(ty) = ty {
                    let at = offset + types[i].info.payload_offset32 as usize;
                    self.store(cx, ty, at)?;
                }
            }
            InterfaceType::String => self.str()?.linear_lower_to_memory(cx, ty, offset)?,
            InterfaceType::List(i) => {
                let (ptr, len) = self.list(cx, types[i].element)?;
                *cx.get(offset) = (ptr as u32).to_le_bytes();
                *cx.get(offset + 4) = (len as u32).to_le_bytes();
            }
            InterfaceType::Record(i) => {
                let mut at = 0;
                for field in types[i].fields.iter() {
                    let field_at = types.canonical_abi(&field.ty).next_field32(&mut at) as usize;
                    self.store(cx, field.ty, offset + field_at)?;
                }
            }
            InterfaceType::Tuple(i) => {
                let mut at = 0;
                for ty in types[i].types.iter() {
                    let item_at = types.canonical_abi(ty).next_field32(&mut at) as usize;
                    self.store(cx, *ty, offset + item_at)?;
                }
            }
            _ => bail!("the direct path does not store this type"),
        }
        Ok(())
    }
}
