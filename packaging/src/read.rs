//! Reading SIF images by seeking: the header, the descriptor table and one
//! object at a time. Nothing is sized by an untrusted field before that field
//! has been checked against the real file length.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::{Descriptor, Header, PartType, DESCRIPTOR_LEN, HEADER_LEN, MAGIC, VERSION};

/// The most descriptor slots an image may declare (the reference default is
/// 48); bounds the one allocation the table needs.
pub const MAX_DESCRIPTORS: i64 = 4096;

/// Random-access bytes an image is read from: a file (positioned reads, so
/// readers can share it) or an in-memory buffer (tests, fuzzing).
pub trait Source {
    /// Reads up to `buf.len()` bytes at `offset`; returns 0 at the end.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Total length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// True when empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

impl Source for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, offset)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

impl Source for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let Ok(start) = usize::try_from(offset) else {
            return Ok(0);
        };
        if start >= <[u8]>::len(self) {
            return Ok(0);
        }
        let n = buf.len().min(<[u8]>::len(self) - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(<[u8]>::len(self) as u64)
    }
}

impl Source for Vec<u8> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.as_slice().read_at(buf, offset)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(Vec::len(self) as u64)
    }
}

impl<S: Source + ?Sized> Source for &S {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        (**self).read_at(buf, offset)
    }
    fn len(&self) -> io::Result<u64> {
        (**self).len()
    }
}

fn read_exact_at<S: Source + ?Sized>(src: &S, mut buf: &mut [u8], mut off: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match src.read_at(buf, off) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                off += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// An opened, validated SIF image.
#[derive(Debug)]
pub struct Image<S: Source = File> {
    src: S,
    path: Option<PathBuf>,
    file_len: u64,
    header: Header,
    slots: Vec<Descriptor>,
    used: Vec<usize>,
}

impl Image<File> {
    /// Opens and validates the image at `path` (reads header and descriptor
    /// table only).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let f = open_regular(path, false)?;
        let mut img = Image::from_source(f).map_err(|e| match e {
            Error::RawIo(source) => Error::io(path, source),
            other => other,
        })?;
        img.path = Some(path.to_path_buf());
        Ok(img)
    }
}

/// Opens `path` as a regular file without blocking on it (a FIFO or a
/// device would block or never end) and refuses anything else. With
/// `write`, it is opened read-write and a symlink at `path` is refused: an
/// image written in place is never written through a link.
pub fn open_regular(path: &Path, write: bool) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut flags = libc::O_NONBLOCK | libc::O_NOCTTY;
    if write {
        flags |= libc::O_NOFOLLOW;
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| {
            if write && e.raw_os_error() == Some(libc::ELOOP) {
                Error::SymlinkRefused {
                    path: path.to_owned(),
                }
            } else {
                Error::io(path, e)
            }
        })?;
    let md = f.metadata().map_err(|e| Error::io(path, e))?;
    if !md.is_file() {
        return Err(Error::NotRegularFile {
            path: path.to_owned(),
        });
    }
    // O_NONBLOCK means nothing for a regular file: reads and writes behave
    // as without it.
    Ok(f)
}

impl<S: Source> Image<S> {
    /// Validates an image held by any [`Source`].
    pub fn from_source(src: S) -> Result<Self> {
        let file_len = src.len()?;
        if file_len < HEADER_LEN as u64 {
            return Err(Error::Truncated {
                needed: HEADER_LEN as u64,
                actual: file_len,
            });
        }
        let mut hb = [0u8; HEADER_LEN];
        read_exact_at(&src, &mut hb, 0)?;
        let header = Header::decode(&hb);
        if header.magic != MAGIC {
            return Err(Error::BadMagic);
        }
        if header.version != VERSION {
            return Err(Error::UnsupportedVersion(
                String::from_utf8_lossy(&header.version)
                    .trim_end_matches('\0')
                    .to_string(),
            ));
        }
        let h = &header;
        let bad = |m: String| Err(Error::InvalidHeader(m));
        if h.descriptors_total < 0 {
            return bad(format!("negative descriptor count {}", h.descriptors_total));
        }
        if h.descriptors_total > MAX_DESCRIPTORS {
            return Err(Error::TooManyDescriptors(h.descriptors_total));
        }
        if h.descriptors_free < 0 || h.descriptors_free > h.descriptors_total {
            return bad(format!(
                "descriptors free {} out of range 0..={}",
                h.descriptors_free, h.descriptors_total
            ));
        }
        if h.descriptors_offset < HEADER_LEN as i64 {
            return bad(format!(
                "descriptors offset {} overlaps the header",
                h.descriptors_offset
            ));
        }
        let table = h.descriptors_total * DESCRIPTOR_LEN as i64;
        if h.descriptors_size != table {
            return bad(format!(
                "descriptors size {} is not {} x {}",
                h.descriptors_size, h.descriptors_total, DESCRIPTOR_LEN
            ));
        }
        let table_end = (h.descriptors_offset as u64).checked_add(table as u64);
        if table_end.is_none_or(|e| e > file_len) {
            return Err(Error::DescriptorsBeyondEof {
                offset: h.descriptors_offset as u64,
                size: table as u64,
                file_len,
            });
        }
        let table_end = table_end.unwrap_or(u64::MAX) as i64;
        if h.data_offset < table_end {
            return bad(format!(
                "data offset {} overlaps the descriptor table",
                h.data_offset
            ));
        }
        if h.data_size < 0 {
            return bad(format!("negative data size {}", h.data_size));
        }
        let data_end = (h.data_offset as u64).checked_add(h.data_size as u64);
        match data_end {
            Some(end) if end <= file_len => {}
            _ => {
                return Err(Error::Truncated {
                    needed: data_end.unwrap_or(u64::MAX),
                    actual: file_len,
                })
            }
        }

        // The table size is bounded by MAX_DESCRIPTORS and by the file length.
        let mut tb = vec![0u8; table as usize];
        read_exact_at(&src, &mut tb, h.descriptors_offset as u64)?;
        let mut slots = Vec::with_capacity(h.descriptors_total as usize);
        let mut used = Vec::new();
        for (slot, chunk) in tb.chunks_exact(DESCRIPTOR_LEN).enumerate() {
            let mut b = [0u8; DESCRIPTOR_LEN];
            b.copy_from_slice(chunk);
            let d = Descriptor::decode(&b);
            if d.used {
                check_descriptor(slot, &d, &header, file_len)?;
                used.push(slot);
            }
            slots.push(d);
        }
        check_ids_and_overlaps(&slots, &used)?;
        Ok(Image {
            src,
            path: None,
            file_len,
            header,
            slots,
            used,
        })
    }

    /// The path the image was opened from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The global header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Length of the underlying file.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// The used descriptors, in slot order.
    pub fn descriptors(&self) -> impl Iterator<Item = &Descriptor> + '_ {
        self.used.iter().map(|&i| &self.slots[i])
    }

    /// Every descriptor slot, used or not (the writer needs the free ones).
    pub fn slots(&self) -> &[Descriptor] {
        &self.slots
    }

    /// The used descriptor with object ID `id`.
    pub fn descriptor(&self, id: u32) -> Result<&Descriptor> {
        self.descriptors()
            .find(|d| d.id == id)
            .ok_or(Error::ObjectNotFound(id))
    }

    /// The primary system partition, if any.
    pub fn primary_partition(&self) -> Option<&Descriptor> {
        self.descriptors().find(|d| {
            d.partition()
                .is_some_and(|p| p.part_type == PartType::PrimSys)
        })
    }

    /// The IDs of all object groups, ascending.
    pub fn group_ids(&self) -> Vec<u32> {
        let mut g: Vec<u32> = self.descriptors().filter_map(|d| d.group()).collect();
        g.sort_unstable();
        g.dedup();
        g
    }

    /// The objects in group `group`, by ascending ID.
    pub fn group_objects(&self, group: u32) -> Vec<&Descriptor> {
        let mut v: Vec<&Descriptor> = self
            .descriptors()
            .filter(|d| d.group() == Some(group))
            .collect();
        v.sort_by_key(|d| d.id);
        v
    }

    /// The smallest object ID among used descriptors with this raw group
    /// field; signature payloads number objects relative to it.
    pub fn min_id_for_raw_group(&self, raw_group: u32) -> Option<u32> {
        self.descriptors()
            .filter(|d| d.raw_group == raw_group)
            .map(|d| d.id)
            .min()
    }

    /// A bounded reader over one object's bytes. It seeks within the object
    /// and never reads outside it.
    pub fn object_reader(&self, id: u32) -> Result<ObjectReader<'_, S>> {
        let d = self.descriptor(id)?;
        Ok(ObjectReader {
            src: &self.src,
            start: d.offset as u64,
            len: d.size as u64,
            pos: 0,
        })
    }

    /// Reads a whole object into memory, refusing objects over `max` bytes.
    pub fn read_object(&self, id: u32, max: u64) -> Result<Vec<u8>> {
        let d = self.descriptor(id)?;
        let size = d.size as u64;
        if size > max {
            return Err(Error::ObjectTooLarge { id, size, max });
        }
        let mut v = vec![0u8; size as usize];
        read_exact_at(&self.src, &mut v, d.offset as u64)?;
        Ok(v)
    }

    /// The underlying source.
    pub fn source(&self) -> &S {
        &self.src
    }

    /// Gives back the underlying source.
    pub fn into_source(self) -> S {
        self.src
    }
}

fn check_descriptor(slot: usize, d: &Descriptor, h: &Header, file_len: u64) -> Result<()> {
    let bad = |reason: String| Err(Error::InvalidDescriptor { slot, reason });
    if d.id == 0 {
        return bad("object id 0".into());
    }
    if d.offset < 0 || d.size < 0 || d.size_with_padding < 0 {
        return bad(format!(
            "negative offset or size ({}, {})",
            d.offset, d.size
        ));
    }
    let end = (d.offset as u64).checked_add(d.size as u64);
    if end.is_none_or(|e| e > file_len) {
        return Err(Error::ObjectBeyondEof {
            id: d.id,
            offset: d.offset,
            size: d.size,
            file_len,
        });
    }
    if d.size > 0 && d.offset < h.data_offset {
        return bad(format!(
            "object {} data at {} lies before the data section ({})",
            d.id, d.offset, h.data_offset
        ));
    }
    Ok(())
}

fn check_ids_and_overlaps(slots: &[Descriptor], used: &[usize]) -> Result<()> {
    let mut ids: Vec<u32> = used.iter().map(|&i| slots[i].id).collect();
    ids.sort_unstable();
    if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(Error::DuplicateObjectId(w[0]));
    }
    let mut spans: Vec<(i64, i64, u32)> = used
        .iter()
        .map(|&i| &slots[i])
        .filter(|d| d.size > 0)
        .map(|d| (d.offset, d.offset + d.size, d.id))
        .collect();
    spans.sort_unstable();
    if let Some(w) = spans.windows(2).find(|w| w[1].0 < w[0].1) {
        return Err(Error::OverlappingObjects {
            a: w[0].2,
            b: w[1].2,
        });
    }
    Ok(())
}

/// A `Read + Seek` view of one object's bytes.
#[derive(Debug)]
pub struct ObjectReader<'a, S: Source> {
    src: &'a S,
    start: u64,
    len: u64,
    pos: u64,
}

impl<S: Source> ObjectReader<'_, S> {
    /// The object's size.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty object.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The object's absolute offset in the file.
    pub fn offset(&self) -> u64 {
        self.start
    }
}

impl<S: Source> Read for ObjectReader<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(left) as usize;
        let got = self.src.read_at(&mut buf[..n], self.start + self.pos)?;
        if got == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.pos += got as u64;
        Ok(got)
    }
}

impl<S: Source> Seek for ObjectReader<'_, S> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let new = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before start of object",
            )),
        }
    }
}
