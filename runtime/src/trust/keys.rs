//! ed25519 key files and keyids.

use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};

use super::TrustError;

/// The reference SIF keyid of a public key (`SHA256:` + base64 of the
/// SSH wire-format key digest).
pub fn keyid(key: &VerifyingKey) -> String {
    vessel_sif::keyid(key)
}

/// Reads a key file; `bad` builds the error for a file that cannot be a key.
fn read_pem(path: &Path, bad: fn(PathBuf, String) -> TrustError) -> Result<String, TrustError> {
    use std::io::Read;
    const MAX_KEY_FILE: u64 = 64 * 1024;
    let read_err = |source| TrustError::ReadKey {
        path: path.to_owned(),
        source,
    };
    // Key files are tiny; refuse anything that is not, rather than read it.
    let f = std::fs::File::open(path).map_err(read_err)?;
    let mut pem = String::new();
    f.take(MAX_KEY_FILE + 1)
        .read_to_string(&mut pem)
        .map_err(read_err)?;
    if pem.len() as u64 > MAX_KEY_FILE {
        return Err(bad(path.to_owned(), "file too large for a key".into()));
    }
    Ok(pem)
}

fn bad_private(path: PathBuf, reason: String) -> TrustError {
    TrustError::BadPrivateKey { path, reason }
}

fn bad_public(path: PathBuf, reason: String) -> TrustError {
    TrustError::BadPublicKey { path, reason }
}

/// Loads a PKCS#8 PEM ed25519 private key.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, TrustError> {
    let pem = read_pem(path, bad_private)?;
    SigningKey::from_pkcs8_pem(&pem)
        .map_err(|e| bad_private(path.to_owned(), e.to_string().to_lowercase()))
}

/// Loads an SPKI PEM ed25519 public key.
pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey, TrustError> {
    Ok(load_verifying_key_pem(path)?.0)
}

/// Loads an SPKI PEM ed25519 public key and returns it with the PEM text it
/// was parsed from (read once, so the two always agree).
pub(crate) fn load_verifying_key_pem(path: &Path) -> Result<(VerifyingKey, String), TrustError> {
    let pem = read_pem(path, bad_public)?;
    let key = VerifyingKey::from_public_key_pem(&pem)
        .map_err(|e| bad_public(path.to_owned(), e.to_string().to_lowercase()))?;
    Ok((key, pem))
}

/// The files [`generate_keypair`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPairFiles {
    /// `PREFIX-private.pem`, PKCS#8, mode 0600.
    pub private: PathBuf,
    /// `PREFIX-public.pem`, SPKI.
    pub public: PathBuf,
    /// The keyid of the pair.
    pub keyid: String,
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Writes a new file at `path`: a temp file of a random name in the same
/// dir (O_EXCL, so never through a planted symlink), fsynced, then linked
/// into place without replacing anything (`persist_noclobber`).
fn write_new(path: &Path, mode: u32, data: &[u8]) -> Result<(), TrustError> {
    use std::os::unix::fs::PermissionsExt;
    let werr = |source| TrustError::WriteKey {
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".vessel-key-")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(werr)?;
    tmp.write_all(data)
        .and_then(|()| {
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(mode))
        })
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(werr)?;
    tmp.persist_noclobber(path).map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            TrustError::KeyExists {
                path: path.to_owned(),
            }
        } else {
            werr(e.error)
        }
    })?;
    Ok(())
}

/// Generates an ed25519 key pair and writes `PREFIX-private.pem` (PKCS#8,
/// mode 0600) and `PREFIX-public.pem` (SPKI). Never overwrites a file.
pub fn generate_keypair(prefix: &Path) -> Result<KeyPairFiles, TrustError> {
    let private = with_suffix(prefix, "-private.pem");
    let public = with_suffix(prefix, "-public.pem");
    for p in [&private, &public] {
        if std::fs::symlink_metadata(p).is_ok() {
            return Err(TrustError::KeyExists { path: p.clone() });
        }
    }
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let enc_err = |path: &Path, e: String| TrustError::WriteKey {
        path: path.to_owned(),
        source: std::io::Error::other(e),
    };
    let priv_pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| enc_err(&private, e.to_string()))?;
    let pub_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| enc_err(&public, e.to_string()))?;
    write_new(&private, 0o600, priv_pem.as_bytes())?;
    if let Err(e) = write_new(&public, 0o644, pub_pem.as_bytes()) {
        let _ = std::fs::remove_file(&private);
        return Err(e);
    }
    Ok(KeyPairFiles {
        private,
        public,
        keyid: keyid(&key.verifying_key()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pair_loads_back_with_private_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let files = generate_keypair(&dir.path().join("k")).unwrap();
        let sk = load_signing_key(&files.private).unwrap();
        let pk = load_verifying_key(&files.public).unwrap();
        assert_eq!(sk.verifying_key(), pk);
        assert_eq!(keyid(&pk), files.keyid);
        let mode = std::fs::metadata(&files.private)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(
            generate_keypair(&dir.path().join("k")),
            Err(TrustError::KeyExists { .. })
        ));
        assert!(matches!(
            load_verifying_key(&files.private),
            Err(TrustError::BadPublicKey { .. })
        ));
    }

    #[test]
    fn an_oversized_private_key_file_is_a_bad_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.pem");
        std::fs::write(&big, vec![b'A'; 100 * 1024]).unwrap();
        let e = load_signing_key(&big).unwrap_err();
        assert!(matches!(e, TrustError::BadPrivateKey { .. }), "{e}");
        assert!(e.to_string().contains("file too large"), "{e}");
        assert!(matches!(
            load_verifying_key(&big),
            Err(TrustError::BadPublicKey { .. })
        ));
    }
}
