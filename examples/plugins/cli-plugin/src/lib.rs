//! Example vessel plugin `example.com/cli-plugin`: adds the `test-cmd`
//! command, a `--test VALUE` flag on `version` and an `--abort` switch on
//! `verify` whose pre-run aborts the verification.

use std::io::Write;

use vessel_plugin_api::{Arg, Command, Flag, Plugin};

/// Builds the plugin; the runtime calls it once when it loads the library.
pub fn build() -> Plugin {
    Plugin::new("example.com/cli-plugin")
        .author("vessel developers")
        .version("0.1.0")
        .description("Adds test-cmd, version --test and verify --abort")
        .command(
            Command::new("test-cmd")
                .about("Print the arguments")
                .arg(Arg::new("args").help("Words to print").multiple()),
            |inv| {
                writeln!(inv.stdout(), "test-cmd: {}", inv.args().join(" "))?;
                Ok(0)
            },
        )
        .flag(
            "version",
            Flag::value("test").help("Print this value before the version"),
            |inv| {
                writeln!(
                    inv.stdout(),
                    "test: {}",
                    inv.flag("test").unwrap_or_default()
                )?;
                Ok(())
            },
        )
        .flag(
            "verify",
            Flag::switch("abort").help("Abort the verification"),
            |_| Err("verify aborted by --abort".into()),
        )
}

vessel_plugin_api::export_plugin!(build);

#[cfg(test)]
mod tests {
    use super::*;
    use vessel_plugin_test as testing;

    #[test]
    fn test_cmd_prints_its_args() {
        let run = testing::run_command(&build(), "test-cmd", &["a", "b"], &[]).unwrap();
        assert_eq!(run.status, 0);
        assert_eq!(run.stdout, "test-cmd: a b\n");
    }

    #[test]
    fn version_test_flag_prints_its_value() {
        let out = testing::run_flag_pre_run(&build(), "version", &[], &[("test", Some("hello"))])
            .unwrap();
        assert_eq!(out, "test: hello\n");
    }

    #[test]
    fn verify_abort_aborts() {
        let err = testing::run_flag_pre_run(&build(), "verify", &["x.sif"], &[("abort", None)])
            .unwrap_err();
        assert_eq!(err.message.as_str(), "verify aborted by --abort");
        assert!(!err.panicked);
    }

    #[test]
    fn verify_without_abort_runs_no_hook() {
        assert_eq!(
            testing::run_flag_pre_run(&build(), "verify", &["x.sif"], &[]).unwrap(),
            ""
        );
    }

    #[test]
    fn manifest_lists_command_and_flags() {
        let m = testing::manifest(&build());
        assert_eq!(m.name.as_str(), "example.com/cli-plugin");
        assert_eq!(m.commands[0].name.as_str(), "test-cmd");
        let flags: Vec<_> = m
            .flags
            .iter()
            .map(|f| format!("{} --{}", f.command, f.flag.name))
            .collect();
        assert_eq!(flags, ["version --test", "verify --abort"]);
        assert!(!m.global_pre_run);
    }
}
