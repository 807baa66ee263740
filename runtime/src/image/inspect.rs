//! `vessel inspect IMAGE`: the labels, runscript and environment scripts of
//! a SIF image or sandbox directory, where Apptainer's images keep them.
//! Labels come from the SIF's JSON.Generic labels object when it has one,
//! else from `/.singularity.d/labels.json`; files inside a SIF are read
//! from its squashfs with `unsquashfs -cat` (no mount), files inside a
//! sandbox through openat2 `RESOLVE_IN_ROOT`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use super::{Image, ImageError};

/// What `inspect` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Info {
    /// The image's labels.
    pub labels: BTreeMap<String, String>,
    /// The runscript's text, if the image has one.
    pub runscript: Option<String>,
    /// Each `/.singularity.d/env/*.sh` script's name and text, in order.
    pub environment: BTreeMap<String, String>,
}

const MAX: u64 = 1 << 20;

/// Reads the metadata of the image at `path`.
pub fn inspect(path: &Path) -> Result<Info, ImageError> {
    let image = Image::open(path)?;
    let read = |inside: &str| -> Option<String> {
        match &image {
            Image::Sandbox(dir) => read_in_root(dir, inside),
            Image::Squashfs { path, offset, .. } => squashfs_cat(path, *offset, inside),
        }
    };
    let labels_text = super::oci::sif_object(path, super::oci::LABELS_OBJECT)
        .and_then(|b| String::from_utf8(b).ok())
        .or_else(|| read(".singularity.d/labels.json"));
    let labels = labels_text
        .and_then(|t| serde_json::from_str::<BTreeMap<String, serde_json::Value>>(&t).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect();
    let names = match &image {
        Image::Sandbox(dir) => list_sandbox_env(dir),
        Image::Squashfs { path, offset, .. } => list_squashfs_env(path, *offset),
    };
    let environment = names
        .into_iter()
        .filter_map(|n| {
            let text = read(&format!(".singularity.d/env/{n}"))?;
            Some((n, text))
        })
        .collect();
    Ok(Info {
        labels,
        runscript: read(".singularity.d/runscript"),
        environment,
    })
}

fn squashfs_cat(file: &Path, offset: u64, inside: &str) -> Option<String> {
    let o = Command::new("unsquashfs")
        .arg("-o")
        .arg(offset.to_string())
        .arg("-cat")
        .arg(file)
        .arg(inside)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !o.status.success() || o.stdout.len() as u64 > MAX {
        return None;
    }
    String::from_utf8(o.stdout).ok()
}

fn env_name_ok(n: &str) -> bool {
    n.ends_with(".sh") && !n.contains('/') && !n.starts_with('.')
}

fn list_squashfs_env(file: &Path, offset: u64) -> Vec<String> {
    let o = Command::new("unsquashfs")
        .arg("-o")
        .arg(offset.to_string())
        .arg("-l")
        .arg(file)
        .arg(".singularity.d/env")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    let Ok(o) = o else { return Vec::new() };
    let mut names: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("squashfs-root/.singularity.d/env/"))
        .filter(|n| env_name_ok(n))
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

fn list_sandbox_env(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join(".singularity.d/env"))
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| env_name_ok(n))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Reads `inside` of the sandbox `root`, resolved as if `root` were `/`.
fn read_in_root(root: &Path, inside: &str) -> Option<String> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
    use std::os::fd::FromRawFd;
    let rootfd = std::fs::File::open(root).ok()?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = nix::fcntl::openat2(std::os::fd::AsRawFd::as_raw_fd(&rootfd), inside, how).ok()?;
    // SAFETY: openat2 returned a fresh descriptor that nothing else owns.
    let f = unsafe { std::fs::File::from_raw_fd(fd) };
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut s = String::new();
    f.take(MAX).read_to_string(&mut s).ok()?;
    Some(s)
}
