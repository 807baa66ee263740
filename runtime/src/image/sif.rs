//! Finding the squashfs primary partition of a SIF image.

use std::path::Path;

use super::ImageError;

/// SIF magic at offset 0x20 of the global header.
const MAGIC: &[u8] = b"SIF_MAGIC\0";

/// True when the first bytes of a file carry the SIF magic.
pub fn is_sif(head: &[u8]) -> bool {
    head.len() >= 0x20 + MAGIC.len() && &head[0x20..0x20 + MAGIC.len()] == MAGIC
}

/// Offset and size of the primary (PrimSys) partition, which must be squashfs.
pub fn primary_squashfs(path: &Path) -> Result<(u64, u64), ImageError> {
    use vessel_sif::{DataType, FsType};
    let img = vessel_sif::Image::open(path).map_err(|e| ImageError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let no_primary = |reason: &str| ImageError::NoPrimary {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let d = img
        .primary_partition()
        .ok_or_else(|| no_primary("no primary system partition"))?;
    debug_assert_eq!(d.data_type, DataType::Partition);
    let part = d
        .partition()
        .ok_or_else(|| no_primary("no primary system partition"))?;
    if part.fs != FsType::Squashfs {
        return Err(no_primary("primary partition is not squashfs"));
    }
    let (offset, size) = (u64::try_from(d.offset), u64::try_from(d.size));
    match (offset, size) {
        (Ok(o), Ok(s)) if o.checked_add(s).is_some_and(|end| end <= img.file_len()) => Ok((o, s)),
        _ => Err(no_primary("primary partition lies outside the file")),
    }
}
