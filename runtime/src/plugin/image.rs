//! Plugin images: a SIF with, in object group 1, `plugin.so` (Partition, fs
//! Raw, part type Data, arch of the build) then `plugin.manifest`
//! (GenericJSON), plus optional DSSE signatures linked to the group.

use std::fs::File;
use std::path::{Path, PathBuf};

use vessel_sif::{
    Arch, CreateOptions, DataType, FsType, Image, ObjectInput, PartType, SignatureKind,
    SignatureListing, Writer,
};

use super::manifest::Manifest;
use sha2::{Digest, Sha256};

use super::store::{PLUGIN_MANIFEST, PLUGIN_SO};

/// Upper bound for a manifest object: anything bigger is not ours.
const MAX_MANIFEST: u64 = 1 << 20;
/// Upper bound for a plugin library read into memory.
const MAX_LIBRARY: u64 = 512 << 20;

/// Why a file is not a valid plugin image.
#[derive(Debug, thiserror::Error)]
#[error("{path} is not a valid plugin: {reason}")]
pub struct PluginImageError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

/// A plugin image, opened and checked.
#[derive(Debug)]
pub struct PluginImage {
    /// The image file.
    pub path: PathBuf,
    /// The manifest it carries.
    pub manifest: Manifest,
    /// Object ID of `plugin.so`.
    pub library_id: u32,
    /// The architecture recorded for `plugin.so`.
    pub arch: Arch,
    /// Its signature objects (keyids, without verifying anything).
    pub signatures: Vec<SignatureListing>,
    image: Image<File>,
}

impl PluginImage {
    /// Opens `path` and checks it is a plugin image: the layout, a manifest
    /// that parses, and a library whose sha256 matches the manifest.
    pub fn open(path: &Path) -> Result<Self, PluginImageError> {
        let bad = |reason: String| PluginImageError {
            path: path.to_owned(),
            reason,
        };
        let image = Image::open(path).map_err(|e| bad(e.to_string()))?;
        let group = image.group_objects(1);
        let find = |name: &str| group.iter().find(|d| d.name() == name).copied();
        let so = find(PLUGIN_SO).ok_or_else(|| bad("no plugin.so object in group 1".into()))?;
        let part = so
            .partition()
            .filter(|p| so.data_type == DataType::Partition && p.fs == FsType::Raw)
            .ok_or_else(|| bad("plugin.so is not a raw partition".into()))?;
        let man = find(PLUGIN_MANIFEST)
            .filter(|d| d.data_type == DataType::GenericJson)
            .ok_or_else(|| bad("no plugin.manifest json object in group 1".into()))?;
        let bytes = image
            .read_object(man.id, MAX_MANIFEST)
            .map_err(|e| bad(format!("plugin.manifest: {e}")))?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("plugin.manifest: {e}")))?;
        let signatures = vessel_sif::list_signatures(&image).map_err(|e| bad(e.to_string()))?;
        let (library_id, arch) = (so.id, part.arch);
        let img = PluginImage {
            path: path.to_owned(),
            manifest,
            library_id,
            arch,
            signatures,
            image,
        };
        // Hash by streaming: inspecting an image never holds its library.
        let mut hasher = Sha256::new();
        let mut reader = img
            .image
            .object_reader(img.library_id)
            .map_err(|e| bad(format!("plugin.so: {e}")))?;
        std::io::copy(&mut reader, &mut hasher).map_err(|e| bad(format!("plugin.so: {e}")))?;
        let digest = super::loader::hex(&hasher.finalize());
        if digest != img.manifest.sha256 {
            return Err(bad(format!(
                "plugin.so sha256 {digest} does not match the manifest's {}",
                img.manifest.sha256
            )));
        }
        Ok(img)
    }

    /// The bytes of `plugin.so`.
    pub fn library(&self) -> Result<Vec<u8>, PluginImageError> {
        self.image
            .read_object(self.library_id, MAX_LIBRARY)
            .map_err(|e| PluginImageError {
                path: self.path.clone(),
                reason: format!("plugin.so: {e}"),
            })
    }

    /// Verifies the image's signatures against `keys`, reading through the
    /// same open file as every other read of this image.
    pub fn verify(
        &self,
        keys: &[ed25519_dalek::VerifyingKey],
    ) -> Result<vessel_sif::VerifyReport, vessel_sif::Error> {
        vessel_sif::verify_image(&self.image, keys)
    }

    /// Each keyid of the signatures linked to group 1, with whether it was
    /// verified by one of `keys` (a keyid is only ever claimed by an
    /// envelope; this checks the signature).
    pub fn checked_signers(
        &self,
        keys: &[ed25519_dalek::VerifyingKey],
    ) -> Result<Vec<(String, bool)>, crate::Error> {
        let report = self
            .verify(keys)
            .map_err(crate::sif_file::in_sif(&self.path))?;
        let mut out: Vec<(String, bool)> = Vec::new();
        for sig in report
            .groups
            .iter()
            .filter(|g| g.group == 1)
            .flat_map(|g| &g.signatures)
        {
            let ok = sig.verdict == vessel_sif::Verdict::Verified;
            let kids = if ok { &sig.verified_by } else { &sig.keyids };
            for k in kids {
                match out.iter_mut().find(|(o, _)| o == k) {
                    Some(e) => e.1 |= ok,
                    None => out.push((k.clone(), ok)),
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// keyids of the DSSE signatures linked to group 1.
    pub fn signer_keyids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .signatures
            .iter()
            .filter(|s| s.link == vessel_sif::Link::Group(1))
            .flat_map(|s| match &s.kind {
                SignatureKind::Dsse { keyids } => keyids.clone(),
                _ => Vec::new(),
            })
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

/// Writes a plugin image at `out` from a built library and its manifest.
/// The image is written to a temp file beside `out` and renamed, so a failed
/// write never leaves a half image behind. It is reproducible: every
/// timestamp is `time` (the build's `SOURCE_DATE_EPOCH`) and the image id is
/// derived from the manifest (which holds the library's sha256), so the
/// same build gives the same bytes.
pub fn write(
    out: &Path,
    library: &Path,
    manifest: &Manifest,
    time: i64,
) -> Result<(), crate::Error> {
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".vessel-plugin-")
        .suffix(".sif")
        .tempfile_in(dir)
        .map_err(|e| io(dir, e))?;
    let json =
        serde_json::to_vec_pretty(manifest).map_err(|e| io(out, std::io::Error::other(e)))?;
    let so = File::open(library).map_err(|e| io(library, e))?;
    let opts = CreateOptions {
        uuid: Some(derived_uuid(&json)),
        time: Some(time),
        ..CreateOptions::new()
    };
    let mut w = Writer::create(tmp.path(), &opts)?;
    w.add(
        ObjectInput::partition(FsType::Raw, PartType::Data, Arch::host(), so)
            .name(PLUGIN_SO)
            .group(1),
    )?;
    w.add(
        ObjectInput::generic_json(json.as_slice())
            .name(PLUGIN_MANIFEST)
            .group(1),
    )?;
    w.finish()?;
    tmp.persist(out).map_err(|e| io(out, e.error))?;
    Ok(())
}

/// An RFC 9562 version-8 (custom) UUID made of the manifest's sha256.
fn derived_uuid(manifest_json: &[u8]) -> [u8; 16] {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(manifest_json);
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    id[6] = (id[6] & 0x0f) | 0x80;
    id[8] = (id[8] & 0x3f) | 0x80;
    id
}

fn io(path: &Path, source: std::io::Error) -> crate::Error {
    super::PluginError::Io {
        path: path.to_owned(),
        source,
    }
    .into()
}
