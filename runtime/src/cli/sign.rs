//! `vessel sign` and `vessel verify`.

use clap::Args;

use super::Context;
use crate::Error;

/// Arguments of `vessel sign`.
#[derive(Debug, Args)]
pub struct SignArgs {}

/// Arguments of `vessel verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {}

/// Runs `vessel sign`.
pub fn run_sign(_args: &SignArgs, _ctx: &Context) -> Result<i32, Error> {
    Err(Error::Usage("vessel sign is not built yet".into()))
}

/// Runs `vessel verify`.
pub fn run_verify(_args: &VerifyArgs, _ctx: &Context) -> Result<i32, Error> {
    Err(Error::Usage("vessel verify is not built yet".into()))
}
