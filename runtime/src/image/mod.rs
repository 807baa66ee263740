//! Images (sandbox dirs and SIF) and the image driver registry.

/// Errors resolving and mounting images.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {}
