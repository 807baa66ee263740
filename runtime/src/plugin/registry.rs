//! The process-global plugin state, in one place: the plugins loaded so
//! far and the install dir of each. Both live for the rest of the process:
//! libraries are never unloaded (unloading a Rust cdylib is unsound), and
//! one host-services table serves every plugin, which asks for its install
//! dir by name.
//!
//! They are two locks, not one: a plugin's `init` (run while its load holds
//! the first) may already ask for its install dir (the second).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::LoadedPlugin;
use crate::paths::Paths;

static LOADED: Mutex<BTreeMap<String, &'static LoadedPlugin>> = Mutex::new(BTreeMap::new());
static INSTALL_DIRS: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
static PATHS: Mutex<BTreeMap<String, Paths>> = Mutex::new(BTreeMap::new());

/// The loaded plugin `name`, loading it with `load` the first time. Loads
/// are serialised, so each plugin is loaded at most once per process.
pub(crate) fn loaded<E>(
    name: &str,
    load: impl FnOnce() -> Result<LoadedPlugin, E>,
) -> Result<&'static LoadedPlugin, E> {
    let mut cache = LOADED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = cache.get(name) {
        return Ok(p);
    }
    let plugin: &'static LoadedPlugin = Box::leak(Box::new(load()?));
    cache.insert(name.to_owned(), plugin);
    Ok(plugin)
}

/// Records `dir` as the install dir of plugin `plugin` (what
/// `vessel_plugin_api::host::install_dir` returns to it).
pub fn set_install_dir(plugin: &str, dir: &Path) {
    INSTALL_DIRS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(plugin.to_owned(), dir.to_owned());
}

/// The install dir recorded for plugin `plugin`.
pub fn install_dir(plugin: &str) -> Option<PathBuf> {
    INSTALL_DIRS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(plugin)
        .cloned()
}

/// Records the vessel paths plugin `plugin` runs under: its config and
/// state dirs hang off them (what `host::config_dir` and
/// `host::state_dir` return to it).
pub fn set_paths(plugin: &str, paths: &Paths) {
    PATHS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(plugin.to_owned(), paths.clone());
}

/// The vessel paths recorded for plugin `plugin`.
pub fn paths(plugin: &str) -> Option<Paths> {
    PATHS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(plugin)
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_load_is_not_cached() {
        let e = loaded("example.com/registry-test", || {
            Err::<LoadedPlugin, _>("boom")
        });
        assert_eq!(e.unwrap_err(), "boom");
        let again = loaded("example.com/registry-test", || {
            Err::<LoadedPlugin, _>("again")
        });
        assert_eq!(again.unwrap_err(), "again");
    }

    #[test]
    fn install_dirs_are_per_plugin() {
        set_install_dir("example.com/reg-a", Path::new("/a"));
        set_install_dir("example.com/reg-b", Path::new("/b"));
        assert_eq!(install_dir("example.com/reg-a").unwrap(), Path::new("/a"));
        assert_eq!(install_dir("example.com/reg-unknown"), None);
    }
}
