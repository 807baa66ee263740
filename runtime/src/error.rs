//! The crate error: one variant per module error.

/// Everything that can go wrong in vessel, by module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The per-user cache.
    #[error(transparent)]
    Cache(#[from] crate::cache::CacheError),
    /// Reading `vessel.toml`.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Reading, writing, signing or verifying a SIF image.
    #[error(transparent)]
    Sif(#[from] vessel_sif::Error),
    /// A SIF operation on a named image file.
    #[error(transparent)]
    SifFile(#[from] crate::sif_file::SifFileError),
    /// Keys, the trust store and signing policy.
    #[error(transparent)]
    Trust(#[from] crate::trust::TrustError),
    /// Plugin store, loader and lifecycle.
    #[error(transparent)]
    Plugin(#[from] crate::plugin::PluginError),
    /// Images and image drivers.
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    /// OCI/Docker images to SIF.
    #[error(transparent)]
    Oci(Box<crate::image::oci::OciError>),
    /// Pushing and pulling through OCI registries.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// Building and running containers.
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
}

impl From<crate::image::oci::OciError> for Error {
    /// Boxed: the OCI error is large and every command returns this type.
    fn from(e: crate::image::oci::OciError) -> Self {
        Error::Oci(Box::new(e))
    }
}
