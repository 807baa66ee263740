//! The caller's `/etc/passwd` and `/etc/group` entries inside the container.
//!
//! In a user namespace (unprivileged, or `--userns`) the caller keeps its
//! uid, which the image's files usually do not know: `id -un`, `whoami`
//! and anything that looks the user up would fail. As Apptainer does, the
//! image's files plus the caller's entries are written into the run's
//! private work dir and bound read-only over the image's. With
//! `--fakeroot` the caller is root, which the image knows.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::config::{Bind, BindOrigin};
use super::EngineError;

/// Largest image passwd/group file read (an image is hostile).
const MAX_FILE: u64 = 4 << 20;

/// The caller as the host knows it, looked up before the container starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Its uid (the same inside the user namespace).
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
    /// Its user name.
    pub name: String,
    /// Its GECOS field.
    pub gecos: String,
    /// Its login shell.
    pub shell: String,
    /// The name of its primary group.
    pub group: String,
}

impl Caller {
    /// The calling user from the host's user database; `None` when the
    /// host does not know it (nothing to add then).
    pub fn current() -> Option<Self> {
        let uid = nix::unistd::getuid();
        let gid = nix::unistd::getgid();
        let user = nix::unistd::User::from_uid(uid).ok()??;
        let group = nix::unistd::Group::from_gid(gid)
            .ok()
            .flatten()
            .map_or_else(|| user.name.clone(), |g| g.name);
        Some(Self {
            uid: uid.as_raw(),
            gid: gid.as_raw(),
            gecos: user.gecos.to_string_lossy().into_owned(),
            shell: user.shell.to_string_lossy().into_owned(),
            name: user.name,
            group,
        })
    }
}

fn clean(field: &str) -> String {
    field.replace([':', '\n'], " ")
}

/// The image's passwd with the caller's entry (replacing one with the same
/// name or uid), whose home is `home`.
pub fn passwd_with(image: &str, c: &Caller, home: &str) -> String {
    let mut out = String::new();
    for line in image.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.first() == Some(&c.name.as_str()) || f.get(2) == Some(&c.uid.to_string().as_str()) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&format!(
        "{}:x:{}:{}:{}:{}:{}\n",
        clean(&c.name),
        c.uid,
        c.gid,
        clean(&c.gecos),
        clean(home),
        clean(&c.shell)
    ));
    out
}

/// The image's group file with the caller's primary group added when the
/// image has no group with its gid.
pub fn group_with(image: &str, c: &Caller) -> String {
    let mut out = String::new();
    let gid = c.gid.to_string();
    let mut found = false;
    for line in image.lines() {
        found |= line.split(':').nth(2) == Some(gid.as_str());
        out.push_str(line);
        out.push('\n');
    }
    if !found {
        out.push_str(&format!(
            "{}:x:{}:{}\n",
            clean(&c.group),
            c.gid,
            clean(&c.name)
        ));
    }
    out
}

/// Writes the generated files into `workdir` and returns the read-only
/// binds over the image's `/etc/passwd` and `/etc/group`. A file the image
/// lacks is left alone (there is no mount point for it).
pub fn binds(
    root: &Path,
    workdir: &Path,
    caller: &Caller,
    home: &str,
) -> Result<Vec<Bind>, EngineError> {
    let mut out = Vec::new();
    for (name, make) in [
        (
            "passwd",
            &(|t: &str| passwd_with(t, caller, home)) as &dyn Fn(&str) -> String,
        ),
        ("group", &|t: &str| group_with(t, caller)),
    ] {
        let inside = Path::new("/etc").join(name);
        let Ok(bytes) = super::sys::read_in_root(root, &inside, MAX_FILE) else {
            tracing::debug!("the image has no readable {}: left alone", inside.display());
            continue;
        };
        let text = make(&String::from_utf8_lossy(&bytes));
        let src: PathBuf = workdir.join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&src)
            .and_then(|mut f| f.write_all(text.as_bytes()).map(|_| f))
            .map_err(|e| EngineError::Setup {
                what: format!("writing {}", src.display()),
                reason: super::io_reason(&e),
            })?;
        let _ = f.flush();
        out.push(Bind {
            src,
            dst: inside,
            readonly: true,
            origin: BindOrigin::Engine,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Caller {
        Caller {
            uid: 1000,
            gid: 1000,
            name: "alice".into(),
            gecos: "Alice A".into(),
            shell: "/bin/bash".into(),
            group: "alice".into(),
        }
    }

    #[test]
    fn the_caller_replaces_its_name_or_uid_and_is_added() {
        let image = "root:x:0:0:root:/root:/bin/sh\nalice:x:5:5::/:/bin/sh\nold:x:1000:1:::\n";
        assert_eq!(
            passwd_with(image, &alice(), "/home/alice"),
            "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000:Alice A:/home/alice:/bin/bash\n"
        );
        assert_eq!(
            group_with("root:x:0:\n", &alice()),
            "root:x:0:\nalice:x:1000:alice\n"
        );
        assert_eq!(group_with("users:x:1000:\n", &alice()), "users:x:1000:\n");
    }

    #[test]
    fn files_go_to_the_work_dir_and_bind_read_only() {
        let root = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::fs::write(
            root.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\n",
        )
        .unwrap();
        let b = binds(root.path(), work.path(), &alice(), "/home/alice").unwrap();
        assert_eq!(
            b,
            [Bind {
                src: work.path().join("passwd"),
                dst: "/etc/passwd".into(),
                readonly: true,
                origin: BindOrigin::Engine,
            }]
        );
        let text = std::fs::read_to_string(work.path().join("passwd")).unwrap();
        assert!(text.ends_with("alice:x:1000:1000:Alice A:/home/alice:/bin/bash\n"));
        // A second run in the same dir refuses to reuse a file.
        assert!(binds(root.path(), work.path(), &alice(), "/h").is_err());
    }
}
