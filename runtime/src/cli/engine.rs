//! `vessel exec|run|shell|build`: flags into an [`EngineConfig`], then the engine.

use std::path::PathBuf;

use clap::Args;

use super::Error;
use vessel::engine::{self, Bind, BindOrigin, EngineConfig, EnvOp, Hooks, Runscript};
use vessel::plugin::engine_hooks::PluginHooks;
use vessel::Runtime;

// Options every container command takes (not a doc comment: see `cli::Command`).
#[derive(Debug, Clone, Default, Args)]
pub struct ContainerOpts {
    /// Bind a host path: SRC[:DST[:ro|rw]], repeatable, comma-separated lists allowed.
    #[arg(short = 'B', long = "bind", value_name = "SPEC")]
    pub bind: Vec<String>,
    /// A writable tmpfs layer over the image; changes vanish at exit.
    #[arg(long, conflicts_with = "overlay")]
    pub writable_tmpfs: bool,
    /// A persistent writable layer: changes go to DIR/upper (DIR must be
    /// yours and not writable by others).
    #[arg(long, value_name = "DIR")]
    pub overlay: Option<PathBuf>,
    /// Minimal /dev, no host home or /tmp.
    #[arg(short = 'c', long)]
    pub contain: bool,
    /// Set an environment variable in the container (NAME=VALUE), repeatable.
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Read environment variables from FILE (NAME=VALUE lines), below --env.
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    /// Start from a clean environment instead of the host's (keeps TERM and
    /// the proxy variables, sets HOME, LANG=C and the default PATH).
    #[arg(short = 'e', long)]
    pub cleanenv: bool,
    /// Working directory inside the container (default: the current
    /// directory, else the home directory, else /).
    #[arg(long, value_name = "DIR")]
    pub pwd: Option<PathBuf>,
    /// Mount SRC as the home directory, at DST (default SRC), which becomes $HOME.
    #[arg(long, value_name = "SRC[:DST]", conflicts_with = "no_home")]
    pub home: Option<String>,
    /// Do not mount a home directory.
    #[arg(long)]
    pub no_home: bool,
    /// Do not mount these (comma-separated): home, cwd.
    #[arg(long = "no-mount", value_name = "LIST")]
    pub no_mount: Vec<String>,
    /// Hostname inside the container (implies a UTS namespace).
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Run in a new PID namespace, under a tiny init (PID 1) that forwards
    /// signals and reaps orphans.
    #[arg(short = 'p', long)]
    pub pid: bool,
    /// With --pid, run the command itself as PID 1 (no init).
    #[arg(long)]
    pub no_init: bool,
    /// As root, keep every privilege in the container (no capability drop,
    /// no no_new_privs, no masked /proc and /sys paths).
    #[arg(long, conflicts_with = "no_privs")]
    pub keep_privs: bool,
    /// As root, drop every capability in the container.
    #[arg(long)]
    pub no_privs: bool,
    /// Run in a new network namespace with loopback only.
    #[arg(short = 'n', long)]
    pub net: bool,
    /// Run in a new IPC namespace.
    #[arg(short = 'i', long)]
    pub ipc: bool,
    /// Run in a user namespace (always on for unprivileged users).
    #[arg(short = 'u', long)]
    pub userns: bool,
    /// Run as root inside a user namespace.
    #[arg(long)]
    pub fakeroot: bool,
}

// Arguments of `vessel exec` (not a doc comment: see `cli::Command`).
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Container options.
    #[command(flatten)]
    pub opts: ContainerOpts,
    /// Sandbox directory or SIF image.
    pub image: PathBuf,
    /// Command to run and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

// Arguments of `vessel run` (not a doc comment: see `cli::Command`).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Container options.
    #[command(flatten)]
    pub opts: ContainerOpts,
    /// Sandbox directory or SIF image.
    pub image: PathBuf,
    /// Arguments for the runscript (or the command to run without one).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

// Arguments of `vessel shell` (not a doc comment: see `cli::Command`).
#[derive(Debug, Args)]
pub struct ShellArgs {
    /// Container options.
    #[command(flatten)]
    pub opts: ContainerOpts,
    /// Sandbox directory or SIF image.
    pub image: PathBuf,
}

// Arguments of `vessel build` (not a doc comment: see `cli::Command`).
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The SIF image to write.
    pub output: PathBuf,
    /// The sandbox directory to pack, or an OCI/Docker image:
    /// docker://REF, oci:DIR[:TAG], docker-archive:FILE.
    pub sandbox: PathBuf,
    /// OCI/Docker source options.
    #[command(flatten)]
    pub oci: super::oci::OciFlags,
    /// Registry options (docker:// sources).
    #[command(flatten)]
    pub registry: super::registry::RegistryFlags,
    /// Sign the image with this ed25519 private key (PEM).
    #[arg(long, value_name = "KEY")]
    pub sign_key: Option<PathBuf>,
    /// Overwrite OUTPUT if it exists.
    #[arg(short = 'F', long)]
    pub force: bool,
}

/// The runscript `vessel run` looks for in the image.
pub const RUNSCRIPT: &str = "/.singularity.d/runscript";

/// Builds the engine config from the flags and vessel.toml.
pub fn engine_config(
    o: &ContainerOpts,
    image: PathBuf,
    command: Vec<String>,
    ctx: &Runtime,
) -> Result<EngineConfig, Error> {
    let mut cfg = EngineConfig::new(image, command);
    cfg.launch.contain = o.contain;
    cfg.launch.plugin_flags = ctx.plugin_flags.clone();
    for spec in &ctx.config.bind_paths {
        cfg.binds
            .extend(Bind::parse_list_from(spec, &BindOrigin::Config)?);
    }
    for spec in &o.bind {
        cfg.binds.extend(Bind::parse_list(spec)?);
    }
    for e in &o.env {
        cfg.env.push(EnvOp::parse_set(e)?);
    }
    if let Some(f) = &o.env_file {
        cfg.env_file = engine::env::read_env_file(f)?;
    }
    cfg.cleanenv = o.cleanenv;
    cfg.contain = o.contain;
    cfg.hostname = o.hostname.clone();
    cfg.cwd = o.pwd.clone();
    if let Some(spec) = &o.home {
        let (src, dst) = match spec.split_once(':') {
            Some((s, d)) => (s, Some(d)),
            None => (spec.as_str(), None),
        };
        if src.is_empty() || dst.is_some_and(|d| d.is_empty() || d.contains(':')) {
            return Err(Error::Usage(format!("--home {spec:?}: expected SRC[:DST]")));
        }
        // A relative SRC is the caller's, as Apptainer takes it.
        let src =
            std::path::absolute(src).map_err(|e| Error::Usage(format!("--home {spec:?}: {e}")))?;
        cfg.home = Some(dst.map_or_else(|| src.clone(), PathBuf::from));
        cfg.home_source = Some(src);
    }
    cfg.mount_home = !o.no_home;
    for name in o.no_mount.iter().flat_map(|l| l.split(',')) {
        match name.trim() {
            "home" => cfg.mount_home = false,
            "cwd" => cfg.mount_cwd = false,
            "" => {}
            other => {
                return Err(Error::Usage(format!(
                    "--no-mount {other:?}: unknown mount, expected home or cwd"
                )))
            }
        }
    }
    cfg.namespaces.pid = o.pid;
    cfg.namespaces.net = o.net;
    cfg.namespaces.ipc = o.ipc;
    cfg.namespaces.user = o.userns;
    cfg.fakeroot = o.fakeroot;
    cfg.init = !o.no_init;
    cfg.privileges = if o.keep_privs {
        vessel::engine::privs::Privileges::Keep
    } else if o.no_privs {
        vessel::engine::privs::Privileges::None
    } else {
        vessel::engine::privs::Privileges::Default
    };
    cfg.image_driver = ctx.config.image_driver.clone();
    cfg.cache =
        match vessel::cache::Cache::for_caller(ctx.paths.root(), ctx.config.cache_max_size()) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::debug!("{e}: images are extracted for each run");
                None
            }
        };
    cfg.writable_tmpfs = o.writable_tmpfs;
    cfg.overlay = o.overlay.clone();
    Ok(cfg)
}

/// Runs the container with the given hooks; a command that is missing or
/// not executable prints one line and gives 127/126 as shells do.
pub fn run_container(cfg: EngineConfig, hooks: &mut dyn Hooks) -> Result<i32, Error> {
    match engine::run(cfg, hooks) {
        Err(vessel::Error::Engine(e)) if e.exit_status().is_some() => {
            eprintln!("error: {e}");
            Ok(e.exit_status().unwrap_or(vessel::EXIT_RUNTIME_FAILURE))
        }
        r => Ok(r?),
    }
}

/// An image driver that is not registered may come from a disabled plugin:
/// the error names it.
fn named_driver(r: Result<i32, Error>, ctx: &Runtime) -> Result<i32, Error> {
    match r {
        Err(Error::Vessel(e)) => {
            // Start-up reads only the plugins a command needs (not the
            // disabled ones): on this error path, read every installed meta.
            let read;
            let metas = match ctx.installed.as_deref() {
                Some(m) => m,
                None => {
                    read = ctx.store().list_all().map(|(m, _)| m).unwrap_or_default();
                    &read
                }
            };
            Err(super::disabled::explain_driver_error(e, metas)
                .map_or_else(Error::from, Error::from))
        }
        r => r,
    }
}

/// Runs `vessel exec`.
pub fn run_exec(a: &ExecArgs, ctx: &Runtime) -> Result<i32, Error> {
    let image = super::oci::image_path(&a.image, ctx)?;
    let mut cfg = engine_config(&a.opts, image, a.command.clone(), ctx)?;
    cfg.launch.command = "exec".into();
    named_driver(run_container(cfg, &mut PluginHooks::new(ctx)?), ctx)
}

/// Runs `vessel run`.
pub fn run_run(a: &RunArgs, ctx: &Runtime) -> Result<i32, Error> {
    let command = if a.args.is_empty() {
        vec!["/bin/sh".to_owned()]
    } else {
        a.args.clone()
    };
    let image = super::oci::image_path(&a.image, ctx)?;
    let mut cfg = engine_config(&a.opts, image.clone(), command, ctx)?;
    cfg.launch.command = "run".into();
    cfg.runscript = Some(Runscript {
        path: RUNSCRIPT.into(),
        args: a.args.clone(),
    });
    // An image built from an OCI image starts `run` in its WORKDIR (kept in
    // the SIF's image config) unless --pwd says otherwise.
    if cfg.cwd.is_none() {
        cfg.cwd = vessel::image::oci::image_workdir(&image).map(PathBuf::from);
    }
    named_driver(run_container(cfg, &mut PluginHooks::new(ctx)?), ctx)
}

/// Runs `vessel shell`.
pub fn run_shell(a: &ShellArgs, ctx: &Runtime) -> Result<i32, Error> {
    let image = super::oci::image_path(&a.image, ctx)?;
    let mut cfg = engine_config(&a.opts, image, vec!["/bin/sh".to_owned()], ctx)?;
    cfg.launch.command = "shell".into();
    named_driver(run_container(cfg, &mut PluginHooks::new(ctx)?), ctx)
}

/// Runs `vessel build`.
pub fn run_build(a: &BuildArgs, ctx: &Runtime) -> Result<i32, Error> {
    if let Some(src) = a
        .sandbox
        .to_str()
        .filter(|s| vessel::image::oci::Source::is_source(s))
    {
        return super::oci::build(
            &a.output,
            src,
            a.sign_key.as_deref(),
            a.force,
            &a.oci,
            &a.registry,
            ctx,
        );
    }
    vessel::image::build::build_sif(&a.output, &a.sandbox, a.sign_key.as_deref(), a.force)?;
    let _ = outln!("built {}", a.output.display());
    Ok(0)
}
