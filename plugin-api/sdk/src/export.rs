//! What [`export_plugin!`](crate::export_plugin) expands to: generic
//! `extern "C"` entry points, instantiated once per plugin library, that
//! fetch the plugin built by the author's function and call it through the
//! panic guard.

use crate::abi::abi_stable::prefix_type::PrefixTypeTrait;
use crate::abi::abi_stable::std_types::RStr;

#[doc(hidden)]
pub use crate::abi::abi_stable::library::{
    __call_root_module_loader, CheckTypeLayout, LibHeader, RootModuleResult,
};

use crate::abi::{
    CallResult, CommandInvocation, DriverRegistrarMut, EngineConfigMut, EngineConfigRef,
    HostServices_Ref, PluginManifest, PluginMod, PreRunInfo, SignalSourceMut,
};
pub use crate::abi::{LogLevel, PluginMod_Ref};
pub use crate::sdk::Output;
use crate::Plugin;

/// Gives the entry points the plugin of one library; implemented by
/// the `export_plugin!` expansion.
#[doc(hidden)]
pub trait Source: 'static {
    /// The plugin, built on first use.
    fn plugin() -> &'static Plugin;
}

extern "C" fn manifest<S: Source>() -> CallResult<PluginManifest> {
    let p = S::plugin();
    p.guard(|| Ok(p.abi_manifest()))
}

extern "C" fn init<S: Source>(host: HostServices_Ref) -> CallResult<()> {
    let p = S::plugin();
    p.guard(|| {
        crate::log::set_host(host, p.name());
        // The plugin has its own copy of std and so its own panic hook: send
        // panic reports to the runtime's log instead of raw stderr. The
        // panic message itself comes back as the callback's error.
        std::panic::set_hook(Box::new(|info| crate::log::debug(format!("{info}"))));
        Ok(())
    })
}

extern "C" fn run_command<S: Source>(inv: &CommandInvocation) -> CallResult<i32> {
    S::plugin().call_command(inv, Output::stdout())
}

extern "C" fn flag_pre_run<S: Source>(inv: &CommandInvocation) -> CallResult<()> {
    S::plugin().call_flag_pre_run(inv, Output::stdout())
}

extern "C" fn global_pre_run<S: Source>(info: &PreRunInfo) -> CallResult<()> {
    S::plugin().call_global_pre_run(info)
}

extern "C" fn engine_config<S: Source>(config: EngineConfigMut<'_>) -> CallResult<()> {
    S::plugin().call_engine_config(config)
}

extern "C" fn monitor_container<S: Source>(
    config: EngineConfigRef<'_>,
    pid: i32,
    signals: SignalSourceMut<'_>,
) -> CallResult<i32> {
    S::plugin().call_monitor_container(config, pid, signals)
}

extern "C" fn post_start_process<S: Source>(
    config: EngineConfigRef<'_>,
    pid: i32,
) -> CallResult<()> {
    S::plugin().call_post_start_process(config, pid)
}

extern "C" fn register_image_driver<S: Source>(
    unprivileged: bool,
    registrar: DriverRegistrarMut<'_>,
) -> CallResult<()> {
    S::plugin().call_register_image_drivers(unprivileged, registrar)
}

extern "C" fn install<S: Source>(dir: RStr<'_>) -> CallResult<()> {
    S::plugin().call_install(dir)
}

/// Builds the root module of the plugin `S`: an entry point for each
/// callback kind it registered, none for the others.
#[doc(hidden)]
pub fn root_module<S: Source>() -> PluginMod_Ref {
    let p = S::plugin();
    let (commands, flags, pre_run) = p.has_command_callbacks();
    PluginMod {
        manifest: manifest::<S>,
        init: init::<S>,
        run_command: commands.then_some(run_command::<S> as _),
        flag_pre_run: flags.then_some(flag_pre_run::<S> as _),
        global_pre_run: pre_run.then_some(global_pre_run::<S> as _),
        engine_config: p.has_engine_config().then_some(engine_config::<S> as _),
        monitor_container: p
            .has_monitor_container()
            .then_some(monitor_container::<S> as _),
        post_start_process: p
            .has_post_start_process()
            .then_some(post_start_process::<S> as _),
        register_image_driver: p
            .has_register_image_drivers()
            .then_some(register_image_driver::<S> as _),
        install: p.has_install().then_some(install::<S> as _),
    }
    .leak_into_prefix()
}

/// Exports a plugin from a `cdylib` crate.
///
/// Takes a function (path or closure) returning a [`Plugin`](crate::Plugin).
/// It runs once, when the runtime loads the library. Expands to the
/// abi_stable root-module symbol, so the plugin crate needs no dependency
/// besides `vessel-plugin-api`.
#[macro_export]
macro_rules! export_plugin {
    ($build:expr) => {
        #[doc(hidden)]
        pub struct __VesselPluginSource;

        impl $crate::__export::Source for __VesselPluginSource {
            fn plugin() -> &'static $crate::Plugin {
                static PLUGIN: ::std::sync::OnceLock<$crate::Plugin> = ::std::sync::OnceLock::new();
                PLUGIN.get_or_init(|| ($build)())
            }
        }

        #[doc(hidden)]
        pub fn __vessel_plugin_root_module() -> $crate::__export::PluginMod_Ref {
            $crate::__export::root_module::<__VesselPluginSource>()
        }

        /// The abi_stable library header the runtime looks up
        /// (`abi_stable::library::ROOT_MODULE_LOADER_NAME`).
        #[doc(hidden)]
        #[export_name = "_1as_0lib_1header_0root_bmodule_bloader"]
        pub static __VESSEL_PLUGIN_LIB_HEADER: $crate::__export::LibHeader = {
            extern "C" fn erased_root_module() -> $crate::__export::RootModuleResult {
                $crate::__export::__call_root_module_loader(__vessel_plugin_root_module)
            }
            // SAFETY: the constructor returns a `PluginMod_Ref` erased by
            // abi_stable's own loader helper, as `from_constructor` requires.
            unsafe {
                $crate::__export::LibHeader::from_constructor::<$crate::__export::PluginMod_Ref>(
                    erased_root_module,
                    $crate::__export::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

// What `vessel-plugin-test` drives the SDK with; not part of the API.

/// Takes the log records this thread's callbacks emitted while no runtime
/// had loaded the plugin.
pub fn take_logs() -> Vec<(LogLevel, String)> {
    crate::log::take_captured()
}

/// What [`host::install_dir`](crate::host::install_dir) returns on this
/// thread while no runtime has loaded the plugin.
pub fn set_install_dir(dir: Option<std::path::PathBuf>) {
    crate::host::set_fake_install_dir(dir);
}
