//! The system calls the container setup makes, behind a trait so the setup
//! plan can be checked with a recording double; the real implementation is
//! exercised end to end.

use std::path::Path;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};

/// The calls the mount/namespace setup needs, one method per kernel action.
pub trait Syscalls {
    /// mount(2).
    fn mount(
        &mut self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<(), Errno>;
    /// umount2(2).
    fn umount2(&mut self, target: &Path, flags: MntFlags) -> Result<(), Errno>;
    /// pivot_root(2).
    fn pivot_root(&mut self, new_root: &Path, put_old: &Path) -> Result<(), Errno>;
    /// chdir(2).
    fn chdir(&mut self, dir: &Path) -> Result<(), Errno>;
    /// sethostname(2).
    fn sethostname(&mut self, name: &str) -> Result<(), Errno>;
    /// mkdir(2), existing directories are fine.
    fn mkdir(&mut self, dir: &Path, mode: u32) -> Result<(), Errno>;
    /// Creates an empty regular file to bind a file onto (existing is fine).
    fn touch(&mut self, file: &Path) -> Result<(), Errno>;
    /// symlink(2).
    fn symlink(&mut self, target: &Path, link: &Path) -> Result<(), Errno>;
    /// The mount flags of the filesystem holding `path` that a remount in a
    /// user namespace must keep (nosuid, nodev, noexec, atime flags).
    fn locked_flags(&mut self, path: &Path) -> Result<MsFlags, Errno>;
    /// Brings the loopback interface of the current network namespace up.
    fn loopback_up(&mut self) -> Result<(), Errno>;
}

/// The real system calls.
#[derive(Debug, Default)]
pub struct RealSyscalls;

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

    fn mkdir(&mut self, dir: &Path, mode: u32) -> Result<(), Errno> {
        match nix::unistd::mkdir(dir, nix::sys::stat::Mode::from_bits_truncate(mode)) {
            Err(Errno::EEXIST) if dir.is_dir() => Ok(()),
            r => r,
        }
    }

    fn touch(&mut self, file: &Path) -> Result<(), Errno> {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(file)
            .map(drop)
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
    }

    fn symlink(&mut self, target: &Path, link: &Path) -> Result<(), Errno> {
        nix::unistd::symlinkat(target, None, link)
    }

    fn locked_flags(&mut self, path: &Path) -> Result<MsFlags, Errno> {
        use nix::sys::statvfs::FsFlags;
        let f = nix::sys::statvfs::statvfs(path)?.flags();
        let mut m = MsFlags::empty();
        for (s, ms) in [
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if f.contains(s) {
                m |= ms;
            }
        }
        Ok(m)
    }

    fn loopback_up(&mut self) -> Result<(), Errno> {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
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
#[cfg(test)]
#[derive(Debug)]
pub struct Recorder {
    /// One line per call, e.g. `mount /a -> /b bind,rec`.
    pub calls: Vec<String>,
    /// Flags `locked_flags` reports.
    pub locked: MsFlags,
}

#[cfg(test)]
impl Default for Recorder {
    fn default() -> Self {
        Self {
            calls: Vec::new(),
            locked: MsFlags::empty(),
        }
    }
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
        self.calls.push(format!(
            "mount {} -> {} {} {:?}{}",
            source.map_or("none".into(), |s| s.display().to_string()),
            target.display(),
            fstype.unwrap_or("-"),
            flags,
            data.map(|d| format!(" {d}")).unwrap_or_default()
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
    fn mkdir(&mut self, dir: &Path, _mode: u32) -> Result<(), Errno> {
        self.calls.push(format!("mkdir {}", dir.display()));
        Ok(())
    }
    fn touch(&mut self, file: &Path) -> Result<(), Errno> {
        self.calls.push(format!("touch {}", file.display()));
        Ok(())
    }
    fn symlink(&mut self, target: &Path, link: &Path) -> Result<(), Errno> {
        self.calls
            .push(format!("symlink {} {}", target.display(), link.display()));
        Ok(())
    }
    fn locked_flags(&mut self, _path: &Path) -> Result<MsFlags, Errno> {
        Ok(self.locked)
    }
    fn loopback_up(&mut self) -> Result<(), Errno> {
        self.calls.push("loopback_up".into());
        Ok(())
    }
}
