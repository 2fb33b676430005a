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
                        let mut ticks: u64 = 0;
                        loop {
                            let wait = wait_for_tick(ticks, start.elapsed());
                            if let Err(RecvTimeoutError::Disconnected) = stopped.recv_timeout(wait)
                            {
                                break;
                            }
                            let due = ticks_due(start.elapsed());
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

/// How long the ticker sleeps before tick `ticks + 1` once `elapsed` has passed since it
/// started (zero when that tick is already due).
///
/// Counted in u64 ticks and u128 nanoseconds: no uptime wraps it (a u32 count of milliseconds
/// wrapped after 49.7 days and made the ticker spin), and the far end saturates.
fn wait_for_tick(ticks: u64, elapsed: Duration) -> Duration {
    let nanos = TICK.as_nanos().saturating_mul(u128::from(ticks) + 1);
    let next = u64::try_from(nanos / 1_000_000_000).map_or(Duration::MAX, |secs| {
        Duration::new(secs, (nanos % 1_000_000_000) as u32)
    });
    next.saturating_sub(elapsed)
}

/// How many ticks are due once `elapsed` has passed since the ticker started (saturating).
fn ticks_due(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_nanos() / TICK.as_nanos()).unwrap_or(u64::MAX)
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

#[cfg(test)]
mod tests {
    use super::*;

    const WRAP: u64 = 1 << 32;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_ticker_waits_one_tick_at_any_uptime() {
        // Just after a tick, the next is one tick away: at the start, at 2^32 ms (49.7
        // days), past it, and after a century.
        for uptime in [
            0,
            WRAP - 1,
            WRAP,
            WRAP + 1,
            10 * WRAP,
            100 * 365 * 86_400_000,
        ] {
            assert_eq!(wait_for_tick(uptime, ms(uptime)), TICK, "at {uptime} ms");
        }
        // Half a tick late, the rest of the tick; a late wake-up catches up without waiting.
        assert_eq!(wait_for_tick(WRAP, ms(WRAP) + TICK / 2), TICK / 2);
        assert_eq!(wait_for_tick(WRAP, ms(WRAP + 3)), Duration::ZERO);
    }

    #[test]
    fn the_ticks_due_count_on_past_2_to_the_32_ms() {
        assert_eq!(ticks_due(ms(WRAP - 1)), WRAP - 1);
        assert_eq!(ticks_due(ms(WRAP)), WRAP);
        assert_eq!(ticks_due(ms(WRAP + 7) + TICK / 2), WRAP + 7);
        assert_eq!(ticks_due(Duration::MAX), u64::MAX);
        // The last tick never overflows the next one's time.
        assert_eq!(wait_for_tick(u64::MAX, Duration::MAX), Duration::ZERO);
        assert!(wait_for_tick(u64::MAX, ms(0)) > ms(WRAP));
    }
}
