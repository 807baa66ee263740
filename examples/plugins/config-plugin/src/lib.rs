//! Example vessel plugin `example.com/config-plugin`: adds binds and
//! environment variables to every container, from a config file in its
//! config dir (`$VESSEL_ROOT/etc/vessel/plugins/example.com/config-plugin/`).
//!
//! The file, `config-plugin.conf`, has one setting per line (`#` starts a
//! comment):
//!
//! ```text
//! bind = SRC:DST[:ro|rw]    # bind host SRC onto DST (made when the image lacks it)
//! env = NAME=VALUE          # set NAME in the container
//! ```
//!
//! The Install callback writes the defaults only when the file is absent,
//! and upgrades and uninstalls never touch the config dir, so an admin's
//! edits stay. It is read each time a container starts: the next container
//! sees an edit.

use std::path::{Path, PathBuf};

use vessel_plugin_api::{host, log, ConfigMut, Plugin};

/// The config file in the config dir.
pub const CONFIG_FILE: &str = "config-plugin.conf";

/// What the Install callback writes.
pub const DEFAULT_CONFIG: &str = "\
# config-plugin: applied to every container by its EngineConfig callback.
# bind = SRC:DST[:ro|rw]   (DST is made when the image lacks it)
# env = NAME=VALUE
bind = /etc/hostname:/config-plugin/hostname:ro
env = CONFIG_PLUGIN=1
";

/// One setting of the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setting {
    /// A bind mount.
    Bind {
        /// Host path.
        src: String,
        /// Path in the container.
        dst: String,
        /// Read-only.
        readonly: bool,
    },
    /// An environment variable.
    Env {
        /// Name.
        name: String,
        /// Value.
        value: String,
    },
}

/// Parses the config file text; errors name the line.
pub fn parse(text: &str) -> Result<Vec<Setting>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let bad = |why: &str| format!("{CONFIG_FILE} line {}: {why}", i + 1);
        let (key, value) = line
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim()))
            .ok_or_else(|| bad("expected KEY = VALUE"))?;
        match key {
            "bind" => {
                let parts: Vec<&str> = value.split(':').collect();
                let (src, dst, opt) = match parts.as_slice() {
                    [s, d] => (*s, *d, None),
                    [s, d, o] => (*s, *d, Some(*o)),
                    _ => return Err(bad("bind must be SRC:DST[:ro|rw]")),
                };
                if !src.starts_with('/') || !dst.starts_with('/') {
                    return Err(bad("bind paths must be absolute"));
                }
                let readonly = match opt {
                    None | Some("rw") => false,
                    Some("ro") => true,
                    Some(_) => return Err(bad("bind option must be ro or rw")),
                };
                out.push(Setting::Bind {
                    src: src.into(),
                    dst: dst.into(),
                    readonly,
                });
            }
            "env" => {
                let (name, value) = value
                    .split_once('=')
                    .filter(|(n, _)| !n.is_empty())
                    .ok_or_else(|| bad("env must be NAME=VALUE"))?;
                out.push(Setting::Env {
                    name: name.into(),
                    value: value.into(),
                });
            }
            other => return Err(bad(&format!("unknown key {other:?}"))),
        }
    }
    Ok(out)
}

fn config_path() -> Result<PathBuf, String> {
    host::config_dir()
        .map(|d| d.join(CONFIG_FILE))
        .ok_or_else(|| "the runtime did not say where the plugin's config dir is".to_string())
}

fn apply(config: &mut ConfigMut<'_>, path: &Path) -> vessel_plugin_api::Result<()> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    for s in parse(&text)? {
        match s {
            Setting::Bind { src, dst, readonly } => {
                log::info(format!(
                    "binding {src} on {dst}{}",
                    if readonly { " read-only" } else { "" }
                ));
                config.add_bind(src, dst, readonly);
            }
            Setting::Env { name, value } => {
                log::info(format!("setting {name}"));
                config.set_env(&name, &value);
            }
        }
    }
    Ok(())
}

/// Builds the plugin; the runtime calls it once when it loads the library.
pub fn build() -> Plugin {
    Plugin::new("example.com/config-plugin")
        .author("vessel developers")
        .version("0.1.0")
        .description("Adds the binds and env vars of its config file to every container")
        .install(|_| {
            // Never replaces the admin's file (upgrades run this too).
            host::install_default_config(CONFIG_FILE, DEFAULT_CONFIG)?;
            Ok(())
        })
        .engine_config(|config| apply(config, &config_path()?))
}

vessel_plugin_api::export_plugin!(build);

#[cfg(test)]
mod tests {
    use super::*;
    use vessel_plugin_api::Bind;
    use vessel_plugin_test::{self as testing, FakeEngineConfig};

    #[test]
    fn install_writes_the_default_config_and_engine_config_applies_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = build();
        testing::set_config_dir(Some(dir.path()));
        testing::run_install(&p, &dir.path().join("install")).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap(),
            DEFAULT_CONFIG
        );
        let mut cfg = FakeEngineConfig::default();
        testing::run_engine_config(&p, &mut cfg).unwrap();
        // An upgrade runs Install again: the admin's edit stays.
        std::fs::write(dir.path().join(CONFIG_FILE), "env = EDITED=1\n").unwrap();
        testing::run_install(&p, &dir.path().join("install")).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap(),
            "env = EDITED=1\n"
        );
        testing::set_config_dir(None);
        assert_eq!(
            cfg.binds,
            [Bind {
                source: "/etc/hostname".into(),
                destination: "/config-plugin/hostname".into(),
                readonly: true
            }]
        );
        assert_eq!(cfg.env["CONFIG_PLUGIN"], "1");
        let logs = testing::take_logs();
        assert!(logs
            .iter()
            .any(|(_, m)| m.contains("binding /etc/hostname")));
    }

    #[test]
    fn an_edited_config_is_read_at_run_time() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "bind = /a:/b\nbind=/c:/d:rw # comment\nenv = X=y=z\n",
        )
        .unwrap();
        testing::set_config_dir(Some(dir.path()));
        let mut cfg = FakeEngineConfig::default();
        cfg.env.insert("KEEP".into(), "1".into());
        testing::run_engine_config(&build(), &mut cfg).unwrap();
        testing::set_config_dir(None);
        let dsts: Vec<_> = cfg
            .binds
            .iter()
            .map(|b| (b.destination.as_str(), b.readonly))
            .collect();
        assert_eq!(dsts, [("/b", false), ("/d", false)]);
        assert_eq!(cfg.env["X"], "y=z");
        assert_eq!(cfg.env["KEEP"], "1");
    }

    #[test]
    fn errors_name_the_file_or_line() {
        let p = build();
        testing::set_config_dir(None);
        let e = testing::run_engine_config(&p, &mut FakeEngineConfig::default()).unwrap_err();
        assert!(e.message.contains("did not say where"), "{}", e.message);

        let dir = tempfile::tempdir().unwrap();
        testing::set_config_dir(Some(dir.path()));
        let e = testing::run_engine_config(&p, &mut FakeEngineConfig::default()).unwrap_err();
        assert!(e.message.starts_with("reading "), "{}", e.message);
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "env = OK=1\nbind = relative:/x\n",
        )
        .unwrap();
        let mut cfg = FakeEngineConfig::default();
        let e = testing::run_engine_config(&p, &mut cfg).unwrap_err();
        testing::set_config_dir(None);
        assert_eq!(
            e.message.as_str(),
            "config-plugin.conf line 2: bind paths must be absolute"
        );
        assert!(!e.panicked);
        // Nothing of a bad file is applied.
        assert_eq!(cfg, FakeEngineConfig::default());
        assert_eq!(
            parse("nonsense").unwrap_err(),
            "config-plugin.conf line 1: expected KEY = VALUE"
        );
        assert!(parse("bind = /a:/b:xx").is_err());
        assert!(parse("color = red")
            .unwrap_err()
            .contains("unknown key \"color\""));
    }
}
