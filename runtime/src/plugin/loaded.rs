//! A loaded plugin: safe, typed calls into its callbacks.

use std::path::{Path, PathBuf};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RString, RVec};
use vessel_plugin_abi::{
    CallError, CommandInvocation, DriverRegistrar, DriverRegistrar_TO, EngineConfig,
    EngineConfig_TO, FlagValue, PreRunInfo, SignalSource, SignalSource_TO,
};

use super::entries::Entries;
use super::manifest::{CallbackKind, Manifest};
use super::PluginError;

/// A plugin library loaded by [`loader::load`](super::loader::load). It stays
/// loaded for the rest of the process; dropping this handle keeps the library.
#[derive(Clone)]
pub struct LoadedPlugin {
    module: Entries,
    manifest: Manifest,
    path: PathBuf,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.manifest.name)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    pub(super) fn new(module: Entries, manifest: Manifest, path: PathBuf) -> Self {
        Self {
            module,
            manifest,
            path,
        }
    }

    /// The plugin name.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// What the library says about itself, its callbacks and the sha256 of
    /// the bytes loaded (`runtime_version`, `rustc_version`, `target` empty).
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn missing(&self, kind: CallbackKind, entry: &'static str) -> PluginError {
        PluginError::NoCallback {
            plugin: self.name().to_string(),
            kind: kind.as_str(),
            entry,
        }
    }

    fn failed(&self, callback: &'static str, e: CallError) -> PluginError {
        if e.panicked {
            PluginError::Panicked {
                plugin: self.name().to_string(),
                callback,
                message: e.message.into_string(),
            }
        } else {
            PluginError::Callback {
                plugin: self.name().to_string(),
                callback,
                message: e.message.into_string(),
            }
        }
    }

    /// Runs the plugin command `command`; returns its exit status.
    pub fn run_command(
        &self,
        command: &str,
        args: &[String],
        flags: &[(String, Option<String>)],
    ) -> Result<i32, PluginError> {
        let f = self
            .module
            .run_command()
            .ok_or_else(|| self.missing(CallbackKind::Command, "run_command"))?;
        f(&invocation(command, args, flags))
            .into_result()
            .map_err(|e| self.failed("command", e))
    }

    /// Runs the pre-run hooks of this plugin's flags on the built-in
    /// `command`; `flags` are the given ones among them. An error means the
    /// command must be aborted.
    pub fn flag_pre_run(
        &self,
        command: &str,
        args: &[String],
        flags: &[(String, Option<String>)],
    ) -> Result<(), PluginError> {
        let f = self
            .module
            .flag_pre_run()
            .ok_or_else(|| self.missing(CallbackKind::Command, "flag_pre_run"))?;
        f(&invocation(command, args, flags))
            .into_result()
            .map_err(|e| self.failed("flag pre-run", e))
    }

    /// Runs the global pre-run hook. An error means the command must be aborted.
    pub fn global_pre_run(
        &self,
        uid: u32,
        user: &str,
        command: &str,
        args: &[String],
    ) -> Result<(), PluginError> {
        let f = self
            .module
            .global_pre_run()
            .ok_or_else(|| self.missing(CallbackKind::Command, "global_pre_run"))?;
        let info = PreRunInfo {
            uid,
            user: user.into(),
            command: command.into(),
            args: strings(args),
        };
        f(&info)
            .into_result()
            .map_err(|e| self.failed("global pre-run", e))
    }

    /// Runs the EngineConfig callback on `config`.
    pub fn engine_config<C: EngineConfig>(&self, config: &mut C) -> Result<(), PluginError> {
        let f = self
            .module
            .engine_config()
            .ok_or_else(|| self.missing(CallbackKind::EngineConfig, "engine_config"))?;
        f(EngineConfig_TO::from_ptr(config, TD_Opaque))
            .into_result()
            .map_err(|e| self.failed("engine config", e))
    }

    /// Runs the MonitorContainer callback; returns the container's raw wait status.
    pub fn monitor_container<C: EngineConfig, S: SignalSource>(
        &self,
        config: &C,
        pid: i32,
        signals: &mut S,
    ) -> Result<i32, PluginError> {
        let f = self
            .module
            .monitor_container()
            .ok_or_else(|| self.missing(CallbackKind::MonitorContainer, "monitor_container"))?;
        f(
            EngineConfig_TO::from_ptr(config, TD_Opaque),
            pid,
            SignalSource_TO::from_ptr(signals, TD_Opaque),
        )
        .into_result()
        .map_err(|e| self.failed("monitor container", e))
    }

    /// Runs the PostStartProcess callback for the container's `pid`.
    pub fn post_start_process<C: EngineConfig>(
        &self,
        config: &C,
        pid: i32,
    ) -> Result<(), PluginError> {
        let f = self
            .module
            .post_start_process()
            .ok_or_else(|| self.missing(CallbackKind::PostStartProcess, "post_start_process"))?;
        f(EngineConfig_TO::from_ptr(config, TD_Opaque), pid)
            .into_result()
            .map_err(|e| self.failed("post start process", e))
    }

    /// Runs the RegisterImageDriver callback against `registrar`.
    pub fn register_image_drivers<R: DriverRegistrar>(
        &self,
        unprivileged: bool,
        registrar: &mut R,
    ) -> Result<(), PluginError> {
        let f = self.module.register_image_driver().ok_or_else(|| {
            self.missing(CallbackKind::RegisterImageDriver, "register_image_driver")
        })?;
        f(
            unprivileged,
            DriverRegistrar_TO::from_ptr(registrar, TD_Opaque),
        )
        .into_result()
        .map_err(|e| self.failed("register image driver", e))
    }

    /// Runs the Install callback for the plugin's install dir.
    pub fn install(&self, dir: &Path) -> Result<(), PluginError> {
        let f = self
            .module
            .install()
            .ok_or_else(|| self.missing(CallbackKind::Install, "install"))?;
        let dir = dir.to_string_lossy();
        f(dir.as_ref().into())
            .into_result()
            .map_err(|e| self.failed("install", e))
    }
}

fn strings(v: &[String]) -> RVec<RString> {
    v.iter().map(|s| RString::from(s.as_str())).collect()
}

fn invocation(
    command: &str,
    args: &[String],
    flags: &[(String, Option<String>)],
) -> CommandInvocation {
    CommandInvocation {
        command: command.into(),
        args: strings(args),
        flags: flags
            .iter()
            .map(|(n, v)| FlagValue {
                name: n.as_str().into(),
                value: v.as_deref().map(RString::from).into(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn loaded_plugins_can_be_shared_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<super::LoadedPlugin>();
    }
}
