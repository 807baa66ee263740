//! Calling plugins from the CLI and the engine: load lazily, per callback
//! kind, only enabled plugins, once per process, in name order.

use crate::cli::Context;
use crate::plugin::store::Meta;
use crate::Error;

/// A call of a plugin command: the positional values in spec order and the
/// flags given on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invocation {
    /// Command name.
    pub command: String,
    /// Positional values, in order.
    pub args: Vec<String>,
    /// Flags given: name and value (None for a switch).
    pub flags: Vec<(String, Option<String>)>,
}

/// Runs the global pre-run hooks of every enabled plugin that has one.
pub fn run_global_pre_run(
    _ctx: &Context,
    metas: &[Meta],
    _command: &str,
    _args: &[String],
) -> Result<(), Error> {
    if metas.iter().any(|m| m.enabled && m.manifest.global_pre_run) {
        return Err(Error::Usage("plugin loading is not wired yet".into()));
    }
    Ok(())
}

/// Runs a plugin command and returns its exit status.
pub fn run_command(_ctx: &Context, _meta: &Meta, _inv: &Invocation) -> Result<i32, Error> {
    Err(Error::Usage("plugin loading is not wired yet".into()))
}

/// Runs the pre-run hook of a flag a plugin added to a built-in command.
pub fn run_pre_run(
    _ctx: &Context,
    _meta: &Meta,
    _command: &str,
    _flag: &str,
    _value: Option<&str>,
) -> Result<(), Error> {
    Err(Error::Usage("plugin loading is not wired yet".into()))
}
