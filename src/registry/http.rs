//! The registry's side of the HTTP kinds: `http.service`, `http.router` and `http.endpoint`
//! entries checked (addresses, limits, prefixes, methods, paths, the functions they name)
//! and made into the specs the server runs ([`ServiceSpec`], [`EndpointSpec`]).

use std::collections::HashMap;
use std::time::Duration;

use hyper::Method;

use super::Entry;
use super::source::RawEntry;
use crate::error::{Error, Result};
use crate::transport::http::{
    DEFAULT_BODY_TIMEOUT_MS, DEFAULT_GRACE_MS, DEFAULT_HEADER_TIMEOUT_MS, DEFAULT_MAX_BODY,
    DEFAULT_MAX_CONNECTIONS, EndpointConfig, EndpointSpec, RouterConfig, ServiceConfig,
    ServiceSpec,
};

/// A string of the entry's `meta` map (`meta.server`, `meta.router`), or "".
fn meta(entry: &RawEntry, key: &str) -> String {
    entry
        .meta
        .as_ref()
        .and_then(|m| m.get(key))
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

fn invalid(entry: &RawEntry, field: &str, message: String) -> Error {
    let field = field.to_string();
    entry.error(Error::invalid(message).with(|d| d.field = Some(field)))
}

pub(crate) fn service(entry: &RawEntry, c: ServiceConfig) -> Result<ServiceSpec> {
    let addr = c.addr.unwrap_or_default();
    if addr
        .rsplit_once(':')
        .is_none_or(|(_, port)| port.parse::<u16>().is_err())
    {
        return Err(invalid(
            entry,
            "addr",
            format!("addr must be host:port, got `{addr}`"),
        ));
    }
    // Zero and absurd values would make a service that serves nothing or never stops.
    let ms = |field: &str, v: Option<u64>, default: u64| match v {
        None => Ok(Duration::from_millis(default)),
        Some(ms) if (1..=crate::limits::MAX_TIMEOUT_MS).contains(&ms) => {
            Ok(Duration::from_millis(ms))
        }
        Some(ms) => Err(invalid(
            entry,
            field,
            format!("{field} must be between 1 and 2^40, got {ms}"),
        )),
    };
    let metrics = match c.metrics {
        Some(path) if !path.starts_with('/') => {
            return Err(invalid(
                entry,
                "metrics",
                format!("metrics must be a path starting with `/`, got `{path}`"),
            ));
        }
        path => path,
    };
    let max_connections = match c.max_connections {
        None => DEFAULT_MAX_CONNECTIONS,
        Some(n) if (1..=1 << 20).contains(&n) => n,
        Some(n) => {
            return Err(invalid(
                entry,
                "max_connections",
                format!("max_connections must be between 1 and 1048576, got {n}"),
            ));
        }
    };
    Ok(ServiceSpec {
        addr,
        auto_start: c.lifecycle.is_some_and(|l| l.auto_start),
        max_body: c.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY),
        header_timeout: ms(
            "header_timeout_ms",
            c.header_timeout_ms,
            DEFAULT_HEADER_TIMEOUT_MS,
        )?,
        body_timeout: ms(
            "body_timeout_ms",
            c.body_timeout_ms,
            DEFAULT_BODY_TIMEOUT_MS,
        )?,
        max_connections: max_connections as usize,
        grace: ms("grace_ms", c.grace_ms, DEFAULT_GRACE_MS)?,
        metrics,
    })
}

pub(crate) fn router<'a>(
    entry: &RawEntry,
    c: RouterConfig,
    lookup: impl Fn(&str) -> Option<&'a Entry>,
) -> Result<Entry> {
    let service = entry.resolve_id(&meta(entry, "server"));
    if !matches!(lookup(&service), Some(Entry::Service(_))) {
        return Err(invalid(
            entry,
            "meta.server",
            format!("unknown http.service `{service}`"),
        ));
    }
    let prefix = c
        .prefix
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_string();
    if !prefix.is_empty() && !prefix.starts_with('/') {
        return Err(invalid(
            entry,
            "prefix",
            format!("prefix must start with `/`, got `{prefix}`"),
        ));
    }
    Ok(Entry::Router { service, prefix })
}

pub(crate) fn endpoint<'a>(
    entry: &RawEntry,
    c: EndpointConfig,
    lookup: impl Fn(&str) -> Option<&'a Entry>,
) -> Result<Entry> {
    let router = meta(entry, "router");
    let (service, prefix) = if router.is_empty() {
        (None, "")
    } else {
        let router = entry.resolve_id(&router);
        let Some(Entry::Router { service, prefix }) = lookup(&router) else {
            return Err(invalid(
                entry,
                "meta.router",
                format!("unknown http.router `{router}`"),
            ));
        };
        (Some(service.clone()), prefix.as_str())
    };
    let method = c.method.unwrap_or_default().to_ascii_uppercase();
    let method = Method::from_bytes(method.as_bytes())
        .ok()
        .filter(|_| !method.is_empty())
        .ok_or_else(|| invalid(entry, "method", format!("invalid method `{method}`")))?;
    let path = c.path.unwrap_or_default();
    if !path.starts_with('/') {
        return Err(invalid(
            entry,
            "path",
            format!("path must start with `/`, got `{path}`"),
        ));
    }
    let func = entry.resolve_id(&c.func.unwrap_or_default());
    match lookup(&func) {
        Some(Entry::Function(h)) if h.0.function().is_http() => {}
        Some(Entry::Function(_)) => {
            return Err(invalid(
                entry,
                "func",
                format!("function `{func}` does not have `transport: wasi-http`"),
            ));
        }
        _ => return Err(invalid(entry, "func", format!("unknown function `{func}`"))),
    }
    Ok(Entry::Endpoint(EndpointSpec {
        service,
        method,
        path: format!("{prefix}{path}"),
        func,
    }))
}

/// Two endpoints of one service with the same method and path in one load fail it, and so
/// does a `GET` endpoint on the path where its service serves the metrics.
pub(crate) fn check_duplicates(pending: &[(String, Entry)]) -> Result<()> {
    let metrics: Vec<(&str, &str)> = pending
        .iter()
        .filter_map(|(id, e)| match e {
            Entry::Service(s) => s.metrics.as_deref().map(|m| (id.as_str(), m)),
            _ => None,
        })
        .collect();
    let mut seen: HashMap<(Option<String>, Method, String), &str> = HashMap::new();
    for (id, e) in pending {
        if let Entry::Endpoint(ep) = e {
            let shadowed = metrics.iter().find(|(service, path)| {
                ep.method == Method::GET
                    && *path == ep.path
                    && ep.service.as_deref().is_none_or(|s| s == *service)
            });
            if let Some((service, path)) = shadowed {
                return Err(Error::invalid(format!(
                    "endpoint `{id}` serves GET {path}, where http.service `{service}` serves its metrics"
                ))
                .with(|d| d.entry = Some(id.clone())));
            }
            let key = (ep.service.clone(), ep.method.clone(), ep.path.clone());
            if let Some(other) = seen.insert(key, id) {
                return Err(Error::invalid(format!(
                    "endpoints `{other}` and `{id}` both serve {} {}",
                    ep.method, ep.path
                ))
                .with(|d| d.entry = Some(id.clone())));
            }
        }
    }
    Ok(())
}
