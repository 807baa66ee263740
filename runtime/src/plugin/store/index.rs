//! The CLI index, `.index` in the plugin dir: what the command line needs
//! from every installed plugin (name, enabled, version, callbacks, commands,
//! flags, pre-run hooks) in one file, so start-up reads one file instead of
//! one meta per plugin.
//!
//! It is a cache of the metas, never a source of truth: every store write
//! rewrites it under the writer lock (removing it before the meta switch,
//! so a crash in between leaves no index rather than a stale one), and a
//! reader checks it against the metas dir before using it. Anything else —
//! a missing, stale, corrupt or insecure index, or one that names a plugin
//! whose meta is not there — and the reader rebuilds it from the metas (and,
//! as root, writes it back when no writer holds the store). Loading,
//! signatures, consent and the in-use check read the metas themselves; the
//! index shapes the command line and tells the engine which plugins to read.
//!
//! Staleness is checked with one `stat` of the metas dir, not a listing:
//! whoever writes the index first gives the metas dir an mtime of the
//! precise current time (`utimensat`, under the writer lock) and records it.
//! Any later change of the dir's entries (a meta written, renamed or
//! removed) sets the mtime to the kernel's clock again, which cannot repeat
//! that exact nanosecond. On a file system that keeps coarser times than
//! the one set, the index says so and readers compare the list of meta file
//! names too (as git does for a "racily clean" index).
//!
//! Format: line 1 is the JSON [`Head`] (the stamp, and the summaries of the
//! few plugins a built-in command or a container run can need); line 2 the
//! sorted meta file names; line 3 every plugin's [`Summary`]; line `i + 4`
//! the meta of plugin `i`, as one line of JSON. A built-in command parses
//! line 1 only, plus the metas of the plugins it needs (usually none).

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
const FORMAT: u32 = 2;
/// The largest index read (far above 10,000 plugins).
const MAX_INDEX: u64 = 256 << 20;
/// The callback kinds a container run loads (everything but the command
/// line's and install's).
const RUNTIME_KINDS: [CallbackKind; 4] = [
    CallbackKind::EngineConfig,
    CallbackKind::MonitorContainer,
    CallbackKind::PostStartProcess,
    CallbackKind::RegisterImageDriver,
];

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
    /// The one-line description of each of `commands`, in the same order.
    pub abouts: Vec<String>,
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
            abouts: m.commands.iter().map(|c| c.about.clone()).collect(),
            flags_on,
            global_pre_run: m.global_pre_run,
        }
    }

    /// Whether it registered a callback a container run loads.
    pub fn has_runtime_callbacks(&self) -> bool {
        self.callbacks.iter().any(|k| RUNTIME_KINDS.contains(k))
    }

    /// Whether anything but its own commands can need it: enabled, and it
    /// adds flags to a built-in command, runs a global pre-run hook or
    /// registered a runtime callback.
    pub fn is_active(&self) -> bool {
        self.enabled
            && (self.global_pre_run || !self.flags_on.is_empty() || self.has_runtime_callbacks())
    }
}

/// Which plugins a reader of the index looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Only the active ones ([`Summary::is_active`]): what a built-in
    /// command needs. Reads the index's first line only.
    Active,
    /// Every installed plugin.
    All,
}

/// The state of the metas dir an index was built from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    ino: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(md: &fs::Metadata) -> Self {
        Self {
            ino: md.ino(),
            mtime: (md.mtime(), md.mtime_nsec()),
            ctime: (md.ctime(), md.ctime_nsec()),
        }
    }
}

/// One active plugin: its position in the index and its summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Active {
    at: usize,
    summary: Summary,
}

/// The first line of the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Head {
    format: u32,
    stamp: Stamp,
    /// The stamp's mtime is the precise one the writer set (the file system
    /// kept it): no later change can repeat it.
    precise: bool,
    /// How many plugins the index holds (lines 3 and after).
    count: usize,
    /// The active plugins, in name order.
    active: Vec<Active>,
    /// Why the other metas could not be read (for the start-up warnings).
    unreadable: Vec<String>,
}

/// A whole index, as written.
struct Built {
    head: Head,
    files: Vec<String>,
    plugins: Vec<Summary>,
    metas: Vec<Meta>,
}

/// The command line's view of the installed plugins: the [`Summary`] of
/// every plugin in the scope asked for, and the metas a caller selected.
#[derive(Debug, Clone, Default)]
pub struct CliSurface {
    /// Every readable installed plugin in the scope, sorted by name.
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

/// The lines of an index file, read as far as they are asked for: a
/// built-in command reads the first line (a few hundred bytes), not the
/// metas of every plugin.
struct LazyLines {
    file: std::fs::File,
    buf: Vec<u8>,
    /// Where each line found so far starts (line `i` is complete when
    /// `starts[i + 1]` is known).
    starts: Vec<usize>,
    eof: bool,
}

impl LazyLines {
    /// How much is read at a time.
    const CHUNK: usize = 32 << 10;

    fn new(file: std::fs::File) -> Self {
        Self {
            file,
            buf: Vec::new(),
            starts: vec![0],
            eof: false,
        }
    }

    /// Line `i` (0-based), without its newline; `None` past the end or if
    /// it is not UTF-8.
    fn line(&mut self, i: usize) -> Option<&str> {
        while self.starts.len() <= i + 1 {
            if self.eof || self.buf.len() as u64 > MAX_INDEX {
                return None;
            }
            let from = self.buf.len();
            self.buf.resize(from + Self::CHUNK, 0);
            let n = loop {
                match self.file.read(&mut self.buf[from..]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other.ok()?,
                }
            };
            self.buf.truncate(from + n);
            self.eof = n == 0;
            let found = self.buf[from..]
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(j, _)| from + j + 1);
            self.starts.extend(found);
        }
        std::str::from_utf8(&self.buf[self.starts[i]..self.starts[i + 1] - 1]).ok()
    }

    /// Whether line `i` is the last one.
    fn ends_after(&mut self, i: usize) -> bool {
        self.line(i).is_some()
            && self.line(i + 1).is_none()
            && self.eof
            && self.starts[i + 1] == self.buf.len()
    }
}

/// An index read from disk and found current: its head, and the rest of
/// its lines as far as they are needed.
struct Current {
    head: Head,
    lines: LazyLines,
}

impl Current {
    /// The meta file names (line 2).
    fn files(&mut self) -> Option<Vec<String>> {
        serde_json::from_str(self.lines.line(1)?).ok()
    }

    /// Every plugin's summary (line 3). Whether each has its meta is
    /// checked for the plugins whose metas are read ([`surface_from`]): a
    /// listing only shows names, and hashing every name would cost a
    /// listing more than the rest of its reading.
    fn plugins(&mut self) -> Option<Vec<Summary>> {
        let plugins: Vec<Summary> = serde_json::from_str(self.lines.line(2)?).ok()?;
        (plugins.len() == self.head.count).then_some(plugins)
    }

    /// The metas of `chosen` (positions in the index, increasing), each
    /// checked against its summary.
    fn metas(&mut self, chosen: &[(usize, &Summary)]) -> Option<Vec<Meta>> {
        let mut out = Vec::with_capacity(chosen.len());
        for (at, summary) in chosen {
            let meta: Meta = serde_json::from_str(self.lines.line(at + 3)?).ok()?;
            if Summary::of(&meta) != **summary || !super::validate_install_id(&meta.install_id) {
                return None;
            }
            out.push(meta);
        }
        Some(out)
    }

    /// Whether it holds exactly `head.count` plugin lines.
    fn complete(&mut self) -> bool {
        self.lines.ends_after(self.head.count + 2)
    }
}

/// Every plugin named has its own meta file (the file name is the hash of
/// the name), once: an index never offers a plugin that is not there.
fn names_have_metas<'a>(plugins: impl IntoIterator<Item = &'a Summary>, files: &[String]) -> bool {
    let mut seen = BTreeSet::new();
    plugins.into_iter().all(|p| {
        let file = format!("{}.meta", super::sha256_hex(p.name.as_bytes()));
        let ok = files.binary_search(&file).is_ok() && seen.insert(file);
        if !ok {
            tracing::debug!(plugin = %p.name, "plugin index names a plugin without a meta");
        }
        ok
    })
}

impl Store {
    fn index_path(&self) -> std::path::PathBuf {
        self.dir.join(INDEX_FILE)
    }

    /// The metas dir's stamp (`None`: no metas dir).
    fn dir_stamp(&self) -> Result<Option<Stamp>, StoreError> {
        let dir = self.metas_dir();
        match fs::symlink_metadata(&dir) {
            Ok(md) => Ok(Some(Stamp::of(&md))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&dir)(e)),
        }
    }

    /// The meta file names in the metas dir, sorted (readable or not).
    fn meta_files(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.metas_dir();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&dir)(e)),
        };
        let mut files = Vec::new();
        for e in rd {
            let e = e.map_err(io_err(&dir))?;
            if let Some(n) = e.file_name().to_str().filter(|n| is_meta_file(n)) {
                files.push(n.to_owned());
            }
        }
        files.sort();
        Ok(files)
    }

    /// Gives the metas dir an mtime no later change can repeat (the precise
    /// time now) and returns its stamp, and whether the file system kept
    /// that mtime exactly. Writers only, under the lock.
    fn mark_metas_dir(&self, _lock: &WriteLock) -> Result<(Stamp, bool), StoreError> {
        use nix::sys::stat::{utimensat, UtimensatFlags};
        use nix::sys::time::TimeSpec;
        let dir = self.metas_dir();
        let Some(_) = self.dir_stamp()? else {
            return Ok((Stamp::default(), true));
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let now = TimeSpec::from_duration(now);
        utimensat(None, &dir, &now, &now, UtimensatFlags::NoFollowSymlink)
            .map_err(|e| io_err(&dir)(e.into()))?;
        let stamp = self.dir_stamp()?.unwrap_or_default();
        let precise = stamp.mtime == (now.tv_sec(), now.tv_nsec());
        Ok((stamp, precise))
    }

    /// The index's contents for the store as it is now (reads every meta),
    /// under `stamp`.
    fn build_index(&self, stamp: Stamp, precise: bool) -> Result<Built, StoreError> {
        // The caller took the stamp first: if the metas change while they
        // are read, it no longer matches them and the next reader rebuilds.
        let files = self.meta_files()?;
        let (metas, unreadable) = self.list_all()?;
        let plugins: Vec<Summary> = metas.iter().map(Summary::of).collect();
        let active = plugins
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_active())
            .map(|(at, s)| Active {
                at,
                summary: s.clone(),
            })
            .collect();
        Ok(Built {
            head: Head {
                format: FORMAT,
                stamp,
                precise,
                count: plugins.len(),
                active,
                unreadable: unreadable.iter().map(ToString::to_string).collect(),
            },
            files,
            plugins,
            metas,
        })
    }

    /// The index file's bytes for `built`.
    fn render(&self, built: &Built) -> Result<Vec<u8>, StoreError> {
        let path = self.index_path();
        let mut out = json_line(&path, &built.head)?;
        for line in [
            json_line(&path, &built.files)?,
            json_line(&path, &built.plugins)?,
        ] {
            out.push(b'\n');
            out.extend(line);
        }
        for m in &built.metas {
            out.push(b'\n');
            out.extend(json_line(&path, m)?);
        }
        out.push(b'\n');
        Ok(out)
    }

    /// Brings the index up to date from the metas (writers, under the
    /// lock). A current index that says what the metas say is left as it
    /// is, so a writer that changes nothing leaves the store byte for byte
    /// as it was.
    pub(super) fn write_index(&self, lock: &WriteLock) -> Result<(), StoreError> {
        if self.read_index().is_some() {
            let now = self.build_index(Stamp::default(), false)?;
            let rendered = self.render(&now)?;
            let on_disk = fs::read(self.index_path()).unwrap_or_default();
            if matches!((body(&rendered), body(&on_disk)), (Some(a), Some(b)) if a == b) {
                return Ok(());
            }
        }
        self.rewrite_index(lock).map(drop)
    }

    /// Writes the index from the metas, under a fresh mark of the metas
    /// dir, and returns what it wrote.
    fn rewrite_index(&self, lock: &WriteLock) -> Result<Built, StoreError> {
        let (stamp, precise) = self.mark_metas_dir(lock)?;
        let built = self.build_index(stamp, precise)?;
        write_atomic(&self.index_path(), &self.render(&built)?, 0o644)?;
        Ok(built)
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
    /// metas dir as it is now. `None` when it must be rebuilt.
    fn read_index(&self) -> Option<Current> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.index_path();
        let f = OpenOptions::new()
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
        let mut lines = LazyLines::new(f);
        let head: Head = serde_json::from_str(lines.line(0)?).ok()?;
        if head.format != FORMAT {
            return None;
        }
        let mut current = Current { head, lines };
        if self.dir_stamp().ok()?.unwrap_or_default() != current.head.stamp {
            tracing::debug!("plugin index is stale");
            return None;
        }
        // A coarse mtime could repeat: compare the entries too.
        if !current.head.precise && self.meta_files().ok()? != current.files()? {
            tracing::debug!("plugin index is stale (meta files differ)");
            return None;
        }
        Some(current)
    }

    /// The command line's view of the installed plugins in `scope`, from
    /// the index when it is current and from the metas otherwise, with the
    /// metas of the plugins `want` selects (it sees the scope's summaries
    /// and the one to decide on). As root, a rebuilt index is written back
    /// when no writer holds the store (a writer writes its own).
    pub fn cli_surface(
        &self,
        scope: Scope,
        want: impl Fn(&[Summary], &Summary) -> bool,
    ) -> Result<CliSurface, StoreError> {
        // As with the metas: as root, a store another user can change is refused.
        crate::trust::secure::check_root_owned(&self.metas_dir())?;
        if let Some(mut current) = self.read_index() {
            if let Some(surface) = surface_from(&mut current, scope, &want) {
                return Ok(surface);
            }
            tracing::debug!("plugin index is corrupt");
        }
        tracing::debug!("rebuilding the plugin index from the metas");
        let built = match self.write_back() {
            Some(built) => built,
            None => self.build_index(Stamp::default(), false)?,
        };
        let in_scope: Vec<(&Meta, &Summary)> = built
            .metas
            .iter()
            .zip(&built.plugins)
            .filter(|(_, s)| scope == Scope::All || s.is_active())
            .collect();
        let plugins: Vec<Summary> = in_scope.iter().map(|(_, s)| (*s).clone()).collect();
        let metas = in_scope
            .iter()
            .filter(|(_, s)| want(&plugins, s))
            .map(|(m, _)| (*m).clone())
            .collect();
        Ok(CliSurface {
            plugins,
            metas,
            unreadable: built.head.unreadable,
            from_index: false,
        })
    }

    /// The enabled plugins that registered a callback a container run
    /// loads, read from their metas (never from the index), in name order.
    /// Which plugins those are comes from a current index, else from every
    /// meta. Fails closed: any meta that cannot be read is an error, as
    /// that plugin's policy must not be silently dropped.
    pub fn runtime_metas(&self) -> Result<Vec<Meta>, StoreError> {
        let is_runtime = |m: &Meta| m.enabled && Summary::of(m).has_runtime_callbacks();
        crate::trust::secure::check_root_owned(&self.metas_dir())?;
        if let Some(mut current) = self.read_index().filter(|c| c.head.unreadable.is_empty()) {
            let active = current.head.active.clone();
            let files = if active.is_empty() {
                Some(Vec::new())
            } else {
                current.files()
            };
            if files.is_some_and(|f| names_have_metas(active.iter().map(|a| &a.summary), &f)) {
                let mut out = Vec::new();
                for a in active.iter().filter(|a| a.summary.has_runtime_callbacks()) {
                    let meta = self
                        .get(&a.summary.name)
                        .map_err(|e| StoreError::Incomplete(Box::new(e)))?;
                    if is_runtime(&meta) {
                        out.push(meta);
                    }
                }
                return Ok(out);
            }
        }
        let all = match self.write_back() {
            Some(built) if built.head.unreadable.is_empty() => built.metas,
            // Read again for the error naming the unreadable meta.
            _ => self.list_complete()?,
        };
        Ok(all.into_iter().filter(is_runtime).collect())
    }

    /// As root, rebuilds and writes the index, if the writer lock is free
    /// right now (never waits): readers after this one use it. Returns what
    /// it built, so the caller need not read every meta again.
    fn write_back(&self) -> Option<Built> {
        use std::os::unix::fs::OpenOptionsExt;
        if !crate::trust::secure::enforced() {
            return None;
        }
        let lock_path = self.dir.join(LOCK_FILE);
        let Ok(f) = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&lock_path)
        else {
            return None;
        };
        let Ok(held) = Flock::lock(f, FlockArg::LockExclusiveNonblock) else {
            return None;
        };
        let lock = WriteLock { _lock: held };
        // It was found unusable: rewritten whatever its stamp says.
        self.rewrite_index(&lock)
            .map_err(|e| tracing::debug!("plugin index not written: {e}"))
            .ok()
    }
}

/// The surface of a current index; `None` if it is corrupt.
fn surface_from(
    current: &mut Current,
    scope: Scope,
    want: &impl Fn(&[Summary], &Summary) -> bool,
) -> Option<CliSurface> {
    let head = current.head.clone();
    let (plugins, positions): (Vec<Summary>, Vec<usize>) = match scope {
        Scope::Active => head
            .active
            .iter()
            .map(|a| (a.summary.clone(), a.at))
            .unzip(),
        Scope::All => {
            let all = current.plugins()?;
            let n = all.len();
            (all, (0..n).collect())
        }
    };
    if positions.windows(2).any(|w| w[0] >= w[1]) || positions.iter().any(|&at| at >= head.count) {
        return None;
    }
    let chosen: Vec<(usize, &Summary)> = positions
        .iter()
        .zip(&plugins)
        .filter(|(_, s)| want(&plugins, s))
        .map(|(at, s)| (*at, s))
        .collect();
    if !chosen.is_empty() {
        let files = current.files()?;
        if !names_have_metas(chosen.iter().map(|(_, s)| *s), &files) {
            return None;
        }
    }
    let metas = current.metas(&chosen)?;
    // The whole file is checked only when all of it is read anyway.
    if metas.len() == head.count && !current.complete() {
        return None;
    }
    Some(CliSurface {
        plugins,
        metas,
        unreadable: head.unreadable.clone(),
        from_index: true,
    })
}

/// An index's bytes after its first line, and its first line's contents
/// but for the stamp: what must match for a current index to say what the
/// metas say.
fn body(index: &[u8]) -> Option<(Head, &[u8])> {
    let nl = index.iter().position(|b| *b == b'\n')?;
    let mut head: Head = serde_json::from_slice(&index[..nl]).ok()?;
    head.stamp = Stamp::default();
    head.precise = false;
    Some((head, &index[nl..]))
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
