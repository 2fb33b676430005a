//! The artefact cache on disk: bytes under a name, in a private folder, so that a registry's
//! second start skips compilation. What the bytes are and what the name encodes (the wasm's
//! SHA-256, the wasmtime version, the engine settings) is [`super`]'s business; this file
//! owns the folder and the files.
//!
//! The folder: `FUNCS_CACHE_DIR`, else `$XDG_CACHE_HOME/funcs`, else `$HOME/.cache/funcs`;
//! `FUNCS_CACHE=off` turns the cache off. Native code read from it runs in this process, so
//! the folder is private: it is created with mode 0700, and one that another user owns or
//! that group or others may write is not used (one warning on stderr). Each file is
//! authenticated with HMAC-SHA-256 under a key kept in the folder (`.key`, mode 0600, made
//! on first use): a file funcs did not write, even one with a right checksum, is never
//! deserialized. Files are created new (never through an existing name or a symlink) with
//! mode 0600 under an unpredictable temporary name, then renamed into place.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use sha2::{Digest, Sha256};

use crate::sync::unpoison;

/// Set by tests; `None` inside means "from the environment".
static OVERRIDE: RwLock<Option<Option<PathBuf>>> = RwLock::new(None);

/// Uses `dir` (or no cache, `None`) instead of the environment's choice.
pub fn set_dir(dir: Option<PathBuf>) {
    *unpoison(OVERRIDE.write()) = Some(dir);
}

/// The cache folder, or `None` when the cache is off.
pub fn dir() -> Option<PathBuf> {
    if let Some(set) = unpoison(OVERRIDE.read()).clone() {
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

/// The private cache folder and its key, or `None` (off, or refused: warned once).
fn folder() -> Option<(PathBuf, [u8; 32])> {
    static CHECKED: Mutex<Option<HashMap<PathBuf, Option<[u8; 32]>>>> = Mutex::new(None);
    let dir = dir()?;
    let mut checked = unpoison(CHECKED.lock());
    let known = checked.get_or_insert_with(HashMap::new);
    if let Some(key) = known.get(&dir) {
        return key.map(|k| (dir, k));
    }
    let key = open(&dir)
        .inspect_err(|why| {
            eprintln!(
                "funcs: the artefact cache {} is not used: {why}",
                dir.display()
            )
        })
        .ok();
    known.insert(dir.clone(), key);
    key.map(|k| (dir, k))
}

/// Makes or checks the folder and reads (or makes) its key.
fn open(dir: &Path) -> Result<[u8; 32], String> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e.to_string()),
    }
    private(dir, "folder")?;
    let file = dir.join(".key");
    // A new key is written aside in full, then linked in place: a process starting at the
    // same time (nginx workers on an empty cache) reads either no key or a whole one.
    let made = random()?;
    let tmp = dir.join(format!(".{}.key", hex::encode(&random()?[..12])));
    let linked = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&made).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::hard_link(&tmp, &file));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => return Ok(made),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("its key: {e}")),
    }
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&file)
        .map_err(|e| format!("its key: {e}"))?;
    private(&file, "key")?;
    let mut key = [0u8; 32];
    f.read_exact(&mut key)
        .map_err(|e| format!("its key: {e}"))?;
    Ok(key)
}

/// Refuses a folder or file another user owns, or that group or others may write (or, for
/// the key, read).
fn private(path: &Path, what: &str) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(format!(
            "the {what} is owned by uid {}, not {me}",
            meta.uid()
        ));
    }
    let open = if what == "key" { 0o077 } else { 0o022 };
    if meta.mode() & open != 0 {
        return Err(format!(
            "the {what} has mode {:o}: others may change it",
            meta.mode() & 0o777
        ));
    }
    if what == "folder" && !meta.is_dir() {
        return Err("it is not a folder".into());
    }
    Ok(())
}

fn random() -> Result<[u8; 32], String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("no randomness for a key: {e}"))?;
    Ok(bytes)
}

/// HMAC-SHA-256 (RFC 2104) of `body` under `key`.
fn mac(key: &[u8; 32], body: &[u8]) -> [u8; 32] {
    let pad = |byte: u8| {
        let mut block = [byte; 64];
        for (b, k) in block.iter_mut().zip(key) {
            *b ^= k;
        }
        block
    };
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(body)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// The body stored under `name` earlier, if a file funcs wrote is there.
pub fn load(name: &str) -> Option<Vec<u8>> {
    let (dir, key) = folder()?;
    let mut file = Vec::new();
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dir.join(name))
        .and_then(|mut f| f.read_to_end(&mut file))
        .ok()?;
    let (tag, body) = file.split_at_checked(32)?;
    // Constant-time enough: the tag is not secret once written; a forger cannot make one.
    if mac(&key, body) != tag {
        return None;
    }
    file.drain(..32);
    Some(file)
}

/// Writes `body` under `name` for the next start; failures only cost that start a
/// compilation.
pub fn store(name: &str, body: &[u8]) {
    let Some((dir, key)) = folder() else {
        return;
    };
    let write = || -> std::io::Result<()> {
        // Written aside under a name nobody can guess, created new (an existing name or
        // symlink fails it), then renamed: a reader never sees half a file.
        let suffix = random().map_err(std::io::Error::other)?;
        let tmp = dir.join(format!(".{}.tmp", hex::encode(&suffix[..12])));
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        let written = f
            .write_all(&mac(&key, body))
            .and_then(|()| f.write_all(body))
            .and_then(|()| f.sync_all())
            .and_then(|()| std::fs::rename(&tmp, dir.join(name)));
        written.inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    };
    let _ = write();
}

#[cfg(test)]
mod tests {
    /// Processes starting together on an empty cache (nginx workers) agree on one whole key.
    #[test]
    fn concurrent_openers_read_one_whole_key() {
        for round in 0..20 {
            let dir =
                std::env::temp_dir().join(format!("funcs-key-race-{}-{round}", std::process::id()));
            let keys: Vec<_> = std::thread::scope(|s| {
                let openers: Vec<_> = (0..8).map(|_| s.spawn(|| super::open(&dir))).collect();
                openers.into_iter().map(|o| o.join().unwrap()).collect()
            });
            std::fs::remove_dir_all(&dir).unwrap();
            let first = keys[0].clone().expect("a key");
            for key in keys {
                assert_eq!(key, Ok(first));
            }
        }
    }
}
