//! Every path vessel touches hangs off one root, `VESSEL_ROOT` (default `/`),
//! so tests and packagers can run the whole runtime inside a temp dir.

use std::path::{Path, PathBuf};

/// The environment variable that moves every vessel path under another root.
pub const ROOT_ENV: &str = "VESSEL_ROOT";

/// The resolved locations of vessel's configuration, keys and plugins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    root: PathBuf,
}

impl Paths {
    /// Paths under an explicit root.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Paths under `$VESSEL_ROOT`, or `/` when it is unset or empty.
    pub fn from_env() -> Self {
        match std::env::var_os(ROOT_ENV) {
            Some(v) if !v.is_empty() => Self::new(PathBuf::from(v)),
            _ => Self::new("/"),
        }
    }

    /// The root every other path hangs off.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `etc/vessel`.
    pub fn etc_dir(&self) -> PathBuf {
        self.root.join("etc/vessel")
    }

    /// `etc/vessel/vessel.toml`; a missing file means defaults.
    pub fn config_file(&self) -> PathBuf {
        self.etc_dir().join("vessel.toml")
    }

    /// `etc/vessel/keys`, the trust store of public keys.
    pub fn keys_dir(&self) -> PathBuf {
        self.etc_dir().join("keys")
    }

    /// `etc/vessel/plugins/<name>`, where an admin puts a plugin's
    /// configuration (vessel never writes there).
    pub fn plugin_config_dir(&self, name: &str) -> PathBuf {
        self.etc_dir().join("plugins").join(name)
    }

    /// `var/lib/vessel/plugins/<name>`, where a plugin keeps state that must
    /// survive upgrades (its install dir is replaced on each upgrade).
    pub fn plugin_state_dir(&self, name: &str) -> PathBuf {
        self.root.join("var/lib/vessel/plugins").join(name)
    }

    /// `usr/local/libexec/vessel/plugins`, the plugin store.
    pub fn plugin_dir(&self) -> PathBuf {
        self.root.join("usr/local/libexec/vessel/plugins")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_hang_off_the_root() {
        let p = Paths::new("/tmp/r");
        assert_eq!(p.config_file(), Path::new("/tmp/r/etc/vessel/vessel.toml"));
        assert_eq!(p.keys_dir(), Path::new("/tmp/r/etc/vessel/keys"));
        assert_eq!(
            p.plugin_dir(),
            Path::new("/tmp/r/usr/local/libexec/vessel/plugins")
        );
    }
}
