//! Services the runtime offers besides logging (see [`log`](crate::log)):
//! the plugin's install, config and state dirs.
//!
//! | dir | where | who writes |
//! | --- | --- | --- |
//! | [`install_dir`] | the plugin store, replaced by every upgrade | root, at install |
//! | [`config_dir`] | `$VESSEL_ROOT/etc/vessel/plugins/NAME/` | the admin; the Install callback only creates missing defaults ([`install_default_config`]); upgrades and uninstalls keep it, `uninstall --purge` removes it |
//! | [`state_dir`] | root: `$VESSEL_ROOT/var/lib/vessel/plugins/NAME/`; a user: `$XDG_STATE_HOME/vessel/plugins/NAME/` (default `~/.local/state/...`) | the plugin at run time, as the calling user (mode 0700, made on first use) |
//!
//! Without a runtime (in unit tests through `vessel-plugin-test`), the
//! values come from what the test set with its `set_install_dir`,
//! `set_config_dir` and `set_state_dir`, per thread.

use std::cell::RefCell;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::sdk::Result;

thread_local! {
    static FAKE_INSTALL_DIR: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
    static FAKE_CONFIG_DIR: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
    static FAKE_STATE_DIR: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
}

pub(crate) fn set_fake_install_dir(dir: Option<PathBuf>) {
    FAKE_INSTALL_DIR.with(|d| *d.borrow_mut() = dir);
}

pub(crate) fn set_fake_config_dir(dir: Option<PathBuf>) {
    FAKE_CONFIG_DIR.with(|d| *d.borrow_mut() = dir);
}

pub(crate) fn set_fake_state_dir(dir: Option<PathBuf>) {
    FAKE_STATE_DIR.with(|d| *d.borrow_mut() = dir);
}

/// The plugin's install dir: where its Install callback wrote its files
/// (data). None when the runtime does not know it (a runtime older than
/// this service, or a library loaded outside the plugin store).
///
/// The dir is owned by root and replaced by every upgrade: keep settings an
/// admin edits in [`config_dir`], and write at run time to [`state_dir`].
pub fn install_dir() -> Option<PathBuf> {
    match crate::log::host() {
        Some(h) => {
            let f = h.services.install_dir()?;
            f(h.plugin.as_str().into())
                .into_option()
                .map(|s| PathBuf::from(s.into_string()))
        }
        None => FAKE_INSTALL_DIR.with(|d| d.borrow().clone()),
    }
}

/// The plugin's config dir, `$VESSEL_ROOT/etc/vessel/plugins/NAME/`: the
/// admin's settings, root-owned, read at run time. It survives upgrades
/// and uninstalls. None when the runtime does not know it. The dir may be
/// missing or empty: a plugin reads its defaults then.
pub fn config_dir() -> Option<PathBuf> {
    match crate::log::host() {
        Some(h) => {
            let f = h.services.config_dir()?;
            f(h.plugin.as_str().into())
                .into_option()
                .map(|s| PathBuf::from(s.into_string()))
        }
        None => FAKE_CONFIG_DIR.with(|d| d.borrow().clone()),
    }
}

/// The plugin's state dir for the calling user, created (mode 0700) on
/// first use: `$VESSEL_ROOT/var/lib/vessel/plugins/NAME/` for root,
/// `$XDG_STATE_HOME/vessel/plugins/NAME/` (default
/// `~/.local/state/vessel/plugins/NAME/`) for anyone else. The error says
/// why there is none (a runtime older than this service, a dir another
/// user planted there).
pub fn state_dir() -> Result<PathBuf> {
    match crate::log::host() {
        Some(h) => {
            let f = h
                .services
                .state_dir()
                .ok_or("the runtime offers no state dir (it predates plugin-api 1.2)")?;
            f(h.plugin.as_str().into())
                .into_result()
                .map(|s| PathBuf::from(s.into_string()))
                .map_err(|e| e.into_string().into())
        }
        None => FAKE_STATE_DIR
            .with(|d| d.borrow().clone())
            .ok_or_else(|| "no state dir set (vessel_plugin_test::set_state_dir)".into()),
    }
}

/// Writes `contents` to `file` in the config dir only when no such file
/// exists (for the Install callback: an admin's edits are never replaced,
/// on upgrades either). Returns whether it was written. `file` is a plain
/// file name; a symlink there is never followed.
pub fn install_default_config(file: &str, contents: &str) -> Result<bool> {
    if file.is_empty() || file.contains('/') || file == "." || file == ".." {
        return Err(format!("config file name {file:?} must be a plain file name").into());
    }
    let dir = config_dir().ok_or("the runtime did not say where the config dir is")?;
    write_new(&dir.join(file), contents)
}

fn write_new(path: &Path, contents: &str) -> Result<bool> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NOFOLLOW with O_CREAT|O_EXCL: EEXIST for any existing name, a
    // symlink included, so nothing existing is ever written through.
    let opened = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(0o400_000) // O_NOFOLLOW
        .open(path);
    let mut f = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(format!("creating {}: {e}", path.display()).into()),
    };
    f.write_all(contents.as_bytes())
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_never_replace_an_admins_file() {
        let dir = std::env::temp_dir().join(format!("vessel-sdk-host-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        set_fake_config_dir(Some(dir.clone()));
        assert!(install_default_config("a.toml", "x = 1\n").unwrap());
        std::fs::write(dir.join("a.toml"), "x = 2\n").unwrap();
        assert!(!install_default_config("a.toml", "x = 1\n").unwrap());
        assert_eq!(
            std::fs::read_to_string(dir.join("a.toml")).unwrap(),
            "x = 2\n"
        );
        std::os::unix::fs::symlink("/nonexistent-target", dir.join("l.toml")).unwrap();
        assert!(!install_default_config("l.toml", "x").unwrap());
        assert!(install_default_config("../x", "x").is_err());
        set_fake_config_dir(None);
        assert!(install_default_config("b.toml", "x").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
