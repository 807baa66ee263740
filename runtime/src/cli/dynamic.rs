//! Merging plugins into the command line. The clap tree is the built-in one
//! plus, from the store's CLI index only (no plugin library is opened), the
//! commands plugins add and the flags they add to built-in commands. A
//! plugin's library is loaded only when one of its commands runs, one of its
//! flags is used, or it registered a global pre-run hook.
//!
//! Start-up stays flat in the number of plugins: the command word is
//! peeked first ([`Need`]), and only the plugins that can change how that
//! command parses or runs are merged; help, completion and unknown words
//! get the full tree.

use std::ffi::OsString;

use clap::{parser::ValueSource, Arg, ArgAction, ArgMatches, CommandFactory, FromArgMatches};

use super::Error;
use super::{dispatch, Cli, GlobalArgs};
use vessel::plugin::dispatch::{self as plugin_dispatch, Invocation};
use vessel::plugin::manifest::FlagSpec;
use vessel::plugin::store::{Meta, Scope, Store, Summary};
use vessel::Runtime;
use vessel_sif::text::inert;

/// Where a clap arg came from: the id encodes plugin and flag so two plugins
/// can never collide with each other or with built-in ids.
fn flag_id(plugin: &str, flag: &str) -> String {
    format!("plugin:{plugin}:{flag}")
}

/// Shown after the command's own arguments, before the global ones (900
/// on): a built-in command defines its arguments only when clap needs them,
/// after the flags plugins added to it.
const PLUGIN_FLAG_ORDER: usize = 800;

fn flag_arg(id: String, f: &FlagSpec) -> Arg {
    let mut a = Arg::new(id)
        .long(f.name.clone())
        .help(inert(&f.help).into_owned())
        .display_order(PLUGIN_FLAG_ORDER);
    if let Some(s) = f.short {
        a = a.short(s);
    }
    // A value flag may repeat (`--tag a --tag b`): the plugin gets each value.
    if f.takes_value {
        a.action(ArgAction::Append).value_name("VALUE")
    } else {
        a.action(ArgAction::SetTrue)
    }
}

/// The full clap command: built-ins plus what enabled plugins add, their
/// commands listed in the top-level help's "Plugin commands:" section.
#[cfg(test)]
pub fn build_command(metas: &[Meta]) -> clap::Command {
    merge(Cli::command(), metas, PluginCommands::Section)
}

/// [`build_command`] for the completers, which offer only the commands the
/// tree shows: plugin commands are shown there as built-in ones are.
/// Built, so that completers can reach every command's arguments.
pub fn completion_command(metas: &[Meta]) -> clap::Command {
    let mut cmd = merge(Cli::command(), metas, PluginCommands::InTree);
    cmd.build();
    cmd
}

/// Where the top-level help shows plugin commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PluginCommands {
    /// In their own section ([`plugin_section`]), hidden in the tree.
    Section,
    /// Among the built-in commands (what completers walk).
    InTree,
}

/// `cmd` plus the commands and flags the enabled plugins of `metas` add.
fn merge(mut cmd: clap::Command, metas: &[Meta], shown: PluginCommands) -> clap::Command {
    let listed = metas.iter().filter(|m| m.enabled).flat_map(|m| {
        m.manifest
            .commands
            .iter()
            .map(|c| (c.name.as_str(), c.about.as_str(), m.manifest.name.as_str()))
    });
    let section = match shown {
        PluginCommands::Section => plugin_section(&cmd, listed),
        PluginCommands::InTree => None,
    };
    for m in metas.iter().filter(|m| m.enabled) {
        let plugin = &m.manifest.name;
        for c in &m.manifest.commands {
            let mut sub = clap::Command::new(c.name.clone())
                .about(plugin_about(&c.about, plugin))
                .hide(shown == PluginCommands::Section);
            for a in &c.args {
                let mut arg = Arg::new(a.name.clone())
                    .value_name(a.name.to_uppercase())
                    .help(inert(&a.help).into_owned())
                    .required(a.required);
                arg = if a.multiple {
                    arg.num_args(1..).action(ArgAction::Append)
                } else {
                    arg.action(ArgAction::Set)
                };
                sub = sub.arg(arg);
            }
            for f in &c.flags {
                sub = sub.arg(flag_arg(f.name.clone(), f));
            }
            cmd = cmd.subcommand(sub);
        }
        for af in &m.manifest.flags {
            let id = flag_id(plugin, &af.flag.name);
            let flag = af.flag.clone();
            cmd = cmd.mut_subcommand(af.command.clone(), move |s| s.arg(flag_arg(id, &flag)));
        }
    }
    match section {
        Some(s) => cmd.after_help(s),
        None => cmd,
    }
}

/// `cmd` plus, for the top-level help, the "Plugin commands:" section of
/// the enabled plugins of `listed`: what [`build_command`]'s help shows of
/// them, without reading their metas or adding them to the tree.
fn list(cmd: clap::Command, listed: &[Summary]) -> clap::Command {
    let entries = listed.iter().filter(|p| p.enabled).flat_map(|p| {
        p.commands
            .iter()
            .zip(&p.abouts)
            .map(|(name, about)| (name.as_str(), about.as_str(), p.name.as_str()))
    });
    match plugin_section(&cmd, entries) {
        Some(s) => cmd.after_help(s),
        None => cmd,
    }
}

/// The top-level help's "Plugin commands:" section: each command an enabled
/// plugin adds (name, about, plugin), sorted by name, styled as clap styles
/// its own sections; `None` without any. Plugin commands are listed here
/// rather than as clap subcommands because clap builds every subcommand it
/// lists: a hundred plugin commands made `vessel --help` half again as slow.
fn plugin_section<'a>(
    cmd: &clap::Command,
    entries: impl Iterator<Item = (&'a str, &'a str, &'a str)>,
) -> Option<clap::builder::StyledStr> {
    use std::fmt::Write as _;
    let mut rows: Vec<(&str, String)> = entries
        .map(|(name, about, plugin)| (name, plugin_about(about, plugin)))
        .collect();
    if rows.is_empty() {
        return None;
    }
    rows.sort();
    let styles = cmd.get_styles();
    let (header, literal) = (styles.get_header(), styles.get_literal());
    let width = rows
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0);
    let mut s = clap::builder::StyledStr::new();
    let _ = write!(s, "{header}Plugin commands:{header:#}");
    for (name, about) in rows {
        let pad = width - name.chars().count();
        let _ = write!(s, "\n  {literal}{name}{literal:#}{:pad$}  {about}", "");
    }
    Some(s)
}

/// How a plugin command is described in help.
fn plugin_about(about: &str, plugin: &str) -> String {
    format!("{} [plugin {plugin}]", inert(about))
        .trim()
        .to_owned()
}

/// Which plugins the command line needs, from the first word that is not a
/// global switch.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Need {
    /// `vessel plugin ...`: the admin commands, which read the metas.
    Admin,
    /// A built-in command: the plugins that add flags to it or run a
    /// global pre-run hook.
    Builtin(String),
    /// Any other word: the plugin adding that command and those running a
    /// global pre-run hook; every plugin when no enabled one adds it (so an
    /// unknown command gets clap's full error and suggestions).
    Command(String),
    /// The top-level help (`vessel`, `--help`, `-h`, `help`) or version:
    /// every plugin's commands, listed from the index's summaries (their
    /// arguments and flags do not show there).
    Listing,
    /// Help on a command, completion, an unknown switch: every plugin.
    Everything,
}

impl Need {
    fn of(args: &[OsString], builtins: &clap::Command) -> Self {
        let global_switch = |w: &str| {
            matches!(w, "--debug" | "--verbose" | "--quiet")
                || w.strip_prefix('-').is_some_and(|f| {
                    !f.is_empty() && f.chars().all(|c| matches!(c, 'd' | 'v' | 'q'))
                })
        };
        // The words that are not global switches: none, or one asking for
        // the top-level help or version, is a listing.
        let words: Vec<&OsString> = args
            .iter()
            .skip(1)
            .filter(|w| !w.to_str().is_some_and(global_switch))
            .collect();
        let listing = ["--help", "-h", "help", "--version", "-V"];
        if words.is_empty() || words.len() == 1 && listing.iter().any(|l| words[0] == l) {
            return Need::Listing;
        }
        match words[0].to_str() {
            None => Need::Everything,
            Some(w) if w.starts_with('-') => Need::Everything,
            Some("help" | "completion") => Need::Everything,
            Some("plugin") => Need::Admin,
            Some(w) if builtins.find_subcommand(w).is_some() => Need::Builtin(w.to_owned()),
            Some(w) => Need::Command(w.to_owned()),
        }
    }

    /// Whether plugin `s` (one of `all`) is merged.
    fn wants(&self, all: &[Summary], s: &Summary) -> bool {
        let adds = |p: &Summary, c: &String| p.enabled && p.commands.contains(c);
        match self {
            Need::Everything => true,
            Need::Listing => false,
            Need::Admin => s.enabled && s.flags_on.iter().any(|c| c == "plugin"),
            Need::Builtin(c) => s.enabled && (s.global_pre_run || s.flags_on.contains(c)),
            Need::Command(c) if all.iter().any(|p| adds(p, c)) => {
                s.enabled && (s.global_pre_run || adds(s, c))
            }
            Need::Command(_) => true,
        }
    }
}

/// The metas of the plugins the command line needs, the summaries of every
/// plugin for a [`Need::Listing`], and warnings to log once logging is set
/// up: a broken plugin dir or meta only costs a warning so that
/// `vessel plugin ...` always works. Sets `ctx.installed` when every meta
/// was read.
fn needed_metas(ctx: &mut Runtime, need: &Need) -> (Vec<Meta>, Vec<Summary>, Vec<String>) {
    if *need == Need::Admin {
        // The admin commands act on what the metas say, not the index.
        let (installed, warnings) = installed_metas(ctx);
        let summaries: Vec<Summary> = installed.iter().flatten().map(Summary::of).collect();
        let metas = installed
            .iter()
            .flatten()
            .zip(&summaries)
            .filter(|(_, s)| need.wants(&summaries, s))
            .map(|(m, _)| m.clone())
            .collect();
        ctx.installed = installed;
        return (metas, Vec::new(), warnings);
    }
    // A built-in command needs only the plugins that add flags to it or
    // run a global pre-run hook: the index's first line has those.
    let scope = match need {
        Need::Builtin(_) => Scope::Active,
        _ => Scope::All,
    };
    match ctx.store().cli_surface(scope, |all, s| need.wants(all, s)) {
        Ok(surface) => {
            let warnings = surface
                .unreadable
                .iter()
                .map(|e| format!("ignoring an installed plugin: {e}"))
                .collect();
            if *need == Need::Everything {
                ctx.installed = Some(surface.metas.clone());
            }
            if *need == Need::Listing {
                return (surface.metas, surface.plugins, warnings);
            }
            (surface.metas, Vec::new(), warnings)
        }
        Err(e) => (
            Vec::new(),
            Vec::new(),
            vec![format!("ignoring installed plugins: {e}")],
        ),
    }
}

/// The installed plugins' metas, and warnings to log once logging is set
/// up: a broken plugin dir or meta only costs a warning so that
/// `vessel plugin ...` always works.
fn installed_metas(ctx: &Runtime) -> (Option<Vec<Meta>>, Vec<String>) {
    match Store::new(ctx.paths.plugin_dir()).list_all() {
        Ok((metas, unreadable)) => (
            Some(metas),
            unreadable
                .iter()
                .map(|e| format!("ignoring an installed plugin: {e}"))
                .collect(),
        ),
        Err(e) => (None, vec![format!("ignoring installed plugins: {e}")]),
    }
}

/// The values a plugin command was called with, in spec order.
fn invocation(meta: &Meta, name: &str, m: &ArgMatches) -> Invocation {
    let spec = meta
        .manifest
        .commands
        .iter()
        .find(|c| c.name == name)
        .cloned();
    let mut inv = Invocation {
        command: name.to_owned(),
        args: Vec::new(),
        flags: Vec::new(),
    };
    if let Some(spec) = spec {
        for a in &spec.args {
            if let Some(vals) = m.get_many::<String>(&a.name) {
                inv.args.extend(vals.cloned());
            }
        }
        for f in &spec.flags {
            if m.value_source(&f.name) != Some(ValueSource::CommandLine) {
                continue;
            }
            inv.flags
                .extend(given_values(m, &f.name, &f.name, f.takes_value));
        }
    }
    inv
}

/// Flag `name` (clap id `id`) as given: one entry per value of a value
/// flag, in command-line order, or one valueless entry for a switch.
fn given_values(
    m: &ArgMatches,
    id: &str,
    name: &str,
    takes_value: bool,
) -> Vec<(String, Option<String>)> {
    if !takes_value {
        return vec![(name.to_owned(), None)];
    }
    m.get_many::<String>(id)
        .into_iter()
        .flatten()
        .map(|v| (name.to_owned(), Some(v.clone())))
        .collect()
}

/// Flags given on the command line: name and value (None for a switch).
type GivenFlags = Vec<(String, Option<String>)>;

/// Flags that plugins added to built-in command `sub` and that the user
/// gave, grouped by plugin.
fn used_added_flags<'a>(
    metas: &'a [Meta],
    sub: &str,
    m: &ArgMatches,
) -> Vec<(&'a Meta, GivenFlags)> {
    let mut out = Vec::new();
    for meta in metas.iter().filter(|m| m.enabled) {
        let mut given = Vec::new();
        for af in meta.manifest.flags.iter().filter(|f| f.command == sub) {
            let id = flag_id(&meta.manifest.name, &af.flag.name);
            if m.value_source(&id) != Some(ValueSource::CommandLine) {
                continue;
            }
            given.extend(given_values(m, &id, &af.flag.name, af.flag.takes_value));
        }
        if !given.is_empty() {
            out.push((meta, given));
        }
    }
    out
}

/// Whether clap's "error" is the help or version it was asked for (not a
/// parse error a disabled plugin could explain).
fn is_display(e: &clap::Error) -> bool {
    use clap::error::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    )
}

/// Parses `args` against the merged tree, sets up tracing through
/// `init_tracing`, runs hooks and the command, and returns the exit status.
pub fn run(args: Vec<OsString>, init_tracing: impl FnOnce(&GlobalArgs)) -> Result<i32, Error> {
    // With VESSEL_LOG set, logging starts before parsing, so even `--help`
    // shows what it does (and that it opens no plugin library).
    let mut init_tracing = Some(init_tracing);
    if std::env::var_os("VESSEL_LOG").is_some() {
        if let Some(init) = init_tracing.take() {
            init(&GlobalArgs::default());
        }
    }
    let mut ctx = Runtime::from_env()?;
    let builtins = Cli::command();
    let need = Need::of(&args, &builtins);
    let (metas, listed, warnings) = needed_metas(&mut ctx, &need);
    tracing::debug!(
        ?need,
        plugins = metas.len(),
        "building the command line from plugin metas"
    );
    // The raw words after the binary name, for plugin hooks. Taken from
    // `args` (not `std::env::args`, which panics on a non-UTF-8 word).
    let argv_tail: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let matches = match list(merge(builtins, &metas, PluginCommands::Section), &listed)
        .try_get_matches_from(args)
    {
        Ok(m) => m,
        Err(e) if is_display(&e) => e.exit(),
        Err(e) => {
            // Only the plugins this command needs were merged, and only
            // enabled ones: a word a disabled plugin adds is looked up in
            // every installed meta (the error path only, so start-up stays
            // flat).
            let explained =
                super::disabled::explain_parse_error(&e, &metas, &argv_tail).or_else(|| {
                    let (all, _) = installed_metas(&ctx);
                    super::disabled::explain_parse_error(
                        &e,
                        all.as_deref().unwrap_or_default(),
                        &argv_tail,
                    )
                });
            match explained {
                Some(named) => return Err(named.into()),
                None => e.exit(),
            }
        }
    };
    let global = GlobalArgs::from_arg_matches(&matches).map_err(|e| Error::Usage(e.to_string()))?;
    if let Some(init) = init_tracing.take() {
        init(&global);
    }
    for w in &warnings {
        tracing::warn!("{w}");
    }

    let Some((sub, sub_m)) = matches.subcommand() else {
        return Err(Error::Usage("no command given (see vessel --help)".into()));
    };
    let is_plugin_admin = sub == "plugin";
    if !is_plugin_admin {
        plugin_dispatch::run_global_pre_run(&ctx, &metas, sub, &argv_tail)?;
    }

    // A command a plugin added.
    if let Some(meta) = metas
        .iter()
        .filter(|m| m.enabled)
        .find(|m| m.manifest.commands.iter().any(|c| c.name == sub))
    {
        let inv = invocation(meta, sub, sub_m);
        return Ok(plugin_dispatch::run_command(&ctx, meta, &inv)?);
    }

    // A built-in command, possibly with flags plugins added to it.
    let after_sub: Vec<String> = argv_tail
        .iter()
        .skip_while(|a| a.as_str() != sub)
        .skip(1)
        .cloned()
        .collect();
    for (meta, flags) in used_added_flags(&metas, sub, sub_m) {
        plugin_dispatch::run_pre_run(&ctx, meta, sub, &after_sub, &flags)?;
        // Their EngineConfig callbacks see them too (exec/run/shell).
        ctx.plugin_flags.insert(meta.name().to_owned(), flags);
    }
    let cli = Cli::from_arg_matches(&matches).map_err(|e| Error::Usage(e.to_string()))?;
    dispatch(&cli, &ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vessel::plugin::manifest::Manifest;
    use vessel::plugin::store::new_meta;

    /// A plugin adding `hello NAME [REST...] [--loud] [--times N]` and a
    /// `--shout` switch and `--tag VALUE` option to `version`.
    fn plugin(name: &str, enabled: bool) -> Meta {
        let manifest: Manifest = serde_json::from_value(serde_json::json!({
            "name": name,
            "api_version": "1.1.0",
            "sha256": "",
            "callbacks": ["command"],
            "commands": [{
                "name": "hello",
                "about": "say hello",
                "args": [
                    {"name": "name", "required": true},
                    {"name": "rest", "multiple": true}
                ],
                "flags": [
                    {"name": "loud", "short": "l"},
                    {"name": "times", "takes_value": true}
                ]
            }],
            "flags": [
                {"command": "version", "flag": {"name": "shout"}},
                {"command": "version", "flag": {"name": "tag", "takes_value": true}}
            ]
        }))
        .expect("test manifest");
        new_meta(manifest, enabled, None)
    }

    fn parse(metas: &[Meta], args: &[&str]) -> ArgMatches {
        build_command(metas)
            .try_get_matches_from(std::iter::once("vessel").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn enabled_plugins_add_commands_and_flags_disabled_ones_do_not() {
        let on = [plugin("example.com/p", true)];
        let cmd = build_command(&on);
        let hello = cmd.find_subcommand("hello").expect("plugin command merged");
        assert_eq!(
            hello.get_about().map(|a| a.to_string()).as_deref(),
            Some("say hello [plugin example.com/p]")
        );
        let version = cmd.find_subcommand("version").expect("built-in");
        assert!(version
            .get_arguments()
            .any(|a| a.get_long() == Some("shout")));

        let off = [plugin("example.com/p", false)];
        let cmd = build_command(&off);
        assert!(cmd.find_subcommand("hello").is_none());
        assert!(build_command(&off)
            .try_get_matches_from(["vessel", "version", "--shout"])
            .is_err());
    }

    #[test]
    fn a_plugin_command_gets_its_values_in_spec_order() {
        let metas = [plugin("example.com/p", true)];
        let m = parse(&metas, &["hello", "--times", "3", "ann", "b", "c", "-l"]);
        let (sub, sub_m) = m.subcommand().expect("a subcommand");
        let inv = invocation(&metas[0], sub, sub_m);
        assert_eq!(
            inv,
            Invocation {
                command: "hello".into(),
                args: vec!["ann".into(), "b".into(), "c".into()],
                flags: vec![("loud".into(), None), ("times".into(), Some("3".into()))],
            }
        );
        // A value flag may repeat: every value reaches the plugin, in order.
        let m = parse(&metas, &["hello", "ann", "--times", "1", "--times", "2"]);
        let (sub, sub_m) = m.subcommand().expect("a subcommand");
        assert_eq!(
            invocation(&metas[0], sub, sub_m).flags,
            vec![
                ("times".to_owned(), Some("1".to_owned())),
                ("times".to_owned(), Some("2".to_owned()))
            ]
        );
        // Flags not given are not passed, not even as defaults.
        let m = parse(&metas, &["hello", "ann"]);
        let (sub, sub_m) = m.subcommand().expect("a subcommand");
        assert!(invocation(&metas[0], sub, sub_m).flags.is_empty());
    }

    #[test]
    fn only_the_plugins_a_command_needs_are_merged() {
        let need = |args: &[&str]| {
            let argv: Vec<OsString> = std::iter::once("vessel")
                .chain(args.iter().copied())
                .map(OsString::from)
                .collect();
            Need::of(&argv, &Cli::command())
        };
        assert_eq!(need(&["version"]), Need::Builtin("version".into()));
        assert_eq!(
            need(&["-dq", "--verbose", "exec", "x"]),
            Need::Builtin("exec".into())
        );
        assert_eq!(need(&["hello", "x"]), Need::Command("hello".into()));
        assert_eq!(need(&["plugin", "list"]), Need::Admin);
        for listing in [
            &[][..],
            &["--help"],
            &["-h", "-d"],
            &["--verbose", "help"],
            &["-V"],
        ] {
            assert_eq!(need(listing), Need::Listing, "{listing:?}");
        }
        for everything in [
            &["help", "x"][..],
            &["--help", "exec"],
            &["--bogus"],
            &["completion", "bash"],
        ] {
            assert_eq!(need(everything), Need::Everything, "{everything:?}");
        }
        let metas = [
            plugin("example.com/p", true),
            plugin("example.com/off", false),
        ];
        let all: Vec<Summary> = metas.iter().map(Summary::of).collect();
        let wanted = |n: &Need| -> Vec<bool> { all.iter().map(|s| n.wants(&all, s)).collect() };
        // `version` gets the plugin adding flags to it; `exec` none.
        assert_eq!(wanted(&Need::Builtin("version".into())), [true, false]);
        assert_eq!(wanted(&Need::Builtin("exec".into())), [false, false]);
        assert_eq!(wanted(&Need::Command("hello".into())), [true, false]);
        // An unknown word gets every plugin, for clap's full error.
        assert_eq!(wanted(&Need::Command("nope".into())), [true, true]);
        assert_eq!(wanted(&Need::Everything), [true, true]);
        assert_eq!(wanted(&Need::Listing), [false, false]);
    }

    #[test]
    fn the_top_level_help_lists_plugin_commands_as_the_full_tree_does() {
        let metas = [
            plugin("example.com/p", true),
            plugin("example.com/off", false),
        ];
        let summaries: Vec<Summary> = metas.iter().map(Summary::of).collect();
        let full = build_command(&metas).render_help().to_string();
        let listed = list(Cli::command(), &summaries).render_help().to_string();
        assert!(full.contains("say hello [plugin example.com/p]"), "{full}");
        assert_eq!(listed, full);
        // In their own section, once, after the built-in commands and options.
        let section = full
            .split("Plugin commands:\n")
            .nth(1)
            .expect("a plugin section");
        assert!(
            section.starts_with("  hello  say hello [plugin example.com/p]"),
            "{full}"
        );
        assert_eq!(full.matches("  hello ").count(), 1, "{full}");
        assert!(
            full.find("Options:") < full.find("Plugin commands:"),
            "{full}"
        );
        // Without enabled plugins, no section.
        let none = list(Cli::command(), &summaries[1..])
            .render_help()
            .to_string();
        assert!(!none.contains("Plugin commands"), "{none}");
        // The completers still see plugin commands in the tree.
        let tree = completion_command(&metas);
        assert!(tree
            .find_subcommand("hello")
            .is_some_and(|c| !c.is_hide_set()));
    }

    #[test]
    fn flags_added_to_a_builtin_reach_only_their_plugin() {
        let metas = &[plugin("example.com/a", true)];
        let m = parse(metas, &["version", "--tag", "x"]);
        let (sub, sub_m) = m.subcommand().expect("a subcommand");
        let used = used_added_flags(metas, sub, sub_m);
        assert_eq!(used.len(), 1);
        assert_eq!(used[0].0.manifest.name, "example.com/a");
        assert_eq!(used[0].1, vec![("tag".to_owned(), Some("x".to_owned()))]);

        let m = parse(metas, &["version", "--tag", "x", "--shout", "--tag", "y"]);
        let (sub, sub_m) = m.subcommand().expect("a subcommand");
        assert_eq!(
            used_added_flags(metas, sub, sub_m)[0].1,
            vec![
                ("shout".to_owned(), None),
                ("tag".to_owned(), Some("x".to_owned())),
                ("tag".to_owned(), Some("y".to_owned()))
            ]
        );

        let m = parse(metas, &["version"]);
        let (sub, sub_m) = m.subcommand().expect("a subcommand");
        assert!(used_added_flags(metas, sub, sub_m).is_empty());
    }
}
