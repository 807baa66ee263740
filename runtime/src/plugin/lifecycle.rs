//! Admin operations on installed plugins: enable, disable, uninstall, list.
//! Install lives in `install.rs`. None of these opens a plugin library.

use super::manifest::CallbackKind;
use super::store::{Meta, Store, StoreError};

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

/// Sets a plugin's enabled flag (root only).
pub fn set_enabled(store: &Store, name: &str, enabled: bool) -> Result<Toggle, crate::Error> {
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
    meta.enabled = enabled;
    store.put_meta(&lock, &meta)?;
    tracing::info!(plugin = name, enabled, "plugin state changed");
    Ok(Toggle::Changed)
}

/// Removes an installed plugin (root only).
pub fn uninstall(store: &Store, name: &str) -> Result<(), crate::Error> {
    require_root("plugin uninstall")?;
    let lock = store.lock()?;
    store.commit_uninstall(&lock, name)?;
    tracing::info!(plugin = name, "plugin uninstalled");
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
