//! SIF v1 images: reading by seeking, writing, and DSSE signatures.

/// Errors reading, writing, signing and verifying SIF images.
#[derive(Debug, thiserror::Error)]
pub enum Error {}
