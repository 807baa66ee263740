//! No hangs on special files: every command that reads an image or a
//! plugin library opens it without blocking and refuses what is not a
//! regular file, instead of waiting forever on a FIFO.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use vessel_tests::{compiled_plugin, ok, path_str, require_root, signed_copy, stderr, TestRoot};

fn mkfifo(p: &Path) {
    nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
}

/// Runs `c`, failing the test if it has not ended within 20 s.
fn within_deadline(mut c: Command, what: &str) -> Output {
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} hangs on a FIFO");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn refused(o: &Output, what: &str) {
    assert_eq!(o.status.code(), Some(255), "{what}: {}", stderr(o));
    assert!(
        stderr(o).contains("not a regular file"),
        "{what}: {}",
        stderr(o)
    );
}

#[test]
fn sif_list_and_plugin_inspect_refuse_a_fifo_at_once() {
    let root = TestRoot::new();
    let fifo = root.path().join("image.sif");
    mkfifo(&fifo);
    for args in [
        vec!["sif", "list", path_str(&fifo)],
        vec!["sif", "info", "1", path_str(&fifo)],
        vec!["plugin", "inspect", path_str(&fifo)],
        vec!["verify", path_str(&fifo)],
    ] {
        let mut c = root.vessel();
        c.args(&args);
        refused(&within_deadline(c, &args.join(" ")), &args.join(" "));
    }
}

#[test]
#[ignore = "needs root"]
fn root_a_fifo_as_an_installed_plugin_so_is_refused_at_once() {
    require_root();
    let root = TestRoot::new();
    let own = tempfile::tempdir().unwrap();
    let img = signed_copy(
        &compiled_plugin("examples/plugins/cli-plugin"),
        own.path(),
        None,
    );
    root.trust_reference_key();
    ok(&root.run(&["plugin", "install", "--yes", path_str(&img)]));
    let so = root
        .plugin_files("example.com/cli-plugin")
        .join("plugin.so");
    vessel_tests::unseal(&so);
    std::fs::remove_file(&so).unwrap();
    mkfifo(&so);
    let mut c = root.vessel();
    c.args(["test-cmd", "x"]);
    let o = within_deadline(c, "a plugin command");
    refused(&o, "test-cmd");
    assert!(
        stderr(&o).contains("example.com/cli-plugin"),
        "{}",
        stderr(&o)
    );
    // The broken plugin can still be removed.
    ok(&root.run(&["plugin", "uninstall", "example.com/cli-plugin"]));
}
