//! OCI and Docker images to SIF: `oci:DIR[:TAG]` (an OCI image layout),
//! `docker://[HOST[:PORT]/]REPO[:TAG|@sha256:…]` (a registry) and
//! `docker-archive:FILE` (a `docker save` tarball).
//!
//! Each source is resolved to one image manifest (the platform picked from
//! an index), its config and its layer blobs, every one checked against its
//! digest; the layers are applied in order to a fresh rootfs
//! ([`unpack::Rootfs`], which never writes outside it), the image config is
//! written where Apptainer's images keep it ([`semantics`]), and the rootfs
//! is packed into a SIF by the ordinary builder, with the labels and the
//! image config as JSON.Generic objects.

use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageManifest};

pub mod archive;
pub mod cache;
pub mod remote;
pub mod semantics;
pub mod unpack;

/// Name of the SIF object holding the image's labels (JSON.Generic).
pub const LABELS_OBJECT: &str = "labels.json";
/// Name of the SIF object holding the OCI image config (JSON.Generic).
pub const CONFIG_OBJECT: &str = "oci-config.json";
/// The annotation an OCI layout names its tags with.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Errors turning an OCI/Docker image into a SIF.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// A source reference that cannot be parsed.
    #[error("image source {source_ref:?}: {reason}")]
    BadSource {
        /// What was given.
        source_ref: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An OCI layout, archive or manifest that is not usable.
    #[error("image {image}: {reason}")]
    Image {
        /// The source.
        image: String,
        /// What is wrong.
        reason: String,
    },
    /// A blob whose bytes are not the ones its digest names.
    #[error("{what}: content has digest {actual}, expected {expected}; nothing was written")]
    Digest {
        /// Which blob.
        what: String,
        /// The digest named by the manifest.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// A layer that cannot be applied (a path escape, a damaged archive).
    #[error("layer {digest}: {reason}")]
    Layer {
        /// The layer's digest.
        digest: String,
        /// Why, on one line.
        reason: String,
    },
    /// An I/O error on a local file (rendered here, lowercase, without
    /// the "(os error N)" suffix, so it is not a `#[source]`).
    #[error("{path}: {}", crate::image::io_reason(error))]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// Talking to the registry failed.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// Packing the rootfs into a SIF failed.
    #[error(transparent)]
    Build(Box<crate::Error>),
}

impl From<crate::Error> for OciError {
    fn from(e: crate::Error) -> Self {
        OciError::Build(Box::new(e))
    }
}

pub(crate) fn io_reason(e: &std::io::Error) -> String {
    crate::image::io_reason(e)
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> OciError + '_ {
    move |error| OciError::Io {
        path: path.to_owned(),
        error,
    }
}

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An OCI image layout directory and an optional tag.
    Layout {
        /// The layout directory.
        dir: PathBuf,
        /// The tag (`org.opencontainers.image.ref.name`).
        tag: Option<String>,
    },
    /// A registry image.
    Docker(remote::DockerRef),
    /// A `docker save` tarball.
    Archive(PathBuf),
}

impl Source {
    /// Whether `s` names an OCI/Docker source rather than a file.
    pub fn is_source(s: &str) -> bool {
        s.starts_with("oci:") || s.starts_with("docker://") || s.starts_with("docker-archive:")
    }

    /// Parses `oci:DIR[:TAG]`, `docker://REF` or `docker-archive:FILE`.
    pub fn parse(s: &str) -> Result<Self, OciError> {
        let bad = |reason: &str| OciError::BadSource {
            source_ref: s.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(rest) = s.strip_prefix("docker://") {
            return remote::DockerRef::parse(rest)
                .map(Source::Docker)
                .map_err(|r| bad(&r));
        }
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            if rest.is_empty() {
                return Err(bad("no file after docker-archive:"));
            }
            return Ok(Source::Archive(PathBuf::from(rest)));
        }
        if let Some(rest) = s.strip_prefix("oci:") {
            if rest.is_empty() {
                return Err(bad("no directory after oci:"));
            }
            // DIR:TAG, unless the whole thing is a directory (a ':' in it).
            if let Some((dir, tag)) = rest.rsplit_once(':') {
                if !tag.contains('/') && !Path::new(rest).is_dir() && !dir.is_empty() {
                    if tag.is_empty() || tag.len() > 128 {
                        return Err(bad("bad tag"));
                    }
                    return Ok(Source::Layout {
                        dir: PathBuf::from(dir),
                        tag: Some(tag.to_owned()),
                    });
                }
            }
            return Ok(Source::Layout {
                dir: PathBuf::from(rest),
                tag: None,
            });
        }
        Err(bad(
            "not oci:DIR[:TAG], docker://REF or docker-archive:FILE",
        ))
    }

    /// A file name for `vessel pull` without an output: `NAME_TAG.sif`.
    pub fn default_file_name(&self) -> String {
        let base = |p: &Path| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "image".into())
        };
        match self {
            Source::Docker(r) => r.to_registry().default_file_name(),
            Source::Layout { dir, tag } => {
                format!("{}_{}.sif", base(dir), tag.as_deref().unwrap_or("latest"))
            }
            Source::Archive(f) => {
                let b = base(f);
                let stem = b.strip_suffix(".tar").unwrap_or(&b);
                format!("{stem}.sif")
            }
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Layout { dir, tag: Some(t) } => write!(f, "oci:{}:{t}", dir.display()),
            Source::Layout { dir, tag: None } => write!(f, "oci:{}", dir.display()),
            Source::Docker(r) => write!(f, "docker://{r}"),
            Source::Archive(p) => write!(f, "docker-archive:{}", p.display()),
        }
    }
}

/// An OS/architecture[/variant] to pick from an image index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, …
    pub arch: String,
    /// `v8`, … (only compared when given).
    pub variant: Option<String>,
}

impl Default for Platform {
    /// The host's (linux/amd64 on x86_64).
    fn default() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Self {
            os: "linux".into(),
            arch: arch.into(),
            variant: None,
        }
    }
}

impl Platform {
    /// Parses `OS/ARCH[/VARIANT]`.
    pub fn parse(s: &str) -> Result<Self, OciError> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok =
            |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Self {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: None,
            }),
            [os, arch, v] if ok(os) && ok(arch) && ok(v) => Ok(Self {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: Some(v.to_string()),
            }),
            _ => Err(OciError::BadSource {
                source_ref: s.to_owned(),
                reason: "platform is not OS/ARCH[/VARIANT]".into(),
            }),
        }
    }

    fn matches(&self, d: &Descriptor) -> bool {
        let Some(p) = d.platform() else { return false };
        p.os().to_string() == self.os
            && p.architecture().to_string() == self.arch
            && self
                .variant
                .as_ref()
                .is_none_or(|v| p.variant().as_deref() == Some(v.as_str()))
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// How to fetch and build.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The platform to pick from an index.
    pub platform: Platform,
    /// The platform was asked for (`--platform`): an image of another one
    /// is refused even when it has no index to pick from.
    pub strict_platform: bool,
    /// How to reach registries.
    pub registry: crate::registry::Options,
    /// The cache (blobs by digest, built SIFs by manifest digest).
    pub cache: Option<cache::Cache>,
    /// Show progress bars on a terminal.
    pub progress: bool,
}

/// One layer blob ready to apply.
#[derive(Debug)]
pub struct LayerBlob {
    /// Its digest (`sha256:HEX`), checked while it is applied.
    pub digest: String,
    /// Where its bytes are.
    pub path: PathBuf,
}

/// A source resolved to one image whose blobs are on local disk.
#[derive(Debug)]
pub struct Resolved {
    /// The manifest digest (the cache key of the built SIF).
    pub key: String,
    /// The image config's bytes (digest checked).
    pub config_bytes: Vec<u8>,
    /// The parsed image config.
    pub config: ImageConfiguration,
    /// The layers, lowest first.
    pub layers: Vec<LayerBlob>,
    /// A temp dir the blobs live in, removed when this is dropped.
    pub _work: Option<tempfile::TempDir>,
}

/// sha256 of `bytes` as `sha256:HEX`.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", unpack::hex(&sha2::Sha256::digest(bytes)))
}

/// Checks that `digest` is `sha256:` and 64 lowercase hex digits (the only
/// digests used as file names).
pub fn check_digest(digest: &str) -> Result<&str, String> {
    match digest.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => {
            Ok(h)
        }
        _ => Err(format!("unsupported digest {digest:?}")),
    }
}

/// Picks the image manifest from `bytes` (a manifest, or an index whose
/// entry for `platform` is fetched with `fetch(digest)`). Returns it with
/// its digest.
pub(crate) fn pick_manifest(
    image: &str,
    bytes: Vec<u8>,
    digest: String,
    platform: &Platform,
    fetch: &mut dyn FnMut(&str) -> Result<Vec<u8>, OciError>,
) -> Result<(ImageManifest, String), OciError> {
    let bad = |reason: String| OciError::Image {
        image: image.to_owned(),
        reason,
    };
    let (mut bytes, mut digest) = (bytes, digest);
    // An index may point at another index (nested), but not forever.
    for _ in 0..4 {
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("manifest {digest} is not json: {e}")))?;
        if v.get("manifests").is_none() {
            let m = ImageManifest::from_reader(bytes.as_slice())
                .map_err(|e| bad(format!("manifest {digest}: {e}")))?;
            return Ok((m, digest));
        }
        let index = oci_spec::image::ImageIndex::from_reader(bytes.as_slice())
            .map_err(|e| bad(format!("index {digest}: {e}")))?;
        let found = index.manifests().iter().find(|d| platform.matches(d));
        let Some(d) = found else {
            let have: Vec<String> = index
                .manifests()
                .iter()
                .filter_map(|d| d.platform().as_ref())
                .map(|p| format!("{}/{}", p.os(), p.architecture()))
                .collect();
            return Err(bad(format!(
                "no manifest for {platform} (has: {})",
                if have.is_empty() {
                    "none".into()
                } else {
                    have.join(", ")
                }
            )));
        };
        digest = d.digest().to_string();
        bytes = fetch(&digest)?;
        let actual = sha256(&bytes);
        if actual != digest {
            return Err(OciError::Digest {
                what: format!("image {image}: manifest"),
                expected: digest,
                actual,
            });
        }
    }
    Err(bad("indexes nested too deep".into()))
}

/// Reads `DIR/blobs/sha256/HEX` (not following a symlink at the blob).
fn layout_blob_path(dir: &Path, digest: &str) -> Result<PathBuf, String> {
    let hex = check_digest(digest)?;
    Ok(dir.join("blobs/sha256").join(hex))
}

/// Opens a blob file without following a symlink at its last component.
pub(crate) fn open_blob(path: &Path) -> Result<std::fs::File, OciError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(io_err(path))
}

/// Reads a small blob (manifest, config), at most 16 MiB, checked against
/// `digest`.
pub(crate) fn read_small_blob(path: &Path, digest: &str, what: &str) -> Result<Vec<u8>, OciError> {
    use std::io::Read;
    let mut bytes = Vec::new();
    open_blob(path)?
        .take(16 << 20)
        .read_to_end(&mut bytes)
        .map_err(io_err(path))?;
    let actual = sha256(&bytes);
    if actual != digest {
        return Err(OciError::Digest {
            what: what.to_owned(),
            expected: digest.to_owned(),
            actual,
        });
    }
    Ok(bytes)
}

/// Resolves `oci:DIR[:TAG]`.
pub fn resolve_layout(
    dir: &Path,
    tag: Option<&str>,
    platform: &Platform,
) -> Result<Resolved, OciError> {
    let image = format!("oci:{}", dir.display());
    let bad = |reason: String| OciError::Image {
        image: image.clone(),
        reason,
    };
    let index_path = dir.join("index.json");
    let index = oci_spec::image::ImageIndex::from_reader(open_blob(&index_path)?)
        .map_err(|e| bad(format!("index.json: {e}")))?;
    fn tagged(d: &Descriptor) -> Option<&str> {
        d.annotations()
            .as_ref()
            .and_then(|a| a.get(REF_NAME))
            .map(String::as_str)
    }
    let entry = match tag {
        Some(t) => index
            .manifests()
            .iter()
            .find(|d| tagged(d) == Some(t))
            .ok_or_else(|| bad(format!("no tag {t:?}")))?,
        None => match index.manifests().as_slice() {
            [one] => one,
            [] => return Err(bad("the layout holds no image".into())),
            many => many.iter().find(|d| platform.matches(d)).ok_or_else(|| {
                bad("the layout holds several images; name one with oci:DIR:TAG".into())
            })?,
        },
    };
    let digest = entry.digest().to_string();
    let path = layout_blob_path(dir, &digest).map_err(&bad)?;
    let bytes = read_small_blob(&path, &digest, &format!("{image}: manifest"))?;
    let mut fetch = |d: &str| -> Result<Vec<u8>, OciError> {
        let p = layout_blob_path(dir, d).map_err(&bad)?;
        read_small_blob(&p, d, &format!("{image}: manifest"))
    };
    let (manifest, key) = pick_manifest(&image, bytes, digest, platform, &mut fetch)?;
    let config_digest = manifest.config().digest().to_string();
    let config_path = layout_blob_path(dir, &config_digest).map_err(&bad)?;
    let config_bytes = read_small_blob(&config_path, &config_digest, &format!("{image}: config"))?;
    let config = ImageConfiguration::from_reader(config_bytes.as_slice())
        .map_err(|e| bad(format!("config: {e}")))?;
    let layers = manifest
        .layers()
        .iter()
        .map(|l| {
            let digest = l.digest().to_string();
            Ok(LayerBlob {
                path: layout_blob_path(dir, &digest).map_err(&bad)?,
                digest,
            })
        })
        .collect::<Result<Vec<_>, OciError>>()?;
    Ok(Resolved {
        key,
        config_bytes,
        config,
        layers,
        _work: None,
    })
}

/// Resolves any source to local, digest-named blobs (a registry's are
/// downloaded into the cache).
pub fn resolve(source: &Source, opts: &Options) -> Result<Resolved, OciError> {
    let resolved = resolve_any(source, opts)?;
    let (os, arch) = (
        resolved.config.os().to_string(),
        resolved.config.architecture().to_string(),
    );
    if opts.strict_platform && (os != opts.platform.os || arch != opts.platform.arch) {
        return Err(OciError::Image {
            image: source.to_string(),
            reason: format!("the image is {os}/{arch}, not {}", opts.platform),
        });
    }
    Ok(resolved)
}

fn resolve_any(source: &Source, opts: &Options) -> Result<Resolved, OciError> {
    match source {
        Source::Layout { dir, tag } => resolve_layout(dir, tag.as_deref(), &opts.platform),
        Source::Docker(r) => remote::resolve(r, opts),
        Source::Archive(f) => {
            let parent = match &opts.cache {
                Some(c) => c.kind_dir(cache::BLOBS)?,
                None => std::env::temp_dir(),
            };
            archive::resolve(f, &parent)
        }
    }
}

/// Applies `resolved`'s layers and config to a fresh rootfs in a private
/// temp dir inside `work_parent`, and packs it as a SIF at `out`.
pub fn assemble(
    resolved: &Resolved,
    out: &Path,
    key: Option<&Path>,
    force: bool,
    work_parent: &Path,
    progress: bool,
) -> Result<(), OciError> {
    use std::os::unix::fs::PermissionsExt;
    let work = tempfile::Builder::new()
        .prefix(".vessel-oci-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(work_parent)
        .map_err(io_err(work_parent))?;
    let rootdir = work.path().join("rootfs");
    std::fs::create_dir(&rootdir).map_err(io_err(&rootdir))?;
    let rootfs = unpack::Rootfs::open(&rootdir)?;
    let bar = semantics::bar(progress, resolved.layers.len() as u64, "unpacking");
    for layer in &resolved.layers {
        tracing::debug!(digest = %layer.digest, "applying layer");
        let f = open_blob(&layer.path)?;
        rootfs.apply_layer(f, &layer.digest)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    semantics::write(&rootfs, &resolved.config)?;
    let objects = vec![
        (
            LABELS_OBJECT.to_owned(),
            semantics::labels_json(&resolved.config).into_bytes(),
        ),
        (CONFIG_OBJECT.to_owned(), resolved.config_bytes.clone()),
    ];
    crate::image::build::build_sif_with(out, &rootdir, key, force, &objects)?;
    // Unprivileged builds keep every dir owner-writable, so the work dir
    // always goes away; as root nothing stops it.
    work.close().map_err(io_err(work_parent))?;
    Ok(())
}

/// `vessel build OUT SOURCE` / `vessel pull OUT SOURCE`: builds the SIF at
/// `out` from `source`.
pub fn build(
    source: &Source,
    out: &Path,
    key: Option<&Path>,
    force: bool,
    opts: &Options,
) -> Result<(), OciError> {
    if std::fs::symlink_metadata(out).is_ok() && !force {
        return Err(OciError::Image {
            image: out.display().to_string(),
            reason: "already exists (use --force to replace it)".into(),
        });
    }
    let resolved = resolve(source, opts)?;
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    assemble(&resolved, out, key, force, parent, opts.progress)
}

/// The cached SIF for `source` (`exec`/`run`/`shell docker://…`): built
/// once per manifest digest under the images cache, behind a lock so
/// concurrent callers build it once; a damaged entry is rebuilt.
pub fn cached_image(source: &Source, opts: &Options) -> Result<PathBuf, OciError> {
    let cache = opts.cache.as_ref().ok_or_else(|| OciError::Image {
        image: source.to_string(),
        reason: "no cache directory (set XDG_CACHE_HOME)".into(),
    })?;
    // A registry image's key costs one manifest request; a local source
    // is resolved (cheaply for a layout) to learn it.
    let (key, mut resolved) = match source {
        Source::Docker(r) => (remote::manifest_key(r, opts)?, None),
        other => {
            let res = resolve(other, opts)?;
            (res.key.clone(), Some(res))
        }
    };
    let path = cache.image_path(&key)?;
    if usable_image(&path) {
        return Ok(path);
    }
    let _lock = cache.lock(cache::IMAGES, check_digest(&key).unwrap_or("image"))?;
    if usable_image(&path) {
        // Another builder finished while this one waited.
        return Ok(path);
    }
    let resolved = match resolved.take() {
        Some(r) => r,
        None => resolve(source, opts)?,
    };
    let images = cache.kind_dir(cache::IMAGES)?;
    tracing::info!("building {source} ({key}) into the cache");
    assemble(&resolved, &path, None, true, &images, opts.progress)?;
    Ok(path)
}

/// A cache entry that opens as a SIF with a sound squashfs partition and
/// the image config object (so a truncated or foreign file is rebuilt).
fn usable_image(path: &Path) -> bool {
    crate::image::Image::open(path).is_ok() && sif_object(path, CONFIG_OBJECT).is_some()
}

/// The bytes of the JSON.Generic object `name` of the SIF at `path`.
pub fn sif_object(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::io::Read;
    let img = vessel_sif::Image::open(path).ok()?;
    let d = img
        .descriptors()
        .find(|d| d.data_type == vessel_sif::DataType::GenericJson && d.name() == name)?;
    let mut r = img.object_reader(d.id).ok()?;
    let mut bytes = Vec::new();
    r.by_ref().take(16 << 20).read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

/// The `WORKDIR` of a SIF built from an OCI image (`vessel run`'s default
/// working directory), from the image config stored in it.
pub fn image_workdir(path: &Path) -> Option<String> {
    semantics::workdir(&sif_object(path, CONFIG_OBJECT)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse() {
        assert_eq!(
            Source::parse("oci:/x/layout:v1").unwrap(),
            Source::Layout {
                dir: "/x/layout".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            Source::parse("oci:rel").unwrap(),
            Source::Layout {
                dir: "rel".into(),
                tag: None
            }
        );
        let Source::Docker(r) = Source::parse("docker://alpine").unwrap() else {
            panic!()
        };
        assert_eq!(r.to_string(), "docker.io/library/alpine:latest");
        let Source::Docker(r) = Source::parse("docker://127.0.0.1:5000/a/b:t").unwrap() else {
            panic!()
        };
        assert_eq!(r.to_string(), "127.0.0.1:5000/a/b:t");
        assert!(Source::parse("docker://").is_err());
        assert!(Source::parse("oci:").is_err());
        assert!(Source::parse("nothing").is_err());
    }

    #[test]
    fn the_platform_is_picked_from_an_index() {
        let m_arm = br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":1},"layers":[]}"#.to_vec();
        // Another manifest (another config digest), so the digests differ.
        let m_amd = String::from_utf8_lossy(&m_arm)
            .replace("1111", "2222")
            .into_bytes();
        let (da, dm) = (sha256(&m_arm), sha256(&m_amd));
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[
            {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{da}","size":1,"platform":{{"os":"linux","architecture":"arm64"}}}},
            {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{dm}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#
        );
        let mut fetch = |d: &str| -> Result<Vec<u8>, OciError> {
            Ok(if d == da {
                m_arm.clone()
            } else {
                m_amd.clone()
            })
        };
        let amd = Platform::parse("linux/amd64").unwrap();
        let (_, got) = pick_manifest(
            "t",
            index.clone().into_bytes(),
            "x".into(),
            &amd,
            &mut fetch,
        )
        .unwrap();
        assert_eq!(got, dm);
        let arm = Platform::parse("linux/arm64").unwrap();
        let (_, got) = pick_manifest(
            "t",
            index.clone().into_bytes(),
            "x".into(),
            &arm,
            &mut fetch,
        )
        .unwrap();
        assert_eq!(got, da);
        let s390 = Platform::parse("linux/s390x").unwrap();
        let e = pick_manifest("t", index.into_bytes(), "x".into(), &s390, &mut fetch)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no manifest for linux/s390x (has: linux/arm64, linux/amd64)"),
            "{e}"
        );
    }
}
