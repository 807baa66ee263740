//! `vessel push`, `vessel pull` and `vessel registry login|logout`: thin
//! adapters over `vessel::registry`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::Error;
use vessel::registry::{self, Credentials, DockerConfig, Options, PullOutcome, Reference};
use vessel::Runtime;

// How to reach the registry, shared by every command that talks to one (not a doc
// comment: see `cli::Command`).
#[derive(Debug, Clone, Default, Args)]
pub struct RegistryFlags {
    /// Trust this PEM CA (in addition to the system roots).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Talk plain HTTP to this registry (no TLS).
    #[arg(long)]
    pub insecure: bool,
}

impl RegistryFlags {
    /// The library's options for these flags under `ctx`'s config.
    pub fn options(&self, ctx: &Runtime) -> Options {
        Options {
            ca: self.ca.clone(),
            insecure: self.insecure,
            insecure_registries: ctx.config.insecure_registries.clone(),
            docker_config: DockerConfig::from_env(),
            progress: !super::quiet(),
        }
    }
}

// Arguments of `vessel push` (not a doc comment: see `cli::Command`).
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryFlags,
    /// The SIF image to push.
    pub image: PathBuf,
    /// Where to: oras://HOST[:PORT]/REPO:TAG.
    pub reference: String,
}

// Arguments of `vessel pull` (not a doc comment: see `cli::Command`).
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryFlags,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
    /// OCI/Docker source options.
    #[command(flatten)]
    pub oci: super::oci::OciFlags,
    /// [OUT] oras://HOST[:PORT]/REPO[:TAG|@sha256:HEX]; OUT is a file or a
    /// directory (default: REPO's last segment and the tag, in the current
    /// directory).
    #[arg(required = true, num_args = 1..=2, value_name = "[OUT] REF")]
    pub args: Vec<String>,
}

// Arguments of `vessel registry` (not a doc comment: see `cli::Command`).
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// The registry subcommand.
    #[command(subcommand)]
    pub command: RegistryCommand,
}

// The registry subcommands (not a doc comment: see `cli::Command`).
#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Check and store credentials for a registry (Docker's config.json).
    Login {
        /// Registry options.
        #[command(flatten)]
        registry: RegistryFlags,
        /// The user name (asked for on a terminal when missing).
        #[arg(short, long)]
        username: Option<String>,
        /// Read the password from standard input (one line).
        #[arg(long)]
        password_stdin: bool,
        /// HOST[:PORT] of the registry.
        host: String,
    },
    /// Remove the stored credentials for a registry.
    Logout {
        /// HOST[:PORT] of the registry.
        host: String,
    },
}

/// `vessel push IMAGE REF`.
pub fn run_push(a: &PushArgs, ctx: &Runtime) -> Result<i32, Error> {
    let r = Reference::parse(&a.reference).map_err(vessel::Error::from)?;
    let opts = a.registry.options(ctx);
    let pushed =
        registry::push(&a.image, &r, Default::default(), &opts).map_err(vessel::Error::from)?;
    infoln!("Pushed {} to {r} ({}).", a.image.display(), pushed.digest);
    Ok(0)
}

/// `vessel pull [OUT] REF`.
pub fn run_pull(a: &PullArgs, ctx: &Runtime) -> Result<i32, Error> {
    let (out, reference) = match a.args.as_slice() {
        [r] => (None, r),
        [o, r] => (Some(PathBuf::from(o)), r),
        _ => return Err(Error::Usage("pull takes [OUT] REF".into())),
    };
    if vessel::image::oci::Source::is_source(reference) {
        return super::oci::pull(out, reference, a.force, &a.oci, &a.registry, ctx);
    }
    let r = Reference::parse(reference).map_err(vessel::Error::from)?;
    let out = match out {
        None => PathBuf::from(r.default_file_name()),
        Some(o) if o.is_dir() => o.join(r.default_file_name()),
        Some(o) => o,
    };
    let opts = a.registry.options(ctx);
    let pulled = registry::pull(&r, &out, a.force, &opts).map_err(vessel::Error::from)?;
    let how = match pulled.outcome {
        PullOutcome::Written => "Pulled",
        PullOutcome::AlreadyThere => "Already pulled",
    };
    infoln!("{how} {r} to {} ({}).", out.display(), pulled.digest);
    Ok(0)
}

/// `vessel registry login|logout`.
pub fn run(a: &RegistryArgs, ctx: &Runtime) -> Result<i32, Error> {
    match &a.command {
        RegistryCommand::Login {
            registry: flags,
            username,
            password_stdin,
            host,
        } => {
            let host = bare_host(host);
            let username = match username {
                Some(u) => u.clone(),
                None if std::io::stdin().is_terminal() => prompt("Username: ", true)?,
                None => {
                    return Err(Error::Usage(
                        "--username is needed when standard input is not a terminal".into(),
                    ))
                }
            };
            let password = if *password_stdin {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line).map_err(|e| {
                    Error::Usage(format!("cannot read the password from standard input: {e}"))
                })?;
                line.trim_end_matches(['\n', '\r']).to_owned()
            } else if std::io::stdin().is_terminal() {
                prompt("Password: ", false)?
            } else {
                return Err(Error::Usage(
                    "--password-stdin is needed when standard input is not a terminal".into(),
                ));
            };
            if username.is_empty() || password.is_empty() {
                return Err(Error::Usage(
                    "user name and password must not be empty".into(),
                ));
            }
            let creds = Credentials { username, password };
            let opts = flags.options(ctx);
            registry::login(host, &creds, &opts).map_err(vessel::Error::from)?;
            infoln!(
                "Login succeeded; credentials for {host} stored in {}.",
                opts.docker_config.path().display()
            );
            Ok(0)
        }
        RegistryCommand::Logout { host } => {
            let host = bare_host(host);
            let cfg = Options {
                docker_config: DockerConfig::from_env(),
                ..Default::default()
            };
            if registry::logout(host, &cfg).map_err(vessel::Error::from)? {
                infoln!("Removed the credentials for {host}.");
            } else {
                infoln!("No credentials stored for {host}.");
            }
            Ok(0)
        }
    }
}

/// `oras://host:port/` and `host:port` name the same registry.
fn bare_host(h: &str) -> &str {
    h.strip_prefix(registry::reference::SCHEME)
        .unwrap_or(h)
        .trim_end_matches('/')
}

/// Asks on the terminal; `echo` false turns echo off for a password.
fn prompt(label: &str, echo: bool) -> Result<String, Error> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let stdin = std::io::stdin();
    let mut err = std::io::stderr();
    let _ = err.write_all(label.as_bytes());
    let _ = err.flush();
    let saved = if echo {
        None
    } else {
        tcgetattr(&stdin).ok().inspect(|t| {
            let mut quiet = t.clone();
            quiet.local_flags.remove(LocalFlags::ECHO);
            let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
        })
    };
    let mut line = String::new();
    let r = stdin.lock().read_line(&mut line);
    if let Some(t) = saved {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &t);
        let _ = writeln!(err);
    }
    r.map_err(|e| Error::Usage(format!("cannot read from the terminal: {e}")))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}
