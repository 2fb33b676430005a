//! What epoch interruption costs a CPU-bound guest: 1e9 loop iterations compiled by an
//! engine without epoch checks, by funcs' engine with no deadline armed, and with one armed.
//! Prints `name ms` lines (median of 5).

use std::time::Instant;

use wasmtime::{Config, Engine, Instance, Module, Store};

const SPIN: &str = r#"(module (func (export "spin") (param $n i64) (result i64) (local $i i64)
  (block $done (loop $l
    (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
    (local.set $i (i64.add (local.get $i) (i64.const 1)))
    (br $l)))
  (local.get $i)))"#;

fn main() {
    let plain = Engine::new(&Config::new()).unwrap();
    let funcs_engine = funcs::engine::engine();
    let _ticker = funcs::engine::TickerGuard::acquire().expect("the ticker");
    for (name, engine, deadline) in [
        ("spin-1e9-no-epoch-checks", &plain, None),
        ("spin-1e9-epoch-no-deadline", funcs_engine, Some(1u64 << 62)),
        ("spin-1e9-epoch-deadline", funcs_engine, Some(600_000)),
    ] {
        let module = Module::new(engine, wat::parse_str(SPIN).unwrap()).unwrap();
        let mut runs: Vec<f64> = (0..5)
            .map(|_| {
                let mut store = Store::new(engine, ());
                if let Some(ticks) = deadline {
                    store.set_epoch_deadline(ticks);
                }
                let instance = Instance::new(&mut store, &module, &[]).unwrap();
                let spin = instance
                    .get_typed_func::<i64, i64>(&mut store, "spin")
                    .unwrap();
                let start = Instant::now();
                assert_eq!(spin.call(&mut store, 1_000_000_000).unwrap(), 1_000_000_000);
                start.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        runs.sort_by(f64::total_cmp);
        println!("{name} {:.1}", runs[2]);
    }
}
