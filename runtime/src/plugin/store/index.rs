//! The CLI index, `.index` in the plugin dir: what the command line needs
//! from every installed plugin (name, enabled, version, callbacks, commands,
//! flags, pre-run hooks) in one file, so start-up reads one file instead of
//! one meta per plugin.
//!
//! It is a cache of the metas, never a source of truth: every store write
//! rewrites it under the writer lock (removing it before the meta switch,
//! so a crash in between leaves no index rather than a stale one), and a
//! reader checks it against the metas dir (its inode and times, and the
//! exact set of meta file names) before using it. Anything else — a missing,
//! stale, corrupt or insecure index, or one that names a plugin whose meta
//! is not there — and the reader rebuilds it from the metas (and, as root,
//! writes it back when no writer holds the store). Loading, signatures,
//! consent, the in-use check and the engine's callbacks read the metas
//! themselves; the index only shapes the command line.
//!
//! Format: the first line is the JSON [`Header`]; line `i + 2` is the meta
//! of `header.plugins[i]`, as one line of JSON. A reader parses the header
//! and only the metas it needs (a built-in command needs none but those of
//! plugins that add flags to it or run a global pre-run hook).

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::{io_err, write_atomic, Meta, Store, StoreError, WriteLock, LOCK_FILE};
use crate::plugin::manifest::CallbackKind;

/// The index file in the plugin dir.
pub(super) const INDEX_FILE: &str = ".index";
/// Bumped when the format changes: another format is rebuilt, not read.
const FORMAT: u32 = 1;
/// The largest index read (far above 10,000 plugins).
const MAX_INDEX: u64 = 256 << 20;

/// What the command line needs to know about one installed plugin without
/// reading its meta.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Plugin name.
    pub name: String,
    /// Whether it is enabled.
    pub enabled: bool,
    /// Its version.
    pub version: String,
    /// The callback kinds it registered.
    pub callbacks: Vec<CallbackKind>,
    /// The top-level commands it adds.
    pub commands: Vec<String>,
    /// The built-in commands it adds flags to.
    pub flags_on: Vec<String>,
    /// It registered a global pre-run hook.
    pub global_pre_run: bool,
}

impl Summary {
    /// The summary of `meta`.
    pub fn of(meta: &Meta) -> Self {
        let m = &meta.manifest;
        let mut flags_on: Vec<String> = m.flags.iter().map(|f| f.command.clone()).collect();
        flags_on.sort();
        flags_on.dedup();
        Self {
            name: m.name.clone(),
            enabled: meta.enabled,
            version: m.version.clone(),
            callbacks: m.callbacks.clone(),
            commands: m.commands.iter().map(|c| c.name.clone()).collect(),
            flags_on,
            global_pre_run: m.global_pre_run,
        }
    }
}

/// The state of the metas dir an index was built from. Any change of its
/// entries (a meta written, renamed or removed) changes the dir's mtime and
/// ctime; the file names are compared too, so a change within one clock
/// tick that adds or removes a meta is still seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    ino: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    /// The meta file names, sorted (readable or not).
    files: Vec<String>,
}

/// The first line of the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Header {
    format: u32,
    stamp: Stamp,
    /// One per readable meta, sorted by name.
    plugins: Vec<Summary>,
    /// Why the other metas could not be read (for the start-up warnings).
    unreadable: Vec<String>,
}

/// The command line's view of the installed plugins: every plugin's
/// [`Summary`], and the metas a caller asked for.
#[derive(Debug, Clone, Default)]
pub struct CliSurface {
    /// Every readable installed plugin, sorted by name.
    pub plugins: Vec<Summary>,
    /// The metas of the plugins the caller selected, sorted by name. For
    /// the command line only: what loads a plugin reads its meta again.
    pub metas: Vec<Meta>,
    /// Why some metas could not be read.
    pub unreadable: Vec<String>,
    /// Whether it came from a current index (false: rebuilt from the metas).
    pub from_index: bool,
}

/// True for the name of a meta file: `<64 hex digits>.meta`.
pub(super) fn is_meta_file(name: &str) -> bool {
    name.strip_suffix(".meta")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl Store {
    fn index_path(&self) -> std::path::PathBuf {
        self.dir.join(INDEX_FILE)
    }

    /// The current state of the metas dir (a missing dir: the default).
    fn stamp(&self) -> Result<Stamp, StoreError> {
        let dir = self.metas_dir();
        let md = match fs::symlink_metadata(&dir) {
            Ok(md) => md,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Stamp::default()),
            Err(e) => return Err(io_err(&dir)(e)),
        };
        let mut files = Vec::new();
        for e in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let e = e.map_err(io_err(&dir))?;
            if let Some(n) = e.file_name().to_str().filter(|n| is_meta_file(n)) {
                files.push(n.to_owned());
            }
        }
        files.sort();
        Ok(Stamp {
            ino: md.ino(),
            mtime: (md.mtime(), md.mtime_nsec()),
            ctime: (md.ctime(), md.ctime_nsec()),
            files,
        })
    }

    /// The index's contents for the store as it is now (reads every meta).
    fn build_index(&self) -> Result<(Header, Vec<Meta>), StoreError> {
        // The stamp first: if the metas change while they are read, it no
        // longer matches them and the next reader rebuilds.
        let stamp = self.stamp()?;
        let (metas, unreadable) = self.list_all()?;
        let header = Header {
            format: FORMAT,
            stamp,
            plugins: metas.iter().map(Summary::of).collect(),
            unreadable: unreadable.iter().map(ToString::to_string).collect(),
        };
        Ok((header, metas))
    }

    fn write_index_file(&self, header: &Header, metas: &[Meta]) -> Result<(), StoreError> {
        let path = self.index_path();
        let mut out = json_line(&path, header)?;
        for m in metas {
            out.push(b'\n');
            out.extend(json_line(&path, m)?);
        }
        out.push(b'\n');
        // Rewritten only when it changed, so a writer that changes nothing
        // leaves the store byte for byte as it was.
        if fs::read(&path).is_ok_and(|old| old == out) {
            return Ok(());
        }
        write_atomic(&path, &out, 0o644)
    }

    /// Rewrites the index from the metas (writers, under the lock).
    pub(super) fn write_index(&self, _lock: &WriteLock) -> Result<(), StoreError> {
        let (header, metas) = self.build_index()?;
        self.write_index_file(&header, &metas)
    }

    /// Removes the index before a meta switch: a crash before the index is
    /// written again leaves none (readers rebuild), never a stale one.
    pub(super) fn invalidate_index(&self, _lock: &WriteLock) -> Result<(), StoreError> {
        let path = self.index_path();
        match fs::remove_file(&path) {
            Ok(()) => super::fsync_dir(&self.dir),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Reads the index if it is current: a regular file (as root: root's,
    /// not group/world-writable), of this format, built from exactly the
    /// metas dir as it is now, every plugin it names having its meta there.
    /// `None` when it must be rebuilt. Returns the header and the text of
    /// the index, whose metas start at the offset returned.
    fn read_index(&self) -> Option<(Header, String, usize)> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.index_path();
        let mut f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .ok()?;
        let md = f.metadata().ok()?;
        if !md.is_file() || md.len() > MAX_INDEX {
            return None;
        }
        if let Err(e) = crate::trust::secure::check_opened_in_checked_dir(&path, &md) {
            tracing::debug!("plugin index not used: {e}");
            return None;
        }
        let mut text = String::with_capacity(usize::try_from(md.len()).ok()? + 1);
        f.read_to_string(&mut text).ok()?;
        let body_at = text.find('\n')? + 1;
        let header: Header = serde_json::from_str(&text[..body_at - 1]).ok()?;
        if header.format != FORMAT {
            return None;
        }
        let stamp = self.stamp().ok()?;
        if header.stamp != stamp
            || header.plugins.len() + header.unreadable.len() != stamp.files.len()
        {
            tracing::debug!("plugin index is stale");
            return None;
        }
        // Every plugin it names has its own meta file (the file name is the
        // hash of the name), so it never offers a plugin that is not there.
        let mut seen = BTreeSet::new();
        for p in &header.plugins {
            let file = format!("{}.meta", super::sha256_hex(p.name.as_bytes()));
            if stamp.files.binary_search(&file).is_err() || !seen.insert(file) {
                tracing::debug!(plugin = %p.name, "plugin index names a plugin without a meta");
                return None;
            }
        }
        Some((header, text, body_at))
    }

    /// The command line's view of the installed plugins, from the index
    /// when it is current and from the metas otherwise, with the metas of
    /// the plugins `want` selects (it sees every plugin's summary and the
    /// one to decide on). As root, a rebuilt index is written back when no
    /// writer holds the store (a writer writes its own).
    pub fn cli_surface(
        &self,
        want: impl Fn(&[Summary], &Summary) -> bool,
    ) -> Result<CliSurface, StoreError> {
        // As with the metas: as root, a store another user can change is refused.
        crate::trust::secure::check_root_owned(&self.metas_dir())?;
        if let Some((header, text, body_at)) = self.read_index() {
            if let Some(metas) = select(&header, &text[body_at..], &want) {
                return Ok(CliSurface {
                    plugins: header.plugins,
                    metas,
                    unreadable: header.unreadable,
                    from_index: true,
                });
            }
            tracing::debug!("plugin index is corrupt");
        }
        tracing::debug!("rebuilding the plugin index from the metas");
        let (header, metas) = self.build_index()?;
        if crate::trust::secure::enforced() {
            self.write_back(&header, &metas);
        }
        let chosen = metas
            .iter()
            .zip(&header.plugins)
            .filter(|(_, s)| want(&header.plugins, s))
            .map(|(m, _)| m.clone())
            .collect();
        Ok(CliSurface {
            plugins: header.plugins,
            metas: chosen,
            unreadable: header.unreadable,
            from_index: false,
        })
    }

    /// Writes a reader's rebuilt index, if the writer lock is free right now
    /// (never waits) and the metas did not change while they were read.
    fn write_back(&self, header: &Header, metas: &[Meta]) {
        use std::os::unix::fs::OpenOptionsExt;
        let lock_path = self.dir.join(LOCK_FILE);
        let Ok(f) = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&lock_path)
        else {
            return;
        };
        let Ok(_held) = Flock::lock(f, FlockArg::LockExclusiveNonblock) else {
            return;
        };
        if self.stamp().ok().as_ref() != Some(&header.stamp) {
            return;
        }
        if let Err(e) = self.write_index_file(header, metas) {
            tracing::debug!("plugin index not written: {e}");
        }
    }
}

/// The metas `want` selects, from the index body; `None` if a line does not
/// parse or does not match its summary (a corrupt index).
fn select(
    header: &Header,
    body: &str,
    want: &impl Fn(&[Summary], &Summary) -> bool,
) -> Option<Vec<Meta>> {
    let mut lines = body.lines();
    let mut out = Vec::new();
    for s in &header.plugins {
        let line = lines.next()?;
        if !want(&header.plugins, s) {
            continue;
        }
        let meta: Meta = serde_json::from_str(line).ok()?;
        if Summary::of(&meta) != *s || !super::validate_install_id(&meta.install_id) {
            return None;
        }
        out.push(meta);
    }
    lines.next().is_none().then_some(out)
}

/// One line of the index: compact JSON (which escapes every newline).
fn json_line<T: Serialize>(path: &Path, v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::BadMeta {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Opens the index the way a reader does, for tests: `None` when a reader
/// would rebuild it.
#[cfg(test)]
pub(super) fn is_current(store: &Store) -> bool {
    store.read_index().is_some()
}
