//! `vessel plugin create|compile|inspect|install|uninstall|enable|disable|list`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::registry::RegistryFlags;
use super::Error;
use vessel::plugin::audit;
use vessel::plugin::lifecycle::{self, ListFilter, Toggle};
use vessel::plugin::manifest::CallbackKind;
use vessel::plugin::store::{Meta, Store};
use vessel::registry::Reference;
use vessel::Runtime;
use vessel_sif::text::inert;

// Arguments of `vessel plugin` (not a doc comment: see `cli::Command`).
#[derive(Debug, Args)]
pub struct PluginArgs {
    /// The plugin subcommand.
    #[command(subcommand)]
    pub command: PluginCommand,
}

// The plugin subcommands (not a doc comment: see `cli::Command`).
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Create a new plugin crate skeleton in DIR (inside the source tree).
    Create {
        /// The vessel source tree to create it in (default:
        /// $VESSEL_SOURCE_TREE, else the tree this vessel was built from).
        #[arg(long, value_name = "DIR")]
        source_tree: Option<PathBuf>,
        /// Directory to create the crate in (must not exist or be empty).
        dir: PathBuf,
        /// Plugin name, e.g. example.com/my-plugin.
        name: String,
    },
    /// Compile a plugin crate into a SIF plugin image.
    Compile {
        /// Output file (default: DIR/<crate name>.sif).
        #[arg(short, long)]
        out: Option<PathBuf>,
        /// Sign the image with this ed25519 private key (PKCS#8 PEM).
        #[arg(long, value_name = "KEY")]
        sign_key: Option<PathBuf>,
        /// The vessel source tree to build in (default: $VESSEL_SOURCE_TREE,
        /// else the tree this vessel was built from).
        #[arg(long, value_name = "DIR")]
        source_tree: Option<PathBuf>,
        /// The plugin crate directory.
        dir: PathBuf,
    },
    /// Rebuild a plugin from its source and check it is the image's library.
    VerifyBuild {
        /// The vessel source tree to build in (default: $VESSEL_SOURCE_TREE,
        /// else the tree this vessel was built from).
        #[arg(long, value_name = "DIR")]
        source_tree: Option<PathBuf>,
        /// A plugin image, or an installed plugin's name.
        image: String,
        /// The plugin crate directory (never written to).
        dir: PathBuf,
    },
    /// Show a plugin's manifest, from an installed name, an image file or
    /// a registry reference (oras://…, read from its manifest only).
    Inspect {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Registry options (for an oras:// reference).
        #[command(flatten)]
        registry: RegistryFlags,
        /// Installed plugin name, path of a plugin image, or oras:// reference.
        target: String,
    },
    /// Install a plugin image from a file or a registry (root only).
    Install {
        /// Accept an unsigned or untrusted image, with a warning.
        #[arg(long)]
        allow_unsigned: bool,
        /// Replace an installed plugin of the same name, keeping its enabled state.
        #[arg(long)]
        upgrade: bool,
        /// With --upgrade: accept a lower version than the installed one.
        #[arg(long, requires = "upgrade")]
        allow_downgrade: bool,
        /// Grant what the plugin lists without asking (needed without a terminal).
        #[arg(short = 'y', long)]
        yes: bool,
        /// Install exactly this manifest digest (sha256:…) of an oras:// reference.
        #[arg(long, value_name = "DIGEST")]
        digest: Option<String>,
        /// Registry options (for an oras:// reference).
        #[command(flatten)]
        registry: RegistryFlags,
        /// The plugin image: a file or oras://HOST/REPO[:TAG|@sha256:…].
        file: PathBuf,
    },
    /// Push a plugin image to a registry, with its name, version, API
    /// version and callbacks as manifest annotations.
    Push {
        /// Registry options.
        #[command(flatten)]
        registry: RegistryFlags,
        /// The plugin image.
        file: PathBuf,
        /// Where to: oras://HOST[:PORT]/REPO:TAG.
        reference: String,
    },
    /// Remove an installed plugin (root only).
    Uninstall {
        /// Remove it although running containers use it.
        #[arg(long)]
        force: bool,
        /// Also remove its config dir (etc/vessel/plugins/NAME, the admin's
        /// settings) and root's state dir (var/lib/vessel/plugins/NAME).
        #[arg(long)]
        purge: bool,
        /// Plugin name.
        name: String,
    },
    /// Enable an installed plugin (root only).
    Enable {
        /// Plugin name.
        name: String,
    },
    /// Disable an installed plugin (root only).
    Disable {
        /// Disable it although running containers use it.
        #[arg(long)]
        force: bool,
        /// Plugin name.
        name: String,
    },
    /// Re-check installed plugins' files and signatures against today's
    /// trust store (exit 1 when one fails).
    Verify {
        /// Only this plugin (default: every installed one).
        name: Option<String>,
    },
    /// List installed plugins.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Wide form: add the VERSION, CALLBACKS, SIGNED BY and ORIGIN columns.
        #[arg(short = 'l', long = "long")]
        long: bool,
        /// Only enabled plugins.
        #[arg(long, conflicts_with = "disabled")]
        enabled: bool,
        /// Only disabled plugins.
        #[arg(long)]
        disabled: bool,
        /// Only plugins that registered this callback kind.
        #[arg(long, value_name = "KIND", value_parser = parse_callback)]
        callback: Option<CallbackKind>,
    },
}

fn parse_callback(s: &str) -> Result<CallbackKind, String> {
    let norm = s.to_ascii_lowercase().replace('-', "_");
    CallbackKind::ALL
        .into_iter()
        .find(|k| k.as_str() == norm || k.as_str().replace('_', "") == norm)
        .ok_or_else(|| {
            let all: Vec<_> = CallbackKind::ALL.iter().map(|k| k.as_str()).collect();
            format!("unknown callback kind {s:?} (one of: {})", all.join(", "))
        })
}

/// Runs `vessel plugin`.
pub fn run(args: &PluginArgs, ctx: &Runtime) -> Result<i32, Error> {
    let store = Store::new(ctx.paths.plugin_dir());
    match &args.command {
        PluginCommand::Create {
            source_tree,
            dir,
            name,
        } => super::plugin_build::create(dir, name, source_tree.as_deref()),
        PluginCommand::Compile {
            out,
            sign_key,
            source_tree,
            dir,
        } => super::plugin_build::compile(
            dir,
            vessel::plugin::build::CompileOptions {
                out: out.as_deref(),
                sign_key: sign_key.as_deref(),
                source_tree: source_tree.as_deref(),
                check: Some(super::clash::check_alone),
            },
        ),
        PluginCommand::VerifyBuild {
            source_tree,
            image,
            dir,
        } => super::plugin_build::verify_build(&store, image, dir, source_tree.as_deref()),
        PluginCommand::Inspect {
            json,
            registry,
            target,
        } if Reference::is_reference(target) => {
            super::plugin_remote::inspect(target, &registry.options(ctx), *json)
        }
        PluginCommand::Inspect { json, target, .. } => {
            super::plugin_build::inspect(ctx, &store, target, *json)
        }
        PluginCommand::Install {
            allow_unsigned,
            upgrade,
            allow_downgrade,
            yes,
            digest,
            registry,
            file,
        } => {
            let opts = vessel::plugin::install::InstallOptions {
                allow_unsigned: *allow_unsigned,
                upgrade: *upgrade,
                allow_downgrade: *allow_downgrade,
            };
            match file.to_str().filter(|f| Reference::is_reference(f)) {
                Some(r) => super::plugin_remote::install(
                    ctx,
                    &store,
                    r,
                    digest.as_deref(),
                    &registry.options(ctx),
                    opts,
                    *yes,
                ),
                None if digest.is_some() => Err(Error::Usage(
                    "--digest applies to an oras:// reference, not a file".into(),
                )),
                None => super::plugin_build::install(ctx, &store, file, opts, *yes),
            }
        }
        PluginCommand::Push {
            registry,
            file,
            reference,
        } => super::plugin_remote::push(file, reference, &registry.options(ctx)),
        PluginCommand::Uninstall { force, purge, name } => {
            lifecycle::uninstall(&store, name, *force)?;
            let _ = outln!("Plugin \"{name}\" uninstalled.");
            if *purge {
                // The name was installed, so it passed the name checks: its
                // dirs stay under etc/vessel/plugins and var/lib.
                lifecycle::purge(&ctx.paths, name)?;
                let _ = outln!("Removed its config and state dirs.");
            }
            Ok(0)
        }
        PluginCommand::Enable { name } => toggle(&store, name, true, false),
        PluginCommand::Disable { force, name } => toggle(&store, name, false, *force),
        PluginCommand::Verify { name } => verify(ctx, &store, name.as_deref()),
        PluginCommand::List {
            json,
            long,
            enabled,
            disabled,
            callback,
        } => {
            let filter = ListFilter {
                enabled: match (enabled, disabled) {
                    (true, _) => Some(true),
                    (_, true) => Some(false),
                    _ => None,
                },
                callback: *callback,
            };
            let listing = lifecycle::list(&store, ctx.installed.as_deref(), &filter)?;
            let text = if listing.shown.is_empty() && listing.installed > 0 && !*json {
                "No installed plugin matches.\n".to_owned()
            } else {
                render_list(&listing.shown, *json, *long)
            };
            out!("{}", text)?;
            Ok(0)
        }
    }
}

/// `plugin verify [NAME]`: one line per plugin, exit 1 when one fails.
fn verify(ctx: &Runtime, store: &Store, name: Option<&str>) -> Result<i32, Error> {
    let trust = vessel::trust::TrustStore::load(&ctx.paths)?;
    let metas = match name {
        Some(n) => vec![store.get(n)?],
        None => store.list()?,
    };
    if metas.is_empty() {
        outln!("There are no plugins installed.")?;
        return Ok(0);
    }
    let mut failed = false;
    for m in &metas {
        let a = audit::audit(store, &trust, ctx.config.plugin_signatures, m);
        let name = inert(&a.name);
        if a.ok() {
            let by = if a.trusted_signers.is_empty() {
                "not signed by a trusted key".to_owned()
            } else {
                format!("signed by {} (trusted)", a.trusted_signers.join(", "))
            };
            outln!("{name}: ok, {by}")?;
        } else {
            failed = true;
            let problems: Vec<String> = a.problems.iter().map(|p| inert(p).into_owned()).collect();
            outln!("{name}: FAILED: {}", problems.join("; "))?;
        }
    }
    Ok(i32::from(failed))
}

fn toggle(store: &Store, name: &str, enabled: bool, force: bool) -> Result<i32, Error> {
    let word = if enabled { "enabled" } else { "disabled" };
    let opts = lifecycle::ToggleOptions {
        force,
        check_command_line: &super::clash::check_clashes,
    };
    match lifecycle::set_enabled(store, name, enabled, opts)? {
        Toggle::Changed => outln!("Plugin \"{name}\" {word}."),
        Toggle::AlreadyThere => outln!("Plugin \"{name}\" is already {word}."),
    }
    .ok();
    Ok(0)
}

/// The `plugin list` output: the `ENABLED  NAME` table, its wide form, or JSON.
pub fn render_list(metas: &[Meta], json: bool, long: bool) -> String {
    if json {
        let rows: Vec<_> = metas
            .iter()
            .map(|m| {
                serde_json::json!({
                    "name": m.manifest.name,
                    "enabled": m.enabled,
                    "version": m.manifest.version,
                    "description": m.manifest.description,
                    "callbacks": m.manifest.callbacks,
                    "signer": m.signer,
                    "installed_at": m.installed_at,
                    "origin": m.origin,
                })
            })
            .collect();
        return format!(
            "{}\n",
            serde_json::to_string_pretty(&rows).unwrap_or_else(|_| "[]".into())
        );
    }
    if metas.is_empty() {
        return "There are no plugins installed.\n".into();
    }
    let mut out = String::new();
    if long {
        let width = metas
            .iter()
            .map(|m| m.manifest.name.len())
            .max()
            .unwrap_or(0)
            .max(4);
        let cbs = |m: &Meta| {
            let c: Vec<_> = m.manifest.callbacks.iter().map(|k| k.as_str()).collect();
            if c.is_empty() {
                "-".to_owned()
            } else {
                c.join(",")
            }
        };
        let vwidth = metas
            .iter()
            .map(|m| inert(&m.manifest.version).len())
            .max()
            .unwrap_or(0)
            .max(7);
        let cwidth = metas.iter().map(|m| cbs(m).len()).max().unwrap_or(0).max(9);
        let signer = |m: &Meta| inert(m.signer.as_deref().unwrap_or("-")).into_owned();
        let swidth = metas
            .iter()
            .map(|m| signer(m).len())
            .max()
            .unwrap_or(0)
            .max(9);
        out.push_str(&format!(
            "ENABLED  {:<width$}  {:<vwidth$}  {:<cwidth$}  {:<swidth$}  ORIGIN\n",
            "NAME", "VERSION", "CALLBACKS", "SIGNED BY"
        ));
        for m in metas {
            out.push_str(&format!(
                "{:>7}  {:<width$}  {:<vwidth$}  {:<cwidth$}  {:<swidth$}  {}\n",
                yes_no(m.enabled),
                inert(&m.manifest.name),
                inert(&m.manifest.version),
                cbs(m),
                signer(m),
                origin(m),
            ));
        }
    } else {
        out.push_str("ENABLED  NAME\n");
        for m in metas {
            let name = inert(&m.manifest.name);
            out.push_str(&format!("{:>7}  {name}\n", yes_no(m.enabled)));
        }
    }
    out
}

/// Where a plugin was installed from: the `oras://` reference pinned to the
/// manifest digest it had (`-` for a local file).
fn origin(m: &Meta) -> String {
    match &m.origin {
        None => "-".to_owned(),
        Some(o) if o.reference.contains('@') => inert(&o.reference).into_owned(),
        Some(o) => format!("{}@{}", inert(&o.reference), inert(&o.digest)),
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
