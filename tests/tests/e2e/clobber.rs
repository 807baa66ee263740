//! No temp-file clobbering: an unprivileged user who pre-plants symlinks in
//! a shared sticky dir (like /tmp) must not make root's `vessel build`,
//! `sign` or `key newpair` write through them.

use std::path::{Path, PathBuf};
use std::process::Command;

use vessel_tests::{
    as_nobody, busybox_rootfs, ok, path_str, reference, require_root, run_ok, set_mode, stderr,
    TestRoot, NOBODY,
};

/// A root-only file the attacker wants overwritten.
struct Victim {
    _dir: tempfile::TempDir,
    file: PathBuf,
    bytes: Vec<u8>,
}

impl Victim {
    fn new(bytes: &[u8]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        set_mode(dir.path(), 0o700);
        let file = dir.path().join("precious");
        std::fs::write(&file, bytes).unwrap();
        Self {
            _dir: dir,
            file,
            bytes: bytes.to_vec(),
        }
    }

    fn assert_untouched(&self, what: &str) {
        let md = std::fs::symlink_metadata(&self.file).expect("victim exists");
        assert!(md.is_file(), "{what}: victim replaced");
        let now = std::fs::read(&self.file).unwrap();
        assert!(
            now == self.bytes,
            "{what}: victim overwritten ({} bytes, was {})",
            now.len(),
            self.bytes.len()
        );
    }
}

/// A 1777 dir the attacker owns (so even with fs.protected_symlinks=1 the
/// kernel lets root follow the attacker's links there).
fn shared_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(d.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    set_mode(d.path(), 0o1777);
    d
}

/// Plants the attacker's symlinks `dir/NAME -> target` for many names in
/// one process (a process per link would use up the very pids the names
/// predict), owned by nobody as if nobody had made them.
fn plant(dir: &Path, target: &Path, names: impl IntoIterator<Item = String>) {
    for n in names {
        let link = dir.join(n);
        std::os::unix::fs::symlink(target, &link).unwrap();
        std::os::unix::fs::lchown(&link, Some(NOBODY), Some(NOBODY)).unwrap();
    }
}

/// Runs a shell script as nobody (the attacker), asserting it succeeds.
fn as_attacker(script: &str) {
    let mut c = Command::new("sh");
    c.args(["-c", script]);
    as_nobody(&mut c);
    run_ok(&mut c);
}

/// The pid the next process will most likely get.
fn next_pid() -> u64 {
    std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .unwrap()
        .trim()
        .parse::<u64>()
        .unwrap()
        + 1
}

#[test]
#[ignore = "needs root"]
fn root_build_and_sign_never_write_through_planted_symlinks() {
    require_root();
    let root = TestRoot::new();
    let shared = shared_dir();
    let victim = Victim::new(b"root's precious bytes\n");
    let sandbox = tempfile::tempdir().unwrap();
    busybox_rootfs(sandbox.path(), &[]);

    // build OUT: the attacker links every name a build of out.sif could
    // write to for the next pids (old code: `..out.sif.PID.building.PID.tmp`
    // and `.out.sif.PID.building`, opened O_CREAT|O_TRUNC) to the victim.
    let out = shared.path().join("out.sif");
    ok(&root.run(&["--version"])); // the binary is built before pids are guessed
    let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let first = next_pid();
    let pids: Vec<u64> = (first..first + 3000).map(|p| p % pid_max).collect();
    plant(
        shared.path(),
        &victim.file,
        pids.iter().flat_map(|p| {
            [
                format!("..out.sif.{p}.building.{p}.tmp"),
                format!(".out.sif.{p}.building"),
                format!(".out.sif.{p}.tmp"),
            ]
        }),
    );
    ok(&root.run(&["build", path_str(&out), path_str(sandbox.path())]));
    victim.assert_untouched("build");
    assert!(std::fs::symlink_metadata(&out).unwrap().is_file());

    // build OUT where OUT itself is a planted symlink: refused without
    // --force, replaced (not written through) with it.
    let out2 = shared.path().join("out2.sif");
    as_attacker(&format!(
        "ln -s {} {}",
        path_str(&victim.file),
        path_str(&out2)
    ));
    let o = root.run(&["build", path_str(&out2), path_str(sandbox.path())]);
    assert_eq!(o.status.code(), Some(255), "{}", stderr(&o));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    victim.assert_untouched("build over a symlink");

    // sign IMAGE in place, where IMAGE is the attacker's symlink to a SIF
    // root cares about: refused, the target is not signed.
    let precious_sif = Victim::new(&std::fs::read(reference("one-group.sif")).unwrap());
    let link = shared.path().join("mine.sif");
    as_attacker(&format!(
        "ln -s {} {}",
        path_str(&precious_sif.file),
        path_str(&link)
    ));
    let o = root.run(&[
        "sign",
        "--key",
        path_str(&vessel_tests::reference_keys().0),
        path_str(&link),
    ]);
    assert_eq!(o.status.code(), Some(255), "{}", stderr(&o));
    assert!(stderr(&o).contains("symbolic link"), "{}", stderr(&o));
    precious_sif.assert_untouched("sign");

    // key newpair next to planted links: refused, nothing written through.
    let prefix = shared.path().join("k");
    as_attacker(&format!(
        "ln -s {v} {p}-private.pem",
        v = path_str(&victim.file),
        p = path_str(&prefix)
    ));
    let o = root.run(&["key", "newpair", "--out", path_str(&prefix)]);
    assert_eq!(o.status.code(), Some(255), "{}", stderr(&o));
    victim.assert_untouched("key newpair");

    // Nothing of vessel's is left in the shared dir.
    let left: Vec<_> = std::fs::read_dir(shared.path())
        .unwrap()
        .flatten()
        .filter(|e| !e.file_type().unwrap().is_symlink())
        .map(|e| e.path())
        .filter(|p| p != &out)
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
