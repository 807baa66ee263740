//! Waiting for the container and forwarding signals to it.
//!
//! The runtime blocks the forwarded signals and SIGCHLD before the container
//! is created and takes them synchronously with sigtimedwait, so no handler
//! runs at an awkward moment and none is missed between clone and wait.

use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;

use super::EngineError;

/// Signals the runtime passes on to the container.
pub const FORWARDED: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Something the runtime received while the container runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// A signal to pass on. The container runs in a session of its own
    /// (no controlling terminal), so signals the terminal generates
    /// (Ctrl-C) reach only the runtime and are passed on like any other:
    /// `from_terminal` is always false and kept for monitors that still
    /// filter on it.
    Signal {
        /// The signal.
        signal: Signal,
        /// Always false (see above).
        from_terminal: bool,
    },
    /// A child changed state: time to try waitpid.
    Child,
}

/// The blocked signal set and the mask to restore; the source of received
/// signals handed to a monitor.
#[derive(Debug)]
pub struct Signals {
    set: SigSet,
    old: SigSet,
    restored: bool,
}

impl Signals {
    /// Blocks the forwarded signals and SIGCHLD (before the container exists).
    pub fn block() -> Result<Self, EngineError> {
        let mut set = SigSet::empty();
        for s in FORWARDED {
            set.add(s);
        }
        set.add(Signal::SIGCHLD);
        let mut old = SigSet::empty();
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old))
            .map_err(|e| EngineError::sys("blocking signals", e))?;
        Ok(Self {
            set,
            old,
            restored: false,
        })
    }

    /// The signal mask from before [`Signals::block`], for the container.
    pub fn original_mask(&self) -> &SigSet {
        &self.old
    }

    /// Waits up to `timeout` (forever with `None`) for a signal.
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<Option<Received>, EngineError> {
        let ts = timeout.map(|t| libc::timespec {
            tv_sec: t.as_secs() as libc::time_t,
            tv_nsec: t.subsec_nanos() as libc::c_long,
        });
        // SAFETY: the set and timespec are valid for the call.
        let r = unsafe {
            libc::sigtimedwait(
                self.set.as_ref(),
                std::ptr::null_mut(),
                ts.as_ref().map_or(std::ptr::null(), |t| t as *const _),
            )
        };
        if r < 0 {
            return match Errno::last() {
                Errno::EAGAIN | Errno::EINTR => Ok(None),
                e => Err(EngineError::sys("waiting for signals", e)),
            };
        }
        let signal = Signal::try_from(r).map_err(|e| EngineError::sys("waiting for signals", e))?;
        if signal == Signal::SIGCHLD {
            return Ok(Some(Received::Child));
        }
        Ok(Some(Received::Signal {
            signal,
            from_terminal: false,
        }))
    }

    /// Restores the original mask (idempotent; also done on drop).
    pub fn restore(&mut self) {
        if !self.restored {
            let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.old), None);
            self.restored = true;
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        self.restore();
    }
}

/// Reaps `pid` if it has exited: its raw wait status.
pub fn try_reap(pid: Pid) -> Result<Option<i32>, EngineError> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid writes the status int we own.
        let r = unsafe { libc::waitpid(pid.as_raw(), &mut status, libc::WNOHANG | libc::__WALL) };
        match r {
            0 => return Ok(None),
            r if r == pid.as_raw() => {
                if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
                    return Ok(Some(status));
                }
                // Stopped/continued: keep waiting.
                return Ok(None);
            }
            _ => match Errno::last() {
                Errno::EINTR => continue,
                e => return Err(EngineError::sys("waiting for the container", e)),
            },
        }
    }
}

/// Blocks until `pid` exits: its raw wait status.
pub fn reap(pid: Pid) -> Result<i32, EngineError> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid writes the status int we own.
        let r = unsafe { libc::waitpid(pid.as_raw(), &mut status, libc::__WALL) };
        if r == pid.as_raw() && (libc::WIFEXITED(status) || libc::WIFSIGNALED(status)) {
            return Ok(status);
        }
        if r < 0 && Errno::last() != Errno::EINTR {
            return Err(EngineError::sys("waiting for the container", Errno::last()));
        }
    }
}

/// The default monitor: forwards received signals to `pid` until it exits,
/// then returns its raw wait status.
pub fn wait_forwarding(pid: Pid, signals: &mut Signals) -> Result<i32, EngineError> {
    loop {
        if let Some(status) = try_reap(pid)? {
            return Ok(status);
        }
        if let Some(Received::Signal {
            signal,
            from_terminal: false,
        }) = signals.wait(None)?
        {
            tracing::debug!("forwarding {signal} to {pid}");
            let _ = nix::sys::signal::kill(pid, signal);
        }
    }
}

/// The exit status a raw wait status stands for: the exit code, or 128+N
/// for a signal, as shells report it.
pub fn exit_code(raw: i32) -> i32 {
    if libc::WIFEXITED(raw) {
        libc::WEXITSTATUS(raw)
    } else if libc::WIFSIGNALED(raw) {
        128 + libc::WTERMSIG(raw)
    } else {
        crate::EXIT_RUNTIME_FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_shell_conventions() {
        assert_eq!(exit_code(7 << 8), 7);
        assert_eq!(exit_code(9), 137);
        assert_eq!(exit_code(15), 143);
    }
}
