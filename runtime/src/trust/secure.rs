//! Files that decide what root trusts (`vessel.toml`, the trust store, the
//! plugin store) are checked the way sudo checks sudoers: as root, each
//! must be owned by root and not group- or world-writable, and so must
//! every directory above it — otherwise another user could edit or replace
//! it. A root-owned sticky directory (like `/tmp`) is accepted as an
//! ancestor: nobody else can rename or remove a root-owned entry in it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A trust file (or a directory above it) another user could change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refusing {path}: owned by uid {uid}, mode {mode:04o}: {reason}")]
pub struct InsecurePath {
    /// The file or directory.
    pub path: PathBuf,
    /// Its owner.
    pub uid: u32,
    /// Its permission bits.
    pub mode: u32,
    /// Why it is refused.
    pub reason: &'static str,
}

/// True when the checks apply: the effective user is root.
pub fn enforced() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// As root, fails unless `path` (if it exists) and every directory above
/// it (from the deepest that exists up to `/`) is owned by root and not
/// group- or world-writable. The path is resolved first, so the checked
/// chain is the one the kernel follows. Not root: nothing is checked.
pub fn check_root_owned(path: &Path) -> Result<(), InsecurePath> {
    if !enforced() {
        return Ok(());
    }
    check_chain(path, 0)
}

/// As root, [`check_root_owned`]'s rule for one file opened (without
/// following a symlink) in a directory whose chain was already checked:
/// only the file's own owner and mode, from its open descriptor's `md`, are
/// left to check. Saves walking the same chain again for every file of a
/// directory (the plugin store's metas).
pub fn check_opened_in_checked_dir(
    path: &Path,
    md: &std::fs::Metadata,
) -> Result<(), InsecurePath> {
    if !enforced() {
        return Ok(());
    }
    let mode = md.permissions().mode() & 0o7777;
    let bad = |reason| InsecurePath {
        path: path.to_owned(),
        uid: md.uid(),
        mode,
        reason,
    };
    if md.uid() != 0 {
        return Err(bad("it must be owned by root"));
    }
    if mode & 0o022 != 0 {
        return Err(bad("it must not be group- or world-writable"));
    }
    Ok(())
}

/// [`check_root_owned`] for any caller (tests pass the owner they expect).
fn check_chain(path: &Path, owner: u32) -> Result<(), InsecurePath> {
    // The deepest existing ancestor: a missing file can only be created by
    // whoever can write the dir it would be in.
    let mut existing = path.to_path_buf();
    while std::fs::symlink_metadata(&existing).is_err() {
        match existing.parent() {
            Some(p) if !p.as_os_str().is_empty() => existing = p.to_path_buf(),
            _ => return Ok(()),
        }
    }
    let Ok(real) = std::fs::canonicalize(&existing) else {
        return Ok(());
    };
    for (i, p) in real.ancestors().enumerate() {
        let Ok(md) = std::fs::metadata(p) else {
            continue;
        };
        let mode = md.permissions().mode() & 0o7777;
        let bad = |reason| InsecurePath {
            path: p.to_owned(),
            uid: md.uid(),
            mode,
            reason,
        };
        if md.uid() != owner {
            return Err(bad("it must be owned by root"));
        }
        let writable = mode & 0o022 != 0;
        let sticky_parent = i > 0 && md.is_dir() && mode & 0o1000 != 0;
        if writable && !sticky_parent {
            return Err(bad("it must not be group- or world-writable"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn writable_files_and_dirs_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let me = std::fs::metadata(d.path()).unwrap().uid();
        let set =
            |p: &Path, m| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        set(d.path(), 0o755);
        let f = d.path().join("vessel.toml");
        std::fs::write(&f, "").unwrap();
        set(&f, 0o644);
        // The temp dir's ancestors belong to root, not necessarily to us:
        // only check what we own by asking for our uid on a chain we own.
        let only_ours = |p: &Path| {
            check_chain(p, me)
                .map_err(|e| e.path.clone())
                .err()
                .filter(|bad| bad.starts_with(d.path()))
        };
        assert_eq!(only_ours(&f), None);
        set(&f, 0o666);
        assert_eq!(only_ours(&f), Some(f.clone()));
        set(&f, 0o644);
        set(d.path(), 0o777);
        assert_eq!(only_ours(&f), Some(d.path().to_owned()));
        set(d.path(), 0o1777);
        assert_eq!(only_ours(&f), None, "a sticky parent is fine");
        set(d.path(), 0o755);
        // A missing file is checked through the dir it would be in.
        assert_eq!(only_ours(&d.path().join("missing/x")), None);
        let e = InsecurePath {
            path: f.clone(),
            uid: 65534,
            mode: 0o644,
            reason: "it must be owned by root",
        }
        .to_string();
        assert!(e.contains("uid 65534, mode 0644"), "{e}");
    }
}
