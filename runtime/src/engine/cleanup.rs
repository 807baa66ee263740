//! What a run leaves behind, and how the next run finds it.
//!
//! Work dirs: each run gets a private (0700) `vessel-run-XXXX` dir in the
//! temp dir and holds an exclusive flock on it while it lives (the
//! container inherits the lock's descriptor only until it execs). A run
//! that was SIGKILLed cannot remove its dir, so every run first sweeps:
//! a `vessel-run-*` dir of its own user, with the run marker inside and no
//! lock held on it, belongs to a dead run and is removed.
//!
//! Processes: without `--pid` the command may leave background processes
//! behind, pinning the image's mount and loop device. Every process of the
//! container lives in the container's mount namespace (always a new one),
//! so when the command ends the runtime kills whatever is still in that
//! namespace. With `--pid` the kernel does the same when the init exits.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::unistd::Pid;

use super::{io_reason, EngineError};

/// Name prefix of work dirs; only these are ever swept.
const PREFIX: &str = "vessel-run-";
/// Created in a work dir once it is locked: a dir with it and without a
/// lock is a dead run's.
const MARKER: &str = ".vessel-run";

/// The private work dir of one run (mount point of the root, extracted
/// images), locked while the run lives; removed on drop even when the
/// container left read-only directories in it.
#[derive(Debug)]
pub struct WorkDir {
    dir: Option<tempfile::TempDir>,
    _lock: OwnedFd,
}

impl WorkDir {
    /// Sweeps dead runs' dirs, then creates and locks a new one.
    pub fn new() -> Result<Self, EngineError> {
        use std::os::unix::fs::PermissionsExt;
        let tmp = std::env::temp_dir();
        sweep(&tmp);
        let fail = |e: std::io::Error| EngineError::Setup {
            what: format!("creating a work dir in {}", tmp.display()),
            reason: io_reason(&e),
        };
        // 0700: an extracted image keeps its setuid binaries and private
        // files here while the container runs; nobody else may reach them.
        let d = tempfile::Builder::new()
            .prefix(PREFIX)
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(&tmp)
            .map_err(fail)?;
        let lock = lock_dir(d.path())
            .map_err(|e| fail(std::io::Error::from_raw_os_error(e as i32)))?
            .ok_or_else(|| fail(std::io::Error::from_raw_os_error(libc::EWOULDBLOCK)))?;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(d.path().join(MARKER))
            .map_err(fail)?;
        Ok(Self {
            dir: Some(d),
            _lock: lock,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir
            .as_ref()
            .map_or(Path::new("/nonexistent"), |d| d.path())
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Some(d) = self.dir.take() {
            let p = d.keep();
            remove(&p);
        }
    }
}

/// Opens `dir` (never through a symlink) and takes an exclusive flock on it
/// without waiting: `None` when another process holds it.
fn lock_dir(dir: &Path) -> Result<Option<OwnedFd>, nix::errno::Errno> {
    let fd = nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_RDONLY
            | nix::fcntl::OFlag::O_DIRECTORY
            | nix::fcntl::OFlag::O_NOFOLLOW
            | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    // SAFETY: open returned a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } < 0 {
        return match nix::errno::Errno::last() {
            nix::errno::Errno::EWOULDBLOCK => Ok(None),
            e => Err(e),
        };
    }
    Ok(Some(fd))
}

/// Removes the work dirs of dead runs of this user in `tmp`.
pub fn sweep(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    let uid = nix::unistd::geteuid().as_raw();
    for e in entries.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().starts_with(PREFIX) {
            continue;
        }
        let path = e.path();
        // lstat: a symlink or another user's dir is never touched.
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() && m.uid() == uid => {}
            _ => continue,
        }
        let Ok(Some(_lock)) = lock_dir(&path) else {
            continue;
        };
        if std::fs::symlink_metadata(path.join(MARKER)).is_err() {
            continue;
        }
        if has_mount_point(&path) {
            tracing::warn!(
                "not removing {}: something is still mounted in it",
                path.display()
            );
            continue;
        }
        tracing::debug!("removing {} of a run that died", path.display());
        remove(&path);
    }
}

/// Whether a directory below `dir` is on another filesystem (a mount a
/// dead run's driver left); removing through it could reach its contents.
fn has_mount_point(dir: &Path) -> bool {
    let Ok(top) = std::fs::symlink_metadata(dir) else {
        return true;
    };
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                if m.dev() != top.dev() {
                    return true;
                }
                stack.push(e.path());
            }
        }
    }
    false
}

/// Removes a work dir; where that fails, adds owner rwx to every directory
/// below it (extracted images keep their read-only directory modes) and
/// tries again. Most work dirs hold only writable dirs: walking them first
/// cost every run a stat and a read of each directory.
fn remove(p: &Path) {
    if std::fs::remove_dir_all(p).is_ok() {
        return;
    }
    make_writable(p);
    if let Err(e) = std::fs::remove_dir_all(p) {
        tracing::warn!("removing {}: {}", p.display(), io_reason(&e));
    }
}

fn make_writable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::symlink_metadata(p) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let mode = meta.permissions().mode();
    if mode & 0o700 != 0o700 {
        let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode | 0o700));
    }
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            make_writable(&e.path());
        }
    }
}

/// The processes of one container, known by its mount namespace. The
/// namespace is held open, so its inode number cannot be reused by another
/// container's namespace while it is being compared.
#[derive(Debug)]
pub struct ContainerTree {
    ns: (u64, u64),
    _held: std::fs::File,
}

/// The inode number in a namespace link's text, `mnt:[4026531841]`.
fn ns_inode(link: &str) -> Option<u64> {
    link.strip_prefix("mnt:[")?.strip_suffix(']')?.parse().ok()
}

fn mount_ns(pid: u32) -> Option<(u64, u64)> {
    let m = std::fs::metadata(format!("/proc/{pid}/ns/mnt")).ok()?;
    Some((m.dev(), m.ino()))
}

impl ContainerTree {
    /// The container whose first process is `pid` (still running), unless
    /// it shares the runtime's mount namespace (never: the engine always
    /// creates one) or cannot be inspected.
    pub fn of(pid: Pid) -> Option<Self> {
        let held = std::fs::File::open(format!("/proc/{pid}/ns/mnt")).ok()?;
        let m = held.metadata().ok()?;
        let ns = (m.dev(), m.ino());
        (Some(ns) != mount_ns(std::process::id())).then_some(Self { ns, _held: held })
    }

    /// SIGKILLs every process still in the container's mount namespace,
    /// until none is left (a process may fork while it is being killed).
    ///
    /// Each one is killed through a pidfd, opened after the walk found it
    /// and checked against the namespace again once open: a pid the walk
    /// saw may since belong to another process, which the descriptor then
    /// names instead (and a kill by pid would have hit). The runtime waits
    /// on those descriptors, which become readable when their process has
    /// exited: an image's FUSE daemon, killed after every unprivileged run,
    /// is gone in well under the millisecond the walk used to sleep for.
    pub fn kill_all(self) {
        let Some(proc_fd) = open_proc() else {
            return;
        };
        for _ in 0..100 {
            let left = self.processes(&proc_fd);
            if left.is_empty() {
                return;
            }
            tracing::debug!("killing {} process(es) the container left", left.len());
            let mut dying = Vec::new();
            for pid in left {
                let Some(p) = rustix::process::Pid::from_raw(pid as i32) else {
                    continue;
                };
                match rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) {
                    Ok(fd) => {
                        let still_ours = self.holds_at(&proc_fd, pid.to_string().as_bytes());
                        if still_ours
                            && rustix::process::pidfd_send_signal(
                                &fd,
                                rustix::process::Signal::KILL,
                            )
                            .is_ok()
                        {
                            dying.push(fd);
                        }
                    }
                    // Kernels before 5.3: by pid, and a short sleep.
                    Err(rustix::io::Errno::NOSYS) => {
                        let _ = nix::sys::signal::kill(
                            Pid::from_raw(pid as i32),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                    // Gone already.
                    Err(_) => {}
                }
            }
            if dying.is_empty() {
                std::thread::sleep(std::time::Duration::from_millis(1));
            } else {
                wait_exited(&dying, std::time::Duration::from_millis(10));
            }
        }
        tracing::warn!("processes of the container are still running");
    }

    /// The processes in the container's namespace, the runtime aside.
    /// Every process on the host is asked, after every run, so the walk
    /// allocates nothing per process: one `/proc` descriptor, its entries
    /// read into one buffer, each `PID/ns/mnt` link read relative to it
    /// into a stack buffer (a path per process and a `String` per link made
    /// this walk three times as long as the kernel's part of it).
    fn processes(&self, proc_fd: &OwnedFd) -> Vec<u32> {
        use std::mem::MaybeUninit;
        let me = std::process::id();
        let mut entries = vec![MaybeUninit::<u8>::uninit(); 32 * 1024];
        let mut dir = rustix::fs::RawDir::new(proc_fd, &mut entries);
        let mut found = Vec::new();
        while let Some(Ok(e)) = dir.next() {
            let name = e.file_name().to_bytes();
            let Some(pid) = std::str::from_utf8(name)
                .ok()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if pid != me && self.holds_at(proc_fd, name) && !is_zombie(pid) {
                found.push(pid);
            }
        }
        found
    }

    /// Whether the process whose `/proc` entry is `name` (under `proc_fd`)
    /// is in the container's mount namespace. Its namespace link is read
    /// (`mnt:[INODE]`, formatted by the kernel from the namespace) rather
    /// than stat'ed, which would make the kernel set up an nsfs inode and
    /// dentry for each process, several times the cost on a busy host. All
    /// namespaces live on the one nsfs device, and the one held open keeps
    /// its inode number from being reused meanwhile.
    fn holds_at(&self, proc_fd: &OwnedFd, name: &[u8]) -> bool {
        const SUFFIX: &[u8] = b"/ns/mnt";
        let mut path = [0u8; 32];
        let Some(p) = path.get_mut(..name.len() + SUFFIX.len()) else {
            return false;
        };
        p[..name.len()].copy_from_slice(name);
        p[name.len()..].copy_from_slice(SUFFIX);
        let mut link = [0u8; 64];
        match rustix::fs::readlinkat_raw(proc_fd, &*p, &mut link[..]) {
            Ok(n) => {
                std::str::from_utf8(&link[..n.min(link.len())])
                    .ok()
                    .and_then(ns_inode)
                    == Some(self.ns.1)
            }
            Err(_) => false,
        }
    }
}

/// `/proc`, opened as a directory for the walk and the re-checks.
fn open_proc() -> Option<OwnedFd> {
    rustix::fs::open(
        "/proc",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .ok()
}

/// Waits until every process of `fds` has exited (its pidfd is readable),
/// or `timeout` has passed.
fn wait_exited(fds: &[OwnedFd], timeout: std::time::Duration) {
    use rustix::event::{PollFd, PollFlags};
    let deadline = std::time::Instant::now() + timeout;
    let mut pending: Vec<PollFd<'_>> = fds
        .iter()
        .map(|fd| PollFd::new(fd, PollFlags::IN))
        .collect();
    while !pending.is_empty() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        let t = rustix::event::Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        match rustix::event::poll(&mut pending, Some(&t)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(_) => return,
        }
        pending.retain(|p| p.revents().is_empty());
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.get(s.rfind(')')? + 2..)?;
            rest.chars().next()
        })
        .is_some_and(|c| c == 'Z')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_link_names_the_inode_stat_sees() {
        assert_eq!(ns_inode("mnt:[4026531841]"), Some(4026531841));
        assert_eq!(ns_inode("net:[4026531841]"), None);
        assert_eq!(ns_inode("mnt:[x]"), None);
        let me = std::process::id();
        let tree = ContainerTree {
            ns: mount_ns(me).unwrap(),
            _held: std::fs::File::open("/proc/self/ns/mnt").unwrap(),
        };
        let proc_fd = open_proc().unwrap();
        assert!(tree.holds_at(&proc_fd, me.to_string().as_bytes()));
        assert!(!tree.holds_at(&proc_fd, u32::MAX.to_string().as_bytes()));
        assert!(!tree.holds_at(&proc_fd, &[b'1'; 40]));
        // The walk finds a process in the namespace, never the runtime.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let found = tree.processes(&proc_fd);
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.contains(&child.id()), "{found:?}");
        assert!(!found.contains(&me));
    }

    #[test]
    #[ignore = "needs root"]
    fn kill_all_kills_what_is_left_in_the_namespace_and_nothing_else() {
        // A namespace of its own holding two processes, and one outside it.
        let mut inside = std::process::Command::new("unshare")
            .args([
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                "sleep 60 & exec sleep 60",
            ])
            .spawn()
            .unwrap();
        let mut outside = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let pid = Pid::from_raw(inside.id() as i32);
        // unshare execs sh in the new namespace: wait until it has.
        let tree = (0..500)
            .find_map(|_| {
                std::thread::sleep(std::time::Duration::from_millis(2));
                ContainerTree::of(pid).filter(|t| t.processes(&open_proc().unwrap()).len() == 2)
            })
            .expect("two processes in the new namespace");
        tree.kill_all();
        let status = inside.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert!(outside.try_wait().unwrap().is_none(), "outside was killed");
        let _ = outside.kill();
        let _ = outside.wait();
    }

    #[test]
    fn sweep_removes_only_unlocked_marked_dirs_of_this_user() {
        let tmp = tempfile::tempdir().unwrap();
        let (prefix, marker) = (PREFIX, MARKER);
        let dead = tmp.path().join(format!("{prefix}dead"));
        std::fs::create_dir_all(dead.join("rootfs/ro")).unwrap();
        std::fs::write(dead.join(marker), "").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dead.join("rootfs/ro"),
            std::fs::Permissions::from_mode(0o500),
        )
        .unwrap();
        let unmarked = tmp.path().join(format!("{prefix}fresh"));
        std::fs::create_dir(&unmarked).unwrap();
        let other = tmp.path().join("vessel-something-else");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join(marker), "").unwrap();
        let running = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(tmp.path())
            .unwrap();
        std::fs::write(running.path().join(marker), "").unwrap();
        let _held = lock_dir(running.path()).unwrap().unwrap();
        sweep(tmp.path());
        assert!(!dead.exists());
        assert!(unmarked.exists() && other.exists() && running.path().exists());
    }
}
