//! Services the runtime offers besides logging (see [`log`](crate::log)).
//!
//! Without a runtime (in unit tests through `vessel-plugin-test`), the
//! values come from what the test set with its `set_install_dir`, per thread.

use std::cell::RefCell;
use std::path::PathBuf;

thread_local! {
    static FAKE_INSTALL_DIR: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
}

pub(crate) fn set_fake_install_dir(dir: Option<PathBuf>) {
    FAKE_INSTALL_DIR.with(|d| *d.borrow_mut() = dir);
}

/// The plugin's install dir: where its Install callback wrote its files
/// (config, data). None when the runtime does not know it (a runtime older
/// than this service, or a library loaded outside the plugin store).
///
/// The dir is owned by root and meant to be read at run time; a plugin must
/// not expect to write there when an unprivileged user runs vessel.
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
