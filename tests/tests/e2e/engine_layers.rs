//! Writable container layers: `--writable-tmpfs`, `--overlay DIR`, and
//! bind destinations missing from the (read-only) image, as root and as
//! `nobody` (in a user namespace).

use std::path::Path;
use std::process::Output;

use vessel_tests::{
    assert_error, nobody_has_userns, path_str as p, require_root, set_mode, snapshot, stderr,
    stdout, NOBODY,
};

use crate::engine::{fixtures, images, Env};

/// Runs as root, then as nobody when nobody may create user namespaces.
fn as_each(env: &Env, args: &[&str], mut check: impl FnMut(&str, Output)) {
    check("root", env.run(args));
    if nobody_has_userns() {
        check("nobody", env.run_as_nobody(args));
    }
}

fn world_readable_dir(prefix: &str) -> tempfile::TempDir {
    let d = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    set_mode(d.path(), 0o755);
    d
}

#[test]
#[ignore = "needs root"]
fn root_writable_tmpfs_writes_vanish_and_the_image_is_unchanged() {
    require_root();
    let env = Env::new();
    let before = snapshot(&fixtures().sandbox);
    for (kind, img) in images() {
        // Root may write anywhere; nobody where its user may (the layer's
        // root dir is its own; what else depends on the image's owners
        // and its driver's permission checks).
        let o = env.run(&[
            "exec",
            "--writable-tmpfs",
            p(img),
            "sh",
            "-c",
            "echo hi > /etc/x && cat /etc/x && mkdir /newdir",
        ]);
        assert_eq!(stdout(&o), "hi\n", "{kind}: {}", stderr(&o));
        if nobody_has_userns() {
            let o = env.run_as_nobody(&[
                "exec",
                "--writable-tmpfs",
                p(img),
                "sh",
                "-c",
                "echo hi > /x && cat /x",
            ]);
            assert_eq!(stdout(&o), "hi\n", "{kind}: {}", stderr(&o));
        }
        // Gone at exit; without the flag the image stays read-only.
        let o = env.run(&["exec", p(img), "sh", "-c", "cat /etc/x /x; touch /etc/y"]);
        assert_eq!(stdout(&o), "", "{kind}");
        assert!(
            stderr(&o).contains("Read-only file system"),
            "{kind}: {}",
            stderr(&o)
        );
        env.assert_clean();
    }
    assert_eq!(before, snapshot(&fixtures().sandbox), "the image changed");
}

#[test]
#[ignore = "needs root"]
fn root_overlay_dir_keeps_a_file_across_runs_and_must_be_the_callers() {
    require_root();
    let env = Env::new();
    let img = fixtures().sandbox.as_path();
    let before = snapshot(img);
    let root_dir = tempfile::tempdir().unwrap();
    let o = env.run(&[
        "exec",
        "--overlay",
        p(root_dir.path()),
        p(img),
        "sh",
        "-c",
        "echo kept > /etc/k",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = env.run(&[
        "exec",
        "--overlay",
        p(root_dir.path()),
        p(img),
        "cat",
        "/etc/k",
    ]);
    assert_eq!(stdout(&o), "kept\n", "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(root_dir.path().join("upper/etc/k")).unwrap(),
        "kept\n"
    );
    if nobody_has_userns() {
        // Another user's dir is refused, before anything runs.
        let o = env.run_as_nobody(&["exec", "--overlay", p(root_dir.path()), p(img), "true"]);
        assert_error(&o, 255, &["overlay ", "owned by uid 0, not by the caller"]);
        let mine = world_readable_dir("vessel-overlay-");
        let dir = mine.path().join("o");
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).unwrap();
        set_mode(&dir, 0o700);
        let o = env.run_as_nobody(&[
            "exec",
            "--overlay",
            p(&dir),
            p(img),
            "sh",
            "-c",
            "echo mine > /k",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let o = env.run_as_nobody(&["exec", "--overlay", p(&dir), p(img), "cat", "/k"]);
        assert_eq!(stdout(&o), "mine\n", "{}", stderr(&o));
        // A symlink in place of the dir is refused.
        let link = mine.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let o = env.run_as_nobody(&["exec", "--overlay", p(&link), p(img), "true"]);
        assert_error(&o, 255, &["overlay ", "not a directory"]);
    }
    let o = env.run(&[
        "exec",
        "--overlay",
        "/tmp",
        "--writable-tmpfs",
        p(img),
        "true",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(before, snapshot(img), "the image changed");
    env.assert_clean();
}

#[test]
#[ignore = "needs root"]
fn root_a_bind_to_a_path_absent_from_the_image_works() {
    require_root();
    let env = Env::new();
    let host = world_readable_dir("vessel-layer-host-");
    std::fs::write(host.path().join("libgpu.so"), "gpu lib\n").unwrap();
    set_mode(&host.path().join("libgpu.so"), 0o644);
    let dir_bind = format!("{}:/usr/local/gpu:ro", p(host.path()));
    let file_bind = format!("{}:/opt/site/f", p(&host.path().join("libgpu.so")));
    let before = snapshot(&fixtures().sandbox);
    for (kind, img) in images() {
        as_each(
            &env,
            &[
                "exec",
                "-B",
                &dir_bind,
                "-B",
                &file_bind,
                p(img),
                "sh",
                "-c",
                "cat /usr/local/gpu/libgpu.so /opt/site/f; cat /etc/hn; ls /bin/sh; touch /usr/x",
            ],
            |who, o| {
                assert_eq!(
                    stdout(&o),
                    "gpu lib\ngpu lib\nimage file\n/bin/sh\n",
                    "{kind} as {who}: {}",
                    stderr(&o)
                );
                // The made mount points' dirs stay read-only.
                assert!(
                    stderr(&o).contains("Read-only file system"),
                    "{kind} as {who}: {}",
                    stderr(&o)
                );
            },
        );
        env.assert_clean();
    }
    assert_eq!(before, snapshot(&fixtures().sandbox), "the image changed");
    // With a writable layer the mount point is made in it.
    let o = env.run(&[
        "exec",
        "--writable-tmpfs",
        "-B",
        &dir_bind,
        p(&fixtures().sandbox),
        "cat",
        "/usr/local/gpu/libgpu.so",
    ]);
    assert_eq!(stdout(&o), "gpu lib\n", "{}", stderr(&o));
    // A destination that cannot be made names who asked for it.
    let bad = format!("{}:/bin/busybox/x", p(host.path()));
    let o = env.run(&["exec", "-B", &bad, p(&fixtures().sandbox), "true"]);
    assert_error(
        &o,
        255,
        &[
            "bind destination /bin/busybox/x (from --bind): ",
            "not a directory",
        ],
    );
    assert!(Path::new(&fixtures().sandbox).join("etc/hn").exists());
    env.assert_clean();
}
