//! The baseline for `make bench`: the same calls as `bench/call.lua`, made from Rust directly
//! on wasmtime with the engine settings funcs uses, a fresh instance per call from an
//! `InstancePre`; arguments are built once, outside the timed loop. Prints one `name ns/call` line per case.

use std::hint::black_box;
use std::time::Instant;

use wasmtime::component::{self, Component};
use wasmtime::{Linker, Module, Store};

const ITERATIONS: u32 = 100_000;
/// Fewer iterations for the larger transform-users calls, to keep the run short.
const USER_ITERATIONS: [(usize, u32); 3] = [(10, 20_000), (100, 5_000), (1000, 500)];

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
        let mut store = new_store(engine);
        let instance = pre.instantiate(&mut store).unwrap();
        let f = instance
            .get_typed_func::<(), i32>(&mut store, "answer")
            .unwrap();
        assert_eq!(f.call(&mut store, ()).unwrap(), 42);
    });

    // Component `compute(6, 7)`, dynamically typed with `Val`s as funcs calls it.
    let (pre, index) = prepare(
        engine,
        &root.join("examples/app/wasm/minimal.wasm"),
        "compute",
    );
    report("compute", || {
        let mut store = new_store(engine);
        let instance = pre.instantiate(&mut store).unwrap();
        let f = instance.get_func(&mut store, index).unwrap();
        let mut out = [component::Val::U32(0)];
        f.call(
            &mut store,
            &[component::Val::U32(6), component::Val::U32(7)],
            &mut out,
        )
        .unwrap();
        assert_eq!(out[0], component::Val::U32(42));
    });

    // `transform-users` over n records, with the argument `Val`s built once, outside the loop.
    let (pre, index) = prepare(
        engine,
        &root.join("examples/app/wasm/mapper.wasm"),
        "transform-users",
    );
    for (n, iterations) in USER_ITERATIONS {
        let users = component::Val::List((1..=n as u32).map(user).collect());
        report_n(&format!("transform-users-{n}"), iterations, || {
            let mut store = new_store(engine);
            let instance = pre.instantiate(&mut store).unwrap();
            let f = instance.get_func(&mut store, index).unwrap();
            let mut out = [component::Val::Bool(false)];
            f.call(&mut store, std::slice::from_ref(&users), &mut out)
                .unwrap();
            black_box(out);
        });
    }
}

/// A component's `InstancePre` (unknown imports trap, as in funcs) and the index of `export`.
fn prepare(
    engine: &wasmtime::Engine,
    path: &std::path::Path,
    export: &str,
) -> (component::InstancePre<()>, component::ComponentExportIndex) {
    let component = Component::new(engine, std::fs::read(path).unwrap()).unwrap();
    let mut linker = component::Linker::<()>::new(engine);
    linker.define_unknown_imports_as_traps(&component).unwrap();
    let pre = linker.instantiate_pre(&component).unwrap();
    let (_, index) = component.get_export(None, export).unwrap();
    (pre, index)
}

/// A store as funcs makes one: the engine interrupts on epochs, so a deadline must be armed.
fn new_store(engine: &wasmtime::Engine) -> Store<()> {
    let mut store = Store::new(engine, ());
    store.set_epoch_deadline(1 << 62);
    store
}

/// The record `bench/call.lua` builds for user `i`.
fn user(i: u32) -> component::Val {
    use component::Val;
    Val::Record(vec![
        ("id".into(), Val::U32(i)),
        ("name".into(), Val::String(format!("user{i}"))),
        (
            "tags".into(),
            Val::List(vec![Val::String("admin".into()), Val::String("dev".into())]),
        ),
        ("active".into(), Val::Bool(i.is_multiple_of(2))),
    ])
}

fn report(name: &str, f: impl FnMut()) {
    report_n(name, ITERATIONS, f)
}

fn report_n(name: &str, iterations: u32, mut f: impl FnMut()) {
    for _ in 0..(iterations / 100).max(10) {
        f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
        black_box(());
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(iterations);
    println!("{name} {ns:.0}");
}
