//! Admin operations on installed plugins: enable, disable, uninstall, list.
//! Install lives in `install.rs`. None of these opens a plugin library.

use super::install::{check_single_monitor, CommandLineCheck};
use super::manifest::CallbackKind;
use super::store::{Meta, Store, StoreError};
use super::PluginError;

/// Why an enable, disable or uninstall was refused.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// Running containers loaded the plugin's runtime callbacks.
    #[error("plugin \"{plugin}\" is in use by {count} running container(s); stop them first or pass --force")]
    InUse {
        /// The plugin.
        plugin: String,
        /// How many processes hold it.
        count: usize,
    },
}

/// Refuses when running containers use `meta`'s plugin, unless `force`.
fn check_not_in_use(store: &Store, meta: &Meta, force: bool) -> Result<(), PluginError> {
    let count = super::in_use::users(store, meta);
    if count == 0 {
        return Ok(());
    }
    if force {
        tracing::warn!(
            plugin = meta.name(),
            count,
            "plugin in use, going ahead (--force)"
        );
        return Ok(());
    }
    Err(LifecycleError::InUse {
        plugin: meta.name().to_owned(),
        count,
    }
    .into())
}

/// Fails unless the effective user is root, naming the action.
pub fn require_root(action: &'static str) -> Result<(), crate::Error> {
    Ok(crate::trust::require_root(action)?)
}

/// What `enable`/`disable` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toggle {
    /// The state changed.
    Changed,
    /// It already was in the asked state; nothing was written.
    AlreadyThere,
}

/// How `enable`/`disable`/`uninstall` go about it.
#[derive(Clone, Copy)]
pub struct ToggleOptions<'a> {
    /// Go ahead although running containers use the plugin.
    pub force: bool,
    /// On enable: the command line's check of the plugin's commands and
    /// flags against the other installed plugins (as at install).
    pub check_command_line: CommandLineCheck<'a>,
}

impl std::fmt::Debug for ToggleOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToggleOptions")
            .field("force", &self.force)
            .finish_non_exhaustive()
    }
}

/// Sets a plugin's enabled flag (root only). Enabling checks the same
/// conflicts as install (commands, flags, a second container monitor);
/// disabling refuses a plugin running containers use, unless forced.
pub fn set_enabled(
    store: &Store,
    name: &str,
    enabled: bool,
    opts: ToggleOptions<'_>,
) -> Result<Toggle, crate::Error> {
    require_root(if enabled {
        "plugin enable"
    } else {
        "plugin disable"
    })?;
    let lock = store.lock()?;
    let mut meta = store.get(name)?;
    if meta.enabled == enabled {
        return Ok(Toggle::AlreadyThere);
    }
    if enabled {
        let others: Vec<Meta> = store
            .list()?
            .into_iter()
            .filter(|m| m.name() != name)
            .collect();
        (opts.check_command_line)(&meta.manifest, &others).map_err(PluginError::from)?;
        check_single_monitor(&meta.manifest, &others).map_err(PluginError::from)?;
    } else {
        check_not_in_use(store, &meta, opts.force)?;
    }
    meta.enabled = enabled;
    store.put_meta(&lock, &meta)?;
    tracing::info!(plugin = name, enabled, "plugin state changed");
    Ok(Toggle::Changed)
}

/// Removes an installed plugin (root only); refuses one running containers
/// use, unless `force`.
pub fn uninstall(store: &Store, name: &str, force: bool) -> Result<(), crate::Error> {
    require_root("plugin uninstall")?;
    let lock = store.lock()?;
    // A meta that does not read back cleanly is still removable: the store
    // handles it; only a readable one can be in use.
    if let Ok(meta) = store.get(name) {
        check_not_in_use(store, &meta, force)?;
    }
    store.commit_uninstall(&lock, name)?;
    tracing::info!(plugin = name, "plugin uninstalled");
    Ok(())
}

/// Removes the config dir and root's state dir of plugin `name` (root
/// only; `uninstall --purge`). Users' own state dirs are theirs to remove.
pub fn purge(paths: &crate::paths::Paths, name: &str) -> Result<(), crate::Error> {
    require_root("plugin uninstall --purge")?;
    super::store::validate_name(name)?;
    let io = |path: std::path::PathBuf| move |source| super::PluginError::Io { path, source };
    super::plugin_dirs::purge_config_dir(paths, name).map_err(io(paths.plugin_config_dir(name)))?;
    let state = paths.plugin_state_dir(name);
    match std::fs::symlink_metadata(&state) {
        Ok(m) if m.file_type().is_symlink() => std::fs::remove_file(&state),
        Ok(_) => std::fs::remove_dir_all(&state),
        Err(_) => Ok(()),
    }
    .map_err(io(state.clone()))?;
    tracing::info!(plugin = name, "plugin config and state purged");
    Ok(())
}

/// Which plugins `list` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only enabled (`Some(true)`) or disabled (`Some(false)`) ones.
    pub enabled: Option<bool>,
    /// Only those that registered this callback kind.
    pub callback: Option<CallbackKind>,
}

impl ListFilter {
    /// True when `m` passes the filter.
    pub fn matches(&self, m: &Meta) -> bool {
        self.enabled.is_none_or(|e| m.enabled == e)
            && self.callback.is_none_or(|k| m.manifest.has(k))
    }
}

/// What `plugin list` found.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// How many plugins are installed at all.
    pub installed: usize,
    /// The ones matching the filter, sorted by name.
    pub shown: Vec<Meta>,
}

/// Installed plugins matching `filter`; `known` is a listing already read
/// in this process, if any.
pub fn list(
    store: &Store,
    known: Option<&[Meta]>,
    filter: &ListFilter,
) -> Result<Listing, StoreError> {
    let all = match known {
        Some(k) => k.to_vec(),
        None => store.list()?,
    };
    Ok(Listing {
        installed: all.len(),
        shown: all.into_iter().filter(|m| filter.matches(m)).collect(),
    })
}
