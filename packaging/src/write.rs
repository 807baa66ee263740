//! Creating SIF images and appending objects, laid out exactly as the
//! reference implementation does (first free slot, data appended at the next
//! aligned offset after the data end, header and table rewritten last).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rand_core::{OsRng, RngCore};

use crate::error::{Error, Result};
use crate::format::{
    partition_extra, signature_extra, Arch, DataType, Descriptor, FsType, HashType, Header, Link,
    PartType, PartitionInfo, DEFAULT_DESCRIPTORS_OFFSET, DEFAULT_DESCRIPTOR_CAPACITY,
    DESCRIPTOR_LEN, EXTRA_LEN, GROUP_MASK, HEADER_LEN, MAGIC, NAME_LEN, PARTITION_ALIGNMENT,
    VERSION, ZERO_TIME,
};
use crate::read::{Image, MAX_DESCRIPTORS};

/// How a new image is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateOptions {
    /// Launch script (at most 31 bytes).
    pub launch_script: String,
    /// Image UUID; `None` = random.
    pub uuid: Option<[u8; 16]>,
    /// Creation time for the header and objects; `None` = now.
    pub time: Option<i64>,
    /// Number of descriptor slots.
    pub descriptor_capacity: u64,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            launch_script: String::new(),
            uuid: None,
            time: None,
            descriptor_capacity: DEFAULT_DESCRIPTOR_CAPACITY,
        }
    }
}

impl CreateOptions {
    /// Random UUID, current time, 48 slots.
    pub fn new() -> Self {
        Self::default()
    }

    /// Zero UUID and the reference's "unset" time everywhere, so the same
    /// inputs give the same bytes (as the reference's deterministic mode).
    pub fn deterministic() -> Self {
        CreateOptions {
            uuid: Some([0; 16]),
            time: Some(ZERO_TIME),
            ..Self::default()
        }
    }
}

/// One object to add: its type, metadata and a reader for its bytes (copied
/// in a streaming way, never held in memory).
#[derive(Debug)]
pub struct ObjectInput<R> {
    data_type: DataType,
    reader: R,
    group: Option<u32>,
    link: Link,
    name: String,
    alignment: u64,
    extra: [u8; EXTRA_LEN],
    time: Option<i64>,
}

impl<R: Read> ObjectInput<R> {
    /// An object of any type, in group 1, unaligned, no metadata.
    pub fn new(data_type: DataType, reader: R) -> Self {
        ObjectInput {
            data_type,
            reader,
            group: Some(1),
            link: Link::None,
            name: String::new(),
            alignment: if data_type == DataType::Partition {
                PARTITION_ALIGNMENT
            } else {
                1
            },
            extra: [0; EXTRA_LEN],
            time: None,
        }
    }

    /// A partition (aligned to 4096). A PrimSys partition sets the header's
    /// architecture; an image holds at most one.
    pub fn partition(fs: FsType, part_type: PartType, arch: Arch, reader: R) -> Self {
        let mut o = Self::new(DataType::Partition, reader);
        o.extra = partition_extra(PartitionInfo {
            fs,
            part_type,
            arch,
        });
        o
    }

    /// A generic JSON object.
    pub fn generic_json(reader: R) -> Self {
        Self::new(DataType::GenericJson, reader)
    }

    /// A generic raw object.
    pub fn generic(reader: R) -> Self {
        Self::new(DataType::Generic, reader)
    }

    /// A signature object for `group`: no group of its own, linked to the
    /// group, as the reference writes them.
    pub fn signature(hash: HashType, group: u32, reader: R) -> Self {
        let mut o = Self::new(DataType::Signature, reader);
        o.extra = signature_extra(hash, None);
        o.group = None;
        o.link = Link::Group(group);
        o
    }

    /// Sets the object name (at most 128 bytes).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Puts the object in group `group` (1-based; default 1).
    pub fn group(mut self, group: u32) -> Self {
        self.group = Some(group);
        self
    }

    /// Puts the object in no group.
    pub fn no_group(mut self) -> Self {
        self.group = None;
        self
    }

    /// Links the object to another object or a group.
    pub fn link(mut self, link: Link) -> Self {
        self.link = link;
        self
    }

    /// Overrides the data alignment (0 or 1 = none).
    pub fn alignment(mut self, alignment: u64) -> Self {
        self.alignment = alignment.max(1);
        self
    }

    /// Overrides the object's creation/modification time.
    pub fn time(mut self, t: i64) -> Self {
        self.time = Some(t);
        self
    }

    /// Sets raw type-specific metadata.
    pub fn extra(mut self, extra: [u8; EXTRA_LEN]) -> Self {
        self.extra = extra;
        self
    }
}

/// Where an added object landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddedObject {
    /// Object ID.
    pub id: u32,
    /// Absolute offset of its data.
    pub offset: u64,
    /// Size of its data.
    pub size: u64,
}

/// The current Unix time in seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn random_uuid() -> [u8; 16] {
    let mut u = [0u8; 16];
    OsRng.fill_bytes(&mut u);
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    u
}

/// Writes a new image or appends objects to an existing one. Nothing is
/// visible until [`Writer::finish`]: a new image is written to a temp file
/// renamed into place, and an existing image only gets bytes past its data
/// end, with header and table rewritten at the end (and the file truncated
/// back if the writer is dropped unfinished).
#[derive(Debug)]
pub struct Writer {
    file: File,
    path: PathBuf,
    temp: Option<tempfile::TempPath>,
    original_len: Option<u64>,
    header: Header,
    slots: Vec<Descriptor>,
    time: i64,
    finished: bool,
}

impl Writer {
    /// Starts a new image at `path` (replacing it on [`Writer::finish`]).
    pub fn create(path: impl AsRef<Path>, opts: &CreateOptions) -> Result<Writer> {
        let path = path.as_ref().to_path_buf();
        if opts.launch_script.len() >= 32 {
            return Err(Error::InvalidInput(
                "launch script longer than 31 bytes".into(),
            ));
        }
        if opts.descriptor_capacity == 0 || opts.descriptor_capacity > MAX_DESCRIPTORS as u64 {
            return Err(Error::InvalidInput(format!(
                "descriptor capacity {} out of range 1..={MAX_DESCRIPTORS}",
                opts.descriptor_capacity
            )));
        }
        let name = path
            .file_name()
            .ok_or_else(|| Error::InvalidInput(format!("{}: not a file path", path.display())))?;
        // A random name created O_EXCL beside `path` (never through a
        // planted symlink, never clobbering a file), renamed on finish.
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let (file, temp) = {
            use std::os::unix::fs::PermissionsExt;
            tempfile::Builder::new()
                .prefix(&format!(".{}.", name.to_string_lossy()))
                .suffix(".tmp")
                .permissions(std::fs::Permissions::from_mode(0o666))
                .tempfile_in(dir)
                .map_err(|e| Error::io(dir, e))?
                .into_parts()
        };
        let time = opts.time.unwrap_or_else(now);
        let total = opts.descriptor_capacity as i64;
        let size = total * DESCRIPTOR_LEN as i64;
        let mut launch = [0u8; 32];
        launch[..opts.launch_script.len()].copy_from_slice(opts.launch_script.as_bytes());
        let header = Header {
            launch_script: launch,
            magic: MAGIC,
            version: VERSION,
            arch: Arch::UNKNOWN,
            uuid: opts.uuid.unwrap_or_else(random_uuid),
            created_at: time,
            modified_at: time,
            descriptors_free: total,
            descriptors_total: total,
            descriptors_offset: DEFAULT_DESCRIPTORS_OFFSET as i64,
            descriptors_size: size,
            data_offset: DEFAULT_DESCRIPTORS_OFFSET as i64 + size,
            data_size: 0,
        };
        Ok(Writer {
            file,
            path,
            temp: Some(temp),
            original_len: None,
            header,
            slots: vec![Descriptor::unused(); total as usize],
            time,
            finished: false,
        })
    }

    /// Opens an existing image to append objects. Objects get the current
    /// time, or the "unset" time when the image is deterministic (zero UUID,
    /// unset times), as the reference does.
    pub fn open(path: impl AsRef<Path>) -> Result<Writer> {
        let path = path.as_ref().to_path_buf();
        let file = crate::read::open_regular(&path, true)?;
        Self::from_file(file, path)
    }

    /// [`Writer::open`] on an already opened image file (`path` names it in
    /// errors), e.g. the one descriptor a signer read the image from.
    pub fn from_file(file: File, path: impl Into<PathBuf>) -> Result<Writer> {
        let path = path.into();
        let img = Image::from_source(file).map_err(|e| match e {
            Error::RawIo(source) => Error::io(&path, source),
            other => other,
        })?;
        let header = img.header().clone();
        let slots = img.slots().to_vec();
        let original_len = img.file_len();
        let deterministic = header.uuid == [0; 16]
            && header.created_at == ZERO_TIME
            && header.modified_at == ZERO_TIME;
        Ok(Writer {
            file: img.into_source(),
            path,
            temp: None,
            original_len: Some(original_len),
            header,
            slots,
            time: if deterministic { ZERO_TIME } else { now() },
            finished: false,
        })
    }

    /// The header as it will be written.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Adds one object, streaming its bytes into the file.
    pub fn add<R: Read>(&mut self, mut input: ObjectInput<R>) -> Result<AddedObject> {
        if input.name.len() > NAME_LEN {
            return Err(Error::InvalidInput(format!(
                "object name longer than {NAME_LEN} bytes"
            )));
        }
        if input.group.is_some_and(|g| g == 0 || g & GROUP_MASK != 0) {
            return Err(Error::InvalidInput("group id out of range".into()));
        }
        let slot = self
            .slots
            .iter()
            .position(|d| !d.used)
            .ok_or(Error::NoFreeDescriptor)?;
        let prim = Descriptor {
            data_type: input.data_type,
            extra: input.extra,
            ..Descriptor::unused()
        }
        .partition()
        .filter(|p| p.part_type == PartType::PrimSys);
        if prim.is_some()
            && self.slots.iter().any(|d| {
                d.used
                    && d.partition()
                        .is_some_and(|p| p.part_type == PartType::PrimSys)
            })
        {
            return Err(Error::DuplicatePrimaryPartition);
        }

        let end = (self.header.data_offset + self.header.data_size) as u64;
        let align = input.alignment.max(1);
        let offset = end.div_ceil(align) * align;
        let wp = self.write_path().to_path_buf();
        let io_err = |e: io::Error| Error::io(&wp, e);
        self.file.seek(SeekFrom::Start(offset)).map_err(io_err)?;
        let n = match io::copy(&mut input.reader, &mut self.file) {
            Ok(n) => n,
            Err(e) => {
                // Drop whatever was copied so a failed add leaves the file as it was.
                let _ = self.file.set_len(end);
                return Err(io_err(e));
            }
        };
        // Zero-length objects past the old end must still extend the file to
        // their aligned offset so the file ends at data offset + data size.
        if self.file.metadata().map_err(io_err)?.len() < offset + n {
            self.file.set_len(offset + n).map_err(io_err)?;
        }

        let t = input.time.unwrap_or(self.time);
        let mut name = [0u8; NAME_LEN];
        name[..input.name.len()].copy_from_slice(input.name.as_bytes());
        let id = slot as u32 + 1;
        self.slots[slot] = Descriptor {
            data_type: input.data_type,
            used: true,
            id,
            raw_group: input.group.unwrap_or(0) | GROUP_MASK,
            raw_link: input.link.raw(),
            offset: offset as i64,
            size: n as i64,
            size_with_padding: (offset - end + n) as i64,
            created_at: t,
            modified_at: t,
            uid: 0,
            gid: 0,
            name,
            extra: input.extra,
        };
        if let Some(p) = prim {
            self.header.arch = p.arch;
        }
        self.header.descriptors_free -= 1;
        self.header.data_size += (offset - end + n) as i64;
        self.header.modified_at = self.time;
        Ok(AddedObject {
            id,
            offset,
            size: n,
        })
    }

    fn write_path(&self) -> &Path {
        self.temp.as_ref().map(|t| t.as_ref()).unwrap_or(&self.path)
    }

    /// Writes the descriptor table and header, syncs, and (for a new image)
    /// renames it into place.
    pub fn finish(mut self) -> Result<()> {
        let wp = self.write_path().to_path_buf();
        let io_err = |e: io::Error| Error::io(&wp, e);
        let mut table = Vec::with_capacity(self.slots.len() * DESCRIPTOR_LEN);
        for d in &self.slots {
            table.extend_from_slice(&d.encode());
        }
        if self.temp.is_some() {
            // The gap between header and table is zero, as the reference writes it.
            self.file.seek(SeekFrom::Start(0)).map_err(io_err)?;
            self.file
                .write_all(&vec![0u8; self.header.descriptors_offset as usize])
                .map_err(io_err)?;
        }
        self.file
            .seek(SeekFrom::Start(self.header.descriptors_offset as u64))
            .map_err(io_err)?;
        self.file.write_all(&table).map_err(io_err)?;
        let end = (self.header.data_offset + self.header.data_size) as u64;
        if self.file.metadata().map_err(io_err)?.len() < end {
            self.file.set_len(end).map_err(io_err)?;
        }
        self.file.seek(SeekFrom::Start(0)).map_err(io_err)?;
        let hb: [u8; HEADER_LEN] = self.header.encode();
        self.file.write_all(&hb).map_err(io_err)?;
        self.file.sync_all().map_err(io_err)?;
        if let Some(temp) = self.temp.take() {
            temp.persist(&self.path)
                .map_err(|e| Error::io(&self.path, e.error))?;
        }
        self.finished = true;
        Ok(())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // An unfinished new image's temp file goes with its TempPath.
        if self.temp.is_none() {
            if let Some(len) = self.original_len {
                let _ = self.file.set_len(len);
            }
        }
    }
}
