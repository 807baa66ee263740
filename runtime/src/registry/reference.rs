//! `oras://HOST[:PORT]/REPO[:TAG|@sha256:HEX]`: where an image lives in a
//! registry. Parsed strictly here, so nothing hostile reaches a URL.

use std::fmt;

use super::RegistryError;

/// The scheme every registry reference starts with.
pub const SCHEME: &str = "oras://";

/// The tag used when a reference names neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";

/// What a reference points at inside its repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A tag (mutable).
    Tag(String),
    /// A manifest digest, `sha256:<64 hex>` (immutable).
    Digest(String),
}

/// A parsed `oras://` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]`, as written (lowercase).
    pub registry: String,
    /// The repository path, e.g. `lab/tools/alpine`.
    pub repository: String,
    /// The tag or digest.
    pub target: Target,
}

impl Reference {
    /// Whether `s` is meant as a registry reference (starts with `oras://`).
    pub fn is_reference(s: &str) -> bool {
        s.starts_with(SCHEME)
    }

    /// Parses `oras://HOST[:PORT]/REPO[:TAG|@sha256:HEX]`.
    pub fn parse(s: &str) -> Result<Self, RegistryError> {
        let bad = |reason: &'static str| RegistryError::BadReference {
            reference: s.to_owned(),
            reason,
        };
        let rest = s
            .strip_prefix(SCHEME)
            .ok_or(bad("it does not start with oras://"))?;
        let (registry, path) = rest
            .split_once('/')
            .ok_or(bad("it has no repository after the host"))?;
        check_registry(registry).map_err(bad)?;
        let (repository, target) = if let Some((repo, digest)) = path.split_once('@') {
            check_digest(digest).map_err(bad)?;
            (repo, Target::Digest(digest.to_owned()))
        } else {
            // A ':' after the last '/' starts the tag.
            let last = path.rfind('/').map_or(0, |i| i + 1);
            match path[last..].find(':') {
                Some(i) => {
                    let tag = &path[last + i + 1..];
                    check_tag(tag).map_err(bad)?;
                    (&path[..last + i], Target::Tag(tag.to_owned()))
                }
                None => (path, Target::Tag(DEFAULT_TAG.to_owned())),
            }
        };
        check_repository(repository).map_err(bad)?;
        Ok(Self {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            target,
        })
    }

    /// The host part without a port (for `insecure_registries` entries
    /// written either way).
    pub fn host(&self) -> &str {
        match self.registry.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(']') => h,
            _ => &self.registry,
        }
    }

    /// The tag, if the reference names one.
    pub fn tag(&self) -> Option<&str> {
        match &self.target {
            Target::Tag(t) => Some(t),
            Target::Digest(_) => None,
        }
    }

    /// The digest, if the reference names one.
    pub fn digest(&self) -> Option<&str> {
        match &self.target {
            Target::Digest(d) => Some(d),
            Target::Tag(_) => None,
        }
    }

    /// The same repository at another digest.
    pub fn with_digest(&self, digest: &str) -> Self {
        Self {
            target: Target::Digest(digest.to_owned()),
            ..self.clone()
        }
    }

    /// The file name a pull writes when no output is given:
    /// `<last repo segment>_<tag>.sif` (Apptainer's choice), or
    /// `<last repo segment>_<first 12 hex of the digest>.sif`.
    pub fn default_file_name(&self) -> String {
        let base = self.repository.rsplit('/').next().unwrap_or("image");
        match &self.target {
            Target::Tag(t) => format!("{base}_{t}.sif"),
            Target::Digest(d) => {
                let hex = d.strip_prefix("sha256:").unwrap_or(d);
                format!("{base}_{}.sif", &hex[..hex.len().min(12)])
            }
        }
    }

    /// The client library's form of this reference.
    pub(crate) fn to_oci(&self) -> oci_client::Reference {
        match &self.target {
            Target::Tag(t) => oci_client::Reference::with_tag(
                self.registry.clone(),
                self.repository.clone(),
                t.clone(),
            ),
            Target::Digest(d) => oci_client::Reference::with_digest(
                self.registry.clone(),
                self.repository.clone(),
                d.clone(),
            ),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}/{}", self.registry, self.repository)?;
        match &self.target {
            Target::Tag(t) => write!(f, ":{t}"),
            Target::Digest(d) => write!(f, "@{d}"),
        }
    }
}

/// Checks `host[:port]`: DNS labels or an IPv4 address, optional port.
pub fn check_registry(registry: &str) -> Result<(), &'static str> {
    let (host, port) = match registry.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (registry, None),
    };
    if host.is_empty() || host.len() > 253 {
        return Err("its host is empty or too long");
    }
    for label in host.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err("its host is not a lowercase host name or address");
        }
    }
    if let Some(p) = port {
        if p.parse::<u16>().map_or(true, |n| n == 0) {
            return Err("its port is not a number from 1 to 65535");
        }
    }
    Ok(())
}

/// Checks a repository path against the distribution spec's grammar:
/// lowercase components separated by `/`, each `[a-z0-9]+` joined by `.`,
/// `_`, `__` or runs of `-`.
fn check_repository(repo: &str) -> Result<(), &'static str> {
    if repo.is_empty() {
        return Err("its repository is empty");
    }
    if repo.len() > 255 {
        return Err("its repository is longer than 255 bytes");
    }
    for comp in repo.split('/') {
        let b = comp.as_bytes();
        let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
            return Err("a repository segment is empty or does not start and end with [a-z0-9]");
        }
        let mut i = 0;
        while i < b.len() {
            if alnum(b[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < b.len() && !alnum(b[i]) {
                i += 1;
            }
            match &comp[start..i] {
                "." | "_" | "__" => {}
                s if s.bytes().all(|c| c == b'-') => {}
                _ => return Err("a repository segment has characters outside [a-z0-9._-]"),
            }
        }
    }
    Ok(())
}

/// Checks a tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
fn check_tag(tag: &str) -> Result<(), &'static str> {
    let b = tag.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err("its tag is not [A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
    }
}

/// Checks a digest: `sha256:` and 64 lowercase hex digits.
pub fn check_digest(digest: &str) -> Result<(), &'static str> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(())
        }
        _ => Err("its digest is not sha256: and 64 lowercase hex digits"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_tag_digest_and_default() {
        let r = Reference::parse("oras://127.0.0.1:5000/lab/tools:v1.2").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.host(), "127.0.0.1");
        assert_eq!(r.repository, "lab/tools");
        assert_eq!(r.tag(), Some("v1.2"));
        assert_eq!(r.to_string(), "oras://127.0.0.1:5000/lab/tools:v1.2");
        assert_eq!(r.default_file_name(), "tools_v1.2.sif");

        let r = Reference::parse(&format!("oras://reg.example.com/a/b@{D}")).unwrap();
        assert_eq!(r.digest(), Some(D));
        assert_eq!(r.repository, "a/b");
        assert_eq!(r.default_file_name(), "b_0123456789ab.sif");

        let r = Reference::parse("oras://reg.example.com/alpine").unwrap();
        assert_eq!(r.tag(), Some("latest"));
        assert_eq!(r.host(), "reg.example.com");
    }

    #[test]
    fn refuses_what_is_not_a_reference() {
        for bad in [
            "https://reg/x:1",
            "oras://",
            "oras://reg",
            "oras:///x",
            "oras://Reg/x",
            "oras://reg:0/x",
            "oras://reg:99999/x",
            "oras://reg/X",
            "oras://reg/a//b",
            "oras://reg/../x",
            "oras://reg/a:",
            "oras://reg/a:-x",
            "oras://reg/a:t/b",
            "oras://reg/a@sha256:00",
            "oras://reg/a@md5:0123",
            "oras://reg/a b",
            "oras://reg/a\n:x",
            "oras://re_g/a",
        ] {
            let e = Reference::parse(bad);
            assert!(e.is_err(), "{bad:?} parsed: {e:?}");
            if let Err(e) = e {
                let m = e.to_string();
                assert!(m.starts_with("registry reference "), "{m}");
            }
        }
    }
}
