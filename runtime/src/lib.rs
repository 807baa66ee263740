//! vessel: a container runtime for SIF images whose behaviour admins extend
//! with signed native plugins.
//!
//! The library holds all engine and plugin logic; `main.rs` and the `cli`
//! module are thin adapters that parse flags into validated configs and call
//! into it.

pub mod cli;
pub mod config;
pub mod engine;
pub mod error;
pub mod image;
pub mod paths;
pub mod plugin;
pub mod trust;

pub use error::Error;

/// Exit status for the runtime's own failures, so they never look like a
/// container's exit status.
pub const EXIT_RUNTIME_FAILURE: i32 = 255;
