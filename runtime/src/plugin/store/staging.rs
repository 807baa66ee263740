//! The staging dir an install writes its files into before the store
//! switches to them.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{io_err, StoreError};

/// A staging dir for the files of an install, inside the plugin dir so the
/// final move is a rename. Removed by the next writer if left behind.
#[derive(Debug)]
pub struct Staging {
    pub(super) dir: PathBuf,
}

impl Staging {
    /// Writes one file into the staging dir and fsyncs it. Returns its
    /// metadata once complete (mode set), from its descriptor: what
    /// [`super::LibraryStamp::of`] records of an installed library.
    pub fn write(&self, name: &str, bytes: &[u8], mode: u32) -> Result<fs::Metadata, StoreError> {
        let (mut f, p) = self.create(name)?;
        f.write_all(bytes).map_err(io_err(&p))?;
        self.finish(&f, &p, mode)?;
        // An mtime of the precise time now (the kernel stamps writes with
        // its coarser clock tick): a write later in the same tick still
        // changes it, so the stamp taken here cannot outlive a change.
        f.set_modified(std::time::SystemTime::now())
            .map_err(io_err(&p))?;
        f.metadata().map_err(io_err(&p))
    }

    /// [`Self::write`] for the plugin's library: the file is then made
    /// immutable where the file system and the caller can (root, on a
    /// local file system; see [`crate::plugin::immutable`]), before the
    /// metadata returned (and so the stamp) is taken.
    pub fn write_library(
        &self,
        name: &str,
        bytes: &[u8],
        mode: u32,
    ) -> Result<fs::Metadata, StoreError> {
        // Flagged through a read-only descriptor once `write` closed the
        // writable one: no descriptor able to write the library outlives
        // this.
        self.write(name, bytes, mode)?;
        let p = self.dir.join(name);
        let ro = {
            use std::os::unix::fs::OpenOptionsExt;
            OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&p)
                .map_err(io_err(&p))?
        };
        if !crate::plugin::immutable::set_immutable(&ro).map_err(io_err(&p))? {
            tracing::debug!(file = %p.display(), "the file system keeps no immutable flag here: loads will copy the library");
        }
        ro.metadata().map_err(io_err(&p))
    }

    /// Copies file `src` into the staging dir as `name` and fsyncs it.
    pub fn copy_from(&self, name: &str, src: &Path, mode: u32) -> Result<(), StoreError> {
        let mut from = File::open(src).map_err(io_err(src))?;
        let (mut to, p) = self.create(name)?;
        io::copy(&mut from, &mut to).map_err(io_err(&p))?;
        self.finish(&to, &p, mode)
    }

    /// A new private file (O_EXCL|O_NOFOLLOW, 0600 until complete: with a
    /// loose umask the default mode would let others open it for writing).
    fn create(&self, name: &str) -> Result<(File, PathBuf), StoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        let p = self.dir.join(name);
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&p)
            .map_err(io_err(&p))?;
        Ok((f, p))
    }

    fn finish(&self, f: &File, p: &Path, mode: u32) -> Result<(), StoreError> {
        use std::os::unix::fs::PermissionsExt;
        f.sync_all().map_err(io_err(p))?;
        // Exact, on the descriptor: umask may have narrowed it, and the
        // loader wants it exact.
        f.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_err(p))
    }
}
