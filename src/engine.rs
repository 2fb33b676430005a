//! The wasmtime [`Engine`]s every entry of the process compiles and runs on, and the epoch
//! ticker that drives call deadlines.
//!
//! There are two engines with the same settings but one: the fuel engine instruments code to
//! count instructions. Only entries with `limits.max_fuel` are compiled for it, so entries
//! without a fuel budget do not pay for the counting. Sharing engines lets entries with the
//! same bytes share compiled code (`compile`) and keeps one set of compiler threads.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::sync::unpoison;

/// The wasmtime we run on (kept in step with `Cargo.toml`).
pub const WASMTIME_VERSION: &str = "48.0.8";

/// How often the ticker bumps the epoch; deadlines are counted in these ticks.
pub const TICK: Duration = Duration::from_millis(1);

/// The process-wide engine, made on first use.
pub fn engine() -> &'static Engine {
    engine_for(false)
}

/// The engine for entries with (`fuel = true`) or without a fuel budget.
pub fn engine_for(fuel: bool) -> &'static Engine {
    let cell = if fuel { &FUEL } else { &PLAIN };
    cell.get_or_init(|| {
        let wanted = std::env::var("FUNCS_ALLOCATOR").unwrap_or_default();
        if wanted != "on-demand" {
            match Engine::new(&config(fuel, true)) {
                Ok(engine) => {
                    let _ = ALLOCATOR.set(Allocator::Pooling);
                    return engine;
                }
                Err(e) => {
                    let _ = ALLOCATOR.set(Allocator::OnDemand(Some(format!("{e:#}"))));
                }
            }
        } else {
            let _ = ALLOCATOR.set(Allocator::OnDemand(None));
        }
        Engine::new(&config(fuel, false)).expect("the engine configuration is valid")
    })
}

static PLAIN: OnceLock<Engine> = OnceLock::new();
static FUEL: OnceLock<Engine> = OnceLock::new();

/// Instances alive in the pooling allocator of the engines made so far: `(core,
/// component)`, `None` with on-demand allocation (`funcs.engine()`: what holds slots).
pub fn live_instances() -> Option<(u64, u64)> {
    let mut live = None;
    for engine in [PLAIN.get(), FUEL.get()].into_iter().flatten() {
        let metrics = engine.pooling_allocator_metrics()?;
        let (core, component) = live.unwrap_or((0, 0));
        live = Some((
            core + metrics.core_instances(),
            component + metrics.component_instances(),
        ));
    }
    live
}

/// The most elements a guest table may grow to (`table.grow` beyond it gives -1).
pub const MAX_TABLE_ELEMENTS: usize = 100_000;

/// How instances get their memory, tables and stacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allocator {
    /// Slots reserved up front and reused: cheap instantiation.
    Pooling,
    /// Mapped per instance: chosen by `FUNCS_ALLOCATOR=on-demand` (`None`), or because the
    /// pool could not be reserved (the reason), e.g. under a virtual memory limit.
    OnDemand(Option<String>),
}

static ALLOCATOR: OnceLock<Allocator> = OnceLock::new();

/// The allocator in use (the engine is made if it was not yet).
pub fn allocator() -> &'static Allocator {
    engine();
    ALLOCATOR.get().expect("set when the engine was made")
}

/// The engine settings; `pooling` reserves the instance pool.
pub fn config(fuel: bool, pooling: bool) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // Deadlines: the ticker bumps the epoch, each call arms its own deadline.
    config.epoch_interruption(true);
    config.consume_fuel(fuel);
    if pooling {
        let mut pool = PoolingAllocationConfig::default();
        // Large guests (CPython components) have big tables and instances.
        pool.table_elements(MAX_TABLE_ELEMENTS)
            .max_core_instance_size(8 << 20)
            .max_component_instance_size(8 << 20)
            .max_tables_per_module(4)
            .max_memories_per_module(2);
        // Memories are reset by unmapping (wasmtime's default): keeping 1 MiB resident and
        // zeroing it instead made a `compute` call twice as slow.
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// Keeps the epoch ticker running while held; the last guard dropped stops and joins it.
///
/// The thread must not outlive the module state: a Lua state that closes unloads the shared
/// library, and a thread still running its code would crash the process.
pub struct TickerGuard(());

struct Ticker {
    holders: usize,
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

static TICKER: Mutex<Option<Ticker>> = Mutex::new(None);

impl TickerGuard {
    /// Starts the ticker if no guard holds it yet.
    ///
    /// # Errors
    /// `INTERNAL` when its thread cannot be started (the process is out of threads).
    pub fn acquire() -> crate::error::Result<TickerGuard> {
        let mut ticker = unpoison(TICKER.lock());
        match ticker.as_mut() {
            Some(t) => t.holders += 1,
            None => {
                let (stop, stopped) = mpsc::channel::<()>();
                let thread = std::thread::Builder::new()
                    .name("funcs-epoch".into())
                    .spawn(move || {
                        // The epoch counts milliseconds since the start: a late wake-up
                        // catches up, so deadlines do not drift with the sleep's slack.
                        let start = Instant::now();
                        let mut ticks: u128 = 0;
                        loop {
                            let next = start + TICK * (ticks as u32 + 1);
                            let wait = next.saturating_duration_since(Instant::now());
                            if let Err(RecvTimeoutError::Disconnected) = stopped.recv_timeout(wait)
                            {
                                break;
                            }
                            let due = start.elapsed().as_nanos() / TICK.as_nanos();
                            while ticks < due {
                                // Only engines in use: the fuel one may never be made.
                                for engine in [PLAIN.get(), FUEL.get()].into_iter().flatten() {
                                    engine.increment_epoch();
                                }
                                ticks += 1;
                            }
                        }
                    })
                    .map_err(|e| {
                        crate::error::Error::internal(format!(
                            "cannot start the epoch ticker thread: {e}"
                        ))
                    })?;
                *ticker = Some(Ticker {
                    holders: 1,
                    stop,
                    thread,
                });
            }
        }
        Ok(TickerGuard(()))
    }
}

impl Drop for TickerGuard {
    fn drop(&mut self) {
        let mut ticker = unpoison(TICKER.lock());
        if let Some(t) = ticker.as_mut() {
            t.holders -= 1;
            if t.holders == 0 {
                let t = ticker.take().expect("checked above");
                drop(t.stop);
                let _ = t.thread.join();
            }
        }
    }
}
