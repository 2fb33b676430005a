//! What an entry's instances are linked with: WASI when granted (WASIp1 for core modules),
//! and for every other import a stub that fails by name when called (`PERMISSION_DENIED`
//! for an interface funcs provides that the entry does not grant). Makes the [`Target`] of
//! a core module or a component.

use wasmtime::ExternType;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, ResourceType};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use super::exports::find_method;
use super::{CallCtx, Target};
use crate::engine::{engine, engine_for};
use crate::host::{self, HostGrant};
use crate::signature::ScalarSig;
use crate::value::CoreType;
use crate::wasi;

pub(super) fn core_target(
    module: &wasmtime::Module,
    method: &str,
    sig: Option<ScalarSig>,
    fuel: bool,
    granted: &[&str],
    hosts: &[HostGrant],
) -> Result<Target, String> {
    let ty = match module.get_export(method) {
        Some(ExternType::Func(ty)) => ty,
        Some(_) => return Err(format!("export `{method}` is not a function")),
        None => {
            let names: Vec<_> = module
                .exports()
                .filter(|e| matches!(e.ty(), ExternType::Func(_)))
                .map(|e| e.name().to_string())
                .collect();
            return Err(format!(
                "method `{method}` is not exported (functions: {})",
                names.join(", ")
            ));
        }
    };
    let core_params: Vec<_> = ty.params().collect();
    let core_results: Vec<_> = ty.results().collect();
    let (params, results) = match sig {
        Some(ScalarSig { params, results }) => {
            let fits = params.len() == core_params.len()
                && results.len() == core_results.len()
                && params
                    .iter()
                    .zip(&core_params)
                    .all(|((_, w), c)| w.matches(c))
                && results.iter().zip(&core_results).all(|(w, c)| w.matches(c));
            if !fits {
                return Err(format!(
                    "the wit signature of `{method}` does not match the core export {ty}"
                ));
            }
            (params, results)
        }
        None => {
            let scalar = |t: &wasmtime::ValType| CoreType::from_core(t);
            match (
                core_params.iter().map(scalar).collect::<Option<Vec<_>>>(),
                core_results.iter().map(scalar).collect::<Option<Vec<_>>>(),
            ) {
                (Some(p), Some(r)) => (
                    p.into_iter()
                        .enumerate()
                        .map(|(i, t)| (format!("p{}", i + 1), t))
                        .collect(),
                    r,
                ),
                _ => {
                    return Err(format!(
                        "`{method}` has non-numeric core types {ty}; give the entry a `wit` signature"
                    ));
                }
            }
        }
    };
    let mut linker = wasmtime::Linker::new(engine_for(fuel));
    // WASIp1 is one module: any granted WASI interface grants it, with the entry's config.
    let p1 = !granted.is_empty()
        && module
            .imports()
            .any(|i| i.module() == "wasi_snapshot_preview1");
    if p1 {
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, CallCtx::p1)
            .map_err(|e| format!("{e:#}"))?;
        // wasmtime-wasi's `proc_exit` ends a status above 125 with an error of text only
        // (`exit with invalid exit status outside of [0..126)`): every status ends the call
        // as an `I32Exit` here, so that it gives its `exit_code` (an AssemblyScript `abort`
        // exits 255).
        linker.allow_shadowing(true);
        linker
            .func_wrap(
                "wasi_snapshot_preview1",
                "proc_exit",
                |_: wasmtime::Caller<'_, CallCtx>, status: i32| -> wasmtime::Result<()> {
                    Err(wasmtime_wasi::I32Exit(status).into())
                },
            )
            .map_err(|e| format!("{e:#}"))?;
        linker.allow_shadowing(false);
    }
    if !p1 {
        // WASI the entry does not grant: a call into it is denied, by name.
        for import in module.imports() {
            if let (ExternType::Func(ty), "wasi_snapshot_preview1") = (import.ty(), import.module())
            {
                let denied = Ungranted(format!("wasi_snapshot_preview1::{}", import.name()));
                linker
                    .func_new(import.module(), import.name(), ty, move |_, _, _| {
                        Err(denied.clone().into())
                    })
                    .map_err(|e| format!("{e:#}"))?;
            }
        }
    }
    host::link_core(&mut linker, module, hosts)?;
    linker
        .define_unknown_imports_as_traps(module)
        .map_err(|e| format!("{e:#}"))?;
    let pre = linker
        .instantiate_pre(module)
        .map_err(|e| format!("failed to prepare instances: {e:#}"))?;
    Ok(Target::Core {
        pre,
        export: module
            .get_export_index(method)
            .ok_or_else(|| format!("no export `{method}`"))?,
        params,
        results,
        p1,
    })
}

pub(super) fn component_target(
    component: &Component,
    method: &str,
    fuel: bool,
    granted: &[&'static str],
    hosts: &[HostGrant],
    http: bool,
) -> Result<Target, String> {
    let (func, export, bound) = find_method(component, method)?;
    let mut linker = wasmtime::component::Linker::new(engine_for(fuel));
    wasi::link(&mut linker, granted).map_err(|e| format!("{e:#}"))?;
    let hosted = host::link(&mut linker, component, hosts)?;
    let lua_types = hosted.resources;
    let handler = http
        && component
            .component_type()
            .exports(engine())
            .any(|(name, _)| name.starts_with("wasi:http/incoming-handler@"));
    let mut granted = granted.to_vec();
    if handler {
        wasi::link_http(&mut linker, &mut granted).map_err(|e| format!("{e:#}"))?;
    }
    stub_imports(&mut linker, component, &granted, &hosted.names).map_err(|e| format!("{e:#}"))?;
    let pre = linker
        .instantiate_pre(component)
        .map_err(|e| format!("failed to prepare instances: {e:#}"))?;
    let handler = match handler {
        true => Some(
            ProxyPre::new(pre.clone())
                .map_err(|e| format!("not a wasi:http/proxy component: {e:#}"))?,
        ),
        false => None,
    };
    Ok(Target::Component {
        pre,
        export,
        params: func.params().map(|(n, t)| (n.to_string(), t)).collect(),
        results: func.results().collect(),
        handler,
        bound,
        lua_types,
    })
}

/// Defines every import that is not granted as a trap naming it. Granted interfaces are
/// left to the linker, which matches a guest's `@0.2.8` with our `@0.2.12` by semver
/// (wasmtime's own `define_unknown_imports_as_traps` would shadow them with stubs).
fn stub_imports(
    linker: &mut wasmtime::component::Linker<CallCtx>,
    component: &Component,
    granted: &[&str],
    hosted: &[String],
) -> wasmtime::Result<()> {
    let ty = component.component_type();
    let imports: Vec<_> = ty.imports(engine()).collect();
    let aliases = crate::host::aliases(component);
    // Resources of granted interfaces, which a stubbed interface may use (`pollable`).
    let mut real = Vec::new();
    for (name, item) in &imports {
        let unversioned = name.split('@').next().unwrap_or_default();
        if let ComponentItem::ComponentInstance(instance) = &item.ty
            && granted.contains(&unversioned)
        {
            for (export, item) in instance.exports(engine()) {
                if let ComponentItem::Resource(ty) = item.ty {
                    real.push((ty, format!("{unversioned}.{export}")));
                }
            }
        }
    }
    let resource = |ty: &ResourceType, what: &str| -> wasmtime::Result<ResourceType> {
        match real.iter().find(|(t, _)| t == ty) {
            None => Ok(ResourceType::host::<Stub>()),
            Some((_, owner)) => wasi::host_resource(owner).ok_or_else(|| {
                wasmtime::format_err!(
                    "`{what}` uses the resource `{owner}`; grant both interfaces or neither"
                )
            }),
        }
    };
    for (name, item) in imports {
        let unversioned = name.split('@').next().unwrap_or_default();
        if granted.contains(&unversioned) || hosted.iter().any(|h| h == name) {
            continue;
        }
        match item.ty {
            ComponentItem::ComponentInstance(instance) => {
                // Something funcs provides, which this entry's `imports` does not grant.
                let grantable = unversioned.starts_with("wasi:http/")
                    || wasi::grants(&[unversioned.to_string()]).is_ok_and(|g| !g.is_empty());
                let mut inner = linker.instance(name)?;
                for (export, item) in instance.exports(engine()) {
                    match item.ty {
                        ComponentItem::ComponentFunc(_) if grantable => {
                            let denied = Ungranted(format!("{name}#{export}"));
                            inner.func_new(export, move |_, _, _, _| Err(denied.clone().into()))?;
                        }
                        ComponentItem::ComponentFunc(_) => {
                            let full = format!("{name}#{export}");
                            inner.func_new(export, move |_, _, _, _| {
                                wasmtime::bail!("unknown import: `{full}` has not been defined")
                            })?;
                        }
                        ComponentItem::Resource(_)
                            if crate::host::is_alias(&aliases, name, export) => {}
                        ComponentItem::Resource(ty) => {
                            let host = resource(&ty, name)?;
                            inner.resource(export, host, |_, _| Ok(()))?;
                        }
                        _ => {}
                    }
                }
            }
            ComponentItem::ComponentFunc(_) => {
                let full = name.to_string();
                linker.root().func_new(name, move |_, _, _, _| {
                    wasmtime::bail!("unknown import: `{full}` has not been defined")
                })?;
            }
            ComponentItem::Resource(_) if crate::host::is_alias(&aliases, name, "") => {}
            ComponentItem::Resource(ty) => {
                let host = resource(&ty, name)?;
                linker.root().resource(name, host, |_, _| Ok(()))?;
            }
            _ => wasmtime::bail!("import `{name}` cannot be stubbed"),
        }
    }
    Ok(())
}

/// The host type of resources in imports nobody provides.
struct Stub;

/// A call into an import funcs could provide but the entry's `imports` does not grant.
#[derive(Debug, Clone, thiserror::Error)]
#[error("`{0}` is not granted to this entry (see its `imports`)")]
pub(super) struct Ungranted(String);
