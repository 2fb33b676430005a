//! The artefact cache on disk: written on the first compile, read on the next, keyed by the
//! engine's settings, and a broken file is compiled over, never loaded.

use std::sync::Arc;

use funcs::compile::cache;
use funcs::compile::{self, Artefact};

/// The cache folder is process-wide: one test at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    // The artefacts, not the folder's key.
    found.retain(|p: &std::path::PathBuf| p.extension().is_some_and(|e| e == "cwasm"));
    found.sort();
    found
}

fn call_answer(artefact: &Artefact) -> i32 {
    let Artefact::Module(module) = artefact else {
        panic!("a core module")
    };
    let mut store = wasmtime::Store::new(module.engine(), ());
    store.set_epoch_deadline(1 << 40);
    let instance = wasmtime::Instance::new(&mut store, module, &[]).unwrap();
    let f = instance
        .get_typed_func::<(), i32>(&mut store, "answer")
        .unwrap();
    f.call(&mut store, ()).unwrap()
}

#[test]
fn artefacts_are_cached_per_engine_and_broken_files_are_replaced() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("artefact-cache");
    let _ = std::fs::remove_dir_all(&dir);
    cache::set_dir(Some(dir.clone()));
    let bytes =
        compile::wat(r#"(module (func (export "answer") (result i32) i32.const 42))"#).unwrap();

    // First compile: one file, for the plain engine.
    let first = compile::compile(&bytes, false).unwrap();
    assert_eq!(call_answer(&first), 42);
    let written = files(&dir);
    assert_eq!(written.len(), 1, "{written:?}");
    let file = written[0].clone();
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&hex::encode(compile::sha256(&bytes))),
        "{name}"
    );
    assert!(name.ends_with(&format!("-{}.cwasm", funcs::engine::WASMTIME_VERSION)));
    let good = std::fs::read(&file).unwrap();
    drop(first);

    // Loaded from the file (the in-process share is gone): the same code.
    let second = compile::compile(&bytes, false).unwrap();
    assert_eq!(call_answer(&second), 42);
    drop(second);

    // The fuel engine has other settings: its own file.
    let fuel = compile::compile(&bytes, true).unwrap();
    assert_eq!(files(&dir).len(), 2);
    drop(fuel);

    // A corrupted file fails its checksum: compiled again, and the file made good again.
    let mut broken = good.clone();
    let last = broken.len() - 1;
    broken[last] ^= 0xff;
    std::fs::write(&file, &broken).unwrap();
    let third = compile::compile(&bytes, false).unwrap();
    assert_eq!(call_answer(&third), 42);
    assert_eq!(std::fs::read(&file).unwrap(), good);
    drop(third);

    // A file that is not an artefact at all (checksum right, body junk): compiled again.
    let junk = b"not a wasmtime artefact".to_vec();
    let mut file_bytes = compile::sha256(&junk).to_vec();
    file_bytes.extend_from_slice(&junk);
    std::fs::write(&file, &file_bytes).unwrap();
    let fourth = compile::compile(&bytes, false).unwrap();
    assert_eq!(call_answer(&fourth), 42);
    assert_eq!(std::fs::read(&file).unwrap(), good);

    // Off: nothing is written.
    drop(fourth);
    let other =
        compile::wat(r#"(module (func (export "answer") (result i32) i32.const 7))"#).unwrap();
    cache::set_dir(None);
    let uncached: Arc<Artefact> = compile::compile(&other, false).unwrap();
    assert_eq!(call_answer(&uncached), 7);
    assert_eq!(files(&dir).len(), 2);
}

#[test]
fn the_cache_is_private_and_reads_only_what_it_wrote() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let base = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("private-cache");
    let _ = std::fs::remove_dir_all(&base);
    let dir = base.join("funcs");
    cache::set_dir(Some(dir.clone()));
    let bytes =
        compile::wat(r#"(module (func (export "answer") (result i32) i32.const 7))"#).unwrap();
    let first = compile::compile(&bytes, false).unwrap();
    drop(first);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(".key")), 0o600);
    let file = files(&dir).pop().expect("an artefact");
    assert_eq!(mode(&file), 0o600);
    let good = std::fs::read(&file).unwrap();

    // The same artefact with a plain checksum (what anyone could write): not loaded, replaced.
    let body = &good[32..];
    let mut forged = compile::sha256(body).to_vec();
    forged.extend_from_slice(body);
    std::fs::write(&file, &forged).unwrap();
    drop(compile::compile(&bytes, false).unwrap());
    assert_eq!(std::fs::read(&file).unwrap(), good);

    // A folder others may write is not used at all.
    let open = base.join("open");
    std::fs::create_dir_all(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    cache::set_dir(Some(open.clone()));
    let other =
        compile::wat(r#"(module (func (export "answer") (result i32) i32.const 8))"#).unwrap();
    let artefact = compile::compile(&other, false).unwrap();
    assert_eq!(call_answer(&artefact), 8);
    assert!(
        std::fs::read_dir(&open).unwrap().next().is_none(),
        "wrote into an open folder"
    );
    cache::set_dir(None);
}
