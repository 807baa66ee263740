//! The container engine: config, launch, monitor.

/// Errors building and running containers.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {}
