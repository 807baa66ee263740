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
    use std::io::{Read, Seek, SeekFrom};
    let rd = |e: std::io::Error| ImageError::Read {
        path: path.to_owned(),
        reason: super::io_reason(&e),
    };
    let no_primary = |reason: &str| ImageError::NoPrimary {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let mut f = std::fs::File::open(path).map_err(rd)?;
    let len = f.metadata().map_err(rd)?.len();
    let mut h = [0u8; 128];
    f.read_exact(&mut h).map_err(rd)?;
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
    let i32_at = |b: &[u8], o: usize| i32::from_le_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]));
    let (total, doff) = (u64_at(&h, 0x58), u64_at(&h, 0x60));
    const DLEN: u64 = 585;
    if total > 1 << 16 || doff.saturating_add(total * DLEN) > len {
        return Err(no_primary("descriptor table lies outside the file"));
    }
    f.seek(SeekFrom::Start(doff)).map_err(rd)?;
    let mut table = vec![0u8; (total * DLEN) as usize];
    f.read_exact(&mut table).map_err(rd)?;
    for d in table.chunks_exact(DLEN as usize) {
        let (dtype, used) = (i32_at(d, 0), d[4] != 0);
        let (fs, ptype) = (i32_at(d, 201), i32_at(d, 205));
        if !used || dtype != 0x4004 || ptype != 2 {
            continue;
        }
        if fs != 1 {
            return Err(no_primary("primary partition is not squashfs"));
        }
        let (o, s) = (u64_at(d, 17), u64_at(d, 25));
        return match o.checked_add(s) {
            Some(end) if end <= len => Ok((o, s)),
            _ => Err(no_primary("primary partition lies outside the file")),
        };
    }
    Err(no_primary("no primary system partition"))
}
