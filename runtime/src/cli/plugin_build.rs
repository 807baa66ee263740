//! `vessel plugin create|compile|inspect|install`: thin adapters over
//! `plugin::build`, `plugin::image` and `plugin::install`.

use std::path::Path;

use super::Error;
use vessel::plugin::build::{self, crate_name_for};
use vessel::plugin::image::PluginImage;
use vessel::plugin::install::{self, InstallOptions};
use vessel::plugin::manifest::Manifest;
use vessel::plugin::store::{Meta, Store};
use vessel::plugin::PluginError;
use vessel::trust::TrustStore;
use vessel::Runtime;
use vessel_sif::text::inert;

/// `plugin create DIR NAME`.
pub fn create(dir: &Path, name: &str, source_tree: Option<&Path>) -> Result<i32, Error> {
    let dir = build::create_plugin(dir, name, source_tree)?;
    let _ = outln!(
        "Plugin \"{name}\" created in {} (crate {}).",
        dir.display(),
        crate_name_for(name)
    );
    Ok(0)
}

/// `plugin compile [--out FILE] [--sign-key KEY] DIR`.
pub fn compile(dir: &Path, opts: build::CompileOptions<'_>) -> Result<i32, Error> {
    let out = build::compile(dir, opts)?;
    let _ = outln!("Plugin built to: {}", out.display());
    Ok(0)
}

/// `plugin verify-build IMAGE|NAME DIR`: `reproduced: SHA256` and exit 0,
/// or the first difference and exit 1.
pub fn verify_build(
    store: &Store,
    image: &str,
    dir: &Path,
    source_tree: Option<&Path>,
) -> Result<i32, Error> {
    let manifest = if Path::new(image).is_file() || image.ends_with(".sif") {
        PluginImage::open(Path::new(image))
            .map_err(PluginError::from)?
            .manifest
    } else {
        store.get(image)?.manifest
    };
    match build::verify_build(&manifest, dir, source_tree)? {
        build::Verdict::Reproduced(sha) => {
            outln!("reproduced: {sha}")?;
            Ok(0)
        }
        build::Verdict::Differs(what) => {
            outln!("{}", inert(&what))?;
            Ok(1)
        }
    }
}

/// `plugin inspect NAME|FILE [--json]`: an existing file is read as an
/// image; anything else is an installed plugin's name.
pub fn inspect(ctx: &Runtime, store: &Store, target: &str, json: bool) -> Result<i32, Error> {
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
                "origin": m.origin,
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
    // Manifest text is the plugin author's: inert, so a description cannot
    // hide or forge the lines below it (e.g. Signatures).
    let mut line = |k: &str, v: &str| s.push_str(&format!("{k:<13}{}\n", inert(v)));
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
    if let Some(p) = &m.provenance {
        line("Source:", &format!("sha256 {}", p.source_sha256));
        line("Cargo.lock:", &format!("sha256 {}", p.lock_sha256));
        line("Built in:", &p.vessel_source);
        line("Build time:", &p.source_date_epoch.to_string());
    }
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
        if let Some(o) = &meta.origin {
            line("Origin:", &format!("{} ({})", o.reference, o.digest));
        }
    }
    s
}

/// `plugin install [--allow-unsigned] [--upgrade] FILE`.
pub fn install(
    ctx: &Runtime,
    store: &Store,
    file: &Path,
    allow_unsigned: bool,
    upgrade: bool,
) -> Result<i32, Error> {
    let opts = InstallOptions {
        allow_unsigned,
        upgrade,
    };
    install::install(
        ctx,
        store,
        file,
        opts,
        &super::clash::check_clashes,
        &mut std::io::stdout(),
    )?;
    Ok(0)
}
