//! Loading registries: formats, substitution, validation messages, atomicity and reload.

mod common;

use common::*;
use funcs::error::Kind;
use funcs::runtime::Runtime;

const ANSWER: &str = r#"
namespace: app
entries:
  - name: answer
    kind: function.wat
    source: '(module (func (export "answer") (result i32) i32.const 42))'
    method: answer
"#;

fn wasm_entry(hash: &str) -> String {
    format!(
        r#"
namespace: app
entries:
  - name: files
    kind: fs.directory
    directory: .
  - name: compute
    kind: function.wasm
    fs: files
    path: minimal.wasm
    hash: {hash}
    method: compute
"#
    )
}

#[test]
fn loads_a_folder_and_reports_entries_and_skipped_kinds() {
    let dir = registry(
        &format!("{ANSWER}\n  - name: script\n    kind: function.lua\n    source: 'return 1'\n"),
        &[],
    );
    let rt = Runtime::default();
    let summary = rt.load(&dir).unwrap();
    assert_eq!(summary.entries, vec!["app:answer"]);
    assert_eq!(
        summary.skipped,
        vec![("app:script".to_string(), "function.lua".to_string())]
    );
    assert_eq!(rt.call("app:answer", &[]).unwrap(), int(42));
}

#[test]
fn loads_a_single_file_and_a_single_top_level_entry() {
    let dir = temp_dir();
    let file = dir.join("one.yml");
    std::fs::write(
        &file,
        "namespace: solo\nname: answer\nkind: function.wat\nmethod: answer\n\
         source: '(module (func (export \"answer\") (result i32) i32.const 7))'\n",
    )
    .unwrap();
    let rt = Runtime::default();
    assert_eq!(rt.load(&file).unwrap().entries, vec!["solo:answer"]);
    assert_eq!(rt.call("solo:answer", &[]).unwrap(), int(7));
}

#[test]
fn reads_nested_folders_recursively() {
    let dir = temp_dir();
    std::fs::create_dir_all(dir.join("a/b")).unwrap();
    std::fs::write(dir.join("a/b/deep.yaml"), ANSWER).unwrap();
    let rt = Runtime::default();
    assert_eq!(rt.load(&dir).unwrap().entries, vec!["app:answer"]);
}

#[test]
fn malformed_yaml_names_the_file() {
    let e = load_error("namespace: app\nentries: [\n  - {", &[]);
    assert_error(&e, Kind::Invalid, &["_index.yaml", "invalid YAML"]);
}

#[test]
fn unknown_fields_are_errors_with_their_path() {
    let e = load_error(
        &ANSWER.replace("method: answer", "method: answer\n    sorce: x"),
        &[],
    );
    assert_error(
        &e,
        Kind::Invalid,
        &["`app:answer`", "unknown field `sorce`"],
    );
    let e = load_error(
        &ANSWER.replace("method: answer", "method: answer\n    pool: {sise: 3}"),
        &[],
    );
    assert_error(
        &e,
        Kind::Invalid,
        &["`app:answer`", "pool.sise: unknown field `sise`"],
    );
    assert_eq!(e.details().field.as_deref(), Some("pool.sise"));
}

#[test]
fn required_fields_keep_the_reference_wording() {
    let cases = [
        (
            ANSWER.replace("    method: answer\n", ""),
            "method is required",
        ),
        (
            ANSWER.replace("    source:", "    other_source:"),
            "unknown field",
        ),
        (
            "namespace: app\nentries:\n  - name: f\n    kind: function.wat\n    method: m\n".into(),
            "source is required",
        ),
        (
            wasm_entry("sha256:00").replace("    fs: files\n", ""),
            "fs is required",
        ),
        (
            wasm_entry("sha256:00").replace("    path: minimal.wasm\n", ""),
            "path is required",
        ),
        (
            wasm_entry("sha256:00").replace("    hash: sha256:00\n", ""),
            "hash is required",
        ),
    ];
    for (yaml, message) in cases {
        let e = load_error(&yaml, &["minimal.wasm"]);
        assert_error(&e, Kind::Invalid, &[message]);
    }
}

#[test]
fn field_rules_keep_the_reference_wording() {
    let with = |extra: &str| ANSWER.replace("method: answer", &format!("method: answer\n{extra}"));
    let cases = [
        ("    transport: smoke", "invalid transport type"),
        ("    pool: {type: huge}", "invalid pool type"),
        ("    pool: {size: -1}", "pool values cannot be negative"),
        (
            "    pool: {type: static, size: 0}",
            "pool.size must be greater than 0 for non-flex pools",
        ),
        (
            "    limits: {max_execution_ms: -5}",
            "limits.max_execution_ms cannot be negative",
        ),
        ("    wasi: {cwd: relative}", "wasi.cwd must be absolute"),
        ("    wasi: {env: [{name: X}]}", "wasi.env[].id is required"),
        ("    wasi: {env: [{id: x}]}", "wasi.env[].name is required"),
        (
            "    wasi: {env: [{id: a, name: X}, {id: b, name: X}]}",
            "wasi.env[].name must be unique",
        ),
        (
            "    wasi: {mounts: [{guest: /d}]}",
            "wasi.mounts[].fs is required",
        ),
        (
            "    wasi: {mounts: [{fs: d}]}",
            "wasi.mounts[].guest is required",
        ),
        (
            "    wasi: {mounts: [{fs: d, guest: rel}]}",
            "wasi.mounts[].guest must be absolute",
        ),
        (
            "    wasi: {mounts: [{fs: d, guest: /x}, {fs: e, guest: /x}]}",
            "wasi.mounts[].guest must be unique",
        ),
    ];
    for (extra, message) in cases {
        let e = load_error(&with(extra), &[]);
        assert_error(&e, Kind::Invalid, &["`app:answer`", message]);
    }
}

#[test]
fn wasm_entries_verify_the_hash_before_compiling() {
    let good = sha256(&fixture("minimal.wasm"));
    let rt = runtime(&wasm_entry(&good), &["minimal.wasm"]);
    assert_eq!(rt.call("app:compute", &[int(6), int(7)]).unwrap(), int(42));

    let zero = format!("sha256:{}", "0".repeat(64));
    let e = load_error(&wasm_entry(&zero), &["minimal.wasm"]);
    assert_error(
        &e,
        Kind::Invalid,
        &[
            "`app:compute`",
            "hash verification failed: hash mismatch: expected 0000",
            &format!("got {}", &good[7..]),
        ],
    );
    let e = load_error(&wasm_entry("deadbeef"), &["minimal.wasm"]);
    assert_error(
        &e,
        Kind::Invalid,
        &["hash verification failed: invalid hash format: deadbeef"],
    );
    let e = load_error(&wasm_entry("md5:abc"), &["minimal.wasm"]);
    assert_error(
        &e,
        Kind::Invalid,
        &["hash verification failed: unsupported hash algorithm: md5"],
    );
}

#[test]
fn a_wrong_hash_stops_even_bytes_that_would_not_compile() {
    let dir = registry(&wasm_entry("sha256:00"), &[]);
    std::fs::write(dir.join("minimal.wasm"), b"not wasm at all").unwrap();
    let e = Runtime::default().load(&dir).unwrap_err();
    assert_error(&e, Kind::Invalid, &["hash verification failed"]);
}

#[test]
fn missing_files_and_fs_entries_are_not_found() {
    let e = load_error(&wasm_entry("sha256:00"), &[]);
    assert_error(&e, Kind::NotFound, &["`app:compute`", "minimal.wasm"]);
    let e = load_error(
        &wasm_entry("sha256:00").replace("fs: files", "fs: nope"),
        &[],
    );
    assert_error(
        &e,
        Kind::NotFound,
        &["`app:compute`", "fs `app:nope` not found"],
    );
    let e = Runtime::default()
        .load(std::path::Path::new("/no/such/registry"))
        .unwrap_err();
    assert_error(&e, Kind::NotFound, &["/no/such/registry"]);
}

#[test]
fn wasm_paths_cannot_leave_their_directory() {
    let e = load_error(
        &wasm_entry("sha256:00").replace("path: minimal.wasm", "path: ../../../etc/passwd"),
        &[],
    );
    assert!(matches!(e.kind(), Kind::Invalid | Kind::NotFound), "{e}");
    assert!(e.message().contains("`app:compute`"), "{e}");
}

#[test]
fn file_urls_read_text_relative_to_the_yaml_file() {
    let dir = registry(
        &ANSWER.replace(
            "source: '(module (func (export \"answer\") (result i32) i32.const 42))'",
            "source: file://answer.wat",
        ),
        &["answer.wat"],
    );
    let rt = Runtime::default();
    rt.load(&dir).unwrap();
    assert_eq!(rt.call("app:answer", &[]).unwrap(), int(42));
}

#[test]
fn file_urls_cannot_escape_the_load_root() {
    let outer = temp_dir();
    std::fs::write(outer.join("secret.wat"), "(module)").unwrap();
    let inner = outer.join("reg");
    std::fs::create_dir(&inner).unwrap();
    std::fs::write(
        inner.join("_index.yaml"),
        ANSWER.replace(
            "source: '(module (func (export \"answer\") (result i32) i32.const 42))'",
            "source: file://../secret.wat",
        ),
    )
    .unwrap();
    let e = Runtime::default().load(&inner).unwrap_err();
    assert_error(
        &e,
        Kind::Invalid,
        &["`app:answer`", "escapes the load root"],
    );
}

#[test]
fn env_placeholders_are_replaced_at_load() {
    // SAFETY: no other test reads or writes this variable.
    unsafe { std::env::set_var("FUNCS_TEST_METHOD", "answer") };
    let yaml = ANSWER.replace("method: answer", "method: ${env:FUNCS_TEST_METHOD}");
    let rt = runtime(&yaml, &[]);
    assert_eq!(rt.call("app:answer", &[]).unwrap(), int(42));
    let yaml = ANSWER.replace("method: answer", "method: ${env:FUNCS_TEST_UNSET_X|answer}");
    runtime(&yaml, &[]);
    let e = load_error(
        &ANSWER.replace("method: answer", "method: ${env:FUNCS_TEST_UNSET_X}"),
        &[],
    );
    assert_error(&e, Kind::NotFound, &["`app:answer`", "FUNCS_TEST_UNSET_X"]);
}

#[test]
fn duplicate_ids_are_errors() {
    let yaml = format!("{ANSWER}{}", &ANSWER[ANSWER.find("  - name").unwrap()..]);
    let e = load_error(&yaml, &[]);
    assert_error(&e, Kind::Invalid, &["`app:answer`", "duplicate entry ID"]);
}

#[test]
fn a_failed_load_applies_nothing() {
    let yaml = format!(
        "{ANSWER}  - name: broken\n    kind: function.wat\n    source: '(module'\n    method: x\n"
    );
    let rt = Runtime::default();
    let e = rt.load(&registry(&yaml, &[])).unwrap_err();
    assert_error(&e, Kind::Invalid, &["`app:broken`", "invalid WAT"]);
    assert_eq!(
        rt.call("app:answer", &[]).unwrap_err().kind(),
        Kind::NotFound
    );
}

#[test]
fn loading_again_replaces_the_entries_of_that_load() {
    let dir = registry(
        &format!(
            "{ANSWER}  - name: gone\n    kind: function.wat\n    method: f\n    \
             source: '(module (func (export \"f\")))'\n"
        ),
        &[],
    );
    let rt = Runtime::default();
    rt.load(&dir).unwrap();
    let old = rt.function("app:answer").unwrap();
    std::fs::write(
        dir.join("_index.yaml"),
        ANSWER.replace("i32.const 42", "i32.const 43"),
    )
    .unwrap();
    assert_eq!(rt.load(&dir).unwrap().entries, vec!["app:answer"]);
    assert_eq!(rt.call("app:answer", &[]).unwrap(), int(43));
    assert_eq!(rt.call("app:gone", &[]).unwrap_err().kind(), Kind::NotFound);
    // A call that had already taken the old function finishes on the old code.
    let args = old.0.function().lower(&[]).unwrap();
    assert_eq!(
        rt.call_with(&old, args, Default::default())
            .unwrap()
            .into_value(),
        int(42)
    );
}

#[test]
fn unknown_methods_list_the_exports() {
    let e = load_error(&ANSWER.replace("method: answer", "method: question"), &[]);
    assert_error(
        &e,
        Kind::Invalid,
        &["`app:answer`", "`question` is not exported", "answer"],
    );
    let e = load_error(
        &wasm_entry(&sha256(&fixture("minimal.wasm"))).replace("method: compute", "method: nope"),
        &["minimal.wasm"],
    );
    assert_error(&e, Kind::Invalid, &["compute, compute-using-host"]);
}

#[test]
fn wasm_paths_are_rooted_at_their_directory_as_the_reference_writes_them() {
    let hash = sha256(&fixture("minimal.wasm"));
    for path in [
        "/minimal.wasm",
        "minimal.wasm",
        "./minimal.wasm",
        "//minimal.wasm",
        "sub/../minimal.wasm",
    ] {
        let yaml = wasm_entry(&hash).replace("path: minimal.wasm", &format!("path: {path}"));
        let dir = registry(&yaml, &["minimal.wasm"]);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let rt = Runtime::default();
        rt.load(&dir).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(
            rt.call("app:compute", &[int(6), int(7)]).unwrap(),
            int(42),
            "{path}"
        );
    }
    // The host's root is never read: `/etc/passwd` is a file inside the directory.
    let e = load_error(
        &wasm_entry(&hash).replace("path: minimal.wasm", "path: /etc/passwd"),
        &[],
    );
    assert_error(&e, Kind::NotFound, &["`app:compute`", "/etc/passwd"]);
    // `..` may not climb out, even where the folder exists.
    for path in [
        "../minimal.wasm",
        "/../minimal.wasm",
        "sub/../../minimal.wasm",
    ] {
        let yaml = wasm_entry(&hash).replace("path: minimal.wasm", &format!("path: {path}"));
        let dir = registry(&yaml, &["minimal.wasm"]);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::copy(
            fixture("minimal.wasm"),
            dir.parent().unwrap().join("minimal.wasm"),
        )
        .unwrap();
        let e = Runtime::default().load(&dir).unwrap_err();
        assert_error(
            &e,
            Kind::Invalid,
            &["`app:compute`", "escapes the directory of `app:files`"],
        );
    }
}

#[test]
fn env_variables_may_leave_out_their_public_name() {
    // A private variable is found by its entry ID and read from its storage under its name;
    // a public one by ID or by its public name.
    let yaml = r#"
namespace: app
entries:
  - name: vals
    kind: env.storage.static
    values: { secret: s3cr3t, PUBLIC_NAME: pub }
  - name: secret
    kind: env.variable
    storage: vals
  - name: public
    kind: env.variable
    variable: PUBLIC_NAME
    storage: vals
  - name: answer
    kind: function.wat
    source: '(module (func (export "answer") (result i32) i32.const 42))'
    method: answer
    wasi:
      env:
        - { id: app:secret, name: SECRET, required: true }
        - { id: PUBLIC_NAME, name: PUB, required: true }
"#;
    let rt = runtime(yaml, &[]);
    assert_eq!(rt.call("app:answer", &[]).unwrap(), int(42));
    // A public name must be a name, and unique.
    let e = load_error(
        &yaml.replace("variable: PUBLIC_NAME", "variable: 'NOT A NAME'"),
        &[],
    );
    assert_error(
        &e,
        Kind::Invalid,
        &["`app:public`", "variable must be letters"],
    );
    let twice = yaml.replace(
        "  - name: answer\n",
        "  - name: again\n    kind: env.variable\n    variable: PUBLIC_NAME\n  - name: answer\n",
    );
    let e = load_error(&twice, &[]);
    assert_error(
        &e,
        Kind::Invalid,
        &["`app:again`", "already the public name of `app:public`"],
    );
    // An unknown one is not found.
    let e = load_error(&yaml.replace("id: PUBLIC_NAME", "id: NO_SUCH"), &[]);
    assert_error(
        &e,
        Kind::NotFound,
        &["env.variable `app:NO_SUCH` not found"],
    );
}

#[test]
fn a_mount_whose_folder_is_missing_fails_the_load() {
    let yaml = r#"
namespace: app
entries:
  - {name: data, kind: fs.directory, directory: ./no-such-folder}
  - name: answer
    kind: function.wat
    source: '(module (func (export "answer") (result i32) i32.const 42))'
    method: answer
    imports: [wasi:filesystem]
    wasi:
      mounts:
        - {fs: data, guest: /data}
"#;
    let e = load_error(yaml, &[]);
    assert_error(
        &e,
        Kind::NotFound,
        &["`app:answer`", "fs `app:data`", "does not exist"],
    );
    assert_eq!(e.details().field.as_deref(), Some("wasi.mounts[1].fs"));
}
