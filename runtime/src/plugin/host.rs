//! Host services the runtime hands to every plugin at load: logging into
//! the runtime's `tracing` output, each plugin's install dir, and (1.2)
//! its config and state dirs (see [`super::plugin_dirs`]).

use std::sync::OnceLock;

use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::std_types::{RErr, ROk, ROption, RResult, RStr, RString};
use vessel_plugin_abi::{v1_0, v1_1, HostServices, HostServices_Ref, LogLevel};

use super::{plugin_dirs, registry};

/// The longest plugin log line kept; the rest is cut, saying how much.
const MAX_LOG_LINE: usize = 4096;

extern "C" fn log(plugin: RStr<'_>, level: LogLevel, message: RStr<'_>) {
    // A plugin's log line is its data: one inert line of bounded size, so it
    // can neither forge other log lines nor drive the terminal.
    let plugin = &*vessel_sif::text::inert(plugin.as_str());
    let message = vessel_sif::text::capped(message.as_str(), MAX_LOG_LINE);
    let message = vessel_sif::text::inert(&message);
    match level {
        LogLevel::Error => tracing::error!(plugin, "{message}"),
        LogLevel::Warn => tracing::warn!(plugin, "{message}"),
        LogLevel::Info => tracing::info!(plugin, "{message}"),
        LogLevel::Debug => tracing::debug!(plugin, "{message}"),
        LogLevel::Trace => tracing::trace!(plugin, "{message}"),
    }
}

// One table serves every plugin (each passes its own name), so the dirs are
// looked up by name; the loader records them before the plugin's `init`.
extern "C" fn install_dir(plugin: RStr<'_>) -> ROption<RString> {
    registry::install_dir(plugin.as_str())
        .map(|d| RString::from(d.to_string_lossy().as_ref()))
        .into()
}

extern "C" fn config_dir(plugin: RStr<'_>) -> ROption<RString> {
    registry::paths(plugin.as_str())
        .map(|p| {
            let dir = p.plugin_config_dir(plugin.as_str());
            RString::from(dir.to_string_lossy().as_ref())
        })
        .into()
}

extern "C" fn state_dir(plugin: RStr<'_>) -> RResult<RString, RString> {
    let name = plugin.as_str();
    let Some(paths) = registry::paths(name) else {
        return RErr(format!("the runtime has no state dir for plugin {name:?}").into());
    };
    match plugin_dirs::state_location(&paths, name).and_then(|l| plugin_dirs::ensure_state_dir(&l))
    {
        Ok(dir) => ROk(RString::from(dir.to_string_lossy().as_ref())),
        Err(e) => RErr(e.into()),
    }
}

/// The host services table, built once and shared by every plugin.
pub fn services() -> HostServices_Ref {
    static SERVICES: OnceLock<HostServices_Ref> = OnceLock::new();
    *SERVICES.get_or_init(|| {
        HostServices {
            log,
            install_dir,
            config_dir,
            state_dir,
        }
        .leak_into_prefix()
    })
}

/// The host services as plugin-api 1.1 plugins know them (logging, the
/// install dir).
pub fn services_v1_1() -> v1_1::HostServices_Ref {
    static SERVICES: OnceLock<v1_1::HostServices_Ref> = OnceLock::new();
    *SERVICES.get_or_init(|| v1_1::HostServices { log, install_dir }.leak_into_prefix())
}

/// The host services as plugin-api 1.0 plugins know them (logging only).
pub fn services_v1_0() -> v1_0::HostServices_Ref {
    static SERVICES: OnceLock<v1_0::HostServices_Ref> = OnceLock::new();
    *SERVICES.get_or_init(|| v1_0::HostServices { log }.leak_into_prefix())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn install_dirs_are_per_plugin() {
        registry::set_install_dir("example.com/a", Path::new("/plugins/.store/1"));
        let f = services().install_dir().expect("runtime has the service");
        assert_eq!(
            f("example.com/a".into()).into_option().unwrap().as_str(),
            "/plugins/.store/1"
        );
        assert!(f("example.com/unknown".into()).is_none());
    }
}
