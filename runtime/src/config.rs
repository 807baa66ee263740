//! `vessel.toml`: the admin's configuration. A missing file means defaults;
//! an unreadable or malformed one is an error naming the file.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Errors reading `vessel.toml`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but cannot be read.
    #[error("config {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// As root: the file (or a dir above it) another user could change.
    #[error("config: {0}")]
    Insecure(#[from] crate::trust::secure::InsecurePath),
    /// The file is not valid TOML or has unknown keys or wrong types.
    #[error("config {path}: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// What the parser said, on one line.
        message: String,
    },
}

/// What to do with a plugin image that is unsigned or signed by an untrusted key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignaturePolicy {
    /// Refuse it (the default).
    #[default]
    Required,
    /// Accept it with a warning.
    Warn,
    /// Accept it silently.
    Off,
}

/// The parsed `vessel.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Signature policy for `plugin install`.
    pub plugin_signatures: SignaturePolicy,
    /// Name of the image driver to mount SIF images with; `None` picks a builtin.
    pub image_driver: Option<String>,
    /// Binds (`SRC[:DST[:ro|rw]]`) added to every container.
    pub bind_paths: Vec<String>,
    /// Registries (`host` or `host:port`) reached over plain HTTP instead of
    /// HTTPS; every other registry needs TLS.
    pub insecure_registries: Vec<String>,
    /// Seconds every plugin callback may take before vessel gives up on it
    /// (MonitorContainer is exempt while the container runs); default 10.
    pub plugin_timeout: Option<f64>,
    /// Cap on each user's cache of extracted images (`cache_max_size`, bytes
    /// or a size like `"10G"`); least recently used entries go first.
    pub cache_max_size: Option<toml::Value>,
}

impl Config {
    /// The cache's size cap in bytes (default 10 GiB).
    pub fn cache_max_size(&self) -> u64 {
        self.cache_max_size
            .as_ref()
            .and_then(parse_cache_size)
            .unwrap_or(crate::cache::DEFAULT_MAX_SIZE)
    }

    /// The deadline of a plugin callback.
    pub fn plugin_timeout(&self) -> std::time::Duration {
        self.plugin_timeout
            .and_then(|s| std::time::Duration::try_from_secs_f64(s).ok())
            .filter(|d| !d.is_zero())
            .unwrap_or(crate::plugin::guard::DEFAULT_TIMEOUT)
    }
}

impl Config {
    /// Reads the config file; a missing file gives the defaults. As root,
    /// a file (or a dir above it) another user owns or can write is
    /// refused, as sudo refuses such a sudoers.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        crate::trust::secure::check_root_owned(path)?;
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        let config: Self = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.message().to_lowercase(),
        })?;
        if let Some(s) = config.plugin_timeout {
            if !(s.is_finite() && s > 0.0 && s < 1e9) {
                return Err(ConfigError::Parse {
                    path: path.to_owned(),
                    message: format!("plugin_timeout = {s}: expected a positive number of seconds"),
                });
            }
        }
        if let Some(v) = &config.cache_max_size {
            if parse_cache_size(v).is_none() {
                return Err(ConfigError::Parse {
                    path: path.to_owned(),
                    message: format!(
                        "cache_max_size = {v}: expected a number of bytes or a size like \"10G\""
                    ),
                });
            }
        }
        Ok(config)
    }
}

fn parse_cache_size(v: &toml::Value) -> Option<u64> {
    match v {
        toml::Value::Integer(n) => u64::try_from(*n).ok(),
        toml::Value::String(s) => crate::cache::parse_size(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_defaults() {
        let c = Config::load(Path::new("/nonexistent/vessel.toml")).unwrap();
        assert_eq!(c.plugin_signatures, SignaturePolicy::Required);
        assert!(c.image_driver.is_none());
    }

    #[test]
    fn parses_keys_and_rejects_unknown() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("vessel.toml");
        std::fs::write(
            &f,
            "plugin_signatures = \"warn\"\nimage_driver = \"squashfuse\"\n",
        )
        .unwrap();
        let c = Config::load(&f).unwrap();
        assert_eq!(c.plugin_signatures, SignaturePolicy::Warn);
        assert_eq!(c.image_driver.as_deref(), Some("squashfuse"));
        std::fs::write(&f, "insecure_registries = [\"127.0.0.1:5000\"]\n").unwrap();
        let c = Config::load(&f).unwrap();
        assert_eq!(c.insecure_registries, ["127.0.0.1:5000"]);
        std::fs::write(&f, "cache_max_size = \"2G\"\n").unwrap();
        assert_eq!(Config::load(&f).unwrap().cache_max_size(), 2 << 30);
        std::fs::write(&f, "cache_max_size = 4096\n").unwrap();
        assert_eq!(Config::load(&f).unwrap().cache_max_size(), 4096);
        std::fs::write(&f, "cache_max_size = \"lots\"\n").unwrap();
        let e = Config::load(&f).unwrap_err().to_string();
        assert!(e.contains("cache_max_size"), "{e}");
        std::fs::write(&f, "bogus = 1\n").unwrap();
        let e = Config::load(&f).unwrap_err().to_string();
        assert!(e.starts_with("config "), "{e}");
    }
}
