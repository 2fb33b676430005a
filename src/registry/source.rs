//! Reading registry files: the folder walk, YAML parsing, `${env:...}` and `file://`.
//!
//! The result is a flat list of [`RawEntry`]s with every string already substituted; what an
//! entry's fields mean is `schema.rs`'s business.

use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value as Yaml};

use crate::error::{Error, Result};

/// One entry as written, before its kind's schema is applied.
#[derive(Debug, Clone)]
pub struct RawEntry {
    /// `namespace:name`.
    pub id: String,
    pub namespace: String,
    pub kind: String,
    /// The YAML file, as the user's path spells it.
    pub file: PathBuf,
    /// The folder of the YAML file, canonical.
    pub dir: PathBuf,
    /// The `meta` map (free-form), if any.
    pub meta: Option<Yaml>,
    /// Every field but `name`, `kind` and `meta`.
    pub fields: Mapping,
}

impl RawEntry {
    /// ``failed to load `id` (file): message``, with the entry and file in the details.
    pub fn error(&self, e: Error) -> Error {
        let (id, file) = (self.id.clone(), self.file.display().to_string());
        e.context(format_args!(
            "failed to load `{}` ({})",
            self.id,
            self.file.display()
        ))
        .with(|d| {
            d.entry = Some(id);
            d.file = Some(file);
        })
    }

    /// The ID an entry reference means: `name` is in this entry's namespace.
    pub fn resolve_id(&self, reference: &str) -> String {
        if reference.contains(':') {
            reference.to_string()
        } else {
            format!("{}:{reference}", self.namespace)
        }
    }
}

/// Reads `path` (a folder, recursively, or one file) into raw entries.
///
/// Returns the canonical load root (the folder, or the file's folder) and the entries in file
/// order (files sorted by path).
///
/// # Errors
/// `NOT_FOUND` for a missing path or `file://` target; `INVALID` for malformed YAML, a missing
/// `namespace`, `name` or `kind`, a `file://` path escaping the root, an unset `${env:...}`.
pub fn read(path: &Path) -> Result<(PathBuf, Vec<RawEntry>)> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::not_found(format!("failed to load {}: {e}", path.display())))?;
    let canonical = path
        .canonicalize()
        .map_err(|e| Error::not_found(format!("failed to load {}: {e}", path.display())))?;
    let (root, files) = if meta.is_dir() {
        let mut files = Vec::new();
        walk(path, &mut files)
            .map_err(|e| Error::internal(format!("failed to load {}: {e}", path.display())))?;
        files.sort();
        (canonical, files)
    } else {
        let root = canonical
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        (root, vec![path.to_path_buf()])
    };
    let mut entries = Vec::new();
    for file in files {
        read_file(&file, &root, &mut entries)?;
    }
    Ok((root, entries))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for item in std::fs::read_dir(dir)? {
        let path = item?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

fn read_file(file: &Path, root: &Path, out: &mut Vec<RawEntry>) -> Result<()> {
    let fail = |msg: String| Error::invalid(format!("failed to load {}: {msg}", file.display()));
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::not_found(format!("failed to load {}: {e}", file.display())))?;
    let doc: Yaml =
        serde_yaml_ng::from_str(&text).map_err(|e| fail(format!("invalid YAML: {e}")))?;
    if doc.is_null() {
        return Ok(()); // an empty file
    }
    let Yaml::Mapping(mut top) = doc else {
        return Err(fail(
            "expected a mapping with `namespace` and `entries`".into(),
        ));
    };
    let dir = file
        .canonicalize()
        .ok()
        .and_then(|f| f.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| root.to_path_buf());
    let namespace = match top.remove("namespace") {
        Some(Yaml::String(ns)) if valid_namespace(&ns) => ns,
        Some(other) => {
            return Err(fail(format!(
                "invalid namespace {} (dot-separated names, e.g. `app.test`)",
                describe(&other)
            )));
        }
        None => return Err(fail("namespace is required".into())),
    };
    let items = match top.remove("entries") {
        Some(Yaml::Sequence(items)) => items,
        Some(_) => return Err(fail("entries must be a list".into())),
        // A single entry at the top level.
        None if top.contains_key("name") && top.contains_key("kind") => {
            top.remove("version");
            vec![Yaml::Mapping(top)]
        }
        None => return Err(fail("entries is required".into())),
    };
    for (i, item) in items.into_iter().enumerate() {
        let Yaml::Mapping(mut fields) = item else {
            return Err(fail(format!("entries[{}] must be a mapping", i + 1)));
        };
        let name = match fields.remove("name") {
            Some(Yaml::String(name)) if valid_name(&name) => name,
            Some(other) => {
                return Err(fail(format!(
                    "entries[{}]: invalid name {}",
                    i + 1,
                    describe(&other)
                )));
            }
            None => return Err(fail(format!("entries[{}]: name is required", i + 1))),
        };
        let mut entry = RawEntry {
            id: format!("{namespace}:{name}"),
            namespace: namespace.clone(),
            kind: String::new(),
            file: file.to_path_buf(),
            dir: dir.clone(),
            meta: fields.remove("meta"),
            fields: Mapping::new(),
        };
        entry.kind = match fields.remove("kind") {
            Some(Yaml::String(kind)) => kind,
            _ => return Err(entry.error(Error::invalid("kind is required"))),
        };
        let mut body = Yaml::Mapping(fields);
        substitute(&mut body, &entry.dir, root).map_err(|e| entry.error(e))?;
        if let Yaml::Mapping(fields) = body {
            entry.fields = fields;
        }
        out.push(entry);
    }
    Ok(())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn valid_namespace(ns: &str) -> bool {
    ns.split('.').all(valid_name)
}

fn describe(v: &Yaml) -> String {
    match v {
        Yaml::String(s) => format!("`{s}`"),
        Yaml::Null => "null".into(),
        other => format!("{other:?}"),
    }
}

/// Applies `${env:...}` and then `file://` to every string under `value`.
fn substitute(value: &mut Yaml, dir: &Path, root: &Path) -> Result<()> {
    match value {
        Yaml::String(s) => {
            let expanded = expand_env(s)?;
            *s = match expanded.strip_prefix("file://") {
                Some(rel) => read_included(rel, dir, root)?,
                None => expanded,
            };
        }
        Yaml::Sequence(items) => {
            for item in items {
                substitute(item, dir, root)?;
            }
        }
        Yaml::Mapping(map) => {
            for (_, v) in map.iter_mut() {
                substitute(v, dir, root)?;
            }
        }
        Yaml::Tagged(tagged) => substitute(&mut tagged.value, dir, root)?,
        _ => {}
    }
    Ok(())
}

/// `${env:NAME}` and `${env:NAME|default}` from the process environment.
///
/// # Errors
/// An unset variable without a default, or an unclosed `${env:`.
pub fn expand_env(s: &str) -> Result<String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${env:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 6..];
        let Some(end) = after.find('}') else {
            return Err(Error::invalid(format!("unclosed `${{env:` in `{s}`")));
        };
        let spec = &after[..end];
        let (name, default) = match spec.split_once('|') {
            Some((n, d)) => (n, Some(d)),
            None => (spec, None),
        };
        match (std::env::var(name), default) {
            (Ok(v), _) => out.push_str(&v),
            (Err(_), Some(d)) => out.push_str(d),
            (Err(_), None) => {
                return Err(Error::not_found(format!(
                    "environment variable `{name}` is not set (write `${{env:{name}|default}}` for a default)"
                )));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The text of `file://rel`, resolved against `dir`, which must stay inside `root`.
fn read_included(rel: &str, dir: &Path, root: &Path) -> Result<String> {
    let path = dir.join(rel);
    let canonical = path
        .canonicalize()
        .map_err(|e| Error::not_found(format!("file://{rel}: {e}")))?;
    if !canonical.starts_with(root) {
        return Err(Error::invalid(format!(
            "file://{rel}: the path escapes the load root {}",
            root.display()
        )));
    }
    std::fs::read_to_string(&canonical).map_err(|e| Error::not_found(format!("file://{rel}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_defaults_and_errors() {
        // SAFETY: tests in this module are the only users of this variable.
        unsafe { std::env::set_var("FUNCS_TEST_SOURCE_VAR", "v") };
        assert_eq!(expand_env("a${env:FUNCS_TEST_SOURCE_VAR}b").unwrap(), "avb");
        assert_eq!(expand_env("${env:FUNCS_TEST_UNSET|d}").unwrap(), "d");
        let e = expand_env("${env:FUNCS_TEST_UNSET}").unwrap_err();
        assert!(e.message().contains("`FUNCS_TEST_UNSET` is not set"));
        assert!(expand_env("${env:X").is_err());
    }
}
