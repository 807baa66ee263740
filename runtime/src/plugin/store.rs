//! The plugin store: one `<sha256(name)>.meta` JSON per plugin, and the
//! plugin's files under `<name as path>/` in the plugin dir.
//!
//! Readers never take a lock: every meta is replaced by temp file + fsync +
//! rename, so a reader sees the old or the new meta, never half of one.
//! Writers serialise on an exclusive `flock` of `.lock`. Changes that touch
//! more than one file (install, upgrade, uninstall) first write a journal
//! (`.txn`) naming what they are about to do; a crash at any point leaves a
//! journal that the next writer rolls back or forward, so the store always
//! ends up in the old or the new state.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::manifest::{CallbackKind, Manifest};

/// File names inside an installed plugin's dir.
pub const PLUGIN_SO: &str = "plugin.so";
/// The manifest beside the library.
pub const PLUGIN_MANIFEST: &str = "plugin.manifest";
/// The installed image, kept so its signature can be re-verified.
pub const PLUGIN_SIF: &str = "plugin.sif";

const LOCK_FILE: &str = ".lock";
const JOURNAL: &str = ".txn";
const STAGING_PREFIX: &str = ".staging-";
const BACKUP_PREFIX: &str = ".backup-";
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
}

impl Meta {
    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }
}

/// A multi-file change in progress, written before the change starts.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Journal {
    /// Plugin name.
    name: String,
    /// The meta the change ends with; `None` for an uninstall.
    new_meta: Option<Meta>,
    /// Where the previous install dir was moved, if there was one.
    backup: Option<String>,
    /// The staging dir holding the new files, if any.
    staging: Option<String>,
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

/// Hex sha256 of a byte string.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

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

    /// The install dir of a plugin: `<name as path>/`.
    pub fn install_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Every installed plugin's meta, sorted by name. A missing plugin dir
    /// means no plugins. Opens no plugin library.
    pub fn list(&self) -> Result<Vec<Meta>, StoreError> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&self.dir)(e)),
        };
        let mut out = BTreeMap::new();
        for entry in rd {
            let entry = entry.map_err(io_err(&self.dir))?;
            let path = entry.path();
            let is_meta = path.extension().is_some_and(|e| e == "meta")
                && !entry.file_name().to_string_lossy().starts_with('.');
            if !is_meta {
                continue;
            }
            let meta = Self::read_meta_file(&path)?;
            out.insert(meta.manifest.name.clone(), meta);
        }
        Ok(out.into_values().collect())
    }

    /// Enabled plugins that registered `kind`, sorted by name.
    pub fn enabled_with(&self, kind: CallbackKind) -> Result<Vec<Meta>, StoreError> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|m| m.enabled && m.manifest.has(kind))
            .collect())
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

    /// A fresh staging dir in the plugin dir, for the files of an install.
    pub fn new_staging(&self, _lock: &WriteLock) -> Result<Staging, StoreError> {
        let dir = tempfile::Builder::new()
            .prefix(STAGING_PREFIX)
            .tempdir_in(&self.dir)
            .map_err(io_err(&self.dir))?
            .keep();
        set_mode(&dir, 0o755)?;
        Ok(Staging { dir })
    }

    fn journal_path(&self) -> PathBuf {
        self.dir.join(JOURNAL)
    }

    fn write_journal(&self, j: &Journal) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(j).map_err(|e| StoreError::BadMeta {
            path: self.journal_path(),
            message: e.to_string(),
        })?;
        write_atomic(&self.journal_path(), &bytes, 0o600)
    }

    fn clear_journal(&self) -> Result<(), StoreError> {
        match fs::remove_file(self.journal_path()) {
            Ok(()) => fsync_dir(&self.dir),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&self.journal_path())(e)),
        }
    }

    /// Moves the staged files into place as plugin `meta.name()`, runs
    /// `activate` on the final install dir (the plugin's Install callback),
    /// and only then writes the meta. Any error, or a crash at any point,
    /// leaves the previous state (nothing, or the old version on upgrade).
    pub fn commit_install(
        &self,
        lock: &WriteLock,
        staging: Staging,
        meta: &Meta,
        activate: impl FnOnce(&Path) -> Result<(), crate::Error>,
    ) -> Result<(), crate::Error> {
        let name = meta.name().to_owned();
        validate_name(&name)?;
        let final_dir = self.install_dir(&name);
        let had_old = final_dir.exists();
        let backup = had_old.then(|| {
            format!(
                "{BACKUP_PREFIX}{}-{}",
                std::process::id(),
                sha256_hex(name.as_bytes())
            )
        });
        let staging_name = staging
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.write_journal(&Journal {
            name: name.clone(),
            new_meta: Some(meta.clone()),
            backup: backup.clone(),
            staging: Some(staging_name),
        })?;
        let result = (|| -> Result<(), crate::Error> {
            fault_point("journal-written")?;
            if let Some(b) = &backup {
                fs::rename(&final_dir, self.dir.join(b)).map_err(io_err(&final_dir))?;
                fault_point("old-moved")?;
            }
            if let Some(parent) = final_dir.parent() {
                fs::create_dir_all(parent).map_err(io_err(parent))?;
            }
            fs::rename(&staging.dir, &final_dir).map_err(io_err(&final_dir))?;
            fsync_dir(final_dir.parent().unwrap_or(&self.dir))?;
            fault_point("files-moved")?;
            activate(&final_dir)?;
            fault_point("activated")?;
            self.put_meta(lock, meta)?;
            fault_point("meta-written")?;
            Ok(())
        })();
        match result {
            Ok(()) => {
                self.recover()?;
                Ok(())
            }
            Err(e) => {
                // Undo what was done; the journal still names it.
                if let Err(re) = self.recover() {
                    tracing::error!("plugin store: rollback failed: {re}");
                }
                Err(e)
            }
        }
    }

    /// Removes plugin `name`: its meta and its files, crash-safely.
    pub fn commit_uninstall(&self, _lock: &WriteLock, name: &str) -> Result<(), StoreError> {
        validate_name(name)?;
        if !self.meta_path(name).exists() {
            return Err(StoreError::NotInstalled(name.to_owned()));
        }
        let final_dir = self.install_dir(name);
        let backup = format!(
            "{BACKUP_PREFIX}{}-{}",
            std::process::id(),
            sha256_hex(name.as_bytes())
        );
        self.write_journal(&Journal {
            name: name.to_owned(),
            new_meta: None,
            backup: Some(backup.clone()),
            staging: None,
        })?;
        let result = (|| -> Result<(), StoreError> {
            if final_dir.exists() {
                fs::rename(&final_dir, self.dir.join(&backup)).map_err(io_err(&final_dir))?;
            }
            fault_point("uninstall-moved")?;
            let meta = self.meta_path(name);
            fs::remove_file(&meta).map_err(io_err(&meta))?;
            fsync_dir(&self.dir)?;
            fault_point("uninstall-meta-removed")?;
            Ok(())
        })();
        let rec = self.recover();
        result.and(rec)
    }

    /// Finishes or undoes a change described by a leftover journal, and
    /// removes stray temp and staging files. The meta decides: if it already
    /// is the journal's target state the change rolls forward, else back.
    fn recover(&self) -> Result<(), StoreError> {
        let jpath = self.journal_path();
        if let Ok(bytes) = fs::read(&jpath) {
            match serde_json::from_slice::<Journal>(&bytes) {
                Ok(j) => self.apply_recovery(&j)?,
                Err(e) => {
                    // A journal is written atomically, so a bad one was never ours.
                    tracing::warn!("plugin store: ignoring unreadable journal: {e}");
                }
            }
            self.clear_journal()?;
        }
        self.sweep_leftovers()
    }

    fn apply_recovery(&self, j: &Journal) -> Result<(), StoreError> {
        let final_dir = self.install_dir(&j.name);
        let current = match fs::read(self.meta_path(&j.name)) {
            Ok(b) => serde_json::from_slice::<Meta>(&b).ok(),
            Err(_) => None,
        };
        let done = current == j.new_meta;
        tracing::debug!(plugin = %j.name, done, "plugin store: recovering interrupted change");
        if done {
            // Roll forward: the new state is in place, drop what it replaced.
            if let Some(b) = &j.backup {
                remove_tree(&self.dir.join(b))?;
            }
        } else {
            // Roll back: restore the old files (if any) under the old meta.
            let backup = j.backup.as_ref().map(|b| self.dir.join(b));
            match backup {
                Some(b) if b.exists() => {
                    remove_tree(&final_dir)?;
                    fs::rename(&b, &final_dir).map_err(io_err(&final_dir))?;
                }
                Some(_) => {
                    // The old dir was never moved away: it is still in place.
                }
                None => {
                    if j.new_meta.is_some() {
                        remove_tree(&final_dir)?;
                    }
                }
            }
        }
        if let Some(s) = &j.staging {
            remove_tree(&self.dir.join(s))?;
        }
        if !final_dir.exists() {
            self.prune_empty_parents(&j.name);
        }
        fsync_dir(&self.dir)
    }

    /// Removes parent dirs of `name` (e.g. `example.com/`) left empty.
    fn prune_empty_parents(&self, name: &str) {
        let mut p = self.install_dir(name);
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

    fn sweep_leftovers(&self) -> Result<(), StoreError> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err(&self.dir)(e)),
        };
        for entry in rd.flatten() {
            let n = entry.file_name().to_string_lossy().into_owned();
            if n.starts_with(STAGING_PREFIX) || n.starts_with(TMP_PREFIX) {
                let p = entry.path();
                if p.is_dir() {
                    remove_tree(&p)?;
                } else {
                    let _ = fs::remove_file(&p);
                }
            }
        }
        Ok(())
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
        let p = self.dir.join(name);
        let mut from = File::open(src).map_err(io_err(src))?;
        let mut to = OpenOptions::new()
            .write(true)
            .create_new(true)
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let st = store.new_staging(&lock)?;
        st.write(PLUGIN_SO, payload, 0o644)?;
        store.commit_install(&lock, st, &new_meta(manifest(name), true, None), |_| Ok(()))
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
        assert_eq!(
            fs::read(store.install_dir("example.com/a").join(PLUGIN_SO)).unwrap(),
            b"a"
        );
        let lock = store.lock().unwrap();
        store.commit_uninstall(&lock, "example.com/a").unwrap();
        assert!(!store.install_dir("example.com/a").exists());
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
    fn failed_activation_rolls_back_an_upgrade() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path().join("plugins"));
        install(&store, "p", b"old").unwrap();
        let before = store.get("p").unwrap();
        let lock = store.lock().unwrap();
        let st = store.new_staging(&lock).unwrap();
        st.write(PLUGIN_SO, b"new", 0o644).unwrap();
        let err = store
            .commit_install(&lock, st, &new_meta(manifest("p"), true, None), |_| {
                Err(crate::Error::Usage("install callback failed".into()))
            })
            .unwrap_err();
        assert!(err.to_string().contains("install callback failed"));
        assert_eq!(store.get("p").unwrap(), before);
        assert_eq!(
            fs::read(store.install_dir("p").join(PLUGIN_SO)).unwrap(),
            b"old"
        );
        let leftovers: Vec<_> = fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.') && n != LOCK_FILE)
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn crash_after_meta_write_rolls_forward() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(d.path().join("plugins"));
        install(&store, "p", b"old").unwrap();
        // Simulate a crash right after the meta was written: journal still there,
        // backup dir still there.
        let lock = store.lock().unwrap();
        let meta = new_meta(manifest("p"), false, Some("k".into()));
        let final_dir = store.install_dir("p");
        let backup = format!("{BACKUP_PREFIX}1-x");
        store
            .write_journal(&Journal {
                name: "p".into(),
                new_meta: Some(meta.clone()),
                backup: Some(backup.clone()),
                staging: None,
            })
            .unwrap();
        fs::rename(&final_dir, store.dir().join(&backup)).unwrap();
        fs::create_dir(&final_dir).unwrap();
        fs::write(final_dir.join(PLUGIN_SO), b"new").unwrap();
        store.put_meta(&lock, &meta).unwrap();
        drop(lock);
        let _lock = store.lock().unwrap();
        assert_eq!(store.get("p").unwrap(), meta);
        assert_eq!(fs::read(final_dir.join(PLUGIN_SO)).unwrap(), b"new");
        assert!(!store.dir().join(&backup).exists());
        assert!(!store.journal_path().exists());
    }
}
