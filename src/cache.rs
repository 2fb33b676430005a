//! Compiled artefacts on disk, so that a registry's second start skips compilation.
//!
//! A file is keyed by the SHA-256 of the wasm bytes, the wasmtime version and a hash of the
//! engine settings that decide compatibility (`Engine::precompile_compatibility_hash`); it
//! starts with the SHA-256 of the rest, checked before wasmtime reads it, and wasmtime itself
//! refuses an artefact made by another version or configuration. Anything that does not
//! check out is compiled again and the file replaced: a stale or broken file never loads.
//!
//! The folder: `FUNCS_CACHE_DIR`, else `$XDG_CACHE_HOME/funcs`, else `$HOME/.cache/funcs`;
//! `FUNCS_CACHE=off` turns the cache off. Its files are trusted like the module itself: only
//! the user running funcs should be able to write there.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::PathBuf;
use std::sync::RwLock;

use wasmtime::Engine;
use wasmtime::Module;
use wasmtime::component::Component;

use crate::compile::{Artefact, sha256};
use crate::engine::WASMTIME_VERSION;

/// Set by tests; `None` inside means "from the environment".
static OVERRIDE: RwLock<Option<Option<PathBuf>>> = RwLock::new(None);

/// Uses `dir` (or no cache, `None`) instead of the environment's choice.
pub fn set_dir(dir: Option<PathBuf>) {
    *OVERRIDE.write().unwrap_or_else(|e| e.into_inner()) = Some(dir);
}

/// The cache folder, or `None` when the cache is off.
pub fn dir() -> Option<PathBuf> {
    if let Some(set) = OVERRIDE.read().unwrap_or_else(|e| e.into_inner()).clone() {
        return set;
    }
    if std::env::var("FUNCS_CACHE").is_ok_and(|v| v == "off" || v == "0") {
        return None;
    }
    let env = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("FUNCS_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("funcs")))
        .or_else(|| env("HOME").map(|d| d.join(".cache/funcs")))
}

fn path(engine: &Engine, bytes: &[u8]) -> Option<PathBuf> {
    let mut settings = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut settings);
    Some(dir()?.join(format!(
        "{}-{:016x}-{WASMTIME_VERSION}.cwasm",
        hex::encode(sha256(bytes)),
        settings.finish()
    )))
}

/// The artefact compiled earlier from `bytes` for `engine`, if a valid one is on disk.
pub fn load(engine: &Engine, bytes: &[u8], component: bool) -> Option<Artefact> {
    let file = std::fs::read(path(engine, bytes)?).ok()?;
    let (sum, body) = file.split_at_checked(32)?;
    if sha256(body) != sum {
        return None;
    }
    // SAFETY: the body is what `serialize` wrote for this engine's settings (checked by the
    // checksum above and by wasmtime's own header checks), in a folder only we write to.
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

/// Writes `artefact` for the next start; failures only cost that start a compilation.
pub fn store(engine: &Engine, bytes: &[u8], artefact: &Artefact) {
    let Some(path) = path(engine, bytes) else {
        return;
    };
    let body = match artefact {
        Artefact::Module(m) => m.serialize(),
        Artefact::Component(c) => c.serialize(),
    };
    let Ok(body) = body else { return };
    let write = || -> std::io::Result<()> {
        let dir = path.parent().expect("a file in the cache folder");
        std::fs::create_dir_all(dir)?;
        // Written aside and renamed: a reader never sees half a file.
        let tmp = dir.join(format!(".{}.{}", std::process::id(), rand_suffix()));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&sha256(&body))?;
        f.write_all(&body)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    };
    let _ = write();
}

/// A per-call suffix for temporary files (two threads may store at once).
fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
