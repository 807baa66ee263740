//! Applying OCI layers to a rootfs directory, without ever leaving it.
//!
//! Every path in a layer is hostile: it is split into plain components (a
//! `..` component refuses the layer), its parent directory is resolved from
//! the rootfs descriptor with openat2 `RESOLVE_IN_ROOT` (so an absolute or
//! `../` symlink planted by an earlier entry resolves *inside* the rootfs),
//! and the last component is created with `*at` calls relative to that
//! parent (`O_EXCL|O_NOFOLLOW`, `symlinkat`, `linkat` without following), so
//! nothing is written through a symlink. A hard link's target is resolved
//! the same way, so a link to `/etc/shadow` names the rootfs's own file.
//!
//! Layer semantics follow the OCI image spec: layers in order; `.wh.NAME`
//! removes `NAME` of a lower layer; `.wh..wh..opq` empties its directory of
//! lower layers' entries; an entry replaces what is there unless both are
//! directories. Ownership is kept as root; an unprivileged build owns every
//! file itself (as Apptainer does) and keeps its directories owner-writable
//! and its files owner-readable, so it can finish and clean up.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Uid};
use sha2::{Digest as _, Sha256};

use super::OciError;

/// The whiteout prefix of the OCI layer format.
const WHITEOUT: &str = ".wh.";
/// The opaque-directory marker.
const OPAQUE: &str = ".wh..wh..opq";

/// A rootfs being assembled from layers.
#[derive(Debug)]
pub struct Rootfs {
    fd: OwnedFd,
    privileged: bool,
}

/// Why one entry could not be applied (rendered inside [`OciError::Layer`]).
fn entry_err(entry: &Path, reason: impl Into<String>) -> String {
    format!("entry {:?}: {}", entry.display().to_string(), reason.into())
}

fn errno_reason(e: Errno) -> String {
    e.desc().to_lowercase()
}

impl Rootfs {
    /// Opens the (empty) directory `path` as the rootfs; ownership is kept
    /// when the caller is root.
    pub fn open(path: &Path) -> Result<Self, OciError> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| OciError::Io {
            path: path.to_owned(),
            error: e.into(),
        })?;
        // SAFETY: open returned a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // The root of a container is world-readable, whatever the temp dir
        // it was made in (a layer's "./" entry may set it otherwise).
        nix::sys::stat::fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(0o755)).map_err(|e| {
            OciError::Io {
                path: path.to_owned(),
                error: e.into(),
            }
        })?;
        Ok(Self {
            fd,
            privileged: nix::unistd::geteuid().is_root(),
        })
    }

    /// Applies one layer blob (a tar, gzip- or zstd-compressed, detected
    /// by its magic) read from `blob`, checking that the blob's sha256 is
    /// `digest` (`sha256:HEX`). On a mismatch the rootfs is left half
    /// applied: the caller throws it away.
    pub fn apply_layer(&self, blob: impl Read, digest: &str) -> Result<(), OciError> {
        let layer_err = |reason: String| OciError::Layer {
            digest: digest.to_owned(),
            reason,
        };
        let mut hashed = HashingReader::new(blob);
        {
            let mut buffered = BufReader::with_capacity(256 * 1024, &mut hashed);
            let head = buffered
                .fill_buf()
                .map_err(|e| layer_err(format!("reading: {}", super::io_reason(&e))))?;
            let decoder: Box<dyn Read + '_> = if head.starts_with(&[0x1f, 0x8b]) {
                Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
            } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
                Box::new(
                    zstd::stream::read::Decoder::with_buffer(buffered)
                        .map_err(|e| layer_err(format!("zstd: {}", super::io_reason(&e))))?,
                )
            } else {
                Box::new(buffered)
            };
            let mut archive = tar::Archive::new(decoder);
            let entries = archive
                .entries()
                .map_err(|e| layer_err(format!("not a tar archive: {}", super::io_reason(&e))))?;
            let mut created = HashSet::new();
            for entry in entries {
                let entry = entry.map_err(|e| {
                    layer_err(format!("damaged tar archive: {}", super::io_reason(&e)))
                })?;
                self.apply_entry(entry, &mut created).map_err(layer_err)?;
            }
            // The rest of the stream (tar padding, compressed trailer) is
            // part of the blob and of its digest.
            let mut rest = archive.into_inner();
            std::io::copy(&mut rest, &mut std::io::sink())
                .map_err(|e| layer_err(format!("reading: {}", super::io_reason(&e))))?;
        }
        std::io::copy(&mut hashed, &mut std::io::sink())
            .map_err(|e| layer_err(format!("reading: {}", super::io_reason(&e))))?;
        let actual = hashed.digest();
        if actual != digest {
            return Err(OciError::Digest {
                what: format!("layer {digest}"),
                expected: digest.to_owned(),
                actual,
            });
        }
        Ok(())
    }

    fn apply_entry<R: Read>(
        &self,
        mut entry: tar::Entry<'_, R>,
        created: &mut HashSet<PathBuf>,
    ) -> Result<(), String> {
        let raw = entry
            .path()
            .map_err(|e| format!("bad path: {}", super::io_reason(&e)))?
            .into_owned();
        let path = clean(&raw).map_err(|r| entry_err(&raw, r))?;
        let Some(name) = path.file_name().map(OsStr::to_owned) else {
            // The rootfs itself ("./"): only its mode is taken.
            if entry.header().entry_type().is_dir() {
                let mode = entry
                    .header()
                    .mode()
                    .map_err(|e| entry_err(&raw, e.to_string()))?;
                nix::sys::stat::fchmod(self.fd.as_raw_fd(), self.dir_mode(mode))
                    .map_err(|e| entry_err(&raw, errno_reason(e)))?;
            }
            return Ok(());
        };
        let parent = path.parent().unwrap_or(Path::new(""));
        let name_bytes = name.as_bytes();
        if name_bytes == OPAQUE.as_bytes() {
            return self
                .opaque(parent, created)
                .map_err(|e| entry_err(&raw, errno_reason(e)));
        }
        if let Some(target) = name_bytes.strip_prefix(WHITEOUT.as_bytes()) {
            let target = OsStr::from_bytes(target);
            if target.is_empty() || target == "." || target == ".." {
                return Err(entry_err(&raw, "bad whiteout"));
            }
            if created.contains(&parent.join(target)) {
                return Ok(());
            }
            return match self.resolve(parent, false) {
                Ok(dir) => remove_all(dir.as_raw_fd(), target)
                    .or_else(ignore_missing)
                    .map_err(|e| entry_err(&raw, errno_reason(e))),
                Err(Errno::ENOENT | Errno::ENOTDIR) => Ok(()),
                Err(e) => Err(entry_err(&raw, errno_reason(e))),
            };
        }
        let dir = self
            .resolve(parent, true)
            .map_err(|e| entry_err(&raw, format!("parent directory: {}", errno_reason(e))))?;
        self.create(&mut entry, dir.as_raw_fd(), &name)
            .map_err(|r| entry_err(&raw, r))?;
        created.insert(path);
        Ok(())
    }

    /// Creates `name` in `dir` from the entry, replacing what is there
    /// unless both are directories.
    fn create<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        dir: RawFd,
        name: &OsStr,
    ) -> Result<(), String> {
        // Everything from the header first: the body is read below.
        let h = entry.header();
        let kind = h.entry_type();
        let mode = h.mode().map_err(|e| e.to_string())?;
        // Empty numeric fields (some writers leave them blank) read as 0.
        let uid = h.uid().unwrap_or(0);
        let gid = h.gid().unwrap_or(0);
        let mtime = h.mtime().unwrap_or(0);
        let major = h.device_major().ok().flatten().unwrap_or(0);
        let minor = h.device_minor().ok().flatten().unwrap_or(0);
        let link_name = entry
            .link_name()
            .map_err(|e| super::io_reason(&e))?
            .map(|l| l.into_owned());
        let existing =
            nix::sys::stat::fstatat(Some(dir), name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW);
        let existing_dir =
            matches!(&existing, Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR);
        if existing.is_ok() && !(kind.is_dir() && existing_dir) {
            remove_all(dir, name).map_err(errno_reason)?;
        }
        let owner = self.privileged.then(|| {
            (
                Uid::from_raw(uid.try_into().unwrap_or(u32::MAX)),
                Gid::from_raw(gid.try_into().unwrap_or(u32::MAX)),
            )
        });
        use tar::EntryType as T;
        match kind {
            T::Directory => {
                if !existing_dir {
                    nix::sys::stat::mkdirat(Some(dir), name, Mode::from_bits_truncate(0o700))
                        .map_err(errno_reason)?;
                }
                let fd = open_at(dir, name, OFlag::O_DIRECTORY | OFlag::O_RDONLY)?;
                self.own_and_mode(fd.as_raw_fd(), owner, self.dir_mode(mode))?;
            }
            T::Regular | T::Continuous => {
                let fd = open_at(dir, name, OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL)?;
                let mut file = std::fs::File::from(fd);
                std::io::copy(entry, &mut file).map_err(|e| super::io_reason(&e))?;
                let file_mode = if self.privileged { mode } else { mode | 0o600 };
                self.own_and_mode(
                    file.as_raw_fd(),
                    owner,
                    Mode::from_bits_truncate(file_mode & 0o7777),
                )?;
                let t = nix::sys::time::TimeSpec::new(mtime as i64, 0);
                nix::sys::stat::futimens(file.as_raw_fd(), &t, &t).map_err(errno_reason)?;
            }
            T::Symlink => {
                let target = link_name.ok_or("symlink without a target")?;
                nix::unistd::symlinkat(&target, Some(dir), name).map_err(errno_reason)?;
                if let Some((u, g)) = owner {
                    nix::unistd::fchownat(
                        Some(dir),
                        name,
                        Some(u),
                        Some(g),
                        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                    )
                    .map_err(errno_reason)?;
                }
            }
            T::Link => {
                let target = link_name.ok_or("hard link without a target")?;
                let target = clean(&target).map_err(|r| format!("hard link target: {r}"))?;
                let (tdir, tname) = match (target.parent(), target.file_name()) {
                    (Some(p), Some(n)) => (p, n),
                    _ => return Err("hard link to the rootfs itself".into()),
                };
                let tdir = self
                    .resolve(tdir, false)
                    .map_err(|e| format!("hard link target: {}", errno_reason(e)))?;
                // No AT_SYMLINK_FOLLOW: a link to a symlink links the
                // symlink itself, never what it points at.
                nix::unistd::linkat(
                    Some(tdir.as_raw_fd()),
                    tname,
                    Some(dir),
                    name,
                    nix::fcntl::AtFlags::empty(),
                )
                .map_err(|e| format!("hard link target: {}", errno_reason(e)))?;
            }
            T::Fifo | T::Char | T::Block => {
                let (sflag, dev) = match kind {
                    T::Fifo => (SFlag::S_IFIFO, 0),
                    _ if !self.privileged => {
                        // Only root can make device nodes; Apptainer skips
                        // them in unprivileged builds too.
                        tracing::debug!(?name, "skipping a device node (not root)");
                        return Ok(());
                    }
                    _ => {
                        let sflag = if kind == T::Char {
                            SFlag::S_IFCHR
                        } else {
                            SFlag::S_IFBLK
                        };
                        (sflag, nix::sys::stat::makedev(major.into(), minor.into()))
                    }
                };
                nix::sys::stat::mknodat(
                    Some(dir),
                    name,
                    sflag,
                    Mode::from_bits_truncate(0o600),
                    dev,
                )
                .map_err(errno_reason)?;
                let fd = open_at(dir, name, OFlag::O_PATH)?;
                if let Some((u, g)) = owner {
                    nix::unistd::fchownat(
                        Some(fd.as_raw_fd()),
                        "",
                        Some(u),
                        Some(g),
                        nix::fcntl::AtFlags::AT_EMPTY_PATH,
                    )
                    .map_err(errno_reason)?;
                }
                nix::sys::stat::fchmodat(
                    Some(dir),
                    name,
                    Mode::from_bits_truncate(mode & 0o7777),
                    nix::sys::stat::FchmodatFlags::FollowSymlink,
                )
                .map_err(errno_reason)?;
            }
            // PAX and GNU headers are consumed by the tar crate; anything
            // else (sockets do not exist in tar) is skipped.
            other => tracing::debug!(?name, ?other, "skipping a tar entry of this type"),
        }
        Ok(())
    }

    /// Writes `data` to `rel` (a clean relative path) inside the rootfs,
    /// replacing what is there, with `mode`, owned by the caller; missing
    /// directories are made. Resolved like a layer entry.
    pub fn write_file(&self, rel: &Path, data: &[u8], mode: u32) -> Result<(), OciError> {
        use std::io::Write;
        let err = |reason: String| OciError::Io {
            path: Path::new("/").join(rel),
            error: std::io::Error::other(reason),
        };
        let rel = clean(rel).map_err(|r| err(r.into()))?;
        let (parent, name) = match (rel.parent(), rel.file_name()) {
            (Some(p), Some(n)) => (p, n),
            _ => return Err(err("not a file path".into())),
        };
        let dir = self
            .resolve(parent, true)
            .map_err(|e| err(errno_reason(e)))?;
        remove_all(dir.as_raw_fd(), name)
            .or_else(ignore_missing)
            .map_err(|e| err(errno_reason(e)))?;
        let fd = open_at(
            dir.as_raw_fd(),
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
        )
        .map_err(err)?;
        let mut f = std::fs::File::from(fd);
        f.write_all(data).map_err(|e| err(super::io_reason(&e)))?;
        nix::sys::stat::fchmod(f.as_raw_fd(), Mode::from_bits_truncate(mode))
            .map_err(|e| err(errno_reason(e)))
    }

    /// Makes the directory `rel` (and its parents, 0755) when missing.
    pub fn ensure_dir(&self, rel: &Path) -> Result<(), OciError> {
        let rel = clean(rel).map_err(|r| OciError::Io {
            path: Path::new("/").join(rel),
            error: std::io::Error::other(r),
        })?;
        self.resolve(&rel, true)
            .map(drop)
            .map_err(|e| OciError::Io {
                path: Path::new("/").join(&rel),
                error: e.into(),
            })
    }

    /// chown (root only) then chmod: chown clears setuid bits, so the mode
    /// comes last.
    fn own_and_mode(&self, fd: RawFd, owner: Option<(Uid, Gid)>, mode: Mode) -> Result<(), String> {
        if let Some((u, g)) = owner {
            nix::unistd::fchown(fd, Some(u), Some(g)).map_err(errno_reason)?;
        }
        nix::sys::stat::fchmod(fd, mode).map_err(errno_reason)
    }

    /// A directory's mode: as in the layer for root; owner rwx added
    /// otherwise, so later layers and the cleanup can write in it.
    fn dir_mode(&self, mode: u32) -> Mode {
        let mode = if self.privileged { mode } else { mode | 0o700 };
        Mode::from_bits_truncate(mode & 0o7777)
    }

    /// Removes every entry of `dir` that this layer did not create.
    fn opaque(&self, dir: &Path, created: &HashSet<PathBuf>) -> Result<(), Errno> {
        let fd = match self.resolve(dir, false) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(e),
        };
        for child in list(fd.as_raw_fd())? {
            if !created.contains(&dir.join(&child)) {
                remove_all(fd.as_raw_fd(), &child).or_else(ignore_missing)?;
            }
        }
        Ok(())
    }

    /// Opens the directory `rel` (clean, relative) inside the rootfs with
    /// `RESOLVE_IN_ROOT`; with `create`, missing directories are made
    /// (0755, as tar does), each resolved the same way.
    fn resolve(&self, rel: &Path, create: bool) -> Result<OwnedFd, Errno> {
        match open_in_root(&self.fd, rel) {
            Err(Errno::ENOENT) if create => {}
            other => return other,
        }
        let mut prefix = PathBuf::new();
        let mut fd = open_in_root(&self.fd, Path::new(""))?;
        for comp in rel.components() {
            prefix.push(comp);
            fd = match open_in_root(&self.fd, &prefix) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => {
                    let mode = 0o755;
                    match nix::sys::stat::mkdirat(
                        Some(fd.as_raw_fd()),
                        comp.as_os_str(),
                        Mode::from_bits_truncate(mode),
                    ) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(e),
                    }
                    open_in_root(&self.fd, &prefix)?
                }
                Err(e) => return Err(e),
            };
        }
        Ok(fd)
    }
}

/// `..` refuses the entry; `.`, a leading `/` and empty components go.
fn clean(p: &Path) -> Result<PathBuf, &'static str> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => return Err("path leaves the rootfs (\"..\")"),
            Component::Prefix(_) => return Err("bad path"),
        }
    }
    Ok(out)
}

fn ignore_missing(e: Errno) -> Result<(), Errno> {
    if e == Errno::ENOENT {
        Ok(())
    } else {
        Err(e)
    }
}

/// An O_PATH descriptor of the directory `rel` under `root`, resolved as
/// if `root` were `/` (symlinks included), magic links refused.
fn open_in_root(root: &OwnedFd, rel: &Path) -> Result<OwnedFd, Errno> {
    let rel: &Path = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = nix::fcntl::openat2(root.as_raw_fd(), rel, how)?;
    // SAFETY: openat2 returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens `name` in `dir` without following a symlink.
fn open_at(dir: RawFd, name: &OsStr, flags: OFlag) -> Result<OwnedFd, String> {
    let fd = nix::fcntl::openat(
        Some(dir),
        name,
        flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(errno_reason)?;
    // SAFETY: openat returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The names in the directory `fd` (without `.` and `..`).
fn list(fd: RawFd) -> Result<Vec<std::ffi::OsString>, Errno> {
    let mut d = nix::dir::Dir::openat(
        Some(fd),
        ".",
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    for e in d.iter() {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(OsStr::from_bytes(n).to_owned());
        }
    }
    Ok(names)
}

/// Removes `name` in `dir`, a directory with everything in it, never
/// following a symlink.
fn remove_all(dir: RawFd, name: &OsStr) -> Result<(), Errno> {
    use nix::unistd::UnlinkatFlags;
    match nix::unistd::unlinkat(Some(dir), name, UnlinkatFlags::NoRemoveDir) {
        Err(Errno::EISDIR) => {}
        other => return other,
    }
    let fd = nix::fcntl::openat(
        Some(dir),
        name,
        OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: openat returned a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    for child in list(fd.as_raw_fd())? {
        remove_all(fd.as_raw_fd(), &child)?;
    }
    nix::unistd::unlinkat(Some(dir), name, UnlinkatFlags::RemoveDir)
}

/// A reader that hashes (sha256) what passes through it.
#[derive(Debug)]
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    /// Bytes read so far.
    pub count: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// `sha256:HEX` of everything read so far.
    pub fn digest(&self) -> String {
        format!("sha256:{}", hex(&self.hasher.clone().finalize()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Lowercase hex.
pub(crate) fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(build: impl FnOnce(&mut tar::Builder<&mut Vec<u8>>)) -> (Vec<u8>, String) {
        let mut buf = Vec::new();
        {
            let mut b = tar::Builder::new(&mut buf);
            build(&mut b);
            b.finish().unwrap();
        }
        let d = format!("sha256:{}", hex(&Sha256::digest(&buf)));
        (buf, d)
    }

    fn file(b: &mut tar::Builder<&mut Vec<u8>>, path: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        // set_path refuses "..": write the name bytes directly.
        let name = &mut h.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    fn link(b: &mut tar::Builder<&mut Vec<u8>>, kind: tar::EntryType, path: &str, target: &str) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(0);
        h.set_mode(0o777);
        h.set_path(path).unwrap();
        h.set_link_name_literal(target).unwrap();
        h.set_cksum();
        b.append(&h, std::io::empty()).unwrap();
    }

    #[test]
    fn whiteouts_and_opaque_dirs_apply_to_lower_layers() {
        let d = tempfile::tempdir().unwrap();
        let root = Rootfs::open(d.path()).unwrap();
        let (l1, d1) = layer(|b| {
            file(b, "a/keep", b"1");
            file(b, "a/gone", b"2");
            file(b, "o/old", b"3");
        });
        root.apply_layer(l1.as_slice(), &d1).unwrap();
        let (l2, d2) = layer(|b| {
            file(b, "a/.wh.gone", b"");
            file(b, "o/new", b"4");
            file(b, "o/.wh..wh..opq", b"");
        });
        root.apply_layer(l2.as_slice(), &d2).unwrap();
        assert!(d.path().join("a/keep").exists());
        assert!(!d.path().join("a/gone").exists());
        assert!(!d.path().join("o/old").exists());
        assert!(d.path().join("o/new").exists());
        assert!(!d.path().join("o/.wh..wh..opq").exists());
    }

    #[test]
    fn escapes_are_refused_or_contained() {
        let outside = tempfile::tempdir().unwrap();
        let d = tempfile::tempdir().unwrap();
        let rootdir = d.path().join("root");
        std::fs::create_dir(&rootdir).unwrap();
        let root = Rootfs::open(&rootdir).unwrap();
        let (l, dg) = layer(|b| file(b, "../evil", b"x"));
        let e = root.apply_layer(l.as_slice(), &dg).unwrap_err().to_string();
        assert!(e.contains("leaves the rootfs"), "{e}");
        assert!(!d.path().join("evil").exists());
        // A relative symlink climbing out resolves to the rootfs itself.
        let (l, dg) = layer(|b| {
            link(b, tar::EntryType::Symlink, "up", "../../../../..");
            file(b, "up/tmp/planted2", b"x");
        });
        root.apply_layer(l.as_slice(), &dg).unwrap();
        assert!(rootdir.join("tmp/planted2").exists());
        // An absolute symlink to a host dir names the rootfs's own (missing)
        // dir: the file through it is refused, nothing lands outside.
        let target = outside.path().to_str().unwrap().to_owned();
        let (l, dg) = layer(|b| {
            link(b, tar::EntryType::Symlink, "esc", &target);
            file(b, "esc/planted", b"x");
        });
        let e = root.apply_layer(l.as_slice(), &dg).unwrap_err().to_string();
        assert!(e.contains("esc/planted"), "{e}");
        assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());
        // A hard link to a host file names the rootfs's own (missing) one.
        let (l, dg) = layer(|b| link(b, tar::EntryType::Link, "shadow", "/etc/shadow"));
        let e = root.apply_layer(l.as_slice(), &dg).unwrap_err().to_string();
        assert!(e.contains("hard link target"), "{e}");
    }

    #[test]
    fn gzip_and_zstd_layers_are_detected_and_their_blob_digest_checked() {
        use std::io::Write;
        let (plain, _) = layer(|b| file(b, "z/file", b"compressed"));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::stream::encode_all(plain.as_slice(), 3).unwrap();
        for blob in [gz, zst] {
            let d = tempfile::tempdir().unwrap();
            let root = Rootfs::open(d.path()).unwrap();
            let digest = format!("sha256:{}", hex(&Sha256::digest(&blob)));
            root.apply_layer(blob.as_slice(), &digest).unwrap();
            assert_eq!(
                std::fs::read(d.path().join("z/file")).unwrap(),
                b"compressed"
            );
            // The digest is of the compressed blob, not of the tar.
            let tar_digest = format!("sha256:{}", hex(&Sha256::digest(&plain)));
            let d2 = tempfile::tempdir().unwrap();
            let e = Rootfs::open(d2.path())
                .unwrap()
                .apply_layer(blob.as_slice(), &tar_digest)
                .unwrap_err();
            assert!(matches!(e, OciError::Digest { .. }), "{e}");
        }
    }

    #[test]
    fn a_wrong_digest_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let root = Rootfs::open(d.path()).unwrap();
        let (l, _) = layer(|b| file(b, "x", b"1"));
        let e = root
            .apply_layer(l.as_slice(), &format!("sha256:{}", "0".repeat(64)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("digest"), "{e}");
    }
}
