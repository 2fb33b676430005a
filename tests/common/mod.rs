//! Helpers shared by the integration tests: temporary registries and the fixtures.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use funcs::error::{Error, Kind};
use funcs::runtime::Runtime;
use funcs::value::Value;

/// The shared fixtures folder (`../shared/fixtures/wippy`), copied under `examples/app/wasm`
/// and `spec/fixtures` for the ones the project uses.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("spec/fixtures")
        .join(name)
}

pub fn sha256(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    format!("sha256:{}", hex::encode(funcs::compile::sha256(&bytes)))
}

/// A fresh, empty folder under the target directory.
pub fn temp_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "reg-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A folder with one `_index.yaml` holding `yaml`, plus the named fixtures copied beside it.
pub fn registry(yaml: &str, fixtures: &[&str]) -> PathBuf {
    let dir = temp_dir();
    std::fs::write(dir.join("_index.yaml"), yaml).unwrap();
    for f in fixtures {
        std::fs::copy(fixture(f), dir.join(f)).unwrap();
    }
    dir
}

/// Loads `yaml` into a new runtime, panicking on failure.
pub fn runtime(yaml: &str, fixtures: &[&str]) -> Runtime {
    let rt = Runtime::default();
    let dir = registry(yaml, fixtures);
    if let Err(e) = rt.load(&dir) {
        panic!("load failed: {e}");
    }
    rt
}

/// The error of loading `yaml`, which must fail.
pub fn load_error(yaml: &str, fixtures: &[&str]) -> Error {
    let rt = Runtime::default();
    match rt.load(&registry(yaml, fixtures)) {
        Ok(s) => panic!("load should have failed, got {s:?}"),
        Err(e) => e,
    }
}

/// Asserts kind and that the message contains every fragment.
pub fn assert_error(e: &Error, kind: Kind, fragments: &[&str]) {
    assert_eq!(e.kind(), kind, "kind of: {e}");
    for f in fragments {
        assert!(e.message().contains(f), "`{f}` not in: {e}");
    }
}

pub fn int(i: i64) -> Value {
    Value::Int(i)
}

pub fn s(v: &str) -> Value {
    Value::str(v)
}

/// A map value from string keys.
pub fn map(pairs: &[(&str, Value)]) -> Value {
    Value::Map(pairs.iter().map(|(k, v)| (s(k), v.clone())).collect())
}
