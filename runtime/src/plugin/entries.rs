//! A loaded plugin's entry points, independent of the plugin-api minor
//! version it was built with. Every 1.x root module has these (later
//! versions only append), so the loader copies them out of whichever
//! frozen layout matched the plugin.

use abi_stable::std_types::RStr;
use vessel_plugin_abi::{
    self as abi, v1_0, CallResult, CommandInvocation, DriverRegistrarMut, EngineConfigMut,
    EngineConfigRef, PluginManifest, PreRunInfo, SignalSourceMut,
};

macro_rules! entries {
    ($($(#[$doc:meta])* $name:ident : $ty:ty,)*) => {
        /// The entry points of a loaded plugin (its `init` excluded: that one
        /// takes the host services of its own version).
        #[derive(Clone, Copy, Debug)]
        pub(crate) struct Entries {
            $($(#[$doc])* $name: $ty,)*
        }

        impl Entries {
            $(
                $(#[$doc])*
                pub(crate) fn $name(&self) -> $ty {
                    self.$name
                }
            )*
        }

        impl From<abi::PluginMod_Ref> for Entries {
            fn from(m: abi::PluginMod_Ref) -> Self {
                Entries { $($name: m.$name(),)* }
            }
        }

        impl From<v1_0::PluginMod_Ref> for Entries {
            fn from(m: v1_0::PluginMod_Ref) -> Self {
                Entries { $($name: m.$name(),)* }
            }
        }
    };
}

entries! {
    /// Describes the plugin.
    manifest: extern "C" fn() -> CallResult<PluginManifest>,
    /// Command: runs a plugin command.
    run_command: Option<extern "C" fn(&CommandInvocation) -> CallResult<i32>>,
    /// Command: pre-run hook of flags added to built-in commands.
    flag_pre_run: Option<extern "C" fn(&CommandInvocation) -> CallResult<()>>,
    /// Command: global pre-run hook.
    global_pre_run: Option<extern "C" fn(&PreRunInfo) -> CallResult<()>>,
    /// EngineConfig.
    engine_config: Option<extern "C" fn(EngineConfigMut<'_>) -> CallResult<()>>,
    /// MonitorContainer.
    monitor_container:
        Option<extern "C" fn(EngineConfigRef<'_>, i32, SignalSourceMut<'_>) -> CallResult<i32>>,
    /// PostStartProcess.
    post_start_process: Option<extern "C" fn(EngineConfigRef<'_>, i32) -> CallResult<()>>,
    /// RegisterImageDriver.
    register_image_driver: Option<extern "C" fn(bool, DriverRegistrarMut<'_>) -> CallResult<()>>,
    /// Install.
    install: Option<extern "C" fn(RStr<'_>) -> CallResult<()>>,
}
