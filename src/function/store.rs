//! The store of one call: its data ([`CallCtx`]: resources, the memory limiter, the WASI and
//! wasi:http contexts and their views, the outgoing-request hooks) and how a function makes
//! one with its limits armed.

use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::{Function, Target};
use crate::engine::engine_for;
use crate::error::Error;
use crate::limits::{Control, MemoryLimiter};
use crate::outgoing::Outgoing;

/// What one call may make the host allocate for dynamic values moved between host and
/// guest (wasmtime's "hostcall fuel", about bytes of `Val`s): 1 GiB, some 32 million list
/// elements.
pub const HOSTCALL_FUEL: usize = 1 << 30;

/// Per-call store data.
pub struct CallCtx {
    pub(super) table: ResourceTable,
    pub(super) limiter: MemoryLimiter,
    /// WASIp2, for components with granted interfaces (boxed: a store without WASI is made
    /// faster when it is small).
    pub(super) wasi: Option<Box<WasiCtx>>,
    /// WASIp1, for core modules importing `wasi_snapshot_preview1`.
    pub(super) p1: Option<Box<WasiP1Ctx>>,
    /// This call's deadline in ms, for the error message.
    pub(super) timeout: Option<u64>,
    /// wasi:http, for `wasi:http/incoming-handler` components and outgoing requests.
    pub(super) http: WasiHttpCtx,
    /// Outgoing requests under the entry's `http_client` policy.
    pub(super) outgoing: Outgoing,
    /// This call's cancel, for host calls to drop what nobody waits for.
    pub(super) control: Option<Arc<Control>>,
    /// Own handles of resources Lua defines the guest holds (given back when the store ends).
    pub(super) ledger: crate::host::Ledger,
}

impl crate::host::HostState for CallCtx {
    fn control(&self) -> Option<&Arc<Control>> {
        self.control.as_ref()
    }

    fn ledger(&mut self) -> &mut crate::host::Ledger {
        &mut self.ledger
    }
}

impl CallCtx {
    pub(super) fn p1(&mut self) -> &mut WasiP1Ctx {
        self.p1
            .as_mut()
            .expect("WASIp1 is linked only with its context")
    }
}

impl WasiHttpView for CallCtx {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outgoing,
        }
    }
}

impl WasiView for CallCtx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: self
                .wasi
                .as_mut()
                .expect("WASI is linked only with its context"),
            table: &mut self.table,
        }
    }
}

impl Function {
    /// A store for one call: limits armed (see `Limits::arm` for `yields`), WASI context
    /// made (env read now).
    pub(super) fn store(
        &self,
        timeout: Option<u64>,
        control: Option<&Arc<Control>>,
        yields: bool,
    ) -> Result<Store<CallCtx>, Error> {
        let (mut wasi, mut p1) = (None, None);
        match &self.target {
            Target::Core { p1: true, .. } => {
                p1 = Some(Box::new(
                    self.sandbox
                        .wasi
                        .builder(&self.id)
                        .map_err(|e| self.fail(e))?
                        .build_p1(),
                ))
            }
            // Entries whose only imports are host interfaces need no WASI context.
            Target::Component { handler, .. }
                if !self.sandbox.granted.is_empty() || handler.is_some() =>
            {
                wasi = Some(Box::new(
                    self.sandbox
                        .wasi
                        .context(&self.id)
                        .map_err(|e| self.fail(e))?,
                ))
            }
            _ => {}
        }
        let ctx = CallCtx {
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(self.limits.max_memory_bytes),
            wasi,
            p1,
            timeout,
            http: WasiHttpCtx::new(),
            outgoing: Outgoing::new(self.sandbox.http_client.clone()),
            control: control.cloned(),
            ledger: crate::host::Ledger::default(),
        };
        let mut store = Store::new(engine_for(self.limits.max_fuel.is_some()), ctx);
        // The pooling allocator bounds tables itself; on-demand stores need the limiter's
        // table cap even without a memory limit.
        if self.limits.max_memory_bytes.is_some()
            || *crate::engine::allocator() != crate::engine::Allocator::Pooling
        {
            store.limiter(|ctx| &mut ctx.limiter);
        }
        // wasmtime's default (128 MiB of `Val`s, about 4 million list elements) would fail a
        // 4 MiB `list<u8>` on the general path only; a bound stays, so that a guest cannot make
        // the host allocate without limit.
        store.set_hostcall_fuel(HOSTCALL_FUEL);
        self.limits.arm(&mut store, timeout, control, yields);
        Ok(store)
    }
}
