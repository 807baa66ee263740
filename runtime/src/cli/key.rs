//! `vessel key newpair|list|trust|remove`.

use clap::Args;

use super::Context;
use crate::Error;

/// Arguments of `vessel key`.
#[derive(Debug, Args)]
pub struct KeyArgs {}

/// Runs `vessel key`.
pub fn run(_args: &KeyArgs, _ctx: &Context) -> Result<i32, Error> {
    Err(Error::Usage("vessel key is not built yet".into()))
}
