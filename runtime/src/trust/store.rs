//! The trust store: the public keys in `$VESSEL_ROOT/etc/vessel/keys/*.pem`
//! that signatures are checked against.

use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use vessel_sif::{Image, VerifyReport};

use super::keys::{keyid, load_verifying_key, load_verifying_key_pem};
use super::{require_root, TrustError};
use crate::paths::Paths;
use crate::Error;

/// One trusted public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    /// Its keyid.
    pub keyid: String,
    /// The file it was loaded from.
    pub path: PathBuf,
    /// The key.
    pub key: VerifyingKey,
}

/// What [`TrustStore::add`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddOutcome {
    /// The keyid added.
    pub keyid: String,
    /// Where the key is stored.
    pub path: PathBuf,
    /// True when the key was already trusted (nothing changed).
    pub already_trusted: bool,
}

/// The set of trusted public keys.
#[derive(Debug, Clone)]
pub struct TrustStore {
    dir: PathBuf,
    keys: Vec<TrustedKey>,
}

/// File name a key is stored under: its keyid made path-safe.
fn file_name_for(keyid: &str) -> String {
    let b64 = keyid.strip_prefix("SHA256:").unwrap_or(keyid);
    format!("{}.pem", b64.replace('/', "_").replace('+', "-"))
}

impl TrustStore {
    /// Loads the store under `paths` (a missing directory is an empty store).
    pub fn load(paths: &Paths) -> Result<TrustStore, TrustError> {
        Self::load_dir(&paths.keys_dir())
    }

    /// Loads every `*.pem` in `dir`, sorted by file name. A file that is not
    /// a public key is skipped with a warning: it cannot add trust, and one
    /// stray file must not lock the admin out of every verification.
    pub fn load_dir(dir: &Path) -> Result<TrustStore, TrustError> {
        let store_err = |source| TrustError::Store {
            path: dir.to_owned(),
            source,
        };
        let mut keys = Vec::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                super::secure::check_root_owned(dir)?;
                return Ok(TrustStore {
                    dir: dir.to_owned(),
                    keys,
                });
            }
            Err(e) => return Err(store_err(e)),
        };
        // As root, a key dir or key file another user can change is refused.
        super::secure::check_root_owned(dir)?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "pem") && p.is_file())
            .collect();
        files.sort();
        for path in files {
            super::secure::check_root_owned(&path)?;
            match load_verifying_key(&path) {
                Ok(key) => keys.push(TrustedKey {
                    keyid: keyid(&key),
                    path,
                    key,
                }),
                Err(e) => tracing::warn!("skipping trust store file: {e}"),
            }
        }
        Ok(TrustStore {
            dir: dir.to_owned(),
            keys,
        })
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The trusted keys.
    pub fn keys(&self) -> &[TrustedKey] {
        &self.keys
    }

    /// True when a key with this keyid is trusted.
    pub fn contains(&self, keyid: &str) -> bool {
        self.keys.iter().any(|k| k.keyid == keyid)
    }

    /// The trusted keys as plain verifying keys.
    pub fn verifying_keys(&self) -> Vec<VerifyingKey> {
        self.keys.iter().map(|k| k.key).collect()
    }

    /// Trusts the public key in `pubfile` (root only). The key is written
    /// atomically (temp file, fsync, rename) as `<keyid>.pem`.
    pub fn add(&mut self, pubfile: &Path) -> Result<AddOutcome, TrustError> {
        require_root("trusting a key")?;
        // The file is read once: what is stored is the key whose keyid is
        // reported, even if the (user-owned) file changes meanwhile.
        let (key, pem) = load_verifying_key_pem(pubfile)?;
        let kid = keyid(&key);
        if let Some(k) = self.keys.iter().find(|k| k.keyid == kid) {
            return Ok(AddOutcome {
                keyid: kid,
                path: k.path.clone(),
                already_trusted: true,
            });
        }
        let store_err = |path: &Path, source| TrustError::Store {
            path: path.to_owned(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(|e| store_err(&self.dir, e))?;
        let dest = self.dir.join(file_name_for(&kid));
        // A random temp name (O_EXCL), fsynced, then renamed into place.
        let write = || -> std::io::Result<()> {
            use std::os::unix::fs::PermissionsExt;
            let mut tmp = tempfile::Builder::new()
                .prefix(".vessel-key-")
                .permissions(std::fs::Permissions::from_mode(0o600))
                .tempfile_in(&self.dir)?;
            tmp.write_all(pem.as_bytes())?;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))?;
            tmp.as_file().sync_all()?;
            tmp.persist(&dest).map_err(|e| e.error)?;
            std::fs::File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| store_err(&dest, e))?;
        self.keys.push(TrustedKey {
            keyid: kid.clone(),
            path: dest.clone(),
            key,
        });
        Ok(AddOutcome {
            keyid: kid,
            path: dest,
            already_trusted: false,
        })
    }

    /// Stops trusting the key with `keyid` (root only): removes every store
    /// file holding it. Returns the removed files.
    pub fn remove(&mut self, keyid: &str) -> Result<Vec<PathBuf>, TrustError> {
        require_root("removing a trusted key")?;
        if !self.contains(keyid) {
            return Err(TrustError::NotTrusted {
                keyid: keyid.to_owned(),
            });
        }
        let mut removed = Vec::new();
        for k in self.keys.iter().filter(|k| k.keyid == keyid) {
            std::fs::remove_file(&k.path).map_err(|source| TrustError::Store {
                path: k.path.clone(),
                source,
            })?;
            removed.push(k.path.clone());
        }
        self.keys.retain(|k| k.keyid != keyid);
        Ok(removed)
    }
}

/// Verifies the image at `image` against `keys`, returning the per-group
/// report (see [`require_verified`] to turn a failing report into an error).
/// Fails when the image cannot be read or has no object groups.
pub fn verify_image_with_keys(image: &Path, keys: &[VerifyingKey]) -> Result<VerifyReport, Error> {
    let img = Image::open(image).map_err(crate::sif_file::in_sif(image))?;
    let report = vessel_sif::verify_image(&img, keys).map_err(crate::sif_file::in_sif(image))?;
    if report.groups.is_empty() {
        return Err(TrustError::NothingToVerify {
            image: image.to_owned(),
        }
        .into());
    }
    Ok(report)
}

/// Turns a report into an error if any group failed.
pub fn require_verified(image: &Path, report: &VerifyReport) -> Result<(), TrustError> {
    match report.first_failure() {
        None if !report.groups.is_empty() => Ok(()),
        None => Err(TrustError::NothingToVerify {
            image: image.to_owned(),
        }),
        Some(f) => Err(TrustError::NotVerified {
            image: image.to_owned(),
            failure: f.clone(),
        }),
    }
}
