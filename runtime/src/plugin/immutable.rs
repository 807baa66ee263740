//! Installed libraries the kernel keeps unchanged: the immutable inode flag
//! (`FS_IMMUTABLE_FL`, what `chattr +i` sets).
//!
//! While the flag is set, nobody — root included — can write, truncate,
//! rename, link or unlink the file; root must first clear the flag (which
//! needs CAP_LINUX_IMMUTABLE and changes the file's ctime, so its
//! [`super::stamp::LibraryStamp`] no longer matches). So a library the
//! install flagged, whose stamp still equals the install's, holds the bytes
//! the install verified and keeps holding them while it is mapped: the
//! loader can dlopen the installed file itself instead of copying it into a
//! sealed memfd first (the copy was most of a load's cost).
//!
//! File systems without the flag (NFS, FUSE, older tmpfs) and installs not
//! run by root leave it unset, and those libraries keep the memfd copy.
//! Removing a store's files dir clears the flag first ([`clear_tree`]); an
//! admin removing a store by hand runs `chattr -R -i` on it first.

use std::fs::File;
use std::io;
use std::path::Path;

use rustix::fs::IFlags;

/// Whether the open file has the immutable flag (false where the file
/// system cannot say).
pub fn is_immutable(f: &File) -> bool {
    rustix::fs::ioctl_getflags(f).is_ok_and(|fl| fl.contains(IFlags::IMMUTABLE))
}

/// Sets the immutable flag on the open file. `Ok(false)` when the file
/// system has no such flag or this process may not set it (not root):
/// the file then simply stays as it is.
pub fn set_immutable(f: &File) -> io::Result<bool> {
    let flags = match rustix::fs::ioctl_getflags(f) {
        Ok(fl) => fl,
        Err(e) if unsupported(e) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    if flags.contains(IFlags::IMMUTABLE) {
        return Ok(true);
    }
    match rustix::fs::ioctl_setflags(f, flags | IFlags::IMMUTABLE) {
        Ok(()) => Ok(true),
        Err(e) if unsupported(e) || e == rustix::io::Errno::PERM => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Errors that mean "no such flag here", not "something broke".
fn unsupported(e: rustix::io::Errno) -> bool {
    use rustix::io::Errno;
    [Errno::NOTTY, Errno::OPNOTSUPP, Errno::INVAL, Errno::NOSYS].contains(&e)
}

/// Clears the immutable flag of every regular file under `dir` (never
/// following a symlink), so the tree can be removed. Files that cannot be
/// opened or have no flag are left to the removal to report.
pub fn clear_tree(dir: &Path) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for e in entries.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            clear_tree(&e.path())?;
        } else if ft.is_file() {
            clear(&e.path())?;
        }
    }
    Ok(())
}

/// Clears the immutable flag of the regular file at `path` if it has it.
fn clear(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    else {
        return Ok(());
    };
    if !f.metadata().is_ok_and(|m| m.file_type().is_file()) {
        return Ok(());
    }
    let Ok(flags) = rustix::fs::ioctl_getflags(&f) else {
        return Ok(());
    };
    if flags.contains(IFlags::IMMUTABLE) {
        rustix::fs::ioctl_setflags(&f, flags - IFlags::IMMUTABLE)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Root only: setting the flag needs CAP_LINUX_IMMUTABLE.
    #[test]
    #[ignore = "needs root"]
    fn a_flagged_file_refuses_writes_and_clear_tree_lets_it_go() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("files");
        std::fs::create_dir(&sub).unwrap();
        let p = sub.join("plugin.so");
        std::fs::write(&p, b"bytes").unwrap();
        let f = File::open(&p).unwrap();
        if !set_immutable(&f).unwrap() {
            eprintln!("skipped: {} has no immutable flag", d.path().display());
            return;
        }
        assert!(is_immutable(&f));
        let w = std::fs::OpenOptions::new().write(true).open(&p);
        assert_eq!(w.unwrap_err().raw_os_error(), Some(libc::EPERM));
        assert!(std::fs::remove_dir_all(&sub).is_err());
        clear_tree(d.path()).unwrap();
        assert!(!is_immutable(&f));
        std::fs::remove_dir_all(&sub).unwrap();
    }

    #[test]
    fn clear_tree_of_a_missing_dir_is_fine() {
        let d = tempfile::tempdir().unwrap();
        clear_tree(&d.path().join("gone")).unwrap();
    }
}
