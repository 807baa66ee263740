//! `vessel plugin ...`.

use clap::Args;

use super::Context;
use crate::Error;

/// Arguments of `vessel plugin`.
#[derive(Debug, Args)]
pub struct PluginArgs {}

/// Runs `vessel plugin`.
pub fn run(_args: &PluginArgs, _ctx: &Context) -> Result<i32, Error> {
    Err(Error::Usage("vessel plugin is not built yet".into()))
}
