//! Plugins: the store, the loader, lifecycle commands and dispatch.

/// Errors from the plugin store, loader and lifecycle.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {}
