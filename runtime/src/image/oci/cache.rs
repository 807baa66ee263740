//! The image cache: `<root>/<kind>/<key>` with kinds `blobs` (layer and
//! config blobs by sha256 hex) and `images` (built SIFs by manifest sha256
//! hex). The root is `$XDG_CACHE_HOME/vessel` (default `~/.cache/vessel`),
//! or `$VESSEL_ROOT/var/cache/vessel` for root. Entries appear by rename
//! only, so a reader sees a whole entry or none; builders of one image take
//! a flock on `<root>/<kind>/.<key>.lock`, so it is built once; every blob
//! is checked against its digest when used, and a damaged one is removed
//! and fetched again.

use std::fs::File;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::{check_digest, io_err, OciError};

/// Kind of the blob entries.
pub const BLOBS: &str = "blobs";
/// Kind of the built-image entries.
pub const IMAGES: &str = "images";

/// A cache root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// A cache at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The caller's cache: root's under `paths`, a user's under
    /// `$XDG_CACHE_HOME` or `$HOME/.cache`; `None` when a user has neither.
    pub fn for_caller(paths: &crate::paths::Paths) -> Option<Self> {
        if nix::unistd::geteuid().is_root() {
            return Some(Self::new(paths.root().join("var/cache/vessel")));
        }
        let abs = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
        let base = std::env::var_os("XDG_CACHE_HOME")
            .and_then(abs)
            .or_else(|| {
                std::env::var_os("HOME")
                    .and_then(abs)
                    .map(|h| h.join(".cache"))
            })?;
        Some(Self::new(base.join("vessel")))
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/<kind>`, made (0700) when missing.
    pub fn kind_dir(&self, kind: &str) -> Result<PathBuf, OciError> {
        let dir = self.root.join(kind);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_err(&dir))?;
        Ok(dir)
    }

    /// Where the blob `digest` is (or would be) kept.
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, OciError> {
        let hex = check_digest(digest).map_err(|reason| OciError::Image {
            image: self.root.display().to_string(),
            reason,
        })?;
        Ok(self.kind_dir(BLOBS)?.join(hex))
    }

    /// The cached blob `digest` if it is there and its content still has
    /// that digest; a damaged entry is removed (and so fetched again).
    pub fn verified_blob(&self, digest: &str) -> Result<Option<PathBuf>, OciError> {
        let path = self.blob_path(digest)?;
        let mut f = match super::open_blob(&path) {
            Ok(f) => f,
            Err(_) => return Ok(None),
        };
        if !f.metadata().map_err(io_err(&path))?.is_file() {
            return Ok(None);
        }
        let mut h = super::unpack::HashingReader::new(&mut f);
        std::io::copy(&mut h, &mut std::io::sink()).map_err(io_err(&path))?;
        if h.digest() == digest {
            return Ok(Some(path));
        }
        tracing::warn!(path = %path.display(), "cached blob is damaged; fetching it again");
        std::fs::remove_file(&path).map_err(io_err(&path))?;
        Ok(None)
    }

    /// A new temp file (0600, random name) beside the `kind` entries, for
    /// an entry written and then renamed into place.
    pub fn temp_file(&self, kind: &str) -> Result<tempfile::NamedTempFile, OciError> {
        let dir = self.kind_dir(kind)?;
        tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&dir)
            .map_err(io_err(&dir))
    }

    /// Where the SIF built from the manifest `digest` is kept.
    pub fn image_path(&self, digest: &str) -> Result<PathBuf, OciError> {
        let hex = check_digest(digest).map_err(|reason| OciError::Image {
            image: self.root.display().to_string(),
            reason,
        })?;
        Ok(self.kind_dir(IMAGES)?.join(hex))
    }

    /// Takes the exclusive lock of the entry `key` of `kind` (blocking
    /// until another builder is done); released when the file is dropped.
    pub fn lock(&self, kind: &str, key: &str) -> Result<File, OciError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.kind_dir(kind)?.join(format!(".{key}.lock"));
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(io_err(&path))?;
        loop {
            // SAFETY: flock on a descriptor this function owns.
            let r = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), libc::LOCK_EX) };
            if r == 0 {
                return Ok(f);
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(io_err(&path)(e));
            }
        }
    }
}
