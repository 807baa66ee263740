//! The builtin FUSE driver: the squashfs partition served by `squashfuse_ll`
//! (or `squashfuse`) at its offset in the SIF, as Apptainer does, so an
//! unprivileged run needs no extraction.
//!
//! The container process, in its new user and mount namespaces, opens
//! `/dev/fuse` and mounts a FUSE filesystem on its root with `fd=N` (through
//! [`Syscalls`], like every other mount), then starts the daemon with the
//! mount point `/dev/fd/N`, which libfuse 3 takes as "already mounted, serve
//! this descriptor". The daemon detaches once it serves; it lives in the
//! container's mount namespace, so the engine's end-of-run sweep of that
//! namespace (or the PID namespace's end) stops it, and with it the mount.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::mount::MsFlags;

use super::driver::{Features, ImageDriver, MountRequest};
use super::ImageError;
use crate::engine::sys::{RealSyscalls, Syscalls};

/// Name of the builtin FUSE driver.
pub const FUSE: &str = "fuse";
/// The FUSE device.
const DEV_FUSE: &str = "/dev/fuse";
/// The daemons, best first.
const DAEMONS: [&str; 2] = ["squashfuse_ll", "squashfuse"];

/// The FUSE driver; `start` finds the daemon.
#[derive(Debug, Default)]
pub struct Fuse {
    daemon: Option<PathBuf>,
}

/// The first squashfuse daemon on `PATH`.
fn find_daemon() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    DAEMONS.iter().find_map(|name| {
        std::env::split_paths(&path)
            .filter(|d| d.is_absolute())
            .map(|d| d.join(name))
            .find(|p| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::metadata(p)
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
    })
}

/// Why the caller cannot use FUSE, or `None` when they can (a daemon is on
/// `PATH` and `/dev/fuse` opens read-write).
pub fn unavailable() -> Option<String> {
    if find_daemon().is_none() {
        return Some("neither squashfuse_ll nor squashfuse is in PATH".into());
    }
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(DEV_FUSE)
    {
        Ok(_) => None,
        Err(e) => Some(format!("{DEV_FUSE}: {}", super::io_reason(&e))),
    }
}

impl Fuse {
    fn fail(reason: String) -> ImageError {
        ImageError::Driver {
            driver: FUSE.into(),
            reason,
        }
    }
}

impl ImageDriver for Fuse {
    fn name(&self) -> &str {
        FUSE
    }
    fn features(&self) -> Features {
        Features {
            squashfs: true,
            privileged: true,
            unprivileged: true,
        }
    }
    fn start(&mut self, req: &MountRequest) -> Result<(), ImageError> {
        if let Some(why) = unavailable() {
            return Err(Self::fail(why));
        }
        let daemon = find_daemon().ok_or_else(|| Self::fail("no squashfuse daemon".into()))?;
        tracing::info!(
            "image {}: fuse mount with {} at offset {} (no extraction)",
            req.image.display(),
            daemon.display(),
            req.offset
        );
        self.daemon = Some(daemon);
        Ok(())
    }
    fn mount(&mut self, req: &MountRequest, target: &Path) -> Result<(), ImageError> {
        self.mount_with(req, target, &mut RealSyscalls)
    }
    fn mount_with(
        &mut self,
        req: &MountRequest,
        target: &Path,
        sys: &mut dyn Syscalls,
    ) -> Result<(), ImageError> {
        let daemon = self
            .daemon
            .clone()
            .ok_or_else(|| Self::fail("not started".into()))?;
        let raw = nix::fcntl::open(
            DEV_FUSE,
            nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| Self::fail(format!("opening {DEV_FUSE}: {}", e.desc().to_lowercase())))?;
        // SAFETY: open returned a fresh descriptor that nothing else owns.
        let dev = unsafe { OwnedFd::from_raw_fd(raw) };
        let fd = dev.as_raw_fd();
        // Ids as this namespace sees them; allow_other lets every user of
        // the container's user namespace (fakeroot's root, setuid-free
        // programs) read it, and only them: the kernel refuses callers from
        // other user namespaces.
        let data = format!(
            "fd={fd},rootmode=40000,user_id={},group_id={},allow_other",
            nix::unistd::getuid(),
            nix::unistd::getgid()
        );
        sys.mount(
            Some(Path::new("squashfuse")),
            target,
            Some("fuse.squashfuse"),
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(&data),
        )
        .map_err(|e| Self::fail(format!("mounting fuse: {}", e.desc().to_lowercase())))?;
        // The daemon inherits the device as fd N (CLOEXEC cleared for it).
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .map_err(|e| Self::fail(format!("passing {DEV_FUSE}: {}", e.desc().to_lowercase())))?;
        let out = Command::new(&daemon)
            .arg("-o")
            .arg(format!("offset={}", req.offset))
            .arg(&req.image)
            .arg(format!("/dev/fd/{fd}"))
            .stdin(Stdio::null())
            .output();
        // Only the daemon keeps the device: if it dies the mount fails
        // with ENOTCONN instead of hanging.
        drop(dev);
        let out = out.map_err(|e| {
            Self::fail(format!(
                "running {}: {}",
                daemon.display(),
                super::io_reason(&e)
            ))
        })?;
        if !out.status.success() {
            return Err(Self::fail(format!(
                "{} failed: {}",
                daemon.display(),
                super::last_stderr_line(&out.stderr)
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unstarted_driver_refuses_to_mount() {
        let mut d = Fuse::default();
        let req = MountRequest {
            image: "/img.sif".into(),
            offset: 4096,
            size: 1,
            unprivileged: true,
            workdir: "/w".into(),
        };
        let mut rec = crate::engine::sys::Recorder::default();
        let e = d
            .mount_with(&req, Path::new("/w/root"), &mut rec)
            .unwrap_err();
        assert_eq!(e.to_string(), "image driver \"fuse\": not started");
        assert!(rec.calls.is_empty());
    }
}
