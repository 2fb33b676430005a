//! Limits: deadlines stop busy guests (on every call), fuel budgets, the linear-memory cap,
//! and traps classified by their type.

mod common;

use std::time::{Duration, Instant};

use common::*;
use funcs::error::Kind;

const GUESTS: &str = r#"
namespace: lim
entries:
  - name: spin
    kind: function.wat
    method: spin
    limits: {max_execution_ms: 50}
    source: '(module (func (export "spin") (loop $l (br $l))))'
  - name: count
    kind: function.wat
    method: count
    limits: {max_fuel: 100000}
    source: |
      (module (func (export "count") (param $n i32) (result i32) (local $i i32)
        (block $done (loop $l
          (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $l)))
        (local.get $i)))
  - name: grow
    kind: function.wat
    method: grow
    limits: {max_memory_bytes: 1048576}
    source: |
      (module (memory 1)
        (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))
  - name: grow_or_die
    kind: function.wat
    method: grow
    limits: {max_memory_bytes: 1048576}
    source: |
      (module (memory 1)
        (func (export "grow") (param i32) (result i32)
          (if (i32.eq (memory.grow (local.get 0)) (i32.const -1)) (then unreachable))
          (i32.const 0)))
  - name: recurse
    kind: function.wat
    method: recurse
    source: '(module (func $r (export "recurse") (call $r)))'
"#;

#[test]
fn a_deadline_stops_a_spinning_guest_on_every_call() {
    let rt = runtime(GUESTS, &[]);
    for _ in 0..3 {
        let start = Instant::now();
        let e = rt.call("lim:spin", &[]).unwrap_err();
        assert_error(
            &e,
            Kind::Timeout,
            &["`lim:spin`", "execution time limit of 50 ms exceeded"],
        );
        assert_eq!(e.details().trap.as_deref(), Some("interrupt"));
        // Generous: the point is that it stops at all, and well before a second.
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert!(
            start.elapsed() >= Duration::from_millis(50),
            "{:?}",
            start.elapsed()
        );
    }
}

#[test]
fn fuel_is_a_deterministic_budget() {
    let rt = runtime(GUESTS, &[]);
    assert_eq!(rt.call("lim:count", &[int(100)]).unwrap(), int(100));
    let e = rt.call("lim:count", &[int(1_000_000)]).unwrap_err();
    assert_error(
        &e,
        Kind::Internal,
        &["`lim:count`", "fuel limit of 100000 exhausted"],
    );
    assert_eq!(e.details().trap.as_deref(), Some("out_of_fuel"));
    // The budget is per call, not per entry.
    assert_eq!(rt.call("lim:count", &[int(100)]).unwrap(), int(100));
}

#[test]
fn memory_growth_beyond_the_cap_fails_inside_the_guest() {
    let rt = runtime(GUESTS, &[]);
    // 1 page is 64 KiB: the cap allows 16 pages in all.
    assert_eq!(rt.call("lim:grow", &[int(15)]).unwrap(), int(1));
    assert_eq!(rt.call("lim:grow", &[int(16)]).unwrap(), int(-1));
    let e = rt.call("lim:grow_or_die", &[int(100)]).unwrap_err();
    assert_error(
        &e,
        Kind::Internal,
        &["`lim:grow_or_die`", "limit of 1048576 bytes"],
    );
}

#[test]
fn deep_recursion_is_a_stack_overflow_trap() {
    let rt = runtime(GUESTS, &[]);
    let e = rt.call("lim:recurse", &[]).unwrap_err();
    assert_error(&e, Kind::Internal, &["`lim:recurse`", "wasm trap"]);
    assert_eq!(e.details().trap.as_deref(), Some("stack_overflow"));
}
