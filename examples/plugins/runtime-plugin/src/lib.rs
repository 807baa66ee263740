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

use std::path::PathBuf;
use std::time::Duration;

use vessel_plugin_api::{host, log, Plugin, Signal};

/// Overrides where the records go.
pub const DIR_ENV: &str = "VESSEL_RUNTIME_PLUGIN_DIR";
/// Written by PostStartProcess.
pub const PID_FILE: &str = "post-start.pid";
/// Written by MonitorContainer.
pub const STATUS_FILE: &str = "monitor.status";

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
            let status = loop {
                if let Some(status) = pid.try_wait()? {
                    break status;
                }
                // The runtime reports SIGCHLD when the container changes state;
                // the timeout only guards against a missed one.
                match signals.next(Some(Duration::from_secs(1))) {
                    Some(Signal::CHLD) | None => {}
                    Some(sig) => {
                        log::debug(format!("forwarding {sig} to {pid}"));
                        // It may have ended meanwhile: the next try_wait tells.
                        let _ = pid.signal(sig);
                    }
                }
            };
            let code = status.exit_code().unwrap_or(255);
            log::info(format!("container process {pid} ended with status {code}"));
            record(STATUS_FILE, &format!("pid {pid}\nstatus {code}\n"))?;
            Ok(status)
        })
}

vessel_plugin_api::export_plugin!(build);

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use vessel_plugin_api::Pid;
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
            let pid = Pid::from_raw(child.id() as i32);
            let status = testing::run_monitor_container(
                &build(),
                &FakeEngineConfig::default(),
                pid,
                &mut FakeSignals::default(),
            )
            .unwrap();
            assert_eq!(status.exit_code(), Some(7));
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
            let status = testing::run_monitor_container(
                &build(),
                &FakeEngineConfig::default(),
                Pid::from_raw(child.id() as i32),
                &mut FakeSignals::new(&[Signal::CHLD, Signal::TERM]),
            )
            .unwrap();
            assert_eq!(status.signal(), Some(Signal::TERM));
            assert_eq!(status.exit_code(), Some(128 + 15));
            let text = std::fs::read_to_string(records.join(STATUS_FILE)).unwrap();
            assert!(text.ends_with("status 143\n"), "{text}");
        });
    }

    #[test]
    fn post_start_writes_the_pid_or_fails() {
        with_records(|records| {
            testing::run_post_start_process(
                &build(),
                &FakeEngineConfig::default(),
                Pid::from_raw(4242),
            )
            .unwrap();
            assert_eq!(
                std::fs::read_to_string(records.join(PID_FILE)).unwrap(),
                "4242\n"
            );
            std::fs::remove_dir_all(records).unwrap();
            let e = testing::run_post_start_process(
                &build(),
                &FakeEngineConfig::default(),
                Pid::from_raw(1),
            )
            .unwrap_err();
            assert!(e.message.starts_with("writing "), "{}", e.message);
            assert!(!e.panicked);
        });
    }
}
