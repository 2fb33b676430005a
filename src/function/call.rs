//! The call paths: a blocking call on this thread, an async call on a worker's runtime
//! (bounded by its deadline and cancel even while the guest waits on the host), the direct
//! path (arguments lowered straight from where they are, results lifted onto a tape), and
//! instance reuse (`pool.reuse`) across them.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use wasmtime::component::{ComponentNamedList, Lower, Type};
use wasmtime::{AsContextMut, Store};

use super::{Args, CallCtx, CallOptions, Callee, Function, Target, Warm};
use crate::error::{Error, Kind, expected_args};
use crate::host::resource;
use crate::limits::Control;
use crate::sync::unpoison;
use crate::value::direct::{FlatResult, Image, ImageArgs, MemoryResult, Mismatch, Shape, Tape};
use crate::value::{self, ConvError, Output, Value};

impl Function {
    /// Calls a function that is not [async](Function::is_async) on this thread.
    ///
    /// # Errors
    /// See [`Function::run`].
    pub fn call(&self, args: &Args, options: &CallOptions) -> Result<Output, Error> {
        assert!(!self.asynchronous, "async entries run on a Tokio runtime");
        if let Args::Image(image) = args {
            return now(self.run_image(image, options));
        }
        let (mut store, instance, uses) = self.checkout(options)?;
        let (instance, result) = now(self.invoke(&mut store, instance, args, false));
        if let Some(instance) = instance
            && result.is_ok()
        {
            self.checkin(store, instance, uses);
        }
        result.map(Output::Value)
    }

    /// Calls the function in a fresh instance; async entries must be polled on a Tokio
    /// runtime.
    ///
    /// No result gives [`Value::Nil`], one result that value, several an array.
    ///
    /// # Errors
    /// `INVALID` for a wrong argument count or value (naming the argument and path);
    /// `TIMEOUT` past the deadline; `CANCELED`; `NOT_FOUND` for a missing required WASI
    /// variable; `INTERNAL` for traps, guest exits and instantiation failures.
    pub async fn run(&self, args: &Args, options: &CallOptions) -> Result<Output, Error> {
        if let Args::Image(image) = args {
            return self.run_image(image, options).await;
        }
        let timeout = options.timeout(&self.limits);
        let control = options.control.as_ref();
        let (mut store, instance, uses) = self.checkout(options)?;
        // A call that yields (on an HTTP service's threads) runs on a fiber even when the
        // function needs no runtime, so that its guest gives the thread back on epoch ticks.
        let (instance, result) = if self.asynchronous || options.yields {
            let call = self.invoke(&mut store, instance, args, true);
            self.bounded(call, timeout, control, |e| (None, Err(e)))
                .await
        } else {
            self.invoke(&mut store, instance, args, false).await
        };
        if let Some(instance) = instance
            && result.is_ok()
        {
            self.checkin(store, instance, uses);
        }
        result.map(Output::Value)
    }

    /// Calls with arguments read as an image on the caller's thread, on the direct path's
    /// typed call (`value::direct::image`).
    async fn run_image(&self, image: &Image, options: &CallOptions) -> Result<Output, Error> {
        let (args, count) = (ImageArgs(image), image.count());
        let tape = if self.asynchronous || options.yields {
            self.call_direct_async(args, count, options).await?
        } else {
            self.call_direct(args, count, options)?
        };
        // The image was read with this function's layout: it always fits.
        tape.map(Output::Tape).ok_or_else(|| {
            self.fail(Error::internal(
                "internal error: the arguments' image does not fit the parameters (a bug: please report it)",
            ))
        })
    }

    /// Calls on this thread with `args` (the direct path's arguments, read where they are:
    /// `value::direct::LuaArgs` reads the Lua stack), lifting the result onto a [`Tape`]
    /// (see `value::direct`).
    ///
    /// `Ok(None)`: an argument the direct path does not take, or a wrong count. Nothing of the
    /// call ran (the instance it may have started is dropped): make it on the general path.
    ///
    /// This function must [be direct](Function::is_direct); `count` is the number of
    /// arguments `args` holds.
    ///
    /// # Errors
    /// As [`Function::run`], but for argument errors (above).
    pub fn call_direct<A>(
        &self,
        args: A,
        count: usize,
        options: &CallOptions,
    ) -> Result<Option<Tape>, Error>
    where
        A: ComponentNamedList + Lower + Send + Sync,
    {
        let Some(shape) = self.direct_shape(count) else {
            return Ok(None);
        };
        let (mut store, instance, uses) = self.checkout(options)?;
        let instance = match instance {
            Some(instance) => instance,
            None => now(self.instantiate(&mut store))?,
        };
        let Callee::Component(func) = instance else {
            unreachable!("components make component instances")
        };
        match typed_call(&func, &mut store, args, shape) {
            Ok(tape) => {
                self.checkin(store, instance, uses);
                Ok(Some(tape))
            }
            Err(e) if e.is::<Mismatch>() => Ok(None),
            Err(e) => Err(self.trap(e, &store)),
        }
    }

    /// [`Function::call_direct`] for an [async](Function::is_async) entry (WASI), on a
    /// runtime this thread drives (an inline pool's): the same typed call made with
    /// `call_async`, within the call's deadline and cancel also while the guest waits on the
    /// host.
    ///
    /// # Errors
    /// As [`Function::call_direct`].
    pub async fn call_direct_async<A>(
        &self,
        args: A,
        count: usize,
        options: &CallOptions,
    ) -> Result<Option<Tape>, Error>
    where
        A: ComponentNamedList + Lower + Send + Sync,
    {
        let Some(shape) = self.direct_shape(count) else {
            return Ok(None);
        };
        let timeout = options.timeout(&self.limits);
        let control = options.control.as_ref();
        let (mut store, instance, uses) = self.checkout(options)?;
        let call = async {
            let instance = match instance {
                Some(instance) => instance,
                None => match self.instantiate(&mut store).await {
                    Ok(instance) => instance,
                    Err(e) => return (None, Err(e)),
                },
            };
            let Callee::Component(func) = instance else {
                unreachable!("components make component instances")
            };
            let result = match typed_call_async(&func, &mut store, args, shape).await {
                Ok(tape) => Ok(Some(tape)),
                Err(e) if e.is::<Mismatch>() => Ok(None),
                Err(e) => Err(self.trap(e, &store)),
            };
            (Some(instance), result)
        };
        let (instance, result) = self
            .bounded(call, timeout, control, |e| (None, Err(e)))
            .await;
        if let (Some(instance), Ok(Some(_))) = (instance, &result) {
            self.checkin(store, instance, uses);
        }
        result
    }

    /// The shape of a direct call's result; `None` for a wrong argument count, which the
    /// general path words.
    fn direct_shape(&self, count: usize) -> Option<Shape> {
        let Some(shape) = self.direct else {
            unreachable!("checked by is_direct")
        };
        (count == self.arity()).then_some(shape)
    }

    /// A warm instance with its store, limits armed again, or a new store and no instance;
    /// with the calls the instance served.
    fn checkout(
        &self,
        options: &CallOptions,
    ) -> Result<(Store<CallCtx>, Option<Callee>, usize), Error> {
        let timeout = options.timeout(&self.limits);
        let control = options.control.as_ref();
        let warm = match self.reuse {
            0 | 1 => None,
            _ => {
                let (warm, expired) = {
                    let mut cache = unpoison(self.warm.lock());
                    let expired = super::expire(&mut cache, self.warm_idle);
                    (cache.pop(), expired)
                };
                drop(expired);
                warm
            }
        };
        Ok(match warm {
            Some(Warm {
                mut store,
                instance,
                uses,
                ..
            }) => {
                store.data_mut().limiter.refused = false;
                store.data_mut().timeout = timeout;
                store.data_mut().control = control.cloned();
                self.limits
                    .arm(&mut store, timeout, control, options.yields);
                (store, Some(instance), uses)
            }
            None => (self.store(timeout, control, options.yields)?, None, 0),
        })
    }

    /// Keeps an instance after a call that ended well (a trap may leave it broken) while it
    /// has uses left and fewer than the pool's size are kept (a burst leaves no more).
    fn checkin(&self, mut store: Store<CallCtx>, instance: Callee, uses: usize) {
        // Requests the call left open end with it.
        store.data_mut().outgoing.finish();
        if uses + 1 < self.reuse {
            let warm = Warm {
                store,
                instance,
                uses: uses + 1,
                since: Instant::now(),
            };
            let refused = {
                let mut cache = unpoison(self.warm.lock());
                if cache.len() < self.warm_cap {
                    cache.push(warm);
                    None
                } else {
                    Some(warm)
                }
            };
            // Dropped outside the lock.
            drop(refused);
        }
    }

    /// Converts Lua-side values to this function's parameter types (on the caller's
    /// thread, so that a bad argument fails the call before it is queued).
    ///
    /// # Errors
    /// `INVALID`, naming the argument and the path inside it, or a wrong count.
    pub fn lower(&self, args: &[Value]) -> Result<Args, Error> {
        if args.len() != self.arity() {
            return Err(self.fail(Error::invalid(expected_args(self.arity(), args.len()))));
        }
        // Refused before the guest runs: a constructor must not run for nothing.
        if self.uses_resources {
            return Err(self.fail(Error::invalid(format!(
                "`{}` takes or returns resources, which live in an instance: call it on one made with funcs.instantiate",
                self.method
            ))));
        }
        // Resources Lua defines need the call's store: converted where the call runs.
        if self.lua_values {
            return Ok(Args::Values(args.to_vec()));
        }
        Ok(match &self.target {
            Target::Core { params, .. } => Args::Core(
                params
                    .iter()
                    .zip(args)
                    .enumerate()
                    .map(|(i, ((_, ty), v))| {
                        value::to_core(v, *ty).map_err(|e| self.arg_error(i, e))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Target::Component { params, .. } => Args::Component(
                params
                    .iter()
                    .zip(args)
                    .enumerate()
                    .map(|(i, ((_, ty), v))| value::to_wit(v, ty).map_err(|e| self.arg_error(i, e)))
                    .collect::<Result<_, _>>()?,
            ),
        })
    }

    /// Calls in `instance`, or in a new one: the instance (to keep) and the result;
    /// `asynchronous`: with `call_async` (required for async entries).
    async fn invoke(
        &self,
        store: &mut Store<CallCtx>,
        instance: Option<Callee>,
        args: &Args,
        asynchronous: bool,
    ) -> (Option<Callee>, Result<Value, Error>) {
        let instance = match instance {
            Some(i) => i,
            None => match self.instantiate(store).await {
                Ok(i) => i,
                Err(e) => return (None, Err(e)),
            },
        };
        let result = self.call_in(store, &instance, args, asynchronous).await;
        (Some(instance), result)
    }

    /// A new instance, with its export looked up.
    async fn instantiate(&self, store: &mut Store<CallCtx>) -> Result<Callee, Error> {
        self.instances.fetch_add(1, Ordering::Relaxed);
        let asynchronous = self.asynchronous;
        let instance = match &self.target {
            Target::Core { pre, export, .. } => {
                let instance = if asynchronous {
                    pre.instantiate_async(&mut *store).await
                } else {
                    pre.instantiate(&mut *store)
                };
                instance.map(|i| {
                    let export = i.get_module_export(&mut *store, export);
                    Callee::Core(
                        export
                            .and_then(wasmtime::Extern::into_func)
                            .expect("export checked at load"),
                    )
                })
            }
            Target::Component { pre, export, .. } => {
                let instance = if asynchronous {
                    pre.instantiate_async(&mut *store).await
                } else {
                    pre.instantiate(&mut *store)
                };
                instance.map(|i| {
                    Callee::Component(
                        i.get_func(&mut *store, export)
                            .expect("export checked at load"),
                    )
                })
            }
        };
        instance.map_err(|e| self.trap(e, store))
    }

    async fn call_in(
        &self,
        store: &mut Store<CallCtx>,
        instance: &Callee,
        args: &Args,
        asynchronous: bool,
    ) -> Result<Value, Error> {
        match (&self.target, instance, args) {
            (Target::Core { results, .. }, Callee::Core(func), Args::Core(vals)) => {
                // Core functions have a result or two: no allocation for them.
                let mut buf = [wasmtime::Val::I32(0); 2];
                let mut vec;
                let out = match buf.get_mut(..results.len()) {
                    Some(out) => out,
                    None => {
                        vec = vec![wasmtime::Val::I32(0); results.len()];
                        &mut vec[..]
                    }
                };
                if asynchronous {
                    func.call_async(&mut *store, vals, out).await
                } else {
                    func.call(&mut *store, vals, out)
                }
                .map_err(|e| self.trap(e, store))?;
                let values = out
                    .iter()
                    .zip(results)
                    .map(|(v, ty)| value::from_core(v, *ty));
                collect_results(values).map_err(|e| self.result_error(e))
            }
            (Target::Component { results, .. }, Callee::Component(func), Args::Component(vals)) => {
                let mut out = vec![wasmtime::component::Val::Bool(false); results.len()];
                if asynchronous {
                    func.call_async(&mut *store, vals, &mut out).await
                } else {
                    func.call(&mut *store, vals, &mut out)
                }
                .map_err(|e| self.trap(e, store))?;
                let values = out
                    .into_iter()
                    .zip(results)
                    .map(|(v, ty)| value::from_wit(v, ty));
                collect_results(values).map_err(|e| self.result_error(e))
            }
            (Target::Component { results, .. }, Callee::Component(func), Args::Values(values)) => {
                let reps = self.lua_resources.as_ref().expect("values only for these");
                // The instantiated types: resources Lua defines by their host types.
                let params: Vec<Type> = func.ty(&*store).params().map(|(_, ty)| ty).collect();
                let (vals, lent) = resource::converting(&mut store.as_context_mut(), reps, || {
                    params
                        .iter()
                        .zip(values)
                        .enumerate()
                        .map(|(i, (ty, v))| value::to_wit(v, ty).map_err(|e| self.arg_error(i, e)))
                        .collect::<Result<Vec<_>, _>>()
                });
                let mut out = vec![wasmtime::component::Val::Bool(false); results.len()];
                let called = match &vals {
                    Ok(vals) if asynchronous => func.call_async(&mut *store, vals, &mut out).await,
                    Ok(vals) => func.call(&mut *store, vals, &mut out),
                    Err(_) => Ok(()),
                };
                // The values lent as borrows go back (no `__drop`: they have no destructor).
                if called.is_ok() {
                    for any in lent {
                        let _ = if asynchronous {
                            any.resource_drop_async(&mut *store).await
                        } else {
                            any.resource_drop(&mut *store)
                        };
                    }
                }
                vals?;
                called.map_err(|e| self.trap(e, store))?;
                let (values, _) = resource::converting(&mut store.as_context_mut(), reps, || {
                    let values = out
                        .into_iter()
                        .zip(results)
                        .map(|(v, ty)| value::from_wit(v, ty));
                    collect_results(values)
                });
                values.map_err(|e| self.result_error(e))
            }
            _ => unreachable!("arguments and instances made by this function"),
        }
    }

    /// Runs `call` until it ends, its deadline passes or it is cancelled: a guest waiting on
    /// the host does not tick, so the deadline and cancellation also stop the wait itself.
    /// `stopped` makes the output for the error of a call stopped that way.
    pub(super) async fn bounded<T>(
        &self,
        call: impl Future<Output = T>,
        timeout: Option<u64>,
        control: Option<&Arc<Control>>,
        stopped: impl FnOnce(Error) -> T,
    ) -> T {
        let canceled = async {
            match control {
                Some(c) => c.canceled().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            done = call => done,
            () = sleep_for(timeout) => stopped(self.fail(self.timeout_error(timeout))),
            () = canceled => stopped(self.fail(Error::new(Kind::Canceled, "call canceled"))),
        }
    }
}

/// The output of a future of a function that is not async: without WASI nothing awaits, so
/// it is done after one poll, with no runtime.
// Inlined so that the future is built in place: a call would copy it into its frame.
#[inline(always)]
pub fn now<F: Future>(future: F) -> F::Output {
    match std::pin::pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("a call without async host functions never waits"),
    }
}

/// Resolves after `ms`, or never.
async fn sleep_for(ms: Option<u64>) {
    match ms {
        Some(ms) => tokio::time::sleep(std::time::Duration::from_millis(ms)).await,
        None => std::future::pending().await,
    }
}

/// No result is `nil`, one result is itself, several are one array.
fn collect_results(
    mut values: impl ExactSizeIterator<Item = Result<Value, ConvError>>,
) -> Result<Value, ConvError> {
    match values.len() {
        0 => Ok(Value::Nil),
        1 => values.next().expect("one value"),
        _ => values.collect::<Result<_, _>>().map(Value::Array),
    }
}

/// The typed call of the direct path: `args` lowered by the component's types, the result
/// lifted onto a tape as `shape` says.
fn typed_call<A, T>(
    func: &wasmtime::component::Func,
    store: &mut Store<T>,
    args: A,
    shape: Shape,
) -> wasmtime::Result<Tape>
where
    A: ComponentNamedList + Lower + Send + Sync,
{
    match shape {
        Shape::Unit => func
            .typed::<A, ()>(&*store)
            .and_then(|f| f.call(&mut *store, args))
            .map(|()| Tape::default()),
        Shape::Flat => func
            .typed::<A, FlatResult>(&*store)
            .and_then(|f| f.call(&mut *store, args))
            .map(|r| r.0),
        Shape::Memory => func
            .typed::<A, MemoryResult>(&*store)
            .and_then(|f| f.call(&mut *store, args))
            .map(|r| r.0),
    }
}

/// [`typed_call`] with `call_async` (an async entry's store).
async fn typed_call_async<A, T: Send>(
    func: &wasmtime::component::Func,
    store: &mut Store<T>,
    args: A,
    shape: Shape,
) -> wasmtime::Result<Tape>
where
    A: ComponentNamedList + Lower + Send + Sync,
{
    match shape {
        Shape::Unit => {
            let f = func.typed::<A, ()>(&*store)?;
            f.call_async(&mut *store, args)
                .await
                .map(|()| Tape::default())
        }
        Shape::Flat => {
            let f = func.typed::<A, FlatResult>(&*store)?;
            f.call_async(&mut *store, args).await.map(|r| r.0)
        }
        Shape::Memory => {
            let f = func.typed::<A, MemoryResult>(&*store)?;
            f.call_async(&mut *store, args).await.map(|r| r.0)
        }
    }
}
