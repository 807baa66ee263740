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
//!
//! ```no_run
//! use vessel_sif::{Arch, CreateOptions, FsType, Image, ObjectInput, PartType, Writer};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A plugin image: group 1 = plugin.so (Raw/Data, host arch) + plugin.manifest.
//! let so = std::fs::File::open("libplugin.so")?;
//! let mut w = Writer::create("plugin.sif", &CreateOptions::new())?;
//! w.add(ObjectInput::partition(FsType::Raw, PartType::Data, Arch::host(), so).name("plugin.so"))?;
//! w.add(ObjectInput::generic_json(&br#"{"name":"x"}"#[..]).name("plugin.manifest"))?;
//! w.finish()?;
//!
//! // A container image: where is the squashfs root file system?
//! let img = Image::open("container.sif")?;
//! if let Some(d) = img.primary_partition() {
//!     println!("squashfs at offset {} size {}", d.offset, d.size);
//! }
//! # Ok(()) }
//! ```

pub mod display;
mod dsse;
mod error;
pub mod format;
mod read;
pub mod text;
mod write;

pub use dsse::{
    keyid, list_signatures, sign_image, verify_image, GroupReport, SignatureKind, SignatureListing,
    SignatureReport, SignedGroup, Verdict, VerifyFailure, VerifyReport, PAYLOAD_TYPE,
};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use error::{Error, Result};
pub use format::{
    Arch, DataType, Descriptor, FsType, HashType, Header, Link, PartType, PartitionInfo,
    SignatureInfo, ZERO_TIME,
};
pub use read::{Image, ObjectReader, Source, MAX_DESCRIPTORS};
pub use write::{now, AddedObject, CreateOptions, ObjectInput, Writer};
