//! `vessel plugin create|compile|inspect|install|uninstall|enable|disable|list`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::Error;
use vessel::plugin::lifecycle::{self, ListFilter, Toggle};
use vessel::plugin::manifest::CallbackKind;
use vessel::plugin::store::{Meta, Store};
use vessel::Runtime;
use vessel_sif::text::inert;

/// Arguments of `vessel plugin`.
#[derive(Debug, Args)]
pub struct PluginArgs {
    /// The plugin subcommand.
    #[command(subcommand)]
    pub command: PluginCommand,
}

/// The plugin subcommands.
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
    /// Show a plugin's manifest, from an installed name or an image file.
    Inspect {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Installed plugin name, or path of a plugin image.
        target: String,
    },
    /// Install a plugin image (root only).
    Install {
        /// Accept an unsigned or untrusted image, with a warning.
        #[arg(long)]
        allow_unsigned: bool,
        /// Replace an installed plugin of the same name, keeping its enabled state.
        #[arg(long)]
        upgrade: bool,
        /// The plugin image.
        file: PathBuf,
    },
    /// Remove an installed plugin (root only).
    Uninstall {
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
        /// Plugin name.
        name: String,
    },
    /// List installed plugins.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Wide form: add the callbacks column.
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
        PluginCommand::Inspect { json, target } => {
            super::plugin_build::inspect(ctx, &store, target, *json)
        }
        PluginCommand::Install {
            allow_unsigned,
            upgrade,
            file,
        } => super::plugin_build::install(ctx, &store, file, *allow_unsigned, *upgrade),
        PluginCommand::Uninstall { name } => {
            lifecycle::uninstall(&store, name)?;
            let _ = outln!("Plugin \"{name}\" uninstalled.");
            Ok(0)
        }
        PluginCommand::Enable { name } => toggle(&store, name, true),
        PluginCommand::Disable { name } => toggle(&store, name, false),
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

fn toggle(store: &Store, name: &str, enabled: bool) -> Result<i32, Error> {
    let word = if enabled { "enabled" } else { "disabled" };
    match lifecycle::set_enabled(store, name, enabled)? {
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
        out.push_str(&format!("ENABLED  {:<width$}  CALLBACKS\n", "NAME"));
        for m in metas {
            let cbs: Vec<_> = m.manifest.callbacks.iter().map(|k| k.as_str()).collect();
            out.push_str(&format!(
                "{:>7}  {:<width$}  {}\n",
                yes_no(m.enabled),
                inert(&m.manifest.name),
                cbs.join(",")
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

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
