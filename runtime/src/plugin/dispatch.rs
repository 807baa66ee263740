//! Calling installed plugins from the CLI and the engine: load lazily, per
//! callback kind, only enabled plugins, once per process, in name order.

use super::loader::{self, LoadSpec};
use super::registry;
use super::store::{Meta, Store, PLUGIN_SO};
use super::LoadedPlugin;
use crate::Error;
use crate::Runtime;

/// A call of a plugin command: the positional values in spec order and the
/// flags given on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invocation {
    /// Command name.
    pub command: String,
    /// Positional values, in order.
    pub args: Vec<String>,
    /// Flags given: name and value (None for a switch).
    pub flags: Vec<(String, Option<String>)>,
}

/// The meta of a plugin the command line named, read again from the store:
/// the command line may come from the CLI index, which never decides what
/// loads. `None` when it is disabled now.
fn current(ctx: &Runtime, meta: &Meta) -> Result<Option<Meta>, Error> {
    let now = ctx.store().get(meta.name())?;
    Ok(now.enabled.then_some(now))
}

/// [`current`], failing when the plugin is disabled now.
fn current_enabled(ctx: &Runtime, meta: &Meta) -> Result<Meta, Error> {
    current(ctx, meta)?.ok_or_else(|| super::StoreError::Disabled(meta.name().to_owned()).into())
}

/// Loads the installed plugin `meta` (once per process) with every loader
/// check: ownership and modes up to the plugin dir, sha256 against the meta
/// and ELF checks (or, for the file unchanged since install, its stamp),
/// API version and layouts. `meta` must come from the store's
/// metas (not from the CLI index).
pub fn load_installed(ctx: &Runtime, meta: &Meta) -> Result<&'static LoadedPlugin, Error> {
    let name = meta.name();
    // Each loaded plugin lives for the process and is handed out by reference.
    registry::loaded(name, || {
        let store = Store::new(ctx.paths.plugin_dir());
        // Pinned for the process: an upgrade meanwhile keeps these files.
        let meta = &store.pin(meta)?;
        let spec = LoadSpec::new(store.files_dir(meta).join(PLUGIN_SO))
            .name(name)
            .sha256(meta.manifest.sha256.clone())
            .plugin_root(store.dir())
            .install_dir(store.files_dir(meta))
            .installed(meta.library)
            .layouts_checked_by(meta.checked_by);
        // Its config and state dirs hang off these paths (host services).
        registry::set_paths(name, &ctx.paths);
        tracing::debug!(plugin = name, "loading plugin library");
        loader::load(&spec).map_err(|e| Error::from(super::PluginError::from(e)))
    })
}

/// Runs the global pre-run hooks of every enabled plugin that has one, in
/// name order; the first error aborts the command. `metas` may come from
/// the CLI index: each is read again from the store before it loads.
pub fn run_global_pre_run(
    ctx: &Runtime,
    metas: &[Meta],
    command: &str,
    args: &[String],
) -> Result<(), Error> {
    let hooks: Vec<&Meta> = metas
        .iter()
        .filter(|m| m.enabled && m.manifest.global_pre_run)
        .collect();
    if hooks.is_empty() {
        return Ok(());
    }
    let uid = nix::unistd::getuid();
    let user = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_default();
    for meta in hooks {
        let Some(meta) = current(ctx, meta)?.filter(|m| m.manifest.global_pre_run) else {
            continue;
        };
        let p = load_installed(ctx, &meta)?;
        p.global_pre_run(uid.as_raw(), &user, command, args)?;
    }
    Ok(())
}

/// Runs a plugin command and returns its exit status (`meta` may come from
/// the CLI index: it is read again from the store).
pub fn run_command(ctx: &Runtime, meta: &Meta, inv: &Invocation) -> Result<i32, Error> {
    let p = load_installed(ctx, &current_enabled(ctx, meta)?)?;
    Ok(p.run_command(&inv.command, &inv.args, &inv.flags)?)
}

/// Runs the pre-run hook of the flags plugin `meta` added to built-in
/// `command`; an error aborts the command (`meta` may come from the CLI
/// index: it is read again from the store).
pub fn run_pre_run(
    ctx: &Runtime,
    meta: &Meta,
    command: &str,
    args: &[String],
    flags: &[(String, Option<String>)],
) -> Result<(), Error> {
    let p = load_installed(ctx, &current_enabled(ctx, meta)?)?;
    Ok(p.flag_pre_run(command, args, flags)?)
}
