//! Resource handles of an instance: what each one is (its resource and number), what became
//! of it (dropped, moved into a call), and how handles cross a call: lowered as arguments
//! (checked, then lent or moved) and lifted from results, inside an instance's call only.

use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use wasmtime::component::{ResourceAny, ResourceType, Type, Val};

use super::Instance;
use crate::error::{Error, expected};
use crate::function::Export;
use crate::sync::unpoison;
use crate::value::{ConvError, Value};

/// A resource handle an instance's call gave out: `own`, held by Lua.
pub struct Handle {
    instance: Arc<Instance>,
    resource: ResourceAny,
    /// Where it is exported (`ns:pkg/iface@1.0.0#counter`), or `resource` for a type the
    /// component imports.
    qualified: Arc<str>,
    name: Arc<str>,
    number: u64,
    fate: Mutex<Fate>,
    /// Whether it is counted among its entry's live handles (until dropped, moved or freed).
    counted: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Clone, PartialEq)]
enum Fate {
    Live,
    Dropped,
    /// Moved into the guest by a call of this export (its short name).
    Moved(String),
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.describe())
    }
}

impl PartialEq for Handle {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Handle {
    /// `counter #3`.
    pub fn label(&self) -> String {
        format!("{} #{}", self.name, self.number)
    }

    /// `counter #3 of `app:counter` #1`, for `tostring`.
    pub fn describe(&self) -> String {
        format!("{} of {}", self.label(), self.instance.describe())
    }

    /// The resource's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The resource's name with its interface, as [`Instance::class`] takes it.
    pub fn qualified(&self) -> &str {
        &self.qualified
    }

    /// Its instance.
    pub fn instance(&self) -> &Arc<Instance> {
        &self.instance
    }

    /// The guest's handle.
    pub fn resource(&self) -> ResourceAny {
        self.resource
    }

    /// Whether the handle is live, of `instance`, and of the resource `ty` borrows (the
    /// first parameter of a method): what [`lower`] checks, without words.
    pub(super) fn usable_in(&self, instance: &Arc<Instance>, ty: &Type) -> bool {
        matches!(ty, Type::Borrow(r) if *r == self.resource.ty())
            && Arc::ptr_eq(&self.instance, instance)
            && *unpoison(self.fate.lock()) == Fate::Live
    }

    /// Why the handle cannot be used, if it cannot: dropped, moved, or its instance ended.
    pub fn dead(&self) -> Option<String> {
        match &*unpoison(self.fate.lock()) {
            Fate::Live => {}
            Fate::Dropped => return Some(format!("{} was dropped", self.label())),
            Fate::Moved(into) => {
                return Some(format!("{} was moved into `{into}`", self.label()));
            }
        }
        self.instance
            .dead()
            .map(|why| format!("{}: {why}", self.label()))
    }

    /// Runs the guest's destructor now (after the instance's running call); a dead handle
    /// does nothing.
    ///
    /// # Errors
    /// `INVALID` from a host function of the instance's own running call; a destructor that
    /// fails (the instance ends with it).
    pub fn drop_now(&self) -> Result<(), Error> {
        if *unpoison(self.fate.lock()) != Fate::Live {
            return Ok(());
        }
        let result = self
            .instance
            .drop_resource(self.resource, &|| format!("drop {} of", self.label()));
        if !matches!(&result, Err(e) if e.kind() == crate::error::Kind::Invalid) {
            *unpoison(self.fate.lock()) = Fate::Dropped;
            self.uncount();
        }
        result
    }

    /// Marks the handle moved into a call of `export`.
    pub(super) fn moved(&self, export: &Export) {
        *unpoison(self.fate.lock()) = Fate::Moved(export.short().to_string());
        self.uncount();
    }

    /// No longer among the live handles (once).
    fn uncount(&self) {
        if self.counted.swap(false, Ordering::AcqRel) {
            self.instance.live_handles.fetch_sub(1, Ordering::Relaxed);
            self.instance
                .pool
                .0
                .function()
                .handles()
                .fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.uncount();
        // Dropped before the instance's next call (an instance that ended has none).
        if *unpoison(self.fate.get_mut()) == Fate::Live && self.instance.dead().is_none() {
            let mut pending = unpoison(self.instance.pending.lock());
            pending.push(self.resource);
            self.instance.any_pending.store(true, Ordering::Release);
        }
    }
}

/// `iface#counter` as `counter`.
pub(super) fn short(qualified: &str) -> &str {
    qualified.rsplit('#').next().unwrap_or(qualified)
}

thread_local! {
    /// The instance whose call's arguments are being lowered, and the handles met so far
    /// (with whether each went as `own`).
    static LOWERING: RefCell<Option<(Arc<Instance>, Vec<(Arc<Handle>, bool)>)>> =
        const { RefCell::new(None) };
    /// The instance whose call's results are being lifted.
    static LIFTING: RefCell<Option<Arc<Instance>>> = const { RefCell::new(None) };
}

/// Runs `f` (which lowers the arguments of a call of `instance`) with handles allowed: its
/// result, and the handles it met.
///
/// # Errors
/// `f`'s.
pub fn lowering<T>(
    instance: &Arc<Instance>,
    f: impl FnOnce() -> Result<T, Error>,
) -> Result<(T, Vec<(Arc<Handle>, bool)>), Error> {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            LOWERING.with(|l| l.borrow_mut().take());
        }
    }
    LOWERING.with(|l| *l.borrow_mut() = Some((instance.clone(), Vec::new())));
    let reset = Reset;
    let result = f();
    let handles = LOWERING
        .with(|l| l.borrow_mut().take())
        .map(|(_, h)| h)
        .unwrap_or_default();
    drop(reset);
    result.map(|value| (value, handles))
}

/// Runs `f` (which lifts the results of a call of `instance`) with handles made for the own
/// resources in them.
///
/// # Errors
/// `f`'s.
pub fn lifting<T>(
    instance: &Arc<Instance>,
    f: impl FnOnce() -> Result<T, Error>,
) -> Result<T, Error> {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            LIFTING.with(|l| l.borrow_mut().take());
        }
    }
    LIFTING.with(|l| *l.borrow_mut() = Some(instance.clone()));
    let _reset = Reset;
    f()
}

/// A handle as an argument of WIT type `own<ty>` (`own`) or `borrow<ty>` (`value::to_wit`).
///
/// # Errors
/// Outside an instance's call; a value that is not a live handle of this instance and type,
/// saying what became of it.
pub fn lower(value: &Value, ty: &ResourceType, own: bool) -> Result<Val, ConvError> {
    LOWERING.with(|l| {
        let mut l = l.borrow_mut();
        let Some((instance, met)) = l.as_mut() else {
            return Err(ConvError::new(
                "resources cannot be passed outside an instance's call (funcs.instantiate)",
            ));
        };
        // (for the errors only)
        let want = || short(instance.name_of(ty).unwrap_or("resource"));
        let kind = if own { "own" } else { "borrow" };
        let Value::Handle(h) = value else {
            return Err(ConvError::new(expected(
                format_args!("{kind}<{}> handle", want()),
                value.type_name(),
            )));
        };
        if let Some(why) = h.dead() {
            return Err(ConvError::new(why));
        }
        if !Arc::ptr_eq(&h.instance, instance) {
            return Err(ConvError::new(format!(
                "{} belongs to another instance ({})",
                h.label(),
                h.instance.describe()
            )));
        }
        if h.resource.ty() != *ty {
            return Err(ConvError::new(expected(
                format_args!("{kind}<{}> handle", want()),
                h.label(),
            )));
        }
        met.push((h.clone(), own));
        Ok(Val::Resource(h.resource))
    })
}

/// A result's own resource as a new handle (`value::from_wit`).
///
/// # Errors
/// Outside an instance's call.
pub fn lift(resource: ResourceAny) -> Result<Value, ConvError> {
    LIFTING.with(|l| {
        let l = l.borrow();
        let Some(instance) = l.as_ref() else {
            return Err(ConvError::new(
                "resources cannot be returned to Lua outside an instance (funcs.instantiate)",
            ));
        };
        Ok(Value::Handle(new(instance, resource)))
    })
}

/// A new handle of `instance` for `resource`, an `own` one its call gave.
pub(super) fn new(instance: &Arc<Instance>, resource: ResourceAny) -> Arc<Handle> {
    {
        let (qualified, name) = instance.names_of(&resource.ty());
        let number = instance.handles.fetch_add(1, Ordering::Relaxed) + 1;
        instance.live_handles.fetch_add(1, Ordering::Relaxed);
        instance
            .pool
            .0
            .function()
            .handles()
            .fetch_add(1, Ordering::Relaxed);
        Arc::new(Handle {
            instance: instance.clone(),
            resource,
            qualified,
            name,
            number,
            fate: Mutex::new(Fate::Live),
            counted: std::sync::atomic::AtomicBool::new(true),
        })
    }
}

/// Refuses a call that passes one handle twice when either use moves it.
pub(super) fn check_passed(handles: &[(Arc<Handle>, bool)], export: &Export) -> Result<(), Error> {
    for (i, (h, own)) in handles.iter().enumerate() {
        let twice = handles[i + 1..]
            .iter()
            .any(|(other, other_own)| Arc::ptr_eq(h, other) && (*own || *other_own));
        if twice {
            return Err(Error::invalid(format!(
                "{}: {} is passed twice, and an own handle moves once",
                export.short(),
                h.label()
            ))
            .with(|d| d.entry = Some(h.instance.id().to_string())));
        }
    }
    Ok(())
}
