//! `vessel build`: a SIF image from a sandbox directory: the directory as a
//! squashfs primary partition (fs Squashfs, type PrimSys, host arch), the
//! layout the reference tooling writes, optionally signed.

use std::path::Path;
use std::process::{Command, Stdio};

use vessel_sif::{Arch, CreateOptions, FsType, ObjectInput, PartType, Writer};

use super::ImageError;
use crate::Error;

/// Packs `sandbox` into a SIF image at `out`, signed with the PEM ed25519
/// key at `key` when given. `out` appears only when everything succeeded;
/// an existing `out` is replaced only with `force`.
pub fn build_sif(out: &Path, sandbox: &Path, key: Option<&Path>, force: bool) -> Result<(), Error> {
    build_sif_with(out, sandbox, key, force, &[])
}

/// A JSON.Generic object stored beside the rootfs (name, bytes), e.g. the
/// labels of an image built from an OCI image.
pub type JsonObject = (String, Vec<u8>);

/// [`build_sif`] that also stores `json` objects (JSON.Generic, group 1,
/// after the rootfs partition).
pub fn build_sif_with(
    out: &Path,
    sandbox: &Path,
    key: Option<&Path>,
    force: bool,
    json: &[JsonObject],
) -> Result<(), Error> {
    let fail = |reason: String| ImageError::Build {
        out: out.to_owned(),
        reason,
    };
    match std::fs::metadata(sandbox) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(fail(format!("sandbox {}: not a directory", sandbox.display())).into())
        }
        Err(e) => {
            return Err(fail(format!(
                "sandbox {}: {}",
                sandbox.display(),
                super::io_reason(&e)
            ))
            .into())
        }
    }
    // A symlink at `out` (dangling or not) counts as existing; with --force
    // it is replaced by the rename, never written through.
    if std::fs::symlink_metadata(out).is_ok() && !force {
        return Err(fail("already exists (use --force to replace it)".into()).into());
    }
    // Load the key before the slow part so a bad key fails fast.
    let signing_key = key.map(crate::trust::load_signing_key).transpose()?;

    let work = tempfile::Builder::new()
        .prefix("vessel-build-")
        .tempdir()
        .map_err(|e| fail(format!("creating a temp dir: {}", super::io_reason(&e))))?;
    let squash = work.path().join("rootfs.squashfs");
    mksquashfs(sandbox, &squash).map_err(fail)?;

    // Write in a private dir of a random name beside the output (created
    // O_EXCL, 0700: nobody can plant or swap anything in it) and rename, so
    // a failure never leaves a half-written or unsigned image at `out`.
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let stage_dir = {
        use std::os::unix::fs::PermissionsExt;
        tempfile::Builder::new()
            .prefix(".vessel-build-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(parent)
            .map_err(|e| fail(format!("creating a temp dir: {}", super::io_reason(&e))))?
    };
    let staged = stage_dir.path().join("image.sif");
    write_sif(&staged, &squash, json)?;
    if let Some(k) = &signing_key {
        vessel_sif::sign_image(&staged, k)?;
    }
    std::fs::rename(&staged, out)
        .map_err(|e| fail(format!("renaming into place: {}", super::io_reason(&e))).into())
}

fn mksquashfs(sandbox: &Path, squash: &Path) -> Result<(), String> {
    let o = Command::new("mksquashfs")
        .arg(sandbox)
        .arg(squash)
        .args(["-noappend", "-no-progress", "-quiet"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running mksquashfs: {}", super::io_reason(&e)))?;
    if !o.status.success() {
        let last = super::last_stderr_line(&o.stderr);
        return Err(format!("mksquashfs failed: {last}"));
    }
    Ok(())
}

fn write_sif(path: &Path, squash: &Path, json: &[JsonObject]) -> Result<(), Error> {
    let f = std::fs::File::open(squash).map_err(|e| ImageError::Build {
        out: path.to_owned(),
        reason: format!("opening {}: {}", squash.display(), super::io_reason(&e)),
    })?;
    let mut w = Writer::create(path, &CreateOptions::new())?;
    w.add(
        ObjectInput::partition(FsType::Squashfs, PartType::PrimSys, Arch::host(), f)
            .name("rootfs.squashfs"),
    )?;
    for (name, bytes) in json {
        w.add(ObjectInput::generic_json(bytes.as_slice()).name(name.clone()))?;
    }
    w.finish()?;
    Ok(())
}
