//! `docker-archive:FILE`: a `docker save` (or `skopeo copy … docker-archive:`)
//! tarball: `manifest.json` names the config and the layer tars by path.
//! The archive's files are copied out once into a private temp dir (each
//! hashed on the way), then resolved like any other source: the config is
//! keyed by its digest and each layer is checked against the config's
//! `rootfs.diff_ids`.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use oci_spec::image::ImageConfiguration;

use super::unpack::HashingReader;
use super::{io_err, LayerBlob, OciError, Resolved};

#[derive(serde::Deserialize)]
struct Entry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// A path inside the archive, `.`/`/` dropped; `..` refused.
fn clean(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Resolves `docker-archive:FILE`, copying its files into a temp dir under
/// `work_parent`.
pub fn resolve(file: &Path, work_parent: &Path) -> Result<Resolved, OciError> {
    use std::os::unix::fs::PermissionsExt;
    let image = format!("docker-archive:{}", file.display());
    let bad = |reason: String| OciError::Image {
        image: image.clone(),
        reason,
    };
    let f = super::open_blob(file)?;
    let work = tempfile::Builder::new()
        .prefix(".vessel-archive-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(work_parent)
        .map_err(io_err(work_parent))?;
    // name -> (copy, sha256); name -> symlink target (docker save links
    // repeated layers).
    let mut files: HashMap<PathBuf, (PathBuf, String)> = HashMap::new();
    let mut links: HashMap<PathBuf, PathBuf> = HashMap::new();
    let mut ar = tar::Archive::new(f);
    let entries = ar
        .entries()
        .map_err(|e| bad(format!("not a tar archive: {}", super::io_reason(&e))))?;
    for (i, entry) in entries.enumerate() {
        let mut entry =
            entry.map_err(|e| bad(format!("damaged archive: {}", super::io_reason(&e))))?;
        let Some(name) = entry.path().ok().and_then(|p| clean(&p)) else {
            continue;
        };
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let copy = work.path().join(i.to_string());
                let mut out = std::fs::File::create_new(&copy).map_err(io_err(&copy))?;
                let mut h = HashingReader::new(&mut entry);
                std::io::copy(&mut h, &mut out).map_err(|e| {
                    bad(format!(
                        "reading {}: {}",
                        name.display(),
                        super::io_reason(&e)
                    ))
                })?;
                files.insert(name, (copy, h.digest()));
            }
            tar::EntryType::Symlink => {
                if let Ok(Some(t)) = entry.link_name() {
                    let dir = name.parent().unwrap_or(Path::new(""));
                    if let Some(t) = clean(&dir.join(t)) {
                        links.insert(name, t);
                    }
                }
            }
            _ => {}
        }
    }
    let lookup = |name: &str| -> Result<&(PathBuf, String), OciError> {
        let mut p = clean(Path::new(name)).ok_or_else(|| bad(format!("bad path {name:?}")))?;
        for _ in 0..8 {
            if let Some(f) = files.get(&p) {
                return Ok(f);
            }
            match links.get(&p) {
                Some(t) => p = t.clone(),
                None => break,
            }
        }
        Err(bad(format!("{name:?} is not in the archive")))
    };
    let (manifest_path, _) = lookup("manifest.json")?;
    let mut text = Vec::new();
    super::open_blob(manifest_path)?
        .take(16 << 20)
        .read_to_end(&mut text)
        .map_err(io_err(manifest_path))?;
    let entries: Vec<Entry> =
        serde_json::from_slice(&text).map_err(|e| bad(format!("manifest.json: {e}")))?;
    let entry = match entries.as_slice() {
        [one] => one,
        [] => return Err(bad("manifest.json names no image".into())),
        _ => return Err(bad("the archive holds several images".into())),
    };
    let (config_path, config_digest) = lookup(&entry.config)?;
    let config_bytes = super::read_small_blob(config_path, config_digest, &image)?;
    let config = ImageConfiguration::from_reader(config_bytes.as_slice())
        .map_err(|e| bad(format!("config: {e}")))?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != entry.layers.len() {
        return Err(bad(format!(
            "{} layers, the config names {}",
            entry.layers.len(),
            diff_ids.len()
        )));
    }
    let mut layers = Vec::new();
    for (name, diff_id) in entry.layers.iter().zip(diff_ids) {
        let (path, digest) = lookup(name)?;
        // Layers of a docker save are uncompressed: their digest is the
        // diff id the config names.
        if digest != diff_id {
            return Err(OciError::Digest {
                what: format!("{image}: layer {name}"),
                expected: diff_id.clone(),
                actual: digest.clone(),
            });
        }
        layers.push(LayerBlob {
            digest: digest.clone(),
            path: path.clone(),
        });
    }
    Ok(Resolved {
        key: config_digest.clone(),
        config_bytes,
        config,
        layers,
        _work: Some(work),
    })
}
