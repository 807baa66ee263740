//! The crate error: one variant per module error.

/// Everything that can go wrong in vessel, by module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading `vessel.toml`.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Reading, writing, signing or verifying a SIF image.
    #[error(transparent)]
    Sif(#[from] vessel_sif::Error),
    /// A SIF operation on a named image file.
    #[error("{}", sif_file_message(path, source))]
    SifFile {
        /// The image.
        path: std::path::PathBuf,
        /// What went wrong.
        source: vessel_sif::Error,
    },
    /// Keys, the trust store and signing policy.
    #[error(transparent)]
    Trust(#[from] crate::trust::TrustError),
    /// Plugin store, loader and lifecycle.
    #[error(transparent)]
    Plugin(#[from] crate::plugin::PluginError),
    /// Images and image drivers.
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    /// Pushing and pulling through OCI registries.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// Building and running containers.
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
}

/// `IMAGE: cause`, without naming the image twice when the cause already
/// does (I/O errors carry their path).
fn sif_file_message(path: &std::path::Path, source: &vessel_sif::Error) -> String {
    match source {
        vessel_sif::Error::Io { path: p, .. } if p == path => source.to_string(),
        _ => format!("{}: {source}", path.display()),
    }
}

/// Wraps a SIF error with the image it happened on.
pub fn in_sif(path: &std::path::Path) -> impl FnOnce(vessel_sif::Error) -> Error + '_ {
    move |source| Error::SifFile {
        path: path.to_owned(),
        source,
    }
}
