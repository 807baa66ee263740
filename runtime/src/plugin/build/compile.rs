//! `plugin compile`: cargo, then load the library (every loader check) to
//! generate the manifest, then the plugin image, then the signature.

use std::path::{Path, PathBuf};

use super::provenance::{self, Provenance};
use super::{cargo_build, inside_tree, source_tree_from, Built};
use crate::plugin::loader::{self, LoadSpec};
use crate::plugin::manifest::Manifest;
use crate::plugin::PluginError;

/// A check of a plugin's manifest (see [`CompileOptions::check`]).
pub type ManifestCheck = fn(&Manifest) -> Result<(), crate::plugin::install::InstallError>;

/// How to compile a plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct CompileOptions<'a> {
    /// The image to write (default `DIR/<crate name>.sif`).
    pub out: Option<&'a Path>,
    /// Sign the image with this private key.
    pub sign_key: Option<&'a Path>,
    /// The vessel source tree (default: `$VESSEL_SOURCE_TREE`, else the tree
    /// this vessel was built from).
    pub source_tree: Option<&'a Path>,
    /// The command/flag spec checks install runs (they need the built-in
    /// command line, which the CLI owns), run on the generated manifest
    /// before the image is written.
    pub check: Option<ManifestCheck>,
}

/// Where `plugin compile` builds: one target dir for every plugin of a
/// tree, so shared dependencies are compiled once.
pub(super) fn target_dir(tree: &Path) -> PathBuf {
    tree.join("target/plugin-build")
}

/// Builds the plugin crate in `dir` into `target_dir` and generates its
/// manifest, provenance included.
pub(super) fn build(
    tree: &Path,
    dir: &Path,
    target_dir: &Path,
) -> Result<(Built, Manifest), crate::Error> {
    let dir = inside_tree(tree, dir).map_err(PluginError::from)?;
    let source_date_epoch = provenance::source_date_epoch(&dir).map_err(PluginError::from)?;
    let source_sha256 = provenance::source_sha256(&dir).map_err(PluginError::from)?;
    let vessel_source = provenance::vessel_source(tree).map_err(PluginError::from)?;
    let built =
        cargo_build(tree, &dir, target_dir, source_date_epoch).map_err(PluginError::from)?;
    let lock_sha256 = provenance::file_sha256(&built.lock).map_err(PluginError::from)?;
    let loaded = loader::load(&LoadSpec::new(&built.library)).map_err(PluginError::from)?;
    let manifest = Manifest {
        runtime_version: env!("CARGO_PKG_VERSION").to_owned(),
        rustc_version: built.rustc_version.clone(),
        target: built.target.clone(),
        provenance: Some(Provenance {
            vessel_source,
            source_sha256,
            lock_sha256,
            source_date_epoch,
        }),
        ..loaded.manifest().clone()
    };
    crate::plugin::store::validate_name(&manifest.name)?;
    crate::plugin::install::parse_version(&manifest.name, &manifest.version)
        .map_err(PluginError::from)?;
    Ok((built, manifest))
}

/// `plugin compile`: builds the crate in DIR inside the source tree,
/// reproducibly, and writes the plugin image (default
/// `DIR/<crate name>.sif`), signed if a key is given. Returns the image
/// path; on failure no image is left.
pub fn compile(dir: &Path, opts: CompileOptions<'_>) -> Result<PathBuf, crate::Error> {
    // Validate everything cheap before the (slow) build.
    let tree = source_tree_from(opts.source_tree).map_err(PluginError::from)?;
    inside_tree(&tree, dir).map_err(PluginError::from)?;
    let signing_key = opts
        .sign_key
        .map(crate::trust::load_signing_key)
        .transpose()?;

    let (built, manifest) = build(&tree, dir, &target_dir(&tree))?;
    if let Some(check) = opts.check {
        check(&manifest).map_err(PluginError::from)?;
    }
    let out: PathBuf = opts
        .out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| built.dir.join(format!("{}.sif", built.crate_name)));
    let time = manifest
        .provenance
        .as_ref()
        .map_or(0, |p| p.source_date_epoch);
    crate::plugin::image::write(&out, &built.library, &manifest, time)?;
    if let Some(k) = &signing_key {
        if let Err(e) = vessel_sif::sign_image(&out, k) {
            let _ = std::fs::remove_file(&out);
            return Err(e.into());
        }
    }
    Ok(out)
}
