//! Moving the SIF bytes: push streams the file in one PUT; pull streams
//! the layer into a private temp file beside the destination, hashing while
//! it writes, and renames it into place only when size and digest match.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use sha2::{Digest as _, Sha256};
use tracing::{debug, info};

use super::{
    block_on, io_err, Options, Reference, RegistryError, Session, OCI_MANIFEST_MEDIA_TYPE,
    SIF_CONFIG, SIF_CONFIG_MEDIA_TYPE, SIF_LAYER_MEDIA_TYPE, TITLE_ANNOTATION,
};

/// Read and write size for streaming (bounded memory whatever the image size).
const CHUNK: usize = 1 << 20;

/// What a push stored.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The manifest's digest (pull `@` this to get exactly these bytes).
    pub digest: String,
    /// The SIF layer's digest.
    pub layer_digest: String,
    /// The SIF's size in bytes.
    pub size: u64,
}

/// How a pull ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullOutcome {
    /// The file was written.
    Written,
    /// The destination already held exactly these bytes (e.g. a concurrent
    /// pull of the same image won the race); it was left as it is.
    AlreadyThere,
}

/// What a pull fetched.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// Where the image is.
    pub path: PathBuf,
    /// The manifest's digest.
    pub digest: String,
    /// The SIF layer's digest (`sha256:` of the file's bytes).
    pub layer_digest: String,
    /// The size in bytes.
    pub size: u64,
    /// Whether the file was written or already there.
    pub outcome: PullOutcome,
}

/// A progress bar that appears only on a terminal and only once a transfer
/// has taken a second, so quick transfers and logs stay quiet.
struct Progress {
    bar: ProgressBar,
    start: Instant,
    armed: bool,
}

impl Progress {
    fn new(enabled: bool, len: u64, what: &str) -> Self {
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden());
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ) {
            bar.set_style(style);
        }
        bar.set_message(what.to_owned());
        Self {
            bar,
            start: Instant::now(),
            armed: enabled && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        }
    }

    fn inc(&mut self, n: u64) {
        self.bar.inc(n);
        if self.armed && self.start.elapsed() > Duration::from_secs(1) {
            self.armed = false;
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// `sha256:<hex>` of a file, read in bounded chunks.
fn file_digest(f: &mut File, path: &Path) -> Result<(String, u64), RegistryError> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(io_err(path))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((format!("sha256:{}", hex(&h.finalize())), n))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

/// Pushes the SIF at `file` to `r` (which must name a tag) with
/// `annotations` on the manifest.
pub fn push(
    file: &Path,
    r: &Reference,
    annotations: BTreeMap<String, String>,
    opts: &Options,
) -> Result<Pushed, RegistryError> {
    let Some(_tag) = r.tag() else {
        return Err(RegistryError::BadReference {
            reference: r.to_string(),
            reason: "a push needs a tag, not a digest",
        });
    };
    let mut f = File::open(file).map_err(io_err(file))?;
    if !f.metadata().map_err(io_err(file))?.is_file() {
        return Err(RegistryError::Io {
            path: file.to_owned(),
            source: std::io::Error::other("not a regular file"),
        });
    }
    // The digest has to be known before the upload (it names the blob);
    // the file is read twice rather than held in memory.
    let (layer_digest, size) = file_digest(&mut f, file)?;
    let title = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image.sif".into());
    let session = Session::new(opts, r)?;
    let config_digest = sha256_digest(SIF_CONFIG);
    let manifest = OciImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST_MEDIA_TYPE.into()),
        config: OciDescriptor {
            media_type: SIF_CONFIG_MEDIA_TYPE.into(),
            digest: config_digest.clone(),
            size: SIF_CONFIG.len() as i64,
            ..Default::default()
        },
        layers: vec![OciDescriptor {
            media_type: SIF_LAYER_MEDIA_TYPE.into(),
            digest: layer_digest.clone(),
            size: size as i64,
            annotations: Some(BTreeMap::from([(TITLE_ANNOTATION.to_owned(), title)])),
            ..Default::default()
        }],
        subject: None,
        artifact_type: None,
        annotations: (!annotations.is_empty()).then_some(annotations),
    };
    let body = serde_json::to_vec(&manifest).map_err(|e| RegistryError::NotSif {
        registry: r.registry.clone(),
        repository: r.repository.clone(),
        reason: e.to_string(),
    })?;
    let digest = sha256_digest(&body);
    let progress = opts.progress;
    block_on(async {
        let c = &session.client;
        c.store_auth_if_needed(session.oci.resolve_registry(), &session.auth)
            .await;
        let exists = c
            .blob_exists(&session.oci, &layer_digest)
            .await
            .unwrap_or(false);
        if exists {
            info!("{layer_digest} is already in the registry");
        } else {
            let mut f = File::open(file).map_err(io_err(file))?;
            let mut bar = Progress::new(progress, size, "pushing");
            let mut buf = vec![0u8; CHUNK];
            // A stream over the file in bounded chunks; the bar moves as
            // the body is consumed.
            let stream = futures_util::stream::poll_fn(move |_| {
                let item = match f.read(&mut buf) {
                    Ok(0) => {
                        bar.finish();
                        None
                    }
                    Ok(k) => {
                        bar.inc(k as u64);
                        Some(Ok(bytes::Bytes::copy_from_slice(&buf[..k])))
                    }
                    Err(e) => Some(Err(oci_client::errors::OciDistributionError::IoError(e))),
                };
                std::task::Poll::Ready(item)
            });
            c.push_blob_stream(&session.oci, stream, &layer_digest, Some(size))
                .await
                .map_err(|e| session.error("cannot upload the image", e))?;
        }
        if !c
            .blob_exists(&session.oci, &config_digest)
            .await
            .unwrap_or(false)
        {
            c.push_blob(&session.oci, SIF_CONFIG.to_vec(), &config_digest)
                .await
                .map_err(|e| session.error("cannot upload the config", e))?;
        }
        let ct = http::HeaderValue::from_static(OCI_MANIFEST_MEDIA_TYPE);
        c.push_manifest_raw(&session.oci, body, ct)
            .await
            .map_err(|e| session.error("cannot upload the manifest", e))?;
        Ok::<_, RegistryError>(())
    })??;
    debug!("pushed {} as {digest}", r);
    Ok(Pushed {
        digest,
        layer_digest,
        size,
    })
}

/// Pulls the SIF at `r` to `out` (a file path; its directory must exist).
/// With `force` an existing `out` is replaced (atomically). Without it, a
/// destination that already holds other bytes is an error, and one that
/// holds the same bytes is success without a write, so concurrent pulls of
/// one image into one place all succeed.
pub fn pull(
    r: &Reference,
    out: &Path,
    force: bool,
    opts: &Options,
) -> Result<Pulled, RegistryError> {
    let session = Session::new(opts, r)?;
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    if !force && std::fs::symlink_metadata(out).is_ok_and(|m| !m.is_file()) {
        // Checked again at the rename; this early check only saves a
        // download that would be refused.
        return Err(RegistryError::Exists(out.to_owned()));
    }
    let progress = opts.progress;
    block_on(async {
        let (_manifest, digest, layer) = session.sif_manifest().await?;
        let size = layer.size as u64;
        if !force && existing_digest(out).as_deref() == Some(layer.digest.as_str()) {
            // Already there, byte for byte: no download, no write.
            return Ok(Pulled {
                path: out.to_owned(),
                digest,
                layer_digest: layer.digest.clone(),
                size,
                outcome: PullOutcome::AlreadyThere,
            });
        }
        // O_EXCL, 0600, random name, in the destination's directory so the
        // final rename is atomic; removed on every early return.
        let tmp = tempfile::Builder::new()
            .prefix(".vessel-pull-")
            .tempfile_in(&dir)
            .map_err(io_err(&dir))?;
        let mut stream = blob_stream(&session, &layer).await?;
        let mut sink = Sink::new(tmp.as_file());
        let mut h = Sha256::new();
        let mut written = 0u64;
        let mut bar = Progress::new(progress, size, "pulling");
        let size_err = |actual| RegistryError::Size {
            registry: r.registry.clone(),
            repository: r.repository.clone(),
            expected: size,
            actual,
        };
        let digest_err = |actual| RegistryError::Digest {
            registry: r.registry.clone(),
            repository: r.repository.clone(),
            expected: layer.digest.clone(),
            actual,
        };
        let mut stream_error = None;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    stream_error = Some(e);
                    break;
                }
            };
            written += chunk.len() as u64;
            if written > size {
                // A registry that sends more than the manifest says is
                // refused before it can fill the disk.
                return Err(size_err(written));
            }
            h.update(&chunk);
            sink.write(&chunk).map_err(io_err(tmp.path()))?;
            bar.inc(chunk.len() as u64);
        }
        sink.flush().map_err(io_err(tmp.path()))?;
        bar.finish();
        let actual = format!("sha256:{}", hex(&h.clone().finalize()));
        if let Some(e) = stream_error {
            // The client's own check fails at the end of a complete but
            // wrong body: report it as the digest mismatch it is.
            if written == size && actual != layer.digest {
                return Err(digest_err(actual));
            }
            return Err(session.error(
                "download interrupted",
                oci_client::errors::OciDistributionError::IoError(e),
            ));
        }
        if written != size {
            return Err(size_err(written));
        }
        if actual != layer.digest {
            return Err(digest_err(actual));
        }
        // Durable before it is visible: one fsync of the whole file, which
        // finds little left to write (the sink started write-back as it went).
        let f = tmp.as_file();
        f.set_permissions(std::fs::Permissions::from_mode(0o644))
            .and_then(|()| f.sync_all())
            .map_err(io_err(tmp.path()))?;
        let outcome = if force {
            tmp.persist(out).map_err(|e| RegistryError::Io {
                path: out.to_owned(),
                source: e.error,
            })?;
            PullOutcome::Written
        } else {
            match tmp.persist_noclobber(out) {
                Ok(_) => PullOutcome::Written,
                Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                    // Another pull got there first: fine if it is the same
                    // image (the temp file is dropped and removed).
                    if existing_digest(out).as_deref() == Some(layer.digest.as_str()) {
                        PullOutcome::AlreadyThere
                    } else {
                        return Err(RegistryError::Exists(out.to_owned()));
                    }
                }
                Err(e) => {
                    return Err(RegistryError::Io {
                        path: out.to_owned(),
                        source: e.error,
                    })
                }
            }
        };
        Ok(Pulled {
            path: out.to_owned(),
            digest,
            layer_digest: layer.digest.clone(),
            size,
            outcome,
        })
    })?
}

/// The layer's bytes. A full download through `pull_blob_stream` is hashed
/// by the client as well as by us; asked as the range `bytes=0-`, a registry
/// that honours ranges answers 206 and the client leaves the one check to
/// us (size and digest, before the rename). One that answers 200 gets the
/// client's check too.
async fn blob_stream(
    session: &Session,
    layer: &OciDescriptor,
) -> Result<oci_client::client::SizedStream, RegistryError> {
    use oci_client::client::BlobResponse;
    let response = session
        .client
        .pull_blob_stream_partial(&session.oci, layer, 0, None)
        .await
        .map_err(|e| session.error("cannot download the image", e))?;
    Ok(match response {
        BlobResponse::Full(s) | BlobResponse::Partial(s) => s,
    })
}

/// Where pulled bytes go: gathered into large writes (the HTTP body comes
/// in small pieces), with write-back of what is written started every few
/// MiB so that the disk works while the network does and the final fsync
/// is short. Durability still comes from that one fsync.
struct Sink<'f> {
    file: &'f File,
    buf: Vec<u8>,
    // Bytes handed to the kernel, and where write-back was last started.
    written: u64,
    synced: u64,
}

/// Size of the writes, and how much is written between write-back starts.
const WRITE_BACK: u64 = 8 << 20;

impl<'f> Sink<'f> {
    fn new(file: &'f File) -> Self {
        Self {
            file,
            buf: Vec::with_capacity(CHUNK),
            written: 0,
            synced: 0,
        }
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let mut f = self.file;
        f.write_all(&self.buf)?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        if self.written - self.synced >= WRITE_BACK {
            // Start (not wait for) write-back of the new range; a failure
            // only costs speed, the fsync at the end still guarantees it.
            use std::os::fd::AsRawFd as _;
            let (off, len) = (self.synced, self.written - self.synced);
            // SAFETY: plain syscall on a descriptor we own.
            let _ = unsafe {
                libc::sync_file_range(
                    f.as_raw_fd(),
                    off as libc::off64_t,
                    len as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                )
            };
            self.synced = self.written;
        }
        Ok(())
    }
}

/// The digest of an existing regular file, opened without following a
/// symlink (the destination dir may be shared, e.g. /tmp).
fn existing_digest(out: &Path) -> Option<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(out)
        .ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    file_digest(&mut f, out).ok().map(|(d, _)| d)
}
