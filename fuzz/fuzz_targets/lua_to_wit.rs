//! Fuzzes the Lua-to-WIT path: Lua values built from the input (nested tables, cycles,
//! invalid UTF-8, huge and fractional numbers, functions) are converted to `Value`s and called
//! through every export of the echo component (`spec/fixtures/echo/echo.wat`), which lowers
//! them into guest memory and lifts them back.
//!
//! Invariants: nothing panics; a failure is an `INVALID` error; a success gives a value.
#![no_main]

use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};
use funcs::error::Kind;
use funcs::runtime::Runtime;
use funcs::value::from_lua;
use libfuzzer_sys::fuzz_target;
use mlua::prelude::*;

const EXPORTS: [&str; 24] = [
    "bool", "s8", "u8", "s16", "u16", "s32", "u32", "s64", "u64", "f32", "f64", "char", "color",
    "permissions", "option_u32", "string", "bytes", "list_u32", "list_string", "list_f64",
    "shapes", "users", "sink", "pair",
];

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        let rt = Runtime::default();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec/fixtures/echo");
        rt.load(&dir).expect("the echo registry loads");
        rt
    })
}

const KEYS: [&str; 14] = [
    "id", "name", "tags", "nick", "color", "perms", "home", "shapes", "score", "raw", "pair",
    "initial", "ok", "err",
];

fn build(lua: &Lua, u: &mut Unstructured, ancestors: &mut Vec<LuaTable>) -> Result<LuaValue> {
    let depth = ancestors.len();
    Ok(match u.int_in_range(0..=11u8)? {
        0 => LuaValue::Nil,
        1 => LuaValue::Boolean(u.arbitrary()?),
        2 => LuaValue::Integer(u.arbitrary()?),
        3 => LuaValue::Number(u.arbitrary()?),
        4 => LuaValue::Integer(u.int_in_range(-2..=300)?),
        5 => LuaValue::String(lua.create_string(u.arbitrary::<&[u8]>()?).unwrap()),
        6 => LuaValue::String(lua.create_string(*u.choose(&KEYS)?).unwrap()),
        7 | 8 if depth < 12 => {
            let t = lua.create_table().unwrap();
            ancestors.push(t.clone());
            let n = u.int_in_range(0..=6)?;
            for i in 1..=n {
                let v = build(lua, u, ancestors)?;
                if u.ratio(1, 8)? {
                    let k = build(lua, u, ancestors)?;
                    let _ = t.raw_set(k, v);
                } else if u.ratio(1, 2)? {
                    t.raw_set(*u.choose(&KEYS)?, v).unwrap();
                } else {
                    t.raw_set(i, v).unwrap();
                }
            }
            ancestors.pop();
            LuaValue::Table(t)
        }
        9 if depth > 0 => LuaValue::Table(u.choose(ancestors)?.clone()),
        10 => LuaValue::Function(lua.create_function(|_, ()| Ok(())).unwrap()),
        _ => LuaValue::Number(f64::NAN),
    })
}

fn run(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let lua = Lua::new();
    let id = format!("echo:{}", u.choose(&EXPORTS)?);
    let handle = runtime().function(&id).expect("echo entries exist");
    let function = handle.0.function();
    let n = u.int_in_range(0..=3)?;
    let mut values = Vec::new();
    for i in 0..n {
        let v = build(&lua, &mut u, &mut Vec::new())?;
        match from_lua(&v) {
            Ok(v) => values.push(v),
            Err(e) => {
                assert_eq!(function.arg_error(i, e).kind(), Kind::Invalid);
                return Ok(());
            }
        }
    }
    if let Err(e) = function
        .lower(&values)
        .and_then(|a| function.call(&a, &Default::default()))
    {
        assert_eq!(e.kind(), Kind::Invalid, "{id}: {e}");
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
