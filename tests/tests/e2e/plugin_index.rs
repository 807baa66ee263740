//! The store's CLI index (`.index`): start-up reads it instead of every
//! meta, but it is only a cache. Deleted or corrupt, it is rebuilt from the
//! metas; one that names a plugin without a meta is not believed; and it
//! never decides what loads: a tampered library is refused with a current
//! index just as without one.

use vessel_tests::{
    as_nobody, assert_error, compiled_plugin, ok, path_str, require_root, stderr, stdout, TestRoot,
};

const CLI_PLUGIN: &str = "examples/plugins/cli-plugin";

fn with_cli_plugin() -> TestRoot {
    let root = TestRoot::new();
    ok(&root.run(&[
        "plugin",
        "install",
        "--yes",
        "--allow-unsigned",
        path_str(&compiled_plugin(CLI_PLUGIN)),
    ]));
    root
}

fn index(root: &TestRoot) -> std::path::PathBuf {
    root.plugin_dir().join(".index")
}

/// The index but for the stamp in its first line (each writer stamps the
/// metas dir afresh): what it says about the plugins.
fn contents(index: &[u8]) -> String {
    let text = String::from_utf8(index.to_vec()).expect("the index is UTF-8");
    match (text.find("\"stamp\":"), text.find(",\"precise\":")) {
        (Some(a), Some(b)) if a < b => format!("{}{}", &text[..a], &text[b..]),
        _ => text,
    }
}

#[test]
#[ignore = "needs root"]
fn root_a_deleted_or_corrupt_index_is_rebuilt_and_commands_still_work() {
    require_root();
    let root = with_cli_plugin();
    let good = std::fs::read(index(&root)).expect("install writes the index");
    assert_eq!(ok(&root.run(&["test-cmd", "a"])), "test-cmd: a\n");

    // Deleted: a reader that is not root uses the metas and writes nothing.
    std::fs::remove_file(index(&root)).unwrap();
    let mut help = root.vessel();
    help.arg("--help");
    as_nobody(&mut help);
    assert!(ok(&help.output().unwrap()).contains("test-cmd"));
    assert!(!index(&root).exists(), "a non-root reader wrote the index");
    // Root rebuilds it, the same as a writer writes it.
    assert_eq!(ok(&root.run(&["test-cmd", "b"])), "test-cmd: b\n");
    assert_eq!(
        contents(&std::fs::read(index(&root)).unwrap()),
        contents(&good)
    );

    // Corrupt in several ways: every command still sees the metas.
    let text = String::from_utf8(good.clone()).unwrap();
    let header_end = text.find('\n').unwrap();
    for bad in [
        "not json\n".to_owned(),
        String::new(),
        text[..header_end].to_owned(),
        format!("{}\n{{\"manifest\":1}}\n", &text[..header_end]),
    ] {
        std::fs::write(index(&root), &bad).unwrap();
        assert_eq!(ok(&root.run(&["test-cmd", "c"])), "test-cmd: c\n", "{bad}");
        std::fs::write(index(&root), &bad).unwrap();
        assert!(ok(&root.run(&["--help"])).contains("test-cmd"), "{bad}");
        std::fs::write(index(&root), &bad).unwrap();
        assert!(ok(&root.run(&["version", "--test", "x"])).contains("test: x"));
    }
    assert_eq!(
        contents(&std::fs::read(index(&root)).unwrap()),
        contents(&good)
    );

    // A disable by the admin is seen at once, through the rewritten index.
    ok(&root.run(&["plugin", "disable", "example.com/cli-plugin"]));
    let o = root.run(&["test-cmd", "a"]);
    assert_error(
        &o,
        255,
        &["command \"test-cmd\" comes from plugin \"example.com/cli-plugin\", which is disabled"],
    );
    assert!(stdout(&o).is_empty());
    ok(&root.run(&["plugin", "enable", "example.com/cli-plugin"]));
    assert_eq!(ok(&root.run(&["test-cmd", "a"])), "test-cmd: a\n");
}

#[test]
#[ignore = "needs root"]
fn root_an_index_naming_a_plugin_without_a_meta_is_not_trusted() {
    require_root();
    let root = with_cli_plugin();
    // Same stamp, same count: only the plugin's name and command differ,
    // consistently, everywhere in the index.
    let forged = std::fs::read_to_string(index(&root))
        .unwrap()
        .replace("example.com/cli-plugin", "example.com/ghost")
        .replace("test-cmd", "ghost-cmd");
    std::fs::write(index(&root), &forged).unwrap();
    let o = root
        .vessel()
        .env("VESSEL_LOG", "debug")
        .args(["ghost-cmd", "x"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let log = stderr(&o);
    assert!(log.contains("unrecognized subcommand 'ghost-cmd'"), "{log}");
    assert!(log.contains("names a plugin without a meta"), "{log}");
    assert!(!log.contains("loading plugin library"), "{log}");
    assert!(!stdout(&o).contains("ghost"), "{}", stdout(&o));
    // The real plugin is back, from the metas.
    assert_eq!(ok(&root.run(&["test-cmd", "a"])), "test-cmd: a\n");
    assert!(!ok(&root.run(&["--help"])).contains("ghost"));
}

#[test]
#[ignore = "needs root"]
fn root_a_tampered_library_is_refused_with_a_current_index() {
    require_root();
    let root = with_cli_plugin();
    let so = root
        .plugin_files("example.com/cli-plugin")
        .join("plugin.so");
    vessel_tests::unseal(&so);
    let mut bytes = std::fs::read(&so).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&so, &bytes).unwrap();
    let index_before = std::fs::read(index(&root)).unwrap();
    let o = root
        .vessel()
        .env("VESSEL_LOG", "debug")
        .args(["test-cmd", "a"])
        .output()
        .unwrap();
    let log = stderr(&o);
    // The index was current and used (not rebuilt) ...
    assert!(!log.contains("rebuilding the plugin index"), "{log}");
    assert_eq!(std::fs::read(index(&root)).unwrap(), index_before);
    // ... and the load still checked the library against the meta.
    let e = assert_error(&o, 255, &["example.com/cli-plugin", "sha256"]);
    assert!(e.contains("expected"), "{e}");
    assert!(!stdout(&o).contains("test-cmd: a"));
}
