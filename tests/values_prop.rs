//! Property tests of the value conversion: random WIT types, a real component that echoes a
//! `list<T>` of them through its linear memory, and random values of those types.
//!
//! Each case builds a component in WAT for its type, compiles it, and calls it through
//! [`Function`], as `funcs.call` does. Well-typed values must come back equal; ill-typed
//! ones must give an `INVALID` error that names the path, never a panic or a trap. The direct
//! path of `funcs.call` (`value::direct`) must give what the general path gives, and give up
//! on every ill-typed value before the guest runs.

use funcs::error::Kind;
use funcs::function::{Args, Function};
use funcs::limits::Limits;
use funcs::value::{self, Output, Value};
use mlua::prelude::*;
use proptest::prelude::*;

/// A WIT type, as the generator builds it.
#[derive(Debug, Clone)]
enum Ty {
    Bool,
    S8,
    U8,
    S16,
    U16,
    S32,
    U32,
    S64,
    U64,
    F32,
    F64,
    Char,
    String,
    List(Box<Ty>),
    Record(Vec<Ty>),
    Tuple(Vec<Ty>),
    Option(Box<Ty>),
    Result(Option<Box<Ty>>, Option<Box<Ty>>),
    Variant(Vec<Option<Ty>>),
    Enum(usize),
    Flags(usize),
}

fn ty() -> impl Strategy<Value = Ty> {
    let leaf = prop_oneof![
        Just(Ty::Bool),
        Just(Ty::S8),
        Just(Ty::U8),
        Just(Ty::S16),
        Just(Ty::U16),
        Just(Ty::S32),
        Just(Ty::U32),
        Just(Ty::S64),
        Just(Ty::U64),
        Just(Ty::F32),
        Just(Ty::F64),
        Just(Ty::Char),
        Just(Ty::String),
        (1usize..5).prop_map(Ty::Enum),
        (1usize..8).prop_map(Ty::Flags),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|t| Ty::List(Box::new(t))),
            prop::collection::vec(inner.clone(), 1..4).prop_map(Ty::Record),
            prop::collection::vec(inner.clone(), 1..4).prop_map(Ty::Tuple),
            inner.clone().prop_map(|t| Ty::Option(Box::new(t))),
            (
                prop::option::of(inner.clone().prop_map(Box::new)),
                prop::option::of(inner.clone().prop_map(Box::new))
            )
                .prop_map(|(ok, err)| Ty::Result(ok, err)),
            prop::collection::vec(prop::option::of(inner), 1..4).prop_map(Ty::Variant),
        ]
    })
}

/// Component WAT type definitions for a [`Ty`]: nominal types are defined and exported, in
/// dependency order, as `t0`, `t1`, ...
struct Wat {
    defs: String,
    next: usize,
}

impl Wat {
    fn ty(&mut self, ty: &Ty) -> String {
        let prim = |s: &str| s.to_string();
        match ty {
            Ty::Bool => prim("bool"),
            Ty::S8 => prim("s8"),
            Ty::U8 => prim("u8"),
            Ty::S16 => prim("s16"),
            Ty::U16 => prim("u16"),
            Ty::S32 => prim("s32"),
            Ty::U32 => prim("u32"),
            Ty::S64 => prim("s64"),
            Ty::U64 => prim("u64"),
            Ty::F32 => prim("f32"),
            Ty::F64 => prim("f64"),
            Ty::Char => prim("char"),
            Ty::String => prim("string"),
            Ty::List(t) => format!("(list {})", self.ty(t)),
            Ty::Tuple(ts) => {
                let inner: Vec<_> = ts.iter().map(|t| self.ty(t)).collect();
                format!("(tuple {})", inner.join(" "))
            }
            Ty::Option(t) => format!("(option {})", self.ty(t)),
            Ty::Result(ok, err) => {
                let ok = ok.as_ref().map(|t| self.ty(t)).unwrap_or_default();
                let err = err
                    .as_ref()
                    .map(|t| format!("(error {})", self.ty(t)))
                    .unwrap_or_default();
                format!("(result {ok} {err})")
            }
            Ty::Record(fields) => {
                let fields: Vec<_> = fields
                    .iter()
                    .enumerate()
                    .map(|(i, t)| format!("(field \"f{i}\" {})", self.ty(t)))
                    .collect();
                self.nominal(format!("(record {})", fields.join(" ")))
            }
            Ty::Variant(cases) => {
                let cases: Vec<_> = cases
                    .iter()
                    .enumerate()
                    .map(|(i, t)| match t {
                        Some(t) => format!("(case \"c{i}\" {})", self.ty(t)),
                        None => format!("(case \"c{i}\")"),
                    })
                    .collect();
                self.nominal(format!("(variant {})", cases.join(" ")))
            }
            Ty::Enum(n) => self.nominal(format!("(enum {})", names("e", *n).join(" "))),
            Ty::Flags(n) => self.nominal(format!("(flags {})", names("g", *n).join(" "))),
        }
    }

    fn nominal(&mut self, def: String) -> String {
        let n = self.next;
        self.next += 1;
        self.defs.push_str(&format!(
            "  (type $t{n}' {def})\n  (export $t{n} \"t{n}\" (type $t{n}'))\n"
        ));
        format!("$t{n}")
    }
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("\"{prefix}{i}\"")).collect()
}

/// A component exporting `echo: func(x: list<T>) -> list<T>` that hands the list back.
fn echo_component(ty: &Ty) -> String {
    let mut wat = Wat {
        defs: String::new(),
        next: 0,
    };
    let t = wat.ty(ty);
    format!(
        r#"(component
  (core module $m
    (memory (export "memory") 1)
    (global $heap (mut i32) (i32.const 1024))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32) (local $end i32) (local $have i32)
      (local.set $p (i32.and
        (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
        (i32.sub (i32.const 0) (local.get 2))))
      (local.set $end (i32.add (local.get $p) (local.get 3)))
      (local.set $have (i32.mul (memory.size) (i32.const 65536)))
      (if (i32.gt_u (local.get $end) (local.get $have))
        (then (drop (memory.grow (i32.add
          (i32.shr_u (i32.sub (local.get $end) (local.get $have)) (i32.const 16))
          (i32.const 1))))))
      (global.set $heap (local.get $end))
      (local.get $p))
    (func (export "list") (param i32 i32) (result i32)
      (i32.store (i32.const 16) (local.get 0))
      (i32.store (i32.const 20) (local.get 1))
      (i32.const 16)))
  (core instance $i (instantiate $m))
  (alias core export $i "memory" (core memory $mem))
  (alias core export $i "realloc" (core func $realloc))
{defs}  (func (export "echo") (param "x" (list {t})) (result (list {t}))
    (canon lift (core func $i "list") (memory $mem) (realloc $realloc))))
"#,
        defs = wat.defs
    )
}

fn s(v: String) -> Value {
    Value::Bytes(v.into_bytes())
}

/// A value of `ty` in the shape Lua gets back, which is also a shape Lua may pass.
fn value(ty: &Ty) -> BoxedStrategy<Value> {
    match ty {
        Ty::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        Ty::S8 => any::<i8>().prop_map(|i| Value::Int(i.into())).boxed(),
        Ty::U8 => any::<u8>().prop_map(|i| Value::Int(i.into())).boxed(),
        Ty::S16 => any::<i16>().prop_map(|i| Value::Int(i.into())).boxed(),
        Ty::U16 => any::<u16>().prop_map(|i| Value::Int(i.into())).boxed(),
        Ty::S32 => any::<i32>().prop_map(|i| Value::Int(i.into())).boxed(),
        Ty::U32 => any::<u32>().prop_map(|i| Value::Int(i.into())).boxed(),
        // u64 values above i64::MAX come back as the same bits, negative.
        Ty::S64 | Ty::U64 => any::<i64>().prop_map(Value::Int).boxed(),
        // NaN is not equal to itself; the specs check it separately.
        Ty::F32 => prop::num::f32::NORMAL
            .prop_map(|f| Value::Float(f.into()))
            .boxed(),
        Ty::F64 => prop::num::f64::NORMAL.prop_map(Value::Float).boxed(),
        Ty::Char => any::<char>().prop_map(|c| s(c.to_string())).boxed(),
        Ty::String => ".{0,12}".prop_map(s).boxed(),
        Ty::List(t) => match **t {
            // list<u8> comes back as a string of bytes.
            Ty::U8 => prop::collection::vec(any::<u8>(), 0..8)
                .prop_map(Value::Bytes)
                .boxed(),
            _ => prop::collection::vec(value(t), 0..4)
                .prop_map(Value::Array)
                .boxed(),
        },
        Ty::Tuple(ts) => ts
            .iter()
            .map(value)
            .collect::<Vec<_>>()
            .prop_map(Value::Array)
            .boxed(),
        Ty::Record(fields) => fields
            .iter()
            .map(value)
            .collect::<Vec<_>>()
            .prop_map(|vs| {
                Value::Map(
                    vs.into_iter()
                        .enumerate()
                        .map(|(i, v)| (s(format!("f{i}")), v))
                        .collect(),
                )
            })
            .boxed(),
        Ty::Option(t) => match **t {
            // option<option<T>>: an inner none cannot be told from the outer none in Lua.
            Ty::Option(_) => Just(Value::Nil).boxed(),
            _ => prop::option::of(value(t))
                .prop_map(|v| v.unwrap_or(Value::Nil))
                .boxed(),
        },
        Ty::Result(ok, err) => {
            let arm = |name: &'static str, t: &Option<Box<Ty>>| match t {
                Some(t) => value(t)
                    .prop_map(move |v| Value::Map(vec![(s(name.into()), v)]))
                    .boxed(),
                None => Just(Value::Map(vec![(s(name.into()), Value::Bool(true))])).boxed(),
            };
            prop_oneof![arm("ok", ok), arm("err", err)].boxed()
        }
        Ty::Variant(cases) => {
            let arms: Vec<_> = cases
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let name = format!("c{i}");
                    match t {
                        Some(t) => value(t)
                            .prop_map(move |v| Value::Map(vec![(s(name.clone()), v)]))
                            .boxed(),
                        None => Just(Value::Map(vec![(s(name), Value::Bool(true))])).boxed(),
                    }
                })
                .collect();
            prop::strategy::Union::new(arms).boxed()
        }
        Ty::Enum(n) => (0..*n).prop_map(|i| s(format!("e{i}"))).boxed(),
        Ty::Flags(n) => prop::collection::vec(any::<bool>(), *n)
            .prop_map(|set| {
                Value::Map(
                    set.into_iter()
                        .enumerate()
                        .filter(|(_, on)| *on)
                        .map(|(i, _)| (s(format!("g{i}")), Value::Bool(true)))
                        .collect(),
                )
            })
            .boxed(),
    }
}

/// Whether `ty` holds an `option<option<T>>`, whose inner none Lua cannot express.
fn contains_nested_option_of_option(ty: &Ty) -> bool {
    match ty {
        Ty::Option(t) => matches!(**t, Ty::Option(_)) || contains_nested_option_of_option(t),
        Ty::List(t) => contains_nested_option_of_option(t),
        Ty::Record(ts) | Ty::Tuple(ts) => ts.iter().any(contains_nested_option_of_option),
        Ty::Variant(cs) => cs.iter().flatten().any(contains_nested_option_of_option),
        Ty::Result(a, b) => [a, b]
            .into_iter()
            .flatten()
            .any(|t| contains_nested_option_of_option(t)),
        _ => false,
    }
}

/// A value of a kind `ty` can never take.
fn wrong(ty: &Ty) -> Value {
    match ty {
        Ty::Bool | Ty::String | Ty::Char => Value::Array(vec![Value::Int(1)]),
        Ty::Option(t) => wrong(t),
        Ty::Enum(_) | Ty::Flags(_) => Value::Bool(true),
        _ => Value::Bool(false),
    }
}

fn echo(ty: &Ty) -> Function {
    let bytes = wat::parse_str(echo_component(ty)).expect("generated WAT parses");
    Function::build(
        "prop:echo",
        "echo",
        &bytes,
        None,
        Limits::default(),
        Default::default(),
        1,
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", echo_component(ty)))
}

fn ty_and_values() -> impl Strategy<Value = (Ty, Vec<Value>)> {
    ty().prop_flat_map(|t| {
        let values = prop::collection::vec(value(&t), 0..4);
        (Just(t), values)
    })
}

/// A call on the direct path with `arg` as a Lua value: the result as a [`Value`], `None`
/// when the direct path gave up.
fn direct(f: &Function, lua: &Lua, arg: &Value) -> Result<Option<Value>, String> {
    let arg = value::to_lua(lua, arg).expect("a Lua value");
    let mut outcome = None;
    // SAFETY: the argument is at 1 of the protected frame, for the whole synchronous call.
    let pushed: LuaMultiValue = unsafe {
        lua.exec_raw(arg, |state| {
            let stack = f.layout().map_or(0, |l| l.stack());
            let limit = value::direct::reserve(state, stack).expect("room on the stack");
            let args = value::direct::LuaArgs::new(state, 1, limit);
            let result = f.call_direct(args, 1, &Default::default());
            mlua::ffi::lua_settop(state, 0);
            if let Ok(Some(tape)) = &result {
                value::direct::push(state, tape);
            }
            outcome = Some(result.map(|tape| tape.is_some()));
        })
    }
    .expect("exec_raw");
    match outcome.expect("ran") {
        Ok(true) => Ok(Some(canonical(
            value::from_lua(&pushed[0]).expect("a value"),
        ))),
        Ok(false) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// A call with `arg` read as an image (the arguments of a call that runs on another thread):
/// the result as a [`Value`], `None` when reading the image gave up. The tape's own
/// [`Value`] must be what Lua gets.
fn image(f: &Function, lua: &Lua, arg: &Value) -> Result<Option<Value>, String> {
    let arg = value::to_lua(lua, arg).expect("a Lua value");
    let layout = f.layout().expect("a direct function has a layout");
    let mut image = value::direct::Image::default();
    let mut taken = false;
    // SAFETY: the argument is at 1 of the protected frame.
    unsafe {
        lua.exec_raw::<()>(arg, |state| {
            taken = image.read(state, 1, 1, layout);
        })
    }
    .expect("exec_raw");
    if !taken {
        return Ok(None);
    }
    let tape = match f.call(&Args::Image(image), &Default::default()) {
        Ok(Output::Tape(tape)) => tape,
        Ok(Output::Value(v)) => return Err(format!("an image's call gave a value: {v:?}")),
        Err(e) => return Err(e.to_string()),
    };
    // SAFETY: pushed in protected mode.
    let pushed: LuaValue =
        unsafe { lua.exec_raw((), |state| value::direct::push(state, &tape)) }.expect("exec_raw");
    let pushed = canonical(value::from_lua(&pushed).expect("a value"));
    if canonical_lua(lua, &tape.to_value()) != pushed {
        return Err(format!("the tape's value is not what Lua got: {pushed:?}"));
    }
    Ok(Some(pushed))
}

/// `value` as Lua gets it back, its map keys in order (Lua tables have none).
fn canonical_lua(lua: &Lua, value: &Value) -> Value {
    canonical(value::from_lua(&value::to_lua(lua, value).expect("a Lua value")).expect("a value"))
}

fn canonical(value: Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        Value::Map(pairs) => {
            let mut pairs: Vec<_> = pairs.into_iter().map(|(k, v)| (k, canonical(v))).collect();
            pairs.sort_by(|a, b| format!("{:?}", a.0).cmp(&format!("{:?}", b.0)));
            Value::Map(pairs)
        }
        other => other,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn well_typed_values_come_back_equal((ty, items) in ty_and_values()) {
        prop_assume!(!contains_nested_option_of_option(&ty));
        let f = echo(&ty);
        // A list<u8> may go in as an array of integers; it comes back as a string of bytes.
        let expected = match ty {
            Ty::U8 => Value::Bytes(items.iter().map(|v| match v {
                Value::Int(i) => *i as u8,
                _ => unreachable!("u8 values are integers"),
            }).collect()),
            _ => Value::Array(items.clone()),
        };
        let back = f.lower(&[Value::Array(items)]).and_then(|a| f.call(&a, &Default::default())).map(Output::into_value).map_err(|e| e.to_string());
        prop_assert_eq!(back, Ok(expected), "type {:?}", ty);
    }

    #[test]
    fn ill_typed_values_are_invalid_and_name_the_path((ty, items) in ty_and_values()) {
        let f = echo(&ty);
        let mut items = items;
        items.push(wrong(&ty));
        let at = items.len();
        let e = f.lower(&[Value::Array(items)]).and_then(|a| f.call(&a, &Default::default())).unwrap_err();
        prop_assert_eq!(e.kind(), Kind::Invalid, "{}", e);
        let prefix = format!("argument 1 (x): [{at}]");
        prop_assert!(e.message().contains(&prefix), "{} for {:?}", e, ty);
    }

    #[test]
    fn the_direct_path_gives_what_the_general_path_gives((ty, items) in ty_and_values()) {
        prop_assume!(!contains_nested_option_of_option(&ty));
        let f = echo(&ty);
        prop_assert!(f.is_direct(), "type {:?}", ty);
        let lua = Lua::new();
        // What Lua passes: a nil in a tuple is a hole, which neither path takes.
        let arg = canonical_lua(&lua, &Value::Array(items));
        let general = match f.lower(std::slice::from_ref(&arg))
            .and_then(|a| f.call(&a, &Default::default())).map(Output::into_value) {
            Ok(v) => Ok(Some(canonical_lua(&lua, &v))),
            Err(e) if e.kind() == Kind::Invalid => Ok(None),
            Err(e) => Err(e.to_string()),
        };
        prop_assert_eq!(direct(&f, &lua, &arg), general.clone(), "type {:?}", ty);
        prop_assert_eq!(image(&f, &lua, &arg), general, "image, type {:?}", ty);
    }

    #[test]
    fn the_direct_path_gives_up_on_ill_typed_values((ty, items) in ty_and_values()) {
        let f = echo(&ty);
        let lua = Lua::new();
        let mut items = items;
        items.push(wrong(&ty));
        let arg = Value::Array(items);
        prop_assert_eq!(direct(&f, &lua, &arg), Ok(None), "type {:?}", ty);
        prop_assert_eq!(f.instances(), 1, "the instance it started is the only one");
        prop_assert_eq!(image(&f, &lua, &arg), Ok(None), "image, type {:?}", ty);
        prop_assert_eq!(f.instances(), 1, "an image that gives up starts no instance");
    }
}
