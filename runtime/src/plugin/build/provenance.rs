//! Where a compiled plugin came from, recorded in its manifest so anyone
//! with the source can rebuild it and compare (`plugin verify-build`).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::BuildError;

/// The inputs a plugin build depends on besides the toolchain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The vessel source tree it was built in: `git:<commit>` for a git
    /// checkout, else `tree:<sha256 of the plugin API crates and Cargo.lock>`.
    pub vessel_source: String,
    /// sha256 over the plugin crate's source files (relative path and
    /// content of each; `target/`, `.git/`, `*.sif` and `Cargo.lock` left
    /// out).
    pub source_sha256: String,
    /// sha256 of the Cargo.lock the plugin was built with.
    pub lock_sha256: String,
    /// The time stamped into the image (`SOURCE_DATE_EPOCH`).
    pub source_date_epoch: i64,
}

/// Files of the plugin crate that are not its source.
fn skipped(rel: &Path) -> bool {
    let first = rel.components().next().map(|c| c.as_os_str());
    first == Some("target".as_ref())
        || first == Some(".git".as_ref())
        || rel == Path::new("Cargo.lock")
        || rel.extension().is_some_and(|e| e == "sif")
}

/// The regular files under `dir` that make up the plugin's source, as
/// sorted relative paths. Symlinks are refused: what they point at is not
/// part of the crate.
fn source_files(dir: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let abs = dir.join(&rel);
        for entry in fs::read_dir(&abs).map_err(super::io_err(&abs))? {
            let entry = entry.map_err(super::io_err(&abs))?;
            let rel = rel.join(entry.file_name());
            if skipped(&rel) {
                continue;
            }
            let ft = entry.file_type().map_err(super::io_err(&entry.path()))?;
            if ft.is_dir() {
                stack.push(rel);
            } else if ft.is_file() {
                out.push(rel);
            } else {
                return Err(BuildError::BadCrate {
                    path: entry.path(),
                    reason: "not a regular file or directory (plugin sources are plain files)"
                        .into(),
                });
            }
        }
    }
    out.sort();
    Ok(out)
}

/// sha256 over the plugin's source files: for each, its relative path, a
/// NUL, its length and its bytes, so no two different trees hash alike.
pub fn source_sha256(dir: &Path) -> Result<String, BuildError> {
    let mut h = Sha256::new();
    for rel in source_files(dir)? {
        let path = dir.join(&rel);
        let mut data = Vec::new();
        fs::File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut data))
            .map_err(super::io_err(&path))?;
        h.update(rel.to_string_lossy().as_bytes());
        h.update([0]);
        h.update((data.len() as u64).to_le_bytes());
        h.update(&data);
    }
    Ok(hex(&h.finalize()))
}

/// sha256 of a file, hex.
pub fn file_sha256(path: &Path) -> Result<String, BuildError> {
    let data = fs::read(path).map_err(super::io_err(path))?;
    Ok(hex(&Sha256::digest(&data)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `git` in `dir` with `args`, its trimmed stdout if it succeeded.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let o = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    (o.status.success() && !s.is_empty()).then_some(s)
}

/// What identifies the vessel source tree: its git commit, or for a tree
/// that is no git checkout, a hash of what a plugin build takes from it
/// (the plugin API crates and the lock file).
pub fn vessel_source(tree: &Path) -> Result<String, BuildError> {
    if tree.join(".git").exists() {
        if let Some(commit) = git(tree, &["rev-parse", "HEAD"]) {
            return Ok(format!("git:{commit}"));
        }
    }
    let mut h = Sha256::new();
    let api = tree.join("plugin-api");
    h.update(source_sha256(&api)?.as_bytes());
    h.update(file_sha256(&tree.join("Cargo.lock"))?.as_bytes());
    Ok(format!("tree:{}", hex(&h.finalize())))
}

/// The build's timestamp: `SOURCE_DATE_EPOCH` if set, else the time of the
/// last commit touching the plugin's dir, else 0.
pub fn source_date_epoch(dir: &Path) -> Result<i64, BuildError> {
    if let Some(v) = std::env::var_os("SOURCE_DATE_EPOCH") {
        let text = v.to_string_lossy();
        return text
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|t| *t >= 0)
            .ok_or_else(|| BuildError::BadSourceDate(text.into_owned()));
    }
    Ok(git(dir, &["log", "-1", "--format=%ct", "--", "."])
        .and_then(|t| t.parse().ok())
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_hash_covers_paths_and_contents_but_not_build_output() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("src")).unwrap();
        fs::write(d.path().join("Cargo.toml"), "[package]\n").unwrap();
        fs::write(d.path().join("src/lib.rs"), "fn a() {}\n").unwrap();
        let base = source_sha256(d.path()).unwrap();

        // Build output, the lock file and images do not count.
        fs::create_dir_all(d.path().join("target/release")).unwrap();
        fs::write(d.path().join("target/release/x"), "x").unwrap();
        fs::write(d.path().join("Cargo.lock"), "lock").unwrap();
        fs::write(d.path().join("p.sif"), "sif").unwrap();
        assert_eq!(source_sha256(d.path()).unwrap(), base);

        // One character of source does; so does a rename.
        fs::write(d.path().join("src/lib.rs"), "fn b() {}\n").unwrap();
        let changed = source_sha256(d.path()).unwrap();
        assert_ne!(changed, base);
        fs::rename(d.path().join("src/lib.rs"), d.path().join("src/main.rs")).unwrap();
        assert_ne!(source_sha256(d.path()).unwrap(), changed);
    }
}
