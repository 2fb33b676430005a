//! The baseline for `make bench`: the same calls as `bench/call.lua`, made from Rust directly
//! on wasmtime with the engine funcs uses (pooling allocator where it can be reserved), with a
//! fresh instance per call from an `InstancePre` and with one warm instance called again.
//! Arguments are built once, outside the timed loop. Prints `name fresh_ns warm_ns` lines.
//!
//! `raw count <name> fresh|warm <n>` makes one call and then `n` more of one case, untimed,
//! for `valgrind --tool=callgrind` (bench/instructions.sh): run with 0 and with N, the
//! difference over N is one call's instructions.

use std::hint::black_box;
use std::time::Instant;

use wasmtime::component::{self, Component, Val};
use wasmtime::{Linker, Module, Store};

/// Cases and their iterations (fewer for the large transform-users calls).
const ITERATIONS: u32 = 100_000;
const USERS: [(usize, u32); 3] = [(10, 20_000), (100, 5_000), (1000, 500)];

/// One call of a case, with a fresh instance or with the warm one.
type Call<'a> = Box<dyn FnMut() + 'a>;

/// A case: its name, iterations (fresh, warm) and its two calls.
struct Case<'a> {
    name: String,
    iterations: (u32, u32),
    fresh: Call<'a>,
    warm: Call<'a>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let count = args
        .iter()
        .position(|a| a == "count")
        .map(|at| match &args[at + 1..] {
            [name, which, n, ..] => (
                name.clone(),
                which.clone(),
                n.parse::<u32>().expect("a count"),
            ),
            _ => panic!("usage: raw count <name> fresh|warm <n>"),
        });
    // Counting compiles only the case it counts (compilation's instructions vary by run).
    let wanted = |name: &str| count.as_ref().is_none_or(|(n, ..)| n == name);
    let engine = funcs::engine::engine();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cases = Vec::new();

    // Core `answer`: instantiate, look up the export, call it.
    if wanted("answer") {
        let module = Module::new(
            engine,
            std::fs::read(root.join("examples/app/wasm/answer_raw.wasm")).unwrap(),
        )
        .unwrap();
        let pre = Linker::<()>::new(engine).instantiate_pre(&module).unwrap();
        let mut store = new_store(engine);
        let instance = pre.instantiate(&mut store).unwrap();
        let f = instance.get_func(&mut store, "answer").unwrap();
        cases.push(Case {
            name: "answer".into(),
            iterations: (ITERATIONS, ITERATIONS * 10),
            fresh: Box::new(move || {
                let mut store = new_store(engine);
                let instance = pre.instantiate(&mut store).unwrap();
                let f = instance
                    .get_typed_func::<(), i32>(&mut store, "answer")
                    .unwrap();
                assert_eq!(f.call(&mut store, ()).unwrap(), 42);
            }),
            warm: Box::new(move || {
                let mut out = [wasmtime::Val::I32(0)];
                f.call(&mut store, &[], &mut out).unwrap();
                assert_eq!(out[0].i32(), Some(42));
            }),
        });
    }

    // Components, dynamically typed with `Val`s as funcs calls them.
    let kib = Val::String("x".repeat(1024));
    let components: Vec<(String, &str, &str, Vec<Val>, u32)> = [
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
    for (name, path, export, args, iterations) in components {
        if !wanted(&name) {
            continue;
        }
        let (pre, index) = prepare(engine, &root.join(path), export);
        let mut store = new_store(engine);
        let instance = pre.instantiate(&mut store).unwrap();
        let f = instance.get_func(&mut store, index).unwrap();
        let fresh_args = args.clone();
        cases.push(Case {
            name,
            iterations: (iterations, iterations),
            fresh: Box::new(move || {
                let mut store = new_store(engine);
                let instance = pre.instantiate(&mut store).unwrap();
                let f = instance.get_func(&mut store, index).unwrap();
                let mut out = [Val::Bool(false)];
                f.call(&mut store, &fresh_args, &mut out).unwrap();
                black_box(out);
            }),
            warm: Box::new(move || {
                let mut out = [Val::Bool(false)];
                f.call(&mut store, &args, &mut out).unwrap();
                black_box(out);
            }),
        });
    }

    // A live instance of the C counters guest (build/guests/c-res, SPEC 15): a method call on
    // a handle, a constructor and a drop, a plain export. The same on "fresh" and "warm": the
    // instance is the caller's either way.
    let counters = root.join("build/guests/c-res/guest.wasm");
    if counters.exists() {
        let component = Component::new(engine, std::fs::read(&counters).unwrap()).unwrap();
        let linker = component::Linker::<()>::new(engine);
        let pre = linker.instantiate_pre(&component).unwrap();
        let export = |name: &str| {
            let (_, iface) = component
                .get_export(None, "funcs:res/counters@0.1.0")
                .unwrap();
            component.get_export(Some(&iface), name).unwrap().1
        };
        let (new, get, total) = (
            export("[constructor]counter"),
            export("[method]counter.get"),
            export("get-total"),
        );
        type Live = (Store<()>, component::Func, component::Func, component::Func);
        let live = |pre: &component::InstancePre<()>| -> Live {
            let mut store = new_store(engine);
            let instance = pre.instantiate(&mut store).unwrap();
            let f = |store: &mut Store<()>, i| instance.get_func(&mut *store, i).unwrap();
            let (n, g, t) = (f(&mut store, new), f(&mut store, get), f(&mut store, total));
            (store, n, g, t)
        };
        let cases_of: [(&str, fn(&mut Live, &Val)); 3] = [
            ("res-get", |(store, _, get, _), c| {
                let mut out = [Val::S64(0)];
                get.call(&mut *store, std::slice::from_ref(c), &mut out)
                    .unwrap();
                black_box(out);
            }),
            ("res-new-drop", |(store, new, _, _), _| {
                let mut out = [Val::Bool(false)];
                new.call(&mut *store, &[Val::S64(1)], &mut out).unwrap();
                let Val::Resource(r) = out[0] else {
                    panic!("a handle")
                };
                r.resource_drop(&mut *store).unwrap();
            }),
            ("res-total", |(store, _, _, total), _| {
                let mut out = [Val::S64(0)];
                total.call(&mut *store, &[], &mut out).unwrap();
                black_box(out);
            }),
        ];
        for (name, op) in cases_of {
            if !wanted(name) {
                continue;
            }
            let mut calls = Vec::new();
            for _ in 0..2 {
                let mut l = live(&pre);
                let mut out = [Val::Bool(false)];
                l.1.call(&mut l.0, &[Val::S64(5)], &mut out).unwrap();
                let c = out[0].clone();
                calls.push(Box::new(move || op(&mut l, &c)) as Call<'_>);
            }
            let (warm, fresh) = (calls.pop().unwrap(), calls.pop().unwrap());
            cases.push(Case {
                name: name.into(),
                iterations: (ITERATIONS, ITERATIONS),
                fresh,
                warm,
            });
        }
    }

    if let Some((name, which, n)) = &count {
        let case = cases
            .iter_mut()
            .find(|c| &c.name == name)
            .unwrap_or_else(|| panic!("no case {name}"));
        let call = match which.as_str() {
            "fresh" => &mut case.fresh,
            "warm" => &mut case.warm,
            other => panic!("fresh or warm, not {other}"),
        };
        for _ in 0..=*n {
            call();
        }
        return;
    }
    for mut case in cases {
        let fresh = measure(case.iterations.0, &mut case.fresh);
        let warm = measure(case.iterations.1, &mut case.warm);
        println!("{} {fresh:.0} {warm:.0}", case.name);
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
fn measure(iterations: u32, f: &mut dyn FnMut()) -> f64 {
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
