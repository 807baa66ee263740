//! `docker://[HOST[:PORT]/]REPO[:TAG|@sha256:…]`: an image in a registry,
//! fetched through the same client and session as `oras://`
//! ([`crate::registry`]). Blobs go to the cache by digest, checked while
//! they stream and renamed into place only when they match.

use std::io::Write;

use futures_util::StreamExt;
use oci_spec::image::ImageConfiguration;

use super::{cache::Cache, LayerBlob, OciError, Options, Resolved};
use crate::registry::{self, Reference};

/// The registry a bare name (`alpine`, `user/app`) lives in.
pub const DOCKER_HUB: &str = "docker.io";

/// Manifest media types asked for (OCI and Docker, images and indexes).
const ACCEPT: [&str; 4] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// A parsed `docker://` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerRef(pub Reference);

impl DockerRef {
    /// Parses what follows `docker://`: a first segment with a `.` or `:`
    /// (or `localhost`) is the registry; otherwise Docker Hub, where a
    /// one-segment name is under `library/`.
    pub fn parse(rest: &str) -> Result<Self, String> {
        let (host, path) = match rest.split_once('/') {
            Some((h, p)) if h.contains('.') || h.contains(':') || h == "localhost" => {
                (h.to_owned(), p.to_owned())
            }
            _ if rest.contains('/') => (DOCKER_HUB.to_owned(), rest.to_owned()),
            _ => (DOCKER_HUB.to_owned(), format!("library/{rest}")),
        };
        Reference::parse(&format!("{}{host}/{path}", registry::reference::SCHEME))
            .map(DockerRef)
            .map_err(|e| match e {
                registry::RegistryError::BadReference { reason, .. } => reason.to_owned(),
                other => other.to_string(),
            })
    }

    /// The registry module's reference.
    pub fn to_registry(&self) -> Reference {
        self.0.clone()
    }
}

impl std::fmt::Display for DockerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.0;
        match &r.target {
            registry::reference::Target::Tag(t) => write!(f, "{}/{}:{t}", r.registry, r.repository),
            registry::reference::Target::Digest(d) => {
                write!(f, "{}/{}@{d}", r.registry, r.repository)
            }
        }
    }
}

/// The manifest (for the platform) and its digest, nothing else fetched.
async fn manifest(
    session: &registry::Session,
    r: &DockerRef,
    opts: &Options,
) -> Result<(oci_spec::image::ImageManifest, String), OciError> {
    let image = format!("docker://{r}");
    let (bytes, digest) = session
        .client
        .pull_manifest_raw(&session.oci, &session.auth, &ACCEPT)
        .await
        .map_err(|e| session.error("cannot read the manifest", e))?;
    let actual = super::sha256(&bytes);
    if r.0.digest().is_some_and(|pin| pin != actual) || actual != digest {
        return Err(OciError::Digest {
            what: format!("image {image}: manifest"),
            expected: r.0.digest().unwrap_or(&digest).to_owned(),
            actual,
        });
    }
    // An index: the platform's entry is fetched below (async), so the
    // synchronous picker only records which one it wants.
    let mut children = Vec::new();
    let first = super::pick_manifest(
        &image,
        bytes.to_vec(),
        digest.clone(),
        &opts.platform,
        &mut |d: &str| {
            children.push(d.to_owned());
            Err(OciError::Image {
                image: String::new(),
                reason: String::new(),
            })
        },
    );
    let Some(child) = children.pop() else {
        return first;
    };
    let oci = session.reference.with_digest(&child).to_oci();
    let (bytes, _) = session
        .client
        .pull_manifest_raw(&oci, &session.auth, &ACCEPT)
        .await
        .map_err(|e| session.error("cannot read the manifest", e))?;
    let mut fetch = |_: &str| -> Result<Vec<u8>, OciError> {
        Err(OciError::Image {
            image: image.clone(),
            reason: "indexes nested too deep".into(),
        })
    };
    let actual = super::sha256(&bytes);
    if actual != child {
        return Err(OciError::Digest {
            what: format!("image {image}: manifest"),
            expected: child,
            actual,
        });
    }
    super::pick_manifest(&image, bytes.to_vec(), child, &opts.platform, &mut fetch)
}

/// The digest of the platform's manifest of `r` (the images cache key).
pub fn manifest_key(r: &DockerRef, opts: &Options) -> Result<String, OciError> {
    let session = registry::Session::new(&opts.registry, &r.0)?;
    registry::block_on(async { manifest(&session, r, opts).await.map(|(_, d)| d) })?
}

/// Downloads what `r` needs that the cache lacks (or holds damaged).
pub fn resolve(r: &DockerRef, opts: &Options) -> Result<Resolved, OciError> {
    let cache = opts.cache.as_ref().ok_or_else(|| OciError::Image {
        image: format!("docker://{r}"),
        reason: "no cache directory (set XDG_CACHE_HOME)".into(),
    })?;
    let session = registry::Session::new(&opts.registry, &r.0)?;
    registry::block_on(async {
        let (m, key) = manifest(&session, r, opts).await?;
        let config_path = fetch_blob(&session, cache, m.config(), "config", false).await?;
        let config_bytes = super::read_small_blob(
            &config_path,
            m.config().digest().as_ref(),
            &format!("image docker://{r}: config"),
        )?;
        let config = ImageConfiguration::from_reader(config_bytes.as_slice()).map_err(|e| {
            OciError::Image {
                image: format!("docker://{r}"),
                reason: format!("config: {e}"),
            }
        })?;
        let mut layers = Vec::new();
        for l in m.layers() {
            let path = fetch_blob(&session, cache, l, "layer", opts.progress).await?;
            layers.push(LayerBlob {
                digest: l.digest().to_string(),
                path,
            });
        }
        Ok(Resolved {
            key,
            config_bytes,
            config,
            layers,
            _work: None,
        })
    })?
}

/// The cached blob, downloaded first when missing or damaged.
async fn fetch_blob(
    session: &registry::Session,
    cache: &Cache,
    d: &oci_spec::image::Descriptor,
    what: &str,
    progress: bool,
) -> Result<std::path::PathBuf, OciError> {
    let digest = d.digest().to_string();
    if let Some(p) = cache.verified_blob(&digest)? {
        return Ok(p);
    }
    let r = &session.reference;
    let dest = cache.blob_path(&digest)?;
    let mut tmp = cache.temp_file(super::cache::BLOBS)?;
    let size = d.size();
    let mut stream = session
        .client
        .pull_blob_stream(&session.oci, digest.as_str())
        .await
        .map_err(|e| session.error("cannot download a blob", e))?;
    let bar = super::semantics::bar(progress, size, digest.get(7..19).unwrap_or("blob"));
    let mut hasher = sha2::Sha256::default();
    let mut written = 0u64;
    let too_big = |n| OciError::Image {
        image: format!("docker://{}/{}", r.registry, r.repository),
        reason: format!("{what} {digest} has {n} bytes or more, the manifest says {size}"),
    };
    let mut failed = None;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                failed = Some(e);
                break;
            }
        };
        written += chunk.len() as u64;
        if written > size {
            return Err(too_big(written));
        }
        sha2::Digest::update(&mut hasher, &chunk);
        tmp.write_all(&chunk).map_err(super::io_err(tmp.path()))?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let actual = format!(
        "sha256:{}",
        super::unpack::hex(&sha2::Digest::finalize(hasher))
    );
    if actual != digest && (failed.is_none() || written == size) {
        return Err(OciError::Digest {
            what: format!("registry {}: {}: {what} {digest}", r.registry, r.repository),
            expected: digest,
            actual,
        });
    }
    if let Some(e) = failed {
        return Err(session
            .error(
                "download interrupted",
                oci_client::errors::OciDistributionError::IoError(e),
            )
            .into());
    }
    if written != size {
        return Err(too_big(written));
    }
    tmp.as_file()
        .sync_all()
        .map_err(super::io_err(tmp.path()))?;
    tmp.persist(&dest)
        .map_err(|e| super::io_err(&dest)(e.error))?;
    Ok(dest)
}
