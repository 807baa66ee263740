//! Whether a plugin's commands and flags fit the command line: checked at
//! install against the built-in clap tree and the other installed plugins,
//! so that the merged tree (`dynamic::build_command`) can always be built and
//! parses unambiguously.

use std::collections::BTreeSet;

use vessel::plugin::install::InstallError;
use vessel::plugin::manifest::{FlagSpec, Manifest};
use vessel::plugin::store::Meta;

/// Refuses commands and flags whose names a built-in or another installed
/// plugin already uses.
pub fn check_clashes(manifest: &Manifest, others: &[Meta]) -> Result<(), InstallError> {
    let plugin = manifest.name.clone();
    let builtin = super::built_in_tree();
    let clash = |what: String, with: String| InstallError::Clash {
        plugin: plugin.clone(),
        what,
        with,
    };
    check_specs(manifest, &builtin)?;
    let mut taken: BTreeSet<&str> = ["help"].into_iter().collect();
    taken.extend(builtin.get_subcommands().map(|c| c.get_name()));
    for c in &manifest.commands {
        if taken.contains(c.name.as_str()) {
            return Err(clash(
                format!("command \"{}\"", c.name),
                "a built-in command".into(),
            ));
        }
        if let Some(o) = others
            .iter()
            .find(|o| o.manifest.commands.iter().any(|oc| oc.name == c.name))
        {
            return Err(clash(
                format!("command \"{}\"", c.name),
                format!("plugin \"{}\"", o.manifest.name),
            ));
        }
    }
    for af in &manifest.flags {
        let Some(cmd) = builtin.find_subcommand(&af.command) else {
            return Err(InstallError::UnknownCommand {
                plugin: plugin.clone(),
                flag: af.flag.name.clone(),
                command: af.command.clone(),
            });
        };
        let global = builtin.get_arguments();
        let builtin_clash = cmd.get_arguments().chain(global).any(|a| {
            a.get_long() == Some(af.flag.name.as_str())
                || (af.flag.short.is_some() && a.get_short() == af.flag.short)
        }) || ["help", "version"].contains(&af.flag.name.as_str())
            || af.flag.short.is_some_and(|s| s == 'h' || s == 'V');
        let what = format!("flag --{} of \"{}\"", af.flag.name, af.command);
        if builtin_clash {
            return Err(clash(what, "a built-in flag".into()));
        }
        if let Some(o) = others.iter().find(|o| {
            o.manifest.flags.iter().any(|of| {
                of.command == af.command
                    && (of.flag.name == af.flag.name
                        || (of.flag.short.is_some() && of.flag.short == af.flag.short))
            })
        }) {
            return Err(clash(what, format!("plugin \"{}\"", o.manifest.name)));
        }
    }
    Ok(())
}

/// The checks of install that need no other installed plugin (spec
/// checks, clashes with built-ins), for `plugin compile`: what install
/// would refuse is refused before an image is written.
pub fn check_alone(manifest: &Manifest) -> Result<(), InstallError> {
    check_clashes(manifest, &[])
}

/// Refuses command and flag specs that the merged command line could not
/// hold: a clap tree with them would be ambiguous, or would panic when
/// built, for every `vessel` invocation that reaches the command.
fn check_specs(manifest: &Manifest, builtin: &clap::Command) -> Result<(), InstallError> {
    let bad = |what: String, reason: &str| InstallError::BadSpec {
        plugin: manifest.name.clone(),
        what,
        reason: reason.to_owned(),
    };
    let word_ok = |w: &str| {
        !w.is_empty() && !w.starts_with('-') && w.chars().all(|c| c.is_ascii_graphic() && c != '=')
    };
    // Flags every command already has: the global ones, --help and --version.
    let global_longs: Vec<&str> = builtin
        .get_arguments()
        .filter_map(|a| a.get_long())
        .chain(["help", "version"])
        .collect();
    let global_shorts: Vec<char> = builtin
        .get_arguments()
        .filter_map(|a| a.get_short())
        .chain(['h', 'V'])
        .collect();
    // Flags added to built-in commands meet the built-in flags in
    // `check_clashes`; here they are only checked against each other.
    let check_flag = |what: &str,
                      f: &FlagSpec,
                      own_command: bool,
                      longs: &mut BTreeSet<String>,
                      shorts: &mut BTreeSet<char>| {
        let what = format!("{what} flag --{}", f.name);
        if !word_ok(&f.name) {
            return Err(bad(what, "not a valid flag name"));
        }
        let global_long = own_command && global_longs.contains(&f.name.as_str());
        if global_long || !longs.insert(f.name.clone()) {
            return Err(bad(what, "the name is already used on that command"));
        }
        if let Some(c) = f.short {
            if !c.is_ascii_alphanumeric() {
                return Err(bad(what, "its short name must be a letter or digit"));
            }
            let global_short = own_command && global_shorts.contains(&c);
            if global_short || !shorts.insert(c) {
                return Err(bad(what, "its short name is already used on that command"));
            }
        }
        Ok(())
    };
    let mut commands = BTreeSet::new();
    for c in &manifest.commands {
        let what = format!("command \"{}\"", c.name);
        if !word_ok(&c.name) {
            return Err(bad(what, "not a valid command name"));
        }
        // Only the first handler of a name would ever run.
        if !commands.insert(c.name.as_str()) {
            return Err(bad(what, "declared twice"));
        }
        // Args and flags share one namespace of ids in the parser.
        let mut ids = BTreeSet::new();
        let mut shorts = BTreeSet::new();
        let mut optional_seen = false;
        for (i, a) in c.args.iter().enumerate() {
            let what = format!("{what} argument \"{}\"", a.name);
            if !word_ok(&a.name) {
                return Err(bad(what, "not a valid argument name"));
            }
            if global_longs.contains(&a.name.as_str()) || !ids.insert(a.name.clone()) {
                return Err(bad(what, "the name is already used on that command"));
            }
            if a.required && optional_seen {
                return Err(bad(what, "a required argument follows an optional one"));
            }
            optional_seen |= !a.required;
            if a.multiple && i + 1 != c.args.len() {
                return Err(bad(what, "only the last argument may take several values"));
            }
        }
        for f in &c.flags {
            check_flag(&what, f, true, &mut ids, &mut shorts)?;
        }
    }
    let mut added: std::collections::BTreeMap<&str, (BTreeSet<String>, BTreeSet<char>)> =
        Default::default();
    for af in &manifest.flags {
        let (longs, shorts) = added.entry(af.command.as_str()).or_default();
        let what = format!("command \"{}\"", af.command);
        check_flag(&what, &af.flag, false, longs, shorts)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vessel::plugin::manifest::{AddedFlagSpec, ArgSpec, CallbackKind, CommandSpec};
    use vessel::plugin::store;

    fn manifest(name: &str, cmds: &[&str], flags: &[(&str, &str)]) -> Manifest {
        Manifest {
            name: name.into(),
            author: String::new(),
            version: String::new(),
            description: String::new(),
            api_version: "1.0.0".into(),
            runtime_version: String::new(),
            rustc_version: String::new(),
            target: String::new(),
            callbacks: vec![CallbackKind::Command],
            commands: cmds
                .iter()
                .map(|c| CommandSpec {
                    name: (*c).into(),
                    about: String::new(),
                    args: vec![],
                    flags: vec![],
                })
                .collect(),
            flags: flags
                .iter()
                .map(|(c, f)| AddedFlagSpec {
                    command: (*c).into(),
                    flag: FlagSpec {
                        name: (*f).into(),
                        short: None,
                        help: String::new(),
                        takes_value: false,
                    },
                })
                .collect(),
            global_pre_run: false,
            sha256: String::new(),
            provenance: None,
        }
    }

    #[test]
    fn clashes_are_refused() {
        let other = store::new_meta(manifest("o", &["hello"], &[("version", "x")]), true, None);
        let others = [other];
        check_clashes(
            &manifest("p", &["test-cmd"], &[("version", "test")]),
            &others,
        )
        .unwrap();
        for m in [
            manifest("p", &["exec"], &[]),
            manifest("p", &["help"], &[]),
            manifest("p", &["hello"], &[]),
            manifest("p", &[], &[("verify", "key")]),
            manifest("p", &[], &[("version", "x")]),
            manifest("p", &[], &[("version", "debug")]),
            manifest("p", &[], &[("nosuch", "x")]),
        ] {
            assert!(check_clashes(&m, &others).is_err(), "{m:?} accepted");
        }
    }

    #[test]
    fn specs_the_command_line_cannot_hold_are_refused() {
        let flag = |name: &str, short: Option<char>| FlagSpec {
            name: name.into(),
            short,
            help: String::new(),
            takes_value: false,
        };
        let arg = |name: &str, required: bool, multiple: bool| ArgSpec {
            name: name.into(),
            help: String::new(),
            required,
            multiple,
        };
        let with = |args: Vec<ArgSpec>, flags: Vec<FlagSpec>| {
            let mut m = manifest("p", &["cmd"], &[]);
            m.commands[0].args = args;
            m.commands[0].flags = flags;
            m
        };
        check_clashes(
            &with(
                vec![arg("a", true, false), arg("rest", false, true)],
                vec![flag("fast", Some('f')), flag("slow", None)],
            ),
            &[],
        )
        .unwrap();
        for (m, want) in [
            (with(vec![], vec![flag("help", None)]), "already used"),
            (with(vec![], vec![flag("debug", None)]), "already used"),
            (
                with(vec![], vec![flag("x", Some('h'))]),
                "short name is already used",
            ),
            (
                with(vec![], vec![flag("x", Some('q'))]),
                "short name is already used",
            ),
            (
                with(vec![], vec![flag("x", Some('x')), flag("y", Some('x'))]),
                "short name",
            ),
            (
                with(vec![arg("x", false, false)], vec![flag("x", None)]),
                "already used",
            ),
            (with(vec![], vec![flag("", None)]), "not a valid flag name"),
            (
                with(vec![], vec![flag("a b", None)]),
                "not a valid flag name",
            ),
            (
                with(vec![arg("x", false, false), arg("x", false, false)], vec![]),
                "already used",
            ),
            (
                with(vec![arg("a", false, false), arg("b", true, false)], vec![]),
                "follows an optional",
            ),
            (
                with(vec![arg("a", false, true), arg("b", false, false)], vec![]),
                "only the last",
            ),
        ] {
            let e = check_clashes(&m, &[]).expect_err(&format!("{m:?} accepted"));
            assert!(e.to_string().contains(want), "{e}");
        }
        let mut m = manifest("p", &["-x"], &[]);
        assert!(check_clashes(&m, &[]).is_err());
        m = manifest("p", &["gpu", "gpu"], &[]);
        let e = check_alone(&m).unwrap_err().to_string();
        assert!(e.contains("command \"gpu\": declared twice"), "{e}");
        m = manifest("p", &[], &[("version", "x"), ("version", "x")]);
        assert!(check_clashes(&m, &[]).is_err());
    }
}
