//! Example vessel plugin `example.com/log-plugin`: a global pre-run hook
//! that records who runs which vessel command (every command but
//! `plugin ...`, which the runtime never hooks).
//!
//! Each record is one line, `uid=U user=NAME command=CMD args=[...]`. It is
//! sent to syslog (authpriv.info through the `/dev/log` datagram socket;
//! skipped when there is none) and, when the config file in the install dir
//! names one, appended to a file:
//!
//! ```text
//! # log-plugin.conf
//! file = /var/log/vessel-commands.log
//! ```
//!
//! Logging never blocks a command: a record that cannot be written is
//! reported as a warning in vessel's log and the command goes on.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use vessel_plugin_api::{host, log, Plugin, PreRun};

/// The config file in the install dir.
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
    let Some(dir) = host::install_dir() else {
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
    match configured_file() {
        Ok(Some(file)) => {
            if let Err(e) = append(&file, &line) {
                log::warn(format!("appending to {}: {e}", file.display()));
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
        .install(|dir| {
            std::fs::write(dir.join(CONFIG_FILE), DEFAULT_CONFIG)?;
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
        let p = build();
        testing::run_install(&p, dir.path()).unwrap();
        let out = dir.path().join("commands.log");
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            format!("# test\nfile = {}\n", out.display()),
        )
        .unwrap();
        testing::set_install_dir(Some(dir.path()));
        testing::run_global_pre_run(&p, 1000, "alice", "exec", &["exec", "img", "true"]).unwrap();
        testing::run_global_pre_run(&p, 0, "", "version", &["version"]).unwrap();
        testing::set_install_dir(None);
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "uid=1000 user=alice command=exec args=[\"exec\", \"img\", \"true\"]\n\
             uid=0 user=? command=version args=[\"version\"]\n"
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
        testing::set_install_dir(Some(dir.path()));
        testing::run_global_pre_run(&build(), 0, "root", "version", &["version"]).unwrap();
        testing::set_install_dir(None);
        let logs = testing::take_logs();
        assert!(
            logs.iter()
                .any(|(l, m)| *l == log::LogLevel::Warn && m.contains("/nonexistent/dir")),
            "{logs:?}"
        );
    }
}
