//! The wasmtime [`Engine`]s every entry of the process compiles and runs on, and the epoch
//! ticker that drives call deadlines.
//!
//! There are two engines with the same settings but one: the fuel engine instruments code to
//! count instructions. Only entries with `limits.max_fuel` are compiled for it, so entries
//! without a fuel budget do not pay for the counting. Sharing engines lets entries with the
//! same bytes share compiled code (`compile.rs`) and keeps one set of compiler threads.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine};

/// How often the ticker bumps the epoch; deadlines are counted in these ticks.
pub const TICK: Duration = Duration::from_millis(1);

/// The process-wide engine, made on first use.
pub fn engine() -> &'static Engine {
    engine_for(false)
}

/// The engine for entries with (`fuel = true`) or without a fuel budget.
pub fn engine_for(fuel: bool) -> &'static Engine {
    static PLAIN: OnceLock<Engine> = OnceLock::new();
    static FUEL: OnceLock<Engine> = OnceLock::new();
    let cell = if fuel { &FUEL } else { &PLAIN };
    cell.get_or_init(|| Engine::new(&config(fuel)).expect("the engine configuration is valid"))
}

/// The engine settings.
pub fn config(fuel: bool) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // Deadlines: the ticker bumps the epoch, each call arms its own deadline.
    config.epoch_interruption(true);
    config.consume_fuel(fuel);
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
    pub fn acquire() -> TickerGuard {
        let mut ticker = TICKER.lock().unwrap_or_else(|e| e.into_inner());
        match ticker.as_mut() {
            Some(t) => t.holders += 1,
            None => {
                let (stop, stopped) = mpsc::channel::<()>();
                let thread = std::thread::Builder::new()
                    .name("funcs-epoch".into())
                    .spawn(move || {
                        while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(TICK) {
                            engine_for(false).increment_epoch();
                            engine_for(true).increment_epoch();
                        }
                    })
                    .expect("spawning the epoch ticker");
                *ticker = Some(Ticker {
                    holders: 1,
                    stop,
                    thread,
                });
            }
        }
        TickerGuard(())
    }
}

impl Drop for TickerGuard {
    fn drop(&mut self) {
        let mut ticker = TICKER.lock().unwrap_or_else(|e| e.into_inner());
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
