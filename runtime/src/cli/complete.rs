//! Dynamic shell completion. The completion scripts vessel ships (and
//! `VESSEL_COMPLETE=SHELL vessel` prints) are small: on TAB the shell runs
//! `VESSEL_COMPLETE=SHELL vessel -- WORDS…`, and vessel answers from the
//! command tree merged with what the installed plugins add, plus the
//! installed plugins' names for the `plugin` subcommands that take one. So
//! completion follows installs and upgrades without regenerating any file.
//!
//! This runs before anything else in `main`: no config is read, no plugin
//! library is opened, no plugin hook runs, and nothing is logged.

use std::ffi::OsString;

use clap_complete::engine::{
    ArgValueCompleter, CompletionCandidate, PathCompleter, ValueCompleter as _,
};
use clap_complete::env::{Bash, EnvCompleter, Fish, Zsh};
use clap_complete::CompleteEnv;
use vessel::paths::Paths;
use vessel::plugin::store::{Meta, Store};

use super::dynamic;

/// The environment variable that turns a vessel run into a completion
/// request (not clap's generic `COMPLETE`, which users may have set for
/// something else).
pub const ENV_VAR: &str = "VESSEL_COMPLETE";

/// The command name the scripts complete, and the program they call.
const BIN: &str = "vessel";

/// The `plugin` subcommands whose argument is an installed plugin's name,
/// with that argument's id.
const NAME_ARGS: &[(&str, &str)] = &[
    ("inspect", "target"),
    ("enable", "name"),
    ("disable", "name"),
    ("uninstall", "name"),
    ("verify", "name"),
];

/// A completion request that could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum CompleteError {
    /// Unknown shell, or the answer could not be written.
    #[error("shell completion ({ENV_VAR})")]
    Answer(#[source] std::io::Error),
    /// A completion script could not be written.
    #[error("writing the {shell} completion script")]
    Script {
        /// The shell.
        shell: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Answers a completion request if `VESSEL_COMPLETE` asks for one: prints
/// the registration script (no words after `--`) or the candidates for the
/// words, and returns `true`; returns `false` for a normal run.
pub fn answer_from_env(args: &[OsString]) -> Result<bool, CompleteError> {
    // The common case (a normal run) must not read the store.
    let requested = std::env::var_os(ENV_VAR).is_some_and(|v| !v.is_empty() && v != "0");
    if !requested {
        return Ok(false);
    }
    let metas = installed();
    let cwd = std::env::current_dir().ok();
    CompleteEnv::with_factory(move || command(&metas))
        .var(ENV_VAR)
        .bin(BIN)
        .try_complete(args.iter().cloned(), cwd.as_deref())
        .map_err(|e| {
            CompleteError::Answer(std::io::Error::other(
                e.to_string()
                    .trim_start_matches("error: ")
                    .trim()
                    .to_owned(),
            ))
        })
}

/// The installed plugins' metas; a store that cannot be read completes
/// like an empty one (a TAB must never print an error into the prompt).
fn installed() -> Vec<Meta> {
    Store::new(Paths::from_env().plugin_dir())
        .list_all()
        .map(|(metas, _unreadable)| metas)
        .unwrap_or_default()
}

/// The command tree completion walks: built-ins and what enabled plugins
/// add, with installed plugin names as the values of [`NAME_ARGS`].
fn command(metas: &[Meta]) -> clap::Command {
    let names = plugin_names(metas);
    let mut cmd = dynamic::completion_command(metas);
    for (sub, arg) in NAME_ARGS {
        let names = names.clone();
        // `inspect` also takes an image file.
        let files = *sub == "inspect";
        let completer = ArgValueCompleter::new(move |current: &std::ffi::OsStr| {
            let mut out: Vec<CompletionCandidate> = names
                .iter()
                .filter(|(n, _)| n.starts_with(current.to_str().unwrap_or("\u{0}")))
                .map(|(n, enabled)| {
                    let state = if *enabled { "enabled" } else { "disabled" };
                    CompletionCandidate::new(n).help(Some(state.into()))
                })
                .collect();
            if files {
                out.extend(PathCompleter::any().complete(current));
            }
            out
        });
        cmd = cmd.mut_subcommand("plugin", |p| {
            p.mut_subcommand(sub, |s| s.mut_arg(arg, |a| a.add(completer)))
        });
    }
    cmd
}

/// Installed plugin names and whether each is enabled. Only names that pass
/// the name grammar are offered: a meta is admin data, but whatever a
/// completion prints lands in the user's command line.
fn plugin_names(metas: &[Meta]) -> Vec<(String, bool)> {
    metas
        .iter()
        .filter(|m| vessel::plugin::name::validate(&m.manifest.name).is_ok())
        .map(|m| (m.manifest.name.clone(), m.enabled))
        .collect()
}

/// A completion script for one shell.
#[derive(Debug)]
pub struct Script {
    /// The file name its vendor completion dir expects.
    pub file: &'static str,
    /// The script.
    pub body: Vec<u8>,
}

/// The completion scripts a package installs: each calls `vessel` (found on
/// `PATH`) on TAB.
pub fn scripts() -> Result<Vec<Script>, CompleteError> {
    let script = |shell: &'static str, c: &dyn EnvCompleter| {
        let mut buf = Vec::new();
        c.write_registration(ENV_VAR, BIN, BIN, BIN, &mut buf)
            .map_err(|source| CompleteError::Script { shell, source })?;
        Ok::<_, CompleteError>(buf)
    };
    let mut zsh = script("zsh", &Zsh)?;
    // zsh autoloads `_vessel` from its fpath as the body of a function named
    // `_vessel`: the first call defines the completer and registers it
    // (compdef), so it must also answer that first TAB itself.
    zsh.extend_from_slice(
        b"if [ \"$funcstack[1]\" = \"_vessel\" ]; then\n    _clap_dynamic_completer_vessel \"$@\"\nfi\n",
    );
    Ok(vec![
        Script {
            file: "vessel.bash",
            body: script("bash", &Bash)?,
        },
        Script {
            file: "_vessel",
            body: zsh,
        },
        Script {
            file: "vessel.fish",
            body: script("fish", &Fish)?,
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap_complete::engine::complete;
    use vessel::plugin::manifest::Manifest;
    use vessel::plugin::store::new_meta;

    /// A plugin adding the command `hello-<last name segment>`.
    fn meta(name: &str, enabled: bool) -> Meta {
        let command = format!("hello-{}", name.rsplit('/').next().unwrap_or_default());
        let manifest: Manifest = serde_json::from_value(serde_json::json!({
            "name": name,
            "api_version": "1.1.0",
            "sha256": "",
            "callbacks": ["command"],
            "commands": [{"name": command, "about": "say hello"}],
        }))
        .expect("test manifest");
        new_meta(manifest, enabled, None)
    }

    fn values(metas: &[Meta], words: &[&str]) -> Vec<String> {
        let mut cmd = command(metas);
        let args: Vec<OsString> = std::iter::once("vessel")
            .chain(words.iter().copied())
            .map(OsString::from)
            .collect();
        let index = args.len() - 1;
        complete(&mut cmd, args, index, None)
            .expect("complete")
            .iter()
            .map(|c| c.get_value().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn every_name_arg_exists_in_the_builtin_tree() {
        // `mut_arg` panics on an unknown id: renaming one must fail here,
        // not on a user's TAB.
        let cmd = super::super::built_in_tree();
        let plugin = cmd.find_subcommand("plugin").expect("plugin command");
        for (sub, arg) in NAME_ARGS {
            let s = plugin.find_subcommand(sub).expect(sub);
            assert!(s.get_arguments().any(|a| a.get_id() == arg), "{sub} {arg}");
        }
    }

    #[test]
    fn plugin_subcommands_complete_installed_names() {
        let metas = [meta("example.com/a", true), meta("example.org/b", false)];
        for sub in ["enable", "disable", "uninstall", "verify", "inspect"] {
            let got = values(&metas, &["plugin", sub, "example.com"]);
            assert!(got.contains(&"example.com/a".to_owned()), "{sub}: {got:?}");
            assert!(!got.contains(&"example.org/b".to_owned()), "{sub}: {got:?}");
        }
        let got = values(&metas, &["plugin", "enable", ""]);
        assert!(got.contains(&"example.org/b".to_owned()), "{got:?}");
    }

    #[test]
    fn builtins_and_plugin_commands_complete_names_outside_the_grammar_do_not() {
        let metas = [meta("example.com/a", true), meta("Evil\u{1b}[2K/x", true)];
        let got = values(&metas, &["pl"]);
        assert_eq!(got, ["plugin"]);
        let got = values(&metas, &["hello-a"]);
        assert_eq!(got, ["hello-a"]);
        let got = values(&metas, &["plugin", "inspect", ""]);
        assert!(got.contains(&"example.com/a".to_owned()), "{got:?}");
        assert!(got.iter().all(|v| !v.contains('\u{1b}')), "{got:?}");
    }

    #[test]
    fn scripts_call_vessel_with_the_vessel_variable() {
        let scripts = scripts().expect("scripts");
        assert_eq!(scripts.len(), 3);
        for Script { file: shell, body } in scripts {
            let text = String::from_utf8(body).expect("utf-8");
            assert!(text.contains(ENV_VAR), "{shell}: {text}");
            assert_eq!(
                text.matches("COMPLETE=").count(),
                text.matches("VESSEL_COMPLETE=").count(),
                "{shell}: {text}"
            );
        }
    }
}
