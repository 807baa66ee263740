//! Keys, the trust store and image verification against it.
//!
//! - [`keys`]: load ed25519 keys (PKCS#8 private PEM, SPKI public PEM),
//!   generate key pairs, compute keyids (the reference SIF keyid).
//! - [`store`]: the trust store, `$VESSEL_ROOT/etc/vessel/keys/*.pem`;
//!   adding and removing keys is root-only.

use std::path::PathBuf;

pub mod keys;
pub mod secure;
pub mod store;

pub use keys::{generate_keypair, keyid, load_signing_key, load_verifying_key, KeyPairFiles};
pub use store::{require_verified, verify_image_with_keys, AddOutcome, TrustStore, TrustedKey};
pub use vessel_sif::{GroupReport, VerifyFailure, VerifyReport};

/// Errors from keys and the trust store.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// A key file cannot be read.
    #[error("key {path}: {source}")]
    ReadKey {
        /// The key file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not a PKCS#8 PEM ed25519 private key.
    #[error("key {path}: not an ed25519 private key in pkcs#8 pem format ({reason})")]
    BadPrivateKey {
        /// The key file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// A file is not an SPKI PEM ed25519 public key.
    #[error("key {path}: not an ed25519 public key in spki pem format ({reason})")]
    BadPublicKey {
        /// The key file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// A key file would be overwritten.
    #[error("key {path}: file already exists")]
    KeyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// Writing a key file failed.
    #[error("key {path}: {source}")]
    WriteKey {
        /// The key file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A root-only action run by another user.
    #[error("{action} requires root (effective uid {uid})")]
    NotRoot {
        /// What was attempted.
        action: &'static str,
        /// The caller's effective uid.
        uid: u32,
    },
    /// The trust store directory cannot be read or changed.
    #[error("trust store {path}: {source}")]
    Store {
        /// The directory or file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `key remove` of a keyid the store does not hold.
    #[error("key {keyid} is not in the trust store")]
    NotTrusted {
        /// The keyid.
        keyid: String,
    },
    /// An image failed verification.
    #[error("image {image}: {failure}")]
    NotVerified {
        /// The image.
        image: PathBuf,
        /// The first failing group's reason.
        failure: VerifyFailure,
    },
    /// A trust store file or dir another user could change (as root).
    #[error("trust store: {0}")]
    Insecure(#[from] secure::InsecurePath),
    /// An image has no object groups, so there is nothing to verify.
    #[error("image {image}: no object groups to verify")]
    NothingToVerify {
        /// The image.
        image: PathBuf,
    },
}

/// Fails with [`TrustError::NotRoot`] unless the effective uid is 0.
pub fn require_root(action: &'static str) -> Result<(), TrustError> {
    let uid = nix::unistd::Uid::effective();
    if uid.is_root() {
        Ok(())
    } else {
        Err(TrustError::NotRoot {
            action,
            uid: uid.as_raw(),
        })
    }
}
