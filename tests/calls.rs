//! Calling functions: the fixtures, core modules with and without `wit`, WAT components, and
//! the sad paths (argument count and types, traps, missing host imports).

mod common;

use common::*;
use funcs::error::Kind;
use funcs::runtime::Runtime;
use funcs::value::Value;

/// A registry with every fixture component, one entry per export used below.
fn fixtures() -> Runtime {
    let mut yaml = String::from(
        "namespace: fx\nentries:\n  - name: files\n    kind: fs.directory\n    directory: .\n",
    );
    let entries = [
        ("answer_raw", "answer_raw.wasm", "answer"),
        ("compute", "minimal.wasm", "compute"),
        ("compute_using_host", "minimal.wasm", "compute-using-host"),
        ("transform_users", "mapper.wasm", "transform-users"),
        ("filter_active", "mapper.wasm", "filter-active"),
        ("aggregate_tags", "mapper.wasm", "aggregate-tags"),
        ("echo", "strings.wasm", "echo"),
        ("try_divide", "complex.wasm", "try-divide"),
        ("try_parse", "complex.wasm", "try-parse"),
        ("sum_list", "complex.wasm", "sum-list"),
        ("swap_pair", "complex.wasm", "swap-pair"),
        ("triple", "complex.wasm", "triple"),
        ("echo_point", "complex.wasm", "echo-point"),
        ("echo_rectangle", "complex.wasm", "echo-rectangle"),
        ("echo_color", "complex.wasm", "echo-color"),
        ("echo_shape", "complex.wasm", "echo-shape"),
        ("echo_permissions", "complex.wasm", "echo-permissions"),
        ("maybe_point", "complex.wasm", "maybe-point"),
        ("maybe_string", "complex.wasm", "maybe-string"),
        ("filter_adults", "complex.wasm", "filter-adults"),
        ("double_list", "complex.wasm", "double-list"),
        ("echo_list_string", "complex.wasm", "echo-list-string"),
        ("sleep_ms", "sleep-test.wasm", "test-sleep#sleep-ms"),
    ];
    for (name, file, method) in entries {
        yaml.push_str(&format!(
            "  - name: {name}\n    kind: function.wasm\n    fs: files\n    path: {file}\n    \
             hash: {}\n    method: {method}\n",
            sha256(&fixture(file))
        ));
    }
    let files: Vec<&str> = entries.iter().map(|(_, f, _)| *f).collect();
    runtime(&yaml, &files)
}

fn user(id: i64, name: &str, tags: &[&str], active: bool) -> Value {
    map(&[
        ("id", int(id)),
        ("name", s(name)),
        ("tags", Value::Array(tags.iter().map(|t| s(t)).collect())),
        ("active", Value::Bool(active)),
    ])
}

fn output(id: i64, display: &str, tag_count: i64) -> Value {
    map(&[
        ("id", int(id)),
        ("display", s(display)),
        ("tag-count", int(tag_count)),
    ])
}

fn users() -> Value {
    Value::Array(vec![
        user(1, "Alice", &["admin", "dev"], true),
        user(2, "Bob", &[], false),
        user(3, "Carol", &["ops"], true),
    ])
}

#[test]
fn core_binary_without_wit_uses_its_own_types() {
    assert_eq!(fixtures().call("fx:answer_raw", &[]).unwrap(), int(42));
}

#[test]
fn minimal_compute_works_although_its_host_import_is_missing() {
    let rt = fixtures();
    assert_eq!(rt.call("fx:compute", &[int(6), int(7)]).unwrap(), int(42));
    let e = rt
        .call("fx:compute_using_host", &[int(6), int(7)])
        .unwrap_err();
    assert_error(
        &e,
        Kind::Internal,
        &["`fx:compute_using_host`", "test:minimal/host@0.1.0#add"],
    );
}

#[test]
fn mapper_transforms_filters_and_aggregates() {
    let rt = fixtures();
    assert_eq!(
        rt.call("fx:transform_users", &[users()]).unwrap(),
        Value::Array(vec![
            output(1, "Alice [admin, dev]", 2),
            output(2, "Bob []", 0),
            output(3, "Carol [ops]", 1),
        ])
    );
    assert_eq!(
        rt.call("fx:filter_active", &[users()]).unwrap(),
        Value::Array(vec![
            output(1, "Alice [admin, dev]", 2),
            output(3, "Carol [ops]", 1)
        ])
    );
    assert_eq!(
        rt.call("fx:aggregate_tags", &[users()]).unwrap(),
        Value::Array(vec![s("admin"), s("dev"), s("ops")])
    );
    assert_eq!(
        rt.call("fx:transform_users", &[Value::Array(vec![])])
            .unwrap(),
        Value::Array(vec![])
    );
}

#[test]
fn strings_echo_empty_and_large() {
    let rt = fixtures();
    for text in [String::new(), "héllo wörld".into(), "x".repeat(1 << 20)] {
        assert_eq!(rt.call("fx:echo", &[s(&text)]).unwrap(), s(&text));
    }
}

#[test]
fn complex_results_tuples_and_lists() {
    let rt = fixtures();
    assert_eq!(
        rt.call("fx:try_divide", &[int(10), int(2)]).unwrap(),
        map(&[("ok", int(5))])
    );
    assert_eq!(
        rt.call("fx:try_divide", &[int(10), int(0)]).unwrap(),
        map(&[(
            "err",
            map(&[("code", int(1)), ("message", s("division by zero"))])
        )])
    );
    assert_eq!(
        rt.call("fx:try_parse", &[s("12")]).unwrap(),
        map(&[("ok", int(12))])
    );
    assert!(
        rt.call("fx:try_parse", &[s("zz")])
            .unwrap()
            .get("err")
            .is_some()
    );
    let list = Value::Array(vec![int(1), int(2), int(3), int(4)]);
    assert_eq!(
        rt.call("fx:sum_list", std::slice::from_ref(&list)).unwrap(),
        int(10)
    );
    assert_eq!(
        rt.call("fx:double_list", &[list]).unwrap(),
        Value::Array(vec![int(2), int(4), int(6), int(8)])
    );
    assert_eq!(
        rt.call("fx:swap_pair", &[int(1), int(2)]).unwrap(),
        Value::Array(vec![int(2), int(1)])
    );
    assert_eq!(
        rt.call("fx:triple", &[int(3)]).unwrap().type_name(),
        "table"
    );
    let strings = Value::Array(vec![s("a"), s(""), s("c")]);
    assert_eq!(
        rt.call("fx:echo_list_string", std::slice::from_ref(&strings))
            .unwrap(),
        strings
    );
}

#[test]
fn complex_records_options_enums_variants_flags() {
    let rt = fixtures();
    let point = map(&[("x", int(1)), ("y", int(-2))]);
    assert_eq!(
        rt.call("fx:echo_point", std::slice::from_ref(&point))
            .unwrap(),
        point
    );
    // snake_case keys are accepted for kebab-case fields.
    let rect = map(&[("top_left", point.clone()), ("bottom-right", point.clone())]);
    assert_eq!(
        rt.call("fx:echo_rectangle", &[rect]).unwrap(),
        map(&[("top-left", point.clone()), ("bottom-right", point.clone())])
    );
    assert_eq!(
        rt.call("fx:maybe_point", &[Value::Bool(false)]).unwrap(),
        Value::Nil
    );
    assert!(
        rt.call("fx:maybe_point", &[Value::Bool(true)])
            .unwrap()
            .get("x")
            .is_some()
    );
    assert_eq!(
        rt.call("fx:maybe_string", &[Value::Bool(false)]).unwrap(),
        Value::Nil
    );
    assert_eq!(rt.call("fx:echo_color", &[s("green")]).unwrap(), s("green"));
    assert_eq!(rt.call("fx:echo_color", &[int(2)]).unwrap(), s("blue"));
    let circle = map(&[("circle", int(5))]);
    assert_eq!(
        rt.call("fx:echo_shape", std::slice::from_ref(&circle))
            .unwrap(),
        circle
    );
    assert_eq!(
        rt.call("fx:echo_shape", &[s("none")]).unwrap(),
        map(&[("none", Value::Bool(true))])
    );
    let perms = map(&[("read", Value::Bool(true)), ("execute", Value::Bool(true))]);
    assert_eq!(
        rt.call("fx:echo_permissions", std::slice::from_ref(&perms))
            .unwrap(),
        perms
    );
    assert_eq!(
        rt.call(
            "fx:echo_permissions",
            &[Value::Array(vec![s("read"), s("execute")])]
        )
        .unwrap(),
        perms
    );
    assert_eq!(
        rt.call("fx:echo_permissions", &[int(0b101)]).unwrap(),
        perms
    );
    let people = Value::Array(vec![
        map(&[("name", s("Ann")), ("age", int(30))]),
        map(&[("name", s("Kid")), ("age", int(9))]),
    ]);
    assert_eq!(
        rt.call("fx:filter_adults", &[people]).unwrap(),
        Value::Array(vec![map(&[("name", s("Ann")), ("age", int(30))])])
    );
}

#[test]
fn interface_exports_are_found_by_short_name() {
    // The sleep guest imports wasi clocks, which this entry does not grant: the call is
    // denied naming the import rather than failing to load.
    let e = fixtures().call("fx:sleep_ms", &[int(1)]).unwrap_err();
    assert_error(
        &e,
        Kind::PermissionDenied,
        &["`fx:sleep_ms`", "wasi:", "is not granted"],
    );
}

#[test]
fn wrong_argument_counts_and_types_name_the_argument() {
    let rt = fixtures();
    let e = rt.call("fx:compute", &[int(1)]).unwrap_err();
    assert_error(
        &e,
        Kind::Invalid,
        &["`fx:compute`", "expected 2 argument(s), got 1"],
    );
    let e = rt
        .call("fx:compute", &[int(1), int(2), int(3)])
        .unwrap_err();
    assert_error(&e, Kind::Invalid, &["expected 2 argument(s), got 3"]);
    let e = rt.call("fx:compute", &[int(1), s("x")]).unwrap_err();
    assert_error(
        &e,
        Kind::Invalid,
        &["argument 2 (b): expected u32, got string"],
    );
    let e = rt.call("fx:compute", &[int(-1), int(0)]).unwrap_err();
    assert_error(
        &e,
        Kind::Invalid,
        &["argument 1 (a): -1 is out of range for u32"],
    );
    let e = rt
        .call("fx:compute", &[Value::Float(1.5), int(0)])
        .unwrap_err();
    assert_error(&e, Kind::Invalid, &["1.5 is not an integer"]);
    assert_eq!(
        rt.call("fx:compute", &[Value::Float(6.0), int(7)]).unwrap(),
        int(42)
    );

    let mut bad = users();
    if let Value::Array(items) = &mut bad
        && let Value::Map(fields) = &mut items[1]
    {
        fields[2].1 = Value::Array(vec![s("ok"), int(5)]);
    }
    let e = rt.call("fx:transform_users", &[bad]).unwrap_err();
    assert_error(
        &e,
        Kind::Invalid,
        &["argument 1 (users): [2].tags[2]: expected string, got number"],
    );
    assert_eq!(e.details().path.as_deref(), Some("[2].tags[2]"));
    assert_eq!(e.details().argument, Some(1));
    let e = rt
        .call(
            "fx:transform_users",
            &[Value::Array(vec![map(&[("id", int(1))])])],
        )
        .unwrap_err();
    assert_error(&e, Kind::Invalid, &["[1]: missing field `name`"]);
}

#[test]
fn unknown_ids_are_not_found() {
    let e = fixtures().call("fx:nothing", &[]).unwrap_err();
    assert_error(&e, Kind::NotFound, &["`fx:nothing`"]);
    let e = fixtures().call("fx:files", &[]).unwrap_err();
    assert_error(&e, Kind::Invalid, &["not a function"]);
}

const CORE: &str = r#"
namespace: core
entries:
  - name: add
    kind: function.wat
    method: add
    source: |
      (module (func (export "add") (param i32 i32) (result i32)
        local.get 0 local.get 1 i32.add))
  - name: mix
    kind: function.wat
    method: mix
    source: |
      (module (func (export "mix") (param i64 f64) (result f64)
        local.get 0 f64.convert_i64_s local.get 1 f64.mul))
  - name: divmod
    kind: function.wat
    method: divmod
    wit: "divmod: func(a: u32, b: u32) -> (u32, u32);"
    source: |
      (module (func (export "divmod") (param i32 i32) (result i32 i32)
        local.get 0 local.get 1 i32.div_u
        local.get 0 local.get 1 i32.rem_u))
  - name: boom
    kind: function.wat
    method: boom
    source: '(module (func (export "boom") unreachable))'
  - name: oob
    kind: function.wat
    method: oob
    source: |
      (module (memory 1) (func (export "oob") (result i32)
        i32.const 70000 i32.load))
  - name: shout
    kind: function.wat
    method: shout
    wit: |
      len: func(s: string) -> u32;
      shout: func(s: string) -> string;
    source: |
      (module
        (memory (export "memory") 1)
        (global $heap (mut i32) (i32.const 1024))
        (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
          (local $p i32)
          (local.set $p (i32.and
            (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
            (i32.sub (i32.const 0) (local.get 2))))
          (global.set $heap (i32.add (local.get $p) (local.get 3)))
          (local.get $p))
        (func (export "len") (param i32 i32) (result i32) (local.get 1))
        ;; upper-cases ASCII letters in place and returns the same string
        (func (export "shout") (param $p i32) (param $n i32) (result i32)
          (local $i i32) (local $c i32)
          (block $done (loop $next
            (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
            (local.set $c (i32.load8_u (i32.add (local.get $p) (local.get $i))))
            (if (i32.and (i32.ge_u (local.get $c) (i32.const 97)) (i32.le_u (local.get $c) (i32.const 122)))
              (then (i32.store8 (i32.add (local.get $p) (local.get $i)) (i32.sub (local.get $c) (i32.const 32)))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $next)))
          (i32.store (i32.const 16) (local.get $p))
          (i32.store (i32.const 20) (local.get $n))
          (i32.const 16)))
  - name: component
    kind: function.wat
    method: double
    source: |
      (component
        (core module $m (func (export "double") (param i32) (result i32)
          local.get 0 i32.const 2 i32.mul))
        (core instance $i (instantiate $m))
        (func (export "double") (param "n" u32) (result u32)
          (canon lift (core func $i "double"))))
"#;

#[test]
fn core_modules_without_wit_take_their_numeric_types() {
    let rt = runtime(CORE, &[]);
    assert_eq!(rt.call("core:add", &[int(2), int(3)]).unwrap(), int(5));
    assert_eq!(
        rt.call("core:mix", &[int(3), Value::Float(0.5)]).unwrap(),
        Value::Float(1.5)
    );
    let e = rt.call("core:add", &[int(1), int(1i64 << 40)]).unwrap_err();
    assert_error(
        &e,
        Kind::Invalid,
        &["argument 2 (p2)", "out of range for s32"],
    );
}

#[test]
fn core_modules_with_several_results_give_an_array() {
    let rt = runtime(CORE, &[]);
    assert_eq!(
        rt.call("core:divmod", &[int(17), int(5)]).unwrap(),
        Value::Array(vec![int(3), int(2)])
    );
}

#[test]
fn core_modules_with_strings_go_through_the_canonical_abi() {
    let rt = runtime(CORE, &[]);
    assert_eq!(
        rt.call("core:shout", &[s("hello, wasm")]).unwrap(),
        s("HELLO, WASM")
    );
    let e = rt
        .call("core:shout", &[Value::Bytes(vec![0xff, 0xfe])])
        .unwrap_err();
    assert_error(&e, Kind::Invalid, &["argument 1 (s): invalid UTF-8"]);
}

#[test]
fn components_can_be_written_inline_as_wat() {
    assert_eq!(
        runtime(CORE, &[])
            .call("core:component", &[int(21)])
            .unwrap(),
        int(42)
    );
}

#[test]
fn traps_are_internal_errors_with_their_code() {
    let rt = runtime(CORE, &[]);
    let e = rt.call("core:boom", &[]).unwrap_err();
    assert_error(
        &e,
        Kind::Internal,
        &["failed to call `core:boom`", "wasm trap", "unreachable"],
    );
    assert_eq!(
        e.details().trap.as_deref(),
        Some("unreachable_code_reached")
    );
    assert_eq!(e.details().entry.as_deref(), Some("core:boom"));
    let e = rt.call("core:oob", &[]).unwrap_err();
    assert_eq!(e.details().trap.as_deref(), Some("memory_out_of_bounds"));
    // A trap leaves nothing behind: the next call works.
    assert_eq!(rt.call("core:add", &[int(1), int(1)]).unwrap(), int(2));
}

#[test]
fn a_wit_that_does_not_match_the_module_fails_the_load() {
    let yaml = r#"
namespace: core
entries:
  - name: add
    kind: function.wat
    method: add
    wit: "add: func(a: s64, b: s64) -> s64;"
    source: '(module (func (export "add") (param i32 i32) (result i32) local.get 0))'
"#;
    let e = load_error(yaml, &[]);
    assert_error(
        &e,
        Kind::Invalid,
        &["`core:add`", "does not match the core export"],
    );
    let e = load_error(
        &yaml.replace("add: func(a: s64, b: s64) -> s64;", "add: func(a: s64"),
        &[],
    );
    assert_error(&e, Kind::Invalid, &["`core:add`", "invalid wit"]);
}

#[test]
fn non_numeric_core_functions_need_wit() {
    let yaml = r#"
namespace: core
entries:
  - name: f
    kind: function.wat
    method: f
    source: '(module (func (export "f") (param v128)))'
"#;
    let e = load_error(yaml, &[]);
    assert_error(
        &e,
        Kind::Invalid,
        &["`core:f`", "give the entry a `wit` signature"],
    );
}

#[test]
fn core_modules_take_a_full_wit_world_as_signature() {
    let yaml = r#"
namespace: core
entries:
  - name: area
    kind: function.wat
    method: area
    wit: |
      package demo:shapes;
      world shapes {
        record rect { width: u32, height: u32 }
        export area: func(r: rect) -> u32;
        export scale: func(f: f64) -> f64;
      }
    source: |
      (module
        (memory (export "memory") 1)
        (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) i32.const 1024)
        (func (export "area") (param i32 i32) (result i32) (i32.mul (local.get 0) (local.get 1)))
        (func (export "scale") (param f64) (result f64) (f64.mul (local.get 0) (f64.const 2))))
  - name: scale
    kind: function.wat
    method: scale
    wit: |
      package demo:shapes;
      world shapes {
        export scale: func(f: f64) -> f64;
      }
    source: '(module (func (export "scale") (param f64) (result f64) (f64.mul (local.get 0) (f64.const 2))))'
"#;
    let rt = runtime(yaml, &[]);
    let rect = map(&[("width", int(6)), ("height", int(7))]);
    assert_eq!(rt.call("core:area", &[rect]).unwrap(), int(42));
    assert_eq!(
        rt.call("core:scale", &[Value::Float(1.5)]).unwrap(),
        Value::Float(3.0)
    );
    let e = rt
        .call("core:area", &[map(&[("width", int(6))])])
        .unwrap_err();
    assert_error(
        &e,
        Kind::Invalid,
        &["argument 1 (r): missing field `height`"],
    );
}

/// A component exporting two versions of one interface; only the newer has `z`, and both
/// have `x` (returning their minor version).
const VERSIONS: &str = r#"
(component
  (core module $m
    (func (export "one") (result i32) (i32.const 1))
    (func (export "two") (result i32) (i32.const 2)))
  (core instance $i (instantiate $m))
  (func $x1 (result u32) (canon lift (core func $i "one")))
  (func $x2 (result u32) (canon lift (core func $i "two")))
  (func $z2 (result u32) (canon lift (core func $i "two")))
  (instance $old (export "x" (func $x1)))
  (instance $new (export "x" (func $x2)) (export "z" (func $z2)))
  (export "test:dep/test@0.1.0" (instance $old))
  (export "test:dep/test@0.2.0" (instance $new)))
"#;

#[test]
fn a_method_without_version_binds_the_highest_version_that_has_it() {
    let mut yaml = String::from("namespace: v\nentries:\n");
    for (name, method) in [
        ("z", "test:dep/test#z"),
        ("x", "test#x"),
        ("x_old", "test:dep/test@0.1.0#x"),
    ] {
        yaml.push_str(&format!(
            "  - {{name: {name}, kind: function.wat, method: \"{method}\", source: file://versions.wat}}\n"
        ));
    }
    let dir = registry(&yaml, &[]);
    std::fs::write(dir.join("versions.wat"), VERSIONS).unwrap();
    let rt = Runtime::default();
    let summary = rt.load(&dir).unwrap();
    assert_eq!(rt.call("v:z", &[]).unwrap(), int(2));
    assert_eq!(rt.call("v:x", &[]).unwrap(), int(2));
    assert_eq!(rt.call("v:x_old", &[]).unwrap(), int(1));
    let bound: Vec<(&str, &str)> = summary
        .bound
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(
        bound,
        [
            ("v:x", "test:dep/test@0.2.0#x"),
            ("v:x_old", "test:dep/test@0.1.0#x"),
            ("v:z", "test:dep/test@0.2.0#z"),
        ]
    );
}

#[test]
fn functions_with_resources_in_their_results_are_refused_before_the_guest_runs() {
    // The constructor would trap if it ran: the refusal must come first, as INVALID.
    let yaml = r#"
namespace: res
entries:
  - name: make
    kind: function.wat
    method: make
    source: |
      (component
        (type $r (resource (rep i32)))
        (core module $m (func (export "make") (result i32) unreachable))
        (core instance $i (instantiate $m))
        (export $re "r" (type $r))
        (func (export "make") (result (own $re)) (canon lift (core func $i "make"))))
"#;
    let rt = runtime(yaml, &[]);
    let e = rt.call("res:make", &[]).unwrap_err();
    assert_error(
        &e,
        Kind::Invalid,
        &[
            "failed to call `res:make`",
            "`make` takes or returns resources, which live in an instance: call it on one made with funcs.instantiate",
        ],
    );
    let stats = rt
        .stats()
        .into_iter()
        .find(|(id, _)| id == "res:make")
        .unwrap()
        .1;
    assert_eq!(stats.instances, 0);
}
