//! Shared helpers for the end-to-end tests: the built `vessel` binary, a temp
//! `VESSEL_ROOT` per test, running as an unprivileged user, and the paths of
//! the shared reference test data.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The workspace root (the source tree).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate has a parent dir")
        .to_path_buf()
}

/// `../shared/testdata/sif-reference` beside the source tree, or the
/// `VESSEL_SIF_REFERENCE` override.
pub fn sif_reference_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("VESSEL_SIF_REFERENCE") {
        return PathBuf::from(d);
    }
    workspace_root().join("../shared/testdata/sif-reference")
}

/// A file in the SIF reference test data.
pub fn reference(name: &str) -> PathBuf {
    sif_reference_dir().join(name)
}

fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    workspace_root().join("target")
}

/// The built `vessel` binary (debug profile), built once per test process so
/// the tests never run a stale binary.
pub fn vessel_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "vessel", "--bin", "vessel"])
            .current_dir(workspace_root())
            .status()
            .expect("run cargo build for the vessel binary");
        assert!(status.success(), "cargo build -p vessel failed");
        target_dir().join("debug/vessel")
    })
}

/// A temp `VESSEL_ROOT` for one test, removed when dropped.
#[derive(Debug)]
pub struct TestRoot {
    dir: tempfile::TempDir,
}

impl TestRoot {
    /// A fresh, empty root. World-traversable, so an unprivileged user can
    /// read what root put there.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("vessel-root-")
            .tempdir()
            .expect("create temp VESSEL_ROOT");
        set_mode(dir.path(), 0o755);
        Self { dir }
    }

    /// The root directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A `vessel` command with `VESSEL_ROOT` set to this root.
    pub fn vessel(&self) -> Command {
        let mut c = Command::new(vessel_bin());
        c.env("VESSEL_ROOT", self.path());
        c.env_remove("VESSEL_LOG");
        c
    }

    /// Runs `vessel ARGS...` and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.vessel().args(args).output().expect("run vessel")
    }

    /// Runs `vessel ARGS...` as the unprivileged user `nobody`.
    pub fn run_as_nobody(&self, args: &[&str]) -> Output {
        let mut c = self.vessel();
        as_nobody(&mut c);
        c.args(args).output().expect("run vessel as nobody")
    }
}

impl Default for TestRoot {
    fn default() -> Self {
        Self::new()
    }
}

/// Sets a path's permission bits.
pub fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// uid and gid of `nobody` (65534 on Debian).
pub const NOBODY: u32 = 65534;

/// Makes a command run as `nobody` (needs root; the tests that call it say so).
pub fn as_nobody(c: &mut Command) {
    use std::os::unix::process::CommandExt;
    c.uid(NOBODY).gid(NOBODY);
    c.env("HOME", "/nonexistent");
}

/// True when the tests run as root (CI does).
pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// stdout as a string.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as a string.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
