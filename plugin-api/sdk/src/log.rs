//! Logging from a plugin into the runtime's log.
//!
//! Lines land in the runtime's `tracing` output at the given level, tagged
//! with `plugin=NAME`. Without a runtime (in unit tests through
//! `vessel-plugin-test`), records are kept per thread and its `take_logs`
//! returns them.

use std::cell::RefCell;
use std::fmt::Display;
use std::sync::OnceLock;

use crate::abi::HostServices_Ref;
pub use crate::abi::LogLevel;

pub(crate) struct Host {
    pub(crate) services: HostServices_Ref,
    pub(crate) plugin: String,
}

// Each plugin library has its own copy of this crate and so its own HOST.
static HOST: OnceLock<Host> = OnceLock::new();

thread_local! {
    static CAPTURED: RefCell<Vec<(LogLevel, String)>> = const { RefCell::new(Vec::new()) };
}

pub(crate) fn set_host(services: HostServices_Ref, plugin: &str) {
    let _ = HOST.set(Host {
        services,
        plugin: plugin.to_string(),
    });
}

/// The runtime's services, once the runtime loaded this plugin.
pub(crate) fn host() -> Option<&'static Host> {
    HOST.get()
}

pub(crate) fn take_captured() -> Vec<(LogLevel, String)> {
    CAPTURED.with(|c| std::mem::take(&mut *c.borrow_mut()))
}

/// Logs `message` at `level`.
pub fn log(level: LogLevel, message: impl Display) {
    let message = message.to_string();
    match HOST.get() {
        Some(h) => (h.services.log())(h.plugin.as_str().into(), level, message.as_str().into()),
        None => CAPTURED.with(|c| c.borrow_mut().push((level, message))),
    }
}

/// Logs an error.
pub fn error(message: impl Display) {
    log(LogLevel::Error, message)
}

/// Logs a warning.
pub fn warn(message: impl Display) {
    log(LogLevel::Warn, message)
}

/// Logs progress (shown with `vessel -v`).
pub fn info(message: impl Display) {
    log(LogLevel::Info, message)
}

/// Logs a debugging detail (shown with `vessel -d`).
pub fn debug(message: impl Display) {
    log(LogLevel::Debug, message)
}

/// Logs a very verbose detail.
pub fn trace(message: impl Display) {
    log(LogLevel::Trace, message)
}
