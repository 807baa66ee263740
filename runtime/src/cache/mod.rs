//! The per-user cache: `<root>/<kind>/<key>` entries.
//!
//! The root is `$XDG_CACHE_HOME/vessel` (default `~/.cache/vessel`) for a
//! user and `$VESSEL_ROOT/var/cache/vessel` for root. Every kind (extracted
//! `sandboxes`, OCI `blobs` and `images`, …) keeps its entries one level
//! below the root, so listing, cleaning and eviction work for kinds this
//! module knows nothing about. Names starting with `.` are the cache's own
//! (lock files, temp dirs, memos) and never entries.
//!
//! Concurrency: each entry has a lock file `<kind>/.<key>.lock`. Users of an
//! entry hold a shared flock on it while they use it; a builder, a cleaner
//! and the evicter take it exclusively, so an entry is never built twice at
//! once nor removed under a running container. Entries are built in a temp
//! dir beside their final place and renamed, so a crash leaves the old state
//! or the new one. Last use is the entry's own mtime, set on every use.
//!
//! Security: the root and kind dirs are created 0700 and must be real
//! directories (never symlinks) owned by the caller; lock files are opened
//! with O_NOFOLLOW; removal goes through `remove_dir_all`, which does not
//! follow symlinks.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

mod size;

pub use size::{format_size, parse_size};

/// The kind of extracted SIF root filesystems.
pub const SANDBOXES: &str = "sandboxes";
/// Default cap on the cache's size (10 GiB).
pub const DEFAULT_MAX_SIZE: u64 = 10 << 30;

/// Errors using the cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A file or directory of the cache cannot be used.
    #[error("cache {path}: {reason}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why, on one line.
        reason: String,
    },
    /// A cache directory that is a symlink, not a directory, or not the
    /// caller's.
    #[error("cache {0}: not a directory owned by the caller")]
    Insecure(PathBuf),
    /// No cache location: neither `XDG_CACHE_HOME` nor `HOME` is an
    /// absolute path.
    #[error("cache: no cache directory (XDG_CACHE_HOME and HOME are unset or relative)")]
    NoRoot,
    /// A kind or key that is not a plain name.
    #[error("cache entry {0:?}: not a valid name")]
    BadName(String),
    /// `cache clean KEY` named nothing.
    #[error("cache entry {0:?}: no such entry")]
    NoEntry(String),
    /// The entry is in use by a running container.
    #[error("cache entry {0}: in use")]
    InUse(String),
    /// Building an entry failed.
    #[error("cache entry {key}: building it failed")]
    Build {
        /// `kind/key`.
        key: String,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn io_err(path: &Path, e: &std::io::Error) -> CacheError {
    CacheError::Io {
        path: path.to_owned(),
        reason: crate::image::io_reason(e),
    }
}

/// Where the cache lives and how big it may grow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    root: PathBuf,
    max_size: u64,
}

/// One entry, as `cache list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its kind (`sandboxes`, `blobs`, …).
    pub kind: String,
    /// Its key within the kind.
    pub key: String,
    /// `<root>/<kind>/<key>`.
    pub path: PathBuf,
    /// Bytes of its files (apparent size).
    pub size: u64,
    /// When it was last used (its mtime).
    pub last_used: SystemTime,
}

/// How [`Cache::get_or_build`] got its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A valid entry was there.
    Hit,
    /// There was none; it was built.
    Built,
    /// There was one that failed validation; it was replaced.
    Rebuilt,
}

/// An entry in use: holds its shared lock until dropped, so it is neither
/// evicted nor cleaned meanwhile.
#[derive(Debug)]
pub struct Held {
    path: PathBuf,
    _lock: File,
}

impl Held {
    /// The entry's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A name usable as a kind or key: no separators, not hidden.
fn check_name(name: &str) -> Result<(), CacheError> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-+".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(CacheError::BadName(name.to_owned()))
    }
}

impl Cache {
    /// A cache at `root` capped at `max_size` bytes.
    pub fn new(root: impl Into<PathBuf>, max_size: u64) -> Self {
        Self {
            root: root.into(),
            max_size,
        }
    }

    /// The caller's cache: under `vessel_root` for root, else
    /// `$XDG_CACHE_HOME/vessel` or `$HOME/.cache/vessel` (absolute paths
    /// only, as the XDG spec says).
    pub fn for_caller(vessel_root: &Path, max_size: u64) -> Result<Self, CacheError> {
        if nix::unistd::geteuid().is_root() {
            return Ok(Self::new(vessel_root.join("var/cache/vessel"), max_size));
        }
        let abs = |v: Option<std::ffi::OsString>| {
            v.map(PathBuf::from)
                .filter(|p| p.is_absolute() && p != Path::new("/nonexistent"))
        };
        let base = abs(std::env::var_os("XDG_CACHE_HOME"))
            .or_else(|| abs(std::env::var_os("HOME")).map(|h| h.join(".cache")))
            .ok_or(CacheError::NoRoot)?;
        Ok(Self::new(base.join("vessel"), max_size))
    }

    /// The cache's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The size cap in bytes.
    pub fn max_size(&self) -> u64 {
        self.max_size
    }

    /// `<root>/<kind>`, created 0700 (with the root) when missing and
    /// checked to be the caller's real directory.
    pub fn kind_dir(&self, kind: &str) -> Result<PathBuf, CacheError> {
        check_name(kind)?;
        self.ensure_root()?;
        let dir = self.root.join(kind);
        ensure_private_dir(&dir)?;
        Ok(dir)
    }

    /// The root, created 0700 (with missing parents) and checked.
    fn ensure_root(&self) -> Result<(), CacheError> {
        if let Some(parent) = self.root.parent() {
            if !parent.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(parent)
                    .map_err(|e| io_err(parent, &e))?;
            }
        }
        ensure_private_dir(&self.root)
    }

    /// A private directory of the cache's own (`.name`, e.g. memos).
    pub fn private_dir(&self, name: &str) -> Result<PathBuf, CacheError> {
        check_name(name)?;
        self.ensure_root()?;
        let dir = self.root.join(format!(".{name}"));
        ensure_private_dir(&dir)?;
        Ok(dir)
    }

    fn lock_file(dir: &Path, key: &str) -> Result<File, CacheError> {
        let path = dir.join(format!(".{key}.lock"));
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| io_err(&path, &e))
    }

    /// The entry `kind/key`, built by `build` (into an empty dir it must
    /// fill) unless a valid one exists; `valid` checks an existing entry
    /// before it is reused. Concurrent callers build it once: the others
    /// wait and reuse it. The entry stays held (shared lock) until the
    /// returned [`Held`] is dropped; after a build, older entries are
    /// evicted to keep the cache under its cap.
    pub fn get_or_build<E>(
        &self,
        kind: &str,
        key: &str,
        valid: impl Fn(&Path) -> bool,
        build: impl FnOnce(&Path) -> Result<(), E>,
    ) -> Result<(Held, Outcome), CacheError>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        check_name(key)?;
        let dir = self.kind_dir(kind)?;
        let entry = dir.join(key);
        let lock = Self::lock_file(&dir, key)?;
        flock(&lock, libc::LOCK_SH, &entry)?;
        if is_real_dir(&entry) && valid(&entry) {
            touch(&entry);
            return Ok((
                Held {
                    path: entry,
                    _lock: lock,
                },
                Outcome::Hit,
            ));
        }
        // Upgrading is not atomic: another builder may finish in between,
        // so check again once exclusive.
        flock(&lock, libc::LOCK_EX, &entry)?;
        let mut outcome = Outcome::Built;
        if std::fs::symlink_metadata(&entry).is_ok() {
            if is_real_dir(&entry) && valid(&entry) {
                flock(&lock, libc::LOCK_SH, &entry)?;
                touch(&entry);
                return Ok((
                    Held {
                        path: entry,
                        _lock: lock,
                    },
                    Outcome::Hit,
                ));
            }
            tracing::info!("cache entry {kind}/{key} is incomplete or corrupted; rebuilding it");
            remove_entry(&dir, &entry)?;
            outcome = Outcome::Rebuilt;
        }
        sweep_temps(&dir, key);
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".tmp-{key}-"))
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(&dir)
            .map_err(|e| io_err(&dir, &e))?;
        if let Err(e) = build(tmp.path()) {
            remove_tree(&tmp.keep());
            return Err(CacheError::Build {
                key: format!("{kind}/{key}"),
                source: Box::new(e),
            });
        }
        let built = tmp.keep();
        if let Err(e) = std::fs::rename(&built, &entry) {
            remove_tree(&built);
            return Err(io_err(&entry, &e));
        }
        touch(&entry);
        flock(&lock, libc::LOCK_SH, &entry)?;
        if let Err(e) = self.evict(&[(kind, key)]) {
            tracing::warn!("{e}");
        }
        Ok((
            Held {
                path: entry,
                _lock: lock,
            },
            outcome,
        ))
    }

    /// Every entry of every kind, oldest use first.
    pub fn list(&self) -> Result<Vec<Entry>, CacheError> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err(&self.root, &e)),
        };
        check_private_dir(&self.root)?;
        for k in rd.flatten() {
            let Some(kind) = k.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if check_name(&kind).is_err() || !k.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let Ok(entries) = std::fs::read_dir(k.path()) else {
                continue;
            };
            for e in entries.flatten() {
                let Some(key) = e.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if check_name(&key).is_err() {
                    continue;
                }
                let path = e.path();
                let Ok(meta) = std::fs::symlink_metadata(&path) else {
                    continue;
                };
                out.push(Entry {
                    kind: kind.clone(),
                    key,
                    size: tree_size(&path),
                    last_used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    path,
                });
            }
        }
        out.sort_by(|a, b| (a.last_used, &a.kind, &a.key).cmp(&(b.last_used, &b.kind, &b.key)));
        Ok(out)
    }

    /// Removes one entry; an entry in use is refused.
    pub fn remove(&self, kind: &str, key: &str) -> Result<(), CacheError> {
        check_name(kind)?;
        check_name(key)?;
        let dir = self.root.join(kind);
        let entry = dir.join(key);
        if std::fs::symlink_metadata(&entry).is_err() {
            return Err(CacheError::NoEntry(format!("{kind}/{key}")));
        }
        check_private_dir(&self.root)?;
        check_private_dir(&dir)?;
        let lock = Self::lock_file(&dir, key)?;
        if !try_flock(&lock, libc::LOCK_EX, &entry)? {
            return Err(CacheError::InUse(format!("{kind}/{key}")));
        }
        remove_entry(&dir, &entry)
    }

    /// Removes least recently used entries until the cache fits its cap.
    /// Entries in `keep` and entries in use are kept. Returns the removed.
    pub fn evict(&self, keep: &[(&str, &str)]) -> Result<Vec<Entry>, CacheError> {
        let entries = self.list()?;
        let mut total: u64 = entries.iter().map(|e| e.size).sum();
        let mut removed = Vec::new();
        for e in entries {
            if total <= self.max_size {
                break;
            }
            if keep.contains(&(e.kind.as_str(), e.key.as_str())) {
                continue;
            }
            match self.remove(&e.kind, &e.key) {
                Ok(()) => {
                    tracing::info!(
                        "cache: evicted {}/{} ({}) to stay under {}",
                        e.kind,
                        e.key,
                        format_size(e.size),
                        format_size(self.max_size)
                    );
                    total -= e.size;
                    removed.push(e);
                }
                Err(CacheError::InUse(_)) => {}
                Err(err) => tracing::warn!("{err}"),
            }
        }
        Ok(removed)
    }
}

/// Creates `dir` 0700 if missing; it must be a real directory of ours.
fn ensure_private_dir(dir: &Path) -> Result<(), CacheError> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err(dir, &e)),
    }
    check_private_dir(dir)
}

fn check_private_dir(dir: &Path) -> Result<(), CacheError> {
    let m = std::fs::symlink_metadata(dir).map_err(|e| io_err(dir, &e))?;
    if !m.is_dir() || m.uid() != nix::unistd::geteuid().as_raw() {
        return Err(CacheError::Insecure(dir.to_owned()));
    }
    if m.mode() & 0o077 != 0 {
        // Ours: tighten what an older version or the user loosened.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io_err(dir, &e))?;
    }
    Ok(())
}

fn is_real_dir(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
}

fn flock(f: &File, op: i32, what: &Path) -> Result<(), CacheError> {
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), op) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(io_err(what, &e));
        }
    }
}

/// `flock` without waiting: false when another holder conflicts.
fn try_flock(f: &File, op: i32, what: &Path) -> Result<bool, CacheError> {
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), op | libc::LOCK_NB) } == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => {}
            _ => return Err(io_err(what, &e)),
        }
    }
}

/// Records a use: the entry's mtime is its last use.
fn touch(p: &Path) {
    let now = nix::sys::time::TimeSpec::UTIME_NOW;
    if let Err(e) = nix::sys::stat::utimensat(
        None,
        p,
        &now,
        &now,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    ) {
        tracing::debug!("cache: recording the use of {}: {e}", p.display());
    }
}

/// Moves an entry out of the way (atomically), then deletes it.
fn remove_entry(dir: &Path, entry: &Path) -> Result<(), CacheError> {
    let trash = tempfile::Builder::new()
        .prefix(".trash-")
        .tempdir_in(dir)
        .map_err(|e| io_err(dir, &e))?
        .keep();
    let target = trash.join("entry");
    std::fs::rename(entry, &target).map_err(|e| io_err(entry, &e))?;
    remove_tree(&trash);
    Ok(())
}

/// Removes temp dirs a killed builder of `key` left (we hold its lock).
fn sweep_temps(dir: &Path, key: &str) {
    let prefix = format!(".tmp-{key}-");
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            remove_tree(&e.path());
        }
    }
}

/// Deletes a tree, first giving the owner rwx on every directory (extracted
/// images keep read-only directory modes). Never follows symlinks.
fn remove_tree(p: &Path) {
    make_writable(p);
    let r = match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
        Err(_) => Ok(()),
    };
    if let Err(e) = r {
        tracing::warn!(
            "cache: removing {}: {}",
            p.display(),
            crate::image::io_reason(&e)
        );
    }
}

fn make_writable(p: &Path) {
    let Ok(meta) = std::fs::symlink_metadata(p) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    if meta.mode() & 0o700 != 0o700 {
        let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(meta.mode() | 0o700));
    }
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            make_writable(&e.path());
        }
    }
}

/// Apparent size of a file or tree (symlinks not followed).
fn tree_size(p: &Path) -> u64 {
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if !m.is_dir() {
        return m.len();
    }
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(_) => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                Err(_) => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests;
