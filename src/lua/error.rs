//! The Lua face of [`Error`]: `err:kind()`, `err:message()`, `err:retryable()`,
//! `err:details()`, `tostring(err)`, and the `funcs.errors` constants.

use mlua::prelude::*;

use crate::error::{Error, Kind};

/// An [`Error`] as Lua userdata.
pub struct ErrorObject(pub Error);

impl LuaUserData for ErrorObject {
    fn add_methods<M: LuaUserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("kind", |_, this, ()| Ok(this.0.kind().as_str()));
        methods.add_method("message", |_, this, ()| Ok(this.0.message().to_string()));
        methods.add_method("retryable", |_, this, ()| Ok(this.0.kind().retryable()));
        methods.add_method("details", |lua, this, ()| details(lua, &this.0));
        methods.add_meta_method(LuaMetaMethod::ToString, |_, this, ()| {
            Ok(this.0.message().to_string())
        });
    }
}

fn details(lua: &Lua, e: &Error) -> LuaResult<LuaTable> {
    let d = e.details();
    let t = lua.create_table()?;
    t.set("kind", e.kind().as_str())?;
    for (key, value) in [
        ("entry", &d.entry),
        ("file", &d.file),
        ("field", &d.field),
        ("method", &d.method),
        ("path", &d.path),
        ("trap", &d.trap),
        ("backtrace", &d.backtrace),
        ("host", &d.host),
    ] {
        if let Some(v) = value {
            t.set(key, v.as_str())?;
        }
    }
    if let Some(i) = d.argument {
        t.set("argument", i)?;
    }
    if let Some(code) = d.exit_code {
        t.set("exit_code", code)?;
    }
    Ok(t)
}

/// `nil, err` for a failed operation.
pub fn fail(lua: &Lua, e: Error) -> LuaResult<LuaMultiValue> {
    (LuaValue::Nil, super::guard::userdata(lua, ErrorObject(e))?).into_lua_multi(lua)
}

/// `funcs.errors`: `INVALID = "INVALID"`, ...
pub fn kinds(lua: &Lua) -> LuaResult<LuaTable> {
    let t = lua.create_table()?;
    for kind in Kind::ALL {
        t.set(kind.as_str(), kind.as_str())?;
    }
    Ok(t)
}
