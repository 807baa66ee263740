//! The caller's home and current directory in the container, by
//! Apptainer's rules (see [`EngineConfig::home_mount`] for the home).
//!
//! Both are paths the caller controls while vessel may run as root, so
//! they are opened here, by the runtime as the caller and before any
//! namespace exists (what the caller can open, and nothing else; the
//! kernel's protected_symlinks rules apply to that walk). The open
//! descriptor gives the directory's real path and its (dev, ino); the
//! container process reopens that path without following a symlink at its
//! end and binds it only if it is still the same inode (the `--overlay`
//! dirs use the same mechanism, [`Syscalls::open_checked`]), so a path
//! swapped in between cannot redirect the bind.
//!
//! [`Syscalls::open_checked`]: super::sys::Syscalls::open_checked

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;

use super::config::{BindOrigin, EngineConfig, HomeMount};
use super::plan::{MountPoint, PlanInput, Step, Workdir};
use super::EngineError;

/// Current directories never bound (Apptainer's list): the container's own
/// system dirs are used instead when the image has them.
pub const SYSTEM_DIRS: [&str; 10] = [
    "/", "/etc", "/bin", "/mnt", "/usr", "/var", "/opt", "/sbin", "/lib", "/lib64",
];

/// Kernel filesystems: a current directory at or below one is not bound.
pub const VIRTUAL_DIRS: [&str; 3] = ["/proc", "/sys", "/dev"];

/// Whether a (resolved) current directory is a system dir that is not bound.
pub fn is_system_dir(p: &Path) -> bool {
    SYSTEM_DIRS.iter().any(|d| p == Path::new(d)) || VIRTUAL_DIRS.iter().any(|d| p.starts_with(d))
}

/// A host directory opened by the caller: its resolved path and identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDir {
    /// Its path with every symlink resolved.
    pub path: PathBuf,
    /// Its (dev, ino), required again when it is bound.
    pub id: (u64, u64),
}

impl HostDir {
    /// Opens `path` as the calling process would (following symlinks).
    pub fn open(path: &Path) -> Result<Self, Errno> {
        let fd = nix::fcntl::open(
            path,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )?;
        // SAFETY: open returned a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let st = nix::sys::stat::fstat(fd.as_raw_fd())?;
        let path = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
        // A removed dir reads back as "PATH (deleted)": nothing to bind.
        if !path.is_absolute()
            || nix::sys::stat::stat(&path).map(|s| (s.st_dev, s.st_ino))
                != Ok((st.st_dev, st.st_ino))
        {
            return Err(Errno::ENOENT);
        }
        Ok(Self {
            path,
            id: (st.st_dev, st.st_ino),
        })
    }

    /// The caller's current directory (the inode it is in, not a path).
    pub fn cwd() -> Result<Self, Errno> {
        Self::open(Path::new("."))
    }
}

/// The host dirs the engine binds for the caller, opened before launch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pinned {
    /// The home mount's source (a [`HomeMount::Bind`]).
    pub home: Option<HostDir>,
    /// The current directory, unless contained or `--no-mount cwd`.
    pub cwd: Option<HostDir>,
}

/// Opens the home source and the current directory the config asks to
/// bind. A missing `--home` source is an error; the caller's own home or
/// current directory that cannot be opened is skipped (logged), as
/// Apptainer does.
pub fn pin(cfg: &EngineConfig) -> Result<Pinned, EngineError> {
    let mut p = Pinned::default();
    if let Some(HomeMount::Bind { src, .. }) = cfg.home_mount() {
        match HostDir::open(&src) {
            Ok(d) => p.home = Some(d),
            Err(e) if cfg.home_source.is_some() => {
                return Err(EngineError::BindSource {
                    src,
                    origin: BindOrigin::Home,
                    reason: e.desc().to_lowercase(),
                })
            }
            Err(e) => tracing::info!(
                "not mounting the home directory {}: {}",
                src.display(),
                e.desc().to_lowercase()
            ),
        }
    }
    if cfg.contain {
        tracing::info!("not binding the current directory: --contain");
    } else if !cfg.mount_cwd {
        tracing::info!("not binding the current directory: --no-mount cwd");
    } else {
        match HostDir::cwd() {
            Ok(d) => p.cwd = Some(d),
            Err(e) => tracing::info!(
                "not binding the current directory: {}",
                e.desc().to_lowercase()
            ),
        }
    }
    Ok(p)
}

/// The engine's mounts for the caller, as steps.
#[derive(Debug, Default)]
pub struct Planned {
    /// Mount points the image lacks, made before any mount.
    pub wants: Vec<MountPoint>,
    /// The home mount (after /tmp).
    pub home: Vec<Step>,
    /// The current directory bind (after the user's binds).
    pub cwd: Vec<Step>,
    /// Where the command starts: the first candidate that exists.
    pub chdir: Vec<Workdir>,
}

/// Plans the home mount, the cwd bind and the working directory.
/// `exists` answers for paths in the image.
pub fn plan(
    cfg: &EngineConfig,
    input: &PlanInput,
    exists: &dyn Fn(&Path) -> bool,
) -> Result<Planned, EngineError> {
    let mut out = Planned::default();
    let tmp = Path::new("/tmp");
    let tmp_image = exists(tmp);
    // Not contained, the host /tmp is bound: what is below it is there.
    let via_tmp = |p: &Path| !cfg.contain && tmp_image && p.starts_with(tmp);
    // Contained, /tmp is a fresh tmpfs: mount points below it go there.
    let in_tmpfs = |p: &Path| cfg.contain && tmp_image && p.starts_with(tmp);
    let mount_point = |out: &mut Planned, dst: &Path| {
        let mp = MountPoint {
            dst: dst.to_owned(),
            dir: true,
            origin: BindOrigin::Home,
        };
        if in_tmpfs(dst) {
            out.home.push(Step::MountPoint(mp));
        } else if !exists(dst) {
            out.wants.push(mp);
        }
    };
    let mut home_bound: Option<PathBuf> = None;
    match cfg.home_mount() {
        Some(HomeMount::Bind { src, dst }) => match &input.pinned.home {
            Some(d) if d.path == dst && via_tmp(&dst) => {
                tracing::debug!("home {} is there through the /tmp bind", dst.display());
                home_bound = Some(dst);
            }
            // The container's /tmp is the host's, where others can plant
            // symlinks: a mount point there would be theirs to redirect.
            Some(_) if via_tmp(&dst) => {
                let reason = "it is below the host's /tmp, bound at /tmp; --contain or \
                              another destination avoids that";
                if cfg.home_source.is_some() {
                    return Err(EngineError::BindDestination {
                        dst,
                        origin: BindOrigin::Home,
                        reason: reason.into(),
                    });
                }
                tracing::warn!(
                    "not mounting the home directory at {}: {reason}",
                    dst.display()
                );
            }
            Some(d) => {
                mount_point(&mut out, &dst);
                out.home.push(Step::BindHost {
                    src: d.clone(),
                    dst: dst.clone(),
                    origin: BindOrigin::Home,
                });
                if d.path == dst {
                    home_bound = Some(dst);
                }
            }
            None => tracing::debug!("home {} has no host directory to mount", src.display()),
        },
        Some(HomeMount::Tmpfs(dst)) => {
            mount_point(&mut out, &dst);
            out.home.push(Step::Mount {
                fstype: "tmpfs".into(),
                dst,
                flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                data: Some("mode=700".into()),
            });
        }
        None => {}
    }
    if let Some(d) = input
        .pinned
        .cwd
        .as_ref()
        .filter(|_| !cfg.contain && cfg.mount_cwd)
    {
        let cwd = &d.path;
        // Already there through another bind of the same host path.
        let covered = home_bound.as_deref().is_some_and(|h| cwd.starts_with(h))
            || cfg
                .binds
                .iter()
                .any(|b| b.src == b.dst && cwd.starts_with(&b.dst));
        if is_system_dir(cwd) {
            tracing::info!(
                "not binding the current directory {}: a system directory",
                cwd.display()
            );
        } else if via_tmp(cwd) || covered {
            tracing::debug!(
                "the current directory {} is there through a bind",
                cwd.display()
            );
        } else {
            if !exists(cwd) {
                out.wants.push(MountPoint {
                    dst: cwd.clone(),
                    dir: true,
                    origin: BindOrigin::Cwd,
                });
            }
            out.cwd.push(Step::BindHost {
                src: d.clone(),
                dst: cwd.clone(),
                origin: BindOrigin::Cwd,
            });
        }
    }
    let wd = |p: PathBuf, why: &str| Workdir {
        path: p,
        why: why.to_owned(),
    };
    if let Some(c) = &cfg.cwd {
        out.chdir.push(wd(c.clone(), "--pwd"));
        return Ok(out);
    }
    if let Some(c) = &input.host_cwd {
        out.chdir.push(wd(c.clone(), "the current directory"));
    }
    if let Some(h) = super::env::container_home(cfg) {
        out.chdir.push(wd(h.into(), "the home directory"));
    }
    out.chdir.push(wd("/".into(), "the root"));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_dirs_follow_apptainer_by_whole_components() {
        for p in [
            "/", "/usr", "/etc", "/lib64", "/proc", "/proc/1", "/sys/fs", "/dev/shm",
        ] {
            assert!(is_system_dir(Path::new(p)), "{p}");
        }
        for p in [
            "/usr/src", "/home/a", "/devel", "/tmp", "/var/tmp", "/opt/x",
        ] {
            assert!(!is_system_dir(Path::new(p)), "{p}");
        }
    }

    #[test]
    fn a_host_dir_is_its_resolved_path_and_inode() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, d.path().join("link")).unwrap();
        let h = HostDir::open(&d.path().join("link")).unwrap();
        assert_eq!(h.path, real.canonicalize().unwrap());
        let st = nix::sys::stat::stat(&real).unwrap();
        assert_eq!(h.id, (st.st_dev, st.st_ino));
        assert_eq!(HostDir::open(&d.path().join("missing")), Err(Errno::ENOENT));
    }
}
