//! `vessel plugin push|inspect|install` with an `oras://` reference: thin
//! adapters over `plugin::remote` and the local install path.

use std::path::Path;

use super::Error;
use vessel::plugin::install::{self, InstallOptions};
use vessel::plugin::remote;
use vessel::plugin::store::{Origin, Store};
use vessel::registry::{Options, Reference};
use vessel::Runtime;
use vessel_sif::text::inert;

/// `plugin push FILE REF`.
pub fn push(file: &Path, reference: &str, opts: &Options) -> Result<i32, Error> {
    let r = Reference::parse(reference)?;
    let pushed = remote::push(file, &r, opts)?;
    infoln!("Pushed {} to {r} ({}).", file.display(), pushed.digest);
    Ok(0)
}

/// `plugin inspect oras://…`: from the manifest's annotations only.
pub fn inspect(reference: &str, opts: &Options, json: bool) -> Result<i32, Error> {
    let r = Reference::parse(reference)?;
    let p = remote::inspect(&r, opts)?;
    if json {
        let v = serde_json::json!({
            "reference": r.to_string(),
            "digest": p.remote.digest,
            "name": p.name,
            "version": p.version,
            "description": p.description,
            "api_version": p.api_version,
            "callbacks": p.callbacks,
            "size": p.remote.size,
            "layer_digest": p.remote.layer_digest,
        });
        outln!(
            "{}",
            serde_json::to_string_pretty(&v).unwrap_or_else(|_| "{}".into())
        )?;
        return Ok(0);
    }
    let mut s = String::new();
    // Annotation text is the pusher's: inert, like manifest text.
    let mut line = |k: &str, v: &str| s.push_str(&format!("{k:<13}{}\n", inert(v)));
    line("Name:", &p.name);
    line("Description:", &p.description);
    line("Version:", &p.version);
    line("API version:", &p.api_version);
    line(
        "Callbacks:",
        &if p.callbacks.is_empty() {
            "none".into()
        } else {
            p.callbacks.join(", ")
        },
    );
    line("Reference:", &r.to_string());
    line("Digest:", &p.remote.digest);
    line("Size:", &format!("{} bytes", p.remote.size));
    out!("{s}")?;
    Ok(0)
}

/// `plugin install [--digest D] oras://…`: pull into a private temp dir,
/// then the local install with all its checks; the meta records the
/// reference and the digest.
pub fn install(
    ctx: &Runtime,
    store: &Store,
    reference: &str,
    pin: Option<&str>,
    opts: &Options,
    install_opts: InstallOptions,
    yes: bool,
) -> Result<i32, Error> {
    // Refuse before downloading anything.
    vessel::plugin::lifecycle::require_root("plugin install")?;
    let r = Reference::parse(reference)?;
    let fetched = remote::fetch(&r, pin, opts)?;
    let meta = install::install_with_consent(
        ctx,
        store,
        &fetched.path,
        install_opts,
        &super::clash::check_clashes,
        &mut std::io::stdout(),
        &mut |plan| super::plugin_build::ask_consent(plan, yes),
    )?;
    remote::record_origin(
        store,
        &meta,
        Origin {
            reference: r.to_string(),
            digest: fetched.pulled.digest.clone(),
        },
    )?;
    Ok(0)
}
