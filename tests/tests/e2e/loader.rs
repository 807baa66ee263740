//! The plugin loader, driven through the `vessel` library in this process:
//! every refusal has its own error, panics are contained, and several
//! plugins live side by side. Fixture libraries are built with cargo from
//! `examples/plugins/` and `tests/fixtures/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use vessel::plugin::manifest::CallbackKind;
use vessel::plugin::{load, LoadError, LoadErrorKind, LoadSpec, LoadedPlugin, PluginError};
use vessel_plugin_test::FakeEngineConfig;
use vessel_tests::{require_root, set_mode, workspace_root, NOBODY};

const FIXTURES: [&str; 6] = [
    "cli-plugin",
    "fixture-api2",
    "fixture-badlayout",
    "fixture-minimal",
    "fixture-panic",
    "fixture-second",
];

/// The built library of fixture crate `name` (all built once per process).
fn fixture(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let mut c = Command::new(env!("CARGO"));
        c.args(["build", "--quiet"]).current_dir(workspace_root());
        for f in FIXTURES {
            c.args(["-p", f]);
        }
        assert!(
            c.status().expect("run cargo").success(),
            "building fixtures failed"
        );
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target"))
            .join("debug")
    });
    dir.join(format!("lib{}.so", name.replace('-', "_")))
}

/// A plugin root (temp dir, 0755) holding a copy of `src` as `plugin.so` (0644).
struct Staged {
    dir: tempfile::TempDir,
}

impl Staged {
    fn new(src: &Path) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        set_mode(dir.path(), 0o755);
        let me = Self { dir };
        std::fs::copy(src, me.so()).expect("copy library");
        set_mode(&me.so(), 0o644);
        me
    }
    fn bytes(bytes: &[u8]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        set_mode(dir.path(), 0o755);
        let me = Self { dir };
        std::fs::write(me.so(), bytes).expect("write library");
        set_mode(&me.so(), 0o644);
        me
    }
    fn root(&self) -> &Path {
        self.dir.path()
    }
    fn so(&self) -> PathBuf {
        self.dir.path().join("plugin.so")
    }
    fn spec(&self) -> LoadSpec {
        LoadSpec::new(self.so()).plugin_root(self.root())
    }
}

fn load_err(spec: &LoadSpec) -> LoadError {
    match load(spec) {
        Ok(p) => panic!("{} loaded but must be refused", p.name()),
        Err(e) => e,
    }
}

fn sha256_of(p: &Path) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(std::fs::read(p).expect("read"));
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn loads_cli_plugin_and_reports_its_manifest() {
    let s = Staged::new(&fixture("cli-plugin"));
    let p = load(
        &s.spec()
            .name("example.com/cli-plugin")
            .sha256(sha256_of(&s.so())),
    )
    .expect("load cli-plugin");
    let m = p.manifest();
    assert_eq!(m.name, "example.com/cli-plugin");
    assert_eq!(m.api_version, vessel_plugin_abi::API_VERSION);
    assert_eq!(m.callbacks, [CallbackKind::Command]);
    assert_eq!(m.commands[0].name, "test-cmd");
    assert_eq!(m.flags.len(), 2);
    assert_eq!(
        (m.flags[0].command.as_str(), m.flags[0].flag.name.as_str()),
        ("version", "test")
    );
    assert!(m.flags[0].flag.takes_value);
    assert_eq!(
        (m.flags[1].command.as_str(), m.flags[1].flag.name.as_str()),
        ("verify", "abort")
    );
    assert_eq!(m.sha256, sha256_of(&s.so()));

    assert_eq!(p.run_command("test-cmd", &["a".into()], &[]).unwrap(), 0);
    p.flag_pre_run("version", &[], &[("test".into(), Some("x".into()))])
        .unwrap();
    let e = p
        .flag_pre_run("verify", &["i.sif".into()], &[("abort".into(), None)])
        .unwrap_err();
    assert!(matches!(e, PluginError::Callback { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "plugin \"example.com/cli-plugin\": verify aborted by --abort"
    );
    // A kind it did not register is a clear error, not a crash.
    let e = p
        .engine_config(&mut FakeEngineConfig::default())
        .unwrap_err();
    assert!(matches!(e, PluginError::NoCallback { .. }), "{e:?}");
}

#[test]
fn plugin_without_callbacks_loads_with_none() {
    let s = Staged::new(&fixture("fixture-minimal"));
    let p = load(&s.spec().name("example.com/minimal")).expect("load minimal");
    assert!(p.manifest().callbacks.is_empty());
    assert!(!p.manifest().global_pre_run);
    let e = p.run_command("anything", &[], &[]).unwrap_err();
    assert!(matches!(e, PluginError::NoCallback { .. }), "{e:?}");
}

#[test]
fn missing_file_is_refused() {
    let s = Staged::bytes(b"");
    let e = load_err(&LoadSpec::new(s.root().join("nope.so")));
    assert!(matches!(e.kind, LoadErrorKind::Missing), "{e:?}");
    assert!(e.to_string().ends_with("nope.so does not exist"), "{e}");
}

#[test]
fn directory_is_refused() {
    let s = Staged::bytes(b"");
    let e = load_err(&LoadSpec::new(s.root()));
    assert!(matches!(e.kind, LoadErrorKind::NotRegularFile), "{e:?}");
}

#[test]
fn not_an_elf_is_refused() {
    let s = Staged::bytes(b"#!/bin/sh\necho not a library\n");
    let e = load_err(&s.spec().name("example.com/x"));
    assert!(matches!(e.kind, LoadErrorKind::NotElf), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "plugin \"example.com/x\": {} is not an ELF file",
            s.so().display()
        )
    );
}

#[test]
fn pie_executable_is_refused() {
    // Debian builds /bin/true as a PIE: ET_DYN like a library, with PT_INTERP.
    let s = Staged::new(Path::new("/bin/true"));
    let e = load_err(&s.spec());
    assert!(matches!(e.kind, LoadErrorKind::Executable), "{e:?}");
    assert!(
        e.to_string()
            .contains("is an executable, not a shared library"),
        "{e}"
    );
}

#[test]
fn shared_object_of_another_architecture_is_refused() {
    let mut bytes = std::fs::read(fixture("cli-plugin")).expect("read");
    // e_machine: 2 bytes little-endian at offset 18; 183 = EM_AARCH64
    // (or x86-64 when this host is aarch64).
    let other: u16 = if cfg!(target_arch = "aarch64") {
        62
    } else {
        183
    };
    bytes[18..20].copy_from_slice(&other.to_le_bytes());
    let s = Staged::bytes(&bytes);
    let e = load_err(&s.spec());
    assert!(
        matches!(e.kind, LoadErrorKind::WrongArchitecture { .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("is built for"), "{e}");
}

#[test]
fn c_library_is_not_a_plugin() {
    let s = Staged::new(Path::new("/lib/x86_64-linux-gnu/libz.so.1"));
    let e = load_err(&s.spec());
    assert!(matches!(e.kind, LoadErrorKind::NotAPlugin), "{e:?}");
    assert!(e.to_string().contains("is not a vessel plugin"), "{e}");
}

#[test]
fn wrong_sha256_is_refused() {
    let s = Staged::new(&fixture("cli-plugin"));
    let wrong = "0".repeat(64);
    let e = load_err(&s.spec().name("example.com/cli-plugin").sha256(&wrong));
    assert!(
        matches!(e.kind, LoadErrorKind::DigestMismatch { .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains(&format!("expected {wrong}")), "{e}");
}

#[test]
#[ignore = "needs root"]
fn root_group_writable_plugin_is_refused() {
    require_root();
    let s = Staged::new(&fixture("cli-plugin"));
    set_mode(&s.so(), 0o664);
    let e = load_err(&s.spec().name("example.com/x"));
    assert!(matches!(e.kind, LoadErrorKind::GroupWritable), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "plugin \"example.com/x\": {} is group-writable",
            s.so().display()
        )
    );
    set_mode(&s.so(), 0o646);
    let e = load_err(&s.spec());
    assert!(matches!(e.kind, LoadErrorKind::WorldWritable), "{e:?}");
}

#[test]
#[ignore = "needs root"]
fn root_plugin_not_owned_by_root_is_refused() {
    require_root();
    let s = Staged::new(&fixture("cli-plugin"));
    std::os::unix::fs::chown(s.so(), Some(NOBODY), Some(NOBODY)).expect("chown");
    let e = load_err(&s.spec());
    assert!(
        matches!(e.kind, LoadErrorKind::NotRootOwned { uid: NOBODY, .. }),
        "{e:?}"
    );
}

#[test]
#[ignore = "needs root"]
fn root_insecure_directory_chain_is_refused() {
    require_root();
    let s = Staged::bytes(b"");
    let sub = s.root().join("example.com/x");
    std::fs::create_dir_all(&sub).expect("mkdir");
    std::fs::copy(fixture("cli-plugin"), sub.join("plugin.so")).expect("copy");
    let spec = LoadSpec::new(sub.join("plugin.so")).plugin_root(s.root());
    set_mode(&s.root().join("example.com"), 0o775);
    let e = load_err(&spec);
    assert!(
        matches!(e.kind, LoadErrorKind::DirWritable { who: "group", .. }),
        "{e:?}"
    );
    set_mode(&s.root().join("example.com"), 0o755);
    std::os::unix::fs::chown(s.root(), Some(NOBODY), None).expect("chown");
    let e = load_err(&spec);
    assert!(
        matches!(e.kind, LoadErrorKind::DirNotRootOwned { .. }),
        "{e:?}"
    );
    std::os::unix::fs::chown(s.root(), Some(0), None).expect("chown");
    load(&spec).expect("a clean chain loads");
    let other = Staged::bytes(b"");
    let e = load_err(&LoadSpec::new(sub.join("plugin.so")).plugin_root(other.root()));
    assert!(
        matches!(e.kind, LoadErrorKind::OutsidePluginRoot { .. }),
        "{e:?}"
    );
}

#[test]
fn plugin_declaring_api_2_is_refused() {
    let s = Staged::new(&fixture("fixture-api2"));
    let e = load_err(&s.spec().name("example.com/api2"));
    assert!(matches!(e.kind, LoadErrorKind::ApiVersion { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "plugin \"example.com/api2\": built against plugin-api 2.0.0, which this runtime (plugin-api {}) cannot load",
            vessel_plugin_abi::API_VERSION
        )
    );
}

#[test]
fn plugin_with_a_diverged_root_module_layout_is_refused() {
    let s = Staged::new(&fixture("fixture-badlayout"));
    let e = load_err(&s.spec().name("example.com/badlayout"));
    assert!(matches!(e.kind, LoadErrorKind::Layout { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.starts_with("plugin \"example.com/badlayout\": its root module layout is incompatible"),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "one line: {msg}");
    assert!(
        msg.ends_with("mismatched package (expected vessel-plugin-api, found fixture-badlayout)"),
        "{msg}"
    );
}

#[test]
fn installed_name_must_match_the_library() {
    let s = Staged::new(&fixture("fixture-second"));
    let e = load_err(&s.spec().name("example.com/impostor"));
    assert!(
        matches!(e.kind, LoadErrorKind::NameMismatch { .. }),
        "{e:?}"
    );
}

#[test]
fn panicking_callbacks_are_reported_and_the_process_keeps_running() {
    let s = Staged::new(&fixture("fixture-panic"));
    let p = load(&s.spec()).expect("load panic fixture");
    let e = p.run_command("boom", &[], &[]).unwrap_err();
    assert!(matches!(e, PluginError::Panicked { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "plugin \"example.com/panic\" panicked: boom goes the plugin (in its command callback)"
    );
    // Again, and through another callback kind: still contained.
    let e = p
        .engine_config(&mut FakeEngineConfig::default())
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("plugin \"example.com/panic\" panicked: index out of bounds"),
        "{msg}"
    );
    // The runtime (this process) is fine and can load and call other plugins.
    let other = Staged::new(&fixture("fixture-second"));
    let q = load(&other.spec()).expect("load after panics");
    assert_eq!(q.run_command("second-cmd", &["7".into()], &[]).unwrap(), 7);
}

#[test]
fn two_plugins_load_in_one_process_and_both_callbacks_run() {
    let a = Staged::new(&fixture("cli-plugin"));
    let b = Staged::new(&fixture("fixture-second"));
    let pa: LoadedPlugin = load(&a.spec()).expect("load cli-plugin");
    let pb: LoadedPlugin = load(&b.spec()).expect("load second");
    assert_eq!(pa.name(), "example.com/cli-plugin");
    assert_eq!(pb.name(), "example.com/second");
    assert_eq!(pb.manifest().version, "2.3.4");
    assert_eq!(
        pb.manifest().callbacks,
        [CallbackKind::Command, CallbackKind::EngineConfig]
    );

    assert_eq!(pa.run_command("test-cmd", &["x".into()], &[]).unwrap(), 0);
    assert_eq!(
        pb.run_command("second-cmd", &["42".into()], &[]).unwrap(),
        42
    );
    let e = pb
        .run_command("second-cmd", &["x".into()], &[])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "plugin \"example.com/second\": invalid digit found in string"
    );

    let mut config = FakeEngineConfig::default();
    pb.engine_config(&mut config).unwrap();
    assert_eq!(config.env.get("SECOND").map(String::as_str), Some("2"));
    assert_eq!(config.binds[0].source, "/srv/second");
    assert!(config.binds[0].readonly);
    // The first plugin still works after the second was loaded.
    assert_eq!(pa.run_command("test-cmd", &[], &[]).unwrap(), 0);
}

/// Collects formatted tracing output.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn plugin_logs_land_in_tracing_with_the_plugin_name() {
    let s = Staged::new(&fixture("fixture-second"));
    let p = load(&s.spec()).expect("load");
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .without_time()
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        p.engine_config(&mut FakeEngineConfig::default()).unwrap();
    });
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(out.contains("INFO"), "{out}");
    assert!(out.contains("plugin=\"example.com/second\""), "{out}");
    assert!(out.contains("second plugin sets SECOND=2"), "{out}");
}
