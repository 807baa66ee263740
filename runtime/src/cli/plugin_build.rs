//! `vessel plugin create|compile|inspect|install`: thin adapters over
//! `plugin::build`, `plugin::image` and `plugin::install`.

use std::path::Path;

use super::Error;
use vessel::plugin::build::{self, crate_name_for};
use vessel::plugin::disclose;
use vessel::plugin::image::PluginImage;
use vessel::plugin::install::{self, InstallError, InstallOptions};
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
    let caps = disclose::capabilities(&manifest);
    let dirs = installed.as_ref().map(|m| InstalledDirs {
        files: store.files_dir(m),
        config: ctx.paths.plugin_config_dir(m.name()),
        state: ctx.paths.plugin_state_dir(m.name()),
    });
    if json {
        let v = serde_json::json!({
            "manifest": manifest,
            "capabilities": caps,
            "signatures": sigs.iter().map(|(k, t)| serde_json::json!({"keyid": k, "trusted": t})).collect::<Vec<_>>(),
            "installed": installed.as_ref().zip(dirs.as_ref()).map(|(m, d)| serde_json::json!({
                "enabled": m.enabled,
                "installed_at": m.installed_at,
                "files_dir": d.files,
                "config_dir": d.config,
                "state_dir": d.state,
                "signer": m.signer,
                "signer_trusted": m.signer.as_ref().map(|k| trust.contains(k)),
                "origin": m.origin,
            })),
        });
        outln!(
            "{}",
            serde_json::to_string_pretty(&v).unwrap_or_else(|_| "{}".into())
        )?;
        return Ok(0);
    }
    let installed = installed.as_ref().zip(dirs.as_ref());
    out!("{}", render_inspect(&manifest, &caps, &sigs, installed))?;
    Ok(0)
}

/// Where an installed plugin's files are.
struct InstalledDirs {
    files: std::path::PathBuf,
    config: std::path::PathBuf,
    state: std::path::PathBuf,
}

fn render_inspect(
    m: &Manifest,
    caps: &[disclose::Capability],
    sigs: &[(String, bool)],
    installed: Option<(&Meta, &InstalledDirs)>,
) -> String {
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
    // Capability texts are already inert.
    for (i, c) in caps.iter().enumerate() {
        let label = if i == 0 { "Can:" } else { "" };
        s.push_str(&format!("{label:<13}- {}\n", c.text));
    }
    let mut line = |k: &str, v: &str| s.push_str(&format!("{k:<13}{}\n", inert(v)));
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
    if let Some((meta, dirs)) = installed {
        line("Enabled:", if meta.enabled { "yes" } else { "no" });
        line("Installed:", &utc_time(meta.installed_at));
        match &meta.signer {
            Some(k) => {
                let still = sigs.iter().any(|(s, t)| s == k && *t);
                let trust = if still {
                    "key still trusted"
                } else {
                    "key no longer trusted"
                };
                line("Signed by:", &format!("{k} ({trust})"));
            }
            None => line("Signed by:", "nobody (installed unsigned)"),
        }
        let dir = |p: &std::path::Path| {
            let absent = if p.exists() { "" } else { " (absent)" };
            format!("{}{absent}", p.display())
        };
        line("Files dir:", &dir(&dirs.files));
        line("Config dir:", &dir(&dirs.config));
        line("State dir:", &dir(&dirs.state));
        if let Some(o) = &meta.origin {
            line("Origin:", &format!("{} ({})", o.reference, o.digest));
        }
    }
    s
}

/// `YYYY-MM-DD HH:MM:SS UTC` of Unix seconds.
pub fn utc_time(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `plugin install [--allow-unsigned] [--upgrade [--allow-downgrade]] [--yes] FILE`.
pub fn install(
    ctx: &Runtime,
    store: &Store,
    file: &Path,
    opts: InstallOptions,
    yes: bool,
) -> Result<i32, Error> {
    let mut stdout = std::io::stdout();
    install::install_with_consent(
        ctx,
        store,
        file,
        opts,
        &super::clash::check_clashes,
        &mut stdout,
        &mut |plan| ask_consent(plan, yes),
    )?;
    Ok(0)
}

/// The admin's consent to `plan`: `--yes`, or `y` typed on a terminal.
/// Without a terminal nobody can be asked: refused, with a hint.
pub(super) fn ask_consent(plan: &install::Plan, yes: bool) -> Result<bool, InstallError> {
    if yes {
        return Ok(true);
    }
    confirm("Install? [y/N] ").ok_or_else(|| InstallError::NeedsConsent {
        plugin: plan.name.clone(),
        action: if plan.previous.is_some() {
            "upgrade"
        } else {
            "install"
        },
    })
}

/// Asks `question` on the terminal: `Some(true)` for `y`/`yes`,
/// `Some(false)` for anything else, `None` when stdin is not a terminal.
pub fn confirm(question: &str) -> Option<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return None;
    }
    let mut stdout = std::io::stdout();
    let _ = write!(stdout, "{question}");
    let _ = stdout.flush();
    let mut answer = String::new();
    // A closed or unreadable terminal is a no.
    if stdin.lock().read_line(&mut answer).is_err() {
        return Some(false);
    }
    Some(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}
