//! Plugins: the store, the loader, lifecycle commands and dispatch.

pub mod adapters;
pub mod audit;
pub mod build;
pub mod disclose;
pub mod dispatch;
pub mod engine_hooks;
pub mod host;
pub mod image;
pub mod in_use;
pub mod install;
pub mod lifecycle;
mod load_error;
mod loaded;
pub mod loader;
pub mod manifest;
pub mod name;
mod registry;
pub mod store;

pub use store::StoreError;

pub use loaded::{Calls, LoadedPlugin};
pub use loader::{load, LoadError, LoadSpec};

/// Errors from the plugin store, loader and lifecycle.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The plugin store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Creating or building a plugin crate.
    #[error(transparent)]
    Build(#[from] build::BuildError),
    /// A file that is not a valid plugin image.
    #[error(transparent)]
    Image(#[from] image::PluginImageError),
    /// An enable, disable or uninstall refused.
    #[error(transparent)]
    Lifecycle(#[from] lifecycle::LifecycleError),
    /// An install refused after the image checked out.
    #[error(transparent)]
    Install(#[from] install::InstallError),
    /// An I/O error on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A plugin library was refused or failed to load.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A callback returned an error (for pre-run hooks: the command is aborted).
    #[error("plugin {plugin:?}: {message}")]
    Callback {
        /// The plugin.
        plugin: String,
        /// Which callback, e.g. `flag pre-run`.
        callback: &'static str,
        /// The plugin's message.
        message: String,
    },
    /// A callback panicked; the panic was caught at the boundary.
    #[error("{message} (in its {callback} callback)")]
    Panicked {
        /// The plugin.
        plugin: String,
        /// Which callback.
        callback: &'static str,
        /// `plugin "NAME" panicked: MESSAGE`, from the SDK's panic guard.
        message: String,
    },
    /// A hook point of the engine refused to go on.
    #[error(transparent)]
    Hooks(#[from] engine_hooks::HookError),
    /// The plugin did not register the callback it was called for.
    #[error("plugin {plugin:?} has no {entry} entry point ({kind} callback)")]
    NoCallback {
        /// The plugin.
        plugin: String,
        /// The callback kind.
        kind: &'static str,
        /// The entry point.
        entry: &'static str,
    },
}

impl From<StoreError> for crate::Error {
    fn from(e: StoreError) -> Self {
        crate::Error::Plugin(PluginError::Store(e))
    }
}
