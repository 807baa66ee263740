//! Plugins, from source to callback:
//!
//! - `build/`: `plugin create`, reproducible `plugin compile` (cargo with
//!   remapped paths and a rustc wrapper, provenance, lock merging) and
//!   `plugin verify-build`;
//! - `image`: the plugin SIF image (library, manifest, signatures);
//!   `manifest`: what a plugin is and adds (`CallbackKind` comes from the
//!   callback table in `vessel-plugin-abi`); `name`: the name grammar;
//! - `install` and `lifecycle`: install/upgrade, enable/disable/uninstall,
//!   list; `store`: metas, name links and install dirs on disk, crash-safe;
//! - `loader` (+ `load_error`): the checks and the memfd load of a library;
//!   `stamp`: the identity of an installed library, so loads of the file
//!   verified at install skip its hash; `immutable`: the inode flag that
//!   lets such a load map the installed file itself;
//!   `loaded`: a loaded plugin and its entry points; `registry`: the
//!   process-wide maps of loaded plugins and their install dirs; `host`: the
//!   services the runtime hands to plugins (logging, install dir);
//! - `dispatch`: plugin commands and pre-run hooks for the CLI;
//!   `engine_hooks`: the engine's hook points served by plugins;
//!   `adapters`: the ABI objects handed to plugin callbacks.

pub mod adapters;
pub mod audit;
pub mod build;
pub mod disclose;
pub mod dispatch;
mod elf;
pub mod engine_hooks;
pub mod guard;
pub mod host;
pub mod image;
pub mod immutable;
pub mod in_use;
pub mod install;
pub mod lifecycle;
mod load_error;
mod loaded;
pub mod loader;
pub mod manifest;
pub mod name;
pub mod plugin_dirs;
mod registry;
pub mod remote;
pub mod stamp;
pub mod store;

pub use store::StoreError;

pub use load_error::LoadErrorKind;
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
    /// A callback did not return within `plugin_timeout`.
    #[error("plugin {plugin:?}: its {callback} callback did not return within {}", guard::secs(.after))]
    TimedOut {
        /// The plugin.
        plugin: String,
        /// Which callback.
        callback: &'static str,
        /// The deadline.
        after: std::time::Duration,
    },
    /// A stop signal arrived while a callback ran.
    #[error("interrupted by {signal} while plugin {plugin:?} ran its {callback} callback")]
    Interrupted {
        /// The plugin.
        plugin: String,
        /// Which callback.
        callback: &'static str,
        /// The signal, e.g. `SIGTERM`.
        signal: &'static str,
    },
    /// The deadline timer of a callback run on the calling thread could
    /// not be armed.
    #[error("plugin {plugin:?}: arming the deadline of its callback")]
    Deadline {
        /// The plugin.
        plugin: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The thread a callback runs on could not be started.
    #[error("plugin {plugin:?}: starting a thread for its callback")]
    Spawn {
        /// The plugin.
        plugin: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
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
