//! Bytes to compiled artefacts: WAT text, hash checks, core/component detection, sharing, and
//! word on stderr while a compilation keeps a load waiting (`progress`).
//!
//! Two entries whose bytes are the same share one compiled [`Artefact`], found by the SHA-256
//! of the bytes while any entry still holds it; across processes, [`cache`] keeps them on
//! disk, under a name made of that hash, the engine settings that decide compatibility
//! (`Engine::precompile_compatibility_hash`) and the wasmtime version, and wasmtime itself
//! refuses an artefact made by another version or configuration: anything that does not
//! check out is compiled again and the file replaced. This module does not know about
//! entries or Lua; errors are plain messages that the registry puts in context.

pub mod cache;
mod progress;

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, Weak};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Engine, Module};

use self::progress::Progress;
use crate::engine::{WASMTIME_VERSION, engine_for};
use crate::sync::unpoison;

/// A compiled core module or component.
pub enum Artefact {
    Module(Module),
    Component(Component),
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Checks `bytes` against a registry hash, `sha256:<hex>`.
///
/// # Errors
/// `hash verification failed: ...` with the SPEC's wording for a malformed hash, another
/// algorithm, or a mismatch.
pub fn verify_hash(bytes: &[u8], hash: &str) -> Result<(), String> {
    let check = || -> Result<(), String> {
        let Some((alg, hex_digest)) = hash.split_once(':') else {
            return Err(format!("invalid hash format: {hash}"));
        };
        if alg != "sha256" {
            return Err(format!("unsupported hash algorithm: {alg}"));
        }
        let want = hex::decode(hex_digest).map_err(|_| format!("invalid hash format: {hash}"))?;
        if want.len() != 32 {
            return Err(format!("invalid hash format: {hash}"));
        }
        let got = sha256(bytes);
        if want != got {
            return Err(format!(
                "hash mismatch: expected {}, got {}",
                hex_digest.to_ascii_lowercase(),
                hex::encode(got)
            ));
        }
        Ok(())
    };
    check().map_err(|e| format!("hash verification failed: {e}"))
}

/// WAT text (a core module or a component) to binary.
///
/// # Errors
/// The WAT parser's message, with line and column.
pub fn wat(source: &str) -> Result<Vec<u8>, String> {
    wat::parse_str(source).map_err(|e| format!("invalid WAT: {e}"))
}

/// Whether `bytes` is a component rather than a core module (by its header's layer field).
pub fn is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[6..8] == [1, 0]
}

/// Compiles `bytes` for the plain engine or the fuel engine (`fuel`), or returns the artefact
/// already compiled from the same bytes for the same engine.
///
/// # Errors
/// Not WebAssembly, or wasmtime's validation or compilation error.
pub fn compile(bytes: &[u8], fuel: bool) -> Result<Arc<Artefact>, String> {
    compile_named(bytes, fuel, "a module")
}

/// [`compile`], naming what compiles (`` `ns:name` ``) on stderr if it takes long (see
/// `progress`).
///
/// # Errors
/// As [`compile`].
pub fn compile_named(bytes: &[u8], fuel: bool, what: &str) -> Result<Arc<Artefact>, String> {
    type Shared = HashMap<(bool, [u8; 32]), Weak<Artefact>>;
    static SHARED: Mutex<Option<Shared>> = Mutex::new(None);
    if bytes.len() < 8 || bytes[..4] != *b"\0asm" {
        return Err("not a WebAssembly binary (no `\\0asm` header)".to_string());
    }
    let key = (fuel, sha256(bytes));
    let engine = engine_for(fuel);
    if let Some(found) = unpoison(SHARED.lock())
        .get_or_insert_default()
        .get(&key)
        .and_then(Weak::upgrade)
    {
        return Ok(found);
    }
    // Compiled outside the lock: two loads of new bytes compile in parallel.
    let component = is_component(bytes);
    let name = cache_name(engine, bytes);
    let size = bytes.len() as f64 / (1 << 20) as f64;
    let cached = cache::load(&name).and_then(|body| {
        let _reading = Progress::start(format!(
            "loading {what} ({size:.1} MiB) from the artefact cache"
        ));
        deserialize(engine, &body, component)
    });
    let artefact = match cached {
        Some(cached) => cached,
        None => {
            let _compiling = Progress::start(format!(
                "compiling {what} ({size:.1} MiB, not in the artefact cache)"
            ));
            let compiled = if component {
                Artefact::Component(
                    Component::new(engine, bytes)
                        .map_err(|e| format!("failed to compile: {e:#}"))?,
                )
            } else {
                Artefact::Module(
                    Module::new(engine, bytes).map_err(|e| format!("failed to compile: {e:#}"))?,
                )
            };
            let body = match &compiled {
                Artefact::Module(m) => m.serialize(),
                Artefact::Component(c) => c.serialize(),
            };
            if let Ok(body) = body {
                cache::store(&name, &body);
            }
            compiled
        }
    };
    let artefact = Arc::new(artefact);
    let mut shared = unpoison(SHARED.lock());
    let map = shared.get_or_insert_default();
    map.retain(|_, weak| weak.strong_count() > 0);
    map.insert(key, Arc::downgrade(&artefact));
    Ok(artefact)
}

/// The cache file of `bytes` compiled by `engine`.
fn cache_name(engine: &Engine, bytes: &[u8]) -> String {
    let mut settings = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut settings);
    format!(
        "{}-{:016x}-{WASMTIME_VERSION}.cwasm",
        hex::encode(sha256(bytes)),
        settings.finish()
    )
}

/// An artefact from the cache's bytes, or `None` when wasmtime refuses them.
fn deserialize(engine: &Engine, body: &[u8], component: bool) -> Option<Artefact> {
    // SAFETY: the body is what `serialize` wrote for this engine's settings: authenticated by
    // the cache under a key only this user can read, in a folder only this user can write,
    // and checked again by wasmtime's own header checks.
    unsafe {
        if component {
            Component::deserialize(engine, body)
                .ok()
                .map(Artefact::Component)
        } else {
            Module::deserialize(engine, body).ok().map(Artefact::Module)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_errors_keep_their_wording() {
        let bytes = b"abc";
        let good = format!("sha256:{}", hex::encode(sha256(bytes)));
        assert_eq!(verify_hash(bytes, &good), Ok(()));
        assert_eq!(
            verify_hash(bytes, "nohash").unwrap_err(),
            "hash verification failed: invalid hash format: nohash"
        );
        assert_eq!(
            verify_hash(bytes, "md5:00").unwrap_err(),
            "hash verification failed: unsupported hash algorithm: md5"
        );
        let zero = format!("sha256:{}", "0".repeat(64));
        assert!(
            verify_hash(bytes, &zero)
                .unwrap_err()
                .starts_with("hash verification failed: hash mismatch: expected 0000")
        );
    }

    #[test]
    fn same_bytes_share_one_artefact() {
        let bytes = wat("(module (func (export \"f\")))").unwrap();
        let a = compile(&bytes, false).unwrap();
        let b = compile(&bytes, false).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let fuel = compile(&bytes, true).unwrap();
        assert!(!Arc::ptr_eq(&a, &fuel));
    }

    #[test]
    fn components_are_told_from_modules() {
        assert!(!is_component(&wat("(module)").unwrap()));
        assert!(is_component(&wat("(component)").unwrap()));
    }
}
