//! The `vessel` binary: parse, set up tracing, dispatch, map errors to exit codes.

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;
use vessel::cli::{dynamic, GlobalArgs};
use vessel::EXIT_RUNTIME_FAILURE;

fn init_tracing(g: &GlobalArgs) {
    let level = if g.debug {
        "debug"
    } else if g.verbose {
        "info"
    } else if g.quiet {
        "error"
    } else {
        "warn"
    };
    let filter = EnvFilter::try_from_env("VESSEL_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}

fn main() -> ExitCode {
    match dynamic::run(std::env::args_os().collect(), init_tracing) {
        Ok(code) => ExitCode::from(u8::try_from(code & 0xff).unwrap_or(u8::MAX)),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_RUNTIME_FAILURE as u8)
        }
    }
}
