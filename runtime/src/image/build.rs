//! `vessel build`: a SIF image from a sandbox directory.

use std::path::Path;

use super::ImageError;

/// Packs `sandbox` into a SIF image at `out`.
pub fn build_sif(
    out: &Path,
    _sandbox: &Path,
    _key: Option<&Path>,
    _force: bool,
) -> Result<(), ImageError> {
    Err(ImageError::Build {
        out: out.to_owned(),
        reason: "sif writer not available yet".into(),
    })
}
