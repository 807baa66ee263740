//! The container engine: config, launch, monitor.
//!
//! [`run`] is the whole life of one container: hooks change the config, the
//! image is resolved and its driver started, the container process is
//! cloned into its namespaces and sets up its root, the monitor waits for
//! it, and everything is released on every path.

use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;

pub mod cleanup;
pub mod config;
pub mod devices;
pub mod env;
pub mod hooks;
pub mod hostdirs;
pub mod identity;
pub mod init;
pub mod launch;
pub mod monitor;
pub mod overlay;
pub mod plan;
pub mod privs;
pub mod seccomp;
pub mod sys;

pub use config::{Bind, BindOrigin, EngineConfig, EnvOp, HomeMount, Namespaces, Runscript};
pub use hooks::{Hooks, NoHooks};

use crate::image::driver::{MountRequest, Registry};
use crate::image::Image;
use crate::Error;

/// Errors building and running containers.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A bind value that does not parse.
    #[error("bind {spec:?} (from {origin}): {reason}")]
    BadBind {
        /// The spec as given.
        spec: String,
        /// Who asked for it.
        origin: BindOrigin,
        /// What is wrong.
        reason: String,
    },
    /// A bind source that cannot be used.
    #[error("bind source {src} (from {origin}): {reason}")]
    BindSource {
        /// The host path.
        src: PathBuf,
        /// Who asked for it.
        origin: BindOrigin,
        /// Why.
        reason: String,
    },
    /// A bind destination that cannot be made in the container.
    #[error("bind destination {dst} (from {origin}): {reason}")]
    BindDestination {
        /// The path inside the container.
        dst: PathBuf,
        /// Who asked for it.
        origin: BindOrigin,
        /// Why.
        reason: String,
    },
    /// A device node a plugin asked for that cannot be added.
    #[error("{reason} (from {origin})")]
    BadDevice {
        /// Who asked for it.
        origin: BindOrigin,
        /// Why, naming the device.
        reason: String,
    },
    /// An `--overlay` dir that cannot be used.
    #[error("overlay {dir}: {reason}")]
    BadOverlay {
        /// The dir as given.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// An `--env` value that is not `NAME=VALUE`.
    #[error("env {0:?}: expected NAME=VALUE with a valid name")]
    BadEnv(String),
    /// An `--env-file` line that does not parse.
    #[error("env file {path} line {line}: {reason}")]
    BadEnvFile {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// No command to run.
    #[error("no command to run")]
    NoCommand,
    /// The image path does not exist.
    #[error("image {0}: no such file or directory")]
    ImageMissing(PathBuf),
    /// A hostname the kernel would refuse.
    #[error("hostname {0:?}: must be 1 to 64 characters without '/'")]
    BadHostname(String),
    /// A relative `--pwd`.
    #[error("working directory {0}: must be an absolute path")]
    BadCwd(PathBuf),
    /// A setup step failed.
    #[error("{what}: {reason}")]
    Setup {
        /// The step.
        what: String,
        /// The cause.
        reason: String,
    },
    /// The container's setup failed (message from the container process).
    #[error("{0}")]
    Container(String),
    /// The runtime process has more than one thread when it must clone.
    #[error("the runtime has {0} threads; starting a container needs a single-threaded process")]
    Threaded(usize),
    /// The command does not exist in the container (exit 127).
    #[error("{0}")]
    CommandNotFound(String),
    /// The command exists but cannot be executed (exit 126).
    #[error("{0}")]
    CommandNotExecutable(String),
}

impl EngineError {
    pub(crate) fn sys(what: &str, e: nix::errno::Errno) -> Self {
        Self::Setup {
            what: what.to_owned(),
            reason: e.desc().to_lowercase(),
        }
    }

    /// The exit status a shell would give for this failure, when it is not
    /// a runtime failure (127 command not found, 126 not executable).
    pub fn exit_status(&self) -> Option<i32> {
        match self {
            Self::CommandNotFound(_) => Some(127),
            Self::CommandNotExecutable(_) => Some(126),
            _ => None,
        }
    }
}

pub(crate) fn io_reason(e: &std::io::Error) -> String {
    crate::image::io_reason(e)
}

/// Whether the runtime runs with host privileges (root, initial user namespace).
pub fn privileged() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Runs one container to completion and returns its exit status (the
/// command's, or 128+N when a signal killed it).
pub fn run(mut cfg: EngineConfig, hooks: &mut dyn Hooks) -> Result<i32, Error> {
    let privileged = privileged();
    cfg.normalize(privileged);
    hooks.engine_config(&mut cfg)?;
    cfg.normalize(privileged);
    cfg.validate()?;
    cfg.settle_capabilities();
    let image = Image::open(&cfg.image.path)?;
    let unprivileged = cfg.namespaces.user;

    let mut registry = Registry::with_cache(cfg.cache.clone());
    // Only an image that needs a driver loads the plugins that register
    // drivers: a sandbox dir runs without opening their libraries.
    if matches!(image, Image::Squashfs { .. }) {
        hooks.register_image_drivers(&mut registry, unprivileged)?;
    }

    let workdir = cleanup::WorkDir::new()?;
    let root = workdir.path().join("root");
    std::fs::create_dir(&root).map_err(|e| EngineError::Setup {
        what: format!("creating {}", root.display()),
        reason: io_reason(&e),
    })?;

    // Blocked signals are per thread and a clone copies only the calling
    // thread: with other threads around, SIGCHLD could be lost and the
    // child could inherit a held lock.
    if let Some(n) = thread_count().filter(|&n| n > 1) {
        return Err(EngineError::Threaded(n).into());
    }
    if !cfg.namespaces.user && cfg.privileges != privs::Privileges::Keep {
        // The container's root must not reach the host through us.
        privs::make_undumpable().map_err(|e| EngineError::sys("making vessel undumpable", e))?;
    }
    // Opened (and checked) here, by the caller, before any namespace: the
    // container process mounts through these descriptors.
    let overlay_dirs = cfg
        .overlay
        .as_deref()
        .map(overlay::OverlayDirs::open)
        .transpose()?;
    let layer = match &overlay_dirs {
        Some(d) => Some(d.layer()?),
        None if cfg.writable_tmpfs => Some(plan::Layer::Tmpfs),
        None => None,
    };
    let place = Place {
        root: &root,
        workdir: workdir.path(),
        layer,
    };
    let mut signals = monitor::Signals::block()?;
    let status = match &image {
        Image::Sandbox(_) => launch_and_monitor(&cfg, &image, None, &place, &mut signals, hooks),
        Image::Squashfs { path, offset, size } => {
            let req = MountRequest {
                image: path.clone(),
                offset: *offset,
                size: *size,
                unprivileged,
                workdir: workdir.path().to_owned(),
            };
            let driver = registry.select(cfg.image_driver.as_deref(), unprivileged)?;
            tracing::debug!(
                "mounting {} with image driver {:?}",
                path.display(),
                driver.name()
            );
            driver.start(&req)?;
            let r = launch_and_monitor(
                &cfg,
                &image,
                Some((&mut *driver, &req)),
                &place,
                &mut signals,
                hooks,
            );
            let stopped = driver.stop(&req);
            match (r, stopped) {
                (Ok(s), Err(e)) => {
                    tracing::warn!("{e}");
                    Ok(s)
                }
                (r, _) => r,
            }
        }
    };
    signals.restore();
    drop(overlay_dirs);
    drop(workdir);
    status
}

/// Where the container's root is put together.
struct Place<'a> {
    root: &'a Path,
    workdir: &'a Path,
    layer: Option<plan::Layer>,
}

fn launch_and_monitor<'a>(
    cfg: &'a EngineConfig,
    image: &'a Image,
    driver: Option<(
        &'a mut dyn crate::image::driver::ImageDriver,
        &'a MountRequest,
    )>,
    place: &Place<'a>,
    signals: &mut monitor::Signals,
    hooks: &mut dyn Hooks,
) -> Result<i32, Error> {
    let started = launch::start(launch::Launch {
        cfg,
        image,
        driver,
        root: place.root,
        workdir: place.workdir,
        layer: place.layer.clone(),
        mask: *signals.original_mask(),
    })?;
    let pid = started.pid;
    tracing::debug!("container process {pid} started");
    let tree = started.tree;
    let r = monitor_container(cfg, pid, signals, hooks);
    // Whatever the command left running dies with it (see `cleanup`).
    if let Some(tree) = tree {
        tree.kill_all();
    }
    r
}

fn monitor_container(
    cfg: &EngineConfig,
    pid: nix::unistd::Pid,
    signals: &mut monitor::Signals,
    hooks: &mut dyn Hooks,
) -> Result<i32, Error> {
    if let Err(e) = hooks.post_start(cfg, pid) {
        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        let _ = monitor::reap(pid);
        return Err(e);
    }
    let raw = match hooks.monitor(cfg, pid, signals) {
        Some(r) => match r {
            Ok(raw) => raw,
            Err(e) => {
                // A failed monitor must not leave the container running.
                let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
                let _ = monitor::reap(pid);
                return Err(e);
            }
        },
        None => monitor::wait_forwarding(pid, signals)?,
    };
    Ok(monitor::exit_code(raw))
}

/// Number of threads of this process, from /proc/self/status.
fn thread_count() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}
