//! The engine's hook points served by installed plugins.
//!
//! [`PluginHooks`] implements [`Hooks`] with the enabled plugins of the
//! store: EngineConfig callbacks change the config, RegisterImageDriver
//! callbacks add image drivers, PostStartProcess callbacks see the container
//! pid, and a MonitorContainer plugin replaces the default monitor. Each hook
//! point loads only the plugins that registered its kind, in name order; a
//! run without such plugins opens no library. PostStartProcess and
//! MonitorContainer plugins are loaded with the EngineConfig ones, before
//! anything is mounted, so a plugin failing its load checks never leaves a
//! started container to kill.
//!
//! The plugins see the runtime's types through the ABI adapters of
//! [`super::adapters`]; their image drivers run as
//! [`crate::image::plugin_driver::PluginDriver`]s.

use nix::unistd::Pid;

use super::adapters::{ConfigAdapter, RegistrarAdapter, SetupAdapter, SignalAdapter};
use super::dispatch::load_installed;
use super::guard::{with_deadline, with_deadline_here};
use super::manifest::CallbackKind;
use super::store::{Meta, Store};
use super::LoadedPlugin;
use crate::engine::config::EngineConfig;
use crate::engine::hooks::Hooks;
use crate::engine::monitor::{self, Signals};
use crate::image::driver::Registry;
use crate::Error;
use crate::Runtime;

/// Errors of the plugin hook points (besides the plugins' own errors).
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// More than one enabled plugin wants to replace the container monitor.
    #[error(
        "plugins {} {} register MonitorContainer, but only one may replace the container monitor (disable the others with: vessel plugin disable NAME)",
        quoted_list(.0),
        if .0.len() == 2 { "both" } else { "all" }
    )]
    MonitorConflict(Vec<String>),
    /// A MonitorContainer plugin returned while the container still runs.
    #[error(
        "plugin {plugin:?}: its monitor returned while container process {pid} was still running"
    )]
    MonitorReturnedEarly {
        /// The plugin.
        plugin: String,
        /// The container process.
        pid: i32,
    },
}

fn quoted_list(names: &[String]) -> String {
    let q: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    match q.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

impl From<HookError> for Error {
    fn from(e: HookError) -> Self {
        Error::Plugin(super::PluginError::Hooks(e))
    }
}

/// The engine hooks of the installed, enabled plugins.
#[derive(Debug)]
pub struct PluginHooks<'a> {
    ctx: &'a Runtime,
    enabled: Vec<Meta>,
    monitor: Option<Meta>,
}

impl<'a> PluginHooks<'a> {
    /// Reads the store (no library is opened) and checks what can be checked
    /// before anything runs: at most one MonitorContainer plugin.
    pub fn new(ctx: &'a Runtime) -> Result<Self, Error> {
        // Fail closed: a meta that cannot be read (or, as root, an insecure
        // store) must not silently drop that plugin's policy. What runs is
        // what the metas say (a current index only narrows which metas are
        // read: those of plugins with runtime callbacks).
        let enabled = Store::new(ctx.paths.plugin_dir()).runtime_metas()?;
        let monitors: Vec<&Meta> = enabled
            .iter()
            .filter(|m| m.manifest.has(CallbackKind::MonitorContainer))
            .collect();
        if monitors.len() > 1 {
            return Err(HookError::MonitorConflict(
                monitors.iter().map(|m| m.name().to_owned()).collect(),
            )
            .into());
        }
        let monitor = monitors.first().map(|m| (*m).clone());
        Ok(Self {
            ctx,
            enabled,
            monitor,
        })
    }

    /// Loads (once per process) the enabled plugins that registered `kind`,
    /// in name order.
    fn load(&self, kind: CallbackKind) -> Result<Vec<&'static LoadedPlugin>, Error> {
        self.enabled
            .iter()
            .filter(|m| m.manifest.has(kind))
            .map(|m| {
                let p = load_installed(self.ctx, m)?;
                // Runtime callbacks loaded: in use while this container runs.
                super::in_use::hold(&Store::new(self.ctx.paths.plugin_dir()), m);
                Ok(p)
            })
            .collect()
    }
}

impl Hooks for PluginHooks<'_> {
    fn engine_config(&mut self, cfg: &mut EngineConfig) -> Result<(), Error> {
        for p in self.load(CallbackKind::EngineConfig)? {
            tracing::debug!(plugin = p.name(), "running the engine config callback");
            // On this thread: before the container exists nothing needs
            // undoing at a deadline (see `with_deadline_here`), and an error
            // ends the run, so the callback changes the config itself.
            with_deadline_here(p.name(), "EngineConfig", || {
                // A 1.2 plugin sees the invocation and may add devices and
                // capabilities; an older one has the 1.0 entry point only.
                if p.entries().configure_container.is_some() {
                    let mut setup = SetupAdapter::for_plugin(cfg, p.name());
                    p.calls().configure_container(
                        ConfigAdapter::for_plugin(cfg, p.name()).abi_mut(),
                        setup.abi_mut(),
                    )?;
                    setup.finish(cfg);
                } else {
                    p.calls()
                        .engine_config(ConfigAdapter::for_plugin(cfg, p.name()).abi_mut())?;
                }
                Ok(())
            })?;
        }
        // Plugins that act once the container runs are loaded (and so pass
        // the loader's checks) now, before anything is mounted or started:
        // a plugin that fails to load must stop the run, not kill a started
        // container. Loads are cached, so their hook points reuse these.
        self.load(CallbackKind::PostStartProcess)?;
        self.load(CallbackKind::MonitorContainer)?;
        Ok(())
    }

    fn register_image_drivers(
        &mut self,
        registry: &mut Registry,
        unprivileged: bool,
    ) -> Result<(), Error> {
        for p in self.load(CallbackKind::RegisterImageDriver)? {
            let mut registrar = RegistrarAdapter::new(&mut *registry, p.name());
            p.calls()
                .register_image_driver(unprivileged, registrar.abi_mut())?;
        }
        Ok(())
    }

    fn post_start(&mut self, cfg: &EngineConfig, pid: Pid) -> Result<(), Error> {
        let plugins = self.load(CallbackKind::PostStartProcess)?;
        if plugins.is_empty() {
            return Ok(());
        }
        for p in plugins {
            tracing::debug!(plugin = p.name(), %pid, "running the post start callback");
            // Callbacks get a read-only view of a copy they own. The engine
            // blocks the stop signals now: the wait takes them, so a hung
            // callback cannot leave vessel deaf while the container runs; an
            // error (deadline, signal) makes the engine stop the container.
            let mut view = cfg.clone();
            let raw = pid.as_raw();
            with_deadline(p.name(), "PostStartProcess", move || {
                p.calls()
                    .post_start_process(ConfigAdapter::new(&mut view).abi_ref(), raw)
            })?;
        }
        Ok(())
    }

    fn monitor(
        &mut self,
        cfg: &EngineConfig,
        pid: Pid,
        signals: &mut Signals,
    ) -> Option<Result<i32, Error>> {
        let meta = self.monitor.as_ref()?;
        Some((|| {
            let p = load_installed(self.ctx, meta)?;
            // No deadline: monitoring lasts as long as the container runs.
            tracing::debug!(plugin = p.name(), %pid, "plugin monitors the container");
            let mut view = cfg.clone();
            let config = ConfigAdapter::new(&mut view);
            let mut source = SignalAdapter::new(signals, pid);
            let raw =
                p.calls()
                    .monitor_container(config.abi_ref(), pid.as_raw(), source.abi_mut())?;
            // The contract is that the monitor reaped the container. If it is
            // still running, fail so the engine kills it rather than leave it.
            match monitor::try_reap(pid) {
                Ok(None) => Err(HookError::MonitorReturnedEarly {
                    plugin: p.name().to_owned(),
                    pid: pid.as_raw(),
                }
                .into()),
                Ok(Some(_)) => {
                    tracing::warn!(
                        plugin = p.name(),
                        "the monitor returned without reaping container process {pid}"
                    );
                    Ok(raw)
                }
                Err(_) => Ok(raw),
            }
        })())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_names_every_monitor() {
        let e = HookError::MonitorConflict(vec!["a.com/x".into(), "b.com/y".into()]).to_string();
        assert!(
            e.starts_with("plugins \"a.com/x\" and \"b.com/y\" both register MonitorContainer"),
            "{e}"
        );
        assert!(!e.contains('\n'));
        assert_eq!(
            quoted_list(&["a".into(), "b".into(), "c".into()]),
            "\"a\", \"b\" and \"c\""
        );
    }
}
