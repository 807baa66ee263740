//! The container engine end to end: `vessel exec/run/build` on a busybox
//! rootfs as a sandbox dir, as a SIF built by `vessel build` and as a SIF
//! built by the reference tooling (mksquashfs + siftool), as root and as an
//! unprivileged user. After every run nothing may be left behind: no mount
//! (host mountinfo), no loop device on the image (`losetup -a`), no work dir
//! (each run gets its own TMPDIR, which must end up empty).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use vessel_tests::{
    busybox_rootfs, mountinfo, nobody_has_userns, path_str as p, require_root, run_ok, session_dir,
    set_mode, stderr, stdout, RunEnv, TestRoot,
};

/// Shared images, built once per test process.
pub(crate) struct Fixtures {
    pub(crate) sandbox: PathBuf,
    sif_vessel: PathBuf,
    sif_siftool: PathBuf,
    dir: PathBuf,
}

/// The shared busybox rootfs, plus a file the tests bind and read.
fn make_rootfs(root: &Path) {
    busybox_rootfs(root, &[]);
    std::fs::write(root.join("etc/hn"), "image file\n").unwrap();
}

pub(crate) fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let dir = session_dir().join("engine-fixtures");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        set_mode(&dir, 0o755);
        let sandbox = dir.join("rootfs");
        make_rootfs(&sandbox);
        let sif_vessel = dir.join("vessel-built.sif");
        let o = TestRoot::new().run(&[
            "build",
            sif_vessel.to_str().unwrap(),
            sandbox.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "vessel build: {}", stderr(&o));
        let squash = dir.join("rootfs.squashfs");
        run_ok(Command::new("mksquashfs").arg(&sandbox).arg(&squash).args([
            "-noappend",
            "-no-progress",
            "-quiet",
        ]));
        let sif_siftool = dir.join("siftool-built.sif");
        run_ok(Command::new("siftool").arg("new").arg(&sif_siftool));
        run_ok(
            Command::new("siftool")
                .args([
                    "add",
                    "--datatype",
                    "4",
                    "--partfs",
                    "1",
                    "--parttype",
                    "2",
                    "--partarch",
                    "2",
                    "--groupid",
                    "1",
                ])
                .arg(&sif_siftool)
                .arg(&squash),
        );
        for f in [&sif_vessel, &sif_siftool] {
            set_mode(f, 0o644);
        }
        Fixtures {
            sandbox,
            sif_vessel,
            sif_siftool,
            dir,
        }
    })
}

pub(crate) fn images() -> Vec<(&'static str, &'static Path)> {
    let f = fixtures();
    vec![
        ("sandbox", f.sandbox.as_path()),
        ("vessel-built sif", f.sif_vessel.as_path()),
        ("siftool-built sif", f.sif_siftool.as_path()),
    ]
}

/// One test's environment: a VESSEL_ROOT and a private TMPDIR for vessel's
/// work dirs, checked for leftovers when the test ends.
pub(crate) struct Env {
    run: RunEnv,
    mounts_before: usize,
}

impl std::ops::Deref for Env {
    type Target = RunEnv;
    fn deref(&self) -> &RunEnv {
        &self.run
    }
}

impl Env {
    pub(crate) fn new() -> Self {
        Self {
            run: RunEnv::new("vessel-engine-test-"),
            mounts_before: mountinfo().lines().count(),
        }
    }

    /// Nothing of any run is left: no work dir, no mount, no loop device.
    pub(crate) fn assert_clean(&self) {
        let left = self.work_dirs_left();
        assert!(left.is_empty(), "work dirs left behind: {left:?}");
        let info = mountinfo();
        let fx = fixtures().dir.to_string_lossy().into_owned();
        assert!(
            !info.contains(&fx) && !info.contains(&*self.tmp.path().to_string_lossy()),
            "mounts left behind:\n{info}"
        );
        assert!(
            info.lines().count() <= self.mounts_before + 2,
            "mount count grew from {}:\n{info}",
            self.mounts_before
        );
        // Autoclear detaches asynchronously once the namespace is gone.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let loops = stdout(&run_ok(Command::new("losetup").arg("-a")));
            if !loops.contains(&fx) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "loop devices left behind:\n{loops}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn assert_one_line_error(o: &Output, code: i32, needle: &str) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {e}");
    assert_eq!(e.lines().count(), 1, "not one line: {e:?}");
    assert!(
        e.starts_with("error: ") && e.contains(needle),
        "{e:?} lacks {needle:?}"
    );
}

#[test]
#[ignore = "needs root"]
fn root_exec_prints_hello_from_every_image_kind_as_root_and_unprivileged() {
    require_root();
    let env = Env::new();
    let userns = nobody_has_userns();
    for (kind, img) in images() {
        let o = env.run(&["exec", p(img), "/bin/busybox", "echo", "hello"]);
        assert_eq!(stdout(&o), "hello\n", "{kind} as root: {}", stderr(&o));
        assert!(o.status.success());
        env.assert_clean();
        if userns {
            let o = env.run_as_nobody(&[
                "exec",
                p(img),
                "/bin/busybox",
                "sh",
                "-c",
                "echo hello; id -u",
            ]);
            assert_eq!(
                stdout(&o),
                "hello\n65534\n",
                "{kind} as nobody: {}",
                stderr(&o)
            );
            let o = env.run_as_nobody(&["exec", "--fakeroot", p(img), "id", "-u"]);
            assert_eq!(
                stdout(&o),
                "0\n",
                "{kind} as nobody with --fakeroot: {}",
                stderr(&o)
            );
            env.assert_clean();
        } else {
            eprintln!(
                "{kind}: unprivileged user namespaces are unavailable here; ran the root case only"
            );
        }
    }
    if userns {
        eprintln!("ran as root and as nobody (unprivileged user namespace)");
    }
}

#[test]
#[ignore = "needs root"]
fn root_exit_status_is_the_containers() {
    require_root();
    let env = Env::new();
    for (kind, img) in images() {
        let o = env.run(&["exec", p(img), "sh", "-c", "exit 7"]);
        assert_eq!(o.status.code(), Some(7), "{kind}: {}", stderr(&o));
        let o = env.run(&["exec", p(img), "sh", "-c", "kill -KILL $$"]);
        assert_eq!(o.status.code(), Some(137), "{kind}: {}", stderr(&o));
        env.assert_clean();
    }
}

#[test]
#[ignore = "needs root"]
fn root_sigterm_to_vessel_reaches_the_container() {
    require_root();
    let env = Env::new();
    for (kind, img) in images() {
        let ready = env.tmp.path().join("ready");
        let script = format!(
            "trap 'echo got-term; exit 3' TERM; touch {}; while true; do sleep 0.05; done",
            ready.display()
        );
        let child = env
            .cmd(&["exec", p(img), "sh", "-c", &script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ready.exists() {
            assert!(
                Instant::now() < deadline,
                "{kind}: container never got ready"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::fs::remove_file(&ready).unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let o = child.wait_with_output().unwrap();
        assert_eq!(stdout(&o), "got-term\n", "{kind}: {}", stderr(&o));
        assert_eq!(o.status.code(), Some(3), "{kind}");
        env.assert_clean();
    }
}

#[test]
#[ignore = "needs root"]
fn root_bind_shows_host_files_and_ro_is_really_read_only() {
    require_root();
    let env = Env::new();
    let host = tempfile::tempdir().unwrap();
    let file = host.path().join("hostfile");
    std::fs::write(&file, "from the host\n").unwrap();
    for (kind, img) in images() {
        let ro = format!("{}:/etc/hn:ro", file.display());
        let o = env.run(&[
            "exec",
            "-B",
            &ro,
            p(img),
            "sh",
            "-c",
            "cat /etc/hn; echo x > /etc/hn && echo wrote",
        ]);
        assert_eq!(stdout(&o), "from the host\n", "{kind}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("Read-only file system"),
            "{kind}: {}",
            stderr(&o)
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "from the host\n");
        // rw, as a comma list with a second bind: writes reach the host.
        let rw = format!(
            "{}:/mnt,{}:/etc/hn:rw",
            host.path().display(),
            file.display()
        );
        let o = env.run(&[
            "exec",
            "--bind",
            &rw,
            p(img),
            "sh",
            "-c",
            "echo changed > /etc/hn; ls /mnt",
        ]);
        assert_eq!(stdout(&o), "hostfile\n", "{kind}: {}", stderr(&o));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "changed\n");
        std::fs::write(&file, "from the host\n").unwrap();
        env.assert_clean();
    }
}

#[test]
#[ignore = "needs root"]
fn root_contain_hides_the_host_home_and_tmp() {
    require_root();
    let env = Env::new();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("marker"), "mine\n").unwrap();
    let marker = home.path().join("marker");
    for (kind, img) in images() {
        let cat = format!("cat {}", marker.display());
        let o = env
            .cmd(&["exec", p(img), "sh", "-c", &cat])
            .env("HOME", home.path())
            .output()
            .unwrap();
        assert_eq!(stdout(&o), "mine\n", "{kind}: {}", stderr(&o));
        let o = env
            .cmd(&[
                "exec",
                "--contain",
                p(img),
                "sh",
                "-c",
                &format!("{cat}; ls /dev | tr '\\n' ' '"),
            ])
            .env("HOME", home.path())
            .output()
            .unwrap();
        assert!(
            stderr(&o).contains("No such file"),
            "{kind}: {}",
            stderr(&o)
        );
        for dev in ["null", "zero", "full", "random", "urandom", "tty"] {
            assert!(
                stdout(&o).split(' ').any(|d| d == dev),
                "{kind}: /dev lacks {dev}: {}",
                stdout(&o)
            );
        }
        assert!(
            !stdout(&o).contains("sda") && !stdout(&o).contains("vda"),
            "{kind}: {}",
            stdout(&o)
        );
        env.assert_clean();
    }
}

#[test]
#[ignore = "needs root"]
fn root_env_and_cleanenv() {
    require_root();
    let env = Env::new();
    for (kind, img) in images() {
        let show = "echo \"$FOO/$HOSTVAR\"";
        let o = env
            .cmd(&["exec", "--env", "FOO=bar", p(img), "sh", "-c", show])
            .env("HOSTVAR", "host")
            .output()
            .unwrap();
        assert_eq!(stdout(&o), "bar/host\n", "{kind}: {}", stderr(&o));
        let o = env
            .cmd(&["exec", "-e", "--env", "FOO=baz", p(img), "sh", "-c", show])
            .env("HOSTVAR", "host")
            .output()
            .unwrap();
        assert_eq!(stdout(&o), "baz/\n", "{kind}: {}", stderr(&o));
        env.assert_clean();
    }
}

#[test]
#[ignore = "needs root"]
fn root_pid_namespace_hostname_and_pwd() {
    require_root();
    let env = Env::new();
    for (kind, img) in images() {
        let o = env.run(&[
            "exec",
            "--pid",
            "--no-init",
            p(img),
            "sh",
            "-c",
            "echo $$; cat /proc/1/cmdline | tr '\\0' ' '",
        ]);
        assert_eq!(
            stdout(&o),
            "1\nsh -c echo $$; cat /proc/1/cmdline | tr '\\0' ' ' ",
            "{kind}: {}",
            stderr(&o)
        );
        // By default an init is PID 1 and the command its child.
        let o = env.run(&["exec", "--pid", p(img), "sh", "-c", "echo $$"]);
        assert_eq!(stdout(&o), "2\n", "{kind}: {}", stderr(&o));
        let o = env.run(&["exec", "--hostname", "vessel-box", p(img), "hostname"]);
        assert_eq!(stdout(&o), "vessel-box\n", "{kind}: {}", stderr(&o));
        let o = env.run(&["exec", "--pwd", "/etc", p(img), "pwd"]);
        assert_eq!(stdout(&o), "/etc\n", "{kind}: {}", stderr(&o));
        let o = env.run(&[
            "exec",
            "--net",
            p(img),
            "sh",
            "-c",
            "grep -c : /proc/net/dev",
        ]);
        assert_eq!(stdout(&o), "1\n", "{kind}: only lo: {}", stderr(&o));
        env.assert_clean();
    }
    let hn = nix::unistd::gethostname().unwrap();
    assert_ne!(
        hn.to_string_lossy(),
        "vessel-box",
        "hostname leaked to the host"
    );
}

#[test]
#[ignore = "needs root"]
fn root_run_uses_the_runscript_and_shell_runs_sh() {
    require_root();
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let sb = dir.path().join("rootfs");
    make_rootfs(&sb);
    let o = env.run(&["run", p(&sb), "echo", "no", "runscript"]);
    assert_eq!(stdout(&o), "no runscript\n", "{}", stderr(&o));
    std::fs::create_dir_all(sb.join(".singularity.d")).unwrap();
    let rs = sb.join(".singularity.d/runscript");
    std::fs::write(&rs, "#!/bin/sh\necho \"runscript got: $*\"\n").unwrap();
    set_mode(&rs, 0o755);
    let o = env.run(&["run", p(&sb), "a", "b"]);
    assert_eq!(stdout(&o), "runscript got: a b\n", "{}", stderr(&o));
    let o = env
        .cmd(&["shell", p(&sb)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(b"echo from-shell; exit 4\n")?;
            c.wait_with_output()
        });
    let o = o.unwrap();
    assert_eq!(stdout(&o), "from-shell\n");
    assert_eq!(o.status.code(), Some(4));
    env.assert_clean();
}

#[test]
#[ignore = "needs root"]
fn root_bad_input_is_one_line_and_leaves_nothing() {
    require_root();
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.sif");
    std::fs::write(&junk, "this is not an image\n").unwrap();
    assert_one_line_error(
        &env.run(&["exec", p(&junk), "true"]),
        255,
        "not a sif image",
    );

    // A SIF whose only partition is a raw data partition.
    let raw = dir.path().join("raw.sif");
    let data = dir.path().join("data.bin");
    std::fs::write(&data, vec![7u8; 8192]).unwrap();
    run_ok(Command::new("siftool").arg("new").arg(&raw));
    run_ok(
        Command::new("siftool")
            .args([
                "add",
                "--datatype",
                "4",
                "--partfs",
                "4",
                "--parttype",
                "3",
                "--partarch",
                "2",
            ])
            .arg(&raw)
            .arg(&data),
    );
    assert_one_line_error(
        &env.run(&["exec", p(&raw), "true"]),
        255,
        "no primary system partition",
    );
    // A SIF whose primary partition is not squashfs.
    let ext3 = dir.path().join("ext3.sif");
    run_ok(Command::new("siftool").arg("new").arg(&ext3));
    run_ok(
        Command::new("siftool")
            .args([
                "add",
                "--datatype",
                "4",
                "--partfs",
                "2",
                "--parttype",
                "2",
                "--partarch",
                "2",
            ])
            .arg(&ext3)
            .arg(&data),
    );
    assert_one_line_error(
        &env.run(&["exec", p(&ext3), "true"]),
        255,
        "primary partition is not squashfs",
    );

    // A SIF whose squashfs superblock is damaged.
    let bad = dir.path().join("corrupt.sif");
    std::fs::copy(&fixtures().sif_siftool, &bad).unwrap();
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&bad).unwrap();
        // siftool puts the first partition at 32768 (aligned data start).
        f.seek(SeekFrom::Start(32768)).unwrap();
        f.write_all(&[0xAA; 64]).unwrap();
    }
    assert_one_line_error(
        &env.run(&["exec", p(&bad), "true"]),
        255,
        "corrupted squashfs",
    );

    let sb = p(&fixtures().sandbox);
    assert_one_line_error(
        &env.run(&["exec", "-B", "/nonexistent/source:/mnt", sb, "true"]),
        255,
        "bind source /nonexistent/source",
    );
    assert_one_line_error(
        &env.run(&["exec", "-B", "/etc:/bin/sh/dir", sb, "true"]),
        255,
        "bind destination /bin/sh/dir (from --bind): ",
    );
    for (kind, img) in images() {
        let o = env.run(&["exec", p(img), "/bin/no-such-command"]);
        assert_one_line_error(&o, 127, "/bin/no-such-command: command not found");
        let o = env.run(&["exec", p(img), "no-such-command"]);
        assert_eq!(o.status.code(), Some(127), "{kind}");
    }
    let o = env.run(&["exec", "/nonexistent/image", "true"]);
    assert_one_line_error(&o, 255, "/nonexistent/image");
    env.assert_clean();
}

#[test]
#[ignore = "needs root"]
fn root_unknown_image_driver_is_a_clear_error() {
    require_root();
    let env = Env::new();
    let etc = env.root.path().join("etc/vessel");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("vessel.toml"), "image_driver = \"nosuch\"\n").unwrap();
    let o = env.run(&["exec", p(&fixtures().sif_siftool), "true"]);
    assert_one_line_error(&o, 255, "image driver \"nosuch\" is not registered");
    std::fs::write(etc.join("vessel.toml"), "image_driver = \"extract\"\n").unwrap();
    let o = env.run(&["exec", p(&fixtures().sif_siftool), "echo", "extracted"]);
    assert_eq!(stdout(&o), "extracted\n", "{}", stderr(&o));
    env.assert_clean();
}

#[test]
fn build_refuses_a_missing_sandbox_and_an_existing_output() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.sif");
    let o = env.run(&["build", p(&out), "/nonexistent/sandbox"]);
    assert_one_line_error(&o, 255, "/nonexistent/sandbox");
    assert!(!out.exists());
    std::fs::write(&out, "keep me").unwrap();
    let sb = tempfile::tempdir().unwrap();
    let o = env.run(&["build", p(&out), p(sb.path())]);
    assert_one_line_error(&o, 255, "exists");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "keep me");
}

#[test]
#[ignore = "needs root"]
fn root_build_sign_key_signs_and_the_signed_image_runs() {
    require_root();
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("k");
    let o = env.run(&["key", "newpair", "--out", p(&prefix)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let key = dir.path().join("k-private.pem");
    let out = dir.path().join("signed.sif");
    let o = env.run(&[
        "build",
        "--sign-key",
        p(&key),
        p(&out),
        p(&fixtures().sandbox),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = env.run(&[
        "verify",
        "--key",
        p(&dir.path().join("k-public.pem")),
        p(&out),
    ]);
    assert!(o.status.success(), "verify: {}{}", stdout(&o), stderr(&o));
    let listing = stdout(&run_ok(Command::new("siftool").arg("list").arg(&out)));
    assert!(
        listing.contains("Squashfs/*System") && listing.contains("Signature"),
        "{listing}"
    );
    let o = env.run(&["exec", p(&out), "echo", "signed"]);
    assert_eq!(stdout(&o), "signed\n", "{}", stderr(&o));
    // A bad key fails before anything is written.
    let out2 = dir.path().join("never.sif");
    let o = env.run(&[
        "build",
        "--sign-key",
        "/nonexistent/key.pem",
        p(&out2),
        p(&fixtures().sandbox),
    ]);
    assert_eq!(o.status.code(), Some(255));
    assert!(!out2.exists());
    env.assert_clean();
}

#[test]
#[ignore = "needs root"]
fn root_vessel_toml_bind_paths_apply_to_every_container() {
    require_root();
    let env = Env::new();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("site"), "admin bind\n").unwrap();
    let etc = env.root.path().join("etc/vessel");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(
        etc.join("vessel.toml"),
        format!("bind_paths = [\"{}:/mnt:ro\"]\n", host.path().display()),
    )
    .unwrap();
    let o = env.run(&[
        "exec",
        p(&fixtures().sandbox),
        "sh",
        "-c",
        "cat /mnt/site; touch /mnt/x",
    ]);
    assert_eq!(stdout(&o), "admin bind\n", "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Read-only file system"),
        "{}",
        stderr(&o)
    );
    env.assert_clean();
}
