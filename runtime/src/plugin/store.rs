//! The plugin store: one `<sha256(name)>.meta` JSON per plugin, and the
//! plugin's files.
//!
//! The meta is the single switch between states. Each install (or upgrade)
//! writes its files into a fresh `.store/<install_id>/` dir, runs the
//! Install callback there, and only then replaces the meta (temp file +
//! fsync + rename), whose `install_id` names that dir. A crash before the
//! rename leaves the old meta pointing at the old, untouched files; a crash
//! after it leaves the new meta pointing at complete new files. Readers need
//! no lock and never see a half state. `<name as path>` is a symlink to the
//! current files dir, for people and tools; the runtime goes through the
//! meta. Writers serialise on an exclusive `flock` of `.lock`, and each
//! writer first removes what a crashed one left behind (unreferenced files
//! dirs, temp files, stale symlinks).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::manifest::Manifest;

/// File names inside an installed plugin's dir.
pub const PLUGIN_SO: &str = "plugin.so";
/// The manifest beside the library.
pub const PLUGIN_MANIFEST: &str = "plugin.manifest";
/// The installed image, kept so its signature can be re-verified.
pub const PLUGIN_SIF: &str = "plugin.sif";

const LOCK_FILE: &str = ".lock";
const FILES_DIR: &str = ".store";
const TMP_PREFIX: &str = ".tmp-";

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
    /// A meta file that is not valid JSON of the expected shape.
    #[error("plugin store: {path}: invalid meta: {message}")]
    BadMeta {
        /// The meta file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A plugin name that would escape the plugin dir or is not a clean path.
    #[error("plugin name {name:?} is not a clean relative path: {reason}")]
    BadName {
        /// The offending name.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The named plugin is not installed.
    #[error("plugin \"{0}\" is not installed")]
    NotInstalled(String),
    /// The named plugin is already installed (and no upgrade was asked for).
    #[error("plugin \"{0}\" is already installed (use --upgrade to replace it)")]
    AlreadyInstalled(String),
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
    /// Unique per install or upgrade, so crash recovery can tell a new meta
    /// from the old one even when their contents match.
    pub install_id: String,
    /// The registry reference and digest it was installed from, if it came
    /// from one (`plugin install oras://…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
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

/// Checks that a plugin name is a clean relative path: no `..`, no absolute
/// path, no empty segment, no `.` segment, no leading dot in a segment (those
/// names are the store's own).
pub fn validate_name(name: &str) -> Result<(), StoreError> {
    let bad = |reason| StoreError::BadName {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("it is empty"));
    }
    if name.starts_with('/') {
        return Err(bad("it is absolute"));
    }
    if name.len() > 200 {
        return Err(bad("it is longer than 200 bytes"));
    }
    for seg in name.split('/') {
        match seg {
            "" => return Err(bad("it has an empty segment")),
            ".." => return Err(bad("it has a '..' segment")),
            "." => return Err(bad("it has a '.' segment")),
            s if s.starts_with('.') => return Err(bad("a segment starts with '.'")),
            s if s.chars().any(|c| c.is_control() || c == '\\') => {
                return Err(bad("it has control characters or backslashes"))
            }
            _ => {}
        }
    }
    // Belt and braces: the std path parser must agree it only has normal parts.
    if !Path::new(name)
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(bad("it is not a plain relative path"));
    }
    Ok(())
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
                // SAFETY: raise has no memory-safety preconditions.
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

/// Writes `bytes` to `path` atomically: temp file in the same dir, fsync,
/// rename over `path`, fsync the dir.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!("{TMP_PREFIX}{}-{file_name}", std::process::id()));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io_err(path))?;
    fsync_dir(dir)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn remove_tree(p: &Path) -> Result<(), StoreError> {
    match fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(p)(e)),
    }
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

    /// `<sha256(name)>.meta`.
    pub fn meta_path(&self, name: &str) -> PathBuf {
        self.dir
            .join(format!("{}.meta", sha256_hex(name.as_bytes())))
    }

    /// The human-facing path of a plugin, `<name as path>`: a symlink to
    /// its current files dir.
    pub fn name_link(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The dir holding an installed plugin's files (`plugin.so`,
    /// `plugin.manifest`, `plugin.sif` and what its Install callback wrote).
    pub fn files_dir(&self, meta: &Meta) -> PathBuf {
        self.dir.join(FILES_DIR).join(&meta.install_id)
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
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Default::default()),
            Err(e) => return Err(io_err(&self.dir)(e)),
        };
        let mut out = BTreeMap::new();
        let mut unreadable = Vec::new();
        for entry in rd {
            let entry = entry.map_err(io_err(&self.dir))?;
            let path = entry.path();
            // Only `<sha256 hex>.meta` files: a plugin named e.g. `x.meta`
            // has a name link of that name (a symlink), which is no meta.
            let file_name = entry.file_name();
            let is_meta = file_name
                .to_str()
                .and_then(|n| n.strip_suffix(".meta"))
                .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                && entry.file_type().is_ok_and(|t| t.is_file());
            if !is_meta {
                continue;
            }
            match Self::read_meta_file(&path) {
                Ok(meta) => {
                    out.insert(meta.manifest.name.clone(), meta);
                }
                Err(e) => unreadable.push(e),
            }
        }
        Ok((out.into_values().collect(), unreadable))
    }

    fn read_meta_file(path: &Path) -> Result<Meta, StoreError> {
        let bytes = fs::read(path).map_err(io_err(path))?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::BadMeta {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// One plugin's meta, or [`StoreError::NotInstalled`].
    pub fn get(&self, name: &str) -> Result<Meta, StoreError> {
        validate_name(name)?;
        let path = self.meta_path(name);
        match fs::metadata(&path) {
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
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&self.dir)
            .map_err(io_err(&self.dir))?;
        let path = self.dir.join(LOCK_FILE);
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let lock = Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| StoreError::Io {
            path: path.clone(),
            source: e.into(),
        })?;
        let guard = WriteLock { _lock: lock };
        self.recover()?;
        Ok(guard)
    }

    /// Rewrites one meta atomically (enable/disable).
    pub fn put_meta(&self, _lock: &WriteLock, meta: &Meta) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(meta).map_err(|e| StoreError::BadMeta {
            path: self.meta_path(meta.name()),
            message: e.to_string(),
        })?;
        write_atomic(&self.meta_path(meta.name()), &bytes, 0o644)
    }

    /// A fresh files dir for the install whose meta will be `meta`.
    pub fn new_staging(&self, _lock: &WriteLock, meta: &Meta) -> Result<Staging, StoreError> {
        use std::os::unix::fs::DirBuilderExt;
        let store = self.dir.join(FILES_DIR);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&store)
            .map_err(io_err(&store))?;
        let dir = self.files_dir(meta);
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
    /// the old ones. An error before the switch removes the staged files and
    /// leaves the previous state (nothing, or the old version) untouched.
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
                remove_tree(&self.files_dir(&old))?;
            }
        }
        Ok(())
    }

    /// Removes plugin `name`: the meta first (the switch), then its files.
    /// A meta that cannot be read is removed too; its files then belong to
    /// no meta and go with the next cleanup.
    pub fn commit_uninstall(&self, _lock: &WriteLock, name: &str) -> Result<(), StoreError> {
        let meta = match self.get(name) {
            Ok(m) => Some(m),
            Err(e @ StoreError::BadMeta { .. }) => {
                tracing::warn!("removing an unreadable meta: {e}");
                None
            }
            Err(e) => return Err(e),
        };
        let path = self.meta_path(name);
        fs::remove_file(&path).map_err(io_err(&path))?;
        fsync_dir(&self.dir)?;
        fault_point("uninstall-meta-removed")?;
        self.remove_link(name)?;
        match meta {
            Some(meta) => remove_tree(&self.files_dir(&meta)),
            None => self.recover(),
        }
    }

    /// Points `<name as path>` at the meta's files dir (atomically replacing
    /// an older link).
    fn point_link(&self, meta: &Meta) -> Result<(), StoreError> {
        let link = self.name_link(meta.name());
        let parent = link.parent().unwrap_or(&self.dir).to_path_buf();
        fs::create_dir_all(&parent).map_err(io_err(&parent))?;
        let depth = meta.name().split('/').count() - 1;
        let mut target = PathBuf::new();
        for _ in 0..depth {
            target.push("..");
        }
        target.push(FILES_DIR);
        target.push(&meta.install_id);
        if fs::read_link(&link).ok().as_deref() == Some(target.as_path()) {
            return Ok(());
        }
        let tmp = parent.join(format!("{TMP_PREFIX}{}-link", std::process::id()));
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&target, &tmp).map_err(io_err(&tmp))?;
        fs::rename(&tmp, &link).map_err(io_err(&link))?;
        fsync_dir(&parent)
    }

    fn remove_link(&self, name: &str) -> Result<(), StoreError> {
        let link = self.name_link(name);
        match fs::symlink_metadata(&link) {
            Ok(md) if md.file_type().is_symlink() => {
                fs::remove_file(&link).map_err(io_err(&link))?
            }
            Ok(_) => remove_tree(&link)?,
            Err(_) => {}
        }
        self.prune_empty_parents(name);
        Ok(())
    }

    /// Removes what a crashed writer left: files dirs no meta names, temp
    /// files, and name links that do not match their meta.
    fn recover(&self) -> Result<(), StoreError> {
        let (metas, unreadable) = self.list_all()?;
        // With a meta that cannot be read, which files are live is unknown:
        // remove only temp files until it is fixed or uninstalled.
        let sure = unreadable.is_empty();
        let live: std::collections::BTreeSet<&str> =
            metas.iter().map(|m| m.install_id.as_str()).collect();
        let store = self.dir.join(FILES_DIR);
        if let Some(rd) = fs::read_dir(&store).ok().filter(|_| sure) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if !live.contains(n.as_str()) {
                    tracing::debug!(dir = %e.path().display(), "plugin store: removing leftover files");
                    remove_tree(&e.path())?;
                }
            }
        }
        for m in &metas {
            self.point_link(m)?;
        }
        self.sweep(&self.dir.clone(), &metas, sure)
    }

    /// Removes temp files and (when `links`) symlinks into `.store` that no
    /// meta owns, walking the name dirs below `dir`.
    fn sweep(&self, dir: &Path, metas: &[Meta], links: bool) -> Result<(), StoreError> {
        let Ok(rd) = fs::read_dir(dir) else {
            return Ok(());
        };
        for e in rd.flatten() {
            let p = e.path();
            let n = e.file_name().to_string_lossy().into_owned();
            if dir == self.dir && (n == FILES_DIR || n == LOCK_FILE) {
                continue;
            }
            let Ok(ft) = e.file_type() else { continue };
            if n.starts_with(TMP_PREFIX) {
                let _ = fs::remove_file(&p);
            } else if ft.is_symlink() && links {
                let rel = p
                    .strip_prefix(&self.dir)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .into_owned();
                if !metas.iter().any(|m| m.name() == rel) {
                    let _ = fs::remove_file(&p);
                    self.prune_empty_parents(&rel);
                }
            } else if ft.is_dir() {
                self.sweep(&p, metas, links)?;
            }
        }
        Ok(())
    }

    /// Removes parent dirs of `name` (e.g. `example.com/`) left empty.
    fn prune_empty_parents(&self, name: &str) {
        let mut p = self.name_link(name);
        while let Some(parent) = p.parent() {
            if parent == self.dir || !parent.starts_with(&self.dir) {
                break;
            }
            if fs::remove_dir(parent).is_err() {
                break;
            }
            p = parent.to_path_buf();
        }
    }
}

/// A staging dir for the files of an install, inside the plugin dir so the
/// final move is a rename. Removed by the next writer if left behind.
#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
}

impl Staging {
    /// The staging dir.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes one file into the staging dir and fsyncs it.
    pub fn write(&self, name: &str, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        let p = self.dir.join(name);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&p)
            .map_err(io_err(&p))?;
        f.write_all(bytes).map_err(io_err(&p))?;
        f.sync_all().map_err(io_err(&p))?;
        // umask may have narrowed the mode; the loader wants it exact.
        set_mode(&p, mode)
    }

    /// Copies file `src` into the staging dir as `name` and fsyncs it.
    pub fn copy_from(&self, name: &str, src: &Path, mode: u32) -> Result<(), StoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        let p = self.dir.join(name);
        let mut from = File::open(src).map_err(io_err(src))?;
        // Private until complete: with a loose umask the default mode would
        // let others open it for writing before `set_mode` narrows it.
        let mut to = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)
            .map_err(io_err(&p))?;
        io::copy(&mut from, &mut to).map_err(io_err(&p))?;
        to.sync_all().map_err(io_err(&p))?;
        set_mode(&p, mode)
    }
}

fn set_mode(p: &Path, mode: u32) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).map_err(io_err(p))
}

/// Builds a meta for a fresh install.
pub fn new_meta(manifest: Manifest, enabled: bool, signer: Option<String>) -> Meta {
    Meta {
        manifest,
        enabled,
        signer,
        installed_at: unix_now(),
        install_id: format!(
            "{}-{}",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
            std::process::id()
        ),
        origin: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::manifest::CallbackKind;

    fn manifest(name: &str) -> Manifest {
        Manifest {
            name: name.into(),
            author: "a".into(),
            version: "1".into(),
            description: "d".into(),
            api_version: "1.0.0".into(),
            runtime_version: String::new(),
            rustc_version: String::new(),
            target: String::new(),
            callbacks: vec![CallbackKind::Command],
            commands: vec![],
            flags: vec![],
            global_pre_run: false,
            sha256: "00".into(),
        }
    }

    fn install(store: &Store, name: &str, payload: &[u8]) -> Result<(), crate::Error> {
        let lock = store.lock()?;
        let meta = new_meta(manifest(name), true, None);
        let st = store.new_staging(&lock, &meta)?;
        st.write(PLUGIN_SO, payload, 0o644)?;
        store.commit_install(&lock, st, &meta, |_| Ok(()))
    }

    fn so_of(store: &Store, name: &str) -> Vec<u8> {
        fs::read(store.name_link(name).join(PLUGIN_SO)).unwrap()
    }

    #[test]
    fn names_must_be_clean_relative_paths() {
        for ok in ["x", "example.com/x", "a/b/c", "a-b_c.d"] {
            validate_name(ok).unwrap();
        }
        for bad in [
            "", "/x", "../x", "a/../b", "a//b", "a/", ".", "./a", ".hidden", "a\\b",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn install_list_uninstall() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path().join("plugins"));
        assert!(store.list().unwrap().is_empty());
        install(&store, "example.com/b", b"b").unwrap();
        install(&store, "example.com/a", b"a").unwrap();
        let names: Vec<_> = store
            .list()
            .unwrap()
            .iter()
            .map(|m| m.name().to_owned())
            .collect();
        assert_eq!(names, ["example.com/a", "example.com/b"]);
        assert_eq!(so_of(&store, "example.com/a"), b"a");
        let lock = store.lock().unwrap();
        store.commit_uninstall(&lock, "example.com/a").unwrap();
        assert!(!store.name_link("example.com/a").exists());
        assert!(matches!(
            store.get("example.com/a"),
            Err(StoreError::NotInstalled(_))
        ));
        store.commit_uninstall(&lock, "example.com/b").unwrap();
        assert!(
            !store.dir().join("example.com").exists(),
            "empty parent left behind"
        );
    }

    #[test]
    fn failed_activation_keeps_the_old_version() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path().join("plugins"));
        install(&store, "p", b"old").unwrap();
        let before = store.get("p").unwrap();
        let lock = store.lock().unwrap();
        let meta = new_meta(manifest("p"), true, None);
        let st = store.new_staging(&lock, &meta).unwrap();
        st.write(PLUGIN_SO, b"new", 0o644).unwrap();
        let err = store
            .commit_install(&lock, st, &meta, |_| {
                Err(StoreError::NotInstalled("install callback failed".into()).into())
            })
            .unwrap_err();
        assert!(err.to_string().contains("install callback failed"));
        assert_eq!(store.get("p").unwrap(), before);
        assert_eq!(so_of(&store, "p"), b"old");
        let dirs = fs::read_dir(store.dir().join(FILES_DIR)).unwrap().count();
        assert_eq!(dirs, 1);
    }

    #[test]
    fn a_name_ending_in_meta_is_not_mistaken_for_a_meta() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path().join("plugins"));
        install(&store, "x.meta", b"x").unwrap();
        install(&store, "y", b"y").unwrap();
        let (metas, unreadable) = store.list_all().unwrap();
        assert!(unreadable.is_empty(), "{unreadable:?}");
        let names: Vec<_> = metas.iter().map(|m| m.name()).collect();
        assert_eq!(names, ["x.meta", "y"]);
        assert_eq!(so_of(&store, "x.meta"), b"x");
    }

    #[test]
    fn an_unreadable_meta_hides_only_itself_and_can_be_uninstalled() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path().join("plugins"));
        install(&store, "a/good", b"good").unwrap();
        install(&store, "a/broken", b"broken").unwrap();
        let broken = store.get("a/broken").unwrap();
        fs::write(store.meta_path("a/broken"), b"{\"manifest\":").unwrap();
        let names: Vec<_> = store
            .list()
            .unwrap()
            .into_iter()
            .map(|m| m.manifest.name)
            .collect();
        assert_eq!(names, ["a/good"]);
        // Writers still work, and keep the broken plugin's files meanwhile.
        let lock = store.lock().unwrap();
        assert!(store.files_dir(&broken).join(PLUGIN_SO).exists());
        let mut good = store.get("a/good").unwrap();
        good.enabled = false;
        store.put_meta(&lock, &good).unwrap();
        assert!(matches!(
            store.get("a/broken"),
            Err(StoreError::BadMeta { .. })
        ));
        store.commit_uninstall(&lock, "a/broken").unwrap();
        assert!(!store.meta_path("a/broken").exists());
        assert!(!store.files_dir(&broken).exists());
        assert!(!store.name_link("a/broken").exists());
        assert_eq!(so_of(&store, "a/good"), b"good");
    }

    #[test]
    fn leftovers_of_a_crash_are_cleaned_by_the_next_writer() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path().join("plugins"));
        install(&store, "a/p", b"old").unwrap();
        let old = store.get("a/p").unwrap();
        {
            // Crash 1: new files written, meta never switched.
            let lock = store.lock().unwrap();
            let meta = new_meta(manifest("a/p"), true, None);
            let st = store.new_staging(&lock, &meta).unwrap();
            st.write(PLUGIN_SO, b"new", 0o644).unwrap();
        }
        assert_eq!(store.get("a/p").unwrap(), old);
        assert_eq!(so_of(&store, "a/p"), b"old");
        let newer = new_meta(manifest("a/p"), true, None);
        {
            // Crash 2: meta switched, link and old files not updated yet.
            let lock = store.lock().unwrap();
            let st = store.new_staging(&lock, &newer).unwrap();
            st.write(PLUGIN_SO, b"newer", 0o644).unwrap();
            store.put_meta(&lock, &newer).unwrap();
        }
        let _lock = store.lock().unwrap();
        assert_eq!(store.get("a/p").unwrap(), newer);
        assert_eq!(so_of(&store, "a/p"), b"newer");
        let dirs: Vec<_> = fs::read_dir(store.dir().join(FILES_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(dirs, vec![newer.install_id.as_str()]);
        // Crash 3: uninstall removed the meta only.
        fs::remove_file(store.meta_path("a/p")).unwrap();
        drop(_lock);
        let _lock = store.lock().unwrap();
        assert!(!store.dir().join("a").exists());
        assert_eq!(
            fs::read_dir(store.dir().join(FILES_DIR)).unwrap().count(),
            0
        );
    }
}
