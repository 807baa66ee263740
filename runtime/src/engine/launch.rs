//! Creating the container process: clone into new namespaces, set up the
//! root in the child, exec the command.
//!
//! The runtime is single-threaded when it clones, so the child may allocate
//! and run ordinary Rust code until exec. A close-on-exec pipe reports the
//! child's fate: EOF means the exec succeeded; otherwise the child writes its
//! exit code and a one-line message and exits.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::signal::{SigHandler, SigSet, Signal};
use nix::unistd::Pid;

use super::config::EngineConfig;
use super::plan::{apply, plan, Layer, PlanInput};
use super::sys::{open_in_root, RealSyscalls, Syscalls};
use super::EngineError;
use crate::image::driver::{ImageDriver, MountRequest};
use crate::image::Image;

/// Stack for the cloned child; it runs the whole setup, plugins included.
const CHILD_STACK: usize = 8 << 20;

/// What the child needs to set up the container.
pub struct Launch<'a> {
    /// The validated config.
    pub cfg: &'a EngineConfig,
    /// The resolved image.
    pub image: &'a Image,
    /// The driver and request for a squashfs image (`start` already ran).
    pub driver: Option<(&'a mut dyn ImageDriver, &'a MountRequest)>,
    /// Empty directory the root is mounted on.
    pub root: &'a Path,
    /// The run's private work dir (holds `root`).
    pub workdir: &'a Path,
    /// A writable layer over the image, if asked for.
    pub layer: Option<Layer>,
    /// The signal mask the runtime started with, restored for the command.
    pub mask: SigSet,
}

impl std::fmt::Debug for Launch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Launch")
            .field("image", self.image)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// A started container process.
#[derive(Debug)]
pub struct Started {
    /// Its pid (in the runtime's pid namespace).
    pub pid: Pid,
    /// Its processes, to kill what it leaves running.
    pub tree: Option<super::cleanup::ContainerTree>,
}

/// Why the child did not exec.
#[derive(Debug)]
struct ChildFailure {
    code: u8,
    message: String,
}

impl ChildFailure {
    fn setup(e: impl std::fmt::Display) -> Self {
        Self {
            code: crate::EXIT_RUNTIME_FAILURE as u8,
            message: e.to_string(),
        }
    }
}

/// Clones the container process and waits until it has exec'd the command
/// (or failed to).
pub fn start(l: Launch<'_>) -> Result<Started, EngineError> {
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| EngineError::sys("creating a pipe", e))?;
    // Before it starts the command, the child waits for EOF on this one
    // until the runtime holds its namespace: a command that ends at once
    // would otherwise be gone (a zombie without namespaces) before the
    // runtime could name its processes. The wait comes after the setup, so
    // the runtime takes the namespace while the child builds the root (it
    // used to wait first, idle, for a cross-CPU wake-up).
    let (go_rd, go_wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| EngineError::sys("creating a pipe", e))?;
    let (go_rd_raw, go_wr_raw) = (go_rd.as_raw_fd(), go_wr.as_raw_fd());
    let ns = l.cfg.namespaces;
    let mut flags = CloneFlags::CLONE_NEWNS;
    for (on, f) in [
        (ns.user, CloneFlags::CLONE_NEWUSER),
        (ns.pid, CloneFlags::CLONE_NEWPID),
        (ns.uts, CloneFlags::CLONE_NEWUTS),
        (ns.ipc, CloneFlags::CLONE_NEWIPC),
        (ns.net, CloneFlags::CLONE_NEWNET),
    ] {
        if on {
            flags |= f;
        }
    }
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    let host_cwd = std::env::current_dir().ok();
    // Opened here, as the caller and before any namespace (see `hostdirs`).
    let pinned = super::hostdirs::pin(l.cfg)?;
    // Looked up on the host, before the container's root hides its files.
    let caller = (ns.user && !l.cfg.fakeroot)
        .then(super::identity::Caller::current)
        .flatten();
    let host_env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let mut stack = vec![0u8; CHILD_STACK];
    let mut l = l;
    let wr_ref = &wr;
    let cb = Box::new(|| -> isize {
        // SAFETY: closes this process's copy of the go pipe's write end, so
        // that the read end sees EOF once the runtime closes its own.
        unsafe { libc::close(go_wr_raw) };
        let fail = match child(
            &mut l,
            (uid, gid),
            host_cwd.clone(),
            &pinned,
            host_env.clone(),
            caller.as_ref(),
            (wr_ref.as_raw_fd(), go_rd_raw),
        ) {
            Err(f) => f,
            Ok(never) => match never {},
        };
        let mut msg = vec![fail.code];
        msg.extend_from_slice(fail.message.as_bytes());
        let mut rest = msg.as_slice();
        while !rest.is_empty() {
            match nix::unistd::write(wr_ref, rest) {
                Ok(n) => rest = &rest[n..],
                Err(Errno::EINTR) => {}
                Err(_) => break,
            }
        }
        unsafe_exit(fail.code as i32)
    });
    // SAFETY: the runtime is single-threaded here; the child runs on its own
    // stack (copy-on-write memory, no CLONE_VM) and never returns: it execs
    // or _exits.
    let pid = unsafe { nix::sched::clone(cb, &mut stack, flags, Some(libc::SIGCHLD)) }
        .map_err(|e| EngineError::sys("creating the container process", e))?;
    // Known now, before the child may start the command (the go pipe).
    let tree = super::cleanup::ContainerTree::of(pid);
    drop(go_wr);
    drop(go_rd);
    drop(wr);
    read_fate(rd, pid).map(|pid| Started { pid, tree })
}

fn read_fate(rd: OwnedFd, pid: Pid) -> Result<Pid, EngineError> {
    let mut buf = Vec::new();
    let mut f = std::fs::File::from(rd);
    if let Err(e) = f.read_to_end(&mut buf) {
        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        let _ = super::monitor::reap(pid);
        return Err(EngineError::sys(
            "reading from the container process",
            Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        ));
    }
    if buf.is_empty() {
        return Ok(pid);
    }
    let _ = super::monitor::reap(pid);
    let message = String::from_utf8_lossy(&buf[1..]).into_owned();
    Err(match buf[0] {
        127 => EngineError::CommandNotFound(message),
        126 => EngineError::CommandNotExecutable(message),
        _ => EngineError::Container(message),
    })
}

fn unsafe_exit(code: i32) -> ! {
    // SAFETY: _exit skips atexit handlers and stdio flushing that belong to
    // the parent's copy of the process state.
    unsafe { libc::_exit(code) }
}

/// The child side: namespaces are already created by clone.
fn child(
    l: &mut Launch<'_>,
    (uid, gid): (u32, u32),
    host_cwd: Option<PathBuf>,
    pinned: &super::hostdirs::Pinned,
    host_env: Vec<(String, String)>,
    caller: Option<&super::identity::Caller>,
    (fate_fd, go_fd): (RawFd, RawFd),
) -> Result<std::convert::Infallible, ChildFailure> {
    // The container must not outlive the runtime: its mounts go with it.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    // A session of its own, without a controlling terminal: the container
    // cannot open /dev/tty, nor (without CAP_SYS_ADMIN) push input into the
    // caller's terminal with TIOCSTI (bubblewrap's CVE-2017-5226). It still
    // reads and writes the terminal through the descriptors it inherited;
    // terminal signals (Ctrl-C) reach the runtime, which forwards them.
    nix::unistd::setsid()
        .map_err(|e| ChildFailure::setup(EngineError::sys("starting a new session", e)))?;
    let cfg = l.cfg;
    if cfg.namespaces.user {
        map_ids(cfg.fakeroot, uid, gid).map_err(ChildFailure::setup)?;
    }
    let root = l.root;
    let exists = |inside: &Path| open_in_root(root, inside).is_ok();
    setup_root(l, host_cwd, pinned, caller, &mut RealSyscalls, &exists)?;

    let (env, argv, prog) = command_and_env(cfg, host_env)?;
    let cstr =
        |s: &[u8]| CString::new(s).map_err(|_| ChildFailure::setup("argument contains a nul byte"));
    let c_argv = argv
        .iter()
        .map(|a| cstr(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let c_env = env
        .iter()
        .map(|(k, v)| cstr(format!("{k}={v}").as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let c_prog = cstr(prog.as_os_str().as_bytes())?;

    // SAFETY: reads and closes this process's copy of the go pipe's read
    // end: returns once the runtime's end is closed (0) or on an error.
    unsafe {
        let mut b = [0u8; 1];
        while libc::read(go_fd, b.as_mut_ptr().cast(), 1) < 0 && Errno::last() == Errno::EINTR {}
        libc::close(go_fd);
    }
    if cfg.namespaces.pid && cfg.init {
        // SAFETY: this process is single-threaded (a fresh clone of a
        // single-threaded runtime).
        match unsafe { nix::unistd::fork() }
            .map_err(|e| ChildFailure::setup(EngineError::sys("starting the command", e)))?
        {
            nix::unistd::ForkResult::Parent { child } => {
                // The command leads a process group of its own, which the
                // init signals (both sides set it: no race).
                let _ = nix::unistd::setpgid(child, child);
                // Only the command reports its exec: EOF once it has.
                // SAFETY: closes this process's copy of the pipe's write end.
                unsafe { libc::close(fate_fd) };
                super::init::run(child)
            }
            nix::unistd::ForkResult::Child => {
                let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
            }
        }
    }
    let (cap_add, cap_drop) = cfg.capability_masks();
    super::privs::apply(cfg.privileges, cfg.namespaces.user, cap_add, cap_drop)
        .map_err(|e| ChildFailure::setup(EngineError::sys("dropping privileges", e)))?;
    if cfg.privileges != super::privs::Privileges::Keep && !cfg.namespaces.user {
        super::seccomp::install_default()
            .map_err(|e| ChildFailure::setup(format!("installing the {e}")))?;
    }
    // Give the command the signal state the runtime itself was started with.
    // SAFETY: resetting dispositions to default in a single-threaded child.
    unsafe {
        let _ = nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigDfl);
    }
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&l.mask),
        None,
    );
    let e = nix::unistd::execve(&c_prog, &c_argv, &c_env).unwrap_err();
    Err(match e {
        Errno::ENOENT | Errno::ENOTDIR => ChildFailure {
            code: 127,
            message: format!("{}: command not found in the container", argv[0]),
        },
        Errno::EACCES | Errno::ENOEXEC | Errno::EPERM => ChildFailure {
            code: 126,
            message: format!("{}: {}", argv[0], e.desc().to_lowercase()),
        },
        e => ChildFailure::setup(format!(
            "executing {}: {}",
            argv[0],
            e.desc().to_lowercase()
        )),
    })
}

/// Builds the container's root in its fresh mount namespace: mounts stop
/// propagating, the image is mounted at the root, then the planned steps
/// run through `sys` (pivot_root included). `exists` answers, for a path
/// inside the container, whether it resolves inside the root.
fn setup_root(
    l: &mut Launch<'_>,
    host_cwd: Option<PathBuf>,
    pinned: &super::hostdirs::Pinned,
    caller: Option<&super::identity::Caller>,
    sys: &mut dyn Syscalls,
    exists: &dyn Fn(&Path) -> bool,
) -> Result<(), ChildFailure> {
    sys.mount(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )
    .map_err(|e| ChildFailure::setup(EngineError::sys("making mounts private", e)))?;
    match (l.image, l.driver.as_mut()) {
        (Image::Sandbox(dir), _) => sys
            .mount(
                Some(dir.as_path()),
                l.root,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )
            .map_err(|e| {
                ChildFailure::setup(EngineError::sys(&format!("binding {}", dir.display()), e))
            })?,
        (Image::Squashfs { .. }, Some((driver, req))) => driver
            .mount_with(req, l.root, sys)
            .map_err(ChildFailure::setup)?,
        (Image::Squashfs { path, .. }, None) => {
            return Err(ChildFailure::setup(format!(
                "image {}: no driver to mount it",
                path.display()
            )))
        }
    }
    let input = PlanInput {
        host_cwd,
        workdir: l.workdir.to_owned(),
        layer: l.layer.clone(),
        pinned: pinned.clone(),
    };
    let with_identity;
    let mut cfg = l.cfg;
    if let Some(c) = caller {
        // The run's private work dir holds the root: the files go next to it.
        let workdir = l.root.parent().unwrap_or(l.root);
        let home = super::env::container_home(cfg).unwrap_or_else(|| "/".into());
        let extra =
            super::identity::binds(l.root, workdir, c, &home).map_err(ChildFailure::setup)?;
        let mut c = cfg.clone();
        // First, so a user's own bind over /etc/passwd still wins.
        c.binds.splice(0..0, extra);
        with_identity = c;
        cfg = &with_identity;
    }
    let steps = plan(cfg, &input, exists).map_err(ChildFailure::setup)?;
    apply(&steps, l.root, sys).map_err(ChildFailure::setup)
}

/// The argv to exec: the runscript with its args when the image has one
/// (`vessel run`), else the command.
fn command_argv(cfg: &EngineConfig) -> Vec<String> {
    if let Some(rs) = &cfg.runscript {
        if rs.path.is_file() {
            let mut v = vec![rs.path.to_string_lossy().into_owned()];
            v.extend(rs.args.iter().cloned());
            return v;
        }
    }
    cfg.command.clone()
}

/// What the container process execs: environment, argv, program.
type Exec = (Vec<(String, String)>, Vec<String>, PathBuf);

/// The environment, argv and program to exec, run in the container's root.
/// An image with `/.singularity.d/env/*.sh` scripts and a `/bin/sh` runs
/// the command through that shell, which sources the scripts in order and
/// then applies the user's variables (Apptainer's action scripts do the
/// same); otherwise the environment is computed here.
fn command_and_env(
    cfg: &EngineConfig,
    host_env: Vec<(String, String)>,
) -> Result<Exec, ChildFailure> {
    let plan = super::env::plan(cfg, host_env.into_iter());
    let argv = command_argv(cfg);
    let scripts = super::env::image_scripts(Path::new(super::env::IMAGE_ENV_DIR));
    let shell = Path::new("/bin/sh");
    if !scripts.is_empty() {
        if is_executable(shell) {
            tracing::debug!(
                "applying {} image environment script(s) with {}",
                scripts.len(),
                shell.display()
            );
            let (env, script) = plan.script(&scripts);
            let mut full = vec!["/bin/sh".into(), "-c".into(), script, "vessel".into()];
            full.extend(argv);
            return Ok((env, full, shell.to_owned()));
        }
        tracing::debug!(
            "the image has environment scripts in {} but no {}: they are not applied",
            super::env::IMAGE_ENV_DIR,
            shell.display()
        );
    }
    let env = plan.evaluate();
    let path_var = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or(super::env::DEFAULT_PATH);
    let prog = resolve(&argv[0], path_var).ok_or_else(|| ChildFailure {
        code: 127,
        message: format!("{}: command not found in the container", argv[0]),
    })?;
    Ok((env, argv, prog))
}

fn is_executable(p: &Path) -> bool {
    p.metadata()
        .map(|m| {
            m.is_file() && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
        })
        .unwrap_or(false)
}

/// Finds `cmd` like a shell does: as a path if it has a slash, else in PATH.
fn resolve(cmd: &str, path: &str) -> Option<PathBuf> {
    if cmd.contains('/') {
        return Some(PathBuf::from(cmd));
    }
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(cmd))
        .find(|p| is_executable(p))
}

/// Maps the invoking user to itself (or to root with fakeroot) in the new
/// user namespace; unprivileged writers must deny setgroups first.
fn map_ids(fakeroot: bool, uid: u32, gid: u32) -> Result<(), EngineError> {
    let (in_uid, in_gid) = if fakeroot { (0, 0) } else { (uid, gid) };
    let write = |file: &str, text: String| {
        std::fs::write(format!("/proc/self/{file}"), text).map_err(|e| EngineError::Setup {
            what: format!("writing /proc/self/{file}"),
            reason: crate::image::io_reason(&e),
        })
    };
    write("setgroups", "deny".into())?;
    write("uid_map", format!("{in_uid} {uid} 1\n"))?;
    write("gid_map", format!("{in_gid} {gid} 1\n"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::config::Bind;
    use crate::engine::sys::Recorder;
    use crate::image::driver::{Extract, MountRequest};

    fn request() -> MountRequest {
        MountRequest {
            image: "/img.sif".into(),
            offset: 0,
            size: 0,
            unprivileged: false,
            workdir: "/w".into(),
        }
    }

    fn recorded<'a>(
        cfg: &'a EngineConfig,
        image: &'a Image,
        driver: Option<(&'a mut dyn ImageDriver, &'a MountRequest)>,
    ) -> Vec<String> {
        let mut l = Launch {
            cfg,
            image,
            driver,
            root: Path::new("/w/root"),
            workdir: Path::new("/w"),
            layer: None,
            mask: SigSet::empty(),
        };
        let mut rec = Recorder::default();
        // Everything exists in the image except /sys.
        let pinned = Default::default();
        setup_root(&mut l, None, &pinned, None, &mut rec, &|p| {
            p != Path::new("/sys")
        })
        .unwrap();
        rec.calls
    }

    #[test]
    fn a_contained_sandbox_run_with_a_ro_bind_mounts_in_this_order() {
        let mut cfg = EngineConfig::new("/img", vec!["true".into()]);
        cfg.contain = true;
        cfg.home = Some("/root".into());
        cfg.binds.push(Bind::parse("/data:/mnt:ro").unwrap());
        let calls = recorded(&cfg, &Image::Sandbox("/img".into()), None);
        let has = |want: &str| {
            calls
                .iter()
                .position(|c| c == want)
                .unwrap_or_else(|| panic!("no {want:?} in {calls:#?}"))
        };
        assert_eq!(has("mount none -> / - MS_REC | MS_PRIVATE"), 0);
        assert_eq!(has("mount /img -> /w/root - MS_BIND | MS_REC"), 1);
        assert_eq!(has("setattr /w/root rdonly,nosuid,nodev recursive"), 2);
        let proc_ = has("mount /proc -> /w/root/proc - MS_BIND | MS_REC");
        let dev = has(
            "mount tmpfs -> /w/root/dev tmpfs MS_NOSUID | MS_NODEV | MS_NOEXEC mode=755,size=1m",
        );
        let null = has("mount /dev/null -> /w/root/dev/null - MS_BIND");
        assert!(has("touch /w/root/dev/null") < null && dev < null && proc_ < dev);
        has("mount tmpfs -> /w/root/tmp tmpfs MS_NOSUID | MS_NODEV mode=1777");
        let bind = has("mount /data -> /w/root/mnt - MS_BIND | MS_REC");
        assert_eq!(calls[bind + 1], "setattr /w/root/mnt rdonly recursive");
        assert!(
            !calls.iter().any(|c| c.starts_with("mount /sys")),
            "{calls:#?}"
        );
        // Confined root: runc's masked and read-only paths.
        let kcore = has("mount /dev/null -> /w/root/proc/kcore - MS_BIND");
        let sys_ro = has("mount /w/root/proc/sys -> /w/root/proc/sys - MS_BIND | MS_REC");
        assert_eq!(
            calls[sys_ro + 1],
            "setattr /w/root/proc/sys rdonly recursive"
        );
        has("mount tmpfs -> /w/root/proc/acpi tmpfs MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC size=0");
        assert!(proc_ < kcore);
        let pivot = has("pivot_root . .");
        assert!(bind < pivot && calls[pivot - 1] == "chdir /w/root");
        // Contained: an empty home, where the command starts.
        has("mount tmpfs -> /w/root/root tmpfs MS_NOSUID | MS_NODEV mode=700");
        assert_eq!(calls.last().unwrap(), "chdir /root");
    }

    #[test]
    fn an_extracted_image_is_bound_then_locked_down() {
        let cfg = EngineConfig::new("/img.sif", vec!["true".into()]);
        let mut d = Extract::with_extracted("/w/rootfs".into());
        let image = Image::Squashfs {
            path: "/img.sif".into(),
            offset: 0,
            size: 0,
        };
        let req = request();
        let calls = recorded(&cfg, &image, Some((&mut d, &req)));
        assert_eq!(
            calls[1..3],
            [
                "mount /w/rootfs -> /w/root - MS_BIND | MS_REC",
                "setattr /w/root rdonly,nosuid,nodev recursive"
            ]
        );
        // Not contained: host /dev and /tmp recursively.
        assert!(calls.contains(&"mount /tmp -> /w/root/tmp - MS_BIND | MS_REC".to_string()));
        assert!(calls.contains(&"mount /dev -> /w/root/dev - MS_BIND | MS_REC".to_string()));
    }

    #[test]
    fn resolves_commands_like_a_shell() {
        assert_eq!(resolve("/x/y", ""), Some(PathBuf::from("/x/y")));
        assert_eq!(
            resolve("sh", "/nonexistent:/bin"),
            Some(PathBuf::from("/bin/sh"))
        );
        assert_eq!(resolve("no-such-command-here", "/bin:/usr/bin"), None);
    }
}
