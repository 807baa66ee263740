//! vessel: a container runtime for SIF images whose behaviour admins extend
//! with signed native plugins.
//!
//! The library holds all engine, image, plugin and trust logic. The command
//! line lives in the binary (`src/main.rs` and its private `cli` modules) and
//! is a leaf: each command is a thin adapter that parses flags into a
//! validated config and calls into this library.

pub mod cache;
pub mod config;
pub mod engine;
pub mod error;
pub mod image;
pub mod paths;
pub mod plugin;
pub mod registry;
mod runtime;
pub mod sif_file;
pub mod trust;

pub use error::Error;
pub use runtime::Runtime;

/// Exit status for the runtime's own failures, so they never look like a
/// container's exit status.
pub const EXIT_RUNTIME_FAILURE: i32 = 255;
