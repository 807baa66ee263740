//! Plugins: the store, the loader, lifecycle commands and dispatch.

pub mod host;
mod load_error;
mod loaded;
pub mod loader;
pub mod manifest;

pub use loaded::LoadedPlugin;
pub use loader::{load, LoadError, LoadSpec};

/// Errors from the plugin store, loader and lifecycle.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
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
