//! Plugins: the store, the loader, lifecycle commands and dispatch.

pub mod manifest;

/// Errors from the plugin store, loader and lifecycle.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {}
