//! `vessel plugin create|compile|inspect|install`: thin adapters over
//! `plugin::build`, `plugin::image` and `plugin::install`.

use std::path::{Path, PathBuf};

use super::Context;
use crate::plugin::build::{self, crate_name_for};
use crate::plugin::image::{self, PluginImage};
use crate::plugin::install::{self, InstallOptions};
use crate::plugin::loader::{self, LoadSpec};
use crate::plugin::manifest::Manifest;
use crate::plugin::store::{self, Meta, Store};
use crate::plugin::PluginError;
use crate::trust::{self, TrustStore};
use crate::Error;

/// The `src/lib.rs` of a new plugin: its manifest and no callbacks yet.
fn skeleton_lib_rs(name: &str) -> String {
    format!(
        r#"//! The vessel plugin `{name}`.
//!
//! Add callbacks to the builder below (see the vessel-plugin-api docs:
//! `.command(..)`, `.flag(..)`, `.engine_config(..)`, ...), then build the
//! plugin image with `vessel plugin compile DIR`.

use vessel_plugin_api::Plugin;

/// Builds the plugin; the runtime calls it once when it loads the library.
pub fn build() -> Plugin {{
    Plugin::new("{name}")
        .author("")
        .version("0.1.0")
        .description("")
}}

vessel_plugin_api::export_plugin!(build);
"#
    )
}

/// `plugin create DIR NAME`.
pub fn create(dir: &Path, name: &str) -> Result<i32, Error> {
    store::validate_name(name)?;
    let tree = build::source_tree().map_err(PluginError::from)?;
    let dir = build::create(&tree, dir, name, &skeleton_lib_rs(name)).map_err(PluginError::from)?;
    let _ = outln!(
        "Plugin \"{name}\" created in {} (crate {}).",
        dir.display(),
        crate_name_for(name)
    );
    Ok(0)
}

/// `plugin compile [--out FILE] [--sign-key KEY] DIR`.
pub fn compile(dir: &Path, out: Option<&Path>, key: Option<&Path>) -> Result<i32, Error> {
    // Validate everything cheap before the (slow) build.
    let tree = build::source_tree().map_err(PluginError::from)?;
    build::inside_tree(&tree, dir).map_err(PluginError::from)?;
    let signing_key = key.map(trust::load_signing_key).transpose()?;

    let built = build::cargo_build(&tree, dir).map_err(PluginError::from)?;
    let loaded = loader::load(&LoadSpec::new(&built.library)).map_err(PluginError::from)?;
    let manifest = Manifest {
        runtime_version: env!("CARGO_PKG_VERSION").to_owned(),
        rustc_version: built.rustc_version.clone(),
        target: built.target.clone(),
        ..loaded.manifest().clone()
    };
    store::validate_name(&manifest.name)?;
    let out: PathBuf = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| built.dir.join(format!("{}.sif", built.crate_name)));
    image::write(&out, &built.library, &manifest)?;
    if let Some(k) = &signing_key {
        if let Err(e) = vessel_sif::sign_image(&out, k) {
            let _ = std::fs::remove_file(&out);
            return Err(e.into());
        }
    }
    let _ = outln!("Plugin built to: {}", out.display());
    Ok(0)
}

/// `plugin inspect NAME|FILE [--json]`: an existing file is read as an
/// image; anything else is an installed plugin's name.
pub fn inspect(ctx: &Context, store: &Store, target: &str, json: bool) -> Result<i32, Error> {
    let trust = TrustStore::load(&ctx.paths)?;
    let as_file = Path::new(target).is_file() || target.ends_with(".sif");
    // A file's signatures are verified against the trust store: only a
    // verified one is shown as trusted, whatever keyid its envelope claims.
    let (manifest, sigs, installed) = if as_file {
        let img = PluginImage::open(Path::new(target)).map_err(PluginError::from)?;
        let sigs = img.checked_signers(&trust.verifying_keys())?;
        (img.manifest.clone(), sigs, None)
    } else {
        let meta = store.get(target)?;
        let sigs = meta
            .signer
            .iter()
            .map(|k| (k.clone(), trust.contains(k)))
            .collect();
        (meta.manifest.clone(), sigs, Some(meta))
    };
    if json {
        let v = serde_json::json!({
            "manifest": manifest,
            "signatures": sigs.iter().map(|(k, t)| serde_json::json!({"keyid": k, "trusted": t})).collect::<Vec<_>>(),
            "installed": installed.as_ref().map(|m: &Meta| serde_json::json!({
                "enabled": m.enabled,
                "installed_at": m.installed_at,
            })),
        });
        outln!(
            "{}",
            serde_json::to_string_pretty(&v).unwrap_or_else(|_| "{}".into())
        )?;
        return Ok(0);
    }
    out!("{}", render_inspect(&manifest, &sigs, installed.as_ref()))?;
    Ok(0)
}

fn render_inspect(m: &Manifest, sigs: &[(String, bool)], installed: Option<&Meta>) -> String {
    let mut s = String::new();
    let mut line = |k: &str, v: &str| s.push_str(&format!("{k:<13}{v}\n"));
    line("Name:", &m.name);
    line("Description:", &m.description);
    line("Author:", &m.author);
    line("Version:", &m.version);
    line("API version:", &m.api_version);
    line("Target:", &m.target);
    if !m.rustc_version.is_empty() {
        line(
            "Built with:",
            &format!("vessel {} / {}", m.runtime_version, m.rustc_version),
        );
    }
    let cbs: Vec<_> = m.callbacks.iter().map(|k| k.as_str()).collect();
    line(
        "Callbacks:",
        &if cbs.is_empty() {
            "none".into()
        } else {
            cbs.join(", ")
        },
    );
    if !m.commands.is_empty() {
        let c: Vec<_> = m.commands.iter().map(|c| c.name.as_str()).collect();
        line("Commands:", &c.join(", "));
    }
    if !m.flags.is_empty() {
        let f: Vec<_> = m
            .flags
            .iter()
            .map(|f| format!("{} --{}", f.command, f.flag.name))
            .collect();
        line("Flags:", &f.join(", "));
    }
    line("SHA256:", &m.sha256);
    if sigs.is_empty() {
        line("Signatures:", "none (unsigned)");
    } else {
        for (i, (k, t)) in sigs.iter().enumerate() {
            let label = if i == 0 { "Signatures:" } else { "" };
            let trusted = if *t { "trusted" } else { "not trusted" };
            line(label, &format!("{k} ({trusted})"));
        }
    }
    if let Some(meta) = installed {
        line("Enabled:", if meta.enabled { "yes" } else { "no" });
    }
    s
}

/// `plugin install [--allow-unsigned] [--upgrade] FILE`.
pub fn install(
    ctx: &Context,
    store: &Store,
    file: &Path,
    allow_unsigned: bool,
    upgrade: bool,
) -> Result<i32, Error> {
    let opts = InstallOptions {
        allow_unsigned,
        upgrade,
    };
    install::install(ctx, store, file, opts, &mut std::io::stdout())?;
    Ok(0)
}
