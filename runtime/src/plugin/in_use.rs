//! "In use" as `uninstall` and `disable` see it: a process running a
//! container holds, for its lifetime, a shared flock on the installed
//! manifest (`plugin.manifest` in the files dir) of each plugin whose
//! runtime callbacks it loaded. A writer finds a plugin in use when it cannot
//! take that lock exclusively, and counts the holders in `/proc/locks`.
//!
//! The manifest, not the files dir, is locked: the dir's flock is the
//! store's pin ([`super::store::Store::pin`]), which every process that
//! opened the library holds, containers or not. The manifest is
//! world-readable, so an unprivileged user's container can hold it too.

use std::fs::File;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Mutex;

use nix::fcntl::{Flock, FlockArg};

use super::store::{Meta, Store, PLUGIN_MANIFEST};

/// The locks this process holds, one per plugin, until it exits.
static HOLDS: Mutex<Vec<(String, Flock<File>)>> = Mutex::new(Vec::new());

fn open_manifest(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
}

/// Marks `meta`'s plugin in use by this process until it exits. Best
/// effort: a plugin whose manifest cannot be locked still runs (the loader
/// already checked its files); it is then only not reported as in use.
pub fn hold(store: &Store, meta: &Meta) {
    let mut holds = HOLDS.lock().unwrap_or_else(|p| p.into_inner());
    if holds.iter().any(|(n, _)| n == meta.name()) {
        return;
    }
    let path = store.files_dir(meta).join(PLUGIN_MANIFEST);
    let held = open_manifest(&path)
        .map_err(|e| e.to_string())
        .and_then(|f| Flock::lock(f, FlockArg::LockShared).map_err(|(_, e)| e.to_string()));
    match held {
        Ok(lock) => holds.push((meta.name().to_owned(), lock)),
        Err(e) => {
            tracing::warn!(plugin = meta.name(), path = %path.display(), error = %e, "cannot mark the plugin in use")
        }
    }
}

/// How many processes (running containers) hold `meta`'s plugin in use;
/// 0 when none does.
pub fn users(store: &Store, meta: &Meta) -> usize {
    // A meta's install id is data: only a well-formed one names a files dir.
    if !super::store::validate_install_id(&meta.install_id) {
        return 0;
    }
    let path = store.files_dir(meta).join(PLUGIN_MANIFEST);
    let Ok(f) = open_manifest(&path) else {
        // No manifest: nobody can hold it.
        return 0;
    };
    let Ok(st) = f.metadata() else { return 0 };
    match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(_free) => 0,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => holders(&st).max(1),
        Err(_) => 0,
    }
}

/// The distinct pids `/proc/locks` shows holding a flock on the file of `st`.
fn holders(st: &std::fs::Metadata) -> usize {
    let Ok(text) = std::fs::read_to_string("/proc/locks") else {
        return 0;
    };
    let dev = st.dev();
    let want = format!(
        "{:02x}:{:02x}:{}",
        libc::major(dev),
        libc::minor(dev),
        st.ino()
    );
    let mut pids: Vec<&str> = text
        .lines()
        .filter_map(|l| {
            // "1: FLOCK  ADVISORY  READ 1234 08:01:5678 0 EOF"; blocked
            // waiters are marked "->" and hold nothing.
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 6 && f[1] == "FLOCK" && f[5] == want).then(|| f[4])
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids.len()
}
