//! `vessel sif list|info|dump|header`.

use clap::Args;

use super::Context;
use crate::Error;

/// Arguments of `vessel sif`.
#[derive(Debug, Args)]
pub struct SifArgs {}

/// Runs `vessel sif`.
pub fn run(_args: &SifArgs, _ctx: &Context) -> Result<i32, Error> {
    Err(Error::Usage("vessel sif is not built yet".into()))
}
