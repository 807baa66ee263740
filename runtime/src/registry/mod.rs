//! `oras://` distribution: push and pull one SIF image as an OCI artifact
//! in Apptainer's layout, through the ORAS project's `oci-client`.
//!
//! The layout (so Apptainer and vessel pull what the other pushed): an OCI
//! image manifest whose config has media type
//! [`SIF_CONFIG_MEDIA_TYPE`] and content `{}`, and one layer of media type
//! [`SIF_LAYER_MEDIA_TYPE`] annotated with [`TITLE_ANNOTATION`] (the file
//! name). Plugins add manifest annotations (see `plugin::remote`).
//!
//! The client is async; the async stays in here: each public call builds a
//! current-thread tokio runtime for the duration of the call.

use std::collections::BTreeMap;
use std::path::PathBuf;

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use oci_client::secrets::RegistryAuth;

pub mod credentials;
pub mod reference;
mod transfer;

pub use credentials::{Credentials, DockerConfig};
pub use reference::Reference;
pub use transfer::{pull, push, PullOutcome, Pulled, Pushed};

/// Media type of the config blob of a SIF artifact.
pub const SIF_CONFIG_MEDIA_TYPE: &str = "application/vnd.sylabs.sif.config.v1+json";
/// Media type of the one layer of a SIF artifact: the SIF file itself.
pub const SIF_LAYER_MEDIA_TYPE: &str = "application/vnd.sylabs.sif.layer.v1.sif";
/// The layer annotation carrying the file name.
pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
/// Media type of the manifest vessel pushes.
pub const OCI_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The config blob's content.
pub const SIF_CONFIG: &[u8] = b"{}";

/// Errors talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A reference that is not `oras://HOST[:PORT]/REPO[:TAG|@sha256:HEX]`.
    #[error("registry reference {reference:?}: {reason}")]
    BadReference {
        /// What was given.
        reference: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The Docker config file with the credentials.
    #[error("registry credentials {path}: {reason}")]
    Credentials {
        /// The config file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The `--ca` file.
    #[error("registry ca {path}: {reason}")]
    Ca {
        /// The CA file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The registry answered with an HTTP error.
    #[error("registry {registry}: {repository}: {what} (http {status})")]
    Status {
        /// `host[:port]`.
        registry: String,
        /// The repository.
        repository: String,
        /// The HTTP status.
        status: u16,
        /// What it means here ("login required", "no such tag \"v1\"").
        what: String,
    },
    /// The registry could not be reached or spoke nonsense.
    #[error("registry {registry}: {repository}: {what}")]
    Transport {
        /// `host[:port]`.
        registry: String,
        /// The repository.
        repository: String,
        /// What was being done.
        what: &'static str,
        /// The client's error.
        #[source]
        source: OciDistributionError,
    },
    /// The artifact is not one SIF in Apptainer's layout.
    #[error("registry {registry}: {repository}: not a SIF image: {reason}")]
    NotSif {
        /// `host[:port]`.
        registry: String,
        /// The repository.
        repository: String,
        /// Why.
        reason: String,
    },
    /// The downloaded bytes are not the ones the manifest names.
    #[error("registry {registry}: {repository}: downloaded image has digest {actual}, the manifest says {expected}; nothing was written")]
    Digest {
        /// `host[:port]`.
        registry: String,
        /// The repository.
        repository: String,
        /// The manifest's layer digest.
        expected: String,
        /// What arrived.
        actual: String,
    },
    /// The download was shorter or longer than the manifest says.
    #[error("registry {registry}: {repository}: download has {actual} bytes, the manifest says {expected}; nothing was written")]
    Size {
        /// `host[:port]`.
        registry: String,
        /// The repository.
        repository: String,
        /// The manifest's layer size.
        expected: u64,
        /// What arrived (or at least, when it ran over).
        actual: u64,
    },
    /// The pinned digest does not match what the registry serves.
    #[error("registry {registry}: {repository}: manifest digest is {actual}, expected {expected}")]
    Pinned {
        /// `host[:port]`.
        registry: String,
        /// The repository.
        repository: String,
        /// The pin.
        expected: String,
        /// What the registry has.
        actual: String,
    },
    /// The output file exists and differs from the image.
    #[error("{0}: file exists (use --force to replace it)")]
    Exists(PathBuf),
    /// An I/O error on a local file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The async runtime for the transfer could not be created.
    #[error("cannot start the registry client")]
    Runtime(#[source] std::io::Error),
}

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io {
        path: path.to_owned(),
        source,
    }
}

/// How to reach registries: TLS, plain HTTP exceptions, credentials.
#[derive(Debug, Clone)]
pub struct Options {
    /// A PEM CA bundle trusted in addition to the system roots.
    pub ca: Option<PathBuf>,
    /// Plain HTTP to the reference's registry (`--insecure`).
    pub insecure: bool,
    /// Hosts (`host` or `host:port`) always reached over plain HTTP
    /// (`insecure_registries` in vessel.toml).
    pub insecure_registries: Vec<String>,
    /// Where credentials are read from.
    pub docker_config: DockerConfig,
    /// Show progress bars (on a terminal, for transfers over a second).
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            ca: None,
            insecure: false,
            insecure_registries: Vec::new(),
            docker_config: DockerConfig::from_env(),
            progress: false,
        }
    }
}

impl Options {
    /// Whether `r`'s registry is reached over plain HTTP.
    pub fn is_insecure(&self, r: &Reference) -> bool {
        self.insecure
            || self
                .insecure_registries
                .iter()
                .any(|h| h == &r.registry || h == r.host())
    }
}

/// A client for `r`'s registry, and the auth to use there.
pub(crate) struct Session {
    pub(crate) client: oci_client::Client,
    pub(crate) auth: RegistryAuth,
    pub(crate) reference: Reference,
    pub(crate) oci: oci_client::Reference,
    with_credentials: bool,
}

impl Session {
    pub(crate) fn new(opts: &Options, r: &Reference) -> Result<Self, RegistryError> {
        // reqwest is built without a default crypto provider (no C
        // toolchain for aws-lc); ring is installed once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let protocol = if opts.is_insecure(r) {
            ClientProtocol::HttpsExcept(vec![r.registry.clone()])
        } else {
            ClientProtocol::Https
        };
        let mut extra = Vec::new();
        if let Some(ca) = &opts.ca {
            let data = std::fs::read(ca).map_err(|e| RegistryError::Ca {
                path: ca.clone(),
                reason: e.to_string(),
            })?;
            if !data
                .windows(27)
                .any(|w| w == b"-----BEGIN CERTIFICATE-----")
            {
                return Err(RegistryError::Ca {
                    path: ca.clone(),
                    reason: "no PEM certificate in it".into(),
                });
            }
            extra.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        let config = ClientConfig {
            protocol,
            extra_root_certificates: extra,
            // One PUT per blob, streamed from the file: no chunk buffering.
            use_monolithic_push: true,
            connect_timeout: Some(std::time::Duration::from_secs(30)),
            read_timeout: Some(std::time::Duration::from_secs(300)),
            user_agent: concat!("vessel/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        let client =
            oci_client::Client::try_from(config).map_err(|source| RegistryError::Transport {
                registry: r.registry.clone(),
                repository: r.repository.clone(),
                what: "cannot set up the client",
                source,
            })?;
        let creds = opts.docker_config.get(&r.registry)?;
        let with_credentials = creds.is_some();
        let auth = match creds {
            Some(c) => RegistryAuth::Basic(c.username, c.password),
            None => RegistryAuth::Anonymous,
        };
        Ok(Self {
            client,
            auth,
            oci: r.to_oci(),
            reference: r.clone(),
            with_credentials,
        })
    }

    /// Turns a client error into one naming the registry, repo and status.
    pub(crate) fn error(&self, what: &'static str, e: OciDistributionError) -> RegistryError {
        let r = &self.reference;
        let status = |status: u16, what: String| RegistryError::Status {
            registry: r.registry.clone(),
            repository: r.repository.clone(),
            status,
            what,
        };
        let unauthorized = || {
            if self.with_credentials {
                status(
                    401,
                    format!(
                        "credentials refused (check them with vessel registry login {})",
                        r.registry
                    ),
                )
            } else {
                status(401, "login required".into())
            }
        };
        let not_found = || match &r.target {
            reference::Target::Tag(t) => status(404, format!("no such tag {t:?}")),
            reference::Target::Digest(d) => status(404, format!("no such manifest {d}")),
        };
        match e {
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => unauthorized(),
            OciDistributionError::ImageManifestNotFoundError(_) => not_found(),
            OciDistributionError::ServerError { code: 401, .. } => unauthorized(),
            OciDistributionError::ServerError { code: 404, .. }
                if what == "cannot read the manifest" =>
            {
                not_found()
            }
            OciDistributionError::ServerError { code, message, .. } => status(
                code,
                one_line_capped(&message).unwrap_or_else(|| "request failed".into()),
            ),
            OciDistributionError::RegistryError { ref envelope, .. } => {
                let first = envelope.errors.first();
                match first.map(|x| &x.code) {
                    Some(OciErrorCode::Unauthorized) => unauthorized(),
                    Some(OciErrorCode::Denied) => status(403, "access denied".into()),
                    Some(OciErrorCode::ManifestUnknown | OciErrorCode::NotFound) => not_found(),
                    Some(OciErrorCode::NameUnknown) => status(404, "no such repository".into()),
                    Some(OciErrorCode::BlobUnknown) => {
                        status(404, "blob unknown to the registry".into())
                    }
                    Some(OciErrorCode::Toomanyrequests) => status(429, "too many requests".into()),
                    _ => RegistryError::Transport {
                        registry: r.registry.clone(),
                        repository: r.repository.clone(),
                        what,
                        source: e,
                    },
                }
            }
            source => RegistryError::Transport {
                registry: r.registry.clone(),
                repository: r.repository.clone(),
                what,
                source,
            },
        }
    }

    fn not_sif(&self, reason: String) -> RegistryError {
        RegistryError::NotSif {
            registry: self.reference.registry.clone(),
            repository: self.reference.repository.clone(),
            reason,
        }
    }

    /// The manifest (and its digest), checked to be one SIF in Apptainer's
    /// layout; returns the layer too.
    pub(crate) async fn sif_manifest(
        &self,
    ) -> Result<(OciImageManifest, String, OciDescriptor), RegistryError> {
        let (manifest, digest) = self
            .client
            .pull_image_manifest(&self.oci, &self.auth)
            .await
            .map_err(|e| self.error("cannot read the manifest", e))?;
        if let Some(pin) = self.reference.digest() {
            // oci-client checks this too; checked here as well so the pin
            // does not rest on a dependency's detail.
            if digest != pin {
                return Err(RegistryError::Pinned {
                    registry: self.reference.registry.clone(),
                    repository: self.reference.repository.clone(),
                    expected: pin.to_owned(),
                    actual: digest,
                });
            }
        }
        if manifest.config.media_type != SIF_CONFIG_MEDIA_TYPE {
            return Err(self.not_sif(format!(
                "config media type is {:?}",
                manifest.config.media_type
            )));
        }
        let [layer] = manifest.layers.as_slice() else {
            return Err(self.not_sif(format!("it has {} layers, not one", manifest.layers.len())));
        };
        if layer.media_type != SIF_LAYER_MEDIA_TYPE {
            return Err(self.not_sif(format!("layer media type is {:?}", layer.media_type)));
        }
        if layer.size < 0 || reference::check_digest(&layer.digest).is_err() {
            return Err(self.not_sif("its layer has a bad size or digest".into()));
        }
        let layer = layer.clone();
        Ok((manifest, digest, layer))
    }
}

/// A registry's text (an HTTP error body) as one short line, or `None`.
fn one_line_capped(s: &str) -> Option<String> {
    let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.is_empty() {
        return None;
    }
    Some(flat.chars().take(200).collect())
}

/// Runs `f` to completion on a current-thread runtime made for this call.
pub(crate) fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, RegistryError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RegistryError::Runtime)?;
    Ok(rt.block_on(f))
}

/// What a manifest says about an artifact, read without downloading it.
#[derive(Debug, Clone)]
pub struct Remote {
    /// The reference as asked.
    pub reference: Reference,
    /// The manifest's digest.
    pub digest: String,
    /// The manifest's annotations.
    pub annotations: BTreeMap<String, String>,
    /// The SIF layer's digest.
    pub layer_digest: String,
    /// The SIF layer's size in bytes.
    pub size: u64,
    /// The layer's file name annotation, if any.
    pub title: Option<String>,
}

/// Reads the manifest of the SIF at `r` (nothing else is downloaded).
pub fn inspect(r: &Reference, opts: &Options) -> Result<Remote, RegistryError> {
    let session = Session::new(opts, r)?;
    block_on(async {
        let (manifest, digest, layer) = session.sif_manifest().await?;
        Ok(Remote {
            reference: r.clone(),
            digest,
            annotations: manifest.annotations.unwrap_or_default(),
            layer_digest: layer.digest.clone(),
            size: layer.size as u64,
            title: layer
                .annotations
                .as_ref()
                .and_then(|a| a.get(TITLE_ANNOTATION).cloned()),
        })
    })?
}

/// Checks `creds` against `registry` (so a typo is caught at login, not at
/// the next pull) and stores them in the Docker config.
pub fn login(registry: &str, creds: &Credentials, opts: &Options) -> Result<(), RegistryError> {
    reference::check_registry(registry).map_err(|reason| RegistryError::BadReference {
        reference: registry.to_owned(),
        reason,
    })?;
    // Token registries check the credentials when they hand out a token
    // (done here for pull on a probe repository). Basic-auth registries
    // answer any request: for a repository that may not exist, 404 with
    // good credentials and 401 with bad ones.
    let probe = Reference::parse(&format!("oras://{registry}/vessel-login-check:latest"))?;
    let mut session = Session::new(opts, &probe)?;
    session.auth = RegistryAuth::Basic(creds.username.clone(), creds.password.clone());
    session.with_credentials = true;
    let refused = || RegistryError::Status {
        registry: registry.to_owned(),
        repository: String::from("login"),
        status: 401,
        what: format!("credentials for {:?} refused", creds.username),
    };
    block_on(async {
        let token = session
            .client
            .auth(
                &session.oci,
                &session.auth,
                oci_client::RegistryOperation::Pull,
            )
            .await;
        match token {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => {}
            Err(OciDistributionError::AuthenticationFailure(_)) => return Err(refused()),
            Err(e) => return Err(session.error("cannot check the credentials", e)),
        }
        let r = session
            .client
            .list_tags(&session.oci, &session.auth, Some(1), None)
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) => match session.error("cannot check the credentials", e) {
                RegistryError::Status { status: 401, .. } => Err(refused()),
                RegistryError::Status { .. } => Ok(()),
                other => Err(other),
            },
        }
    })??;
    opts.docker_config.store(registry, creds)
}

/// Removes the stored credentials for `registry`; `false` if there were none.
pub fn logout(registry: &str, opts: &Options) -> Result<bool, RegistryError> {
    opts.docker_config.remove(registry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(r: &str) -> Session {
        let opts = Options {
            docker_config: DockerConfig::at(PathBuf::from("/nonexistent/vessel/config.json")),
            ..Options::default()
        };
        Session::new(&opts, &Reference::parse(r).unwrap()).unwrap()
    }

    #[test]
    fn client_errors_name_registry_repo_and_status() {
        let s = session("oras://reg.example:5000/lab/img:v2");
        let e = s
            .error(
                "cannot read the manifest",
                OciDistributionError::UnauthorizedError { url: "u".into() },
            )
            .to_string();
        assert_eq!(
            e,
            "registry reg.example:5000: lab/img: login required (http 401)"
        );
        let envelope: oci_client::errors::OciEnvelope = serde_json::from_str(
            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
        )
        .unwrap();
        let e = s
            .error(
                "cannot read the manifest",
                OciDistributionError::RegistryError {
                    envelope,
                    url: "u".into(),
                },
            )
            .to_string();
        assert_eq!(
            e,
            "registry reg.example:5000: lab/img: no such tag \"v2\" (http 404)"
        );
        let e = s
            .error(
                "cannot upload the image",
                OciDistributionError::ServerError {
                    code: 500,
                    url: "u".into(),
                    message: "disk\nfull".into(),
                },
            )
            .to_string();
        assert_eq!(
            e,
            "registry reg.example:5000: lab/img: disk full (http 500)"
        );
    }

    #[test]
    fn insecure_only_for_listed_hosts() {
        let r = Reference::parse("oras://reg.lab:5000/x:1").unwrap();
        let mut o = Options {
            docker_config: DockerConfig::at(PathBuf::from("/nonexistent")),
            ..Options::default()
        };
        assert!(!o.is_insecure(&r));
        o.insecure_registries = vec!["other:5000".into()];
        assert!(!o.is_insecure(&r));
        o.insecure_registries = vec!["reg.lab".into()];
        assert!(o.is_insecure(&r));
        o.insecure_registries = vec!["reg.lab:5000".into()];
        assert!(o.is_insecure(&r));
    }
}
