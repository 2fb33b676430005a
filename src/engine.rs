//! The one wasmtime [`Engine`] every entry of the process compiles and runs on.
//!
//! Sharing one engine lets entries with the same bytes share compiled code (`compile.rs`)
//! and keeps one set of compiler threads. Its settings are fixed here.

use std::sync::OnceLock;

use wasmtime::{Config, Engine};

/// The process-wide engine, made on first use.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new(&config()).expect("the engine configuration is valid"))
}

/// The engine's settings.
pub fn config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config
}
