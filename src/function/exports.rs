//! Finding the method among a component's exports: `func`, or `iface#func` with the
//! interface named in full, without its version or by its last segment; the highest semver
//! wins when several versions export the function.

use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::{Component, ComponentExportIndex};

use crate::engine::engine;

/// Finds `func` or `iface#func` among a component's exports, and the name it bound
/// (`ns:pkg/iface@1.0.0#func`). An interface may be named in full (`ns:pkg/iface@1.0.0`),
/// without its version, or by its last segment (`iface`); a name without a version that
/// matches several exported versions binds the highest version that has the function.
pub(super) fn find_export(
    component: &Component,
    method: &str,
) -> Result<(ComponentFunc, ComponentExportIndex, String), String> {
    let not_found = || {
        format!(
            "method `{method}` is not exported (functions: {})",
            export_names(component).join(", ")
        )
    };
    let Some((iface, name)) = method.split_once('#') else {
        return match component.get_export(None, method) {
            Some((ComponentItem::ComponentFunc(func), index)) => {
                Ok((func, index, method.to_string()))
            }
            _ => Err(not_found()),
        };
    };
    let matches = |n: &str| {
        let unversioned = n.split('@').next().unwrap_or_default();
        n == iface || unversioned == iface || unversioned.rsplit('/').next() == Some(iface)
    };
    let mut best: Option<(
        Option<semver::Version>,
        ComponentFunc,
        ComponentExportIndex,
        String,
    )> = None;
    for (full, _) in component.component_type().exports(engine()) {
        if !matches(full) {
            continue;
        }
        let Some((ComponentItem::ComponentInstance(_), parent)) = component.get_export(None, full)
        else {
            continue;
        };
        let Some((ComponentItem::ComponentFunc(func), index)) =
            component.get_export(Some(&parent), name)
        else {
            continue;
        };
        let version = full
            .split_once('@')
            .and_then(|(_, v)| semver::Version::parse(v).ok());
        if best.as_ref().is_none_or(|(v, ..)| version > *v) {
            best = Some((version, func, index, format!("{full}#{name}")));
        }
    }
    best.map(|(_, func, index, bound)| (func, index, bound))
        .ok_or_else(not_found)
}

/// [`find_export`], with a resource's name (`counter`, `iface#counter`) taken for its
/// constructor (`[constructor]counter`): the method of an entry whose component exports only
/// resources, which instances use (SPEC section 15).
pub(super) fn find_method(
    component: &Component,
    method: &str,
) -> Result<(ComponentFunc, ComponentExportIndex, String), String> {
    find_export(component, method).or_else(|e| {
        let (iface, name) = match method.split_once('#') {
            Some((iface, name)) => (Some(iface), name),
            None => (None, method),
        };
        if name.starts_with('[') {
            return Err(e);
        }
        let constructor = match iface {
            Some(iface) => format!("{iface}#[constructor]{name}"),
            None => format!("[constructor]{name}"),
        };
        find_export(component, &constructor).map_err(|_| e)
    })
}

/// Every exported function, `iface#func` for those inside exported instances.
fn export_names(component: &Component) -> Vec<String> {
    let mut names = Vec::new();
    for (name, item) in component.component_type().exports(engine()) {
        match item.ty {
            ComponentItem::ComponentFunc(_) => names.push(name.to_string()),
            ComponentItem::ComponentInstance(instance) => {
                for (func, item) in instance.exports(engine()) {
                    if matches!(item.ty, ComponentItem::ComponentFunc(_)) {
                        names.push(format!("{name}#{func}"));
                    }
                }
            }
            _ => {}
        }
    }
    names
}
