//! The baseline for `make bench`: the same calls as `bench/call.lua`, made from Rust directly
//! on wasmtime with the engine funcs uses (pooling allocator where it can be reserved), with a
//! fresh instance per call from an `InstancePre` and with one warm instance called again.
//! Arguments are built once, outside the timed loop. Prints `name fresh_ns warm_ns` lines.

use std::hint::black_box;
use std::time::Instant;

use wasmtime::component::{self, Component, Val};
use wasmtime::{Linker, Module, Store};

/// Cases and their iterations (fewer for the large transform-users calls).
const ITERATIONS: u32 = 100_000;
const USERS: [(usize, u32); 3] = [(10, 20_000), (100, 5_000), (1000, 500)];

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
    let fresh = measure(ITERATIONS, || {
        let mut store = new_store(engine);
        let instance = pre.instantiate(&mut store).unwrap();
        let f = instance
            .get_typed_func::<(), i32>(&mut store, "answer")
            .unwrap();
        assert_eq!(f.call(&mut store, ()).unwrap(), 42);
    });
    let mut store = new_store(engine);
    let instance = pre.instantiate(&mut store).unwrap();
    let f = instance.get_func(&mut store, "answer").unwrap();
    let warm = measure(ITERATIONS * 10, || {
        let mut out = [wasmtime::Val::I32(0)];
        f.call(&mut store, &[], &mut out).unwrap();
        assert_eq!(out[0].i32(), Some(42));
    });
    println!("answer {fresh:.0} {warm:.0}");

    // Components, dynamically typed with `Val`s as funcs calls them.
    let kib = Val::String("x".repeat(1024));
    let cases: Vec<(String, &str, &str, Vec<Val>, u32)> = [
        (
            "compute".to_string(),
            "examples/app/wasm/minimal.wasm",
            "compute",
            vec![Val::U32(6), Val::U32(7)],
            ITERATIONS,
        ),
        (
            "echo-1k".to_string(),
            "spec/fixtures/strings.wasm",
            "echo",
            vec![kib],
            ITERATIONS,
        ),
    ]
    .into_iter()
    .chain(USERS.map(|(n, iterations)| {
        (
            format!("transform-users-{n}"),
            "examples/app/wasm/mapper.wasm",
            "transform-users",
            vec![Val::List((1..=n as u32).map(user).collect())],
            iterations,
        )
    }))
    .collect();
    for (name, path, export, args, iterations) in cases {
        let (pre, index) = prepare(engine, &root.join(path), export);
        let fresh = measure(iterations, || {
            let mut store = new_store(engine);
            let instance = pre.instantiate(&mut store).unwrap();
            let f = instance.get_func(&mut store, index).unwrap();
            let mut out = [Val::Bool(false)];
            f.call(&mut store, &args, &mut out).unwrap();
            black_box(out);
        });
        let mut store = new_store(engine);
        let instance = pre.instantiate(&mut store).unwrap();
        let f = instance.get_func(&mut store, index).unwrap();
        let warm = measure(iterations, || {
            let mut out = [Val::Bool(false)];
            f.call(&mut store, &args, &mut out).unwrap();
            black_box(out);
        });
        println!("{name} {fresh:.0} {warm:.0}");
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
fn user(i: u32) -> Val {
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

/// Nanoseconds per call: the best of 3 timed rounds after a warm-up.
fn measure(iterations: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..(iterations / 100).max(10) {
        f();
    }
    (0..3)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(iterations)
        })
        .fold(f64::INFINITY, f64::min)
}
