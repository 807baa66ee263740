//! A plugin's config and state dirs (plugin-api 1.2 host services).
//!
//! - config: `$VESSEL_ROOT/etc/vessel/plugins/NAME/`, the admin's: root
//!   makes it (0755) at install, the Install callback may put defaults in
//!   it, upgrades and uninstalls never touch it, `uninstall --purge`
//!   removes it.
//! - state: where a plugin writes at run time, per user:
//!   `$VESSEL_ROOT/var/lib/vessel/plugins/NAME/` for root,
//!   `$XDG_STATE_HOME/vessel/plugins/NAME/` (default
//!   `~/.local/state/vessel/plugins/NAME/`) for anyone else. It is created
//!   on first use, mode 0700, one component at a time below its base
//!   without following a symlink, and a component someone else owns (or
//!   others can write) is refused: a dir planted by another user must not
//!   become the place a plugin writes to.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fstat, mkdirat, Mode};

use crate::paths::Paths;

/// Where a plugin's state dir is for the calling user: the base dir (the
/// root, or the user's state home; trusted as the user's own choice) and
/// the components below it, which are created and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateLocation {
    /// The existing dir the components hang off.
    pub base: PathBuf,
    /// The components below `base`, the plugin name's segments last.
    pub below: PathBuf,
    /// `base` is made when missing (`$XDG_STATE_HOME`: the user's own
    /// choice); a missing root or home is an error.
    pub create_base: bool,
}

impl StateLocation {
    /// The full path.
    pub fn path(&self) -> PathBuf {
        self.base.join(&self.below)
    }
}

/// The state dir location of plugin `name` for the effective user: root's
/// under `paths`, anyone else's under `$XDG_STATE_HOME` (when absolute) or
/// `$HOME/.local/state`.
pub fn state_location(paths: &Paths, name: &str) -> Result<StateLocation, String> {
    if nix::unistd::geteuid().is_root() {
        return Ok(StateLocation {
            base: paths.root().to_owned(),
            below: Path::new("var/lib/vessel/plugins").join(name),
            create_base: false,
        });
    }
    let xdg = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    if let Some(x) = xdg {
        return Ok(StateLocation {
            base: x,
            below: Path::new("vessel/plugins").join(name),
            create_base: true,
        });
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute() && p != Path::new("/"))
        .ok_or_else(|| {
            "neither XDG_STATE_HOME nor HOME names a directory for plugin state".to_string()
        })?;
    Ok(StateLocation {
        base: home,
        below: Path::new(".local/state/vessel/plugins").join(name),
        create_base: false,
    })
}

/// Creates (if needed) and checks the state dir at `loc`; returns its path.
/// The base must exist (a non-root user's `$XDG_STATE_HOME` that does not
/// exist yet is created like `mkdir -p`, mode 0700: it is theirs).
pub fn ensure_state_dir(loc: &StateLocation) -> Result<PathBuf, String> {
    let full = loc.path();
    let fail = |what: &Path, why: String| format!("state dir {}: {why}", what.display());
    if loc.create_base && !loc.base.exists() && !nix::unistd::geteuid().is_root() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&loc.base)
            .map_err(|e| fail(&loc.base, e.to_string().to_lowercase()))?;
    }
    let raw = openat(
        None,
        &loc.base,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| fail(&loc.base, e.desc().to_lowercase()))?;
    // SAFETY: a fresh fd we own.
    let mut dir = unsafe { OwnedFd::from_raw_fd(raw) };
    let me = nix::unistd::geteuid().as_raw();
    let mut at = loc.base.clone();
    for comp in loc.below.components() {
        let comp = comp.as_os_str();
        at.push(comp);
        let next = match open_dir_nofollow(&dir, comp) {
            Err(Errno::ENOENT) => {
                match mkdirat(Some(raw_of(&dir)), comp, Mode::from_bits_truncate(0o700)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(fail(&at, e.desc().to_lowercase())),
                }
                open_dir_nofollow(&dir, comp)
            }
            r => r,
        };
        let next = next.map_err(|e| match e {
            Errno::ELOOP | Errno::ENOTDIR => {
                fail(&at, "is a symlink or not a directory; refusing it".into())
            }
            e => fail(&at, e.desc().to_lowercase()),
        })?;
        let st = fstat(raw_of(&next)).map_err(|e| fail(&at, e.desc().to_lowercase()))?;
        if st.st_uid != me {
            return Err(fail(
                &at,
                format!("owned by uid {}, not by uid {me}; refusing it", st.st_uid),
            ));
        }
        if st.st_mode & 0o022 != 0 {
            return Err(fail(
                &at,
                "writable by group or others; refusing it".to_string(),
            ));
        }
        dir = next;
    }
    Ok(full)
}

fn raw_of(fd: &OwnedFd) -> std::os::fd::RawFd {
    use std::os::fd::AsRawFd;
    fd.as_raw_fd()
}

fn open_dir_nofollow(dir: &OwnedFd, name: &std::ffi::OsStr) -> Result<OwnedFd, Errno> {
    let raw = openat(
        Some(raw_of(dir)),
        name,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Makes the config dir of plugin `name` (root-owned, 0755, parents too)
/// if it is missing, at install; an existing one is left as it is: it is
/// the admin's.
pub fn ensure_config_dir(paths: &Paths, name: &str) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = paths.plugin_config_dir(name);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&dir)?;
    Ok(dir)
}

/// Removes the config dir of plugin `name` (`uninstall --purge`), and its
/// parents under `etc/vessel/plugins` that are left empty. Removing a
/// missing one is not an error.
pub fn purge_config_dir(paths: &Paths, name: &str) -> std::io::Result<bool> {
    let dir = paths.plugin_config_dir(name);
    // Never follow a symlink planted at the dir: remove the link itself.
    match std::fs::symlink_metadata(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
        Ok(m) if m.file_type().is_symlink() => std::fs::remove_file(&dir)?,
        Ok(_) => std::fs::remove_dir_all(&dir)?,
    }
    let top = paths.etc_dir().join("plugins");
    for parent in dir.ancestors().skip(1) {
        if parent == top || !parent.starts_with(&top) || std::fs::remove_dir(parent).is_err() {
            break;
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_dirs_are_made_private_and_planted_ones_refused() {
        let base = tempfile::tempdir().unwrap();
        let loc = StateLocation {
            base: base.path().to_owned(),
            below: Path::new("a/b/example.com/x").to_owned(),
            create_base: false,
        };
        let dir = ensure_state_dir(&loc).unwrap();
        assert_eq!(dir, base.path().join("a/b/example.com/x"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        // Again: the existing one is fine.
        ensure_state_dir(&loc).unwrap();

        // A symlink planted where a component goes is refused, not followed.
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), base.path().join("link")).unwrap();
        let e = ensure_state_dir(&StateLocation {
            base: base.path().to_owned(),
            below: "link/x".into(),
            create_base: false,
        })
        .unwrap_err();
        assert!(e.contains("is a symlink"), "{e}");
        assert!(std::fs::read_dir(elsewhere.path())
            .unwrap()
            .next()
            .is_none());

        // A dir others can write is refused.
        let open = base.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = ensure_state_dir(&StateLocation {
            base: base.path().to_owned(),
            below: "open/x".into(),
            create_base: false,
        })
        .unwrap_err();
        assert!(e.contains("writable by group or others"), "{e}");
    }

    #[test]
    fn purge_removes_the_config_dir_and_empty_parents() {
        let root = tempfile::tempdir().unwrap();
        let paths = Paths::new(root.path());
        let d = ensure_config_dir(&paths, "example.com/x").unwrap();
        std::fs::write(d.join("x.toml"), "a = 1").unwrap();
        ensure_config_dir(&paths, "example.com/y").unwrap();
        assert!(purge_config_dir(&paths, "example.com/x").unwrap());
        assert!(!d.exists());
        assert!(paths.etc_dir().join("plugins/example.com/y").is_dir());
        assert!(purge_config_dir(&paths, "example.com/y").unwrap());
        assert!(!paths.etc_dir().join("plugins/example.com").exists());
        assert!(!purge_config_dir(&paths, "example.com/y").unwrap());
    }
}
