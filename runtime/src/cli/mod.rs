//! The clap command tree and dispatch. Each command's handler lives in its
//! own file and is a thin adapter: it turns flags into a validated config and
//! calls the library.

use clap::{Args, Parser, Subcommand};

use vessel::Runtime;

/// `println!` for command output that returns the write error instead of
/// panicking when stdout is closed (`vessel plugin list | head -0`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*).map_err($crate::cli::stdout_err)
    }};
}

/// Set from `-q/--quiet` before a command runs: the command shows no
/// progress bars and prints no informational lines (results a script asked
/// for, warnings and errors still print).
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether `-q/--quiet` was given.
pub(crate) fn quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

/// [`outln!`] for informational lines, which `-q` silences.
macro_rules! infoln {
    ($($arg:tt)*) => {{
        if !$crate::cli::quiet() {
            let _ = outln!($($arg)*);
        }
    }};
}

/// `print!` counterpart of [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout(), $($arg)*).map_err($crate::cli::stdout_err)
    }};
}

/// A failed write of command output.
pub(crate) fn stdout_err(e: std::io::Error) -> Error {
    Error::Stdout(e)
}

/// What a command can fail with: the library's errors, and the command
/// line's own. `main` renders it (and its `#[source]` chain) once.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A library call failed.
    #[error(transparent)]
    Vessel(#[from] vessel::Error),
    /// A usage problem found after parsing.
    #[error("{0}")]
    Usage(String),
    /// Command output could not be written (`vessel plugin list | head -0`).
    #[error("<stdout>")]
    Stdout(#[source] std::io::Error),
    /// What was asked for comes from a disabled plugin.
    #[error(transparent)]
    Disabled(Box<disabled::DisabledError>),
}

impl From<disabled::DisabledError> for Error {
    fn from(e: disabled::DisabledError) -> Self {
        Error::Disabled(Box::new(e))
    }
}

/// `?` on a module's error in a command handler: through the library's
/// aggregate error.
macro_rules! from_via_vessel {
    ($($t:ty),* $(,)?) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Vessel(e.into())
            }
        }
    )*};
}
from_via_vessel!(
    vessel::config::ConfigError,
    vessel_sif::Error,
    vessel::sif_file::SifFileError,
    vessel::trust::TrustError,
    vessel::plugin::PluginError,
    vessel::plugin::StoreError,
    vessel::image::ImageError,
    vessel::engine::EngineError,
    vessel::registry::RegistryError,
    vessel::image::oci::OciError,
);

/// Prints a shell completion script for `cmd` (generated into memory first:
/// clap_complete panics when its writer fails).
pub(crate) fn print_completion(
    shell: clap_complete::Shell,
    cmd: &mut clap::Command,
) -> Result<i32, Error> {
    use std::io::Write as _;
    let mut script = Vec::new();
    clap_complete::generate(shell, cmd, "vessel", &mut script);
    std::io::stdout().write_all(&script).map_err(stdout_err)?;
    Ok(0)
}

pub mod cache;
mod clash;
pub mod complete;
mod disabled;
pub mod docs;
pub mod dynamic;
pub mod engine;
pub mod key;
pub mod oci;
pub mod plugin;
pub mod plugin_build;
pub mod plugin_remote;
pub mod registry;
pub mod sif;
pub mod sign;

/// vessel: run containers from SIF images, extended by signed plugins.
#[derive(Debug, Parser)]
#[command(name = "vessel", version, propagate_version = true)]
pub struct Cli {
    /// Global output options.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes, listed after each command's own (900 on).
#[derive(Debug, Clone, Default, Args)]
pub struct GlobalArgs {
    /// Print debugging output (most verbose).
    #[arg(short, long, global = true, display_order = 900)]
    pub debug: bool,
    /// Print informational output.
    #[arg(
        short,
        long,
        global = true,
        display_order = 901,
        conflicts_with = "debug"
    )]
    pub verbose: bool,
    /// Print only errors.
    #[arg(short, long, global = true, display_order = 902, conflicts_with_all = ["debug", "verbose"])]
    pub quiet: bool,
}

/// The built-in commands. clap defines a command's arguments only when it
/// needs them (it parses, documents or completes that command): defining
/// all of them on every invocation was a third of a millisecond of each
/// command's start-up. The types clap defines then (argument structs,
/// flattened option groups, subcommand enums) carry plain comments: clap
/// would apply a doc comment there as the command's about, over the one
/// given here (a unit test holds them equal). Code that reads a built-in's
/// arguments from the tree builds it first ([`built_in_tree`]).
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Inspect SIF images (same columns and wording as siftool).
    Sif(sif::SifArgs),
    /// Manage signing keys and the trust store.
    Key(key::KeyArgs),
    /// Sign every object group of a SIF image.
    Sign(sign::SignArgs),
    /// Verify the signatures of a SIF image.
    Verify(sign::VerifyArgs),
    /// Create, compile, inspect and manage plugins.
    Plugin(plugin::PluginArgs),
    /// Run a command in a container.
    Exec(engine::ExecArgs),
    /// Run the container's runscript.
    Run(engine::RunArgs),
    /// Start an interactive shell in a container.
    Shell(engine::ShellArgs),
    /// Build a SIF image from a sandbox directory or an OCI/Docker image
    /// (docker://REF, oci:DIR[:TAG], docker-archive:FILE).
    Build(engine::BuildArgs),
    /// Show an image's labels, runscript and environment.
    Inspect(oci::InspectArgs),
    /// Push a SIF image to an OCI registry (oras://HOST/REPO:TAG).
    Push(registry::PushArgs),
    /// Pull a SIF image from an OCI registry (oras://HOST/REPO[:TAG|@sha256:…]),
    /// or build one from an OCI/Docker image (docker://, oci:, docker-archive:).
    Pull(registry::PullArgs),
    /// Log in to and out of OCI registries.
    Registry(registry::RegistryArgs),
    /// List and clean the cache of extracted images.
    Cache(cache::CacheArgs),
    /// Print the vessel version.
    Version,
    /// Print a shell completion script (includes plugins' commands).
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// The built-in command tree with every command's arguments defined, for
/// code that inspects them rather than parsing with them.
pub(crate) fn built_in_tree() -> clap::Command {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    cmd.build();
    cmd
}

/// Runs a parsed command and returns the process exit status.
pub fn dispatch(cli: &Cli, ctx: &Runtime) -> Result<i32, Error> {
    QUIET.store(cli.global.quiet, std::sync::atomic::Ordering::Relaxed);
    match &cli.command {
        Command::Sif(a) => sif::run(a, ctx),
        Command::Key(a) => key::run(a, ctx),
        Command::Sign(a) => sign::run_sign(a, ctx),
        Command::Verify(a) => sign::run_verify(a, ctx),
        Command::Plugin(a) => plugin::run(a, ctx),
        Command::Exec(a) => engine::run_exec(a, ctx),
        Command::Run(a) => engine::run_run(a, ctx),
        Command::Shell(a) => engine::run_shell(a, ctx),
        Command::Build(a) => engine::run_build(a, ctx),
        Command::Inspect(a) => oci::run_inspect(a, ctx),
        Command::Push(a) => registry::run_push(a, ctx),
        Command::Pull(a) => registry::run_pull(a, ctx),
        Command::Registry(a) => registry::run(a, ctx),
        Command::Cache(a) => cache::run(a, ctx),
        Command::Version => {
            outln!("vessel version {}", env!("CARGO_PKG_VERSION"))?;
            Ok(0)
        }
        // The merged tree, so plugins' commands and flags complete too.
        Command::Completion { shell } => print_completion(
            *shell,
            &mut dynamic::completion_command(ctx.installed.as_deref().unwrap_or_default()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn a_built_in_command_keeps_its_about_once_its_arguments_are_defined() {
        let listed = Cli::command();
        let built = built_in_tree();
        let text = |s: Option<&clap::builder::StyledStr>| s.map(ToString::to_string);
        for c in listed.get_subcommands() {
            let b = built.find_subcommand(c.get_name()).expect("same commands");
            assert!(c.get_about().is_some(), "{}", c.get_name());
            assert_eq!(text(c.get_about()), text(b.get_about()), "{}", c.get_name());
            assert_eq!(
                text(c.get_long_about()),
                text(b.get_long_about()),
                "{}",
                c.get_name()
            );
        }
        // Deferred: listing a command defines none of its arguments.
        let exec = listed.find_subcommand("exec").expect("exec");
        assert_eq!(exec.get_arguments().count(), 0);
        let exec = built.find_subcommand("exec").expect("exec");
        assert!(exec.get_arguments().any(|a| a.get_long() == Some("bind")));
    }
}
