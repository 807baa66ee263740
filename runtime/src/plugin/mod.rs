//! Plugins: the store, the loader, lifecycle commands and dispatch.

pub mod build;
pub mod dispatch;
pub mod lifecycle;
pub mod manifest;
pub mod store;

pub use store::StoreError;

/// Errors from the plugin store, loader and lifecycle.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The plugin store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Creating or building a plugin crate.
    #[error(transparent)]
    Build(#[from] build::BuildError),
    /// An admin action attempted by a non-root user.
    #[error("{0}: root is needed (run it as root, e.g. with sudo)")]
    NotRoot(String),
}

impl From<StoreError> for crate::Error {
    fn from(e: StoreError) -> Self {
        crate::Error::Plugin(PluginError::Store(e))
    }
}
