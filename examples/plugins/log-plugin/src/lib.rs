//! Example vessel plugin `example.com/log-plugin`: a global pre-run hook
//! that records who runs which vessel command (every command but
//! `plugin ...`, which the runtime never hooks).
//!
//! Each record is one line, `uid=U user=NAME command=CMD args=[...]`. It is
//! sent to syslog (authpriv.info through the `/dev/log` datagram socket;
//! skipped when there is none), appended to `commands.log` in the caller's
//! state dir (root's in `$VESSEL_ROOT/var/lib/vessel/plugins/...`, a user's
//! in `~/.local/state/vessel/plugins/...`), and, when the admin's config
//! file names one, appended to a site file:
//!
//! ```text
//! # $VESSEL_ROOT/etc/vessel/plugins/example.com/log-plugin/log-plugin.conf
//! file = /var/log/vessel-commands.log
//! ```
//!
//! Logging never blocks a command. A site file root cannot append to is a
//! warning; one a normal user cannot write (a root-only log) is skipped
//! quietly for them, their record going to their state dir only.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use vessel_plugin_api::{host, log, Plugin, PreRun};

/// The config file in the config dir.
pub const CONFIG_FILE: &str = "log-plugin.conf";

/// What the Install callback writes: syslog only.
pub const DEFAULT_CONFIG: &str = "\
# log-plugin: every vessel command is logged to syslog (authpriv.info).
# To also append each record to a file, name it here:
# file = /var/log/vessel-commands.log
";

/// syslog facility authpriv (10) and severity info (6).
const PRIORITY: u8 = 10 * 8 + 6;

/// The syslog socket.
pub const SYSLOG_SOCKET: &str = "/dev/log";

/// The per-user record file in the state dir.
pub const STATE_LOG: &str = "commands.log";

/// The record for one command.
pub fn record(info: &PreRun) -> String {
    format!(
        "uid={} user={} command={} args={:?}",
        info.uid,
        if info.user.is_empty() {
            "?"
        } else {
            &info.user
        },
        info.command,
        info.args
    )
}

/// The `file = PATH` of the config text, if any.
pub fn log_file(config: &str) -> Result<Option<PathBuf>, String> {
    let mut file = None;
    for (i, raw) in config.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        match line.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
            Some(("file", v)) if v.starts_with('/') => file = Some(PathBuf::from(v)),
            _ => {
                return Err(format!(
                    "{CONFIG_FILE} line {}: expected file = /ABSOLUTE/PATH",
                    i + 1
                ))
            }
        }
    }
    Ok(file)
}

/// Sends `message` to syslog at `socket`; false when there is no syslog.
pub fn send_syslog(socket: &Path, message: &str) -> bool {
    let Ok(sock) = UnixDatagram::unbound() else {
        return false;
    };
    let line = format!("<{PRIORITY}>vessel[{}]: {message}", std::process::id());
    sock.send_to(line.as_bytes(), socket).is_ok()
}

fn append(path: &Path, line: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    // One write per record, so concurrent vessels do not interleave lines.
    f.write_all(format!("{line}\n").as_bytes())
}

fn configured_file() -> Result<Option<PathBuf>, String> {
    let Some(dir) = host::config_dir() else {
        return Ok(None);
    };
    let path = dir.join(CONFIG_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => log_file(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    }
}

fn log_command(info: &PreRun) {
    let line = record(info);
    if !send_syslog(Path::new(SYSLOG_SOCKET), &line) {
        log::debug("no syslog at /dev/log; record not sent there");
    }
    match host::state_dir() {
        Ok(dir) => {
            let file = dir.join(STATE_LOG);
            if let Err(e) = append(&file, &line) {
                log::warn(format!("appending to {}: {e}", file.display()));
            }
        }
        // A user without a home (a system account) has no state dir: the
        // record still went to syslog and the site file.
        Err(e) => log::debug(format!("no state dir: {e}")),
    }
    match configured_file() {
        Ok(Some(file)) => {
            if let Err(e) = append(&file, &line) {
                // The site file is root's to write; a user's record is in
                // their state dir.
                if info.uid == 0 || e.kind() != std::io::ErrorKind::PermissionDenied {
                    log::warn(format!("appending to {}: {e}", file.display()));
                } else {
                    log::debug(format!("{} is not writable: {e}", file.display()));
                }
            }
        }
        Ok(None) => {}
        Err(e) => log::warn(e),
    }
}

/// Builds the plugin; the runtime calls it once when it loads the library.
pub fn build() -> Plugin {
    Plugin::new("example.com/log-plugin")
        .author("vessel developers")
        .version("0.1.0")
        .description("Logs every vessel command (uid, user, command, args) to syslog and a file")
        .install(|_| {
            host::install_default_config(CONFIG_FILE, DEFAULT_CONFIG)?;
            Ok(())
        })
        .global_pre_run(|info| {
            log_command(info);
            Ok(())
        })
}

vessel_plugin_api::export_plugin!(build);

#[cfg(test)]
mod tests {
    use super::*;
    use vessel_plugin_test as testing;

    #[test]
    fn appends_one_line_per_command_to_the_configured_file() {
        let dir = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let p = build();
        testing::set_config_dir(Some(dir.path()));
        testing::set_state_dir(Some(state.path()));
        testing::run_install(&p, &dir.path().join("install")).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap(),
            DEFAULT_CONFIG
        );
        let out = dir.path().join("site.log");
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            format!("# test\nfile = {}\n", out.display()),
        )
        .unwrap();
        testing::run_global_pre_run(&p, 1000, "alice", "exec", &["exec", "img", "true"]).unwrap();
        testing::run_global_pre_run(&p, 0, "", "version", &["version"]).unwrap();
        testing::set_config_dir(None);
        testing::set_state_dir(None);
        let want = "uid=1000 user=alice command=exec args=[\"exec\", \"img\", \"true\"]\n\
             uid=0 user=? command=version args=[\"version\"]\n";
        assert_eq!(std::fs::read_to_string(&out).unwrap(), want);
        assert_eq!(
            std::fs::read_to_string(state.path().join(STATE_LOG)).unwrap(),
            want
        );
        testing::take_logs();
    }

    #[test]
    fn the_default_config_logs_to_syslog_only() {
        assert_eq!(log_file(DEFAULT_CONFIG).unwrap(), None);
        assert!(log_file("file = relative").is_err());
        assert!(log_file("colour = red").is_err());
    }

    #[test]
    fn syslog_gets_a_datagram_and_a_missing_socket_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let sock_path = dir.path().join("log");
        let server = UnixDatagram::bind(&sock_path).unwrap();
        assert!(send_syslog(&sock_path, "uid=1 user=x command=y args=[]"));
        let mut buf = [0u8; 256];
        let n = server.recv(&mut buf).unwrap();
        let got = String::from_utf8_lossy(&buf[..n]);
        assert!(got.starts_with("<86>vessel["), "{got}");
        assert!(got.ends_with("]: uid=1 user=x command=y args=[]"), "{got}");
        assert!(!send_syslog(&dir.path().join("absent"), "x"));
    }

    #[test]
    fn a_log_file_that_cannot_be_written_never_blocks_the_command() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "file = /nonexistent/dir/commands.log\n",
        )
        .unwrap();
        testing::set_config_dir(Some(dir.path()));
        testing::set_state_dir(None);
        testing::run_global_pre_run(&build(), 0, "root", "version", &["version"]).unwrap();
        testing::set_config_dir(None);
        let logs = testing::take_logs();
        assert!(
            logs.iter()
                .any(|(l, m)| *l == log::LogLevel::Warn && m.contains("/nonexistent/dir")),
            "{logs:?}"
        );
        assert!(
            logs.iter()
                .any(|(l, m)| *l == log::LogLevel::Debug && m.starts_with("no state dir")),
            "{logs:?}"
        );
    }
}
