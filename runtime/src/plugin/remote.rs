//! Plugins by reference: push a plugin image with its identity as manifest
//! annotations (so `plugin inspect oras://…` needs only the manifest), and
//! fetch one into a private temp dir for the local install path, which then
//! runs every check of a local install.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::image::PluginImage;
use super::manifest::Manifest;
use super::store::{Meta, Origin, Store, StoreError, PLUGIN_SIF};
use super::PluginError;
use crate::registry::{self, Options, Pulled, Pushed, Reference, RegistryError, Remote};

/// Manifest annotation: the plugin's name.
pub const ANN_NAME: &str = "org.vessel.plugin.name";
/// Manifest annotation: the plugin's version.
pub const ANN_VERSION: &str = "org.vessel.plugin.version";
/// Manifest annotation: the plugin-api version it was built against.
pub const ANN_API_VERSION: &str = "org.vessel.plugin.api-version";
/// Manifest annotation: its callbacks, comma-separated.
pub const ANN_CALLBACKS: &str = "org.vessel.plugin.callbacks";
/// Manifest annotation: its one-line description.
pub const ANN_DESCRIPTION: &str = "org.vessel.plugin.description";

/// The manifest annotations pushed with a plugin.
pub fn annotations(m: &Manifest) -> BTreeMap<String, String> {
    let cbs: Vec<_> = m.callbacks.iter().map(|k| k.as_str()).collect();
    BTreeMap::from([
        (ANN_NAME.to_owned(), m.name.clone()),
        (ANN_VERSION.to_owned(), m.version.clone()),
        (ANN_API_VERSION.to_owned(), m.api_version.clone()),
        (ANN_CALLBACKS.to_owned(), cbs.join(",")),
        (ANN_DESCRIPTION.to_owned(), m.description.clone()),
    ])
}

/// Pushes the plugin image `file` (checked to be one) to `r`.
pub fn push(file: &std::path::Path, r: &Reference, opts: &Options) -> Result<Pushed, crate::Error> {
    let image = PluginImage::open(file).map_err(PluginError::from)?;
    Ok(registry::push(file, r, annotations(&image.manifest), opts)?)
}

/// A plugin in a registry, as its manifest describes it.
#[derive(Debug, Clone)]
pub struct RemotePlugin {
    /// The artifact.
    pub remote: Remote,
    /// Plugin name.
    pub name: String,
    /// Version.
    pub version: String,
    /// plugin-api version.
    pub api_version: String,
    /// Callback kinds, as named in manifests.
    pub callbacks: Vec<String>,
    /// Description.
    pub description: String,
}

/// Reads a plugin's identity from its manifest (the library is not
/// downloaded). What the annotations say is a claim of the pusher: install
/// checks the image itself.
pub fn inspect(r: &Reference, opts: &Options) -> Result<RemotePlugin, crate::Error> {
    let remote = registry::inspect(r, opts)?;
    let a = &remote.annotations;
    let get = |k: &str| a.get(k).cloned().unwrap_or_default();
    if !a.contains_key(ANN_NAME) {
        return Err(RegistryError::NotSif {
            registry: r.registry.clone(),
            repository: r.repository.clone(),
            reason: format!("no {ANN_NAME} annotation: not pushed with vessel plugin push"),
        }
        .into());
    }
    Ok(RemotePlugin {
        name: get(ANN_NAME),
        version: get(ANN_VERSION),
        api_version: get(ANN_API_VERSION),
        callbacks: get(ANN_CALLBACKS)
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        description: get(ANN_DESCRIPTION),
        remote,
    })
}

/// A plugin image pulled into a private (0700) temp dir, removed on drop.
#[derive(Debug)]
pub struct Fetched {
    _dir: tempfile::TempDir,
    /// The image file inside the temp dir.
    pub path: PathBuf,
    /// What was pulled.
    pub pulled: Pulled,
    /// The reference, as given (with a pinned digest if one was asked for).
    pub reference: Reference,
}

/// Pulls the plugin image at `r` into a private temp dir. `pin`
/// (`sha256:…`) fetches exactly that manifest, whatever the tag points at.
pub fn fetch(r: &Reference, pin: Option<&str>, opts: &Options) -> Result<Fetched, crate::Error> {
    let r = match pin {
        None => r.clone(),
        Some(d) => {
            registry::reference::check_digest(d).map_err(|reason| RegistryError::BadReference {
                reference: d.to_owned(),
                reason,
            })?;
            if let Some(other) = r.digest().filter(|o| *o != d) {
                return Err(RegistryError::Pinned {
                    registry: r.registry.clone(),
                    repository: r.repository.clone(),
                    expected: d.to_owned(),
                    actual: other.to_owned(),
                }
                .into());
            }
            r.with_digest(d)
        }
    };
    // Only this process can reach the file: the install reads the bytes
    // that were checked, not bytes someone swapped in between.
    let dir = tempfile::Builder::new()
        .prefix("vessel-fetch-")
        .tempdir()
        .map_err(|source| PluginError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
    let path = dir.path().join(PLUGIN_SIF);
    let pulled = registry::pull(&r, &path, false, opts)?;
    Ok(Fetched {
        _dir: dir,
        path,
        pulled,
        reference: r,
    })
}

/// Records where the install `meta` came from, if it is still the current
/// install of its plugin (another writer may have replaced it since).
pub fn record_origin(store: &Store, meta: &Meta, origin: Origin) -> Result<Meta, StoreError> {
    let lock = store.lock()?;
    let mut current = store.get(meta.name())?;
    if current.install_id != meta.install_id {
        return Ok(current);
    }
    current.origin = Some(origin);
    store.put_meta(&lock, &current)?;
    Ok(current)
}
