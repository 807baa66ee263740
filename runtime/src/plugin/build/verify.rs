//! `plugin verify-build`: rebuild a plugin from its source and say whether
//! the result is the library in the image, or what differs first.

use std::fs;
use std::path::{Path, PathBuf};

use super::provenance::{self, Provenance};
use super::{cargo_build, inside_tree, is_workspace_member, source_tree_from, BuildError};
use crate::plugin::manifest::Manifest;
use crate::plugin::PluginError;

/// The outcome of a rebuild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The rebuilt library is the image's, byte for byte (its sha256).
    Reproduced(String),
    /// The first difference found, e.g. `library differs: image A vs
    /// rebuilt B`.
    Differs(String),
}

/// Rebuilds the plugin whose image manifest is `image` from the crate in
/// `dir` and compares. DIR is never written: a crate of its own workspace
/// is copied beside it (so its relative paths still resolve), and the build
/// goes to a temp target dir. The tree's identity and the source hash are
/// compared before the (slow) build.
pub fn verify_build(
    image: &Manifest,
    dir: &Path,
    source_tree: Option<&Path>,
) -> Result<Verdict, crate::Error> {
    let tree = source_tree_from(source_tree).map_err(PluginError::from)?;
    let dir = inside_tree(&tree, dir).map_err(PluginError::from)?;
    let Some(recorded) = &image.provenance else {
        return Ok(Verdict::Differs(
            "the image records no provenance (compiled by an older vessel)".into(),
        ));
    };
    if let Some(d) = compare_inputs(recorded, &tree, &dir)? {
        return Ok(Verdict::Differs(d));
    }
    let target = tempfile::Builder::new()
        .prefix("vessel-verify-target-")
        .tempdir()
        .map_err(|e| {
            PluginError::from(BuildError::Io {
                path: std::env::temp_dir(),
                source: e,
            })
        })?;
    let member = is_workspace_member(&tree, &dir).map_err(PluginError::from)?;
    // A copy beside DIR (same depth, so `path = "../.."` deps resolve); the
    // guard removes it whatever happens.
    let copy = if member {
        None
    } else {
        let parent = dir.parent().unwrap_or(&tree);
        let tmp = tempfile::Builder::new()
            .prefix(".vessel-verify-")
            .tempdir_in(parent)
            .map_err(|e| {
                PluginError::from(BuildError::Io {
                    path: parent.to_owned(),
                    source: e,
                })
            })?;
        copy_crate(&dir, tmp.path()).map_err(PluginError::from)?;
        Some(tmp)
    };
    let build_dir = copy.as_ref().map_or(dir.clone(), |c| c.path().to_owned());
    let built = cargo_build(&tree, &build_dir, target.path(), recorded.source_date_epoch)
        .map_err(PluginError::from)?;
    let rebuilt = provenance::file_sha256(&built.library).map_err(PluginError::from)?;
    Ok(if rebuilt == image.sha256 {
        Verdict::Reproduced(rebuilt)
    } else {
        Verdict::Differs(format!(
            "library differs: image {} vs rebuilt {rebuilt}",
            image.sha256
        ))
    })
}

/// The first recorded input that differs from what is at hand.
fn compare_inputs(
    recorded: &Provenance,
    tree: &Path,
    dir: &Path,
) -> Result<Option<String>, crate::Error> {
    let tree_source = provenance::vessel_source(tree).map_err(PluginError::from)?;
    if tree_source != recorded.vessel_source {
        return Ok(Some(format!(
            "vessel source differs: image {}, tree {tree_source}",
            recorded.vessel_source
        )));
    }
    let source = provenance::source_sha256(dir).map_err(PluginError::from)?;
    if source != recorded.source_sha256 {
        return Ok(Some(format!(
            "source hash differs: image {}, {} {source}",
            recorded.source_sha256,
            dir.display()
        )));
    }
    Ok(None)
}

/// Copies the plugin crate's files (not `target/` or images) into `to`.
fn copy_crate(from: &Path, to: &Path) -> Result<(), BuildError> {
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let src = from.join(&rel);
        for entry in fs::read_dir(&src).map_err(super::io_err(&src))? {
            let entry = entry.map_err(super::io_err(&src))?;
            let rel = rel.join(entry.file_name());
            let first = rel.components().next().map(|c| c.as_os_str());
            if first == Some("target".as_ref()) || rel.extension().is_some_and(|e| e == "sif") {
                continue;
            }
            let ft = entry.file_type().map_err(super::io_err(&entry.path()))?;
            let dst = to.join(&rel);
            if ft.is_dir() {
                fs::create_dir(&dst).map_err(super::io_err(&dst))?;
                stack.push(rel);
            } else if ft.is_file() {
                fs::copy(entry.path(), &dst).map_err(super::io_err(&dst))?;
            }
        }
    }
    Ok(())
}
