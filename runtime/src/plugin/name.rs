//! The plugin name grammar, checked wherever a name enters vessel (create,
//! compile, install, and every meta the store reads).
//!
//! A name is lowercase `domain/path`, like `example.com/hello`: segments of
//! `[a-z0-9._-]` separated by `/`, at least two of them, none starting with
//! `.` or `-`, the first one a domain (it contains a dot). Anything else —
//! upper case, spaces, zero-width or other invisible characters, `..` — is
//! refused, so two plugins never look alike in `plugin list`, and a name
//! can never be read as a path out of (or into the files of) the store.

/// The longest accepted name, in bytes.
pub const MAX_LEN: usize = 128;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin name {name:?} is invalid: {reason}")]
pub struct NameError {
    /// The offending name (printed escaped, so invisible characters show).
    pub name: String,
    /// Why it is refused.
    pub reason: String,
}

/// Checks `name` against the grammar.
pub fn validate(name: &str) -> Result<(), NameError> {
    let bad = |reason: String| NameError {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("it is empty".into()));
    }
    if name.len() > MAX_LEN {
        return Err(bad(format!("it is longer than {MAX_LEN} bytes")));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-' | '/'))
    {
        return Err(bad(format!(
            "character {:?} is not allowed (only a-z, 0-9, '.', '_', '-' and '/')",
            c
        )));
    }
    let segments: Vec<&str> = name.split('/').collect();
    if segments.len() < 2 {
        return Err(bad("it must be domain/path, like example.com/hello".into()));
    }
    for seg in &segments {
        if seg.is_empty() {
            return Err(bad("it has an empty segment".into()));
        }
        if seg.starts_with('.') || seg.starts_with('-') {
            return Err(bad(format!("segment {seg:?} starts with '.' or '-'")));
        }
    }
    let domain = segments[0];
    if !domain.contains('.') || domain.ends_with('.') {
        return Err(bad(format!(
            "its first segment {domain:?} is not a domain, like example.com"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grammar() {
        for ok in [
            "example.com/hello",
            "example.com/cli-plugin",
            "x.y/9lives",
            "a.b/c/d_e.f",
            "example.com/x.meta",
        ] {
            validate(ok).unwrap();
        }
        for bad in [
            "",
            "hello",
            "Example.com/x",
            "example.com",
            "example/x",
            "example.com/",
            "/example.com/x",
            "example.com//x",
            "example.com/../x",
            "example.com/./x",
            "example.com/.hidden",
            "example.com/-x",
            ".example.com/x",
            "example./x",
            "example.com/x\u{200b}",
            "example.com/x\u{feff}",
            "example.com/x y",
            "example.com/x\\y",
            "example.com/x\n",
            "exämple.com/x",
        ] {
            assert!(validate(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate(&format!("example.com/{}", "a".repeat(200))).is_err());
        let e = validate("example.com/x\u{200b}").unwrap_err().to_string();
        assert!(e.contains("\\u{200b}"), "{e}");
    }
}
