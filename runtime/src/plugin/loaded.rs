//! A loaded plugin: safe, typed calls into its callbacks. [`LoadedPlugin::calls`]
//! reaches every entry point of the callback table with ABI arguments (the
//! engine's hook dispatch builds them with the ABI adapters); the methods
//! taking runtime types serve the CLI, install and tests.

use std::path::{Path, PathBuf};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RString, RVec};
use vessel_plugin_abi::{
    CallError, CallbackEntries, CommandInvocation, EngineConfig, EngineConfig_TO, FlagValue,
    PreRunInfo,
};

use super::guard::{with_deadline, with_deadline_here, CrashScope};
use super::manifest::{CallbackKind, Manifest};
use super::PluginError;

/// How errors and crash reports name a callback: its kind (`EngineConfig`,
/// `PostStartProcess`, ...), or for the Command kind, which of its entry
/// points (`command`, `flag pre-run`, `global pre-run`).
pub(crate) fn callback_name(kind: &'static str, label: &'static str) -> &'static str {
    if kind == "Command" {
        label
    } else {
        kind
    }
}

macro_rules! define_calls {
    ($(
        $(#[doc = $kdoc:literal])*
        $kind:ident = $name:literal, $discloses:literal {$(
            $(#[doc = $doc:literal])*
            $(#[sabi($sabi:meta)])?
            $entry:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty = $label:literal, $layout:ident;
        )*}
    )* ; appended {$(
        $(#[doc = $adoc:literal])*
        $akind:ident: $aentry:ident($($aarg:ident: $aty:ty),* $(,)?) -> $aret:ty = $alabel:literal;
    )*}) => {
        /// The entry points of a loaded plugin, called with ABI arguments;
        /// errors name the plugin and the callback (from
        /// [`vessel_plugin_abi::callback_table!`]).
        #[derive(Debug, Clone, Copy)]
        pub struct Calls<'p>(&'p LoadedPlugin);

        // The table spells "returns nothing" as `-> ()`.
        #[allow(clippy::unused_unit)]
        impl Calls<'_> {
            $($(
                $(#[doc = $doc])*
                pub fn $entry(self, $($arg: $ty),*) -> Result<$ret, PluginError> {
                    let f = self
                        .0
                        .entries
                        .$entry
                        .ok_or_else(|| self.0.missing(CallbackKind::$kind, stringify!($entry)))?;
                    // A fatal signal while the plugin runs is reported as its crash.
                    let _scope = CrashScope::enter(
                        self.0.name(),
                        callback_name(stringify!($kind), $label),
                    );
                    f($($arg),*).into_result().map_err(|e| self.0.failed($label, e))
                }
            )*)*
            $(
                $(#[doc = $adoc])*
                pub fn $aentry(self, $($aarg: $aty),*) -> Result<$aret, PluginError> {
                    let f = self
                        .0
                        .entries
                        .$aentry
                        .ok_or_else(|| self.0.missing(CallbackKind::$akind, stringify!($aentry)))?;
                    let _scope = CrashScope::enter(
                        self.0.name(),
                        callback_name(stringify!($akind), $alabel),
                    );
                    f($($aarg),*).into_result().map_err(|e| self.0.failed($alabel, e))
                }
            )*
        }
    };
}

vessel_plugin_abi::callback_table!(define_calls);

/// A plugin library loaded by [`loader::load`](super::loader::load). It stays
/// loaded for the rest of the process; dropping this handle keeps the library.
#[derive(Clone)]
pub struct LoadedPlugin {
    entries: CallbackEntries,
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
    pub(super) fn new(entries: CallbackEntries, manifest: Manifest, path: PathBuf) -> Self {
        Self {
            entries,
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

    /// Which entry points it has.
    pub fn entries(&self) -> &CallbackEntries {
        &self.entries
    }

    /// Its entry points, called with ABI arguments.
    pub fn calls(&self) -> Calls<'_> {
        Calls(self)
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

    /// Runs the plugin command `command`; returns its exit status. It has no
    /// deadline: it is the command the user asked for, and it runs in the
    /// foreground where Ctrl-C ends it (a crash still names the plugin).
    pub fn run_command(
        &self,
        command: &str,
        args: &[String],
        flags: &[(String, Option<String>)],
    ) -> Result<i32, PluginError> {
        self.calls().run_command(&invocation(command, args, flags))
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
        let inv = invocation(command, args, flags);
        // Before the command starts: nothing to undo at a deadline.
        with_deadline_here(self.name(), "flag pre-run", || {
            self.calls().flag_pre_run(&inv)
        })
    }

    /// Runs the global pre-run hook. An error means the command must be aborted.
    pub fn global_pre_run(
        &self,
        uid: u32,
        user: &str,
        command: &str,
        args: &[String],
    ) -> Result<(), PluginError> {
        let info = PreRunInfo {
            uid,
            user: user.into(),
            command: command.into(),
            args: strings(args),
        };
        // Before the command starts: nothing to undo at a deadline.
        with_deadline_here(self.name(), "global pre-run", || {
            self.calls().global_pre_run(&info)
        })
    }

    /// Runs the EngineConfig callback on `config` (a 1.2 plugin sees an
    /// empty invocation; the engine's hook passes the real one).
    pub fn engine_config<C: EngineConfig>(&self, config: &mut C) -> Result<(), PluginError> {
        let config = EngineConfig_TO::from_ptr(config, TD_Opaque);
        if self.entries.configure_container.is_some() {
            let mut scratch = crate::engine::config::EngineConfig::new("/", Vec::new());
            let mut setup = super::adapters::SetupAdapter::for_plugin(&mut scratch, self.name());
            self.calls().configure_container(config, setup.abi_mut())
        } else {
            self.calls().engine_config(config)
        }
    }

    /// Runs the Install callback for the plugin's install dir, within the
    /// callback deadline.
    pub fn install(&self, dir: &Path) -> Result<(), PluginError> {
        let dir = dir.to_string_lossy().into_owned();
        let me = self.clone();
        with_deadline(self.name(), "Install", move || {
            me.calls().install(dir.as_str().into())
        })
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
