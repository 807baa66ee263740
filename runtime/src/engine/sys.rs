//! The system calls the container setup makes, behind a trait so the setup
//! can be checked with a recording double; the real implementation is
//! exercised end to end.
//!
//! Paths inside the container root are never handed to the kernel as
//! strings joined onto the root: the image (a sandbox dir another user may
//! own, an extracted tree) is hostile and may hold symlinks or swap a
//! directory for one during setup. [`Syscalls::resolve`] walks such a path
//! with openat2 `RESOLVE_IN_ROOT`, so a symlink is followed *inside* the
//! root, and the mount then goes through the O_PATH descriptor it returns
//! (`/proc/self/fd/N`), which names exactly the inode that was checked.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};

/// Mount attributes for mount_setattr(2) (`MOUNT_ATTR_*`).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct MountAttr(u64);

impl MountAttr {
    /// Read-only.
    pub const RDONLY: Self = Self(0x1);
    /// Ignore set-user-ID and set-group-ID bits and file capabilities.
    pub const NOSUID: Self = Self(0x2);
    /// No access to device nodes.
    pub const NODEV: Self = Self(0x4);
    /// No program execution.
    pub const NOEXEC: Self = Self(0x8);

    /// The raw `MOUNT_ATTR_*` bits.
    pub fn bits(self) -> u64 {
        self.0
    }

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for MountAttr {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl std::fmt::Debug for MountAttr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = [
            (Self::RDONLY, "rdonly"),
            (Self::NOSUID, "nosuid"),
            (Self::NODEV, "nodev"),
            (Self::NOEXEC, "noexec"),
        ]
        .iter()
        .filter(|(a, _)| self.contains(*a))
        .map(|(_, n)| *n)
        .collect();
        f.write_str(&names.join(","))
    }
}

/// A path inside the container root, resolved without leaving the root.
/// `path()` names exactly the resolved inode (through its descriptor, held
/// for as long as this value lives), so a later swap of a path component
/// cannot redirect the mount.
#[derive(Debug)]
pub struct Resolved {
    path: PathBuf,
    _fd: Option<OwnedFd>,
}

impl Resolved {
    /// The path to hand to mount(2) and friends.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What a directory entry is, as lstat sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A symlink and its target (never followed).
    Symlink(PathBuf),
    /// Anything else (file, device, socket, fifo).
    Other,
}

/// One entry of a directory inside the container root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Its name.
    pub name: std::ffi::OsString,
    /// What it is.
    pub kind: EntryKind,
}

/// The calls the mount/namespace setup needs, one method per kernel action.
pub trait Syscalls {
    /// mount(2) on a path outside the container root (host paths and the
    /// runtime's private work dir) or on a [`Resolved`] path.
    fn mount(
        &mut self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<(), Errno>;
    /// mount_setattr(2): sets `attr` on the mount at `target`, and with
    /// `recursive` on every mount below it too (AT_RECURSIVE), so a mount
    /// under a read-only bind is read-only as well. Only sets flags, so the
    /// flags a user namespace locks stay as they are.
    fn mount_setattr(
        &mut self,
        target: &Path,
        attr: MountAttr,
        recursive: bool,
    ) -> Result<(), Errno>;
    /// umount2(2).
    fn umount2(&mut self, target: &Path, flags: MntFlags) -> Result<(), Errno>;
    /// pivot_root(2).
    fn pivot_root(&mut self, new_root: &Path, put_old: &Path) -> Result<(), Errno>;
    /// chdir(2).
    fn chdir(&mut self, dir: &Path) -> Result<(), Errno>;
    /// sethostname(2).
    fn sethostname(&mut self, name: &str) -> Result<(), Errno>;
    /// Resolves `inside` (a path in the container) under `root` without
    /// leaving it: symlinks and `..` are resolved as if `root` were `/`.
    fn resolve(&mut self, root: &Path, inside: &Path) -> Result<Resolved, Errno>;
    /// Creates the directory `inside` under `root` (existing is fine), its
    /// parent resolved inside the root; never follows a symlink at `inside`.
    fn mkdir_in(&mut self, root: &Path, inside: &Path, mode: u32) -> Result<(), Errno>;
    /// Creates an empty regular file at `inside` to bind a file onto (an
    /// existing non-symlink is fine), its parent resolved inside the root.
    fn touch_in(&mut self, root: &Path, inside: &Path) -> Result<(), Errno>;
    /// Creates the symlink `inside` -> `target`, its parent resolved inside
    /// the root.
    fn symlink_in(&mut self, root: &Path, target: &Path, inside: &Path) -> Result<(), Errno>;
    /// Opens the host directory `path` (its last component not followed)
    /// and checks it is the inode `id` (dev, ino) checked earlier in
    /// another mount namespace: a dir swapped in since fails with ESTALE.
    fn open_checked(&mut self, path: &Path, id: (u64, u64)) -> Result<Resolved, Errno>;
    /// Lists the directory `inside` (resolved inside the root).
    fn read_dir_in(&mut self, root: &Path, inside: &Path) -> Result<Vec<DirEntry>, Errno>;
    /// Brings the loopback interface of the current network namespace up.
    fn loopback_up(&mut self) -> Result<(), Errno>;
}

/// The real system calls.
#[derive(Debug, Default)]
pub struct RealSyscalls;

/// `inside` relative to the root ("." for the root itself).
fn relative(inside: &Path) -> PathBuf {
    let rel: PathBuf = inside
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::CurDir))
        .collect();
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    }
}

fn cstring(p: &Path) -> Result<std::ffi::CString, Errno> {
    std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

/// Opens `inside` under `root` as an O_PATH descriptor with openat2
/// `RESOLVE_IN_ROOT` (magic links refused): the walk cannot leave `root`.
pub fn open_in_root(root: &Path, inside: &Path) -> Result<OwnedFd, Errno> {
    openat2_in_root(root, inside, libc::O_PATH | libc::O_CLOEXEC)
}

/// Reads the regular file `inside` under `root` (resolved like
/// [`open_in_root`]), at most `max` bytes: an image's file is hostile.
pub fn read_in_root(root: &Path, inside: &Path, max: u64) -> Result<Vec<u8>, Errno> {
    use std::io::Read;
    let fd = openat2_in_root(
        root,
        inside,
        libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK,
    )?;
    let f = std::fs::File::from(fd);
    let meta = f.metadata().map_err(|_| Errno::EIO)?;
    if !meta.is_file() {
        return Err(Errno::EINVAL);
    }
    let mut buf = Vec::new();
    f.take(max)
        .read_to_end(&mut buf)
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    Ok(buf)
}

fn openat2_in_root(root: &Path, inside: &Path, flags: i32) -> Result<OwnedFd, Errno> {
    let root_fd = nix::fcntl::open(
        root,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    // SAFETY: open returned a fresh descriptor that nothing else owns.
    let root_fd = unsafe { OwnedFd::from_raw_fd(root_fd) };
    let rel = cstring(&relative(inside))?;
    // SAFETY: open_how is plain old data; all-zero is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // The kernel answers EAGAIN when a rename raced the walk: try again.
    for _ in 0..64 {
        // SAFETY: the path and open_how outlive the call; size is exact.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root_fd.as_raw_fd(),
                rel.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if r >= 0 {
            // SAFETY: openat2 returned a fresh descriptor.
            return Ok(unsafe { OwnedFd::from_raw_fd(r as i32) });
        }
        match Errno::last() {
            Errno::EAGAIN | Errno::EINTR => continue,
            e => return Err(e),
        }
    }
    Err(Errno::EAGAIN)
}

/// The parent of `inside`, resolved in the root, and the last component
/// (which must be a plain name).
fn parent_in_root(root: &Path, inside: &Path) -> Result<(OwnedFd, std::ffi::CString), Errno> {
    let name = match inside.components().next_back() {
        Some(Component::Normal(n)) => n,
        _ => return Err(Errno::EINVAL),
    };
    let parent = inside.parent().unwrap_or(Path::new("/"));
    let fd = open_in_root(root, parent)?;
    Ok((fd, cstring(Path::new(name))?))
}

/// What is at `name` in `dir`, without following a symlink there.
fn kind_at(dir: &OwnedFd, name: &std::ffi::CStr) -> Result<libc::mode_t, Errno> {
    // SAFETY: stat is plain old data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: the name and stat buffer outlive the call.
    let r = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(st.st_mode & libc::S_IFMT)
}

fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

impl Syscalls for RealSyscalls {
    fn mount(
        &mut self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<(), Errno> {
        nix::mount::mount(source, target, fstype, flags, data)
    }

    fn mount_setattr(
        &mut self,
        target: &Path,
        attr: MountAttr,
        recursive: bool,
    ) -> Result<(), Errno> {
        /// struct mount_attr from <linux/mount.h>.
        #[repr(C)]
        struct RawMountAttr {
            attr_set: u64,
            attr_clr: u64,
            propagation: u64,
            userns_fd: u64,
        }
        let raw = RawMountAttr {
            attr_set: attr.bits(),
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        };
        let path = cstring(target)?;
        let flags = if recursive { libc::AT_RECURSIVE } else { 0 };
        // SAFETY: the path and attr struct outlive the call; size is exact.
        let r = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                libc::AT_FDCWD,
                path.as_ptr(),
                flags as libc::c_uint,
                &raw as *const RawMountAttr,
                std::mem::size_of::<RawMountAttr>(),
            )
        };
        if r < 0 {
            return Err(Errno::last());
        }
        Ok(())
    }

    fn umount2(&mut self, target: &Path, flags: MntFlags) -> Result<(), Errno> {
        nix::mount::umount2(target, flags)
    }

    fn pivot_root(&mut self, new_root: &Path, put_old: &Path) -> Result<(), Errno> {
        nix::unistd::pivot_root(new_root, put_old)
    }

    fn chdir(&mut self, dir: &Path) -> Result<(), Errno> {
        nix::unistd::chdir(dir)
    }

    fn sethostname(&mut self, name: &str) -> Result<(), Errno> {
        nix::unistd::sethostname(name)
    }

    fn resolve(&mut self, root: &Path, inside: &Path) -> Result<Resolved, Errno> {
        let fd = open_in_root(root, inside)?;
        Ok(Resolved {
            path: fd_path(&fd),
            _fd: Some(fd),
        })
    }

    fn mkdir_in(&mut self, root: &Path, inside: &Path, mode: u32) -> Result<(), Errno> {
        let (dir, name) = parent_in_root(root, inside)?;
        // SAFETY: the name outlives the call.
        if unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) } == 0 {
            return Ok(());
        }
        match Errno::last() {
            Errno::EEXIST if kind_at(&dir, &name)? == libc::S_IFDIR => Ok(()),
            e => Err(e),
        }
    }

    fn touch_in(&mut self, root: &Path, inside: &Path) -> Result<(), Errno> {
        let (dir, name) = parent_in_root(root, inside)?;
        match kind_at(&dir, &name) {
            Ok(libc::S_IFLNK) => return Err(Errno::ELOOP),
            Ok(_) => return Ok(()),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(e),
        }
        // SAFETY: the name outlives the call; the fd is owned right away.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                name.as_ptr(),
                libc::O_RDONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o644 as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(Errno::last());
        }
        // SAFETY: openat returned a fresh descriptor.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
        Ok(())
    }

    fn symlink_in(&mut self, root: &Path, target: &Path, inside: &Path) -> Result<(), Errno> {
        let (dir, name) = parent_in_root(root, inside)?;
        let target = cstring(target)?;
        // SAFETY: both strings outlive the call.
        if unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) } < 0 {
            return Err(Errno::last());
        }
        Ok(())
    }

    fn open_checked(&mut self, path: &Path, id: (u64, u64)) -> Result<Resolved, Errno> {
        let fd = nix::fcntl::open(
            path,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_NOFOLLOW
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )?;
        // SAFETY: open returned a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let st = nix::sys::stat::fstat(fd.as_raw_fd())?;
        if (st.st_dev, st.st_ino) != id {
            return Err(Errno::ESTALE);
        }
        Ok(Resolved {
            path: fd_path(&fd),
            _fd: Some(fd),
        })
    }

    fn read_dir_in(&mut self, root: &Path, inside: &Path) -> Result<Vec<DirEntry>, Errno> {
        let fd = open_in_root(root, inside)?;
        let io = |e: std::io::Error| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
        // The O_PATH descriptor's magic link reopens exactly the checked dir.
        let dir = fd_path(&fd);
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir).map_err(io)? {
            let e = e.map_err(io)?;
            let t = e.file_type().map_err(io)?;
            let kind = if t.is_symlink() {
                EntryKind::Symlink(std::fs::read_link(e.path()).map_err(io)?)
            } else if t.is_dir() {
                EntryKind::Dir
            } else {
                EntryKind::Other
            };
            out.push(DirEntry {
                name: e.file_name(),
                kind,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn loopback_up(&mut self) -> Result<(), Errno> {
        // SAFETY: plain socket(2); the fd is owned right away.
        let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(Errno::last());
        }
        // SAFETY: raw is a fresh, valid descriptor nobody else owns.
        let sock = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: ifreq is plain old data; all-zero is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *d = *s as libc::c_char;
        }
        // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own.
        unsafe {
            if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
                return Err(Errno::last());
            }
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
                return Err(Errno::last());
            }
        }
        Ok(())
    }
}

/// A Syscalls double that records every call and succeeds, for unit tests.
/// Resolved paths are recorded as the logical path under the root.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct Recorder {
    /// One line per call, e.g. `mount /a -> /b - MS_BIND | MS_REC`.
    pub calls: Vec<String>,
    /// What `read_dir_in` lists, by path inside the root.
    pub dirs: std::collections::BTreeMap<PathBuf, Vec<DirEntry>>,
}

#[cfg(test)]
impl Syscalls for Recorder {
    fn mount(
        &mut self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<(), Errno> {
        let flags = format!("{flags:?}");
        let flags = flags
            .strip_prefix("MsFlags(")
            .and_then(|f| f.strip_suffix(')'))
            .unwrap_or(&flags);
        self.calls.push(format!(
            "mount {} -> {} {} {}{}",
            source.map_or("none".into(), |s| s.display().to_string()),
            target.display(),
            fstype.unwrap_or("-"),
            flags,
            data.map(|d| format!(" {d}")).unwrap_or_default()
        ));
        Ok(())
    }
    fn mount_setattr(
        &mut self,
        target: &Path,
        attr: MountAttr,
        recursive: bool,
    ) -> Result<(), Errno> {
        self.calls.push(format!(
            "setattr {} {attr:?}{}",
            target.display(),
            if recursive { " recursive" } else { "" }
        ));
        Ok(())
    }
    fn umount2(&mut self, target: &Path, _flags: MntFlags) -> Result<(), Errno> {
        self.calls.push(format!("umount {}", target.display()));
        Ok(())
    }
    fn pivot_root(&mut self, new_root: &Path, put_old: &Path) -> Result<(), Errno> {
        self.calls.push(format!(
            "pivot_root {} {}",
            new_root.display(),
            put_old.display()
        ));
        Ok(())
    }
    fn chdir(&mut self, dir: &Path) -> Result<(), Errno> {
        self.calls.push(format!("chdir {}", dir.display()));
        Ok(())
    }
    fn sethostname(&mut self, name: &str) -> Result<(), Errno> {
        self.calls.push(format!("sethostname {name}"));
        Ok(())
    }
    fn resolve(&mut self, root: &Path, inside: &Path) -> Result<Resolved, Errno> {
        Ok(Resolved {
            path: root.join(relative(inside)),
            _fd: None,
        })
    }
    fn mkdir_in(&mut self, root: &Path, inside: &Path, _mode: u32) -> Result<(), Errno> {
        self.calls
            .push(format!("mkdir {}", root.join(relative(inside)).display()));
        Ok(())
    }
    fn touch_in(&mut self, root: &Path, inside: &Path) -> Result<(), Errno> {
        self.calls
            .push(format!("touch {}", root.join(relative(inside)).display()));
        Ok(())
    }
    fn symlink_in(&mut self, root: &Path, target: &Path, inside: &Path) -> Result<(), Errno> {
        self.calls.push(format!(
            "symlink {} {}",
            target.display(),
            root.join(relative(inside)).display()
        ));
        Ok(())
    }
    fn open_checked(&mut self, path: &Path, id: (u64, u64)) -> Result<Resolved, Errno> {
        self.calls
            .push(format!("open {} {}:{}", path.display(), id.0, id.1));
        Ok(Resolved {
            path: path.to_owned(),
            _fd: None,
        })
    }
    fn read_dir_in(&mut self, root: &Path, inside: &Path) -> Result<Vec<DirEntry>, Errno> {
        self.calls
            .push(format!("readdir {}", root.join(relative(inside)).display()));
        self.dirs.get(inside).cloned().ok_or(Errno::ENOENT)
    }
    fn loopback_up(&mut self) -> Result<(), Errno> {
        self.calls.push("loopback_up".into());
        Ok(())
    }
}
