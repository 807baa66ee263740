//! What every library entry point needs to know about this vessel: where its
//! files live, the admin's config, and the installed plugins as read once at
//! start-up. The CLI builds one and hands it down; nothing below the CLI
//! reads the environment for these on its own.

use crate::config::{Config, ConfigError};
use crate::paths::Paths;
use crate::plugin::store::{Meta, Store};

/// One vessel installation, as seen by this process.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// Paths under `VESSEL_ROOT`.
    pub paths: Paths,
    /// The parsed `vessel.toml`.
    pub config: Config,
    /// Every installed plugin's meta as the command line read it at
    /// start-up (from the store's CLI index, or the metas for `plugin ...`),
    /// when it needed all of them (help, completion, the admin commands);
    /// `None` otherwise or if the store could not be read. For the command
    /// line only: loading a plugin and the engine's callbacks read the
    /// metas themselves.
    pub installed: Option<Vec<Meta>>,
    /// The flags plugins added to the command being run that were given,
    /// by plugin name (name, value): what their EngineConfig callbacks see.
    pub plugin_flags: std::collections::BTreeMap<String, Vec<(String, Option<String>)>>,
}

impl Runtime {
    /// The runtime under `$VESSEL_ROOT`, with its `vessel.toml`; the caller
    /// fills in `installed` when it has read the store.
    pub fn from_env() -> Result<Self, ConfigError> {
        let paths = Paths::from_env();
        let config = Config::load(&paths.config_file())?;
        crate::plugin::guard::set_timeout(config.plugin_timeout());
        Ok(Self {
            paths,
            config,
            installed: None,
            plugin_flags: Default::default(),
        })
    }

    /// The plugin store.
    pub fn store(&self) -> Store {
        Store::new(self.paths.plugin_dir())
    }
}
