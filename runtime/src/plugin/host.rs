//! Host services the runtime hands to every plugin at load: for now,
//! logging into the runtime's `tracing` output.

use std::sync::OnceLock;

use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::std_types::RStr;
use vessel_plugin_api::abi::{HostServices, HostServices_Ref, LogLevel};

extern "C" fn log(plugin: RStr<'_>, level: LogLevel, message: RStr<'_>) {
    let (plugin, message) = (plugin.as_str(), message.as_str());
    match level {
        LogLevel::Error => tracing::error!(plugin, "{message}"),
        LogLevel::Warn => tracing::warn!(plugin, "{message}"),
        LogLevel::Info => tracing::info!(plugin, "{message}"),
        LogLevel::Debug => tracing::debug!(plugin, "{message}"),
        LogLevel::Trace => tracing::trace!(plugin, "{message}"),
    }
}

/// The host services table, built once and shared by every plugin.
pub fn services() -> HostServices_Ref {
    static SERVICES: OnceLock<HostServices_Ref> = OnceLock::new();
    *SERVICES.get_or_init(|| HostServices { log }.leak_into_prefix())
}
