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

/// The SIF reference test vectors (`testdata/sif-reference`, copied
/// unchanged from the reference implementation), or the
/// `VESSEL_SIF_REFERENCE` override.
pub fn sif_reference_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("VESSEL_SIF_REFERENCE") {
        return PathBuf::from(d);
    }
    workspace_root().join("testdata/sif-reference")
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
        reachable_by_everyone(&target_dir().join("debug/vessel"))
    })
}

/// `bin` itself when every user can reach it, else a copy in a
/// world-readable temp dir: the tests also run vessel as `nobody`, and CI
/// may check the tree out under a private home dir.
fn reachable_by_everyone(bin: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let open = bin
        .ancestors()
        .skip(1)
        .all(|d| std::fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 != 0));
    if open {
        return bin.to_path_buf();
    }
    let copy = session_dir().join("vessel");
    std::fs::copy(bin, &copy).expect("copy the vessel binary");
    set_mode(&copy, 0o755);
    copy
}

/// This test process's shared scratch dir, for fixtures that live as long
/// as the process (built images, a reachable copy of the binary).
static SESSION_DIR: OnceLock<PathBuf> = OnceLock::new();

/// Prefix of [`session_dir`] names; the pid follows.
const SESSION_PREFIX: &str = "vessel-tests-";

/// A scratch dir for fixtures shared by the tests of this process: under the
/// temp dir (not the tree, so `nobody` reaches it even when the tree is under
/// a private home dir), 0755, removed when the process exits. Dirs left by
/// test processes that were killed are swept when the next one starts.
pub fn session_dir() -> &'static Path {
    SESSION_DIR.get_or_init(|| {
        let tmp = std::env::temp_dir();
        sweep_dead_sessions(&tmp);
        let dir = tmp.join(format!("{SESSION_PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).expect("create the tests' session dir");
        set_mode(&dir, 0o755);
        extern "C" fn remove_session_dir() {
            if let Some(d) = SESSION_DIR.get() {
                let _ = std::fs::remove_dir_all(d);
            }
        }
        // SAFETY: registers a plain `extern "C" fn` with no captured state.
        unsafe { libc::atexit(remove_session_dir) };
        dir
    })
}

/// Removes the session dirs of test processes that no longer exist.
fn sweep_dead_sessions(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(SESSION_PREFIX))
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        if !alive {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
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

impl Drop for TestRoot {
    /// Installed plugin libraries are immutable (vessel sets the inode
    /// flag as root): cleared so the temp dir can go.
    fn drop(&mut self) {
        unseal_tree(self.path());
    }
}

/// Clears the immutable inode flag of the file at `path` (what an admin's
/// `chattr -i` does), so a test can change an installed library.
pub fn unseal(path: &Path) {
    use rustix::fs::IFlags;
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let flags = rustix::fs::ioctl_getflags(&f).unwrap_or(IFlags::empty());
    if flags.contains(IFlags::IMMUTABLE) {
        rustix::fs::ioctl_setflags(&f, flags - IFlags::IMMUTABLE)
            .unwrap_or_else(|e| panic!("clear the immutable flag of {}: {e}", path.display()));
    }
}

/// Whether the file at `path` has the immutable inode flag.
pub fn is_immutable(path: &Path) -> bool {
    std::fs::File::open(path).is_ok_and(|f| {
        rustix::fs::ioctl_getflags(&f).is_ok_and(|fl| fl.contains(rustix::fs::IFlags::IMMUTABLE))
    })
}

/// [`unseal`] on every regular file under `dir` (never through a symlink).
pub fn unseal_tree(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        match e.file_type() {
            Ok(t) if t.is_dir() => unseal_tree(&e.path()),
            Ok(t) if t.is_file() && is_immutable(&e.path()) => unseal(&e.path()),
            _ => {}
        }
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

/// The reference ed25519 key pair shipped with the SIF test vectors:
/// (private PEM, public PEM).
pub fn reference_keys() -> (PathBuf, PathBuf) {
    (
        reference("ed25519-private.pem"),
        reference("ed25519-public.pem"),
    )
}

impl TestRoot {
    /// Adds the reference public key to this root's trust store (needs root).
    pub fn trust_reference_key(&self) {
        let o = self.run(&["key", "trust", reference_keys().1.to_str().unwrap()]);
        assert!(o.status.success(), "key trust: {}", stderr(&o));
    }

    /// The plugin dir under this root.
    pub fn plugin_dir(&self) -> PathBuf {
        self.path().join("usr/local/libexec/vessel/plugins")
    }

    /// The config dir of plugin `name` (`etc/vessel/plugins/NAME`).
    pub fn plugin_config_dir(&self, name: &str) -> PathBuf {
        self.path().join("etc/vessel/plugins").join(name)
    }

    /// Root's state dir of plugin `name` (`var/lib/vessel/plugins/NAME`).
    pub fn plugin_state_dir(&self, name: &str) -> PathBuf {
        self.path().join("var/lib/vessel/plugins").join(name)
    }

    /// The files dir of installed plugin `name`, through its name link.
    pub fn plugin_files(&self, name: &str) -> PathBuf {
        self.plugin_dir().join("names").join(name)
    }

    /// The meta file of installed plugin `name`.
    pub fn plugin_meta(&self, name: &str) -> PathBuf {
        use sha2::Digest;
        let hex: String = sha2::Sha256::digest(name.as_bytes())
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect();
        self.plugin_dir().join("metas").join(format!("{hex}.meta"))
    }
}

/// Every file under `dir` with its bytes and mode, for before/after
/// comparisons ("the plugin dir is byte-for-byte as before").
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, u32, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let md = std::fs::symlink_metadata(&p).expect("stat");
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            if md.is_dir() {
                out.push((rel, md.permissions().mode(), Vec::new()));
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap_or_default();
                out.push((rel, md.permissions().mode(), bytes));
            }
        }
    }
    out.sort();
    out
}

/// Where compiled test plugin images are kept (inside the source tree, so
/// `plugin compile` accepts the crates created there).
pub fn plugin_work_dir() -> PathBuf {
    let d = target_dir().join("test-plugins");
    std::fs::create_dir_all(&d).expect("create target/test-plugins");
    d
}

fn compile_into(dir: &Path, out: &Path) -> PathBuf {
    let o = Command::new(vessel_bin())
        .args(["plugin", "compile", "--out"])
        .arg(out)
        .arg(dir)
        .output()
        .expect("run vessel plugin compile");
    assert!(
        o.status.success(),
        "plugin compile {}: {}",
        dir.display(),
        stderr(&o)
    );
    out.to_path_buf()
}

/// The unsigned plugin image of an example or fixture crate (a path relative
/// to the workspace root), compiled once per test process.
pub fn compiled_plugin(crate_dir: &str) -> PathBuf {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static CACHE: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = c.get(crate_dir) {
        return p.clone();
    }
    let name = crate_dir.replace('/', "_");
    let out = compile_into(
        &workspace_root().join(crate_dir),
        &plugin_work_dir().join(format!("{name}.sif")),
    );
    c.insert(crate_dir.to_owned(), out.clone());
    out
}

/// A plugin crate made with `vessel plugin create NAME` whose `src/lib.rs`
/// is replaced by `lib_rs` (if given), compiled to an unsigned image (once
/// per process per name).
pub fn custom_plugin(name: &str, lib_rs: Option<&str>) -> PathBuf {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static CACHE: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = c.get(name) {
        return p.clone();
    }
    let slug: String = name
        .chars()
        .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '-' })
        .collect();
    let dir = plugin_work_dir().join(format!("src-{slug}"));
    let _ = std::fs::remove_dir_all(&dir);
    let o = Command::new(vessel_bin())
        .args(["plugin", "create"])
        .arg(&dir)
        .arg(name)
        .output()
        .expect("run vessel plugin create");
    assert!(o.status.success(), "plugin create: {}", stderr(&o));
    if let Some(src) = lib_rs {
        std::fs::write(dir.join("src/lib.rs"), src).expect("write lib.rs");
    }
    let out = compile_into(&dir, &plugin_work_dir().join(format!("{slug}.sif")));
    c.insert(name.to_owned(), out.clone());
    out
}

/// Copies `image` into `dir` and signs the copy with `key` (default: the
/// reference private key).
pub fn signed_copy(image: &Path, dir: &Path, key: Option<&Path>) -> PathBuf {
    let dest = dir.join(image.file_name().unwrap());
    std::fs::copy(image, &dest).expect("copy image");
    let key = key.map(Path::to_path_buf).unwrap_or(reference_keys().0);
    let o = Command::new(vessel_bin())
        .args(["sign", "--key"])
        .arg(key)
        .arg(&dest)
        .output()
        .expect("run vessel sign");
    assert!(o.status.success(), "sign: {}", stderr(&o));
    dest
}

/// The first call of every root-only test. Root-only tests are marked
/// `#[ignore = "needs root"]`, so a run without root lists them as ignored
/// (never as passed); `scripts/test` runs them as root with
/// `-- --include-ignored`. Run explicitly without root, they fail here.
pub fn require_root() {
    assert!(
        is_root(),
        "this test needs root (run it as root: scripts/test does)"
    );
}

/// Asserts that `o` is one runtime error as users see it: exit `code`, one
/// `error: ` line, last on stderr (log lines may come before it), containing
/// every needle. Returns the error line.
pub fn assert_error(o: &Output, code: i32, needles: &[&str]) -> String {
    let e = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout: {}\nstderr: {e}",
        stdout(o)
    );
    let errors: Vec<&str> = e.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "not one error line: {e:?}");
    assert_eq!(
        e.lines().last(),
        Some(errors[0]),
        "the error is not last: {e:?}"
    );
    for n in needles {
        assert!(errors[0].contains(n), "{:?} lacks {n:?}", errors[0]);
    }
    errors[0].to_owned()
}

/// Runs `c`, asserting it succeeds.
pub fn run_ok(c: &mut Command) -> Output {
    let o = c.output().unwrap_or_else(|e| panic!("run {c:?}: {e}"));
    assert!(o.status.success(), "{c:?} failed: {}", stderr(&o));
    o
}

/// Asserts a vessel run succeeded; returns its stdout.
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

/// A path as `&str` for argument lists.
pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

/// The host's mount table, as seen by the test process.
pub fn mountinfo() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").expect("read /proc/self/mountinfo")
}

/// Whether `nobody` may create user namespaces here.
pub fn nobody_has_userns() -> bool {
    let mut c = Command::new("unshare");
    c.args(["-U", "-r", "true"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    as_nobody(&mut c);
    c.status().map(|s| s.success()).unwrap_or(false)
}

/// A busybox rootfs at `root`: `/bin/busybox` (from busybox-static) with one
/// symlink per applet, the mount points the engine uses, and `extra_dirs`.
pub fn busybox_rootfs(root: &Path, extra_dirs: &[&str]) {
    let base = [
        "bin", "proc", "sys", "dev", "tmp", "root", "etc", "home", "mnt",
    ];
    for d in base.iter().chain(extra_dirs) {
        std::fs::create_dir_all(root.join(d)).expect("create rootfs dir");
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("busybox-static installed");
    let list = run_ok(Command::new("/bin/busybox").arg("--list"));
    for applet in stdout(&list).lines() {
        let link = root.join("bin").join(applet);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", link).expect("applet link");
        }
    }
    set_mode(root, 0o755);
}

/// A test's VESSEL_ROOT plus a private TMPDIR for vessel's work dirs, so a
/// test can check that every run cleaned up after itself.
#[derive(Debug)]
pub struct RunEnv {
    /// The VESSEL_ROOT.
    pub root: TestRoot,
    /// vessel's TMPDIR (world-writable, sticky, so `nobody` can use it).
    pub tmp: tempfile::TempDir,
}

impl RunEnv {
    /// A fresh root and TMPDIR (named with `prefix`).
    pub fn new(prefix: &str) -> Self {
        let tmp = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .expect("create TMPDIR");
        set_mode(tmp.path(), 0o1777);
        Self {
            root: TestRoot::new(),
            tmp,
        }
    }

    /// `vessel ARGS` with this root and TMPDIR.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.root.vessel();
        c.env("TMPDIR", self.tmp.path()).args(args);
        c
    }

    /// Runs `vessel ARGS`.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run vessel")
    }

    /// Runs `vessel ARGS` as `nobody`.
    pub fn run_as_nobody(&self, args: &[&str]) -> Output {
        let mut c = self.cmd(args);
        as_nobody(&mut c);
        c.output().expect("run vessel as nobody")
    }

    /// What vessel left in its TMPDIR (should be nothing).
    pub fn work_dirs_left(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.tmp.path())
            .expect("read TMPDIR")
            .flatten()
            .map(|e| e.path())
            .collect()
    }
}

/// Rewrites a plugin image with another manifest (and optionally other
/// library bytes), keeping the layout.
pub fn forged_plugin(
    src: &Path,
    dir: &Path,
    name: &str,
    edit: impl FnOnce(&mut serde_json::Value, &mut Vec<u8>),
) -> std::path::PathBuf {
    use vessel_sif::{Arch, CreateOptions, FsType, Image, ObjectInput, PartType, Writer};
    let img = Image::open(src).unwrap();
    let so_id = img
        .group_objects(1)
        .iter()
        .find(|d| d.name() == "plugin.so")
        .unwrap()
        .id;
    let man_id = img
        .group_objects(1)
        .iter()
        .find(|d| d.name() == "plugin.manifest")
        .unwrap()
        .id;
    let mut lib = img.read_object(so_id, 1 << 30).unwrap();
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&img.read_object(man_id, 1 << 20).unwrap()).unwrap();
    edit(&mut manifest, &mut lib);
    let out = dir.join(format!("{name}.sif"));
    let mut w = Writer::create(&out, &CreateOptions::new()).unwrap();
    w.add(
        ObjectInput::partition(FsType::Raw, PartType::Data, Arch::host(), lib.as_slice())
            .name("plugin.so")
            .group(1),
    )
    .unwrap();
    let json = serde_json::to_vec(&manifest).unwrap();
    w.add(
        ObjectInput::generic_json(json.as_slice())
            .name("plugin.manifest")
            .group(1),
    )
    .unwrap();
    w.finish().unwrap();
    out
}

/// A tmpfs mounted (by root) at a directory for one test; unmounted (lazily,
/// so a test failure cannot leave it) when dropped.
#[derive(Debug)]
pub struct TmpfsMount(PathBuf);

impl TmpfsMount {
    /// Mounts a small tmpfs at `dir` (created if missing) with `mode`.
    pub fn new(dir: &Path, mode: u32) -> Self {
        std::fs::create_dir_all(dir).expect("create tmpfs mount point");
        nix::mount::mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(format!("size=1m,mode={mode:o}").as_str()),
        )
        .unwrap_or_else(|e| panic!("mount tmpfs at {}: {e}", dir.display()));
        Self(dir.to_owned())
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// A static binary compiled (gcc -static) from the C source `src`, under a
/// world-readable dir in the temp dir removed with the returned guard.
pub fn static_c_binary(name: &str, src: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("vessel-cbin-")
        .tempdir()
        .expect("create dir for a C helper");
    set_mode(dir.path(), 0o755);
    let c = dir.path().join(format!("{name}.c"));
    std::fs::write(&c, src).expect("write C source");
    let bin = dir.path().join(name);
    run_ok(
        Command::new("gcc")
            .args(["-static", "-O1", "-o"])
            .arg(&bin)
            .arg(&c),
    );
    set_mode(&bin, 0o755);
    (dir, bin)
}
/// A real registry (Debian's `docker-registry`, the reference Distribution
/// implementation) on 127.0.0.1 at a free port, with its storage in a temp
/// dir; killed and removed when dropped.
#[derive(Debug)]
pub struct TestRegistry {
    child: std::process::Child,
    dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`.
    pub host: String,
}

impl TestRegistry {
    /// A plain-HTTP registry without auth.
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// A registry whose config ends with `extra` right after the `http:`
    /// section's `addr` line: indented lines continue `http:` (a `tls:`
    /// block), unindented ones are top-level keys (`auth:`).
    pub fn start_with(extra: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("vessel-registry-")
            .tempdir()
            .expect("registry dir");
        // Free port: bind :0, read it, release it; the registry binds it next.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let host = format!("127.0.0.1:{port}");
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
             delete:\n    enabled: true\nhttp:\n  addr: {host}\n{extra}",
            dir.path().join("data").display()
        );
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, config).expect("write registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry (apt-get install docker-registry)");
        let reg = Self { child, dir, host };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(&reg.host).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "docker-registry did not listen on {}: {}",
                reg.host,
                std::fs::read_to_string(reg.dir.path().join("registry.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        reg
    }

    /// The registry's own dir (config, storage under `data/`); tests put
    /// certificates and htpasswd files here too.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `oras://HOST/REPO` (`repo` includes the tag or digest).
    pub fn reference(&self, repo: &str) -> String {
        format!("oras://{}/{repo}", self.host)
    }

    /// The Docker config dir the tests' vessel uses (never the real one).
    pub fn docker_config(&self) -> PathBuf {
        self.dir.path().join("docker")
    }

    /// `vessel ARGS` under `root`, with this registry's Docker config.
    pub fn vessel(&self, root: &TestRoot, args: &[&str]) -> Output {
        root.vessel()
            .env("DOCKER_CONFIG", self.docker_config())
            .args(args)
            .output()
            .expect("run vessel")
    }

    /// The file holding blob `digest` (`sha256:HEX`) in the storage.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// The manifest (parsed) and its digest that `repo:tag` points at, read
    /// from the storage.
    pub fn stored_manifest(&self, repo: &str, tag: &str) -> (serde_json::Value, String) {
        let link = self
            .dir
            .path()
            .join("data/docker/registry/v2/repositories")
            .join(repo)
            .join("_manifests/tags")
            .join(tag)
            .join("current/link");
        let digest = std::fs::read_to_string(&link).expect("tag link");
        let bytes = std::fs::read(self.blob_path(digest.trim())).expect("manifest blob");
        (
            serde_json::from_slice(&bytes).expect("manifest JSON"),
            digest.trim().to_owned(),
        )
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
