//! The plugin store under the plugin dir:
//!
//! ```text
//! .lock                      writers serialise on an exclusive flock of it
//! .index                     the CLI index: a cache of the metas (see [`index`])
//! metas/<sha256(name)>.meta  one JSON meta per plugin: the switch of its state
//! .store/<install_id>/       one files dir per install (plugin.so, …)
//! .scratch/install-XXXX/     a writer's private scratch (0700), swept when dead
//! names/<name>               symlink to the current files dir, for people
//! ```
//!
//! Metas, name links and files dirs live in separate sub-directories, and
//! names follow a strict grammar ([`super::name`]), so no plugin name can
//! collide with the store's own files. A meta is data, never a path: its
//! name and `install_id` are checked on every read (the id has a fixed
//! format), and every path derived from one is checked to stay inside the
//! store before anything is touched.
//!
//! Each install (or upgrade) writes its files into a fresh
//! `.store/<install_id>/`, runs the Install callback there, and only then
//! replaces the meta (temp file + fsync + rename). A crash before the rename
//! leaves the old meta pointing at the old, untouched files; a crash after
//! it leaves the new meta pointing at complete new files. Readers take no
//! writer lock; they pin the files dir they use with a shared flock on it
//! ([`Store::pin`]), and a writer removes an old files dir only when it can
//! take that lock exclusively — otherwise the next writer's sweep does.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::manifest::Manifest;
pub use super::name::NameError;
pub use super::stamp::LibraryStamp;

pub mod index;
mod scratch;
mod staging;
pub use index::{CliSurface, Scope, Summary};
pub use scratch::Scratch;
pub use staging::Staging;

/// File names inside an installed plugin's dir.
pub const PLUGIN_SO: &str = "plugin.so";
/// The manifest beside the library.
pub const PLUGIN_MANIFEST: &str = "plugin.manifest";
/// The installed image, kept so its signature can be re-verified.
pub const PLUGIN_SIF: &str = "plugin.sif";

const LOCK_FILE: &str = ".lock";
const FILES_DIR: &str = ".store";
const METAS_DIR: &str = "metas";
const NAMES_DIR: &str = "names";
const TMP_PREFIX: &str = ".tmp-";
/// Length of an install id: 128 random bits as lowercase hex.
const INSTALL_ID_LEN: usize = 32;

/// Errors of the plugin store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O error on a named path.
    #[error("plugin store: {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A meta file that is not valid JSON of the expected shape, or whose
    /// fields break the store's rules.
    #[error("plugin store: {path}: invalid meta: {message}")]
    BadMeta {
        /// The meta file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A plugin name outside the grammar.
    #[error(transparent)]
    BadName(#[from] NameError),
    /// A path derived from a meta that would leave the store, or that goes
    /// through something other than the store's own dirs.
    #[error("plugin store: {path}: refusing to touch it: {reason}")]
    Outside {
        /// The path.
        path: PathBuf,
        /// Why it is refused.
        reason: &'static str,
    },
    /// As root: a store file or dir (or a dir above the store) another
    /// user could change.
    #[error("plugin store: {0}")]
    Insecure(#[from] crate::trust::secure::InsecurePath),
    /// A meta that cannot be read while running a container: its plugin's
    /// EngineConfig policy would silently not apply, so nothing runs.
    #[error("plugin store: {0}; refusing to run without that plugin's policy")]
    Incomplete(Box<StoreError>),
    /// The named plugin is not installed.
    #[error("plugin \"{0}\" is not installed")]
    NotInstalled(String),
    /// The named plugin is installed but disabled.
    #[error("plugin \"{0}\" is disabled")]
    Disabled(String),
    /// The named plugin is already installed (and no upgrade was asked for).
    #[error("plugin \"{0}\" is already installed (use --upgrade to replace it)")]
    AlreadyInstalled(String),
    /// A stop signal arrived while waiting for the writer lock.
    #[error("plugin store: interrupted by {0} while waiting for the store lock")]
    Interrupted(&'static str),
    /// A fault injected by `VESSEL_FAULT_INJECT` (debug builds, tests only).
    #[error("plugin store: injected fault at {0}")]
    Injected(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What the store records for one installed plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The plugin's manifest, as installed.
    pub manifest: Manifest,
    /// Whether its callbacks run.
    pub enabled: bool,
    /// keyid of the trusted key whose signature was verified at install, if any.
    pub signer: Option<String>,
    /// Unix seconds of the install (or upgrade).
    pub installed_at: u64,
    /// Unique per install or upgrade (see [`validate_install_id`]), so crash
    /// recovery can tell a new meta from the old one even when their
    /// contents match. It names the files dir.
    pub install_id: String,
    /// The registry reference and digest it was installed from, if it came
    /// from one (`plugin install oras://…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// The stamp of the installed `plugin.so` taken right after the install
    /// wrote it, its bytes having matched `manifest.sha256`: a load of the
    /// file while it still has this stamp needs no hash (see
    /// [`super::stamp`]). Metas written before stamps existed have none,
    /// and their plugins load with the full checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library: Option<LibraryStamp>,
    /// The stamp of the vessel binary whose loader checked the library's
    /// type layouts at install: that binary, loading the unchanged file,
    /// skips the check (see [`super::stamp`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_by: Option<LibraryStamp>,
}

/// Where an installed plugin image came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The `oras://` reference as given.
    pub reference: String,
    /// The manifest digest that was pulled (`sha256:…`).
    pub digest: String,
}

impl Meta {
    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }
}

/// The plugin store under one plugin dir.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// An exclusive writer lock on the store; released on drop.
#[derive(Debug)]
pub struct WriteLock {
    _lock: Flock<File>,
}

/// Checks a plugin name against the grammar (lowercase `domain/path`, see
/// [`super::name`]). The one check used at create, compile and install.
pub fn validate_name(name: &str) -> Result<(), StoreError> {
    Ok(super::name::validate(name)?)
}

/// True when `id` has the fixed install id format: 32 lowercase hex digits.
pub fn validate_install_id(id: &str) -> bool {
    id.len() == INSTALL_ID_LEN && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub use super::loader::sha256_hex;

/// Fails with [`StoreError::Injected`] when `VESSEL_FAULT_INJECT` names this
/// point, or kills the process outright when it is `POINT:kill`. Only in
/// debug builds: release binaries carry no fault points.
fn fault_point(point: &str) -> Result<(), StoreError> {
    if cfg!(debug_assertions) {
        if let Ok(v) = std::env::var("VESSEL_FAULT_INJECT") {
            if v == point {
                return Err(StoreError::Injected(point.to_owned()));
            }
            if v.strip_suffix(":kill") == Some(point) {
                let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
    Ok(())
}

fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_err(dir))
}

/// Writes `bytes` to `path` atomically: a temp file of a random name in the
/// same dir (created O_EXCL, so never through a planted symlink), fsync,
/// rename over `path`, fsync the dir.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(io_err(dir))?;
    tmp.write_all(bytes).map_err(io_err(tmp.path()))?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_err(tmp.path()))?;
    tmp.as_file().sync_all().map_err(io_err(tmp.path()))?;
    tmp.persist(path).map_err(|e| io_err(path)(e.error))?;
    fsync_dir(dir)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Removes a files dir (or a staging dir): its library may be immutable
/// ([`super::immutable`]), so the flag is cleared first.
fn remove_tree(p: &Path) -> Result<(), StoreError> {
    super::immutable::clear_tree(p).map_err(io_err(p))?;
    match fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(p)(e)),
    }
}

fn mkdir(p: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(p)
        .map_err(io_err(p))
}

impl Store {
    /// The store rooted at `dir` (the plugin dir; it need not exist yet).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The plugin dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn metas_dir(&self) -> PathBuf {
        self.dir.join(METAS_DIR)
    }

    fn names_dir(&self) -> PathBuf {
        self.dir.join(NAMES_DIR)
    }

    fn store_dir(&self) -> PathBuf {
        self.dir.join(FILES_DIR)
    }

    /// `metas/<sha256(name)>.meta`.
    pub fn meta_path(&self, name: &str) -> PathBuf {
        self.metas_dir()
            .join(format!("{}.meta", sha256_hex(name.as_bytes())))
    }

    /// The human-facing path of a plugin, `names/<name>`: a symlink to its
    /// current files dir.
    pub fn name_link(&self, name: &str) -> PathBuf {
        self.names_dir().join(name)
    }

    /// The dir holding an installed plugin's files (`plugin.so`,
    /// `plugin.manifest`, `plugin.sif` and what its Install callback wrote).
    /// Metas read from the store always have a valid install id; writers go
    /// through [`Self::checked_files_dir`].
    pub fn files_dir(&self, meta: &Meta) -> PathBuf {
        self.store_dir().join(&meta.install_id)
    }

    /// [`Self::files_dir`], after checking the meta's install id and that
    /// the path stays inside the store.
    fn checked_files_dir(&self, meta: &Meta) -> Result<PathBuf, StoreError> {
        let p = self.files_dir(meta);
        if !validate_install_id(&meta.install_id) {
            return Err(StoreError::Outside {
                path: p,
                reason: "the install id is not 32 lowercase hex digits",
            });
        }
        self.check_inside(&p)?;
        Ok(p)
    }

    /// `names/<name>`, after checking the name and that every dir between
    /// the plugin dir and the link is a real dir of the store.
    fn checked_name_link(&self, name: &str) -> Result<PathBuf, StoreError> {
        validate_name(name)?;
        let p = self.name_link(name);
        self.check_inside(&p)?;
        Ok(p)
    }

    /// Fails unless `p` is a plain path below the plugin dir whose existing
    /// parents (below the plugin dir) are directories, not symlinks: what
    /// is then done to `p` happens inside the store.
    fn check_inside(&self, p: &Path) -> Result<(), StoreError> {
        let outside = |reason| StoreError::Outside {
            path: p.to_owned(),
            reason,
        };
        let rel = p
            .strip_prefix(&self.dir)
            .map_err(|_| outside("it is not below the plugin dir"))?;
        if rel.as_os_str().is_empty()
            || !rel.components().all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(outside("it is not a plain path inside the store"));
        }
        let mut cur = self.dir.clone();
        let comps: Vec<_> = rel.components().collect();
        for c in &comps[..comps.len() - 1] {
            cur.push(c);
            match fs::symlink_metadata(&cur) {
                Ok(md) if md.is_dir() => {}
                Ok(_) => return Err(outside("a parent in the store is not a directory")),
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => return Err(io_err(&cur)(e)),
            }
        }
        Ok(())
    }

    /// Every installed plugin's meta, sorted by name. A missing plugin dir
    /// means no plugins. Opens no plugin library. A meta that cannot be
    /// read is skipped with a warning: one damaged (or newer-format) meta
    /// must not hide the other plugins or block `plugin uninstall`.
    pub fn list(&self) -> Result<Vec<Meta>, StoreError> {
        let (metas, unreadable) = self.list_all()?;
        for e in &unreadable {
            tracing::warn!("ignoring an installed plugin: {e}");
        }
        Ok(metas)
    }

    /// The readable metas, sorted by name, and the errors of the others
    /// (for callers that report them later, e.g. once logging is set up).
    pub fn list_all(&self) -> Result<(Vec<Meta>, Vec<StoreError>), StoreError> {
        let dir = self.metas_dir();
        crate::trust::secure::check_root_owned(&dir)?;
        use nix::fcntl::OFlag;
        use std::os::fd::{FromRawFd, OwnedFd};
        let mut rd = match nix::dir::Dir::open(
            &dir,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        ) {
            Ok(rd) => rd,
            Err(nix::errno::Errno::ENOENT) => return Ok(Default::default()),
            Err(e) => return Err(io_err(&dir)(e.into())),
        };
        let dir_fd = rd.as_raw_fd();
        let mut out = BTreeMap::new();
        let mut unreadable = Vec::new();
        for entry in rd.iter() {
            let entry = entry.map_err(|e| io_err(&dir)(e.into()))?;
            let Some(name) = entry
                .file_name()
                .to_str()
                .ok()
                .filter(|n| index::is_meta_file(n))
            else {
                continue;
            };
            let path = dir.join(name);
            // Opened relative to the dir already checked: no path walk per meta.
            let opened = nix::fcntl::openat(
                Some(dir_fd),
                entry.file_name(),
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|e| io_err(&path)(e.into()))
            // SAFETY: openat returned a fresh descriptor we own.
            .map(|fd| File::from(unsafe { OwnedFd::from_raw_fd(fd) }));
            match opened.and_then(|f| Self::read_meta_from(f, &path, true)) {
                Ok(meta) => {
                    out.insert(meta.manifest.name.clone(), meta);
                }
                Err(e) => unreadable.push(e),
            }
        }
        Ok((out.into_values().collect(), unreadable))
    }

    /// Every installed plugin's meta, failing if any cannot be read: for
    /// running a container, where a skipped meta would silently drop that
    /// plugin's EngineConfig policy (fail closed).
    pub fn list_complete(&self) -> Result<Vec<Meta>, StoreError> {
        let (metas, unreadable) = self.list_all()?;
        match unreadable.into_iter().next() {
            Some(e) => Err(StoreError::Incomplete(Box::new(e))),
            None => Ok(metas),
        }
    }

    /// Reads and checks one meta: a regular file (opened without following
    /// a symlink or blocking on a FIFO), valid JSON, a name in the grammar
    /// whose hash is the file's name, and an install id of the fixed format.
    fn read_meta_file(path: &Path) -> Result<Meta, StoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .map_err(io_err(path))?;
        Self::read_meta_from(f, path, false)
    }

    /// [`Self::read_meta_file`] on `f`, opened from `path`; `dir_checked`
    /// when the caller already checked the metas dir's chain (as root):
    /// then only the file itself is left to check, on its descriptor.
    fn read_meta_from(mut f: File, path: &Path, dir_checked: bool) -> Result<Meta, StoreError> {
        use std::io::Read;
        let bad = |message: String| StoreError::BadMeta {
            path: path.to_owned(),
            message,
        };
        let md = f.metadata().map_err(io_err(path))?;
        if !md.is_file() {
            return Err(bad("not a regular file".into()));
        }
        if dir_checked {
            crate::trust::secure::check_opened_in_checked_dir(path, &md)?;
        } else {
            crate::trust::secure::check_root_owned(path)?;
        }
        let mut bytes = Vec::with_capacity(usize::try_from(md.len()).unwrap_or(0) + 1);
        Read::by_ref(&mut f)
            .take(16 << 20)
            .read_to_end(&mut bytes)
            .map_err(io_err(path))?;
        let meta: Meta = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        validate_name(meta.name()).map_err(|e| bad(e.to_string()))?;
        let want = format!("{}.meta", sha256_hex(meta.name().as_bytes()));
        if path.file_name().and_then(|n| n.to_str()) != Some(want.as_str()) {
            return Err(bad(format!(
                "it names plugin {:?}, whose meta is {want}",
                meta.name()
            )));
        }
        if !validate_install_id(&meta.install_id) {
            return Err(bad(format!(
                "install id {:?} is not 32 lowercase hex digits",
                meta.install_id
            )));
        }
        Ok(meta)
    }

    /// One plugin's meta, or [`StoreError::NotInstalled`].
    pub fn get(&self, name: &str) -> Result<Meta, StoreError> {
        validate_name(name)?;
        let path = self.meta_path(name);
        match fs::symlink_metadata(&path) {
            Ok(_) => Self::read_meta_file(&path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::NotInstalled(name.to_owned()))
            }
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Takes the writer lock (creating the plugin dir if needed) and finishes
    /// or undoes any change a crashed writer left behind.
    pub fn lock(&self) -> Result<WriteLock, StoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        crate::trust::secure::check_root_owned(&self.dir)?;
        mkdir(&self.dir)?;
        let path = self.dir.join(LOCK_FILE);
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .map_err(io_err(&path))?;
        let lock = scratch::wait_for_lock(f, &path)?;
        let guard = WriteLock { _lock: lock };
        self.recover(&guard)?;
        Ok(guard)
    }

    /// Rewrites one meta atomically (enable/disable), and the index with it.
    pub fn put_meta(&self, lock: &WriteLock, meta: &Meta) -> Result<(), StoreError> {
        validate_name(meta.name())?;
        self.checked_files_dir(meta)?;
        let path = self.meta_path(meta.name());
        self.check_inside(&path)?;
        let bytes = serde_json::to_vec_pretty(meta).map_err(|e| StoreError::BadMeta {
            path: path.clone(),
            message: e.to_string(),
        })?;
        mkdir(&self.metas_dir())?;
        self.invalidate_index(lock)?;
        let switched = write_atomic(&path, &bytes, 0o644);
        // Whether or not the switch happened, the index says what is there.
        let indexed = self.write_index(lock);
        switched.and(indexed)
    }

    /// A fresh files dir for the install whose meta will be `meta`.
    pub fn new_staging(&self, _lock: &WriteLock, meta: &Meta) -> Result<Staging, StoreError> {
        use std::os::unix::fs::DirBuilderExt;
        mkdir(&self.store_dir())?;
        let dir = self.checked_files_dir(meta)?;
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&dir)
            .map_err(io_err(&dir))?;
        set_mode(&dir, 0o755)?;
        Ok(Staging { dir })
    }

    /// Makes `meta` the installed state of its plugin: runs `activate` on
    /// the staged files dir (the plugin's Install callback), then switches
    /// the meta, then points the name symlink at the new files and removes
    /// the old ones (unless a reader still pins them; see [`Self::pin`]).
    /// An error before the switch removes the staged files and leaves the
    /// previous state (nothing, or the old version) untouched.
    pub fn commit_install(
        &self,
        lock: &WriteLock,
        staging: Staging,
        meta: &Meta,
        activate: impl FnOnce(&Path) -> Result<(), crate::Error>,
    ) -> Result<(), crate::Error> {
        let name = meta.name().to_owned();
        validate_name(&name)?;
        let previous = match self.get(&name) {
            Ok(m) => Some(m),
            Err(StoreError::NotInstalled(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let before_switch = (|| -> Result<(), crate::Error> {
            fsync_dir(&staging.dir)?;
            fault_point("files-written")?;
            activate(&staging.dir)?;
            fault_point("activated")?;
            Ok(())
        })();
        if let Err(e) = before_switch {
            remove_tree(&staging.dir)?;
            return Err(e);
        }
        self.put_meta(lock, meta)?;
        fault_point("meta-written")?;
        self.point_link(meta)?;
        fault_point("link-updated")?;
        if let Some(old) = previous {
            if old.install_id != meta.install_id {
                self.remove_files_dir(&self.checked_files_dir(&old)?)?;
            }
        }
        Ok(())
    }

    /// Removes plugin `name`: the meta first (the switch), then its files.
    /// A meta that cannot be read is removed too; its files then belong to
    /// no meta and go with the next cleanup.
    pub fn commit_uninstall(&self, lock: &WriteLock, name: &str) -> Result<(), StoreError> {
        let meta = match self.get(name) {
            Ok(m) => Some(m),
            Err(e @ StoreError::BadMeta { .. }) => {
                tracing::warn!("removing an unreadable meta: {e}");
                None
            }
            Err(e) => return Err(e),
        };
        let files = meta
            .as_ref()
            .map(|m| self.checked_files_dir(m))
            .transpose()?;
        let path = self.meta_path(name);
        self.check_inside(&path)?;
        self.invalidate_index(lock)?;
        let removed = fs::remove_file(&path)
            .map_err(io_err(&path))
            .and_then(|()| fsync_dir(&self.metas_dir()));
        let indexed = self.write_index(lock);
        removed.and(indexed)?;
        fault_point("uninstall-meta-removed")?;
        self.remove_link(name)?;
        match files {
            Some(dir) => self.remove_files_dir(&dir),
            None => self.recover(lock),
        }
    }

    /// Points `names/<name>` at the meta's files dir (atomically replacing
    /// an older link).
    fn point_link(&self, meta: &Meta) -> Result<(), StoreError> {
        self.checked_files_dir(meta)?;
        let link = self.checked_name_link(meta.name())?;
        let parent = link.parent().unwrap_or(&self.dir).to_path_buf();
        mkdir(&parent)?;
        // Created only now: check again that no parent is a symlink.
        self.check_inside(&link)?;
        // From names/<a>/<b>: one `..` per name segment reaches the plugin dir.
        let mut target = PathBuf::new();
        for _ in meta.name().split('/') {
            target.push("..");
        }
        target.push(FILES_DIR);
        target.push(&meta.install_id);
        if fs::read_link(&link).ok().as_deref() == Some(target.as_path()) {
            return Ok(());
        }
        match fs::symlink_metadata(&link) {
            Ok(md) if !md.file_type().is_symlink() => {
                return Err(StoreError::Outside {
                    path: link,
                    reason: "a name link that is not a symlink is in the way",
                })
            }
            _ => {}
        }
        // A random name: symlink() never follows or replaces what is there.
        let tmp = parent.join(format!("{TMP_PREFIX}{}-link", new_install_id()));
        std::os::unix::fs::symlink(&target, &tmp).map_err(io_err(&tmp))?;
        fs::rename(&tmp, &link).map_err(io_err(&link))?;
        fsync_dir(&parent)
    }

    /// Removes `names/<name>` if it is a symlink (a dir there holds other
    /// plugins' links and stays).
    fn remove_link(&self, name: &str) -> Result<(), StoreError> {
        let link = self.checked_name_link(name)?;
        if let Ok(md) = fs::symlink_metadata(&link) {
            if md.file_type().is_symlink() {
                fs::remove_file(&link).map_err(io_err(&link))?;
            }
        }
        self.prune_empty_parents(&link);
        Ok(())
    }

    /// Removes a files dir unless a reader pins it (a shared flock on the
    /// dir, see [`Self::pin`]): then the next writer's sweep removes it.
    fn remove_files_dir(&self, dir: &Path) -> Result<(), StoreError> {
        self.check_inside(dir)?;
        let f = match open_dir_nofollow(dir) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err(dir)(e)),
        };
        match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            Ok(_held) => remove_tree(dir),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                tracing::debug!(dir = %dir.display(), "plugin store: files still in use, kept for a later sweep");
                Ok(())
            }
            Err((_, e)) => Err(io_err(dir)(e.into())),
        }
    }

    /// Pins the files dir of `meta` for this process, so no writer removes
    /// it while the plugin runs from it, and returns the meta whose files
    /// are pinned: if an upgrade switched the meta (and removed the old
    /// files) meanwhile, the current one.
    pub fn pin(&self, meta: &Meta) -> Result<Meta, StoreError> {
        use std::sync::Mutex;
        static PINS: Mutex<Vec<Flock<File>>> = Mutex::new(Vec::new());
        let mut meta = meta.clone();
        for _ in 0..100 {
            let dir = self.checked_files_dir(&meta)?;
            if let Ok(f) = open_dir_nofollow(&dir) {
                if let Ok(lock) = Flock::lock(f, FlockArg::LockShared) {
                    // A writer that removed the dir before we locked it left
                    // us a deleted dir: no links.
                    let alive =
                        nix::sys::stat::fstat(lock.as_raw_fd()).is_ok_and(|st| st.st_nlink > 0);
                    if alive {
                        PINS.lock().unwrap_or_else(|p| p.into_inner()).push(lock);
                        return Ok(meta);
                    }
                }
            }
            let now = self.get(meta.name())?;
            if now.install_id == meta.install_id {
                // Same meta, files gone: nothing better to pin.
                break;
            }
            meta = now;
        }
        Ok(meta)
    }

    /// Removes what a crashed writer left: files dirs no meta names (unless
    /// pinned), temp files, and name links that do not match their meta.
    fn recover(&self, lock: &WriteLock) -> Result<(), StoreError> {
        self.sweep_scratch()?;
        let (metas, unreadable) = self.list_all()?;
        // With a meta that cannot be read, which files are live is unknown:
        // remove only temp files until it is fixed or uninstalled.
        let sure = unreadable.is_empty();
        let live: BTreeSet<&str> = metas.iter().map(|m| m.install_id.as_str()).collect();
        let store = self.store_dir();
        if let Some(rd) = fs::read_dir(&store).ok().filter(|_| sure) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if !live.contains(n.as_str()) {
                    tracing::debug!(dir = %e.path().display(), "plugin store: removing leftover files");
                    self.remove_files_dir(&e.path())?;
                }
            }
        }
        for m in &metas {
            self.point_link(m)?;
        }
        if let Ok(rd) = fs::read_dir(self.metas_dir()) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        self.sweep(&self.names_dir(), &metas, sure)?;
        // A crashed writer may have left no index (or a store edited by
        // hand a stale one): every writer starts from a current one.
        self.write_index(lock)
    }

    /// Removes temp files and (when `links`) symlinks that no meta owns,
    /// walking the name dirs below `dir`.
    fn sweep(&self, dir: &Path, metas: &[Meta], links: bool) -> Result<(), StoreError> {
        let Ok(rd) = fs::read_dir(dir) else {
            return Ok(());
        };
        for e in rd.flatten() {
            let p = e.path();
            let n = e.file_name().to_string_lossy().into_owned();
            let Ok(ft) = e.file_type() else { continue };
            if n.starts_with(TMP_PREFIX) {
                let _ = fs::remove_file(&p);
            } else if ft.is_symlink() && links {
                let rel = p
                    .strip_prefix(self.names_dir())
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .into_owned();
                if !metas.iter().any(|m| m.name() == rel) {
                    let _ = fs::remove_file(&p);
                    self.prune_empty_parents(&p);
                }
            } else if ft.is_dir() {
                self.sweep(&p, metas, links)?;
            }
        }
        Ok(())
    }

    /// Removes the parent dirs of a name link (e.g. `names/example.com/`)
    /// left empty.
    fn prune_empty_parents(&self, link: &Path) {
        let names = self.names_dir();
        let mut p = link.to_path_buf();
        while let Some(parent) = p.parent() {
            if parent == names || !parent.starts_with(&names) {
                break;
            }
            if fs::remove_dir(parent).is_err() {
                break;
            }
            p = parent.to_path_buf();
        }
    }
}

/// Opens a dir without following a symlink at its last component.
fn open_dir_nofollow(dir: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(dir)
}

fn set_mode(p: &Path, mode: u32) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).map_err(io_err(p))
}

/// A fresh install id: 128 random bits as 32 lowercase hex digits.
pub fn new_install_id() -> String {
    use rand_core::{OsRng, RngCore};
    let mut b = [0u8; INSTALL_ID_LEN / 2];
    OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Builds a meta for a fresh install.
pub fn new_meta(manifest: Manifest, enabled: bool, signer: Option<String>) -> Meta {
    Meta {
        manifest,
        enabled,
        signer,
        installed_at: unix_now(),
        install_id: new_install_id(),
        origin: None,
        library: None,
        checked_by: None,
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
