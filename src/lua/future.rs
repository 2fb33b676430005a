//! Futures: the Lua side of a call started with `async`.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use mlua::prelude::*;

use super::executor::to_lua;
use super::{error, host, number};
use crate::error::{Error, Kind};
use crate::host::HostCall;
use crate::pool::Completion;
use crate::runtime::Runtime;

/// The Lua side of a call started with `async`.
pub(super) struct Future {
    pub(super) done: Arc<Completion>,
    pub(super) id: String,
    pub(super) runtime: Arc<Runtime>,
    pub(super) fns: Rc<host::HostFns>,
    /// An instance's call (`inst:async`): its handles become userdata of that instance.
    pub(super) handles: Option<Rc<super::instance::Face>>,
}

impl Future {
    fn result(&self, lua: &Lua) -> LuaResult<LuaMultiValue> {
        host::settle(lua, &self.fns);
        let Some(result) = self.done.result() else {
            return (LuaValue::Nil, LuaValue::Nil).into_lua_multi(lua);
        };
        match &*result {
            Ok(output) => match &self.handles {
                Some(face) => face.output(lua, output),
                None => to_lua(lua, output),
            },
            Err(e) => error::fail(lua, e.clone()),
        }
    }
}

impl LuaUserData for Future {
    fn add_methods<M: LuaUserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("is_complete", |_, this, ()| Ok(this.done.is_complete()));
        methods.add_method("is_canceled", |_, this, ()| Ok(this.done.is_canceled()));
        methods.add_method("result", |lua, this, ()| this.result(lua));
        methods.add_method("wait", |lua, this, ms: Option<LuaValue>| {
            let timeout = match ms {
                None | Some(LuaValue::Nil) => None,
                Some(v) => match number(&v) {
                    // Beyond what a `Duration` holds (`math.huge`): no time limit.
                    Some(ms) if ms >= 0.0 => Duration::try_from_secs_f64(ms / 1000.0).ok(),
                    _ => {
                        return Err(LuaError::runtime(
                            "bad argument #1 to 'wait' (non-negative number of milliseconds expected)",
                        ));
                    }
                },
            };
            let completed = if this.runtime.has_hosts() {
                let until = timeout.and_then(|t| std::time::Instant::now().checked_add(t));
                let serve = |call: &HostCall| host::serve(lua, &this.fns, call);
                this.runtime.wait_serving(&this.done, until, &serve)
            } else {
                this.done.wait(timeout)
            };
            if completed {
                this.result(lua)
            } else {
                let ms = timeout.unwrap_or_default().as_millis();
                error::fail(
                    lua,
                    Error::new(
                        Kind::Timeout,
                        format!("waited {ms} ms for `{}`; the call goes on", this.id),
                    )
                    .with(|d| d.entry = Some(this.id.clone())),
                )
            }
        });
        methods.add_method("cancel", |_, this, ()| {
            this.done.cancel(
                Error::new(Kind::Canceled, format!("call of `{}` canceled", this.id))
                    .with(|d| d.entry = Some(this.id.clone())),
            );
            Ok(true)
        });
    }
}
