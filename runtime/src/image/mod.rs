//! Images (sandbox dirs and SIF) and the image driver registry.
//!
//! An image is resolved once ([`Image::open`]) into either a host directory
//! to bind as the container root, or a squashfs partition at an offset in a
//! file that an image driver ([`driver`]) mounts.

use std::io::Read;
use std::path::{Path, PathBuf};

pub mod build;
pub mod cached;
pub mod driver;
pub mod fuse;
pub mod inspect;
pub mod loopdev;
pub mod oci;
pub mod plugin_driver;
pub mod sif;

/// Errors resolving and mounting images.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The path cannot be read.
    #[error("image {path}: {reason}")]
    Read {
        /// The image.
        path: PathBuf,
        /// Why, on one line.
        reason: String,
    },
    /// Neither a directory, a SIF file nor a squashfs file.
    #[error("image {0}: not a sif image or sandbox directory")]
    NotAnImage(PathBuf),
    /// A SIF file without a usable primary partition.
    #[error("image {path}: {reason}")]
    NoPrimary {
        /// The image.
        path: PathBuf,
        /// What is wrong with the partitions.
        reason: String,
    },
    /// The squashfs partition is damaged.
    #[error("image {path}: corrupted squashfs partition: {reason}")]
    CorruptSquashfs {
        /// The image.
        path: PathBuf,
        /// What looks wrong.
        reason: String,
    },
    /// `image_driver` names no registered driver.
    #[error("image driver {name:?} is not registered (known: {known})")]
    UnknownDriver {
        /// The configured name.
        name: String,
        /// Registered names, comma-separated.
        known: String,
    },
    /// Two drivers registered the same name.
    #[error("image driver {0:?} is registered twice")]
    DuplicateDriver(String),
    /// A driver failed to prepare or mount the image.
    #[error("image driver {driver:?}: {reason}")]
    Driver {
        /// The driver's name.
        driver: String,
        /// What failed, on one line.
        reason: String,
    },
    /// Setting up a loop device failed.
    #[error("loop device for {path}: {reason}")]
    Loop {
        /// The image file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// `vessel build` failed.
    #[error("build {out}: {reason}")]
    Build {
        /// The SIF being built.
        out: PathBuf,
        /// What failed, on one line.
        reason: String,
    },
}

/// First line of an I/O error, lowercase, without the "(os error N)" suffix.
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    };
    s.to_lowercase()
}

/// The last non-empty line a failed tool printed on stderr, lowercase, for
/// a one-line error.
pub(crate) fn last_stderr_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("no output")
        .to_lowercase()
}

/// Squashfs superblock magic, "hsqs" little-endian.
const SQUASHFS_MAGIC: &[u8; 4] = b"hsqs";

/// What the container root comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    /// A host directory bound (read-only) as the root.
    Sandbox(PathBuf),
    /// A squashfs filesystem at `offset` (`size` bytes) inside `path`.
    Squashfs {
        /// The file holding it (a SIF or a bare squashfs file).
        path: PathBuf,
        /// Byte offset of the filesystem.
        offset: u64,
        /// Byte length of the partition.
        size: u64,
    },
}

impl Image {
    /// Resolves a path: a directory is a sandbox; a SIF file must have a
    /// squashfs primary partition; a bare squashfs file is accepted too.
    /// The squashfs superblock is checked so a damaged image fails here with
    /// a clear error rather than deep inside a mount.
    pub fn open(path: &Path) -> Result<Self, ImageError> {
        let read_err = |e: &std::io::Error| ImageError::Read {
            path: path.to_owned(),
            reason: io_reason(e),
        };
        let meta = std::fs::metadata(path).map_err(|e| read_err(&e))?;
        let abs = std::fs::canonicalize(path).map_err(|e| read_err(&e))?;
        if meta.is_dir() {
            return Ok(Image::Sandbox(abs));
        }
        if !meta.is_file() {
            return Err(ImageError::NotAnImage(path.to_owned()));
        }
        let mut head = [0u8; 64];
        let mut f = std::fs::File::open(path).map_err(|e| read_err(&e))?;
        let n = read_full(&mut f, &mut head).map_err(|e| read_err(&e))?;
        let (offset, size) = if sif::is_sif(&head[..n]) {
            sif::primary_squashfs(path)?
        } else if n >= 4 && &head[..4] == SQUASHFS_MAGIC {
            (0, meta.len())
        } else {
            return Err(ImageError::NotAnImage(path.to_owned()));
        };
        check_superblock(path, &mut f, offset, size)?;
        Ok(Image::Squashfs {
            path: abs,
            offset,
            size,
        })
    }
}

fn read_full(f: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Checks the squashfs 4.0 superblock at `offset`: magic, version, block
/// size and that the filesystem fits in the partition.
fn check_superblock(
    path: &Path,
    f: &mut std::fs::File,
    offset: u64,
    size: u64,
) -> Result<(), ImageError> {
    use std::io::{Seek, SeekFrom};
    let corrupt = |reason: &str| ImageError::CorruptSquashfs {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let mut sb = [0u8; 96];
    f.seek(SeekFrom::Start(offset))
        .and_then(|_| read_full(f, &mut sb))
        .map_err(|e| ImageError::Read {
            path: path.to_owned(),
            reason: io_reason(&e),
        })
        .and_then(|n| {
            if n < sb.len() || size < sb.len() as u64 {
                Err(corrupt("truncated superblock"))
            } else {
                Ok(())
            }
        })?;
    if &sb[0..4] != SQUASHFS_MAGIC {
        return Err(corrupt("bad superblock magic"));
    }
    let u16_at = |o: usize| u16::from_le_bytes([sb[o], sb[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(sb[o..o + 4].try_into().unwrap_or([0; 4]));
    let u64_at = |o: usize| u64::from_le_bytes(sb[o..o + 8].try_into().unwrap_or([0; 8]));
    let block_size = u32_at(12);
    let block_log = u16_at(22);
    if (u16_at(28), u16_at(30)) != (4, 0) {
        return Err(corrupt("unsupported superblock version"));
    }
    if !block_size.is_power_of_two()
        || !(4096..=1 << 20).contains(&block_size)
        || 1u32.checked_shl(block_log.into()) != Some(block_size)
    {
        return Err(corrupt("bad block size"));
    }
    let bytes_used = u64_at(40);
    if bytes_used > size {
        return Err(corrupt("filesystem larger than its partition"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_is_a_sandbox_and_junk_is_not_an_image() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(Image::open(d.path()).unwrap(), Image::Sandbox(_)));
        let f = d.path().join("junk");
        std::fs::write(&f, b"hello world").unwrap();
        let e = Image::open(&f).unwrap_err().to_string();
        assert!(e.contains("not a sif image"), "{e}");
        let e = Image::open(&d.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such file"), "{e}");
    }

    #[test]
    fn bad_squashfs_superblock_is_corrupt() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("x.sqfs");
        let mut b = vec![0u8; 4096];
        b[..4].copy_from_slice(SQUASHFS_MAGIC);
        std::fs::write(&f, &b).unwrap();
        let e = Image::open(&f).unwrap_err().to_string();
        assert!(e.contains("corrupted squashfs"), "{e}");
    }
}
