//! `vessel exec|run|shell|build`.

use clap::Args;

use super::Context;
use crate::Error;

/// Arguments of `vessel exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {}
/// Arguments of `vessel run`.
#[derive(Debug, Args)]
pub struct RunArgs {}
/// Arguments of `vessel shell`.
#[derive(Debug, Args)]
pub struct ShellArgs {}
/// Arguments of `vessel build`.
#[derive(Debug, Args)]
pub struct BuildArgs {}

/// Runs `vessel exec`.
pub fn run_exec(_a: &ExecArgs, _ctx: &Context) -> Result<i32, Error> {
    Err(Error::Usage("vessel exec is not built yet".into()))
}
/// Runs `vessel run`.
pub fn run_run(_a: &RunArgs, _ctx: &Context) -> Result<i32, Error> {
    Err(Error::Usage("vessel run is not built yet".into()))
}
/// Runs `vessel shell`.
pub fn run_shell(_a: &ShellArgs, _ctx: &Context) -> Result<i32, Error> {
    Err(Error::Usage("vessel shell is not built yet".into()))
}
/// Runs `vessel build`.
pub fn run_build(_a: &BuildArgs, _ctx: &Context) -> Result<i32, Error> {
    Err(Error::Usage("vessel build is not built yet".into()))
}
