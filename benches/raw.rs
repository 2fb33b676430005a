//! The baseline for `make bench`: the same calls as `bench/call.lua`, made from Rust directly
//! on wasmtime with the engine settings funcs uses, a fresh instance per call from an
//! `InstancePre`. Prints one `name ns/call` line per case.

use std::hint::black_box;
use std::time::Instant;

use wasmtime::component::{self, Component};
use wasmtime::{Linker, Module, Store};

const ITERATIONS: u32 = 100_000;

fn main() {
    let engine = funcs::engine::engine();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));

    // Core `answer`: instantiate, look up the export, call it.
    let module = Module::new(
        engine,
        std::fs::read(root.join("examples/app/wasm/answer_raw.wasm")).unwrap(),
    )
    .unwrap();
    let pre = Linker::<()>::new(engine).instantiate_pre(&module).unwrap();
    report("answer", || {
        let mut store = Store::new(engine, ());
        let instance = pre.instantiate(&mut store).unwrap();
        let f = instance
            .get_typed_func::<(), i32>(&mut store, "answer")
            .unwrap();
        assert_eq!(f.call(&mut store, ()).unwrap(), 42);
    });

    // Component `compute(6, 7)`, dynamically typed with `Val`s as funcs calls it.
    let component = Component::new(
        engine,
        std::fs::read(root.join("examples/app/wasm/minimal.wasm")).unwrap(),
    )
    .unwrap();
    let mut linker = component::Linker::<()>::new(engine);
    linker.define_unknown_imports_as_traps(&component).unwrap();
    let pre = linker.instantiate_pre(&component).unwrap();
    let (_, index) = component.get_export(None, "compute").unwrap();
    report("compute", || {
        let mut store = Store::new(engine, ());
        let instance = pre.instantiate(&mut store).unwrap();
        let f = instance.get_func(&mut store, &index).unwrap();
        let mut out = [component::Val::U32(0)];
        f.call(
            &mut store,
            &[component::Val::U32(6), component::Val::U32(7)],
            &mut out,
        )
        .unwrap();
        assert_eq!(out[0], component::Val::U32(42));
    });
}

fn report(name: &str, mut f: impl FnMut()) {
    for _ in 0..1_000 {
        f();
    }
    let start = Instant::now();
    for _ in 0..ITERATIONS {
        black_box(f());
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(ITERATIONS);
    println!("{name} {ns:.0}");
}
