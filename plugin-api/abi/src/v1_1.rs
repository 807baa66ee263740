//! The plugin-api 1.1 root module, frozen (see [`super::v1_0`] for why
//! each older layout is kept).
//!
//! 1.1 → 1.2: [`super::HostServices`] gained `config_dir` and `state_dir`;
//! the root module gained the `configure_container` entry point (the
//! EngineConfig callback with the invocation, devices and capabilities).

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    sabi_types::VersionStrings,
    std_types::{ROption, RStr, RString},
    StableAbi,
};

use super::{
    CallResult, CallbackEntries, CommandInvocation, DriverRegistrarMut, EngineConfigMut,
    EngineConfigRef, LogLevel, PluginManifest, PreRunInfo, SignalSourceMut,
};

/// Host services of plugin-api 1.1: logging and the install dir.
#[repr(C)]
#[derive(StableAbi, Debug)]
#[sabi(kind(Prefix(prefix_ref = HostServices_Ref, prefix_fields = HostServices_Prefix)))]
#[sabi(missing_field(option))]
pub struct HostServices {
    /// Emits a log record into the runtime's log, tagged with the plugin name.
    #[sabi(last_prefix_field)]
    pub log: extern "C" fn(plugin: RStr<'_>, level: LogLevel, message: RStr<'_>),
    /// The install dir of plugin `plugin`, or none when unknown.
    pub install_dir: extern "C" fn(plugin: RStr<'_>) -> ROption<RString>,
}

/// The root module of plugin-api 1.1 (see [`super::PluginMod`]).
#[repr(C)]
#[derive(StableAbi, Debug)]
#[sabi(kind(Prefix(prefix_ref = PluginMod_Ref, prefix_fields = PluginMod_Prefix)))]
#[sabi(missing_field(option))]
#[allow(missing_docs)]
pub struct PluginMod {
    pub manifest: extern "C" fn() -> CallResult<PluginManifest>,
    pub init: extern "C" fn(host: HostServices_Ref) -> CallResult<()>,
    pub run_command: Option<extern "C" fn(invocation: &CommandInvocation) -> CallResult<i32>>,
    pub flag_pre_run: Option<extern "C" fn(invocation: &CommandInvocation) -> CallResult<()>>,
    pub global_pre_run: Option<extern "C" fn(info: &PreRunInfo) -> CallResult<()>>,
    pub engine_config: Option<extern "C" fn(config: EngineConfigMut<'_>) -> CallResult<()>>,
    pub monitor_container: Option<
        extern "C" fn(
            config: EngineConfigRef<'_>,
            pid: i32,
            signals: SignalSourceMut<'_>,
        ) -> CallResult<i32>,
    >,
    pub post_start_process:
        Option<extern "C" fn(config: EngineConfigRef<'_>, pid: i32) -> CallResult<()>>,
    pub register_image_driver: Option<
        extern "C" fn(unprivileged: bool, registrar: DriverRegistrarMut<'_>) -> CallResult<()>,
    >,
    #[sabi(last_prefix_field)]
    pub install: Option<extern "C" fn(install_dir: RStr<'_>) -> CallResult<()>>,
}

impl RootModule for PluginMod_Ref {
    declare_root_module_statics! {PluginMod_Ref}
    const BASE_NAME: &'static str = "vessel_plugin";
    const NAME: &'static str = "vessel plugin";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new("1.1.0");
}

impl PluginMod_Ref {
    /// The callback entry points of a 1.1 plugin: the ones 1.1 had; entry
    /// points added since are none.
    #[allow(clippy::needless_update)]
    pub fn callback_entries(self) -> CallbackEntries {
        CallbackEntries {
            run_command: self.run_command(),
            flag_pre_run: self.flag_pre_run(),
            global_pre_run: self.global_pre_run(),
            engine_config: self.engine_config(),
            monitor_container: self.monitor_container(),
            post_start_process: self.post_start_process(),
            register_image_driver: self.register_image_driver(),
            install: self.install(),
            ..CallbackEntries::default()
        }
    }
}
