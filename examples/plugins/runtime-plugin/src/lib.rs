//! Example vessel plugin `example.com/runtime-plugin`: records what happens
//! to every container.
//!
//! - PostStartProcess writes the container's pid to `post-start.pid`.
//! - MonitorContainer replaces the runtime's monitor: it forwards the
//!   signals the runtime receives, waits for the container, writes
//!   `pid N` and `status S` (the exit code, 128+N for a signal) to
//!   `monitor.status`, and returns the real wait status.
//!
//! The files go to `$VESSEL_RUNTIME_PLUGIN_DIR` when set, else to the
//! plugin's state dir for the calling user (root's under
//! `$VESSEL_ROOT/var/lib/vessel/plugins/`, a user's under
//! `~/.local/state/vessel/plugins/`), so it works for every user. A file
//! that cannot be written fails the callback, which stops the container.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use vessel_plugin_api::{host, log, Plugin};

/// Overrides where the records go.
pub const DIR_ENV: &str = "VESSEL_RUNTIME_PLUGIN_DIR";
/// Written by PostStartProcess.
pub const PID_FILE: &str = "post-start.pid";
/// Written by MonitorContainer.
pub const STATUS_FILE: &str = "monitor.status";

const SIGCHLD: i32 = 17;
const WNOHANG: i32 = 1;
const WALL: i32 = 0x4000_0000;

// The plugin depends on vessel-plugin-api only; these come from the C
// library every Rust program on Linux links anyway.
extern "C" {
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
    fn kill(pid: i32, sig: i32) -> i32;
}

/// Reaps `pid` if it has exited: its raw wait status.
fn try_wait(pid: i32) -> io::Result<Option<i32>> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid only writes the int we pass.
        let r = unsafe { waitpid(pid, &mut status, WNOHANG | WALL) };
        if r == pid {
            if exit_code(status).is_some() {
                return Ok(Some(status));
            }
            // Stopped or continued: keep waiting.
            return Ok(None);
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

/// The shell's view of a raw wait status: the exit code, or 128+N for a
/// signal; none while the process has not ended.
pub fn exit_code(raw: i32) -> Option<i32> {
    let sig = raw & 0x7f;
    if sig == 0 {
        Some((raw >> 8) & 0xff)
    } else if sig != 0x7f {
        Some(128 + sig)
    } else {
        None
    }
}

fn records_dir() -> Result<PathBuf, String> {
    if let Some(d) = std::env::var_os(DIR_ENV) {
        return Ok(PathBuf::from(d));
    }
    host::state_dir().map_err(|e| format!("{DIR_ENV} is not set and there is no state dir: {e}"))
}

fn record(file: &str, text: &str) -> vessel_plugin_api::Result<()> {
    let path = records_dir()?.join(file);
    std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    log::debug(format!("wrote {}", path.display()));
    Ok(())
}

/// Builds the plugin; the runtime calls it once when it loads the library.
pub fn build() -> Plugin {
    Plugin::new("example.com/runtime-plugin")
        .author("vessel developers")
        .version("0.1.0")
        .description("Records each container's pid and exit status")
        .post_start_process(|_config, pid| record(PID_FILE, &format!("{pid}\n")))
        .monitor_container(|_config, pid, signals| {
            log::info(format!("monitoring container process {pid}"));
            let raw = loop {
                if let Some(raw) = try_wait(pid)? {
                    break raw;
                }
                // The runtime reports SIGCHLD when the container changes state;
                // the timeout only guards against a missed one.
                match signals.next(Some(Duration::from_secs(1))) {
                    Some(SIGCHLD) | None => {}
                    Some(sig) => {
                        log::debug(format!("forwarding signal {sig} to {pid}"));
                        // SAFETY: plain syscall.
                        unsafe { kill(pid, sig) };
                    }
                }
            };
            let code = exit_code(raw).unwrap_or(255);
            log::info(format!("container process {pid} ended with status {code}"));
            record(STATUS_FILE, &format!("pid {pid}\nstatus {code}\n"))?;
            Ok(raw)
        })
}

vessel_plugin_api::export_plugin!(build);

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use vessel_plugin_test::{self as testing, FakeEngineConfig, FakeSignals};

    fn with_records<T>(f: impl FnOnce(&std::path::Path) -> T) -> T {
        let dir = tempfile::tempdir().unwrap();
        let records = dir.path().join("state");
        std::fs::create_dir(&records).unwrap();
        testing::set_state_dir(Some(&records));
        let r = f(&records);
        testing::set_state_dir(None);
        r
    }

    #[test]
    // The monitor under test reaps the child with waitpid.
    #[allow(clippy::zombie_processes)]
    fn monitor_records_and_returns_the_real_status() {
        with_records(|records| {
            let child = Command::new("sh").args(["-c", "exit 7"]).spawn().unwrap();
            let pid = child.id() as i32;
            let raw = testing::run_monitor_container(
                &build(),
                &FakeEngineConfig::default(),
                pid,
                &mut FakeSignals::default(),
            )
            .unwrap();
            assert_eq!(exit_code(raw), Some(7));
            assert_eq!(
                std::fs::read_to_string(records.join(STATUS_FILE)).unwrap(),
                format!("pid {pid}\nstatus 7\n")
            );
        });
    }

    #[test]
    // The monitor under test reaps the child with waitpid.
    #[allow(clippy::zombie_processes)]
    fn monitor_forwards_signals() {
        with_records(|records| {
            let child = Command::new("sleep").arg("30").spawn().unwrap();
            let pid = child.id() as i32;
            let raw = testing::run_monitor_container(
                &build(),
                &FakeEngineConfig::default(),
                pid,
                &mut FakeSignals::new(&[SIGCHLD, 15]),
            )
            .unwrap();
            assert_eq!(exit_code(raw), Some(128 + 15));
            let text = std::fs::read_to_string(records.join(STATUS_FILE)).unwrap();
            assert!(text.ends_with("status 143\n"), "{text}");
        });
    }

    #[test]
    fn post_start_writes_the_pid_or_fails() {
        with_records(|records| {
            testing::run_post_start_process(&build(), &FakeEngineConfig::default(), 4242).unwrap();
            assert_eq!(
                std::fs::read_to_string(records.join(PID_FILE)).unwrap(),
                "4242\n"
            );
            std::fs::remove_dir_all(records).unwrap();
            let e = testing::run_post_start_process(&build(), &FakeEngineConfig::default(), 1)
                .unwrap_err();
            assert!(e.message.starts_with("writing "), "{}", e.message);
            assert!(!e.panicked);
        });
    }

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(exit_code(7 << 8), Some(7));
        assert_eq!(exit_code(9), Some(137));
        assert_eq!(exit_code(0x137f), None);
    }
}
