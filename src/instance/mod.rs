//! Instances a caller holds (`funcs.instantiate`, SPEC section 15) and the resource handles
//! their calls give out: one call at a time per instance, the handles' fates (live, dropped,
//! moved), the drops the collector defers to the instance's next call, the end of an
//! instance on its first failure, and the caps. Lua-free: the userdata are `lua/instance.rs`;
//! the wasmtime side is `function/live.rs`.

mod handle;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use wasmtime::component::{ResourceAny, ResourceType};

pub use self::handle::{Handle, lift, lifting, lower, lowering};
use crate::error::{Error, Kind};
use crate::function::{CallOptions, Function, Lifted, Live};
use crate::pool::{self, Completion};
use crate::sync::unpoison;
use crate::value::Value;
use crate::value::direct::{LuaArgs, Tape};

/// Instances alive in the process at most, whatever their entries: half of the pooling
/// allocator's 1,000 instance slots, so that calls of every pool keep the other half.
pub const MAX_LIVE: usize = 500;

/// The default of `limits.max_instances`.
pub const DEFAULT_MAX_INSTANCES: usize = 64;

/// Instances alive now (open, or unreachable and not yet closed).
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Instances numbered in the process, for `tostring` and messages.
static NUMBERS: AtomicU64 = AtomicU64::new(0);

/// Instances the collector found unreachable while open: closed at the next call into funcs
/// ([`bury`]), never inside a finalizer.
static UNREACHABLE: Mutex<Vec<Held>> = Mutex::new(Vec::new());

/// The result of [`Instance::call_direct`].
pub enum Returned {
    Tape(Tape),
    /// A new handle, `own`.
    Handle(Arc<Handle>),
}

/// Whether [`UNREACHABLE`] may hold instances (set and cleared under its lock).
static UNREACHABLE_ANY: AtomicBool = AtomicBool::new(false);

/// A live instance of an entry.
pub struct Instance {
    id: String,
    number: u64,
    /// The entry's pool as it was when the instance was made (a reload leaves it so).
    pool: Arc<pool::Handle>,
    /// Its calls' options (`funcs.instantiate`'s `timeout`), destructors included.
    options: CallOptions,
    state: Mutex<State>,
    /// Own handles the collector found unreachable: dropped before the next call.
    pending: Mutex<Vec<ResourceAny>>,
    /// Whether `pending` may hold handles (set and cleared under its lock).
    any_pending: AtomicBool,
    /// The resource types the component exports, by name.
    names: Vec<(ResourceType, Arc<str>, Arc<str>)>,
    /// Handles numbered so far.
    handles: AtomicU64,
    /// Handles alive now.
    live_handles: AtomicUsize,
    /// The completion of the last call [`Instance::queue`] queued (the next waits for it).
    tail: Mutex<Option<Arc<Completion>>>,
    /// Whether `tail` may hold a call not completed (set and cleared under its lock).
    queueing: AtomicBool,
    /// Whether the component imports resources Lua defines (arguments read by type).
    lua_types: bool,
}

enum State {
    Open(Held),
    /// A queued call runs on a worker, which took the store.
    Busy,
    /// Failed: the error that ended it.
    Ended(Error),
    Closed,
}

/// An open store, counted against the caps until dropped.
struct Held {
    live: Box<Live>,
    function: Arc<Function>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.function.opened().fetch_sub(1, Ordering::AcqRel);
        LIVE.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An instance counted against both caps before it exists: given back if it never does.
struct Reserved(Arc<Function>);

impl Drop for Reserved {
    fn drop(&mut self) {
        self.0.opened().fetch_sub(1, Ordering::AcqRel);
        LIVE.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The refusal of an instance's work inside an inline call with WASI or host imports on this
/// thread (its runtime drives the thread): nothing ran, the instance stays as it was.
/// `what` completes "failed to": `instantiate `app:counter``, `call instance #1 of ...`.
fn nested(id: &str, what: &str) -> Error {
    Error::invalid(format!(
        "failed to {what} from a host function: an entry with WASI or host imports cannot run inside another such call on the same thread"
    ))
    .with(|d| d.entry = Some(id.to_string()))
}

impl Instance {
    /// A new instance of `pool`'s entry.
    ///
    /// # Errors
    /// `UNAVAILABLE` past `limits.max_instances` or [`MAX_LIVE`]; the instantiation's.
    pub fn open(pool: Arc<pool::Handle>, options: &CallOptions) -> Result<Arc<Instance>, Error> {
        bury();
        let function = pool.0.function().clone();
        let id = function.id().to_string();
        let cap = function
            .limits()
            .max_instances
            .unwrap_or(DEFAULT_MAX_INSTANCES);
        let unavailable = |what: String| {
            Err(Error::new(
                Kind::Unavailable,
                format!("failed to instantiate `{id}`: {what}"),
            )
            .with(|d| d.entry = Some(id.clone())))
        };
        // Counted from here until `reserved` (then the `Held`) is dropped.
        let reserved = Reserved(function.clone());
        if function.opened().fetch_add(1, Ordering::AcqRel) >= cap {
            function.opened().fetch_sub(1, Ordering::AcqRel);
            std::mem::forget(reserved);
            return unavailable(format!(
                "{cap} instances of it are open (limits.max_instances); close one"
            ));
        }
        if LIVE.fetch_add(1, Ordering::AcqRel) >= MAX_LIVE {
            return unavailable(format!(
                "{MAX_LIVE} instances are open in this process; close one"
            ));
        }
        if function.is_async() && pool::in_block_on() {
            return Err(nested(&id, &format!("instantiate `{id}`")));
        }
        let opened = run(&pool, function.open(options));
        let mut live = match opened {
            Ok(live) => live,
            Err(e) => {
                return Err(e
                    .context("failed to instantiate")
                    .with(|d| d.entry = Some(id.clone())));
            }
        };
        let names = live
            .resource_names(&function)
            .into_iter()
            .map(|(ty, qualified)| {
                let short = Arc::from(handle::short(&qualified));
                (ty, Arc::from(qualified), short)
            })
            .collect();
        let lua_types = function.lua_resources().is_some();
        std::mem::forget(reserved);
        Ok(Arc::new(Instance {
            id,
            number: NUMBERS.fetch_add(1, Ordering::Relaxed) + 1,
            pool,
            options: options.clone(),
            state: Mutex::new(State::Open(Held {
                live: Box::new(live),
                function,
            })),
            pending: Mutex::new(Vec::new()),
            any_pending: AtomicBool::new(false),
            names,
            handles: AtomicU64::new(0),
            live_handles: AtomicUsize::new(0),
            tail: Mutex::new(None),
            queueing: AtomicBool::new(false),
            lua_types,
        }))
    }

    /// The entry ID.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `` `id` #n``, for messages.
    pub fn describe(&self) -> String {
        format!("`{}` #{}", self.id, self.number)
    }

    /// The entry's pool (for its runtime and host calls).
    pub fn pool(&self) -> &Arc<pool::Handle> {
        &self.pool
    }

    /// `"open"`, `"closed"`, `"ended"` (failed) or `"running"` (asked from inside its own
    /// call: never waits for the lock that call holds).
    pub fn status(&self) -> &'static str {
        match self.state.try_lock() {
            Ok(state) => match &*state {
                State::Open(_) => "open",
                State::Busy => "running",
                State::Ended(_) => "ended",
                State::Closed => "closed",
            },
            Err(TryLockError::Poisoned(_)) => "ended",
            Err(TryLockError::WouldBlock) => "running",
        }
    }

    /// Handles alive now.
    pub fn live_handles(&self) -> usize {
        self.live_handles.load(Ordering::Relaxed)
    }

    /// Calls `export` with `args` (handles among them are lent or moved as their types say).
    ///
    /// # Errors
    /// `INVALID` for a closed or ended instance, a re-entry from a host function, an unknown
    /// export, or arguments (naming them; the instance stays); the call's own failure, which
    /// ends the instance.
    pub fn call(
        self: &Arc<Self>,
        export: &str,
        args: &[Value],
        options: &CallOptions,
    ) -> Result<Value, Error> {
        let mut state = self.enter(&|| "call".into())?;
        let held = self.open_in(&mut state)?;
        let result = run(&self.pool, async {
            Ok(self.call_in(held, export, args, options).await)
        })?;
        result.map_err(|(e, ends)| {
            if ends {
                *state = State::Ended(e.clone());
            }
            e
        })
    }

    /// [`Instance::call`] on the direct path (`value::direct`), for an entry without host
    /// functions or resources Lua defines: `this`, a method's handle; `args` makes the other
    /// arguments from the Lua stack slots it may use (`None`: no room). `Ok(None)`: the call
    /// is for the general path (a queued call runs, an argument or handle it does not take, a
    /// wrong count); nothing ran, the instance is as it was.
    ///
    /// # Errors
    /// As [`Instance::call`], but for what the general path words (above).
    pub fn call_direct(
        self: &Arc<Self>,
        export: &[u8],
        this: Option<&Handle>,
        count: usize,
        args: impl FnOnce(usize) -> Option<LuaArgs>,
        handles: bool,
        options: &CallOptions,
    ) -> Result<Option<Returned>, Error> {
        let function = self.pool.0.function();
        if function.has_hosts() || function.lua_resources().is_some() || self.queued().is_some() {
            return Ok(None);
        }
        bury_any();
        let mut state = self.enter(&|| "call".into())?;
        let Ok(held) = self.open_in(&mut state) else {
            return Ok(None);
        };
        let (live, function) = (&mut held.live, &held.function);
        let Some(export) = live.export_bytes(function, export) else {
            return Ok(None);
        };
        let Some(direct) = export.direct().filter(|d| handles || !d.owns()) else {
            return Ok(None);
        };
        let this = match (this, direct.method) {
            (None, false) => None,
            (Some(h), true) if h.usable_in(self, &export.params()[0].1) => Some(h.resource()),
            _ => return Ok(None),
        };
        if count + usize::from(direct.method) != export.params().len() {
            return Ok(None);
        }
        let Some(rest) = args(direct.stack) else {
            return Ok(None);
        };
        let args = rest.after(this);
        let result = if function.is_async() {
            let call = live.call_direct_async(function, direct, args, options);
            self.pool.0.block_on(async { Ok(call.await) })?
        } else {
            live.call_direct(function, direct, args, options)
        };
        match result {
            Ok(Some(Lifted::Tape(tape))) => Ok(Some(Returned::Tape(tape))),
            Ok(Some(Lifted::Own(resource))) => {
                Ok(Some(Returned::Handle(handle::new(self, resource))))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                *state = State::Ended(e.clone());
                Err(e)
            }
        }
    }

    /// A call in `held`'s store; its error says whether it ends the instance (a failure once
    /// the guest ran, a result with no Lua form too; not an argument refused before).
    async fn call_in(
        self: &Arc<Self>,
        held: &mut Held,
        export: &str,
        args: &[Value],
        options: &CallOptions,
    ) -> Result<Value, (Error, bool)> {
        let before = |e| (e, false);
        let (live, function) = (&mut held.live, &held.function);
        let export = live.export(function, export).map_err(before)?;
        let (lowered, handles) =
            lowering(self, || live.lower(function, &export, args)).map_err(before)?;
        handle::check_passed(&handles, &export).map_err(before)?;
        // From here the guest runs: the own handles passed are its.
        for (h, own) in &handles {
            if *own {
                h.moved(&export);
            }
        }
        live.call(function, &export, &lowered, options)
            .await
            .and_then(|results| lifting(self, || live.lift(function, &export, results)))
            .map_err(|e| (e, true))
    }

    /// The WIT types of the parameters of `export` when they hold resources Lua defines (SPEC
    /// section 15: the Lua side reads those arguments by type), with the type numbers of
    /// those resources; `None` otherwise, or when the export cannot be called (the call says
    /// why).
    pub fn lua_params(
        &self,
        export: &str,
    ) -> Option<(Vec<wasmtime::component::Type>, Arc<crate::host::Reps>)> {
        let mut state = self.enter(&|| "call".into()).ok()?;
        let held = self.open_in(&mut state).ok()?;
        let reps = held.function.lua_resources()?.clone();
        let export = held.live.export(&held.function, export).ok()?;
        let types: Vec<_> = export.params().iter().map(|(_, ty)| ty.clone()).collect();
        let lua = |r: &ResourceType| reps.type_of(r).is_some();
        types
            .iter()
            .any(|ty| crate::value::holds_resource_where(ty, &lua))
            .then_some((types, reps))
    }

    /// The class of resource `name` exported by the instance.
    ///
    /// # Errors
    /// As [`Instance::call`] for the instance; `INVALID` for a resource not exported.
    pub fn class(&self, name: &str) -> Result<crate::function::Class, Error> {
        let mut state = self.enter(&|| "read a resource class of".into())?;
        let held = self.open_in(&mut state)?;
        held.live.class(&held.function, name)
    }

    /// Runs the destructor of `resource` now (after the running call, if any).
    fn drop_resource(&self, resource: ResourceAny, what: &dyn Fn() -> String) -> Result<(), Error> {
        let mut state = self.enter(what)?;
        let State::Open(held) = &mut *state else {
            // Its instance ended: the handle ended with it.
            return Ok(());
        };
        let result = if held.function.is_async() {
            run(
                &self.pool,
                held.live
                    .drop_resource(&held.function, resource, &self.options),
            )
        } else {
            held.live
                .drop_resource_now(&held.function, resource, &self.options)
        };
        if let Err(e) = &result {
            *state = State::Ended(e.clone());
        }
        result
    }

    /// Ends the instance (no guest destructors run); closing twice does nothing.
    ///
    /// # Errors
    /// `INVALID` from a host function of the instance's own running call.
    pub fn close(&self) -> Result<(), Error> {
        let mut state = self.enter(&|| "close".into())?;
        let old = std::mem::replace(&mut *state, State::Closed);
        if let State::Ended(e) = old {
            // A failed instance stays failed (its error says more than "closed").
            *state = State::Ended(e);
        }
        unpoison(self.pending.lock()).clear();
        Ok(())
    }

    /// The instance's state, locked: `INVALID` when a host function of its own running call
    /// asks (it would wait for itself). `what` completes "failed to": `call`, `drop counter
    /// #3 of`.
    /// (made only for an error).
    fn enter(&self, what: &dyn Fn() -> String) -> Result<MutexGuard<'_, State>, Error> {
        if self.pool.0.function().is_async() && pool::in_block_on() {
            return Err(nested(
                &self.id,
                &format!("{} instance {}", what(), self.describe()),
            ));
        }
        match self.state.try_lock() {
            Ok(state) => Ok(state),
            Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
            Err(TryLockError::WouldBlock) => Err(Error::invalid(format!(
                "failed to {} instance {} from inside its own running call (a host function called back into it)",
                what(),
                self.describe()
            ))
            .with(|d| d.entry = Some(self.id.clone()))),
        }
    }

    /// The open store, with the drops the collector deferred done first.
    fn open_in<'s>(&self, state: &'s mut State) -> Result<&'s mut Held, Error> {
        if let State::Open(held) = state {
            for resource in self.take_pending() {
                let result = run(
                    &self.pool,
                    held.live
                        .drop_resource(&held.function, resource, &self.options),
                );
                if let Err(e) = result {
                    *state = State::Ended(e);
                    break;
                }
            }
        }
        match state {
            State::Open(held) => Ok(held),
            other => Err(self.unusable(other)),
        }
    }

    /// The own handles the collector found unreachable since the last call.
    fn take_pending(&self) -> Vec<ResourceAny> {
        if !self.any_pending.load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut pending = unpoison(self.pending.lock());
        self.any_pending.store(false, Ordering::Release);
        std::mem::take(&mut *pending)
    }

    /// Why an instance not open cannot be used.
    fn unusable(&self, state: &State) -> Error {
        match state {
            State::Ended(e) => self.ended(e),
            State::Closed => Error::invalid(format!("instance {} is closed", self.describe()))
                .with(|d| d.entry = Some(self.id.clone())),
            State::Open(_) | State::Busy => Error::invalid(format!(
                "failed to use instance {} from inside its own running call (a host function called back into it)",
                self.describe()
            ))
            .with(|d| d.entry = Some(self.id.clone())),
        }
    }

    /// Whether `inst:async` queues its calls (on the entry's workers), rather than making
    /// them at once on the caller's thread (an `inline` pool).
    pub fn queues(&self) -> bool {
        !self.pool.0.on_caller()
    }

    /// Whether its calls' arguments are read by the export's types (the component imports
    /// resources Lua defines): [`Instance::lua_params`] needs the open store for them.
    pub fn typed_args(&self) -> bool {
        self.lua_types
    }

    /// The completion of the last call `inst:async` queued, while it runs or waits.
    pub fn queued(&self) -> Option<Arc<Completion>> {
        if !self.queueing.load(Ordering::Acquire) {
            return None;
        }
        let mut tail = unpoison(self.tail.lock());
        match tail.as_ref() {
            Some(done) if !done.is_complete() => Some(done.clone()),
            _ => {
                *tail = None;
                self.queueing.store(false, Ordering::Release);
                None
            }
        }
    }

    /// Queues a call of `export` on the entry's pool, to run after those queued before it
    /// (SPEC section 15: `inst:async`), completing `done`; `false` when the pool runs calls
    /// on the caller's thread (nothing was queued: call it now).
    ///
    /// # Errors
    /// As the pool's `submit` (`UNAVAILABLE` when it was shut down).
    pub fn queue(
        self: &Arc<Self>,
        export: String,
        args: Vec<Value>,
        done: Arc<Completion>,
    ) -> Result<bool, Error> {
        let mut tail = unpoison(self.tail.lock());
        let before = tail.clone();
        let this = self.clone();
        let task: pool::Task = Box::new(move |_, options| {
            Box::pin(async move {
                if let Some(before) = before {
                    before.finished().await;
                }
                this.call_queued(&export, &args, &options).await
            })
        });
        let queued = self
            .pool
            .0
            .submit_task(task, self.options.clone(), done.clone())?
            .is_some();
        if queued {
            *tail = Some(done);
            self.queueing.store(true, Ordering::Release);
        }
        Ok(queued)
    }

    /// A queued call, on a worker: as [`Instance::call`], with the store taken out of the
    /// state while it runs (so no lock is held across the call).
    async fn call_queued(
        self: &Arc<Self>,
        export: &str,
        args: &[Value],
        options: &CallOptions,
    ) -> Result<Value, Error> {
        let mut held = {
            let mut state = unpoison(self.state.lock());
            match std::mem::replace(&mut *state, State::Busy) {
                State::Open(held) => held,
                other => {
                    let e = self.unusable(&other);
                    *state = other;
                    return Err(e);
                }
            }
        };
        // The error that ends the instance, if one does.
        let mut ended = None;
        let result = async {
            for resource in self.take_pending() {
                let dropped = held
                    .live
                    .drop_resource(&held.function, resource, &self.options)
                    .await;
                if let Err(e) = dropped {
                    let refused = self.ended(&e);
                    ended = Some(e);
                    return Err(refused);
                }
            }
            self.call_in(&mut held, export, args, options)
                .await
                .map_err(|(e, ends)| {
                    if ends {
                        ended = Some(e.clone());
                    }
                    e
                })
        }
        .await;
        let mut state = unpoison(self.state.lock());
        // (closed meanwhile by funcs.shutdown: the store ends here)
        if matches!(*state, State::Busy) {
            *state = match ended {
                Some(e) => State::Ended(e),
                None => State::Open(held),
            };
        }
        result
    }

    /// The error of a call after the instance failed.
    fn ended(&self, e: &Error) -> Error {
        Error::invalid(format!(
            "instance {} ended when a call failed: {}",
            self.describe(),
            e.message()
        ))
        .with(|d| d.entry = Some(self.id.clone()))
    }

    /// Why a handle of this instance is dead with it, if it is.
    fn dead(&self) -> Option<String> {
        match &*self.state.try_lock().ok()? {
            State::Open(_) | State::Busy => None,
            State::Ended(e) => Some(format!(
                "its instance {} ended when a call failed: {}",
                self.describe(),
                e.message()
            )),
            State::Closed => Some(format!("its instance {} was closed", self.describe())),
        }
    }

    /// The name of an exported resource type, as its handles give it
    /// ([`Handle::qualified`]): `resource` for one it does not export.
    pub fn resource_name(&self, ty: &ResourceType) -> &str {
        self.name_of(ty).unwrap_or("resource")
    }

    /// The name of an exported resource type.
    fn name_of(&self, ty: &ResourceType) -> Option<&str> {
        self.names
            .iter()
            .find(|(t, ..)| t == ty)
            .map(|(_, n, _)| &**n)
    }

    /// The name of a resource type and its short name, as its handles give them: `resource`
    /// for one it does not export.
    fn names_of(&self, ty: &ResourceType) -> (Arc<str>, Arc<str>) {
        match self.names.iter().find(|(t, ..)| t == ty) {
            Some((_, qualified, short)) => (qualified.clone(), short.clone()),
            None => (Arc::from("resource"), Arc::from("resource")),
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let state = std::mem::replace(unpoison(self.state.get_mut()), State::Closed);
        if let State::Open(held) = state {
            let mut unreachable = unpoison(UNREACHABLE.lock());
            unreachable.push(held);
            UNREACHABLE_ANY.store(true, Ordering::Release);
        }
    }
}

/// Held while the instances taken from [`UNREACHABLE`] are closed: a `bury` on another
/// thread waits for them, so every instance found unreachable before a `bury` returns is
/// closed when it returns (Lua states of one process share the list).
static BURYING: Mutex<()> = Mutex::new(());

/// Closes the instances the collector found unreachable (see [`UNREACHABLE`]).
pub fn bury() {
    let _closing = unpoison(BURYING.lock());
    let dead = {
        let mut unreachable = unpoison(UNREACHABLE.lock());
        UNREACHABLE_ANY.store(false, Ordering::Release);
        std::mem::take(&mut *unreachable)
    };
    drop(dead);
}

/// [`bury`] when the collector found instances unreachable since the last one.
fn bury_any() {
    if UNREACHABLE_ANY.load(Ordering::Acquire) {
        bury();
    }
}

/// Instances alive in the process now.
pub fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Runs an instance's call to its end on this thread: on the pool's runtime for an entry
/// with WASI, right away otherwise.
fn run<T>(pool: &pool::Handle, call: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
    if pool.0.function().is_async() {
        pool.0.block_on(call)
    } else {
        crate::function::now(call)
    }
}
