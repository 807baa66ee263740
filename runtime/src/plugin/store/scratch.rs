//! Private scratch dirs of writers (the install's copy of the image and of
//! its library) inside the store, under `.scratch/`, instead of in /tmp: a
//! writer that is killed leaves its scratch where the next writer's sweep
//! ([`Store::lock`]) removes it, not a copy of the plugin in /tmp forever.
//!
//! A scratch dir is pinned by an exclusive flock its writer holds until it
//! drops the dir; the sweep removes only dirs it can lock, so it never
//! pulls the files from under a running install (scratch dirs are made
//! before the writer lock is taken).

use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};

use super::{io_err, mkdir, open_dir_nofollow, remove_tree, Store, StoreError};

/// The scratch sub-directory of the plugin dir.
pub(super) const SCRATCH_DIR: &str = ".scratch";

/// A private (0700, the caller's) scratch dir inside the store, removed on
/// drop; if the process dies first, the next store writer removes it.
#[derive(Debug)]
pub struct Scratch {
    dir: PathBuf,
    _pin: Flock<File>,
}

impl Scratch {
    /// The scratch dir.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = remove_tree(&self.dir) {
            tracing::warn!("{e}");
        }
        // Leave no empty `.scratch/` behind (another writer's scratch keeps it).
        if let Some(parent) = self.dir.parent() {
            let _ = fs::remove_dir(parent);
        }
    }
}

impl Store {
    fn scratch_root(&self) -> PathBuf {
        self.dir.join(SCRATCH_DIR)
    }

    /// Makes a new private scratch dir in the store (creating the plugin dir
    /// if needed, after the same ownership checks as [`Store::lock`]).
    pub fn scratch(&self) -> Result<Scratch, StoreError> {
        crate::trust::secure::check_root_owned(&self.dir)?;
        mkdir(&self.dir)?;
        let root = self.scratch_root();
        // A writer dropping its scratch may remove an empty `.scratch/`
        // between our mkdir and the tempdir in it: try again.
        let mut tries = 0;
        let dir = loop {
            make_private_dir(&root)?;
            match tempfile::Builder::new()
                .prefix("install-")
                .permissions(fs::Permissions::from_mode(0o700))
                .tempdir_in(&root)
            {
                Ok(d) => break d.keep(),
                Err(e) if e.kind() == io::ErrorKind::NotFound && tries < 10 => tries += 1,
                Err(e) => return Err(io_err(&root)(e)),
            }
        };
        let pin = open_dir_nofollow(&dir).map_err(io_err(&dir)).and_then(|f| {
            Flock::lock(f, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| io_err(&dir)(e.into()))
        });
        match pin {
            Ok(pin) => Ok(Scratch { dir, _pin: pin }),
            Err(e) => {
                let _ = remove_tree(&dir);
                Err(e)
            }
        }
    }

    /// Removes the scratch dirs no live writer holds (under the writer lock).
    pub(super) fn sweep_scratch(&self) -> Result<(), StoreError> {
        let root = self.scratch_root();
        let Ok(rd) = fs::read_dir(&root) else {
            return Ok(());
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(f) = open_dir_nofollow(&p) else {
                // Not a dir (nothing vessel makes there): remove it as is.
                let _ = fs::remove_file(&p);
                continue;
            };
            match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
                Ok(_held) => {
                    tracing::debug!(dir = %p.display(), "plugin store: removing a dead writer's scratch");
                    remove_tree(&p)?;
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {}
                Err((_, e)) => return Err(io_err(&p)(e.into())),
            }
        }
        let _ = fs::remove_dir(&root);
        Ok(())
    }
}

/// Creates `dir` 0700 if missing and checks it is a real dir owned by us
/// and private (a planted symlink or a dir someone else made is refused).
fn make_private_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err(dir)(e)),
    }
    let f = open_dir_nofollow(dir).map_err(io_err(dir))?;
    let st = nix::sys::stat::fstat(f.as_raw_fd()).map_err(|e| io_err(dir)(e.into()))?;
    if st.st_uid != nix::unistd::geteuid().as_raw() || st.st_mode & 0o077 != 0 {
        return Err(io_err(dir)(io::Error::other(
            "not a private dir of this user (expected mode 0700)",
        )));
    }
    Ok(())
}

/// Takes the exclusive writer lock on `f` (the store's `.lock` at `path`).
/// A writer that waits says so after a second (another vessel holds the
/// lock, e.g. a slow Install callback), and SIGINT, SIGTERM or SIGHUP end
/// the wait with an error instead of the default action, so the caller
/// still cleans up (its scratch dir).
pub(super) fn wait_for_lock(f: File, path: &Path) -> Result<Flock<File>, StoreError> {
    use std::time::{Duration, Instant};
    let mut f = match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(l) => return Ok(l),
        Err((f, nix::errno::Errno::EWOULDBLOCK)) => f,
        Err((_, e)) => return Err(io_err(path)(e.into())),
    };
    let mut stop = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        stop.add(s);
    }
    let mut old = SigSet::empty();
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&stop), Some(&mut old))
        .map_err(|e| io_err(path)(e.into()))?;
    let start = Instant::now();
    let mut said = false;
    let result = loop {
        match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            Ok(l) => break Ok(l),
            Err((back, nix::errno::Errno::EWOULDBLOCK)) => f = back,
            Err((_, e)) => break Err(io_err(path)(e.into())),
        }
        if !said && start.elapsed() >= Duration::from_secs(1) {
            tracing::warn!("waiting for the plugin store lock (held by another vessel)");
            said = true;
        }
        let step = libc::timespec {
            tv_sec: 0,
            tv_nsec: 50_000_000,
        };
        // SAFETY: a valid set and timespec; no siginfo is asked for.
        let r = unsafe { libc::sigtimedwait(stop.as_ref(), std::ptr::null_mut(), &step) };
        if r > 0 {
            let name = Signal::try_from(r).map_or("a signal", Signal::as_str);
            break Err(StoreError::Interrupted(name));
        }
    };
    // A stop signal the caller itself blocked (and so still pending) is left
    // for it; the mask is as before.
    let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    result
}
