//! `plugin install`: every check runs before anything is written, in this
//! order: valid plugin image, clean name, trusted signature, API version,
//! the loader's checks, no clash; then the files are staged in a fresh
//! install dir, the Install callback runs there, and the store switches to
//! them by replacing the plugin's meta (one atomic rename).

use std::io::Write;
use std::path::Path;

use super::disclose::{self, Capability, CapabilityDiff};
use super::image::PluginImage;
use super::lifecycle::require_root;
use super::loader::{self, LoadSpec};
use super::manifest::{CallbackKind, Manifest};
use super::store::{self, Meta, Store, StoreError, PLUGIN_MANIFEST, PLUGIN_SIF, PLUGIN_SO};
use super::PluginError;
use crate::config::SignaturePolicy;
use crate::trust::TrustStore;
use crate::Error;
use crate::Runtime;
use vessel_sif::text::inert;

/// How to install.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstallOptions {
    /// Accept an unsigned or untrusted image with a warning.
    pub allow_unsigned: bool,
    /// Replace an installed plugin of the same name.
    pub upgrade: bool,
    /// With `upgrade`: accept a lower version than the installed one.
    pub allow_downgrade: bool,
}

/// What an install or upgrade is about to do, shown before the admin's
/// consent is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The plugin.
    pub name: String,
    /// The version being installed.
    pub version: String,
    /// The installed version this replaces, for an upgrade.
    pub previous: Option<String>,
    /// Everything the plugin will be able to do.
    pub capabilities: Vec<Capability>,
    /// For an upgrade: what changes in that.
    pub diff: Option<CapabilityDiff>,
}

/// Asked once everything checked out and the plan was shown: `Ok(true)`
/// goes ahead, `Ok(false)` declines, an error refuses (e.g. nobody to ask).
pub type Consent<'a> = &'a mut dyn FnMut(&Plan) -> Result<bool, InstallError>;

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
    /// The admin answered no.
    #[error("plugin \"{plugin}\": not installed (declined)")]
    Declined {
        /// The plugin.
        plugin: String,
    },
    /// Consent is needed and there is no terminal to ask on.
    #[error("plugin \"{plugin}\": {action} needs consent and stdin is not a terminal; review it with `vessel plugin inspect FILE` and pass --yes to grant what it lists")]
    NeedsConsent {
        /// The plugin.
        plugin: String,
        /// `install` or `upgrade`.
        action: &'static str,
    },
    /// The version is not SemVer.
    #[error("plugin \"{plugin}\": version \"{version}\" is not a semantic version (MAJOR.MINOR.PATCH): {reason}")]
    BadVersion {
        /// The plugin.
        plugin: String,
        /// The version given.
        version: String,
        /// What the parser said.
        reason: String,
    },
    /// An upgrade to a lower version without `--allow-downgrade`.
    #[error("plugin \"{plugin}\": {to} is older than the installed {from}; pass --allow-downgrade to downgrade")]
    Downgrade {
        /// The plugin.
        plugin: String,
        /// The installed version.
        from: String,
        /// The version given.
        to: String,
    },
    /// Only one plugin can supervise containers.
    #[error("plugin \"{plugin}\": monitor_container is already registered by enabled plugin \"{other}\" (only one plugin can supervise containers); disable it first")]
    MonitorTaken {
        /// The plugin.
        plugin: String,
        /// The enabled plugin that has it.
        other: String,
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

/// The command line's check of a plugin's commands and flags against the
/// built-in ones and the other installed plugins' (`others`). It lives with
/// the command line, which alone knows its built-in tree.
pub type CommandLineCheck<'a> = &'a dyn Fn(&Manifest, &[Meta]) -> Result<(), InstallError>;

/// Installs the plugin image `file` without asking (for callers that got
/// consent otherwise). See [`install_with_consent`].
pub fn install(
    ctx: &Runtime,
    store: &Store,
    file: &Path,
    opts: InstallOptions,
    check_command_line: CommandLineCheck<'_>,
    out: &mut dyn Write,
) -> Result<Meta, Error> {
    install_with_consent(ctx, store, file, opts, check_command_line, out, &mut |_| {
        Ok(true)
    })
}

/// Installs the plugin image `file`. Progress and what the plugin will be
/// able to do go to `out`, then `consent` is asked. `check_command_line`
/// refuses commands and flags the command line cannot take. On any error
/// (a declined consent included) the plugin dir is as before.
pub fn install_with_consent(
    ctx: &Runtime,
    store: &Store,
    file: &Path,
    opts: InstallOptions,
    check_command_line: CommandLineCheck<'_>,
    out: &mut dyn Write,
    consent: Consent<'_>,
) -> Result<Meta, Error> {
    require_root("plugin install")?;
    // Every check and the install itself read one private copy of the image:
    // the file given may belong to someone who could rewrite it between the
    // signature check and the read of the library that gets installed.
    // The scratch lives in the store (not /tmp), so a killed install leaves
    // it where the next store writer sweeps it.
    let scratch = store.scratch()?;
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
    let version = parse_version(&name, &manifest.version).map_err(PluginError::from)?;

    let signer = check_signature(ctx, &image, &name, opts.allow_unsigned)?;
    loader::check_api_version(&name, file, &manifest.api_version).map_err(PluginError::from)?;

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
    check_name_nesting(&manifest, &others)?;
    check_command_line(&manifest, &others).map_err(PluginError::from)?;
    let enabled = previous.as_ref().is_none_or(|m| m.enabled);
    if enabled {
        check_single_monitor(&manifest, &others).map_err(PluginError::from)?;
    }
    if let Some(prev) = &previous {
        check_version_change(prev, &manifest, &version, opts.allow_downgrade, out)?;
    }

    let plan = Plan {
        name: name.clone(),
        version: manifest.version.clone(),
        previous: previous.as_ref().map(|m| m.manifest.version.clone()),
        capabilities: disclose::capabilities(&manifest),
        diff: previous
            .as_ref()
            .map(|m| disclose::diff(&m.manifest, &manifest)),
    };
    write_plan(&plan, out);
    if !consent(&plan).map_err(PluginError::from)? {
        return Err(PluginError::from(InstallError::Declined { plugin: name }).into());
    }

    let mut meta = store::new_meta(manifest.clone(), enabled, signer);
    let staging = store.new_staging(&lock, &meta)?;
    // `library` is the very buffer whose sha256 and ELF the load above
    // checked: the file's stamp now stands for those checks at every load
    // of the file while it stays unchanged.
    let written = staging.write_library(PLUGIN_SO, &library, 0o644)?;
    meta.library = Some(store::LibraryStamp::of(&written));
    // The load above checked the layouts, in this process: this binary.
    meta.checked_by = super::stamp::runtime();
    let manifest_json =
        serde_json::to_vec_pretty(&manifest).map_err(|e| io(file, std::io::Error::other(e)))?;
    staging.write(PLUGIN_MANIFEST, &manifest_json, 0o644)?;
    staging.copy_from(PLUGIN_SIF, &private, 0o644)?;
    store.commit_install(&lock, staging, &meta, |dir| {
        if manifest.has(CallbackKind::Install) {
            tracing::info!(plugin = %name, dir = %dir.display(), "running the install callback");
            // What `host::install_dir()` says during Install, too.
            super::registry::set_install_dir(&name, dir);
            // The admin's config dir: made if missing (the Install
            // callback may put defaults there), never emptied or replaced.
            super::registry::set_paths(&name, &ctx.paths);
            super::plugin_dirs::ensure_config_dir(&ctx.paths, &name).map_err(|source| {
                PluginError::Io {
                    path: ctx.paths.plugin_config_dir(&name),
                    source,
                }
            })?;
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

/// Parses a plugin's version as SemVer.
pub fn parse_version(plugin: &str, version: &str) -> Result<semver::Version, InstallError> {
    semver::Version::parse(version).map_err(|e| InstallError::BadVersion {
        plugin: plugin.to_owned(),
        version: version.to_owned(),
        reason: e.to_string(),
    })
}

/// Refuses a downgrade unless allowed; says when the same version has
/// different contents (or is the very same build).
fn check_version_change(
    prev: &Meta,
    new: &Manifest,
    version: &semver::Version,
    allow_downgrade: bool,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let plugin = &new.name;
    // An install by an older vessel may carry a non-SemVer version: then no
    // order is known, and the upgrade is shown as a change of version only.
    let Ok(old) = semver::Version::parse(&prev.manifest.version) else {
        return Ok(());
    };
    if *version < old && !allow_downgrade {
        return Err(PluginError::from(InstallError::Downgrade {
            plugin: plugin.clone(),
            from: old.to_string(),
            to: version.to_string(),
        })
        .into());
    }
    if *version == old {
        if prev.manifest.sha256 == new.sha256 {
            writeln!(
                out,
                "Note: version {version} is already installed with the same library (sha256 {})",
                new.sha256
            )
            .ok();
        } else {
            writeln!(
                out,
                "Warning: same version {version} with a different library (sha256 {} -> {})",
                prev.manifest.sha256, new.sha256
            )
            .ok();
        }
    }
    Ok(())
}

/// Refuses a second plugin with a MonitorContainer callback among the
/// enabled ones: only one can wait for a container.
pub fn check_single_monitor(manifest: &Manifest, others: &[Meta]) -> Result<(), InstallError> {
    if !manifest.has(CallbackKind::MonitorContainer) {
        return Ok(());
    }
    match others
        .iter()
        .find(|o| o.enabled && o.manifest.has(CallbackKind::MonitorContainer))
    {
        Some(o) => Err(InstallError::MonitorTaken {
            plugin: manifest.name.clone(),
            other: o.manifest.name.clone(),
        }),
        None => Ok(()),
    }
}

/// Shows the plan: for an upgrade the version change and what is added or
/// removed, then everything the plugin will be able to do.
fn write_plan(plan: &Plan, out: &mut dyn Write) {
    let name = &plan.name;
    if let (Some(prev), Some(diff)) = (&plan.previous, &plan.diff) {
        writeln!(
            out,
            "Upgrade of plugin \"{name}\": {} -> {}",
            inert(prev),
            inert(&plan.version)
        )
        .ok();
        for c in &diff.added {
            writeln!(out, "  + {}", c.text).ok();
        }
        for c in &diff.removed {
            writeln!(out, "  - {}", c.text).ok();
        }
        if diff.added.is_empty() && diff.removed.is_empty() {
            writeln!(out, "  (no capability added or removed)").ok();
        }
    }
    writeln!(
        out,
        "Plugin \"{name}\" {} will be able to:",
        inert(&plan.version)
    )
    .ok();
    for c in &plan.capabilities {
        writeln!(out, "  - {}", c.text).ok();
    }
    if plan.capabilities.is_empty() {
        writeln!(out, "  - nothing (it registers no callbacks)").ok();
    }
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
    ctx: &Runtime,
    image: &PluginImage,
    name: &str,
    allow_unsigned: bool,
) -> Result<Option<String>, Error> {
    let trust = TrustStore::load(&ctx.paths)?;
    let report = image
        .verify(&trust.verifying_keys())
        .map_err(crate::sif_file::in_sif(&image.path))?;
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

/// Refuses a name that is a path prefix of another installed plugin's
/// name, or has one: a name and a name below it cannot both be paths in the
/// plugin dir.
fn check_name_nesting(manifest: &Manifest, others: &[Meta]) -> Result<(), PluginError> {
    let plugin = &manifest.name;
    if let Some(o) = others.iter().find(|o| {
        let n = &o.manifest.name;
        n.starts_with(&format!("{plugin}/")) || plugin.starts_with(&format!("{n}/"))
    }) {
        return Err(InstallError::Clash {
            plugin: plugin.clone(),
            what: format!("name \"{plugin}\""),
            with: format!("plugin \"{}\"", o.manifest.name),
        }
        .into());
    }
    Ok(())
}
