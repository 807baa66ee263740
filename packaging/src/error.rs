//! The crate error.

use std::path::PathBuf;

/// Errors reading, writing, signing and verifying SIF images. Verification
/// *results* (a group that fails) are data in [`crate::VerifyReport`], not
/// errors; these are failures to do the job at all.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O failure on a named file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// An I/O failure on an unnamed source.
    #[error("sif i/o: {0}")]
    RawIo(#[from] std::io::Error),
    /// The file is shorter than its header says.
    #[error("sif image truncated: need {needed} bytes, file has {actual}")]
    Truncated {
        /// Bytes the header requires.
        needed: u64,
        /// Bytes present.
        actual: u64,
    },
    /// No `SIF_MAGIC` at 0x20.
    #[error("not a sif image: bad magic")]
    BadMagic,
    /// A version other than `01`.
    #[error("unsupported sif version {0:?}")]
    UnsupportedVersion(String),
    /// A header field that cannot be right.
    #[error("invalid sif header: {0}")]
    InvalidHeader(String),
    /// A descriptor count beyond what this implementation accepts.
    #[error("sif image declares {0} descriptors, more than the supported {max}", max = crate::read::MAX_DESCRIPTORS)]
    TooManyDescriptors(i64),
    /// The descriptor table does not fit in the file.
    #[error("sif descriptor table (offset {offset}, size {size}) extends beyond end of file ({file_len} bytes)")]
    DescriptorsBeyondEof {
        /// Table offset.
        offset: u64,
        /// Table size.
        size: u64,
        /// File length.
        file_len: u64,
    },
    /// A descriptor with impossible fields.
    #[error("sif descriptor {slot}: {reason}")]
    InvalidDescriptor {
        /// Slot index.
        slot: usize,
        /// What is wrong.
        reason: String,
    },
    /// An object's data does not fit in the file.
    #[error("sif object {id} (offset {offset}, size {size}) extends beyond end of file ({file_len} bytes)")]
    ObjectBeyondEof {
        /// Object ID.
        id: u32,
        /// Data offset.
        offset: i64,
        /// Data size.
        size: i64,
        /// File length.
        file_len: u64,
    },
    /// Two objects share bytes.
    #[error("sif objects {a} and {b} overlap")]
    OverlappingObjects {
        /// First object ID.
        a: u32,
        /// Second object ID.
        b: u32,
    },
    /// Two used descriptors carry the same ID.
    #[error("sif object id {0} used twice")]
    DuplicateObjectId(u32),
    /// No object with this ID.
    #[error("sif object {0} not found")]
    ObjectNotFound(u32),
    /// An object is larger than the caller's bound for reading into memory.
    #[error("sif object {id} is {size} bytes, more than the allowed {max}")]
    ObjectTooLarge {
        /// Object ID.
        id: u32,
        /// Its size.
        size: u64,
        /// The bound.
        max: u64,
    },
    /// No free descriptor slot for a new object.
    #[error("sif image has no free descriptor slot")]
    NoFreeDescriptor,
    /// A second primary system partition.
    #[error("sif image already contains a primary partition")]
    DuplicatePrimaryPartition,
    /// An invalid argument to the writer.
    #[error("invalid sif object: {0}")]
    InvalidInput(String),
    /// A signature object that is not a well-formed DSSE envelope.
    #[error("sif signature object {id}: {reason}")]
    MalformedSignature {
        /// Signature object ID.
        id: u32,
        /// What is wrong.
        reason: String,
    },
    /// A path that is not a regular file (a FIFO, device, dir, …): opened
    /// without blocking and refused.
    #[error("{}: not a regular file", path.display())]
    NotRegularFile {
        /// The path.
        path: PathBuf,
    },
    /// A symlink where an image is written in place: never written through.
    #[error("{}: is a symbolic link; refusing to write through it", path.display())]
    SymlinkRefused {
        /// The path.
        path: PathBuf,
    },
    /// The image has no object group to sign.
    #[error("sif image has no object groups to sign")]
    NothingToSign,
}

impl Error {
    /// Wraps an I/O error with the file it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result with the crate error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
