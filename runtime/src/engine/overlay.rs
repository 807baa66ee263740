//! `--overlay DIR`: a persistent writable layer in a directory the caller
//! owns. `DIR/upper` holds the container's changes (kept across runs),
//! `DIR/work` is the overlay's scratch dir.
//!
//! DIR is opened and checked here, before any namespace exists. Overlayfs
//! only takes dirs of the mounter's own mount namespace, so the container
//! process opens them again there (no symlink followed at the last
//! component), requires the very inodes checked here, and mounts through
//! those descriptors (`/proc/self/fd/N`): a dir swapped in later cannot
//! redirect the mount, and paths with `,` or `:` cannot confuse the
//! overlay options.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use super::plan::Layer;
use super::EngineError;

/// The checked upper and work dirs of an `--overlay` dir, held open.
#[derive(Debug)]
pub struct OverlayDirs {
    dir: PathBuf,
    upper: OwnedFd,
    work: OwnedFd,
}

fn open_at(dir: libc::c_int, name: &Path) -> Result<OwnedFd, Errno> {
    let c = std::ffi::CString::new(name.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: the name outlives the call; the fd is owned right away.
    let fd = unsafe {
        libc::openat(
            dir,
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: openat returned a fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The dir at `fd` must belong to the caller and not be writable by others.
fn check_owner(fd: &OwnedFd) -> Result<(), String> {
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(|e| e.desc().to_lowercase())?;
    let me = nix::unistd::geteuid().as_raw();
    if st.st_uid != me {
        return Err(format!(
            "owned by uid {}, not by the caller (uid {me})",
            st.st_uid
        ));
    }
    if st.st_mode & 0o022 != 0 {
        return Err(format!(
            "writable by others (mode {:o})",
            st.st_mode & 0o7777
        ));
    }
    Ok(())
}

impl OverlayDirs {
    /// Opens `dir` (not a symlink, owned by the caller, not group/world
    /// writable) and its `upper` and `work` dirs, made when missing.
    pub fn open(dir: &Path) -> Result<Self, EngineError> {
        let bad = |reason: String| EngineError::BadOverlay {
            dir: dir.to_owned(),
            reason,
        };
        let top = open_at(libc::AT_FDCWD, dir).map_err(|e| match e {
            Errno::ELOOP | Errno::ENOTDIR => bad("not a directory".into()),
            e => bad(e.desc().to_lowercase()),
        })?;
        check_owner(&top).map_err(bad)?;
        let sub = |name: &str, mode: u32| -> Result<OwnedFd, EngineError> {
            let c = std::ffi::CString::new(name).map_err(|_| bad("bad name".into()))?;
            // SAFETY: the name outlives the call.
            let r = unsafe { libc::mkdirat(top.as_raw_fd(), c.as_ptr(), mode) };
            if r < 0 && Errno::last() != Errno::EEXIST {
                return Err(bad(format!(
                    "creating {name}: {}",
                    Errno::last().desc().to_lowercase()
                )));
            }
            let fd = open_at(top.as_raw_fd(), Path::new(name))
                .map_err(|e| bad(format!("{name}: {}", e.desc().to_lowercase())))?;
            check_owner(&fd).map_err(|r| bad(format!("{name}: {r}")))?;
            Ok(fd)
        };
        // The upper dir's mode is the container root's; work stays private.
        let upper = sub("upper", 0o755)?;
        let work = sub("work", 0o700)?;
        Ok(Self {
            dir: dir.to_owned(),
            upper,
            work,
        })
    }

    /// The layer to plan with: the dirs' paths and identities.
    pub fn layer(&self) -> Result<Layer, EngineError> {
        let id = |fd: &OwnedFd| {
            nix::sys::stat::fstat(fd.as_raw_fd())
                .map(|st| (st.st_dev, st.st_ino))
                .map_err(|e| EngineError::BadOverlay {
                    dir: self.dir.clone(),
                    reason: e.desc().to_lowercase(),
                })
        };
        Ok(Layer::Dirs {
            upper: self.dir.join("upper"),
            upper_id: id(&self.upper)?,
            work: self.dir.join("work"),
            work_id: id(&self.work)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn makes_upper_and_work_and_refuses_symlinks_and_shared_dirs() {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let o = OverlayDirs::open(d.path()).unwrap();
        assert!(d.path().join("upper").is_dir() && d.path().join("work").is_dir());
        assert!(
            matches!(o.layer().unwrap(), Layer::Dirs { upper, .. } if upper == d.path().join("upper"))
        );
        let link = d.path().join("link");
        std::os::unix::fs::symlink(d.path(), &link).unwrap();
        let e = OverlayDirs::open(&link).unwrap_err().to_string();
        assert!(e.contains("not a directory"), "{e}");
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = OverlayDirs::open(d.path()).unwrap_err().to_string();
        assert!(e.contains("writable by others"), "{e}");
    }
}
