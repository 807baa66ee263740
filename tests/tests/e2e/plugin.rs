//! The plugin lifecycle as an admin and a user see it: create, compile,
//! install, list, enable/disable, inspect, uninstall; plugin commands and
//! flags in the CLI; bad input and crashes leave the store as it was.
//! Installing is root-only, so most tests here need root (`root_` prefix).

use std::path::Path;

use vessel_tests::{
    assert_error, compiled_plugin, custom_plugin, ok, reference, require_root, signed_copy,
    snapshot, stderr, stdout, TestRoot,
};

const CLI_PLUGIN: &str = "examples/plugins/cli-plugin";

/// A signed cli-plugin image, installed into `root` with its key trusted.
fn install_cli_plugin(root: &TestRoot) -> std::path::PathBuf {
    let img = signed_copy(&compiled_plugin(CLI_PLUGIN), root.path(), None);
    root.trust_reference_key();
    ok(&root.run(&["plugin", "install", "--yes", img.to_str().unwrap()]));
    img
}

#[test]
#[ignore = "needs root"]
fn root_full_flow_create_compile_install_list_toggle_inspect_uninstall() {
    require_root();
    let root = TestRoot::new();
    let img = custom_plugin("example.com/flow", None);
    // siftool sees exactly the plugin layout.
    let list = std::process::Command::new("siftool")
        .arg("list")
        .arg(&img)
        .output()
        .expect("siftool");
    let text = stdout(&list);
    assert!(
        text.contains("|1       |NONE    |") && text.contains("FS (Raw/Data/amd64)"),
        "{text}"
    );
    assert!(text.contains("JSON.Generic"), "{text}");
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with(char::is_numeric))
            .count(),
        2
    );

    // Unsigned: refused with a hint, nothing written.
    let e = assert_error(
        &root.run(&["plugin", "install", "--yes", img.to_str().unwrap()]),
        255,
        &[],
    );
    assert!(
        e.contains("not signed") && e.contains("--allow-unsigned"),
        "{e}"
    );
    assert!(snapshot(&root.plugin_dir())
        .iter()
        .all(|(p, _, _)| p.starts_with(".")));

    // Signed with a trusted key: accepted.
    let signed = signed_copy(&img, root.path(), None);
    root.trust_reference_key();
    let out = ok(&root.run(&["plugin", "install", "--yes", signed.to_str().unwrap()]));
    assert!(out.contains("installed"), "{out}");
    assert_eq!(
        ok(&root.run(&["plugin", "list"])),
        "ENABLED  NAME\n    yes  example.com/flow\n"
    );
    ok(&root.run(&["plugin", "disable", "example.com/flow"]));
    assert_eq!(
        ok(&root.run(&["plugin", "list"])),
        "ENABLED  NAME\n     no  example.com/flow\n"
    );
    let again = ok(&root.run(&["plugin", "disable", "example.com/flow"]));
    assert!(again.contains("already disabled"), "{again}");
    ok(&root.run(&["plugin", "enable", "example.com/flow"]));
    assert!(ok(&root.run(&["plugin", "list"])).contains("    yes  example.com/flow"));

    let by_name = ok(&root.run(&["plugin", "inspect", "example.com/flow"]));
    assert!(
        by_name.starts_with("Name:        example.com/flow\n"),
        "{by_name}"
    );
    assert!(by_name.contains("(trusted)"), "{by_name}");
    let by_file = ok(&root.run(&["plugin", "inspect", signed.to_str().unwrap()]));
    assert!(
        by_file.starts_with("Name:        example.com/flow\nDescription:"),
        "{by_file}"
    );
    let json = ok(&root.run(&["plugin", "inspect", "--json", "example.com/flow"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["manifest"]["name"], "example.com/flow");

    ok(&root.run(&["plugin", "uninstall", "example.com/flow"]));
    assert_eq!(
        ok(&root.run(&["plugin", "list"])),
        "There are no plugins installed.\n"
    );
    let e = assert_error(
        &root.run(&["plugin", "uninstall", "example.com/flow"]),
        255,
        &[],
    );
    assert!(
        e.contains("plugin \"example.com/flow\" is not installed"),
        "{e}"
    );
}

const DUPLICATE_COMMAND_PLUGIN: &str = r#"
use vessel_plugin_api::{Command, Plugin};
pub fn build() -> Plugin {
    Plugin::new("example.com/dup")
        .version("0.1.0")
        .command(Command::new("gpu"), |_| Ok(0))
        .command(Command::new("gpu"), |_| Ok(1))
}
vessel_plugin_api::export_plugin!(build);
"#;

#[test]
fn compile_refuses_what_install_would_and_a_command_declared_twice() {
    let dir = vessel_tests::plugin_work_dir().join("src-dup-command");
    let _ = std::fs::remove_dir_all(&dir);
    let root = TestRoot::new();
    ok(&root.run(&["plugin", "create", dir.to_str().unwrap(), "example.com/dup"]));
    std::fs::write(dir.join("src/lib.rs"), DUPLICATE_COMMAND_PLUGIN).unwrap();
    let out = dir.join("dup.sif");
    let o = root.run(&[
        "plugin",
        "compile",
        "--out",
        out.to_str().unwrap(),
        dir.to_str().unwrap(),
    ]);
    // Cargo's progress precedes it on stderr; vessel's error is the last line.
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(255), "{e}");
    let last = e.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: ")
            && last.contains(r#"plugin "example.com/dup": command "gpu": declared twice"#),
        "{e}"
    );
    assert!(!out.exists(), "an image was written");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn compile_outside_the_tree_fails_and_writes_nothing() {
    let root = TestRoot::new();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("Cargo.toml"), "[package]\nname=\"x\"\n").unwrap();
    let before = snapshot(outside.path());
    let e = assert_error(
        &root.run(&["plugin", "compile", outside.path().to_str().unwrap()]),
        255,
        &[],
    );
    assert!(e.contains("outside the vessel source tree"), "{e}");
    assert_eq!(snapshot(outside.path()), before);
    let e = assert_error(
        &root.run(&[
            "plugin",
            "create",
            outside.path().join("new").to_str().unwrap(),
            "example.com/x",
        ]),
        255,
        &[],
    );
    assert!(e.contains("outside the vessel source tree"), "{e}");
    assert!(!outside.path().join("new").exists());

    // Inside the tree, `create` refuses a non-empty dir and touches nothing.
    let busy = tempfile::tempdir_in(vessel_tests::plugin_work_dir()).unwrap();
    std::fs::write(busy.path().join("keep.txt"), "mine").unwrap();
    let before = snapshot(busy.path());
    let e = assert_error(
        &root.run(&[
            "plugin",
            "create",
            busy.path().to_str().unwrap(),
            "example.com/x",
        ]),
        255,
        &[],
    );
    assert!(e.contains("already exists and is not empty"), "{e}");
    assert_eq!(snapshot(busy.path()), before);
    let e = assert_error(
        &root.run(&["plugin", "create", "target/x", "../bad"]),
        255,
        &[],
    );
    assert!(e.contains("plugin name \"../bad\" is invalid"), "{e}");
}

#[test]
#[ignore = "needs root"]
fn root_admin_commands_as_nobody_need_root_and_change_nothing() {
    require_root();
    let root = TestRoot::new();
    let img = install_cli_plugin(&root);
    let before = snapshot(&root.plugin_dir());
    for args in [
        vec!["plugin", "install", "--yes", img.to_str().unwrap()],
        vec!["plugin", "uninstall", "example.com/cli-plugin"],
        vec!["plugin", "disable", "example.com/cli-plugin"],
        vec!["plugin", "enable", "example.com/cli-plugin"],
    ] {
        let e = assert_error(&root.run_as_nobody(&args), 255, &[]);
        assert!(e.contains("requires root"), "{args:?}: {e}");
    }
    assert_eq!(snapshot(&root.plugin_dir()), before);
    // Reading works for anyone.
    assert!(ok(&root.run_as_nobody(&["plugin", "list"])).contains("example.com/cli-plugin"));
}

#[test]
#[ignore = "needs root"]
fn root_cli_plugin_commands_and_flags() {
    require_root();
    let root = TestRoot::new();
    install_cli_plugin(&root);
    assert_eq!(ok(&root.run(&["test-cmd", "a", "b"])), "test-cmd: a b\n");
    let v = ok(&root.run(&["version", "--test", "hi"]));
    assert!(v.starts_with("test: hi\nvessel version "), "{v}");
    let signed = reference("one-group-signed-dsse.sif");
    let e = assert_error(
        &root.run(&["verify", "--abort", signed.to_str().unwrap()]),
        255,
        &[],
    );
    assert!(e.contains("verify aborted by --abort"), "{e}");
    let help = ok(&root.run(&["--help"]));
    assert!(help.contains("test-cmd"), "{help}");
    let vhelp = ok(&root.run(&["version", "--help"]));
    assert!(vhelp.contains("--test"), "{vhelp}");
    // A disabled plugin's commands disappear.
    ok(&root.run(&["plugin", "disable", "example.com/cli-plugin"]));
    assert!(!ok(&root.run(&["--help"])).contains("test-cmd"));
    // Its command is no longer parsed; the error names the disabled plugin.
    assert_error(
        &root.run(&["test-cmd"]),
        255,
        &[
            "command \"test-cmd\" comes from plugin \"example.com/cli-plugin\", which is disabled",
            "vessel plugin enable example.com/cli-plugin",
        ],
    );
}

/// Writes `n` installed-looking plugins whose libraries are not even ELF
/// files: if anything opened them, it would fail.
fn fake_plugins(root: &TestRoot, n: usize) {
    let dir = root.plugin_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..n {
        let name = format!("example.com/dummy{i:03}");
        let so = format!("not a library {i}");
        let manifest = serde_json::json!({
            "name": name, "api_version": "1.0.0",
            "callbacks": ["command"],
            "commands": [{"name": format!("dummy{i:03}"), "about": "a dummy command"}],
            "sha256": sha256_hex(so.as_bytes()),
        });
        let meta = serde_json::json!({
            "manifest": manifest, "enabled": true, "signer": null,
            "installed_at": 0, "install_id": format!("{i:032x}"),
        });
        let pdir = dir.join(".store").join(format!("{i:032x}"));
        std::fs::create_dir_all(&pdir).unwrap();
        std::fs::write(pdir.join("plugin.so"), so).unwrap();
        std::fs::create_dir_all(dir.join("metas")).unwrap();
        std::fs::write(
            dir.join("metas")
                .join(format!("{}.meta", sha256_hex(name.as_bytes()))),
            meta.to_string(),
        )
        .unwrap();
    }
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

#[test]
fn help_with_50_plugins_opens_no_library() {
    let root = TestRoot::new();
    fake_plugins(&root, 50);
    let o = root
        .vessel()
        .env("VESSEL_LOG", "debug")
        .arg("--help")
        .output()
        .unwrap();
    let help = ok(&o);
    assert!(
        help.contains("dummy000") && help.contains("dummy049"),
        "{help}"
    );
    let log = stderr(&o);
    assert!(
        log.contains("building the command line from plugin metas"),
        "{log}"
    );
    assert!(!log.contains("loading plugin library"), "{log}");
    let list = ok(&root.run(&["plugin", "list"]));
    assert_eq!(list.lines().count(), 51);
    // Control: running a plugin command does open (and here refuse) its library.
    let o = root
        .vessel()
        .env("VESSEL_LOG", "debug")
        .arg("dummy007")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(255));
    let log = stderr(&o);
    assert!(log.contains("loading plugin library"), "{log}");
    assert!(log.contains("example.com/dummy007"), "{log}");
    assert!(!log.contains("dummy008"), "{log}");
}

#[test]
fn list_filters_and_wide_form() {
    let root = TestRoot::new();
    fake_plugins(&root, 3);
    let wide = ok(&root.run(&["plugin", "list", "-l"]));
    assert!(wide.starts_with("ENABLED  NAME"), "{wide}");
    assert!(
        wide.contains("CALLBACKS") && wide.contains("command"),
        "{wide}"
    );
    assert_eq!(
        ok(&root.run(&["plugin", "list", "--callback", "engine_config"])),
        "No installed plugin matches.\n"
    );
    assert_eq!(
        ok(&root.run(&["plugin", "list", "--enabled"]))
            .lines()
            .count(),
        4
    );
    let json = ok(&root.run(&["plugin", "list", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert_eq!(v[0]["name"], "example.com/dummy000");
}

use vessel_tests::forged_plugin as forged;

#[test]
#[ignore = "needs root"]
fn root_bad_plugins_leave_nothing_behind() {
    require_root();
    let root = TestRoot::new();
    install_cli_plugin(&root);
    let work = tempfile::tempdir().unwrap();
    let cli = compiled_plugin(CLI_PLUGIN);
    let fixtures_dir = work.path();

    let mut cases: Vec<(&str, std::path::PathBuf, &str, Vec<&str>)> = Vec::new();
    for (label, bad_name) in [
        ("dotdot", "../escape"),
        ("absolute", "/etc/x"),
        ("empty-seg", "a//b"),
    ] {
        let p = forged(&cli, fixtures_dir, label, |m, _| {
            m["name"] = bad_name.into()
        });
        cases.push((label, p, "is invalid", vec!["--allow-unsigned"]));
    }
    let p = forged(&cli, fixtures_dir, "badsha", |m, _| {
        m["sha256"] = "00".repeat(32).into()
    });
    cases.push((
        "sha mismatch",
        p,
        "does not match the manifest",
        vec!["--allow-unsigned"],
    ));
    let p = forged(&cli, fixtures_dir, "notelf", |m, lib| {
        *lib = b"#!/bin/sh\necho not a library\n".to_vec();
        m["sha256"] = sha256_hex(lib).into();
        m["name"] = "example.com/notelf".into();
    });
    cases.push(("non-elf", p, "not an elf", vec!["--allow-unsigned"]));
    let unsigned = forged(&cli, fixtures_dir, "unsigned", |m, _| {
        m["name"] = "example.com/cli-plugin".into()
    });
    cases.push((
        "unsigned",
        unsigned.clone(),
        "not signed",
        vec!["--upgrade"],
    ));
    let other_key = work.path().join("other");
    ok(&root.run(&["key", "newpair", "--out", other_key.to_str().unwrap()]));
    let other_priv = work.path().join("other-private.pem");
    let wdir = work.path().join("w");
    std::fs::create_dir(&wdir).unwrap();
    let wrong = signed_copy(&compiled_plugin(CLI_PLUGIN), &wdir, Some(&other_priv));
    cases.push((
        "wrong key",
        wrong,
        "not from a trusted key",
        vec!["--upgrade"],
    ));
    let clash = custom_plugin("example.com/clash", Some(CLASHING_PLUGIN));
    cases.push((
        "clash",
        clash,
        "clashes with plugin \"example.com/cli-plugin\"",
        vec!["--allow-unsigned"],
    ));
    let failing = custom_plugin("example.com/failing-install", Some(FAILING_INSTALL_PLUGIN));
    cases.push((
        "install callback",
        failing,
        "cannot prepare",
        vec!["--allow-unsigned"],
    ));

    for (label, img, want, extra) in cases {
        let before = snapshot(&root.plugin_dir());
        let mut args = vec!["plugin", "install", "--yes"];
        args.extend(extra);
        args.push(img.to_str().unwrap());
        let e = assert_error(&root.run(&args), 255, &[]);
        assert!(e.to_lowercase().contains(want), "{label}: {e}");
        assert_eq!(
            snapshot(&root.plugin_dir()),
            before,
            "{label}: plugin dir changed"
        );
    }
    // The installed plugin still works.
    assert_eq!(ok(&root.run(&["test-cmd", "x"])), "test-cmd: x\n");
}

const CLASHING_PLUGIN: &str = r#"
use vessel_plugin_api::{Command, Plugin};
pub fn build() -> Plugin {
    Plugin::new("example.com/clash").version("0.1.0").command(Command::new("test-cmd"), |_| Ok(0))
}
vessel_plugin_api::export_plugin!(build);
"#;

const FAILING_INSTALL_PLUGIN: &str = r#"
use vessel_plugin_api::Plugin;
pub fn build() -> Plugin {
    Plugin::new("example.com/failing-install")
        .version("0.1.0")
        .install(|dir| {
            std::fs::write(dir.join("half-written"), b"x")?;
            Err(format!("cannot prepare {}", dir.display()).into())
        })
}
vessel_plugin_api::export_plugin!(build);
"#;

#[test]
#[ignore = "needs root"]
fn root_killed_installs_leave_old_or_new_state() {
    require_root();
    // A dir of its own: tests run in parallel and must not share the copy.
    let own = tempfile::tempdir().unwrap();
    let img = signed_copy(&compiled_plugin(CLI_PLUGIN), own.path(), None);
    for point in ["files-written", "activated", "meta-written", "link-updated"] {
        for upgrade in [false, true] {
            let root = TestRoot::new();
            root.trust_reference_key();
            if upgrade {
                ok(&root.run(&["plugin", "install", "--yes", img.to_str().unwrap()]));
            }
            let o = root
                .vessel()
                .env("VESSEL_FAULT_INJECT", format!("{point}:kill"))
                // A killed install cannot remove its scratch dir: keep it in
                // this test's root rather than litter the real /tmp.
                .env("TMPDIR", root.path())
                .args([
                    "plugin",
                    "install",
                    "--yes",
                    "--upgrade",
                    img.to_str().unwrap(),
                ])
                .output()
                .unwrap();
            assert!(!o.status.success(), "{point}: not killed");
            // Whatever happened, the next command sees a whole plugin or none.
            let list = ok(&root.run(&["plugin", "list"]));
            let installed = list.contains("example.com/cli-plugin");
            if installed {
                assert_eq!(
                    ok(&root.run(&["test-cmd", "ok"])),
                    "test-cmd: ok\n",
                    "{point}"
                );
            } else {
                assert!(!upgrade, "{point}: an upgrade lost the old plugin");
                assert_eq!(list, "There are no plugins installed.\n", "{point}");
            }
            // The next writer cleans up and works.
            ok(&root.run(&[
                "plugin",
                "install",
                "--yes",
                "--upgrade",
                img.to_str().unwrap(),
            ]));
            assert_eq!(ok(&root.run(&["test-cmd", "ok"])), "test-cmd: ok\n");
            let leftovers: Vec<_> = snapshot(&root.plugin_dir())
                .into_iter()
                .filter(|(p, _, _)| {
                    let s = p.to_string_lossy();
                    s.starts_with(".tmp")
                        || (s.starts_with(".store/") && s.matches('/').count() == 1)
                })
                .collect();
            assert_eq!(leftovers.len(), 1, "{point}: {leftovers:?}");
        }
    }
}

#[test]
#[ignore = "needs root"]
fn root_tampering_after_install_is_refused() {
    require_root();
    let root = TestRoot::new();
    install_cli_plugin(&root);
    let so = root
        .plugin_files("example.com/cli-plugin")
        .join("plugin.so");
    let debug_run = || {
        root.vessel()
            .env("VESSEL_LOG", "debug")
            .args(["test-cmd", "a"])
            .output()
            .unwrap()
    };
    // Untouched since install, and immutable (the install set the inode
    // flag): the installed file itself is loaded, without hashing or
    // copying it, nor asking abi_stable about layouts this same binary
    // checked at install.
    assert!(vessel_tests::is_immutable(&so));
    let o = debug_run();
    assert_eq!(ok(&o), "test-cmd: a\n");
    let log = stderr(&o);
    assert!(
        log.contains(
            "library immutable and unchanged since install: loading the installed file in place"
        ),
        "{log}"
    );
    assert!(
        log.contains("layouts checked at install by this runtime binary"),
        "{log}"
    );
    // Nobody can write it now, root included, without clearing the flag.
    let w = std::fs::OpenOptions::new().write(true).open(&so);
    assert_eq!(w.unwrap_err().raw_os_error(), Some(libc::EPERM));
    // An admin clears the flag (`chattr -i`): that alone changes the
    // file's ctime, so its stamp no longer stands for the install's checks
    // and the bytes are hashed again (still the same: the plugin runs).
    vessel_tests::unseal(&so);
    let o = debug_run();
    assert_eq!(ok(&o), "test-cmd: a\n");
    assert!(
        stderr(&o).contains("library changed since install: checking its sha256"),
        "{}",
        stderr(&o)
    );
    // Rewritten in place, same size and inode, nothing else changed: the
    // bytes are hashed and refused.
    let size = std::fs::metadata(&so).unwrap().len();
    {
        use std::io::{Read, Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&so)
            .unwrap();
        let at = size - 200;
        let mut b = [0u8; 1];
        f.seek(SeekFrom::Start(at)).unwrap();
        f.read_exact(&mut b).unwrap();
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(&[b[0] ^ 0xff]).unwrap();
    }
    assert_eq!(std::fs::metadata(&so).unwrap().len(), size);
    let o = debug_run();
    assert!(
        stderr(&o).contains("library changed since install"),
        "{}",
        stderr(&o)
    );
    let e = assert_error(&o, 255, &["example.com/cli-plugin", "sha256", "expected"]);
    assert!(!stdout(&o).contains("test-cmd: a"), "{e}");
    vessel_tests::set_mode(&so, 0o664);
    let e = assert_error(&root.run(&["test-cmd", "a"]), 255, &[]);
    assert!(
        e.contains("example.com/cli-plugin") && e.contains("group-writable"),
        "{e}"
    );
    vessel_tests::set_mode(&so, 0o644);
    let mut bytes = std::fs::read(&so).unwrap();
    let n = bytes.len() - 100;
    bytes[n] ^= 0xff;
    std::fs::write(&so, bytes).unwrap();
    let e = assert_error(&root.run(&["test-cmd", "a"]), 255, &[]);
    assert!(
        e.contains("example.com/cli-plugin") && e.contains("sha256"),
        "{e}"
    );
    // `plugin ...` still works, so the broken plugin can be removed.
    assert!(ok(&root.run(&["plugin", "list"])).contains("example.com/cli-plugin"));
    ok(&root.run(&["plugin", "uninstall", "example.com/cli-plugin"]));
}

#[test]
fn completion_lists_plugin_commands_without_opening_libraries() {
    let root = TestRoot::new();
    fake_plugins(&root, 3);
    let o = root
        .vessel()
        .env("VESSEL_LOG", "debug")
        .args(["completion", "bash"])
        .output()
        .unwrap();
    let script = ok(&o);
    assert!(
        script.contains("dummy001") && script.contains("plugin"),
        "{script}"
    );
    assert!(
        !stderr(&o).contains("loading plugin library"),
        "{}",
        stderr(&o)
    );
}

#[test]
#[ignore = "needs root"]
fn root_reinstall_needs_upgrade_which_keeps_the_enabled_state() {
    require_root();
    let root = TestRoot::new();
    let img = install_cli_plugin(&root);
    let e = assert_error(
        &root.run(&["plugin", "install", "--yes", img.to_str().unwrap()]),
        255,
        &[],
    );
    assert!(
        e.contains("already installed") && e.contains("--upgrade"),
        "{e}"
    );
    ok(&root.run(&["plugin", "disable", "example.com/cli-plugin"]));
    let out = ok(&root.run(&[
        "plugin",
        "install",
        "--yes",
        "--upgrade",
        img.to_str().unwrap(),
    ]));
    assert!(out.contains("upgraded"), "{out}");
    assert_eq!(
        ok(&root.run(&["plugin", "list"])),
        "ENABLED  NAME\n     no  example.com/cli-plugin\n"
    );
    let e = assert_error(
        &root.run(&["plugin", "enable", "example.com/nope"]),
        255,
        &[],
    );
    assert!(
        e.contains("plugin \"example.com/nope\" is not installed"),
        "{e}"
    );
}

#[test]
#[ignore = "needs root"]
fn root_the_readme_plugin_example_works_as_written() {
    require_root();
    let readme = std::fs::read_to_string(vessel_tests::workspace_root().join("README.md")).unwrap();
    let start = readme.find("```rust\n").expect("README has a rust example") + "```rust\n".len();
    let code: String = readme[start..][..readme[start..].find("```").unwrap()]
        .lines()
        .map(|l| l.strip_prefix("   ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let img = custom_plugin("example.com/hello", Some(&code));
    let root = TestRoot::new();
    ok(&root.run(&[
        "plugin",
        "install",
        "--yes",
        "--allow-unsigned",
        img.to_str().unwrap(),
    ]));
    assert!(ok(&root.run(&["plugin", "list"])).contains("    yes  example.com/hello"));
    assert_eq!(ok(&root.run(&["hello", "world"])), "hello, world\n");
    // Its required argument is enforced by the CLI.
    assert_eq!(root.run(&["hello"]).status.code(), Some(2));
}

#[test]
#[ignore = "needs root"]
fn root_sigkill_during_installs_never_leaves_a_half_plugin() {
    require_root();
    // A dir of its own: tests run in parallel and must not share the copy.
    let own = tempfile::tempdir().unwrap();
    let img = signed_copy(&compiled_plugin(CLI_PLUGIN), own.path(), None);
    let root = TestRoot::new();
    root.trust_reference_key();
    // How long a whole upgrade takes here, to spread the kills over it.
    let t0 = std::time::Instant::now();
    ok(&root.run(&["plugin", "install", "--yes", img.to_str().unwrap()]));
    let span = t0.elapsed().as_micros() as u64;
    for i in 0..24u64 {
        let mut child = root
            .vessel()
            .args([
                "plugin",
                "install",
                "--yes",
                "--upgrade",
                img.to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_micros(span * i / 20));
        let _ = child.kill();
        let _ = child.wait();
        // Old or new, it is always a whole, working plugin.
        assert_eq!(
            ok(&root.run(&["test-cmd", "k"])),
            "test-cmd: k\n",
            "kill {i}"
        );
    }
    // The next writer sweeps what the killed ones left.
    ok(&root.run(&["plugin", "disable", "example.com/cli-plugin"]));
    let dirs = std::fs::read_dir(root.plugin_dir().join(".store"))
        .unwrap()
        .count();
    assert_eq!(dirs, 1, "leftover files dirs");
}

#[test]
#[ignore = "needs root"]
fn root_install_of_a_device_or_fifo_fails_at_once() {
    require_root();
    let root = TestRoot::new();
    let fifo = root.path().join("plugin.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    for file in [Path::new("/dev/zero"), fifo.as_path()] {
        let mut child = root
            .vessel()
            .args(["plugin", "install", "--yes", file.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("plugin install {} hangs", file.display());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let e = assert_error(&child.wait_with_output().unwrap(), 255, &[]);
        assert!(e.contains("not a regular file"), "{e}");
    }
}
