//! What [`export_plugin!`](crate::export_plugin) expands to: generic
//! `extern "C"` entry points, instantiated once per plugin library, that
//! fetch the plugin built by the author's function and call it through the
//! panic guard.

use crate::abi::abi_stable::prefix_type::PrefixTypeTrait;

#[doc(hidden)]
pub use crate::abi::abi_stable::library::{
    __call_root_module_loader, CheckTypeLayout, LibHeader, RootModuleResult,
};

use crate::abi::{CallResult, HostServices_Ref, PluginManifest, PluginMod};
pub use crate::abi::{LogLevel, PluginMod_Ref};
pub use crate::callbacks::Calls;
pub use crate::sdk::capture_stdout;
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

/// Builds the root module of the plugin `S`: an entry point for each
/// callback kind it registered, none for the others.
#[doc(hidden)]
pub fn root_module<S: Source>() -> PluginMod_Ref {
    let p = S::plugin();
    PluginMod::new(manifest::<S>, init::<S>, p.handlers.entries::<S>()).leak_into_prefix()
}

/// `p`, with `version` (the plugin crate's) when it set none.
#[doc(hidden)]
pub fn with_default_version(p: crate::Plugin, version: &str) -> crate::Plugin {
    if p.version.is_empty() {
        p.version(version)
    } else {
        p
    }
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
                PLUGIN.get_or_init(|| {
                    // A plugin that names no version has its crate's.
                    $crate::__export::with_default_version(($build)(), env!("CARGO_PKG_VERSION"))
                })
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

/// What [`host::config_dir`](crate::host::config_dir) returns on this
/// thread while no runtime has loaded the plugin.
pub fn set_config_dir(dir: Option<std::path::PathBuf>) {
    crate::host::set_fake_config_dir(dir);
}

/// What [`host::state_dir`](crate::host::state_dir) returns on this
/// thread while no runtime has loaded the plugin.
pub fn set_state_dir(dir: Option<std::path::PathBuf>) {
    crate::host::set_fake_state_dir(dir);
}
