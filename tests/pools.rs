//! Pools from Rust: the bound of a static pool, backpressure, reload under a stream of
//! async calls, cancellation, trapping guests, shutdown, and sleeping WASI guests sharing
//! workers.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use funcs::error::Kind;
use funcs::function::CallOptions;
use funcs::pool::Completion;
use funcs::runtime::Runtime;
use funcs::value::Value;

const GUESTS: &str = r#"
namespace: p
entries:
  - name: spin
    kind: function.wat
    method: spin
    pool: {type: static, workers: 2, buffer: 1}
    source: &guest |
      (module
        (func (export "spin") (param $n i64) (result i64) (local $i i64)
          (block $done (loop $l
            (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
            (local.set $i (i64.add (local.get $i) (i64.const 1)))
            (br $l)))
          (local.get $i))
        (func (export "check") (param $x i32) (result i32)
          (if (i32.eqz (local.get $x)) (then unreachable))
          (local.get $x)))
  - {name: check, kind: function.wat, method: check, source: *guest, pool: {type: static, workers: 1}}
  - name: sleep
    kind: function.wasm
    fs: files
    path: sleep-test.wasm
    hash: SLEEP_HASH
    method: test-sleep#sleep-ms
    imports: [wasi:io, wasi:clocks]
    pool: {type: static, workers: 2}
  - {name: files, kind: fs.directory, directory: ./}
"#;

const SPIN: i64 = 250_000_000;

fn guests() -> Runtime {
    let hash = sha256(&fixture("sleep-test.wasm"));
    runtime(&GUESTS.replace("SLEEP_HASH", &hash), &["sleep-test.wasm"])
}

fn start(rt: &Runtime, id: &str, args: &[Value]) -> Arc<Completion> {
    let handle = rt.function(id).unwrap();
    let args = handle.0.function().lower(args).unwrap();
    rt.submit(&handle, args, CallOptions::default()).unwrap()
}

fn result(done: &Completion) -> Result<Value, funcs::error::Error> {
    done.wait(None);
    Result::clone(&done.result().unwrap()).map(funcs::value::Output::into_value)
}

fn stats(rt: &Runtime, id: &str) -> funcs::pool::Stats {
    rt.stats().into_iter().find(|(i, _)| i == id).unwrap().1
}

#[test]
fn a_static_pool_runs_at_most_its_workers_and_blocks_on_a_full_queue() {
    let rt = guests();
    // Two run, one waits in the queue of 1; the fourth submit must wait for room.
    let first: Vec<_> = (0..3)
        .map(|i| start(&rt, "p:spin", &[int(SPIN + i)]))
        .collect();
    let fourth = start(&rt, "p:spin", &[int(SPIN + 3)]);
    assert!(
        first.iter().take(2).any(|d| d.is_complete()),
        "the fourth call was queued without room"
    );
    let s = stats(&rt, "p:spin");
    assert!(s.in_flight <= 2 && s.workers == 2, "{s:?}");
    for (i, d) in first.iter().chain([&fourth]).enumerate() {
        assert_eq!(result(d).unwrap(), int(SPIN + i as i64));
    }
}

#[test]
fn a_trapping_guest_leaves_its_worker_usable() {
    let rt = guests();
    for _ in 0..3 {
        let e = result(&start(&rt, "p:check", &[int(0)])).unwrap_err();
        assert_error(&e, Kind::Internal, &["`p:check`", "unreachable"]);
        assert_eq!(result(&start(&rt, "p:check", &[int(5)])).unwrap(), int(5));
    }
    let s = stats(&rt, "p:check");
    assert_eq!((s.workers, s.failures, s.calls), (1, 3, 6));
}

#[test]
fn cancelling_interrupts_a_running_guest() {
    let rt = guests();
    let done = start(&rt, "p:spin", &[int(i64::MAX)]);
    while stats(&rt, "p:spin").in_flight == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    done.cancel(funcs::error::Error::new(
        Kind::Canceled,
        "canceled by the test",
    ));
    assert!(done.is_canceled());
    // The worker is back: the interrupted call has left it.
    while stats(&rt, "p:spin").in_flight != 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(result(&start(&rt, "p:spin", &[int(7)])).unwrap(), int(7));
}

#[test]
fn sleeping_guests_share_two_workers() {
    let rt = guests();
    let all: Vec<_> = (0..40)
        .map(|_| start(&rt, "p:sleep", &[int(300)]))
        .collect();
    let mut most = 0;
    while !all.iter().all(|d| d.is_complete()) {
        most = most.max(stats(&rt, "p:sleep").in_flight);
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(most, 40, "sleeping calls held their workers");
    assert_eq!(stats(&rt, "p:sleep").workers, 2);
    for d in &all {
        let Value::Int(ns) = result(d).unwrap() else {
            panic!()
        };
        assert!(ns >= 300_000_000);
    }
}

#[test]
fn reload_under_a_stream_of_async_calls_loses_nothing() {
    let source = |k: i32| {
        format!(
            r#"
namespace: live
entries:
  - name: version
    kind: function.wat
    method: v
    pool: {{type: lazy, max_size: 3}}
    source: '(module (func (export "v") (param i32) (result i32) (i32.add (local.get 0) (i32.const {k}))))'
"#
        )
    };
    let dir = registry(&source(1_000_000), &[]);
    let rt = Runtime::default();
    rt.load(&dir).unwrap();
    let mut all = Vec::new();
    for i in 0..4000 {
        if i == 2000 {
            std::fs::write(dir.join("_index.yaml"), source(2_000_000)).unwrap();
            rt.load(&dir).unwrap();
        }
        all.push(start(&rt, "live:version", &[int(i)]));
    }
    for (i, d) in all.iter().enumerate() {
        let base = if i < 2000 { 1_000_000 } else { 2_000_000 };
        assert_eq!(result(d).unwrap(), int(i as i64 + base));
    }
}

#[test]
fn shutdown_fails_queued_calls_and_stops_every_worker() {
    let rt = guests();
    let running: Vec<_> = (0..2)
        .map(|_| start(&rt, "p:spin", &[int(i64::MAX)]))
        .collect();
    let queued = start(&rt, "p:spin", &[int(1)]);
    while stats(&rt, "p:spin").in_flight < 2 {
        std::thread::sleep(Duration::from_millis(1));
    }
    rt.shutdown();
    for d in &running {
        assert_eq!(result(d).unwrap_err().kind(), Kind::Canceled);
    }
    assert_eq!(result(&queued).unwrap_err().kind(), Kind::Unavailable);
    assert_eq!(
        rt.call("p:check", &[int(1)]).unwrap_err().kind(),
        Kind::Unavailable
    );
}

#[test]
fn lazy_and_adaptive_pools_of_wasi_entries_grow_under_cpu_bound_load() {
    // A CPU-bound guest that imports WASI (preview 1): its calls run on async workers, which
    // must not count as free while a call of theirs is using the thread.
    let yaml = r#"
namespace: w
entries:
  - name: lazy
    kind: function.wat
    method: spin
    imports: [wasi:cli]
    pool: {type: lazy, max_size: 3}
    source: &guest |
      (module
        (import "wasi_snapshot_preview1" "sched_yield" (func $yield (result i32)))
        (func (export "spin") (param $n i64) (result i64) (local $i i64)
          (block $done (loop $l
            (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
            (local.set $i (i64.add (local.get $i) (i64.const 1)))
            (br $l)))
          (local.get $i)))
  - {name: adaptive, kind: function.wat, method: spin, imports: [wasi:cli], source: *guest, pool: {type: adaptive, max_size: 3}}
"#;
    let rt = runtime(yaml, &[]);
    for id in ["w:lazy", "w:adaptive"] {
        let calls: Vec<_> = (0..3).map(|_| start(&rt, id, &[int(SPIN * 4)])).collect();
        let mut most = 0;
        while calls.iter().any(|c| !c.is_complete()) {
            most = most.max(stats(&rt, id).workers);
            std::thread::sleep(Duration::from_millis(5));
        }
        for c in &calls {
            assert_eq!(result(c).unwrap(), int(SPIN * 4));
        }
        assert!(most > 1, "{id}: stayed at {most} worker(s)");
    }
}

#[test]
fn a_load_whose_service_cannot_bind_changes_nothing() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let yaml = |answer: u32, addr: &str| {
        format!(
            r#"
namespace: b
entries:
  - name: answer
    kind: function.wat
    method: answer
    transport: wasi-http
    pool: {{type: static, workers: 2}}
    source: '(module (func (export "answer") (result i32) (i32.const {answer})))'
  - name: api
    kind: http.service
    addr: "{addr}"
    lifecycle: {{auto_start: true}}
"#
        )
    };
    let rt = Runtime::default();
    let e = rt
        .load(&registry(&yaml(1, &addr.to_string()), &[]))
        .unwrap_err();
    assert_error(&e, Kind::Unavailable, &["did not start", "`b:api`"]);
    // Nothing of it was applied: no function, no pool, no service.
    assert_eq!(
        rt.function("b:answer").err().map(|e| e.kind()),
        Some(Kind::NotFound)
    );
    assert!(rt.stats().is_empty());
    assert_eq!(rt.http_addr("b:api"), None);
    // A reload of a loaded version that fails the same way leaves that version.
    let dir = registry(&yaml(1, "127.0.0.1:0"), &[]);
    rt.load(&dir).unwrap();
    let serving = rt.http_addr("b:api").unwrap();
    let before = stats(&rt, "b:answer");
    let more = format!(
        "{}  - {{name: other, kind: http.service, addr: \"{addr}\", lifecycle: {{auto_start: true}}}}\n",
        yaml(2, "127.0.0.1:0")
    );
    std::fs::write(dir.join("_index.yaml"), more).unwrap();
    let e = rt.load(&dir).unwrap_err();
    assert_error(&e, Kind::Unavailable, &["did not start", "`b:other`"]);
    assert_eq!(rt.call("b:answer", &[]).unwrap(), int(1));
    assert_eq!(rt.http_addr("b:api"), Some(serving));
    assert_eq!(rt.http_addr("b:other"), None);
    assert_eq!(stats(&rt, "b:answer").workers, before.workers);
    rt.shutdown();
    drop(taken);
}

#[test]
fn pool_defaults_follow_the_reference_page() {
    use funcs::pool::{PoolKind, PoolSpec};
    use funcs::registry::schema::PoolConfig;
    let spec = |kind: &str| {
        PoolSpec::from_config(Some(&PoolConfig {
            kind: Some(kind.into()),
            ..PoolConfig::default()
        }))
    };
    // "El maximo por defecto del pool elastico es 100 workers cuando max_size no esta especificado."
    assert_eq!(
        (spec("adaptive").kind, spec("adaptive").size),
        (PoolKind::Adaptive, 100)
    );
    assert_eq!(spec("lazy").size, 16);
    assert_eq!(spec("static").size, 8);
    assert_eq!(spec("static").buffer, 8 * 64);
    assert_eq!(PoolSpec::from_config(None).size, 100);
}
