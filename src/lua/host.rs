//! `funcs.host(name, functions)`: Lua functions that guests import (SPEC section 10), and
//! answering their calls on the Lua thread; resources Lua defines (SPEC section 15): the
//! Lua values crossing as them, by rep, and their `__drop`.
//!
//! The values are kept in two registry tables: `funcs.resources` (rep to value, read by
//! `value::to_lua`) and `funcs.resources.by_type` (per type, value to rep: one value is one
//! resource). A rep is forgotten once nothing refers to it (`host::resource`); `__drop` runs
//! when guests dropped their last own handle or their stores ended holding one. Both happen
//! here, at [`settle`]: on the Lua thread, inside a funcs function, never in a finalizer.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mlua::prelude::*;

use wasmtime::component::{ResourceType, Type};

use crate::error::expected;
use crate::host::resource::{self, Event};
use crate::host::{
    CALL_BYTES, CALL_STRING, FIRST_KEY, HostCall, HostInterface, HostKey, HostResource, Reps,
};
use crate::runtime::Runtime;
use crate::sync::unpoison;
use crate::value::{self, ConvError, LuaResources, Value};

/// The registry table of the reps of each resource type, by value.
const BY_TYPE: &str = "funcs.resources.by_type";

/// The Lua functions registered as host functions, by key, and with `funcs.register`, by
/// registry ID.
///
/// A registration's functions stay in the Lua registry while its [`HostInterface`] lives
/// (registered, or linked by loaded entries); when it is dropped, on whatever thread, its
/// keys come back through `released` and the functions are freed here, on the Lua thread,
/// at the next `funcs.host` or `funcs.load`.
pub(super) struct HostFns {
    runtime: Arc<Runtime>,
    /// By key, from [`FIRST_KEY`]; keys are never used twice.
    fns: RefCell<HashMap<HostKey, LuaRegistryKey>>,
    next: Cell<HostKey>,
    released: Arc<Mutex<Vec<HostKey>>>,
    registered: RefCell<HashMap<String, LuaRegistryKey>>,
    /// The `__drop` of each resource type Lua defines.
    drops: RefCell<HashMap<u32, HostKey>>,
}

impl HostFns {
    pub(super) fn new(runtime: Arc<Runtime>) -> HostFns {
        HostFns {
            runtime,
            fns: RefCell::default(),
            next: Cell::new(FIRST_KEY),
            released: Arc::default(),
            registered: RefCell::default(),
            drops: RefCell::default(),
        }
    }

    /// Frees the functions of interfaces dropped since the last time.
    pub(super) fn release(&self, lua: &Lua) {
        let keys = std::mem::take(&mut *unpoison(self.released.lock()));
        if keys.is_empty() {
            return;
        }
        let mut fns = self.fns.borrow_mut();
        for key in keys {
            if let Some(f) = fns.remove(&key) {
                let _ = lua.remove_registry_value(f);
            }
        }
        self.drops
            .borrow_mut()
            .retain(|_, key| fns.contains_key(key));
    }

    /// The Lua function `funcs.register` gave `id`.
    pub(super) fn registered(&self, lua: &Lua, id: &str) -> Option<LuaFunction> {
        let map = self.registered.borrow();
        map.get(id).and_then(|k| lua.registry_value(k).ok())
    }
}

/// `funcs.register(id, fn)`: a Lua function callable by registry ID (`funcs.call`, and
/// guests through `wippy:runtime/funcs`).
pub(super) fn register_fn(lua: &Lua, fns: &HostFns, id: &LuaValue, f: &LuaValue) -> LuaResult<()> {
    let bad = |n: usize, what: String| {
        LuaError::runtime(format!("bad argument #{n} to 'register' ({what})"))
    };
    let id = super::string_arg(id, 1, "register")?;
    match id.split_once(':') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && id.len() <= 256 => {}
        _ => return Err(bad(1, format!("`{id}` is not an ID (`namespace:name`)"))),
    }
    let LuaValue::Function(f) = f else {
        return Err(bad(2, format!("function expected, got {}", f.type_name())));
    };
    let key = lua.create_registry_value(f.clone())?;
    if let Some(old) = fns.registered.borrow_mut().insert(id, key) {
        lua.remove_registry_value(old)?;
    }
    Ok(())
}

/// `funcs.host(name, functions)`: registers the interface for the loads after.
pub(super) fn register(
    lua: &Lua,
    runtime: &Runtime,
    fns: &HostFns,
    name: &LuaValue,
    functions: &LuaValue,
) -> LuaResult<()> {
    let bad =
        |n: usize, what: String| LuaError::runtime(format!("bad argument #{n} to 'host' ({what})"));
    let name = super::string_arg(name, 1, "host")?;
    if name.is_empty() || name.len() > 256 || name.chars().any(char::is_whitespace) {
        return Err(bad(1, format!("`{name}` is not an interface name")));
    }
    if name.starts_with("wasi:") {
        return Err(bad(
            1,
            format!("`{name}`: WASI is provided by funcs, granted by `imports`"),
        ));
    }
    let LuaValue::Table(table) = functions else {
        return Err(bad(
            2,
            format!("table of functions expected, got {}", functions.type_name()),
        ));
    };
    let mut named: HashMap<String, LuaFunction> = HashMap::new();
    // Resources: (WIT name, its table's functions by WIT name: `new`, `__drop` and the rest).
    let mut resources: Vec<(String, HashMap<String, LuaFunction>)> = Vec::new();
    // Raw reads: a table's metamethods do not run.
    for pair in table.clone().pairs::<LuaValue, LuaValue>() {
        let (k, v) = pair?;
        let key = key_name(&k).map_err(|e| bad(2, e))?;
        // WIT names are kebab-case; `roundtrip_u8` names `roundtrip-u8`.
        let wit = key.replace('_', "-");
        let f = match v {
            LuaValue::Function(f) => f,
            LuaValue::Table(t) => {
                let mut functions = HashMap::new();
                for pair in t.pairs::<LuaValue, LuaValue>() {
                    let (k, v) = pair?;
                    let key = key_name(&k).map_err(|e| bad(2, format!("resource `{wit}`: {e}")))?;
                    let LuaValue::Function(f) = v else {
                        return Err(bad(
                            2,
                            format!(
                                "resource `{wit}`: `{key}` is a {}, not a function",
                                v.type_name()
                            ),
                        ));
                    };
                    let name = if key.starts_with("__") {
                        key
                    } else {
                        key.replace('_', "-")
                    };
                    if functions.insert(name.clone(), f).is_some() {
                        return Err(bad(
                            2,
                            format!(
                                "resource `{wit}`: `{name}` is given twice (as WIT and as snake_case)"
                            ),
                        ));
                    }
                }
                if resources.iter().any(|(n, _)| *n == wit) {
                    return Err(bad(
                        2,
                        format!("resource `{wit}` is given twice (as WIT and as snake_case)"),
                    ));
                }
                resources.push((wit, functions));
                continue;
            }
            v => {
                return Err(bad(
                    2,
                    format!(
                        "`{key}` is a {}, not a function (or a resource's table)",
                        v.type_name()
                    ),
                ));
            }
        };
        if named.insert(wit.clone(), f).is_some() {
            return Err(bad(
                2,
                format!("`{wit}` is given twice (as WIT and as snake_case)"),
            ));
        }
        if named.len() > 10_000 {
            return Err(bad(2, "more than 10000 functions".into()));
        }
    }
    if named.is_empty() && resources.is_empty() {
        return Err(bad(2, "no functions".into()));
    }
    // Dropped (a failure below included), it hands its keys back.
    let mut interface = HostInterface {
        name,
        functions: HashMap::new(),
        resources: HashMap::new(),
        released: Some(fns.released.clone()),
    };
    let keep = |f: LuaFunction| -> LuaResult<HostKey> {
        let key = fns.next.get();
        fns.next.set(key + 1);
        fns.fns
            .borrow_mut()
            .insert(key, lua.create_registry_value(f)?);
        Ok(key)
    };
    for (wit, f) in named {
        interface.functions.insert(wit, keep(f)?);
    }
    for (wit, functions) in resources {
        let ty = resource::new_type();
        let mut r = HostResource {
            ty,
            constructor: None,
            functions: HashMap::new(),
            drop: None,
        };
        for (name, f) in functions {
            let key = keep(f)?;
            match name.as_str() {
                "new" => r.constructor = Some(key),
                "__drop" => r.drop = Some(key),
                _ => {
                    r.functions.insert(name, key);
                }
            }
        }
        if let Some(key) = r.drop {
            fns.drops.borrow_mut().insert(ty, key);
        }
        runtime.reps().add_type(ty, &wit);
        interface.resources.insert(wit, r);
    }
    // The registration this one replaces is released now, unless loaded entries use it.
    runtime.register_host(interface);
    fns.release(lua);
    Ok(())
}

/// Answers one host call: the Lua function with the arguments converted to Lua, its first
/// result converted back; a Lua error's message otherwise.
pub(super) fn serve(lua: &Lua, fns: &HostFns, call: &HostCall) -> Result<Value, String> {
    settle(lua, fns);
    if call.key == CALL_STRING || call.key == CALL_BYTES {
        return Ok(call_target(lua, fns, call));
    }
    let f: LuaFunction = {
        let all = fns.fns.borrow();
        let key = all.get(&call.key).ok_or("the host function is gone")?;
        lua.registry_value(key).map_err(|e| e.to_string())?
    };
    let args = call
        .args
        .iter()
        .map(|v| value::to_lua(lua, v))
        .collect::<LuaResult<Vec<_>>>()
        .map_err(|e| e.to_string())?;
    // The first result only. The function may call funcs (`guard::lua_code`: the call only,
    // not the conversions around it).
    let returned: LuaValue =
        super::guard::lua_code(|| f.call(LuaMultiValue::from_vec(args))).map_err(message)?;
    let converted = match &call.result {
        Some(ty) => {
            let reps = fns.runtime.reps();
            typed(lua, reps, &returned, ty, &|r| reps.type_of(r), &|_| None)
        }
        None => value::from_lua(&returned),
    };
    converted.map_err(|e| format!("bad return value: {e}"))
}

/// A key of the table given to `funcs.host`: a non-empty string.
fn key_name(k: &LuaValue) -> Result<String, String> {
    match k {
        LuaValue::String(s) => s.to_str().map(|s| s.to_string()).ok(),
        _ => None,
    }
    .filter(|k| !k.is_empty())
    .ok_or_else(|| format!("function names must be strings, got {}", k.type_name()))
}

/// Reads `value`, given as WIT type `ty`: the places of resources Lua defines (`number`
/// tells which resource types those are) become those resources.
///
/// # Errors
/// As `value::from_lua_typed`.
pub(super) fn typed(
    lua: &Lua,
    reps: &Arc<Reps>,
    value: &LuaValue,
    ty: &Type,
    number: &dyn Fn(&ResourceType) -> Option<u32>,
    userdata: &value::Userdata<'_>,
) -> Result<Value, ConvError> {
    let crossing = |v: &LuaValue, r: &ResourceType, _own: bool| match number(r) {
        Some(ty) => resource_value(lua, reps, v, ty),
        None => value::from_lua_with(v, userdata),
    };
    let resources = LuaResources {
        is_lua: &|r| number(r).is_some(),
        value: &crossing,
    };
    value::from_lua_typed(value, ty, userdata, &resources)
}

/// The registry tables of resources Lua defines: values by rep, and reps by type and value.
fn resource_tables(lua: &Lua) -> LuaResult<(LuaTable, LuaTable)> {
    let table = |name: &str| -> LuaResult<LuaTable> {
        match lua.named_registry_value::<LuaValue>(name)? {
            LuaValue::Table(t) => Ok(t),
            _ => {
                let t = lua.create_table()?;
                lua.set_named_registry_value(name, &t)?;
                Ok(t)
            }
        }
    };
    Ok((table(value::RESOURCES)?, table(BY_TYPE)?))
}

/// What a Lua value crosses as at a place of resource type `ty`: its rep (the same while
/// anything refers to it).
fn resource_value(lua: &Lua, reps: &Arc<Reps>, v: &LuaValue, ty: u32) -> Result<Value, ConvError> {
    let conv = |e: LuaError| ConvError::new(e.to_string());
    let nan = matches!(v, LuaValue::Number(n) if n.is_nan());
    if v.is_nil() || nan {
        let got = if nan { "nan" } else { "nil" };
        let want = format!("a Lua value standing for resource `{}`", reps.name(ty));
        return Err(ConvError::new(expected(want, got)));
    }
    let (values, by_type) = resource_tables(lua).map_err(conv)?;
    let of_type = match by_type.raw_get::<LuaValue>(ty).map_err(conv)? {
        LuaValue::Table(t) => t,
        _ => {
            let t = lua.create_table().map_err(conv)?;
            by_type.raw_set(ty, &t).map_err(conv)?;
            t
        }
    };
    let rep = match of_type.raw_get::<Option<u32>>(v).map_err(conv)? {
        Some(rep) => rep,
        None => {
            let rep = resource::new_rep();
            values.raw_set(rep, v).map_err(conv)?;
            of_type.raw_set(v, rep).map_err(conv)?;
            rep
        }
    };
    Ok(Value::Lua(reps.refer(rep, ty)))
}

/// Does what guests left to the Lua thread about resources Lua defines: `__drop` for the
/// resources they dropped (or held when their stores ended), then forgets the values
/// nothing refers to. A `__drop` that raises an error is ignored (nobody waits for it).
pub(super) fn settle(lua: &Lua, fns: &HostFns) {
    let reps = fns.runtime.reps();
    let events = reps.take_events();
    if events.is_empty() {
        return;
    }
    let Ok((values, by_type)) = resource_tables(lua) else {
        return;
    };
    // Drops first: a rep given out again since it was unused is dropped before forgotten.
    for event in &events {
        let Event::Dropped { rep, ty } = *event else {
            continue;
        };
        let drop = {
            let key = fns.drops.borrow().get(&ty).copied();
            let all = fns.fns.borrow();
            key.and_then(|k| {
                all.get(&k)
                    .and_then(|f| lua.registry_value::<LuaFunction>(f).ok())
            })
        };
        let value = values.raw_get::<LuaValue>(rep).unwrap_or(LuaValue::Nil);
        if let Some(f) = drop
            && !value.is_nil()
        {
            let _ = super::guard::lua_code(|| f.call::<()>(value));
        }
    }
    for event in events {
        let Event::Unused { rep, ty } = event else {
            continue;
        };
        if reps.in_use(rep) {
            continue;
        }
        let value = values.raw_get::<LuaValue>(rep).unwrap_or(LuaValue::Nil);
        let _ = values.raw_set(rep, LuaValue::Nil);
        if let Ok(LuaValue::Table(t)) = by_type.raw_get::<LuaValue>(ty)
            && !value.is_nil()
        {
            let _ = t.raw_set(value, LuaValue::Nil);
        }
    }
}

/// A Lua error's message, without mlua's wrapping.
pub(super) fn message(e: LuaError) -> String {
    let mut m = match e {
        LuaError::RuntimeError(m) => m,
        LuaError::CallbackError { cause, .. } => return message((*cause).clone()),
        other => other.to_string(),
    };
    if let Some(at) = m.find("\nstack traceback:") {
        m.truncate(at);
    }
    m
}

/// `wippy:runtime/funcs`: calls the target (a function given to `funcs.register`, or an
/// entry) with the input as its one argument; `{ok = output}` or `{err = message}`.
fn call_target(lua: &Lua, fns: &HostFns, call: &HostCall) -> Value {
    let text = call.key == CALL_STRING;
    let result = (|| -> Result<Value, String> {
        let (target, input) = match call.args.as_slice() {
            [Value::Bytes(t), input @ (Value::Bytes(_) | Value::Array(_))] => {
                (String::from_utf8_lossy(t).into_owned(), input.clone())
            }
            _ => return Err("expected (target, input)".into()),
        };
        // An entry first, as funcs.call does; then a function given to funcs.register.
        let output = match fns.runtime.function(&target) {
            Ok(handle) => {
                let args = handle
                    .0
                    .function()
                    .lower(&[input])
                    .map_err(|e| e.to_string())?;
                let serve = |call: &HostCall| serve(lua, fns, call);
                fns.runtime
                    .call_serving(&handle, args, Default::default(), &serve)
                    .map_err(|e| e.to_string())?
                    .into_value()
            }
            Err(e) if e.kind() == crate::error::Kind::NotFound => {
                let Some(f) = fns.registered(lua, &target) else {
                    return Err(format!("invalid function target: {target}"));
                };
                let input = value::to_lua(lua, &input).map_err(|e| e.to_string())?;
                let returned: LuaValue =
                    super::guard::lua_code(|| f.call(input)).map_err(message)?;
                value::from_lua(&returned).map_err(|e| e.to_string())?
            }
            Err(e) => return Err(e.to_string()),
        };
        match output {
            Value::Bytes(b) if text && std::str::from_utf8(&b).is_err() => {
                Err(format!("`{target}` returned bytes that are not UTF-8"))
            }
            Value::Bytes(b) => Ok(Value::Bytes(b)),
            other => Err(format!(
                "`{target}` returned a {}, not a {}",
                other.type_name(),
                if text { "string" } else { "byte string" }
            )),
        }
    })();
    let (arm, payload) = match result {
        Ok(v) => ("ok", v),
        Err(e) => ("err", Value::str(e)),
    };
    Value::Map(vec![(Value::str(arm), payload)])
}
