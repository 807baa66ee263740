//! Extracted SIF root filesystems kept in the per-user cache (kind
//! `sandboxes`), for unprivileged runs where FUSE is not available.
//!
//! An entry is `sandboxes/<sha256 of the squashfs partition>/` holding
//! `rootfs/` (what `unsquashfs` extracted) and `sandbox.json`, written last,
//! with the digest and the number of directory entries in `rootfs`. Before a
//! reuse the marker must parse, name the same digest and the tree must hold
//! as many entries (counted from the directory listings, without a stat per
//! file): an interrupted or damaged entry is rebuilt.
//!
//! The digest: hashing a 230 MB partition costs about a second, far more
//! than a run should, so each digest is computed once and remembered in
//! `.digests/` under the file's identity: device, inode, size, mtime *and*
//! ctime (plus the partition's offset and size). Rewriting the file in place
//! changes its ctime, which no one but root can set back, so a stale memo
//! cannot be reused; the memo lives in the caller's own 0700 cache, so only
//! the caller can forge it, and only against themselves.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::driver::{MountRequest, EXTRACT};
use super::ImageError;
use crate::cache::{Cache, Held, Outcome, SANDBOXES};

/// The marker written last into a complete entry.
const MARKER: &str = "sandbox.json";

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Marker {
    digest: String,
    entries: u64,
}

fn fail(reason: String) -> ImageError {
    ImageError::Driver {
        driver: EXTRACT.into(),
        reason,
    }
}

/// The cached extraction of the image in `req`, built if needed; held (not
/// evictable) until the returned handle is dropped. Also returns how it was
/// obtained and the entry's key.
pub fn prepare(cache: &Cache, req: &MountRequest) -> Result<(Held, Outcome, String), ImageError> {
    let key = digest(cache, &req.image, req.offset, req.size)?;
    let (held, outcome) = cache
        .get_or_build(
            SANDBOXES,
            &key,
            |entry| is_valid(entry, &key),
            |tmp| build(tmp, req, &key),
        )
        .map_err(|e| match e {
            crate::cache::CacheError::Build { source, .. } => match source.downcast::<ImageError>()
            {
                Ok(e) => *e,
                Err(other) => fail(other.to_string()),
            },
            other => fail(other.to_string()),
        })?;
    Ok((held, outcome, key))
}

/// The root filesystem inside a held entry.
pub fn rootfs(entry: &Path) -> PathBuf {
    entry.join("rootfs")
}

/// sha256 (hex) of the partition, remembered per file identity.
fn digest(cache: &Cache, image: &Path, offset: u64, size: u64) -> Result<String, ImageError> {
    let read_err = |e: std::io::Error| ImageError::Read {
        path: image.to_owned(),
        reason: super::io_reason(&e),
    };
    let mut f = File::open(image).map_err(read_err)?;
    let m = f.metadata().map_err(read_err)?;
    let id = format!(
        "{:x}-{:x}-{}-{}.{}-{}.{}-{}-{}",
        m.dev(),
        m.ino(),
        m.len(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
        offset,
        size
    );
    let memos = cache
        .private_dir("digests")
        .map_err(|e| fail(e.to_string()))?;
    let memo = memos.join(&id);
    if let Ok(text) = std::fs::read_to_string(&memo) {
        let text = text.trim();
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            tracing::debug!("image {}: digest {text} (remembered)", image.display());
            return Ok(text.to_owned());
        }
    }
    let started = std::time::Instant::now();
    f.seek(SeekFrom::Start(offset)).map_err(read_err)?;
    let mut part = f.take(size);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = part.read(&mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    tracing::debug!(
        "image {}: digest {hex} (hashed in {:?})",
        image.display(),
        started.elapsed()
    );
    // A memo that cannot be written only costs the next run a hash.
    let written = tempfile::NamedTempFile::new_in(&memos).and_then(|mut t| {
        t.write_all(hex.as_bytes())?;
        t.persist(&memo).map_err(|e| e.error)?;
        Ok(())
    });
    if let Err(e) = written {
        tracing::debug!("remembering the digest in {}: {e}", memos.display());
    }
    Ok(hex)
}

fn is_valid(entry: &Path, key: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(entry.join(MARKER)) else {
        return false;
    };
    let Ok(marker) = serde_json::from_str::<Marker>(&text) else {
        return false;
    };
    let root = rootfs(entry);
    marker.digest == key
        && std::fs::symlink_metadata(&root).is_ok_and(|m| m.is_dir())
        && count_entries(&root) == Some(marker.entries)
}

/// Entries below `dir` (recursively), from the listings' types alone; `None`
/// when a directory cannot be read.
fn count_entries(dir: &Path) -> Option<u64> {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ok()? {
            let e = e.ok()?;
            n += 1;
            if e.file_type().ok()?.is_dir() {
                stack.push(e.path());
            }
        }
    }
    Some(n)
}

fn build(tmp: &Path, req: &MountRequest, key: &str) -> Result<(), ImageError> {
    let dest = rootfs(tmp);
    unsquashfs(req, &dest)?;
    let entries =
        count_entries(&dest).ok_or_else(|| fail(format!("reading back {}", dest.display())))?;
    let marker = serde_json::to_string(&Marker {
        digest: key.to_owned(),
        entries,
    })
    .map_err(|e| fail(format!("writing the cache marker: {e}")))?;
    let path = tmp.join(MARKER);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        f.write_all(marker.as_bytes())?;
        f.sync_all()
    };
    write().map_err(|e| {
        fail(format!(
            "writing {}: {}",
            path.display(),
            super::io_reason(&e)
        ))
    })
}

/// Extracts the partition into `dest` (which must not exist).
pub(crate) fn unsquashfs(req: &MountRequest, dest: &Path) -> Result<(), ImageError> {
    let out = Command::new("unsquashfs")
        .args(["-n", "-q", "-no-xattrs", "-o"])
        .arg(req.offset.to_string())
        .arg("-d")
        .arg(dest)
        .arg(&req.image)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| fail(format!("running unsquashfs: {}", super::io_reason(&e))))?;
    if !out.status.success() {
        let last = super::last_stderr_line(&out.stderr);
        return Err(fail(format!("unsquashfs failed: {last}")));
    }
    Ok(())
}
