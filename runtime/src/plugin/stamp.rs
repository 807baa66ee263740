//! The identity of an installed library file, recorded once its bytes were
//! verified at install, so that later loads need not hash them again.
//!
//! A [`LibraryStamp`] is what `fstat` says of the installed `plugin.so`
//! right after the install wrote it (and set its mode): device, inode, size,
//! and the modification and status-change times in nanoseconds. Any write
//! to the file changes its mtime and ctime; chmod, chown, link, rename and
//! `utimensat` (the only way to set the mtime back) change its ctime, which
//! nobody can set back. So while a descriptor's `fstat` still equals the
//! stamp, the file holds the bytes verified at install. The loader only
//! trusts a stamp of a file in a root-owned store (the meta that records
//! it is root's), and compares it before and after it copies the bytes into
//! its sealed memfd; any difference means today's full checks.
//!
//! The same kind of stamp of the vessel binary that ran the install says
//! which runtime checked the library's type layouts: the layouts a runtime
//! expects are compiled into it, so the same binary file (same stamp) with
//! the same library bytes gets the same answer, and a load by it need not
//! ask abi_stable again (abi_stable's `unchecked_layout` exists for such a
//! cache). Another binary (an upgrade) checks them as before.

use std::os::unix::fs::MetadataExt;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// `fstat` of a library file: the fields that change whenever its contents
/// (or its inode's metadata) change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibraryStamp {
    /// Device of the filesystem holding it.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Last status change, nanoseconds since the epoch.
    pub ctime_ns: i64,
}

impl LibraryStamp {
    /// The stamp of the file whose metadata is `md` (from `fstat` of an
    /// open descriptor, so it is the stamp of the file actually read).
    pub fn of(md: &std::fs::Metadata) -> Self {
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        Self {
            dev: md.dev(),
            ino: md.ino(),
            size: md.len(),
            mtime_ns: ns(md.mtime(), md.mtime_nsec()),
            ctime_ns: ns(md.ctime(), md.ctime_nsec()),
        }
    }
}

/// The stamp of the running vessel binary (`/proc/self/exe`, which names
/// the inode running even after it was replaced on disk); `None` when it
/// cannot be read. Its ctime is left out (0): every hard link to the binary
/// changes it (cargo links its outputs, perf links what it profiles into
/// its build-id cache), and a new build is a new inode or a new mtime; a
/// change that kept both would need whoever owns the runtime binary, who
/// controls everything it does anyway.
pub fn runtime() -> Option<LibraryStamp> {
    static RUNTIME: OnceLock<Option<LibraryStamp>> = OnceLock::new();
    *RUNTIME.get_or_init(|| {
        std::fs::metadata("/proc/self/exe")
            .ok()
            .map(|md| LibraryStamp {
                ctime_ns: 0,
                ..LibraryStamp::of(&md)
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    #[test]
    fn a_write_in_place_changes_the_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lib.so");
        std::fs::write(&p, b"verified bytes").unwrap();
        // File times tick at the kernel's timer resolution, so a write in
        // the same tick as the stamp could keep them: an mtime set well in
        // the past makes any later write change it, whatever the clock.
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1))
            .unwrap();
        drop(f);
        let before = LibraryStamp::of(&std::fs::metadata(&p).unwrap());
        assert_eq!(before, LibraryStamp::of(&std::fs::metadata(&p).unwrap()));
        // Same size, one byte changed.
        let mut f = std::fs::File::options().write(true).open(&p).unwrap();
        f.seek(SeekFrom::Start(3)).unwrap();
        f.write_all(b"X").unwrap();
        drop(f);
        let after = LibraryStamp::of(&std::fs::metadata(&p).unwrap());
        assert_eq!(
            (after.dev, after.ino, after.size),
            (before.dev, before.ino, before.size)
        );
        assert_ne!(after, before);
    }
}
