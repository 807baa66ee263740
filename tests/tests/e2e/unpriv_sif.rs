//! Unprivileged SIF runs without re-extraction (issue 13 item 1), as
//! `nobody`: through FUSE where `/dev/fuse` opens (a private mount namespace
//! with a 0666 fuse node bound over this machine's 0600 one), else through
//! the per-user cache of extracted trees. Extraction is observed through a
//! PATH shim that records every `unsquashfs` run, never through timings.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use vessel_tests::{
    assert_error, busybox_rootfs, nobody_has_userns, ok, path_str as p, require_root, session_dir,
    set_mode, stderr, RunEnv, TestRoot, NOBODY,
};

/// A busybox SIF built by `vessel build`, with a file the tests read.
fn image() -> &'static Path {
    static IMG: OnceLock<PathBuf> = OnceLock::new();
    IMG.get_or_init(|| {
        let dir = session_dir().join("unpriv-sif");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        set_mode(&dir, 0o755);
        let rootfs = dir.join("rootfs");
        busybox_rootfs(&rootfs, &[]);
        std::fs::write(rootfs.join("etc/hn"), "image file\n").unwrap();
        let sif = dir.join("busybox.sif");
        let o = TestRoot::new().run(&["build", p(&sif), p(&rootfs)]);
        assert!(o.status.success(), "vessel build: {}", stderr(&o));
        set_mode(&sif, 0o644);
        sif
    })
}

/// One test's world: a VESSEL_ROOT and TMPDIR, nobody's XDG_CACHE_HOME, and
/// a PATH whose `unsquashfs` logs each run before running the real one.
struct World {
    run: RunEnv,
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        let run = RunEnv::new("vessel-unpriv-");
        let dir = tempfile::Builder::new()
            .prefix("vessel-unpriv-world-")
            .tempdir()
            .unwrap();
        set_mode(dir.path(), 0o755);
        let shim = dir.path().join("shim");
        std::fs::create_dir(&shim).unwrap();
        let log = dir.path().join("unsquashfs.log");
        std::fs::write(&log, "").unwrap();
        set_mode(&log, 0o666);
        std::fs::write(
            shim.join("unsquashfs"),
            format!(
                "#!/bin/sh\necho \"$$\" >> {}\nexec /usr/bin/unsquashfs \"$@\"\n",
                log.display()
            ),
        )
        .unwrap();
        set_mode(&shim.join("unsquashfs"), 0o755);
        let xdg = dir.path().join("xdg");
        std::fs::create_dir(&xdg).unwrap();
        nix::unistd::chown(&xdg, Some(NOBODY.into()), Some(NOBODY.into())).unwrap();
        Self { run, dir }
    }

    /// Runs the cache path whatever this machine's /dev/fuse allows.
    fn force_extract(&self) {
        let etc = self.run.root.path().join("etc/vessel");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("vessel.toml"), "image_driver = \"extract\"\n").unwrap();
    }

    fn xdg(&self) -> PathBuf {
        self.dir.path().join("xdg")
    }

    fn sandboxes(&self) -> PathBuf {
        self.xdg().join("vessel/sandboxes")
    }

    fn path_env(&self) -> String {
        format!(
            "{}:/usr/sbin:/usr/bin:/sbin:/bin",
            self.dir.path().join("shim").display()
        )
    }

    /// `vessel ARGS` as nobody with this world's environment.
    fn nobody(&self, args: &[&str]) -> Command {
        let mut c = self.run.cmd(args);
        vessel_tests::as_nobody(&mut c);
        c.env("XDG_CACHE_HOME", self.xdg())
            .env("PATH", self.path_env());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.nobody(args).output().unwrap()
    }

    /// How many times unsquashfs ran.
    fn extractions(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("unsquashfs.log"))
            .unwrap()
            .lines()
            .count()
    }

    /// The one cache entry's directory.
    fn entry(&self) -> PathBuf {
        let entries: Vec<PathBuf> = std::fs::read_dir(self.sandboxes())
            .unwrap()
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| e.path())
            .collect();
        assert_eq!(entries.len(), 1, "{entries:?}");
        entries[0].clone()
    }

    fn assert_clean(&self) {
        let left = self.run.work_dirs_left();
        assert!(left.is_empty(), "work dirs left behind: {left:?}");
    }
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if !e
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                found.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
            }
        }
    }
    found
}

fn skip_without_userns() -> bool {
    if nobody_has_userns() {
        return false;
    }
    eprintln!("unprivileged user namespaces are unavailable here: skipped");
    true
}

#[test]
#[ignore = "needs root"]
fn root_fuse_mounts_the_sif_for_nobody_without_extracting() {
    require_root();
    if skip_without_userns() {
        return;
    }
    let w = World::new();
    // An image of this test's own, so its daemon is unambiguous.
    let img = w.dir.path().join("fuse-test.sif");
    std::fs::copy(image(), &img).unwrap();
    set_mode(&img, 0o644);
    let node_dir = w.dir.path().join("dev");
    std::fs::create_dir(&node_dir).unwrap();
    let script = r#"set -e
[ -e "$1/fuse" ] || mknod "$1/fuse" c 10 229
chmod 666 "$1/fuse"
mount --bind "$1/fuse" /dev/fuse
shift
exec setpriv --reuid=65534 --regid=65534 --clear-groups "$@""#;
    // vessel as nobody in a private mount namespace where /dev/fuse opens.
    let in_fuse_ns = |args: &[&str]| {
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
            .arg(&node_dir)
            .arg("env")
            .arg(format!("VESSEL_ROOT={}", w.run.root.path().display()))
            .arg(format!("TMPDIR={}", w.run.tmp.path().display()))
            .arg(format!("XDG_CACHE_HOME={}", w.xdg().display()))
            .arg(format!("PATH={}", w.path_env()))
            .arg("HOME=/nonexistent")
            .arg(vessel_tests::vessel_bin())
            .args(args)
            .output()
            .unwrap()
    };
    // --no-mount cwd: the test's cwd, absent from the image, would put an
    // underlay over / and hide the image's own root mount.
    let o = in_fuse_ns(&[
        "-v",
        "exec",
        "--no-mount",
        "cwd",
        p(&img),
        "sh",
        "-c",
        "cat /etc/hn; grep ' / / ' /proc/self/mountinfo; id -u",
    ]);
    let out = ok(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "image file", "{out}");
    assert!(
        lines[1].contains(" - fuse.squashfuse "),
        "root is not fuse: {out}"
    );
    assert_eq!(lines[2], "65534");
    let log = stderr(&o);
    assert!(log.contains("fuse mount with"), "{log}");
    assert!(!log.contains("cache"), "{log}");
    assert_eq!(w.extractions(), 0, "unsquashfs ran");
    assert!(!w.sandboxes().exists(), "a cache entry was created");
    // A writable layer over the FUSE root: with --fakeroot the image's
    // root-owned files are the namespace root's.
    let o = in_fuse_ns(&[
        "-v",
        "exec",
        "--fakeroot",
        "--writable-tmpfs",
        p(&img),
        "sh",
        "-c",
        "id -u; echo new > /etc/hn; cat /etc/hn",
    ]);
    assert_eq!(ok(&o), "0\nnew\n");
    assert!(stderr(&o).contains("fuse mount with"), "{}", stderr(&o));
    assert_eq!(w.extractions(), 0, "unsquashfs ran");
    // The daemon went with the container.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let left = processes_mentioning(p(&img));
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "left running: {left:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    w.assert_clean();
}

#[test]
#[ignore = "needs root"]
fn root_the_cache_extracts_once_and_reuses_the_tree() {
    require_root();
    if skip_without_userns() {
        return;
    }
    let w = World::new();
    w.force_extract();
    let img = image();
    let o = w.run(&["-v", "exec", p(img), "cat", "/etc/hn"]);
    assert_eq!(ok(&o), "image file\n");
    assert!(
        stderr(&o).contains("cache build sandboxes/"),
        "{}",
        stderr(&o)
    );
    assert_eq!(w.extractions(), 1);
    let entry = w.entry();
    let key = entry.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(key.len(), 64, "{key}");
    let m = std::fs::symlink_metadata(&entry).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o777), (NOBODY, 0o700));
    let ino = m.ino();
    for _ in 0..2 {
        let o = w.run(&["-v", "exec", p(img), "cat", "/etc/hn"]);
        assert_eq!(ok(&o), "image file\n");
        assert!(
            stderr(&o).contains(&format!("cache hit sandboxes/{key}")),
            "{}",
            stderr(&o)
        );
    }
    assert_eq!(w.extractions(), 1, "extracted again");
    assert_eq!(std::fs::symlink_metadata(&entry).unwrap().ino(), ino);
    // The tree is reused read-only.
    let o = w.run(&["exec", p(img), "sh", "-c", "echo x > /etc/hn"]);
    assert!(!o.status.success());
    assert_eq!(
        std::fs::read_to_string(entry.join("rootfs/etc/hn")).unwrap(),
        "image file\n"
    );
    w.assert_clean();
}

#[test]
#[ignore = "needs root"]
fn root_two_concurrent_first_runs_build_the_cache_once() {
    require_root();
    if skip_without_userns() {
        return;
    }
    let w = World::new();
    w.force_extract();
    let img = image();
    let children: Vec<_> = (0..2)
        .map(|_| {
            w.nobody(&["-v", "exec", p(img), "cat", "/etc/hn"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for o in &outs {
        assert_eq!(ok(o), "image file\n");
    }
    assert_eq!(w.extractions(), 1, "built more than once");
    let logs: String = outs.iter().map(stderr).collect();
    assert_eq!(logs.matches("cache build").count(), 1, "{logs}");
    assert_eq!(logs.matches("cache hit").count(), 1, "{logs}");
    w.entry();
    w.assert_clean();
}

#[test]
#[ignore = "needs root"]
fn root_a_corrupted_cache_entry_is_detected_and_rebuilt() {
    require_root();
    if skip_without_userns() {
        return;
    }
    let w = World::new();
    w.force_extract();
    let img = image();
    ok(&w.run(&["exec", p(img), "true"]));
    let entry = w.entry();
    // A file missing from the tree, then a damaged marker, then a tree
    // with an extra file: each is noticed and the entry rebuilt.
    let corruptions: [&dyn Fn(&Path); 3] = [
        &|e| std::fs::remove_file(e.join("rootfs/etc/hn")).unwrap(),
        &|e| std::fs::write(e.join("sandbox.json"), "{\"digest\":").unwrap(),
        &|e| std::fs::write(e.join("rootfs/etc/planted"), "x").unwrap(),
    ];
    for (i, corrupt) in corruptions.iter().enumerate() {
        corrupt(&entry);
        let o = w.run(&["-v", "exec", p(img), "sh", "-c", "cat /etc/hn; ls /etc"]);
        assert_eq!(ok(&o), "image file\nhn\n", "corruption {i}");
        assert!(
            stderr(&o).contains("cache rebuild sandboxes/"),
            "{}",
            stderr(&o)
        );
        assert_eq!(w.extractions(), i + 2);
        assert_eq!(w.entry(), entry);
    }
    let o = w.run(&["-v", "exec", p(img), "true"]);
    assert!(stderr(&o).contains("cache hit"), "{}", stderr(&o));
    w.assert_clean();
}

#[test]
#[ignore = "needs root"]
fn root_cache_list_and_clean_manage_every_kind() {
    require_root();
    if skip_without_userns() {
        return;
    }
    let w = World::new();
    w.force_extract();
    let o = w.run(&["cache", "list"]);
    assert_eq!(ok(&o), "The cache is empty.\n");
    ok(&w.run(&["exec", p(image()), "true"]));
    let key = w
        .entry()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    // Another kind (as the OCI code stores them) is listed and cleaned too.
    let blobs = w.xdg().join("vessel/blobs");
    std::fs::create_dir(&blobs).unwrap();
    std::fs::write(blobs.join("sha256:abc"), vec![0u8; 2048]).unwrap();
    for p in [&blobs, &blobs.join("sha256:abc")] {
        nix::unistd::chown(p, Some(NOBODY.into()), Some(NOBODY.into())).unwrap();
    }
    let list = ok(&w.run(&["cache", "list"]));
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(
        lines[0].starts_with("KIND ") && lines[0].ends_with("LAST USED"),
        "{list}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("blobs ") && l.contains("sha256:abc") && l.contains("2.0 KiB")),
        "{list}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("sandboxes ") && l.contains(&key)),
        "{list}"
    );
    let o = w.run(&["cache", "clean", "nope"]);
    assert_error(&o, 255, &["cache entry \"nope\": no such entry"]);
    let o = w.run(&["cache", "clean"]);
    assert_error(&o, 255, &["--all"]);
    let o = w.run(&["cache", "clean", &format!("sandboxes/{key}")]);
    assert!(ok(&o).starts_with(&format!("Removed sandboxes/{key}")));
    assert!(!w.sandboxes().join(&key).exists());
    let o = w.run(&["cache", "clean", "--all"]);
    assert_eq!(ok(&o), "Removed blobs/sha256:abc (2.0 KiB)\n");
    assert_eq!(ok(&w.run(&["cache", "list"])), "The cache is empty.\n");
    // Root's cache is under VESSEL_ROOT, and separate from nobody's.
    let o = w.run.run(&["cache", "list"]);
    assert_eq!(ok(&o), "The cache is empty.\n");
}
