//! Resources Lua defines (SPEC section 15): what guests hold of them, Lua-free.
//!
//! Each resource table given to `funcs.host` is a type, `ResourceType::host_dynamic(ty)`;
//! each Lua value that crosses as one of its `own`/`borrow` is a rep (a number unique in the
//! process), which the Lua side maps to its value (`lua/host.rs`). This module counts, per
//! rep, the own handles guests hold ([`Reps`]: in all stores; [`Ledger`]: in one store) and
//! the [`LuaRef`]s alive (a value on its way to or from Lua), and queues what the Lua thread
//! must do: run `__drop` when guests dropped the last own handle (or their stores ended
//! holding it), forget the mapping when nothing refers to the rep. Values cross with the
//! store at hand ([`converting`]): the conversions (`value::to_wit`, `from_wit`) call
//! [`lower`] and [`lift`].
//!
//! A Lua value passed as a `borrow` is lent as a temporary own in the store's table, dropped
//! after the call (it has no destructor: no `__drop` runs for it); a borrow a guest passes to
//! a host function is released as it is read (`ResourceDynamic::try_from_resource_any`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use wasmtime::component::{ResourceAny, ResourceDynamic, ResourceType, Val};

use crate::error::expected;
use crate::sync::unpoison;
use crate::value::{ConvError, Value};

/// Types and reps are numbered in the process: a Lua state may load funcs twice.
static TYPES: AtomicU32 = AtomicU32::new(1);
static REPS: AtomicU32 = AtomicU32::new(1);

/// A new resource type number (one per resource table given to `funcs.host`).
pub fn new_type() -> u32 {
    TYPES.fetch_add(1, Ordering::Relaxed)
}

/// A new rep (one per Lua value crossing as a resource, until it is forgotten).
pub fn new_rep() -> u32 {
    REPS.fetch_add(1, Ordering::Relaxed)
}

/// What the Lua thread must do for a rep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Guests dropped their last own handle of it, or their stores ended holding it: `__drop`.
    Dropped { rep: u32, ty: u32 },
    /// Nothing refers to it any more: forget its value (unless it is in use again by then).
    Unused { rep: u32, ty: u32 },
}

/// The resources Lua defines of one Lua state: their types and what refers to each rep.
#[derive(Debug, Default)]
pub struct Reps {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Type numbers and resource names.
    types: Vec<(u32, String)>,
    counts: HashMap<u32, Count>,
    events: Vec<Event>,
}

#[derive(Debug)]
struct Count {
    ty: u32,
    /// Own handles in guests.
    guests: usize,
    /// [`LuaRef`]s alive.
    refs: usize,
}

impl State {
    /// Forgets a rep nothing refers to.
    fn settle(&mut self, rep: u32) {
        if let Some(c) = self.counts.get(&rep)
            && c.guests == 0
            && c.refs == 0
        {
            let ty = c.ty;
            self.counts.remove(&rep);
            self.events.push(Event::Unused { rep, ty });
        }
    }
}

impl Reps {
    /// Records a resource type (`funcs.host`).
    pub fn add_type(&self, ty: u32, name: &str) {
        unpoison(self.state.lock())
            .types
            .push((ty, name.to_string()));
    }

    /// Whether any resource type was registered.
    pub fn has_types(&self) -> bool {
        !unpoison(self.state.lock()).types.is_empty()
    }

    /// The number of a resource type of ours, by its wasmtime type.
    pub fn type_of(&self, ty: &ResourceType) -> Option<u32> {
        let st = unpoison(self.state.lock());
        st.types
            .iter()
            .find(|(n, _)| ResourceType::host_dynamic(*n) == *ty)
            .map(|(n, _)| *n)
    }

    /// The name of resource type `ty`.
    pub fn name(&self, ty: u32) -> String {
        let st = unpoison(self.state.lock());
        st.types
            .iter()
            .find(|(n, _)| *n == ty)
            .map_or_else(|| "resource".to_string(), |(_, name)| name.clone())
    }

    /// A reference to `rep` of type `ty`, which keeps its value mapped while it lives.
    pub fn refer(self: &Arc<Self>, rep: u32, ty: u32) -> Arc<LuaRef> {
        let mut st = unpoison(self.state.lock());
        st.counts
            .entry(rep)
            .or_insert(Count {
                ty,
                guests: 0,
                refs: 0,
            })
            .refs += 1;
        Arc::new(LuaRef {
            rep,
            ty,
            reps: self.clone(),
        })
    }

    /// Whether anything refers to `rep` (its value must stay mapped).
    pub fn in_use(&self, rep: u32) -> bool {
        unpoison(self.state.lock()).counts.contains_key(&rep)
    }

    /// What the Lua thread must do, in order.
    pub fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut unpoison(self.state.lock()).events)
    }

    /// A guest took an own handle of `rep`.
    fn taken(&self, rep: u32) {
        if let Some(c) = unpoison(self.state.lock()).counts.get_mut(&rep) {
            c.guests += 1;
        }
    }

    /// A guest gave `n` own handles of `rep` back to the host (`dropped`: it dropped them,
    /// or its store ended holding them).
    fn released(&self, rep: u32, n: usize, dropped: bool) {
        let mut st = unpoison(self.state.lock());
        let Some(c) = st.counts.get_mut(&rep) else {
            return;
        };
        let before = c.guests;
        c.guests = c.guests.saturating_sub(n);
        let ty = c.ty;
        if dropped && before > 0 && c.guests == 0 {
            st.events.push(Event::Dropped { rep, ty });
        }
        st.settle(rep);
    }
}

/// A Lua value crossing as a resource: its rep and type (`Value::Lua`). While one lives the
/// Lua side keeps the value mapped.
pub struct LuaRef {
    pub rep: u32,
    pub ty: u32,
    reps: Arc<Reps>,
}

impl Drop for LuaRef {
    fn drop(&mut self) {
        let mut st = unpoison(self.reps.state.lock());
        if let Some(c) = st.counts.get_mut(&self.rep) {
            c.refs = c.refs.saturating_sub(1);
        }
        st.settle(self.rep);
    }
}

impl std::fmt::Debug for LuaRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} #{}", self.reps.name(self.ty), self.rep)
    }
}

impl PartialEq for LuaRef {
    fn eq(&self, other: &Self) -> bool {
        self.rep == other.rep
    }
}

/// The own handles of resources Lua defines that the guest of one store holds, by rep.
/// Dropping the store gives them back as dropped (wasmtime runs no destructor then).
#[derive(Debug, Default)]
pub struct Ledger {
    reps: Option<Arc<Reps>>,
    held: HashMap<u32, usize>,
}

impl Ledger {
    fn taken(&mut self, reps: &Arc<Reps>, rep: u32) {
        self.reps.get_or_insert_with(|| reps.clone());
        *self.held.entry(rep).or_default() += 1;
        reps.taken(rep);
    }

    /// One own handle of `rep` left the guest (`dropped`: its destructor ran).
    pub fn released(&mut self, rep: u32, dropped: bool) {
        let Some(n) = self.held.get_mut(&rep) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            self.held.remove(&rep);
        }
        if let Some(reps) = &self.reps {
            reps.released(rep, 1, dropped);
        }
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        if let Some(reps) = &self.reps {
            for (rep, n) in self.held.drain() {
                reps.released(rep, n, true);
            }
        }
    }
}

/// What converting needs of the store a call runs in.
pub trait Tables {
    fn to_any(&mut self, resource: ResourceDynamic) -> wasmtime::Result<ResourceAny>;
    fn from_any(&mut self, resource: ResourceAny) -> wasmtime::Result<ResourceDynamic>;
    fn ledger(&mut self) -> &mut Ledger;
}

impl<T: super::HostState + 'static> Tables for wasmtime::StoreContextMut<'_, T> {
    fn to_any(&mut self, resource: ResourceDynamic) -> wasmtime::Result<ResourceAny> {
        resource.try_into_resource_any(&mut *self)
    }

    fn from_any(&mut self, resource: ResourceAny) -> wasmtime::Result<ResourceDynamic> {
        ResourceDynamic::try_from_resource_any(resource, &mut *self)
    }

    fn ledger(&mut self) -> &mut Ledger {
        self.data_mut().ledger()
    }
}

/// The store values are converted with, on this thread, and the lent borrows made so far.
struct Converting {
    tables: *mut (dyn Tables + 'static),
    reps: Arc<Reps>,
    lent: Vec<ResourceAny>,
    /// The own handles made so far, by rep (taken back if the conversion fails).
    given: Vec<(u32, ResourceAny)>,
}

thread_local! {
    static CONVERTING: RefCell<Option<Converting>> = const { RefCell::new(None) };
}

/// Runs `f` (conversions of one call's values) with resources Lua defines crossing through
/// `tables`: its result, and the temporary owns lent as borrows (to drop after the call).
/// When `f` fails, the handles it had made leave the store's table, and the own ones go back
/// to the host as if never given (no `__drop`: the guest never had them).
pub fn converting<'t, T, E>(
    tables: &'t mut (dyn Tables + 't),
    reps: &Arc<Reps>,
    f: impl FnOnce() -> Result<T, E>,
) -> (Result<T, E>, Vec<ResourceAny>) {
    struct Restore(Option<Converting>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let old = self.0.take();
            CONVERTING.with(|c| *c.borrow_mut() = old);
        }
    }
    // SAFETY (of the dereferences in `lower` and `lift`): the pointer is set only for the
    // extent of `f` and restored when it ends, by return or unwind; `tables` outlives that.
    // The lifetime is erased to store it.
    let tables: *mut (dyn Tables + 'static) = unsafe {
        std::mem::transmute::<*mut (dyn Tables + 't), *mut (dyn Tables + 'static)>(tables)
    };
    let mine = Converting {
        tables,
        reps: reps.clone(),
        lent: Vec::new(),
        given: Vec::new(),
    };
    let restore = Restore(CONVERTING.with(|c| c.borrow_mut().replace(mine)));
    let result = f();
    let (mut lent, given) = CONVERTING
        .with(|c| {
            c.borrow_mut()
                .as_mut()
                .map(|c| (std::mem::take(&mut c.lent), std::mem::take(&mut c.given)))
        })
        .unwrap_or_default();
    drop(restore);
    if result.is_err() {
        // SAFETY: `tables` is alive for this whole function (see above).
        let tables = unsafe { &mut *tables };
        for (rep, any) in given {
            tables.ledger().released(rep, false);
            let _ = tables.from_any(any);
        }
        for any in lent.drain(..) {
            let _ = tables.from_any(any);
        }
    }
    (result, lent)
}

/// A value as an argument or result of WIT type `own<ty>` (`own`) or `borrow<ty>`
/// (`value::to_wit`); `None` when neither the value nor the type is a resource Lua defines.
pub fn lower(value: &Value, ty: &ResourceType, own: bool) -> Option<Result<Val, ConvError>> {
    CONVERTING.with(|c| {
        let mut c = c.borrow_mut();
        let cx = c.as_mut()?;
        let kind = if own { "own" } else { "borrow" };
        let r = match value {
            Value::Lua(r) => r,
            other => {
                let want = cx.reps.type_of(ty)?;
                let want = cx.reps.name(want);
                return Some(Err(ConvError::new(expected(
                    format_args!("a value of resource `{want}` ({kind})"),
                    other.type_name(),
                ))));
            }
        };
        if ResourceType::host_dynamic(r.ty) != *ty {
            return Some(Err(ConvError::new(expected(
                format_args!("{kind}<resource>"),
                format_args!("a value of resource `{}`", cx.reps.name(r.ty)),
            ))));
        }
        // SAFETY: see `converting`.
        let tables = unsafe { &mut *cx.tables };
        let any = match tables.to_any(ResourceDynamic::new_own(r.rep, r.ty)) {
            Ok(any) => any,
            Err(e) => return Some(Err(ConvError::new(format!("{e:#}")))),
        };
        if own {
            tables.ledger().taken(&cx.reps, r.rep);
            cx.given.push((r.rep, any));
        } else {
            cx.lent.push(any);
        }
        Some(Ok(Val::Resource(any)))
    })
}

/// A resource of a type Lua defines, from a guest (`value::from_wit`): an own handle moves
/// to the host, a borrow is released; `None` for other resources.
pub fn lift(resource: ResourceAny) -> Option<Result<Value, ConvError>> {
    CONVERTING.with(|c| {
        let mut c = c.borrow_mut();
        let cx = c.as_mut()?;
        let ty = cx.reps.type_of(&resource.ty())?;
        // SAFETY: see `converting`.
        let tables = unsafe { &mut *cx.tables };
        let owned = resource.owned();
        let dynamic = match tables.from_any(resource) {
            Ok(d) => d,
            Err(e) => return Some(Err(ConvError::new(format!("{e:#}")))),
        };
        let r = cx.reps.refer(dynamic.rep(), ty);
        if owned {
            tables.ledger().released(dynamic.rep(), false);
        }
        Some(Ok(Value::Lua(r)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rep given to a guest as an own handle (its value crossing, then gone).
    fn given(reps: &Arc<Reps>, ledger: &mut Ledger, rep: u32) {
        let r = reps.refer(rep, 7);
        ledger.taken(reps, r.rep);
    }

    #[test]
    fn drops_once_when_the_last_own_handle_goes() {
        let reps = Arc::new(Reps::default());
        let mut ledger = Ledger::default();
        given(&reps, &mut ledger, 1);
        given(&reps, &mut ledger, 1);
        assert!(reps.take_events().is_empty());
        ledger.released(1, true);
        assert!(reps.take_events().is_empty());
        assert!(reps.in_use(1));
        ledger.released(1, true);
        assert_eq!(
            reps.take_events(),
            [
                Event::Dropped { rep: 1, ty: 7 },
                Event::Unused { rep: 1, ty: 7 }
            ]
        );
        assert!(!reps.in_use(1));
    }

    #[test]
    fn a_handle_given_back_to_the_host_is_not_dropped() {
        let reps = Arc::new(Reps::default());
        let mut ledger = Ledger::default();
        given(&reps, &mut ledger, 2);
        let back = reps.refer(2, 7);
        ledger.released(2, false);
        assert!(reps.take_events().is_empty());
        drop(back);
        assert_eq!(reps.take_events(), [Event::Unused { rep: 2, ty: 7 }]);
    }

    #[test]
    fn a_store_ending_drops_what_its_guest_held() {
        let reps = Arc::new(Reps::default());
        let mut ledger = Ledger::default();
        given(&reps, &mut ledger, 3);
        given(&reps, &mut ledger, 4);
        given(&reps, &mut ledger, 4);
        drop(ledger);
        let mut events = reps.take_events();
        events.sort_by_key(|e| match e {
            Event::Dropped { rep, .. } => (*rep, 0),
            Event::Unused { rep, .. } => (*rep, 1),
        });
        assert_eq!(
            events,
            [
                Event::Dropped { rep: 3, ty: 7 },
                Event::Unused { rep: 3, ty: 7 },
                Event::Dropped { rep: 4, ty: 7 },
                Event::Unused { rep: 4, ty: 7 },
            ]
        );
    }
}
