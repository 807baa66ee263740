//! A SIF error on a named image file: the one wrapper every module uses, so
//! messages name the image once.

use std::path::{Path, PathBuf};

/// A SIF operation failed on the image at `path`.
#[derive(Debug, thiserror::Error)]
#[error("{}", message(path, source))]
pub struct SifFileError {
    /// The image.
    pub path: PathBuf,
    /// What went wrong.
    pub source: vessel_sif::Error,
}

/// `IMAGE: cause`, without naming the image twice when the cause already
/// does (I/O errors carry their path).
fn message(path: &Path, source: &vessel_sif::Error) -> String {
    match source {
        vessel_sif::Error::Io { path: p, .. } if p == path => source.to_string(),
        _ => format!("{}: {source}", path.display()),
    }
}

/// Wraps a SIF error with the image it happened on.
pub fn in_sif(path: &Path) -> impl FnOnce(vessel_sif::Error) -> SifFileError + '_ {
    move |source| SifFileError {
        path: path.to_owned(),
        source,
    }
}
