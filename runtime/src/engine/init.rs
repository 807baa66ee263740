//! The init of a container with its own PID namespace (`--pid`), as
//! `docker --init` (tini) and Apptainer's shim do: the command would
//! otherwise be PID 1, which the kernel shields from every signal it has
//! no handler for (SIGTERM to a `sleep` does nothing) and which inherits
//! every orphan without reaping it.
//!
//! The container process stays PID 1 and forks the command, in a process
//! group of its own. It forwards the signals the runtime forwards to that
//! group, reaps every child, and exits with the
//! command's status (128+N when a signal killed it) as soon as the command
//! ends; the kernel then kills whatever is left in the namespace.

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::Pid;

use super::monitor::FORWARDED;

/// Runs the init loop for `command` (a child of this process) until it
/// exits, then exits this process with its status. The forwarded signals
/// and SIGCHLD are already blocked (the runtime blocked them before the
/// clone), so they are taken synchronously here.
pub fn run(command: Pid) -> ! {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    set.add(Signal::SIGCHLD);
    loop {
        if let Some(code) = reap_all(command) {
            exit(code);
        }
        match set.wait() {
            Ok(Signal::SIGCHLD) => {}
            Ok(sig) => {
                // To the command's process group, as `tini -g` does: a
                // shell's children get Ctrl-C as on a terminal.
                let _ = nix::sys::signal::kill(Pid::from_raw(-command.as_raw()), sig);
            }
            Err(_) => {}
        }
    }
}

/// Reaps every child that has exited; the command's exit code once it has.
fn reap_all(command: Pid) -> Option<i32> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status int we own.
        let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG | libc::__WALL) };
        if r == 0 {
            return None;
        }
        if r < 0 {
            match Errno::last() {
                Errno::EINTR => continue,
                // No child at all: the command is gone.
                _ => return Some(crate::EXIT_RUNTIME_FAILURE),
            }
        }
        if r == command.as_raw() {
            if libc::WIFEXITED(status) {
                return Some(libc::WEXITSTATUS(status));
            }
            if libc::WIFSIGNALED(status) {
                return Some(128 + libc::WTERMSIG(status));
            }
        }
    }
}

fn exit(code: i32) -> ! {
    // SAFETY: _exit skips atexit handlers and stdio flushing that belong to
    // the runtime's copy of the process state.
    unsafe { libc::_exit(code) }
}
