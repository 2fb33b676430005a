//! The registry: entries loaded from YAML folders, by ID, and atomic (re)loads.
//!
//! A load reads every file ([`source`]), applies each kind's schema ([`schema`]), compiles
//! the functions, and only then replaces what the previous load of the same path brought. A
//! failure anywhere leaves the registry as it was. Nothing here knows about Lua.

mod http;
pub mod schema;
pub mod source;

use crate::host::HostSet;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_yaml_ng::Value as Yaml;

use self::schema::{
    DirectoryConfig, EmptyStorageConfig, FunctionConfig, StaticStorageConfig, VariableConfig,
};
use self::source::RawEntry;
use crate::compile;
use crate::error::{Error, Result};
use crate::function::{Function, Origin, Sandbox};
use crate::limits::Limits;
use crate::outgoing::{HttpClient, Policy};
use crate::pool::{Handle, Pool, PoolSpec, Stats};
use crate::transport::http::{EndpointSpec, ServiceSpec};
use crate::wasi::{self, EnvBinding, EnvSource, Mount, WasiSpec};

/// A loaded entry.
pub enum Entry {
    Function(Arc<Handle>),
    /// `fs.directory`: the folder, absolute.
    Directory(PathBuf),
    Variable(VariableConfig),
    /// `env.storage.*`: where variables that name it are read.
    Storage(Storage),
    /// `http.service`: where it listens.
    Service(ServiceSpec),
    /// `http.router`: its service and prefix.
    Router {
        service: String,
        prefix: String,
    },
    /// `http.endpoint`: its router, method, path and function.
    Endpoint(EndpointSpec),
}

/// An `env.storage.*` entry.
pub enum Storage {
    /// `env.storage.os`: the process environment.
    Os,
    /// `env.storage.static` with its values; `env.storage.memory` starts empty (nothing
    /// writes to it).
    Values(BTreeMap<String, String>),
}

impl Entry {
    fn kind_name(&self) -> &'static str {
        match self {
            Entry::Function(_) => "function",
            Entry::Directory(_) => "fs.directory",
            Entry::Variable(_) => "env.variable",
            Entry::Storage(..) => "env.storage",
            Entry::Service(_) => "http.service",
            Entry::Router { .. } => "http.router",
            Entry::Endpoint(_) => "http.endpoint",
        }
    }
}

/// What a load brought.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// The IDs loaded, sorted.
    pub entries: Vec<String>,
    /// Entries of kinds we do not run: `(id, kind)`.
    pub skipped: Vec<(String, String)>,
    /// What each function's method bound: `(id, export)`, sorted by ID.
    pub bound: Vec<(String, String)>,
}

/// Entries by ID, and which load brought each.
#[derive(Default)]
pub struct Registry {
    /// Looked up on every call: hashed with FNV-1a, which is quicker than the default
    /// SipHash for short IDs (the IDs are the user's own, not an attacker's).
    entries: HashMap<String, Entry, BuildHasherDefault<Fnv>>,
    /// Load path (canonical) to the IDs it brought.
    loads: HashMap<PathBuf, Vec<String>>,
}

/// FNV-1a, 64 bits.
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A load, read and compiled but not yet applied.
pub struct Prepared {
    key: PathBuf,
    entries: Vec<(String, Entry)>,
    summary: Summary,
}

impl Prepared {
    /// Whether any function of this load has a deadline (and so needs the epoch ticker).
    pub fn has_deadlines(&self) -> bool {
        self.pools()
            .any(|p| p.function().limits().max_execution_ms.is_some())
    }

    /// Whether any function of this load links a host interface.
    pub fn has_hosts(&self) -> bool {
        self.pools().any(|p| p.function().has_hosts())
    }

    /// The `http.service` entries of this load that start with it, sorted by ID.
    pub fn auto_start(&self) -> Vec<(&str, &ServiceSpec)> {
        let mut services: Vec<_> = self
            .entries
            .iter()
            .filter_map(|(id, e)| match e {
                Entry::Service(s) if s.auto_start => Some((id.as_str(), s)),
                _ => None,
            })
            .collect();
        services.sort_by_key(|(id, _)| *id);
        services
    }

    /// The pools of this load's functions.
    pub fn pools(&self) -> impl Iterator<Item = &Arc<Pool>> {
        self.entries.iter().filter_map(|(_, e)| match e {
            Entry::Function(h) => Some(&h.0),
            _ => None,
        })
    }
}

impl Registry {
    /// The counters of every function's pool, by ID.
    pub fn stats(&self) -> Vec<(String, Stats)> {
        self.pools()
            .map(|(id, p)| (id.to_string(), p.stats()))
            .collect()
    }

    /// The function with ID `id`.
    ///
    /// # Errors
    /// `NOT_FOUND` for an unknown ID; `INVALID` for an entry that is not a function.
    pub fn function(&self, id: &str) -> Result<Arc<Handle>> {
        match self.entries.get(id) {
            Some(Entry::Function(f)) => Ok(f.clone()),
            Some(other) => Err(Error::invalid(format!(
                "`{id}` is not a function (kind {})",
                other.kind_name()
            ))
            .with(|d| d.entry = Some(id.to_string()))),
            None => Err(Error::not_found(format!("function `{id}` not found"))
                .with(|d| d.entry = Some(id.to_string()))),
        }
    }

    /// The entry `id` of a load being prepared (`pending`) or of the registry.
    pub(crate) fn lookup<'a>(
        &'a self,
        pending: &'a [(String, Entry)],
        id: &str,
    ) -> Option<&'a Entry> {
        pending
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, e)| e)
            .or_else(|| self.entries.get(id))
    }

    /// The ID of the `env.variable` whose public name is `name`, among the entries of a load
    /// being prepared and those loaded (except the previous load of `replacing`).
    fn public_variable(
        &self,
        pending: &[(String, Entry)],
        name: &str,
        replacing: Option<&PathBuf>,
    ) -> Option<String> {
        let replaced = replacing.and_then(|key| self.loads.get(key));
        let public = |(id, e): (&String, &Entry)| match e {
            Entry::Variable(v) if v.variable.as_deref() == Some(name) => Some(id.clone()),
            _ => None,
        };
        pending
            .iter()
            .map(|(id, e)| (id, e))
            .find_map(public)
            .or_else(|| {
                self.entries
                    .iter()
                    .filter(|(id, _)| !replaced.is_some_and(|ids| ids.contains(id)))
                    .find_map(public)
            })
    }

    /// The entry `id`, if loaded.
    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.entries.get(id)
    }

    /// Every loaded entry, by ID.
    pub fn entries(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.entries.iter()
    }

    /// The endpoints the `http.service` `service` serves: those loaded, or, with `pending`,
    /// those there will be once it is committed.
    pub fn endpoints(&self, service: &str, pending: Option<&Prepared>) -> Vec<EndpointSpec> {
        let replaced = pending.and_then(|p| self.loads.get(&p.key));
        let kept = self
            .entries
            .iter()
            .filter(|(id, _)| !replaced.is_some_and(|ids| ids.contains(id)));
        let new = pending
            .into_iter()
            .flat_map(|p| p.entries.iter().map(|(id, e)| (id, e)));
        kept.chain(new)
            .filter_map(|(_, e)| match e {
                Entry::Endpoint(ep) if ep.service.as_deref().is_none_or(|s| s == service) => {
                    Some(ep.clone())
                }
                _ => None,
            })
            .collect()
    }

    /// Every function's pool, by ID, sorted.
    pub fn pools(&self) -> impl Iterator<Item = (&str, &Arc<Pool>)> {
        let mut pools: Vec<_> = self
            .entries
            .iter()
            .filter_map(|(id, e)| match e {
                Entry::Function(h) => Some((id.as_str(), &h.0)),
                _ => None,
            })
            .collect();
        pools.sort_by_key(|(id, _)| *id);
        pools.into_iter()
    }

    /// Reads and compiles everything under `path` without changing the registry.
    ///
    /// # Errors
    /// The first problem found, naming the file, the entry and the field.
    pub fn prepare(&self, path: &Path, hosts: &HostSet) -> Result<Prepared> {
        let (_root, raw) = source::read(path)?;
        let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let mut seen = HashSet::new();
        for entry in &raw {
            if !seen.insert(entry.id.as_str()) {
                return Err(entry.error(Error::invalid("duplicate entry ID")));
            }
            if self.entries.contains_key(&entry.id)
                && !self
                    .loads
                    .get(&key)
                    .is_some_and(|ids| ids.contains(&entry.id))
            {
                return Err(entry.error(Error::invalid(
                    "duplicate entry ID (already loaded from another path)",
                )));
            }
        }

        let mut summary = Summary::default();
        let mut entries: Vec<(String, Entry)> = Vec::new();
        // Directories first: functions in the same load refer to them.
        let mut functions = Vec::new();
        let mut http_entries = Vec::new();
        for entry in &raw {
            let built = match entry.kind.as_str() {
                "fs.directory" => {
                    let c: DirectoryConfig = parse(entry)?;
                    let Some(dir) = c.directory else {
                        return Err(entry.error(field_error("directory", "directory is required")));
                    };
                    Entry::Directory(entry.dir.join(dir))
                }
                "env.variable" => {
                    let c: VariableConfig = parse(entry)?;
                    // The public name is optional (a private variable is found by its ID).
                    if let Some(name) = &c.variable {
                        if name.is_empty()
                            || !name
                                .chars()
                                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
                        {
                            return Err(entry.error(field_error(
                                "variable",
                                &format!("variable must be letters, digits and `_`, got `{name}`"),
                            )));
                        }
                        if let Some(other) = self.public_variable(&entries, name, Some(&key)) {
                            return Err(entry.error(field_error(
                                "variable",
                                &format!(
                                    "variable `{name}` is already the public name of `{other}`"
                                ),
                            )));
                        }
                    }
                    Entry::Variable(c)
                }
                "env.storage.os" => {
                    parse::<EmptyStorageConfig>(entry)?;
                    Entry::Storage(Storage::Os)
                }
                "env.storage.memory" => {
                    parse::<EmptyStorageConfig>(entry)?;
                    Entry::Storage(Storage::Values(BTreeMap::new()))
                }
                "env.storage.static" => {
                    let c: StaticStorageConfig = parse(entry)?;
                    Entry::Storage(Storage::Values(c.values))
                }
                "function.wat" | "function.wasm" => {
                    let c: FunctionConfig = parse(entry)?;
                    if let Some((field, msg)) = schema::validate(&entry.kind, &c).into_iter().next()
                    {
                        return Err(entry.error(field_error(&field, &msg)));
                    }
                    functions.push((entry, c));
                    continue;
                }
                "http.service" => Entry::Service(http::service(entry, parse(entry)?)?),
                "http.router" | "http.endpoint" => {
                    // They name each other and functions: checked once all are read.
                    http_entries.push(entry);
                    continue;
                }
                // Kinds of other runtimes (`function.lua`).
                _ => {
                    summary.skipped.push((entry.id.clone(), entry.kind.clone()));
                    continue;
                }
            };
            entries.push((entry.id.clone(), built));
        }
        for (entry, config) in functions {
            let f = self.build_function(entry, &config, &entries, hosts)?;
            summary
                .bound
                .push((entry.id.clone(), f.bound().to_string()));
            let spec = PoolSpec::from_config(config.pool.as_ref());
            // Warm instances (`pool.reuse`): no more than the pool runs at once, none idle
            // for longer than its workers may be.
            let f = f.with_warm(spec.size, spec.idle());
            let pool = Pool::new(Arc::new(f), spec);
            entries.push((entry.id.clone(), Entry::Function(Arc::new(Handle(pool)))));
        }
        // Routers before endpoints: endpoints name routers.
        http_entries.sort_by_key(|e| e.kind != "http.router");
        for entry in http_entries {
            let built = if entry.kind == "http.router" {
                http::router(entry, parse(entry)?, |id| self.lookup(&entries, id))?
            } else {
                http::endpoint(entry, parse(entry)?, |id| self.lookup(&entries, id))?
            };
            entries.push((entry.id.clone(), built));
        }
        http::check_duplicates(&entries)?;
        summary.entries = entries.iter().map(|(id, _)| id.clone()).collect();
        summary.entries.sort();
        summary.bound.sort();
        Ok(Prepared {
            key,
            entries,
            summary,
        })
    }

    /// Applies a prepared load: the entries of the previous load of the same path are replaced.
    pub fn commit(&mut self, prepared: Prepared) -> Summary {
        if let Some(old) = self.loads.remove(&prepared.key) {
            for id in old {
                self.entries.remove(&id);
            }
        }
        let ids = prepared.entries.iter().map(|(id, _)| id.clone()).collect();
        self.entries.extend(prepared.entries);
        self.loads.insert(prepared.key, ids);
        prepared.summary
    }

    fn build_function(
        &self,
        entry: &RawEntry,
        config: &FunctionConfig,
        pending: &[(String, Entry)],
        hosts: &HostSet,
    ) -> Result<Function> {
        let (bytes, origin): (_, Origin) = match entry.kind.as_str() {
            "function.wat" => {
                let source = config.source.clone().unwrap_or_default();
                let bytes =
                    compile::wat(&source).map_err(|e| entry.error(field_error("source", &e)))?;
                (bytes, Arc::new(move || compile::wat(&source)))
            }
            _ => {
                let (bytes, path) = self.read_wasm(entry, config, pending)?;
                let hash = config.hash.clone().unwrap_or_default();
                let again = move || {
                    let bytes =
                        std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                    compile::verify_hash(&bytes, &hash)?;
                    Ok(bytes)
                };
                (bytes, Arc::new(again))
            }
        };
        let method = config.method.as_deref().unwrap_or_default();
        let limits = Limits::from_config(config.limits.as_ref());
        let sandbox = self.sandbox(entry, config, pending, hosts)?;
        // Calls one instance serves; 0 and 1 both mean a fresh instance per call.
        let reuse = config
            .pool
            .as_ref()
            .and_then(|p| p.reuse)
            .map_or(1, |r| r.max(1) as usize);
        Function::build(
            &entry.id,
            method,
            &bytes,
            config.wit.as_deref(),
            limits,
            sandbox,
            reuse,
        )
        .map(|f| {
            f.with_http(config.transport.as_deref() == Some("wasi-http"))
                .with_origin(origin)
        })
        .map_err(|e| entry.error(Error::invalid(e)))
    }

    /// An entry's `imports` and `wasi`, with the env and fs entries they name resolved.
    fn sandbox(
        &self,
        entry: &RawEntry,
        config: &FunctionConfig,
        pending: &[(String, Entry)],
        hosts: &HostSet,
    ) -> Result<Sandbox> {
        // Each import is a host interface registered with `funcs.host`, or WASI.
        let mut wasi_imports = Vec::new();
        let mut host_grants = Vec::new();
        for import in config.imports.as_deref().unwrap_or_default() {
            match hosts.grant(import) {
                // One counter of host calls for the entry.
                Some(mut grant) => {
                    if let Some(first) = host_grants.first() {
                        let first: &crate::host::HostGrant = first;
                        grant.calls = first.calls.clone();
                    }
                    host_grants.push(grant);
                }
                None => wasi_imports.push(import.clone()),
            }
        }
        let granted = wasi::grants(&wasi_imports).map_err(|e| {
            let e = format!("{e} (neither WASI nor an interface registered with funcs.host)");
            entry.error(field_error("imports", &e))
        })?;
        let http = config.transport.as_deref() == Some("wasi-http");
        let http_client = match (
            granted.contains(&"wasi:http/outgoing-handler"),
            &config.http_client,
        ) {
            (true, client) => Some(Arc::new(HttpClient {
                policy: client.as_ref().map(Policy::from_config).unwrap_or_default(),
                stats: Default::default(),
            })),
            (false, None) => None,
            (false, Some(_)) => {
                return Err(entry.error(field_error(
                    "http_client",
                    "http_client needs `wasi:http` in `imports`",
                )));
            }
        };
        let Some(w) = &config.wasi else {
            return Ok(Sandbox {
                granted,
                hosts: host_grants,
                http,
                wasi: WasiSpec::default(),
                http_client,
            });
        };
        let lookup = |id: &str| self.lookup(pending, id);
        let mut env = Vec::new();
        for (i, item) in w.env.iter().enumerate() {
            let field = format!("wasi.env[{}].id", i + 1);
            let reference = item.id.as_deref().unwrap_or_default();
            // By entry ID, or else by public name.
            let by_id = entry.resolve_id(reference);
            let found = match lookup(&by_id) {
                Some(Entry::Variable(var)) => Some((by_id.clone(), var)),
                _ if !reference.contains(':') => self
                    .public_variable(pending, reference, None)
                    .and_then(|id| match lookup(&id) {
                        Some(Entry::Variable(var)) => Some((id, var)),
                        _ => None,
                    }),
                _ => None,
            };
            let Some((id, var)) = found else {
                return Err(entry.error(
                    Error::not_found(format!("env.variable `{by_id}` not found"))
                        .with(|d| d.field = Some(field)),
                ));
            };
            // The key in its storage: the public name, or else the entry's own name.
            let name = var.variable.clone().unwrap_or_else(|| {
                id.rsplit_once(':')
                    .map_or(id.as_str(), |(_, n)| n)
                    .to_string()
            });
            let source = match var.storage.as_deref().map(|s| entry.resolve_id(s)) {
                None => EnvSource::Os(name),
                Some(storage) => match lookup(&storage) {
                    Some(Entry::Storage(Storage::Os)) => EnvSource::Os(name),
                    Some(Entry::Storage(Storage::Values(values))) => {
                        EnvSource::Fixed(values.get(&name).cloned())
                    }
                    _ => {
                        return Err(entry.error(
                            Error::not_found(format!(
                                "env.storage `{storage}` of `{id}` not found"
                            ))
                            .with(|d| d.field = Some(field)),
                        ));
                    }
                },
            };
            env.push(EnvBinding {
                id,
                name: item.name.clone().unwrap_or_default(),
                required: item.required,
                source,
                default: var.default.clone(),
            });
        }
        let mut mounts = Vec::new();
        for (i, m) in w.mounts.iter().enumerate() {
            let id = entry.resolve_id(m.fs.as_deref().unwrap_or_default());
            let Some(Entry::Directory(dir)) = lookup(&id) else {
                return Err(entry.error(
                    Error::not_found(format!("fs `{id}` not found"))
                        .with(|d| d.field = Some(format!("wasi.mounts[{}].fs", i + 1))),
                ));
            };
            if !dir.is_dir() {
                return Err(entry.error(
                    Error::not_found(format!(
                        "fs `{id}`: folder {} does not exist",
                        dir.display()
                    ))
                    .with(|d| d.field = Some(format!("wasi.mounts[{}].fs", i + 1))),
                ));
            }
            mounts.push(Mount {
                host: dir.clone(),
                guest: m.guest.clone().unwrap_or_default(),
                read_only: m.read_only,
            });
        }
        Ok(Sandbox {
            granted,
            hosts: host_grants,
            http,
            wasi: WasiSpec {
                args: w.args.clone(),
                cwd: w.cwd.clone(),
                env,
                mounts,
            },
            http_client,
        })
    }

    /// The bytes of a `function.wasm` entry, hash-checked, and the file they came from.
    fn read_wasm(
        &self,
        entry: &RawEntry,
        config: &FunctionConfig,
        pending: &[(String, Entry)],
    ) -> Result<(Vec<u8>, PathBuf)> {
        let fs_id = entry.resolve_id(config.fs.as_deref().unwrap_or_default());
        let dir = match self.lookup(pending, &fs_id) {
            Some(Entry::Directory(dir)) => dir,
            Some(other) => {
                return Err(entry.error(field_error(
                    "fs",
                    &format!(
                        "`{fs_id}` is not an fs.directory (kind {})",
                        other.kind_name()
                    ),
                )));
            }
            None => {
                return Err(entry.error(
                    Error::not_found(format!("fs `{fs_id}` not found"))
                        .with(|d| d.field = Some("fs".into())),
                ));
            }
        };
        let rel = config.path.as_deref().unwrap_or_default();
        // The directory is the root of `path`: `/x.wasm`, `x.wasm` and `./x.wasm` are one
        // file, and the host's root is never read.
        let path = dir.join(rel.trim_start_matches('/'));
        let not_found = |e: std::io::Error| {
            entry.error(
                Error::not_found(format!(
                    "file `{rel}` in `{fs_id}` ({}): {e}",
                    path.display()
                ))
                .with(|d| d.field = Some("path".into())),
            )
        };
        let escapes = || {
            entry.error(field_error(
                "path",
                &format!("path `{rel}` escapes the directory of `{fs_id}`"),
            ))
        };
        // `..` may not climb above the directory, even through a folder that exists.
        let mut depth = 0usize;
        for part in Path::new(rel.trim_start_matches('/')).components() {
            match part {
                std::path::Component::ParentDir if depth == 0 => return Err(escapes()),
                std::path::Component::ParentDir => depth -= 1,
                std::path::Component::Normal(_) => depth += 1,
                _ => {}
            }
        }
        let canonical = path.canonicalize().map_err(not_found)?;
        if !canonical.starts_with(dir.canonicalize().map_err(not_found)?) {
            // A symlink inside that points out.
            return Err(escapes());
        }
        let bytes = std::fs::read(&canonical).map_err(not_found)?;
        let hash = config.hash.as_deref().unwrap_or_default();
        compile::verify_hash(&bytes, hash).map_err(|e| entry.error(field_error("hash", &e)))?;
        Ok((bytes, canonical))
    }
}

fn field_error(field: &str, message: &str) -> Error {
    let field = field.to_string();
    Error::invalid(message).with(|d| d.field = Some(field))
}

/// Applies a kind's schema to an entry's fields, naming the field path on failure.
fn parse<T: DeserializeOwned>(entry: &RawEntry) -> Result<T> {
    serde_path_to_error::deserialize(Yaml::Mapping(entry.fields.clone())).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let err = if path == "." {
            Error::invalid(inner)
        } else {
            Error::invalid(format!("{path}: {inner}")).with(|d| d.field = Some(path))
        };
        entry.error(err)
    })
}
