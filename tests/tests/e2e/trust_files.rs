//! Trust files are checked like sudo checks sudoers: as root, vessel.toml,
//! the trust store and the plugin store are refused (naming the file, its
//! owner and mode) when another user owns or can write them or a dir above
//! them. And a meta the caller cannot read fails `exec` closed.

use std::path::Path;
use std::process::{Command, Output};

use vessel_tests::{
    as_nobody, busybox_rootfs, compiled_plugin, ok, path_str, require_root, run_ok, set_mode,
    signed_copy, stderr, stdout, TestRoot, NOBODY,
};

fn chown_nobody(p: &Path) {
    std::os::unix::fs::chown(p, Some(NOBODY), Some(NOBODY)).unwrap();
}

/// Runs a shell script as nobody (the attacker), asserting it succeeds.
fn as_attacker(script: &str) {
    let mut c = Command::new("sh");
    c.args(["-c", script]);
    as_nobody(&mut c);
    run_ok(&mut c);
}

fn refused(o: &Output, path: &Path, owner_mode: &str) {
    assert_eq!(o.status.code(), Some(255), "stdout: {}", stdout(o));
    let e = stderr(o);
    assert!(
        e.contains(&format!("refusing {}:", path.display())) && e.contains(owner_mode),
        "{e}"
    );
}

#[test]
#[ignore = "needs root"]
fn root_a_config_another_user_can_change_is_refused() {
    require_root();
    let root = TestRoot::new();
    let etc = root.path().join("etc/vessel");
    std::fs::create_dir_all(&etc).unwrap();
    let cfg = etc.join("vessel.toml");
    let unsigned = compiled_plugin("tests/fixtures/fixture-minimal");

    // A dir nobody owns: nobody writes a config turning signatures off.
    chown_nobody(&etc);
    as_attacker(&format!(
        "umask 022; echo 'plugin_signatures = \"off\"' > {}",
        path_str(&cfg)
    ));
    let o = root.run(&["plugin", "install", "--yes", path_str(&unsigned)]);
    refused(&o, &cfg, "owned by uid 65534, mode 0644");
    assert!(!root.plugin_dir().join("metas").exists());

    // Root's own file, but in a dir nobody owns (nobody can replace it).
    std::os::unix::fs::chown(&cfg, Some(0), Some(0)).unwrap();
    let o = root.run(&["plugin", "install", "--yes", path_str(&unsigned)]);
    refused(&o, &etc, "owned by uid 65534, mode 0755");

    // Root-owned everywhere, but world-writable.
    std::os::unix::fs::chown(&etc, Some(0), Some(0)).unwrap();
    set_mode(&cfg, 0o666);
    let o = root.run(&["plugin", "list"]);
    refused(&o, &cfg, "owned by uid 0, mode 0666");

    // Fixed: accepted again (and honoured).
    set_mode(&cfg, 0o644);
    ok(&root.run(&["plugin", "install", "--yes", path_str(&unsigned)]));
    // Unprivileged users are not refused: they cannot gain from it.
    set_mode(&cfg, 0o666);
    ok(&root.run_as_nobody(&["plugin", "list"]));
}

#[test]
#[ignore = "needs root"]
fn root_a_key_another_user_planted_is_not_trusted() {
    require_root();
    let root = TestRoot::new();
    root.trust_reference_key();
    let keys = root.path().join("etc/vessel/keys");
    // The attacker's own key pair, and an image they signed with it.
    let mine = tempfile::tempdir().unwrap();
    chown_nobody(mine.path());
    let prefix = mine.path().join("evil");
    ok(&root.run_as_nobody(&["key", "newpair", "--out", path_str(&prefix)]));
    let img = mine.path().join("img.sif");
    std::fs::copy(vessel_tests::reference("one-group.sif"), &img).unwrap();
    chown_nobody(&img);
    ok(&root.run_as_nobody(&[
        "sign",
        "--key",
        &format!("{}-private.pem", path_str(&prefix)),
        path_str(&img),
    ]));

    // A world-writable key dir: nobody drops their public key in.
    set_mode(&keys, 0o777);
    let planted = keys.join("evil.pem");
    as_attacker(&format!(
        "cp {}-public.pem {}",
        path_str(&prefix),
        path_str(&planted)
    ));
    let o = root.run(&["verify", path_str(&img)]);
    refused(&o, &keys, "owned by uid 0, mode 0777");

    // Dir fixed, but the key file is still nobody's.
    set_mode(&keys, 0o755);
    let o = root.run(&["verify", path_str(&img)]);
    refused(&o, &planted, "owned by uid 65534");

    // Without the planted key the image is not trusted.
    std::fs::remove_file(&planted).unwrap();
    let o = root.run(&["verify", path_str(&img)]);
    assert_eq!(o.status.code(), Some(255));
    assert!(stderr(&o).contains("unknown key"), "{}", stderr(&o));
}

#[test]
#[ignore = "needs root"]
fn root_a_plugin_store_another_user_can_change_is_refused() {
    require_root();
    let root = TestRoot::new();
    root.trust_reference_key();
    let own = tempfile::tempdir().unwrap();
    let img = signed_copy(
        &compiled_plugin("examples/plugins/cli-plugin"),
        own.path(),
        None,
    );
    ok(&root.run(&["plugin", "install", "--yes", path_str(&img)]));
    let metas = root.plugin_dir().join("metas");
    set_mode(&metas, 0o777);
    let o = root.run(&["plugin", "disable", "example.com/cli-plugin"]);
    refused(&o, &metas, "owned by uid 0, mode 0777");
    // Nobody's plugin commands run as root from such a store either.
    let o = root.run(&["test-cmd", "x"]);
    assert_ne!(stdout(&o), "test-cmd: x\n");
    set_mode(&metas, 0o755);
    chown_nobody(&root.plugin_dir());
    let o = root.run(&["plugin", "disable", "example.com/cli-plugin"]);
    refused(&o, &root.plugin_dir(), "owned by uid 65534");
    std::os::unix::fs::chown(root.plugin_dir(), Some(0), Some(0)).unwrap();
    ok(&root.run(&["plugin", "disable", "example.com/cli-plugin"]));
}

#[test]
#[ignore = "needs root"]
fn root_a_meta_the_caller_cannot_read_fails_exec_closed() {
    require_root();
    let root = TestRoot::new();
    root.trust_reference_key();
    let own = tempfile::tempdir().unwrap();
    let img = signed_copy(
        &compiled_plugin("examples/plugins/config-plugin"),
        own.path(),
        None,
    );
    ok(&root.run(&["plugin", "install", "--yes", path_str(&img)]));
    let sandbox = tempfile::tempdir().unwrap();
    busybox_rootfs(sandbox.path(), &[]);
    set_mode(&root.plugin_meta("example.com/config-plugin"), 0o600);
    let tmp = tempfile::tempdir().unwrap();
    set_mode(tmp.path(), 0o1777);
    let mut c = root.vessel();
    c.env("TMPDIR", tmp.path())
        .args(["exec", path_str(sandbox.path()), "true"]);
    as_nobody(&mut c);
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(255), "{}", stdout(&o));
    let e = stderr(&o);
    assert!(
        e.contains(&format!(
            "{}",
            root.plugin_meta("example.com/config-plugin").display()
        )) && e.contains("refusing to run without that plugin's policy"),
        "{e}"
    );
}
