//! The YAML schema of our entry kinds, and the checks that span several fields.
//!
//! Every struct denies unknown fields so that typos fail the load. Required fields are
//! `Option`s here so that [`validate`] can report them with the SPEC's exact wording
//! (`method is required`) rather than serde's. Defaults are stated on each field. The configs
//! of pools, limits, outgoing HTTP and the HTTP kinds are defined by the modules that use them
//! (`pool`, `limits`, `outgoing`, `transport::http`) and re-exported here.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

pub use crate::limits::LimitsConfig;
pub use crate::outgoing::HttpClientConfig;
pub use crate::pool::PoolConfig;
pub use crate::transport::http::{EndpointConfig, LifecycleConfig, RouterConfig, ServiceConfig};

/// `kind: fs.directory`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    /// The folder, relative to the YAML file.
    pub directory: Option<String>,
    /// Permission bits for created files, as in the reference (`0755`); kept, not enforced.
    pub mode: Option<serde_yaml_ng::Value>,
}

/// `kind: env.variable`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableConfig {
    /// The public name, looked up in the storage.
    pub variable: Option<String>,
    /// An `env.storage.*` entry ID; none means the process environment.
    pub storage: Option<String>,
    /// The value when the storage has none.
    pub default: Option<String>,
}

/// `kind: env.storage.os` and `env.storage.memory`: no fields of their own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyStorageConfig {}

/// `kind: env.storage.static`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticStorageConfig {
    #[serde(default)]
    pub values: BTreeMap<String, String>,
}

/// `kind: function.wat` and `kind: function.wasm`; which fields belong to which kind is
/// checked by [`validate`] (serde's `flatten` would lose `deny_unknown_fields`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionConfig {
    /// `function.wat`: inline WAT text, or `file://...`.
    pub source: Option<String>,
    /// `function.wasm`: an `fs.directory` entry ID.
    pub fs: Option<String>,
    /// `function.wasm`: the file inside that directory.
    pub path: Option<String>,
    /// `function.wasm`: `sha256:<hex>`, checked before compiling.
    pub hash: Option<String>,
    /// The export: `name` or `interface#name`.
    pub method: Option<String>,
    /// The signature of a core module: short lines or a WIT world.
    pub wit: Option<String>,
    pub pool: Option<PoolConfig>,
    /// `payload` (the default) or `wasi-http`.
    pub transport: Option<String>,
    /// Host interfaces the entry may use.
    pub imports: Option<Vec<String>>,
    pub wasi: Option<WasiConfig>,
    pub limits: Option<LimitsConfig>,
    /// The policy of outgoing requests (`imports: [wasi:http]`); none denies them all.
    pub http_client: Option<HttpClientConfig>,
}

/// `wasi:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WasiConfig {
    #[serde(default)]
    pub args: Vec<String>,
    /// Absolute; default `/`.
    pub cwd: Option<String>,
    #[serde(default)]
    pub env: Vec<WasiEnvConfig>,
    #[serde(default)]
    pub mounts: Vec<MountConfig>,
}

/// One `wasi.env` item.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WasiEnvConfig {
    /// An `env.variable` entry ID.
    pub id: Option<String>,
    /// The name the guest sees.
    pub name: Option<String>,
    #[serde(default)]
    pub required: bool,
}

/// One `wasi.mounts` item.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountConfig {
    /// An `fs.directory` entry ID.
    pub fs: Option<String>,
    /// The absolute path the guest sees it at.
    pub guest: Option<String>,
    #[serde(default)]
    pub read_only: bool,
}

/// A problem found by [`validate`]: the field path and the message.
pub type Problem = (String, String);

/// Required fields and cross-field rules of a function entry of `kind`, with the SPEC's wording.
pub fn validate(kind: &str, common: &FunctionConfig) -> Vec<Problem> {
    let mut problems = Vec::new();
    let wat = kind == "function.wat";
    let own: [(&str, bool, bool); 4] = [
        ("source", wat, common.source.is_some()),
        ("fs", !wat, common.fs.is_some()),
        ("path", !wat, common.path.is_some()),
        ("hash", !wat, common.hash.is_some()),
    ];
    for (field, belongs, present) in own {
        if belongs && !present {
            problems.push((field.to_string(), format!("{field} is required")));
        } else if !belongs && present {
            problems.push((
                field.to_string(),
                format!("unknown field `{field}` for {kind}"),
            ));
        }
    }
    if common.method.as_deref().is_none_or(str::is_empty) {
        problems.push(("method".into(), "method is required".into()));
    }

    if let Some(t) = &common.transport
        && t != "payload"
        && t != "wasi-http"
    {
        problems.push(("transport".into(), "invalid transport type".into()));
    }
    if let Some(pool) = &common.pool {
        problems.extend(pool.validate());
    }
    if let Some(limits) = &common.limits {
        problems.extend(limits.validate());
    }
    if let Some(wasi) = &common.wasi {
        problems.extend(validate_wasi(wasi));
    }
    if let Some(client) = &common.http_client {
        problems.extend(client.validate());
    }
    problems
}

fn validate_wasi(wasi: &WasiConfig) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut push = |field: String, msg: &str| problems.push((field, msg.to_string()));
    if let Some(cwd) = &wasi.cwd
        && !cwd.starts_with('/')
    {
        push("wasi.cwd".into(), "wasi.cwd must be absolute");
    }
    let mut names = HashSet::new();
    for (i, env) in wasi.env.iter().enumerate() {
        let at = format!("wasi.env[{}]", i + 1);
        if env.id.as_deref().is_none_or(str::is_empty) {
            push(format!("{at}.id"), "wasi.env[].id is required");
        }
        match env.name.as_deref() {
            None | Some("") => push(format!("{at}.name"), "wasi.env[].name is required"),
            Some(name) if !names.insert(name) => {
                push(format!("{at}.name"), "wasi.env[].name must be unique")
            }
            Some(_) => {}
        }
    }
    let mut guests = HashSet::new();
    for (i, mount) in wasi.mounts.iter().enumerate() {
        let at = format!("wasi.mounts[{}]", i + 1);
        if mount.fs.as_deref().is_none_or(str::is_empty) {
            push(format!("{at}.fs"), "wasi.mounts[].fs is required");
        }
        match mount.guest.as_deref() {
            None | Some("") => push(format!("{at}.guest"), "wasi.mounts[].guest is required"),
            Some(g) if !g.starts_with('/') => push(
                format!("{at}.guest"),
                "wasi.mounts[].guest must be absolute",
            ),
            Some(g) if !guests.insert(g) => {
                push(format!("{at}.guest"), "wasi.mounts[].guest must be unique")
            }
            Some(_) => {}
        }
    }
    problems
}
