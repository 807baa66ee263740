//! The plugin store under attack: names that try to collide with the
//! store's own files or look like another plugin, metas whose fields are
//! edited into paths, and readers running a plugin while it is upgraded.

use std::path::Path;

use vessel_tests::{
    assert_error, compiled_plugin, forged_plugin, ok, path_str, require_root, signed_copy,
    snapshot, stderr, stdout, TestRoot,
};

const CLI_PLUGIN: &str = "examples/plugins/cli-plugin";
const MINIMAL: &str = "tests/fixtures/fixture-minimal";

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// A signed cli-plugin image, installed into `root` with its key trusted.
fn install_cli_plugin(root: &TestRoot) {
    let img = signed_copy(&compiled_plugin(CLI_PLUGIN), root.path(), None);
    root.trust_reference_key();
    ok(&root.run(&["plugin", "install", "--yes", path_str(&img)]));
}

#[test]
#[ignore = "needs root"]
fn root_plugin_names_cannot_collide_with_store_files_or_look_alike() {
    require_root();
    let root = TestRoot::new();
    install_cli_plugin(&root);
    let work = tempfile::tempdir().unwrap();
    let victim_meta = format!("{}.meta", sha256_hex(b"example.com/cli-plugin"));
    // A plugin author picks names that hit the store's own files (another
    // plugin's meta, the lock, the files dir) or look like another plugin.
    for (label, name) in [
        ("meta", victim_meta.as_str()),
        ("meta-in-dir", &format!("example.com/../{victim_meta}")),
        ("lock", ".lock"),
        ("store", "example.com/../.store"),
        ("zero-width", "example.com/cli-plugin\u{200b}"),
        ("bom", "example.com/\u{feff}cli-plugin"),
        ("upper", "Example.com/cli-plugin"),
        ("no-domain", "cli-plugin"),
    ] {
        let img = forged_plugin(&compiled_plugin(MINIMAL), work.path(), label, |m, _| {
            m["name"] = name.into()
        });
        let before = snapshot(&root.plugin_dir());
        let e = assert_error(
            &root.run(&[
                "plugin",
                "install",
                "--yes",
                "--allow-unsigned",
                path_str(&img),
            ]),
            255,
            &[],
        );
        assert!(
            e.contains("plugin name") && e.contains("is invalid"),
            "{label}: {e}"
        );
        assert_eq!(
            snapshot(&root.plugin_dir()),
            before,
            "{label}: store changed"
        );
    }
    // A clean second plugin sits beside the first without touching it.
    let minimal = forged_plugin(&compiled_plugin(MINIMAL), work.path(), "ok", |_, _| {});
    ok(&root.run(&[
        "plugin",
        "install",
        "--yes",
        "--allow-unsigned",
        path_str(&minimal),
    ]));
    assert_eq!(
        ok(&root.run(&["plugin", "list"])),
        "ENABLED  NAME\n    yes  example.com/cli-plugin\n    yes  example.com/minimal\n"
    );
    assert_eq!(ok(&root.run(&["test-cmd", "a"])), "test-cmd: a\n");
    // Metas, name links and files dirs each have their own sub-directory.
    let mut top: Vec<String> = std::fs::read_dir(root.plugin_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, [".index", ".lock", ".store", "metas", "names"]);
    assert!(root.plugin_meta("example.com/cli-plugin").is_file());
    assert!(root
        .plugin_files("example.com/minimal")
        .join("plugin.so")
        .is_file());
    // Both can still be uninstalled.
    ok(&root.run(&["plugin", "uninstall", "example.com/cli-plugin"]));
    ok(&root.run(&["plugin", "uninstall", "example.com/minimal"]));
    assert_eq!(
        ok(&root.run(&["plugin", "list"])),
        "There are no plugins installed.\n"
    );
}

#[test]
fn names_are_checked_at_create_and_compile() {
    let root = TestRoot::new();
    let work = tempfile::tempdir_in(vessel_tests::plugin_work_dir()).unwrap();
    for name in [
        "example.com/x\u{200b}",
        "hello",
        "Example.com/x",
        "example.com/.x",
    ] {
        let dir = work.path().join("new");
        let e = assert_error(
            &root.run(&["plugin", "create", path_str(&dir), name]),
            255,
            &[],
        );
        assert!(e.contains("is invalid"), "{name:?}: {e}");
        assert!(!dir.exists());
    }
    // A crate whose code claims a bad name does not compile into an image.
    let dir = work.path().join("renamed");
    ok(&root.run(&["plugin", "create", path_str(&dir), "example.com/renamed"]));
    let lib = dir.join("src/lib.rs");
    let code = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(
        &lib,
        code.replace("example.com/renamed", "example.com/re\u{200b}named"),
    )
    .unwrap();
    let out = work.path().join("renamed.sif");
    let e = assert_error(
        &root.run(&["plugin", "compile", "--out", path_str(&out), path_str(&dir)]),
        255,
        &[],
    );
    assert!(e.contains("is invalid"), "{e}");
    assert!(!out.exists());
}

/// Rewrites one field of an installed plugin's meta.
fn edit_meta(root: &TestRoot, name: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = root.plugin_meta(name);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, v.to_string()).unwrap();
}

/// A dir outside the store with a file in it, as another user owns it.
fn victim(dir: &Path) -> std::path::PathBuf {
    let v = dir.join("victim");
    std::fs::create_dir(&v).unwrap();
    std::fs::write(v.join("precious"), b"keep me").unwrap();
    v
}

fn assert_untouched(v: &Path) {
    let p = v.join("precious");
    let md = std::fs::symlink_metadata(&p).expect("victim file still there");
    assert!(md.is_file(), "victim replaced");
    assert_eq!(std::fs::read(&p).unwrap(), b"keep me");
}

#[test]
#[ignore = "needs root"]
fn root_meta_fields_are_data_never_paths() {
    require_root();
    let outside = tempfile::tempdir().unwrap();
    let v = victim(outside.path());

    // install_id edited to an absolute dir: uninstall removes the plugin,
    // not that dir.
    let root = TestRoot::new();
    install_cli_plugin(&root);
    edit_meta(&root, "example.com/cli-plugin", |m| {
        m["install_id"] = path_str(&v).into()
    });
    ok(&root.run(&["plugin", "uninstall", "example.com/cli-plugin"]));
    assert_untouched(&v);
    assert_eq!(
        ok(&root.run(&["plugin", "list"])),
        "There are no plugins installed.\n"
    );

    // install_id edited to a relative escape, then an unrelated writer runs.
    let root = TestRoot::new();
    install_cli_plugin(&root);
    let work = tempfile::tempdir().unwrap();
    let minimal = forged_plugin(&compiled_plugin(MINIMAL), work.path(), "m", |_, _| {});
    ok(&root.run(&[
        "plugin",
        "install",
        "--yes",
        "--allow-unsigned",
        path_str(&minimal),
    ]));
    let ups = "../".repeat(8);
    edit_meta(&root, "example.com/cli-plugin", |m| {
        m["install_id"] = format!("{ups}{}", path_str(&v).trim_start_matches('/')).into()
    });
    ok(&root.run(&["plugin", "disable", "example.com/minimal"]));
    assert_untouched(&v);
    ok(&root.run(&["plugin", "uninstall", "example.com/cli-plugin"]));
    assert_untouched(&v);

    // name edited to ../../… : an unrelated disable must not put a symlink
    // over a file outside the store (nor anywhere else).
    let root = TestRoot::new();
    install_cli_plugin(&root);
    ok(&root.run(&[
        "plugin",
        "install",
        "--yes",
        "--allow-unsigned",
        path_str(&minimal),
    ]));
    let target = v.join("precious");
    edit_meta(&root, "example.com/cli-plugin", |m| {
        m["manifest"]["name"] = format!("{ups}{}", path_str(&target).trim_start_matches('/')).into()
    });
    let o = root.run(&["plugin", "disable", "example.com/minimal"]);
    ok(&o);
    assert_untouched(&v);
    // The damaged plugin is reported, not used, and can be removed.
    let list = root.run(&["plugin", "list"]);
    assert!(stderr(&list).contains("invalid meta"), "{}", stderr(&list));
    assert!(!stdout(&list).contains("cli-plugin"), "{}", stdout(&list));
    ok(&root.run(&["plugin", "uninstall", "example.com/cli-plugin"]));
    assert_untouched(&v);
    ok(&root.run(&["plugin", "enable", "example.com/minimal"]));
    assert_eq!(
        ok(&root.run(&["plugin", "list"])),
        "ENABLED  NAME\n    yes  example.com/minimal\n"
    );
}

#[test]
#[ignore = "needs root"]
fn root_readers_never_see_a_half_upgraded_plugin() {
    require_root();
    use std::sync::atomic::{AtomicBool, Ordering};
    let root = TestRoot::new();
    install_cli_plugin(&root);
    let img = signed_copy(
        &compiled_plugin(CLI_PLUGIN),
        tempfile::tempdir().unwrap().keep().as_path(),
        None,
    );
    let done = AtomicBool::new(false);
    let (runs, failures) = std::thread::scope(|s| {
        let readers: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    let mut runs = 0;
                    let mut failures = Vec::new();
                    while !done.load(Ordering::Relaxed) {
                        let o = root.run(&["test-cmd", "r"]);
                        runs += 1;
                        if !o.status.success() || stdout(&o) != "test-cmd: r\n" {
                            failures.push(stderr(&o));
                        }
                    }
                    (runs, failures)
                })
            })
            .collect();
        for _ in 0..25 {
            ok(&root.run(&["plugin", "install", "--yes", "--upgrade", path_str(&img)]));
        }
        done.store(true, Ordering::Relaxed);
        readers.into_iter().map(|r| r.join().unwrap()).fold(
            (0, Vec::new()),
            |(n, mut f), (rn, rf)| {
                f.extend(rf);
                (n + rn, f)
            },
        )
    });
    let _ = std::fs::remove_dir_all(img.parent().unwrap());
    assert!(runs > 20, "only {runs} runs overlapped the upgrades");
    assert!(
        failures.is_empty(),
        "{} of {runs} runs failed: {failures:?}",
        failures.len()
    );
    // Files dirs kept for readers go with the next writer's sweep.
    ok(&root.run(&["plugin", "disable", "example.com/cli-plugin"]));
    let dirs = std::fs::read_dir(root.plugin_dir().join(".store"))
        .unwrap()
        .count();
    assert_eq!(dirs, 1, "old files dirs left behind");
}
