//! The `funcs` table Lua gets from `require("funcs")`, and everything that touches mlua
//! userdata.
//!
//! API misuse (a non-string ID) raises a Lua error; failures of loading and calling return
//! `nil, err` with an [`error::ErrorObject`].

pub mod error;
mod executor;
mod fast;
mod future;
mod guard;
mod host;
mod instance;
mod live;
mod methods;

use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use mlua::prelude::*;

use crate::engine::Allocator;
use crate::error::Error;
use crate::host::HostCall;
use crate::pool::{Completion, Handle, Stats};
use crate::registry::Summary;
use crate::runtime::Runtime;
use crate::value;
use executor::Executor;
use future::Future;

/// The module entry point: `luaopen_funcs` when built with the `module` feature.
///
/// # Errors
/// Only Lua's own failures (out of memory).
#[cfg_attr(feature = "module", mlua::lua_module(name = "funcs"))]
pub fn funcs(lua: &Lua) -> LuaResult<LuaTable> {
    module(lua)
}

/// Builds the module table around a new [`Runtime`].
///
/// # Errors
/// Only Lua's own failures (out of memory).
pub fn module(lua: &Lua) -> LuaResult<LuaTable> {
    value::direct::install(lua)?;
    let runtime = Arc::new(Runtime::default());
    let funcs = lua.create_table()?;
    let fns = Rc::new(host::HostFns::new(runtime.clone()));

    let (rt, f) = (runtime.clone(), fns.clone());
    funcs.set(
        "host",
        lua.create_function(move |lua, (name, functions): (LuaValue, LuaValue)| {
            host::register(lua, &rt, &f, &name, &functions).map(|()| true)
        })?,
    )?;

    let (rt, f) = (runtime.clone(), fns.clone());
    funcs.set(
        "load",
        lua.create_function(move |lua, path: LuaValue| {
            let path = string_arg(&path, 1, "load")?;
            let loaded = rt.load(Path::new(&path));
            // Registrations the reloaded entries held may be gone now.
            f.release(lua);
            match loaded {
                Ok(summary) => summary_table(lua, &summary)?.into_lua_multi(lua),
                Err(e) => error::fail(lua, e),
            }
        })?,
    )?;

    let default = Executor::new(runtime.clone(), fns.clone());
    let f = fns.clone();
    funcs.set(
        "register",
        lua.create_function(move |lua, (id, fun): (LuaValue, LuaValue)| {
            host::register_fn(lua, &f, &id, &fun).map(|()| true)
        })?,
    )?;

    // A C function that makes direct calls itself and leaves the rest to this one.
    let executor = default.clone();
    let general =
        lua.create_function(move |lua, (id, args): (LuaValue, LuaVariadic<LuaValue>)| {
            executor.call(lua, &id, args, "call", false)
        })?;
    funcs.set("call", fast::call(lua, default.clone(), general)?)?;
    let executor = default.clone();
    funcs.set(
        "async",
        lua.create_function(move |lua, (id, args): (LuaValue, LuaVariadic<LuaValue>)| {
            executor.start(lua, &id, &args, "async")
        })?,
    )?;
    let executor = default.clone();
    funcs.set(
        "new",
        lua.create_function(move |lua, ()| executor::userdata(lua, executor.clone()))?,
    )?;

    let ctx = Rc::new(instance::Ctx::new(lua, runtime.clone(), fns.clone()));
    funcs.set(
        "instantiate",
        lua.create_function(move |lua, (id, options): (LuaValue, Option<LuaValue>)| {
            instance::instantiate(lua, &ctx, &id, options)
        })?,
    )?;

    let rt = runtime.clone();
    funcs.set(
        "stats",
        lua.create_function(move |lua, id: Option<LuaValue>| {
            let all = rt.stats();
            match id {
                None | Some(LuaValue::Nil) => {
                    let t = lua.create_table()?;
                    for (id, stats) in &all {
                        t.set(id.as_str(), stats_table(lua, stats)?)?;
                    }
                    t.into_lua_multi(lua)
                }
                Some(id) => {
                    let id = string_arg(&id, 1, "stats")?;
                    match all.iter().find(|(i, _)| *i == id) {
                        Some((_, stats)) => stats_table(lua, stats)?.into_lua_multi(lua),
                        None => {
                            error::fail(lua, Error::not_found(format!("function `{id}` not found")))
                        }
                    }
                }
            }
        })?,
    )?;

    let rt = runtime.clone();
    funcs.set(
        "describe",
        lua.create_function(move |lua, id: LuaValue| {
            let id = string_arg(&id, 1, "describe")?;
            match rt.function(&id) {
                Ok(handle) => describe_table(lua, &handle)?.into_lua_multi(lua),
                Err(e) => error::fail(lua, e),
            }
        })?,
    )?;

    let rt = runtime.clone();
    funcs.set(
        "metrics",
        lua.create_function(move |_, ()| Ok(rt.metrics()))?,
    )?;

    // Event loops (SPEC section 12): watch `fd()` for reading, then `poll()`.
    let rt = runtime.clone();
    funcs.set(
        "fd",
        lua.create_function(move |lua, ()| match rt.fd() {
            Ok(fd) => fd.into_lua_multi(lua),
            Err(e) => error::fail(lua, e),
        })?,
    )?;
    let (rt, f) = (runtime.clone(), fns.clone());
    funcs.set(
        "poll",
        lua.create_function(move |lua, ()| {
            // Host calls first: clearing the descriptor after them leaves no stale byte.
            rt.serve_waiting(&|call: &HostCall| host::serve(lua, &f, call));
            host::settle(lua, &f);
            Ok(rt.poll())
        })?,
    )?;

    let (rt, f) = (runtime.clone(), fns.clone());
    funcs.set(
        "shutdown",
        lua.create_function(move |lua, ()| {
            rt.shutdown();
            // The `__drop` of resources Lua defines that closed instances held.
            host::settle(lua, &f);
            Ok(())
        })?,
    )?;

    let http = lua.create_table()?;
    let rt = runtime.clone();
    http.set(
        "start",
        lua.create_function(move |lua, id: LuaValue| {
            let id = string_arg(&id, 1, "start")?;
            match rt.start_http(&id) {
                Ok(addr) => addr.to_string().into_lua_multi(lua),
                Err(e) => error::fail(lua, e),
            }
        })?,
    )?;
    let rt = runtime.clone();
    http.set(
        "stop",
        lua.create_function(move |lua, id: LuaValue| {
            let id = string_arg(&id, 1, "stop")?;
            match rt.stop_http(&id) {
                Ok(()) => true.into_lua_multi(lua),
                Err(e) => error::fail(lua, e),
            }
        })?,
    )?;
    let rt = runtime.clone();
    http.set(
        "addr",
        lua.create_function(move |_, id: LuaValue| {
            let id = string_arg(&id, 1, "addr")?;
            Ok(rt.http_addr(&id).map(|a| a.to_string()))
        })?,
    )?;
    let (rt, f) = (runtime.clone(), fns.clone());
    http.set(
        "serve",
        lua.create_function(move |lua, id: LuaValue| {
            let id = string_arg(&id, 1, "serve")?;
            if rt.http_addr(&id).is_none()
                && let Err(e) = rt.start_http(&id)
            {
                return error::fail(lua, e);
            }
            // Serves until the process is stopped, answering host calls (this thread has
            // nothing else to do).
            let never = Completion::new();
            loop {
                rt.wait_serving(&never, None, &|call: &HostCall| host::serve(lua, &f, call));
            }
        })?,
    )?;
    funcs.set("http", http)?;

    funcs.set(
        "engine",
        lua.create_function(|lua, ()| {
            let t = lua.create_table()?;
            match crate::engine::allocator() {
                Allocator::Pooling => t.set("allocator", "pooling")?,
                Allocator::OnDemand(reason) => {
                    t.set("allocator", "on-demand")?;
                    t.set("reason", reason.as_deref())?;
                }
            }
            t.set("wasmtime", crate::engine::WASMTIME_VERSION)?;
            // What a long-lived process holds: pools alive (reloaded ones until their last
            // call ends) and instances holding slots of the pooling allocator.
            t.set("pools", crate::pool::live_pools())?;
            if let Some((core, component)) = crate::engine::live_instances() {
                t.set("core_instances", core)?;
                t.set("component_instances", component)?;
            }
            Ok(t)
        })?,
    )?;

    // Stock Lua has no wall clock finer than a second: scripts timing calls use this.
    let origin = std::time::Instant::now();
    funcs.set(
        "clock",
        lua.create_function(move |_, ()| Ok(origin.elapsed().as_secs_f64()))?,
    )?;

    // The metatables of our userdata, checked against userdata given them by `debug`.
    let samples = [
        guard::userdata(lua, default.clone())?,
        guard::userdata(
            lua,
            Future {
                done: Completion::new(),
                id: String::new(),
                runtime: runtime.clone(),
                fns: fns.clone(),
                handles: None,
            },
        )?,
        guard::userdata(lua, error::ErrorObject(Error::internal("")))?,
    ];
    for sample in &samples {
        guard::guard(lua, sample)?;
    }
    // An executor's own `call` (its user value) first, then the shared methods.
    methods::install(lua, &samples[0], true)?;

    // Lua 5.1: no call of funcs from a finalizer interrupting another (see `guard`).
    guard::reentry(lua, &funcs)?;
    funcs.set("errors", error::kinds(lua)?)?;
    funcs.set("_VERSION", env!("CARGO_PKG_VERSION"))?;
    Ok(funcs)
}

/// A Lua number, integer or float.
pub(super) fn number(v: &LuaValue) -> Option<f64> {
    match v {
        LuaValue::Integer(i) => Some(*i as f64),
        LuaValue::Number(n) => Some(*n),
        _ => None,
    }
}

fn stats_table(lua: &Lua, s: &Stats) -> LuaResult<LuaTable> {
    let t = lua.create_table()?;
    t.set("pool", s.kind)?;
    t.set("calls", s.calls)?;
    t.set("failures", s.failures)?;
    t.set("in_flight", s.in_flight)?;
    t.set("queued", s.queued)?;
    t.set("workers", s.workers)?;
    t.set("instances", s.instances)?;
    t.set("warm_instances", s.warm_instances)?;
    t.set("host_calls", s.host_calls)?;
    t.set("open_instances", s.open_instances)?;
    t.set("live_handles", s.live_handles)?;
    t.set("http_requests", s.http_client.requests)?;
    t.set("http_denied", s.http_client.denied)?;
    t.set("http_sent_bytes", s.http_client.sent_bytes)?;
    t.set("http_received_bytes", s.http_client.received_bytes)?;
    t.set("direct", s.direct)?;
    Ok(t)
}

/// `funcs.describe`'s table: what it takes to call an entry.
fn describe_table(lua: &Lua, handle: &Handle) -> LuaResult<LuaTable> {
    let pool = &handle.0;
    let f = pool.function();
    let t = lua.create_table()?;
    t.set("id", f.id())?;
    t.set("export", f.bound())?;
    match f.signature() {
        Ok(text) => t.set("signature", text)?,
        Err(e) => t.set("signature_error", e)?,
    }
    // The resources it exports, for instances (SPEC section 15).
    if let Ok(resources) = f.resources() {
        let list = lua.create_table()?;
        for (name, interface, wit) in resources {
            let r = lua.create_table()?;
            r.set("name", name)?;
            r.set("interface", interface)?;
            r.set("wit", wit)?;
            list.push(r)?;
        }
        t.set("resources", list)?;
    }
    let spec = pool.spec();
    let p = lua.create_table()?;
    p.set("type", spec.kind.as_str())?;
    p.set("size", spec.size)?;
    if spec.buffer != usize::MAX {
        p.set("buffer", spec.buffer)?;
    }
    p.set("warm_start", spec.warm_start)?;
    t.set("pool", p)?;
    let limits = f.limits();
    let l = lua.create_table()?;
    l.set("max_execution_ms", limits.max_execution_ms)?;
    l.set("max_memory_bytes", limits.max_memory_bytes)?;
    l.set("max_fuel", limits.max_fuel)?;
    t.set("limits", l)?;
    t.set(
        "imports",
        lua.create_sequence_from(f.granted().iter().copied().chain(f.host_interfaces()))?,
    )?;
    t.set("http", f.is_http())?;
    t.set("direct", pool.is_direct())?;
    if let Some(client) = f.http_client_policy() {
        let c = lua.create_table()?;
        let hosts = client.allowed_hosts.iter().map(ToString::to_string);
        c.set("allowed_hosts", lua.create_sequence_from(hosts)?)?;
        c.set("allow_private_ip", client.allow_private_ip)?;
        c.set("timeout_ms", client.timeout_ms)?;
        c.set("max_response_bytes", client.max_response_bytes)?;
        c.set("max_request_bytes", client.max_request_bytes)?;
        t.set("http_client", c)?;
    }
    Ok(t)
}

/// A string argument, or a Lua error in the style of `luaL_argerror`.
pub(super) fn string_arg(v: &LuaValue, n: usize, func: &str) -> LuaResult<String> {
    match v {
        LuaValue::String(s) => Ok(s.to_string_lossy()),
        other => Err(LuaError::runtime(format!(
            "bad argument #{n} to '{func}' (string expected, got {})",
            // Lua's own `type()` names: integers are numbers too.
            if other.is_integer() {
                "number"
            } else {
                other.type_name()
            }
        ))),
    }
}

/// `{entries = {"ns:a", ...}, skipped = {{id = "ns:b", kind = "function.lua"}, ...},
/// bound = {["ns:a"] = "ns:pkg/iface@0.2.0#func", ...}}`.
fn summary_table(lua: &Lua, summary: &Summary) -> LuaResult<LuaTable> {
    let t = lua.create_table()?;
    t.set(
        "entries",
        lua.create_sequence_from(summary.entries.iter().cloned())?,
    )?;
    let skipped = lua.create_table()?;
    for (id, kind) in &summary.skipped {
        let item = lua.create_table()?;
        item.set("id", id.as_str())?;
        item.set("kind", kind.as_str())?;
        skipped.push(item)?;
    }
    t.set("skipped", skipped)?;
    let bound = lua.create_table()?;
    for (id, export) in &summary.bound {
        bound.set(id.as_str(), export.as_str())?;
    }
    t.set("bound", bound)?;
    Ok(t)
}
