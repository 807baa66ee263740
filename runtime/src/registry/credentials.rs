//! Registry credentials in Docker's `config.json` (`$DOCKER_CONFIG/config.json`
//! or `~/.docker/config.json`), so `docker login` and `vessel registry
//! login` share them. Only the `auths` entries vessel writes are touched;
//! every other key of the file is kept as it was.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Map, Value};

use super::RegistryError;

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret, not even in debug output.
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The Docker config file vessel reads and writes.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    path: PathBuf,
}

impl DockerConfig {
    /// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
    pub fn from_env() -> Self {
        let dir = std::env::var_os("DOCKER_CONFIG")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let home = std::env::var_os("HOME")
                    .filter(|h| !h.is_empty())
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("/root"));
                home.join(".docker")
            });
        Self::at(dir.join("config.json"))
    }

    /// The config file at `path`.
    pub fn at(path: PathBuf) -> Self {
        Self { path }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, reason: String) -> RegistryError {
        RegistryError::Credentials {
            path: self.path.clone(),
            reason,
        }
    }

    /// The whole file as a JSON object; a missing file is an empty one.
    fn read(&self) -> Result<Map<String, Value>, RegistryError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
            Err(e) => return Err(self.err(e.to_string())),
        };
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(self.err("not a JSON object".into())),
            Err(e) => Err(self.err(format!("invalid JSON: {e}"))),
        }
    }

    /// The credentials stored for `registry` (`host[:port]`), if any. Docker
    /// also keys entries by URL (`https://host/v1/`): those match too.
    pub fn get(&self, registry: &str) -> Result<Option<Credentials>, RegistryError> {
        let file = self.read()?;
        let Some(Value::Object(auths)) = file.get("auths") else {
            return Ok(None);
        };
        let entry = auths.iter().find(|(k, _)| key_host(k) == registry);
        let Some((_, Value::Object(entry))) = entry else {
            return Ok(None);
        };
        if let Some(Value::String(auth)) = entry.get("auth") {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| self.err(format!("auths.{registry}.auth is not base64")))?;
            let text = String::from_utf8(raw)
                .map_err(|_| self.err(format!("auths.{registry}.auth is not UTF-8")))?;
            let (u, p) = text
                .split_once(':')
                .ok_or_else(|| self.err(format!("auths.{registry}.auth is not user:password")))?;
            return Ok(Some(Credentials {
                username: u.to_owned(),
                password: p.to_owned(),
            }));
        }
        match (entry.get("username"), entry.get("password")) {
            (Some(Value::String(u)), Some(Value::String(p))) => Ok(Some(Credentials {
                username: u.clone(),
                password: p.clone(),
            })),
            _ => Ok(None),
        }
    }

    /// Stores `creds` for `registry`, replacing any entry for it.
    pub fn store(&self, registry: &str, creds: &Credentials) -> Result<(), RegistryError> {
        let mut file = self.read()?;
        let auths = file
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(auths) = auths else {
            return Err(self.err("\"auths\" is not a JSON object".into()));
        };
        auths.retain(|k, _| key_host(k) != registry);
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", creds.username, creds.password));
        auths.insert(registry.to_owned(), serde_json::json!({ "auth": auth }));
        self.write(&file)
    }

    /// Removes the entry for `registry`; `false` if there was none.
    pub fn remove(&self, registry: &str) -> Result<bool, RegistryError> {
        let mut file = self.read()?;
        let Some(Value::Object(auths)) = file.get_mut("auths") else {
            return Ok(false);
        };
        let before = auths.len();
        auths.retain(|k, _| key_host(k) != registry);
        if auths.len() == before {
            return Ok(false);
        }
        self.write(&file)?;
        Ok(true)
    }

    /// Writes the file atomically (temp file in the same dir, 0600, fsync,
    /// rename): a crash leaves the old or the new file, never half of one,
    /// and the secret is never readable by others, not even briefly.
    fn write(&self, file: &Map<String, Value>) -> Result<(), RegistryError> {
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| self.err(e.to_string()))?;
        }
        let mut bytes = serde_json::to_vec_pretty(&Value::Object(file.clone()))
            .map_err(|e| self.err(e.to_string()))?;
        bytes.push(b'\n');
        // tempfile creates 0600 with O_EXCL under a random name.
        let mut tmp = tempfile::Builder::new()
            .prefix(".config.json.")
            .tempfile_in(dir)
            .map_err(|e| self.err(e.to_string()))?;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .and_then(|()| tmp.write_all(&bytes))
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| self.err(e.to_string()))?;
        tmp.persist(&self.path)
            .map_err(|e| self.err(e.error.to_string()))?;
        Ok(())
    }
}

/// The `host[:port]` of an `auths` key, which Docker writes either bare or
/// as a URL (`https://index.docker.io/v1/`).
fn key_host(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_get_remove_keep_other_keys_and_mode() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("docker").join("config.json");
        std::fs::create_dir(d.path().join("docker")).unwrap();
        std::fs::write(
            &path,
            r#"{"credsStore":"x","auths":{"https://other.example/v1/":{"auth":"dTpw"}}}"#,
        )
        .unwrap();
        let c = DockerConfig::at(path.clone());
        let creds = Credentials {
            username: "alice".into(),
            password: "s3:cret".into(),
        };
        c.store("127.0.0.1:5000", &creds).unwrap();
        assert_eq!(c.get("127.0.0.1:5000").unwrap(), Some(creds));
        assert_eq!(
            c.get("other.example").unwrap().unwrap().username,
            "u",
            "URL-keyed docker entries are read"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["credsStore"], "x");
        assert!(c.remove("127.0.0.1:5000").unwrap());
        assert!(!c.remove("127.0.0.1:5000").unwrap());
        assert_eq!(c.get("127.0.0.1:5000").unwrap(), None);
        // Nothing but the config is left in the dir (no temp files).
        assert_eq!(
            std::fs::read_dir(d.path().join("docker")).unwrap().count(),
            1
        );
    }

    #[test]
    fn missing_file_has_no_credentials_and_is_created_0600() {
        let d = tempfile::tempdir().unwrap();
        let c = DockerConfig::at(d.path().join("new").join("config.json"));
        assert_eq!(c.get("r").unwrap(), None);
        c.store(
            "r",
            &Credentials {
                username: "u".into(),
                password: "p".into(),
            },
        )
        .unwrap();
        let dir_mode = std::fs::metadata(d.path().join("new"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
    }

    #[test]
    fn malformed_file_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.json");
        std::fs::write(&p, "{not json").unwrap();
        let e = DockerConfig::at(p).get("r").unwrap_err().to_string();
        assert!(
            e.contains("config.json") && e.contains("invalid JSON"),
            "{e}"
        );
    }
}
