//! SIF v1 images: reading by seeking, writing, and DSSE signatures
//! byte-compatible with the reference implementation (sylabs/sif 2.8).
//!
//! - [`Image`] opens and validates an image (header + descriptor table only)
//!   and hands out bounded readers over single objects.
//! - [`Writer`] creates an image or appends objects to an existing one,
//!   streaming object bytes; [`CreateOptions::deterministic`] gives the same
//!   bytes for the same inputs.
//! - [`sign_image`], [`verify_image`] and [`list_signatures`] implement the
//!   reference DSSE signature format (see `dsse`).
//!
//! No function allocates by an untrusted size before checking it against the
//! real file length; malformed input gives a typed [`Error`], never a panic.

pub mod display;
mod dsse;
mod error;
pub mod format;
mod read;
mod write;

pub use dsse::{
    keyid, list_signatures, sign_image, verify_image, GroupReport, SignatureKind, SignatureListing,
    SignedGroup, VerifyFailure, VerifyReport, PAYLOAD_TYPE,
};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use error::{Error, Result};
pub use format::{
    Arch, DataType, Descriptor, FsType, HashType, Header, Link, PartType, PartitionInfo,
    SignatureInfo, ZERO_TIME,
};
pub use read::{Image, ObjectReader, Source, MAX_DESCRIPTORS};
pub use write::{now, AddedObject, CreateOptions, ObjectInput, Writer};
