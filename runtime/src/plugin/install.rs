//! `plugin install`: every check runs before anything is written, in this
//! order: valid plugin image, clean name, trusted signature, API version,
//! the loader's checks, no clash; then the files are staged and committed
//! through the store's journal, with the Install callback in between.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use clap::CommandFactory;

use super::image::PluginImage;
use super::lifecycle::require_root;
use super::loader::{self, LoadSpec};
use super::manifest::{CallbackKind, FlagSpec, Manifest};
use super::store::{self, Meta, Store, StoreError, PLUGIN_MANIFEST, PLUGIN_SIF, PLUGIN_SO};
use super::PluginError;
use crate::cli::{Cli, Context};
use crate::config::SignaturePolicy;
use crate::trust::TrustStore;
use crate::Error;

/// How to install.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstallOptions {
    /// Accept an unsigned or untrusted image with a warning.
    pub allow_unsigned: bool,
    /// Replace an installed plugin of the same name.
    pub upgrade: bool,
}

/// Why an install was refused after the image itself checked out.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The signature policy refused the image.
    #[error("plugin \"{plugin}\": {reason}; sign it with a key in the trust store (vessel sign, vessel key trust) or pass --allow-unsigned")]
    Untrusted {
        /// The plugin.
        plugin: String,
        /// What was wrong with the signatures.
        reason: String,
    },
    /// A command or flag name is taken.
    #[error("plugin \"{plugin}\": {what} clashes with {with}")]
    Clash {
        /// The plugin.
        plugin: String,
        /// The command or flag.
        what: String,
        /// The built-in or plugin that has it.
        with: String,
    },
    /// A flag is added to a command that does not exist.
    #[error("plugin \"{plugin}\": flag --{flag} is added to unknown command \"{command}\"")]
    UnknownCommand {
        /// The plugin.
        plugin: String,
        /// The flag.
        flag: String,
        /// The missing command.
        command: String,
    },
    /// A command or flag spec the command line cannot be built from.
    #[error("plugin \"{plugin}\": {what}: {reason}")]
    BadSpec {
        /// The plugin.
        plugin: String,
        /// The command or flag.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The library describes itself differently from the image's manifest.
    #[error("plugin \"{plugin}\": the manifest does not match the library ({field} differs)")]
    ManifestMismatch {
        /// The plugin.
        plugin: String,
        /// The first differing field.
        field: &'static str,
    },
}

/// Installs the plugin image `file`. Progress and what the plugin will be
/// able to do go to `out`. On any error the plugin dir is as before.
pub fn install(
    ctx: &Context,
    store: &Store,
    file: &Path,
    opts: InstallOptions,
    out: &mut dyn Write,
) -> Result<Meta, Error> {
    require_root("plugin install")?;
    // Every check and the install itself read one private copy of the image:
    // the file given may belong to someone who could rewrite it between the
    // signature check and the read of the library that gets installed.
    let scratch = tempfile::Builder::new()
        .prefix("vessel-install-")
        .tempdir()
        .map_err(|e| io(&std::env::temp_dir(), e))?;
    let private = scratch.path().join(PLUGIN_SIF);
    copy_private(file, &private)?;
    let mut image = PluginImage::open(&private)
        .map_err(|mut e| {
            e.path = file.to_owned();
            e
        })
        .map_err(PluginError::from)?;
    image.path = file.to_owned();
    let manifest = image.manifest.clone();
    let name = manifest.name.clone();
    store::validate_name(&name)?;

    let signer = check_signature(ctx, &image, &name, opts.allow_unsigned)?;
    loader::check_api_version(&name, &manifest.api_version).map_err(PluginError::from)?;

    // Load exactly the image's library from a private copy: the loader's ELF,
    // hash, API and layout checks, and the library's own view of itself.
    let lib_path = scratch.path().join(PLUGIN_SO);
    let library = image.library().map_err(PluginError::from)?;
    write_private(&lib_path, &library)?;
    let loaded = loader::load(
        &LoadSpec::new(&lib_path)
            .name(&name)
            .sha256(&manifest.sha256),
    )
    .map_err(PluginError::from)?;
    compare_manifests(&manifest, loaded.manifest())?;

    // What is installed is read under the writer lock, so two installs at
    // once cannot both pass the "already installed" and clash checks.
    let lock = store.lock()?;
    let previous = match store.get(&name) {
        Ok(m) => Some(m),
        Err(StoreError::NotInstalled(_)) => None,
        Err(e) => return Err(e.into()),
    };
    if previous.is_some() && !opts.upgrade {
        return Err(StoreError::AlreadyInstalled(name).into());
    }
    let others: Vec<Meta> = store
        .list()?
        .into_iter()
        .filter(|m| m.manifest.name != name)
        .collect();
    check_clashes(&manifest, &others)?;

    writeln!(out, "Plugin \"{name}\" will be able to:").ok();
    for kind in &manifest.callbacks {
        writeln!(out, "  - {}", kind.describe()).ok();
    }
    if manifest.callbacks.is_empty() {
        writeln!(out, "  - nothing (it registers no callbacks)").ok();
    }

    let enabled = previous.as_ref().is_none_or(|m| m.enabled);
    let meta = store::new_meta(manifest.clone(), enabled, signer);
    let staging = store.new_staging(&lock, &meta)?;
    staging.write(PLUGIN_SO, &library, 0o644)?;
    let manifest_json =
        serde_json::to_vec_pretty(&manifest).map_err(|e| io(file, std::io::Error::other(e)))?;
    staging.write(PLUGIN_MANIFEST, &manifest_json, 0o644)?;
    staging.copy_from(PLUGIN_SIF, &private, 0o644)?;
    store.commit_install(&lock, staging, &meta, |dir| {
        if manifest.has(CallbackKind::Install) {
            tracing::info!(plugin = %name, dir = %dir.display(), "running the install callback");
            // What `host::install_dir()` says during Install, too.
            super::registry::set_install_dir(&name, dir);
            loaded.install(dir)?;
        }
        Ok(())
    })?;
    let verb = if previous.is_some() {
        "upgraded"
    } else {
        "installed"
    };
    writeln!(out, "Plugin \"{name}\" {verb}.").ok();
    Ok(meta)
}

fn io(path: &Path, source: std::io::Error) -> Error {
    PluginError::Io {
        path: path.to_owned(),
        source,
    }
    .into()
}

/// Copies the regular file `src` (as large as it was when opened: a device
/// or a growing file must not fill the disk) to a new file `dst` that only
/// root can change.
fn copy_private(src: &Path, dst: &Path) -> Result<(), Error> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: opening a FIFO must not wait for a writer (it has no
    // effect on reading a regular file).
    let from = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(src)
        .map_err(|e| io(src, e))?;
    let meta = from.metadata().map_err(|e| io(src, e))?;
    if !meta.is_file() {
        return Err(PluginError::from(super::image::PluginImageError {
            path: src.to_owned(),
            reason: "not a regular file".into(),
        })
        .into());
    }
    let mut to = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dst)
        .map_err(|e| io(dst, e))?;
    std::io::copy(&mut from.take(meta.len()), &mut to).map_err(|e| io(src, e))?;
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .map_err(|e| io(path, e))?;
    f.write_all(bytes).map_err(|e| io(path, e))
}

/// Applies the signature policy; returns the trusted signer's keyid.
fn check_signature(
    ctx: &Context,
    image: &PluginImage,
    name: &str,
    allow_unsigned: bool,
) -> Result<Option<String>, Error> {
    let trust = TrustStore::load(&ctx.paths)?;
    let report = image
        .verify(&trust.verifying_keys())
        .map_err(crate::error::in_sif(&image.path))?;
    if report.is_ok() {
        return Ok(report.signers().into_iter().next());
    }
    let reason = match report.first_failure() {
        Some(crate::trust::VerifyFailure::Unsigned { .. }) | None => {
            "image is not signed".to_owned()
        }
        Some(f) => format!("signature is not from a trusted key ({f})"),
    };
    match (ctx.config.plugin_signatures, allow_unsigned) {
        (SignaturePolicy::Off, _) => Ok(None),
        (SignaturePolicy::Warn, _) | (SignaturePolicy::Required, true) => {
            eprintln!("warning: plugin \"{name}\": {reason}; installing anyway");
            Ok(None)
        }
        (SignaturePolicy::Required, false) => Err(PluginError::from(InstallError::Untrusted {
            plugin: name.to_owned(),
            reason,
        })
        .into()),
    }
}

fn compare_manifests(image: &Manifest, lib: &Manifest) -> Result<(), Error> {
    let field = if image.name != lib.name {
        "name"
    } else if image.api_version != lib.api_version {
        "api_version"
    } else if image.callbacks != lib.callbacks {
        "callbacks"
    } else if image.commands != lib.commands {
        "commands"
    } else if image.flags != lib.flags {
        "flags"
    } else if image.global_pre_run != lib.global_pre_run {
        "global_pre_run"
    } else {
        return Ok(());
    };
    Err(PluginError::from(InstallError::ManifestMismatch {
        plugin: image.name.clone(),
        field,
    })
    .into())
}

/// Refuses commands and flags whose names a built-in or another installed
/// plugin already uses.
pub fn check_clashes(manifest: &Manifest, others: &[Meta]) -> Result<(), PluginError> {
    let plugin = manifest.name.clone();
    let builtin = Cli::command();
    let clash = |what: String, with: String| {
        PluginError::from(InstallError::Clash {
            plugin: plugin.clone(),
            what,
            with,
        })
    };
    // A name and a name below it cannot both be paths in the plugin dir.
    if let Some(o) = others.iter().find(|o| {
        let n = &o.manifest.name;
        n.starts_with(&format!("{plugin}/")) || plugin.starts_with(&format!("{n}/"))
    }) {
        return Err(clash(
            format!("name \"{plugin}\""),
            format!("plugin \"{}\"", o.manifest.name),
        ));
    }
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
            }
            .into());
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

/// Refuses command and flag specs that the merged command line could not
/// hold: a clap tree with them would be ambiguous, or would panic when
/// built, for every `vessel` invocation that reaches the command.
fn check_specs(manifest: &Manifest, builtin: &clap::Command) -> Result<(), PluginError> {
    let bad = |what: String, reason: &str| {
        PluginError::from(InstallError::BadSpec {
            plugin: manifest.name.clone(),
            what,
            reason: reason.to_owned(),
        })
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
    for c in &manifest.commands {
        let what = format!("command \"{}\"", c.name);
        if !word_ok(&c.name) {
            return Err(bad(what, "not a valid command name"));
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
    use crate::plugin::manifest::{AddedFlagSpec, CommandSpec, FlagSpec};

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
        let arg = |name: &str, required: bool, multiple: bool| crate::plugin::manifest::ArgSpec {
            name: name.into(),
            help: String::new(),
            required,
            multiple,
        };
        let with = |args: Vec<crate::plugin::manifest::ArgSpec>, flags: Vec<FlagSpec>| {
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
        m = manifest("p", &[], &[("version", "x"), ("version", "x")]);
        assert!(check_clashes(&m, &[]).is_err());
    }
}
