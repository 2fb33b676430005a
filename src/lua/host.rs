//! `funcs.host(name, functions)`: Lua functions that guests import (SPEC section 10), and
//! answering their calls on the Lua thread.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mlua::prelude::*;

use crate::host::{CALL_BYTES, CALL_STRING, FIRST_KEY, HostCall, HostInterface, HostKey};
use crate::runtime::Runtime;
use crate::sync::unpoison;
use crate::value::{self, Value};

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
}

impl HostFns {
    pub(super) fn new(runtime: Arc<Runtime>) -> HostFns {
        HostFns {
            runtime,
            fns: RefCell::default(),
            next: Cell::new(FIRST_KEY),
            released: Arc::default(),
            registered: RefCell::default(),
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
    // Raw reads: a table's metamethods do not run.
    for pair in table.clone().pairs::<LuaValue, LuaValue>() {
        let (k, v) = pair?;
        let key = match &k {
            LuaValue::String(s) => s.to_str().map(|s| s.to_string()).ok(),
            _ => None,
        };
        let Some(key) = key.filter(|k| !k.is_empty()) else {
            return Err(bad(
                2,
                format!("function names must be strings, got {}", k.type_name()),
            ));
        };
        let LuaValue::Function(f) = v else {
            return Err(bad(
                2,
                format!("`{key}` is a {}, not a function", v.type_name()),
            ));
        };
        // WIT names are kebab-case; `roundtrip_u8` names `roundtrip-u8`.
        let wit = key.replace('_', "-");
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
    if named.is_empty() {
        return Err(bad(2, "no functions".into()));
    }
    // Dropped (a failure below included), it hands its keys back.
    let mut interface = HostInterface {
        name,
        functions: HashMap::new(),
        released: Some(fns.released.clone()),
    };
    for (wit, f) in named {
        let key = fns.next.get();
        fns.next.set(key + 1);
        fns.fns
            .borrow_mut()
            .insert(key, lua.create_registry_value(f)?);
        interface.functions.insert(wit, key);
    }
    // The registration this one replaces is released now, unless loaded entries use it.
    runtime.register_host(interface);
    fns.release(lua);
    Ok(())
}

/// Answers one host call: the Lua function with the arguments converted to Lua, its first
/// result converted back; a Lua error's message otherwise.
pub(super) fn serve(lua: &Lua, fns: &HostFns, call: &HostCall) -> Result<Value, String> {
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
    value::from_lua(&returned).map_err(|e| format!("bad return value: {e}"))
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
