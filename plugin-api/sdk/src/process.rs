//! Typed process ids, signals and wait statuses, so that a monitor or
//! post-start plugin needs no hand-written FFI and no magic numbers.

use std::fmt;
use std::io;

/// A process id, as the runtime hands it to PostStartProcess and
/// MonitorContainer: the container's process, in the runtime's pid
/// namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pid(i32);

impl Pid {
    /// The pid with number `raw`.
    pub const fn from_raw(raw: i32) -> Self {
        Self(raw)
    }

    /// The pid's number.
    pub const fn as_raw(self) -> i32 {
        self.0
    }

    /// Sends `signal` to this process.
    ///
    /// A pid of 0 or below would address a process group (or every process
    /// the caller may signal), never one process: refused with
    /// `InvalidInput`.
    pub fn signal(self, signal: Signal) -> io::Result<()> {
        self.check()?;
        // SAFETY: kill takes two integers and touches no memory of ours.
        if unsafe { libc::kill(self.0, signal.as_raw()) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Reaps this process if it has ended, without blocking: its wait
    /// status, or none while it runs (or was only stopped or continued).
    /// The process must be a child of the caller, as the container's is of
    /// the runtime (and so of a monitor callback running in it).
    pub fn try_wait(self) -> io::Result<Option<WaitStatus>> {
        self.wait_with(libc::WNOHANG)
    }

    /// Waits until this process ends and reaps it: its wait status.
    pub fn wait(self) -> io::Result<WaitStatus> {
        loop {
            if let Some(status) = self.wait_with(0)? {
                return Ok(status);
            }
        }
    }

    fn wait_with(self, flags: i32) -> io::Result<Option<WaitStatus>> {
        self.check()?;
        loop {
            let mut raw = 0;
            // SAFETY: waitpid writes only the int we pass. __WALL: the
            // container's process may have been started with clone flags
            // that make it a non-SIGCHLD child.
            let r = unsafe { libc::waitpid(self.0, &mut raw, flags | libc::__WALL) };
            if r == self.0 {
                let status = WaitStatus(raw);
                // Stopped or continued: it has not ended.
                return Ok(status.exit_code().map(|_| status));
            }
            if r == 0 {
                return Ok(None);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    fn check(self) -> io::Result<()> {
        if self.0 > 0 {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("pid {} does not name one process", self.0),
            ))
        }
    }
}

impl From<i32> for Pid {
    fn from(raw: i32) -> Self {
        Self(raw)
    }
}

impl From<Pid> for i32 {
    fn from(pid: Pid) -> Self {
        pid.0
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A signal number (Linux numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Signal(i32);

macro_rules! signals {
    ($($name:ident = $libc:ident),* $(,)?) => {
        impl Signal {
            $(
                #[doc = concat!("`", stringify!($libc), "`.")]
                pub const $name: Signal = Signal(libc::$libc);
            )*

            /// The signal's name, like `SIGTERM`; none for a number without
            /// a standard name (real-time signals).
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $(libc::$libc => Some(stringify!($libc)),)*
                    _ => None,
                }
            }
        }
    };
}

signals! {
    HUP = SIGHUP, INT = SIGINT, QUIT = SIGQUIT, ILL = SIGILL, TRAP = SIGTRAP,
    ABRT = SIGABRT, BUS = SIGBUS, FPE = SIGFPE, KILL = SIGKILL, USR1 = SIGUSR1,
    SEGV = SIGSEGV, USR2 = SIGUSR2, PIPE = SIGPIPE, ALRM = SIGALRM, TERM = SIGTERM,
    CHLD = SIGCHLD, CONT = SIGCONT, STOP = SIGSTOP, TSTP = SIGTSTP, TTIN = SIGTTIN,
    TTOU = SIGTTOU, URG = SIGURG, XCPU = SIGXCPU, XFSZ = SIGXFSZ, VTALRM = SIGVTALRM,
    PROF = SIGPROF, WINCH = SIGWINCH, IO = SIGIO, PWR = SIGPWR, SYS = SIGSYS,
}

impl Signal {
    /// The signal with number `raw`.
    pub const fn from_raw(raw: i32) -> Self {
        Self(raw)
    }

    /// The signal's number.
    pub const fn as_raw(self) -> i32 {
        self.0
    }
}

impl From<i32> for Signal {
    fn from(raw: i32) -> Self {
        Self(raw)
    }
}

impl From<Signal> for i32 {
    fn from(signal: Signal) -> Self {
        signal.0
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "signal {}", self.0),
        }
    }
}

/// A raw wait status, as `waitpid` reports it and as MonitorContainer
/// returns it to the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WaitStatus(i32);

impl WaitStatus {
    /// The status of a process that exited with `code` (0-255).
    pub const fn exited(code: u8) -> Self {
        Self((code as i32) << 8)
    }

    /// The status of a process killed by `signal`.
    pub const fn signaled(signal: Signal) -> Self {
        Self(signal.0 & 0x7f)
    }

    /// The status with raw value `raw`.
    pub const fn from_raw(raw: i32) -> Self {
        Self(raw)
    }

    /// The raw value.
    pub const fn as_raw(self) -> i32 {
        self.0
    }

    /// The signal that killed the process, if one did.
    pub fn signal(self) -> Option<Signal> {
        let sig = self.0 & 0x7f;
        (sig != 0 && sig != 0x7f).then_some(Signal(sig))
    }

    /// The shell's view: the exit code, or 128+N for signal N; none when the
    /// status only reports a stop or continue.
    pub fn exit_code(self) -> Option<i32> {
        match self.0 & 0x7f {
            0 => Some((self.0 >> 8) & 0xff),
            0x7f => None,
            sig => Some(128 + sig),
        }
    }
}

impl From<WaitStatus> for i32 {
    fn from(status: WaitStatus) -> Self {
        status.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_statuses_read_like_the_shell() {
        assert_eq!(WaitStatus::exited(7).exit_code(), Some(7));
        assert_eq!(WaitStatus::exited(7).signal(), None);
        let killed = WaitStatus::signaled(Signal::KILL);
        assert_eq!(
            (killed.exit_code(), killed.signal()),
            (Some(137), Some(Signal::KILL))
        );
        // 0x137f: stopped by SIGSTOP (19), not ended.
        assert_eq!(WaitStatus::from_raw(0x137f).exit_code(), None);
        assert_eq!(WaitStatus::from_raw(0x137f).signal(), None);
    }

    #[test]
    fn signals_have_linux_numbers_and_names() {
        assert_eq!(Signal::TERM.as_raw(), 15);
        assert_eq!(Signal::CHLD.as_raw(), 17);
        assert_eq!(Signal::from_raw(15), Signal::TERM);
        assert_eq!(Signal::TERM.to_string(), "SIGTERM");
        assert_eq!(Signal::from_raw(40).to_string(), "signal 40");
    }

    #[test]
    fn a_pid_that_names_a_group_is_refused() {
        for raw in [0, -1] {
            let e = Pid::from_raw(raw).signal(Signal::TERM).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
            assert_eq!(
                Pid::from_raw(raw).try_wait().unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
        }
    }

    #[test]
    // The test reaps the child through the Pid under test.
    #[allow(clippy::zombie_processes)]
    fn a_child_is_signalled_and_reaped() {
        let child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = Pid::from_raw(child.id() as i32);
        assert_eq!(pid.try_wait().unwrap(), None);
        pid.signal(Signal::TERM).unwrap();
        let status = pid.wait().unwrap();
        assert_eq!(status.signal(), Some(Signal::TERM));
        assert_eq!(status.exit_code(), Some(143));
    }
}
