//! The engine's hook points served by installed plugins.
//!
//! [`PluginHooks`] implements [`Hooks`] with the enabled plugins of the
//! store: EngineConfig callbacks change the config, RegisterImageDriver
//! callbacks add image drivers, PostStartProcess callbacks see the container
//! pid, and a MonitorContainer plugin replaces the default monitor. Each hook
//! point loads only the plugins that registered its kind, in name order; a
//! run without such plugins opens no library. PostStartProcess and
//! MonitorContainer plugins are loaded with the EngineConfig ones, before
//! anything is mounted, so a plugin failing its load checks never leaves a
//! started container to kill.
//!
//! The adapters here translate between the runtime's types and the stable
//! ABI's: [`ConfigAdapter`] (the engine config), [`SignalAdapter`] (the
//! signals the runtime receives) and the registrar, which wraps every plugin
//! driver into the runtime's [`ImageDriver`] trait.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use abi_stable::std_types::{RErr, ROk, ROption, RResult, RStr, RString, RVec};
use nix::mount::MsFlags;
use nix::unistd::Pid;
use vessel_plugin_api::abi::{self, ImageDriverBox};

use super::dispatch::load_installed;
use super::manifest::CallbackKind;
use super::store::{Meta, Store};
use super::LoadedPlugin;
use crate::cli::Context;
use crate::engine::config::{Bind, EngineConfig, EnvOp};
use crate::engine::hooks::Hooks;
use crate::engine::monitor::{self, Received, Signals};
use crate::image::driver::{Features, ImageDriver, MountRequest, Registry};
use crate::image::ImageError;
use crate::Error;

/// Errors of the plugin hook points (besides the plugins' own errors).
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// More than one enabled plugin wants to replace the container monitor.
    #[error(
        "plugins {} {} register MonitorContainer, but only one may replace the container monitor (disable the others with: vessel plugin disable NAME)",
        quoted_list(.0),
        if .0.len() == 2 { "both" } else { "all" }
    )]
    MonitorConflict(Vec<String>),
    /// A MonitorContainer plugin returned while the container still runs.
    #[error(
        "plugin {plugin:?}: its monitor returned while container process {pid} was still running"
    )]
    MonitorReturnedEarly {
        /// The plugin.
        plugin: String,
        /// The container process.
        pid: i32,
    },
}

fn quoted_list(names: &[String]) -> String {
    let q: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    match q.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

impl From<HookError> for Error {
    fn from(e: HookError) -> Self {
        Error::Plugin(super::PluginError::Hooks(e))
    }
}

/// The engine hooks of the installed, enabled plugins.
#[derive(Debug)]
pub struct PluginHooks<'a> {
    ctx: &'a Context,
    enabled: Vec<Meta>,
    monitor: Option<Meta>,
}

impl<'a> PluginHooks<'a> {
    /// Reads the store (no library is opened) and checks what can be checked
    /// before anything runs: at most one MonitorContainer plugin.
    pub fn new(ctx: &'a Context) -> Result<Self, Error> {
        // Fail closed: a meta that cannot be read (or, as root, an insecure
        // store) must not silently drop that plugin's policy.
        let fresh = Store::new(ctx.paths.plugin_dir()).list_complete()?;
        let all = match &ctx.installed {
            Some(known) => known.clone(),
            None => fresh,
        };
        let enabled: Vec<Meta> = all.into_iter().filter(|m| m.enabled).collect();
        let monitors: Vec<&Meta> = enabled
            .iter()
            .filter(|m| m.manifest.has(CallbackKind::MonitorContainer))
            .collect();
        if monitors.len() > 1 {
            return Err(HookError::MonitorConflict(
                monitors.iter().map(|m| m.name().to_owned()).collect(),
            )
            .into());
        }
        let monitor = monitors.first().map(|m| (*m).clone());
        Ok(Self {
            ctx,
            enabled,
            monitor,
        })
    }

    /// Loads (once per process) the enabled plugins that registered `kind`,
    /// in name order.
    fn load(&self, kind: CallbackKind) -> Result<Vec<&'static LoadedPlugin>, Error> {
        self.enabled
            .iter()
            .filter(|m| m.manifest.has(kind))
            .map(|m| load_installed(self.ctx, m))
            .collect()
    }
}

impl Hooks for PluginHooks<'_> {
    fn engine_config(&mut self, cfg: &mut EngineConfig) -> Result<(), Error> {
        for p in self.load(CallbackKind::EngineConfig)? {
            tracing::debug!(plugin = p.name(), "running the engine config callback");
            p.engine_config(&mut ConfigAdapter::new(cfg))?;
        }
        // Plugins that act once the container runs are loaded (and so pass
        // the loader's checks) now, before anything is mounted or started:
        // a plugin that fails to load must stop the run, not kill a started
        // container. Loads are cached, so their hook points reuse these.
        self.load(CallbackKind::PostStartProcess)?;
        self.load(CallbackKind::MonitorContainer)?;
        Ok(())
    }

    fn register_image_drivers(
        &mut self,
        registry: &mut Registry,
        unprivileged: bool,
    ) -> Result<(), Error> {
        for p in self.load(CallbackKind::RegisterImageDriver)? {
            let mut registrar = RegistrarAdapter {
                registry: &mut *registry,
                plugin: p.name().to_owned(),
            };
            p.register_image_drivers(unprivileged, &mut registrar)?;
        }
        Ok(())
    }

    fn post_start(&mut self, cfg: &EngineConfig, pid: Pid) -> Result<(), Error> {
        let plugins = self.load(CallbackKind::PostStartProcess)?;
        if plugins.is_empty() {
            return Ok(());
        }
        // Callbacks get a read-only view; a copy keeps the real config untouched.
        let mut view = cfg.clone();
        for p in plugins {
            tracing::debug!(plugin = p.name(), %pid, "running the post start callback");
            p.post_start_process(&ConfigAdapter::new(&mut view), pid.as_raw())?;
        }
        Ok(())
    }

    fn monitor(
        &mut self,
        cfg: &EngineConfig,
        pid: Pid,
        signals: &mut Signals,
    ) -> Option<Result<i32, Error>> {
        let meta = self.monitor.as_ref()?;
        Some((|| {
            let p = load_installed(self.ctx, meta)?;
            tracing::debug!(plugin = p.name(), %pid, "plugin monitors the container");
            let mut view = cfg.clone();
            let mut source = SignalAdapter::new(signals);
            let raw =
                p.monitor_container(&ConfigAdapter::new(&mut view), pid.as_raw(), &mut source)?;
            // The contract is that the monitor reaped the container. If it is
            // still running, fail so the engine kills it rather than leave it.
            match monitor::try_reap(pid) {
                Ok(None) => Err(HookError::MonitorReturnedEarly {
                    plugin: p.name().to_owned(),
                    pid: pid.as_raw(),
                }
                .into()),
                Ok(Some(_)) => {
                    tracing::warn!(
                        plugin = p.name(),
                        "the monitor returned without reaping container process {pid}"
                    );
                    Ok(raw)
                }
                Err(_) => Ok(raw),
            }
        })())
    }
}

/// The runtime's engine config seen through the ABI's `EngineConfig`.
/// Environment reads show the container's effective environment (the
/// host's unless cleanenv, then every change); writes append changes.
#[derive(Debug)]
pub struct ConfigAdapter<'c> {
    cfg: &'c mut EngineConfig,
}

impl<'c> ConfigAdapter<'c> {
    /// Adapts `cfg`.
    pub fn new(cfg: &'c mut EngineConfig) -> Self {
        Self { cfg }
    }

    fn environment(&self) -> Vec<(String, String)> {
        self.cfg.environment(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }
}

fn rstring(p: &Path) -> RString {
    RString::from(p.to_string_lossy().as_ref())
}

fn kvs<'k>(it: impl Iterator<Item = (&'k String, &'k String)>) -> RVec<abi::KeyValue> {
    it.map(|(k, v)| abi::KeyValue {
        key: k.as_str().into(),
        value: v.as_str().into(),
    })
    .collect()
}

impl abi::EngineConfig for ConfigAdapter<'_> {
    fn binds(&self) -> RVec<abi::Bind> {
        self.cfg
            .binds
            .iter()
            .map(|b| abi::Bind {
                source: rstring(&b.src),
                destination: rstring(&b.dst),
                readonly: b.readonly,
            })
            .collect()
    }
    fn set_binds(&mut self, binds: RVec<abi::Bind>) {
        self.cfg.binds = binds
            .iter()
            .map(|b| Bind {
                src: PathBuf::from(b.source.as_str()),
                dst: PathBuf::from(b.destination.as_str()),
                readonly: b.readonly,
            })
            .collect();
    }
    fn env_get(&self, key: RStr<'_>) -> ROption<RString> {
        self.environment()
            .into_iter()
            .rfind(|(k, _)| k == key.as_str())
            .map(|(_, v)| RString::from(v))
            .into()
    }
    fn env_set(&mut self, key: RStr<'_>, value: RStr<'_>) {
        self.cfg.env.push(EnvOp::Set(
            key.as_str().to_owned(),
            value.as_str().to_owned(),
        ));
    }
    fn env_unset(&mut self, key: RStr<'_>) {
        self.cfg.env.push(EnvOp::Unset(key.as_str().to_owned()));
    }
    fn env_list(&self) -> RVec<abi::KeyValue> {
        let env = self.environment();
        kvs(env.iter().map(|(k, v)| (k, v)))
    }
    fn contain(&self) -> bool {
        self.cfg.contain
    }
    fn set_contain(&mut self, contain: bool) {
        self.cfg.contain = contain;
    }
    fn hostname(&self) -> ROption<RString> {
        self.cfg.hostname.as_deref().map(RString::from).into()
    }
    fn set_hostname(&mut self, hostname: ROption<RString>) {
        self.cfg.hostname = hostname.into_option().map(RString::into_string);
    }
    fn cwd(&self) -> ROption<RString> {
        self.cfg.cwd.as_deref().map(rstring).into()
    }
    fn set_cwd(&mut self, cwd: ROption<RString>) {
        self.cfg.cwd = cwd.into_option().map(|c| PathBuf::from(c.into_string()));
    }
    fn namespaces(&self) -> abi::Namespaces {
        let n = self.cfg.namespaces;
        abi::Namespaces {
            pid: n.pid,
            uts: n.uts,
            ipc: n.ipc,
            net: n.net,
            user: n.user,
        }
    }
    fn set_namespaces(&mut self, n: abi::Namespaces) {
        let ns = &mut self.cfg.namespaces;
        (ns.pid, ns.uts, ns.ipc, ns.net, ns.user) = (n.pid, n.uts, n.ipc, n.net, n.user);
    }
    fn annotations(&self) -> RVec<abi::KeyValue> {
        kvs(self.cfg.annotations.iter())
    }
    fn set_annotation(&mut self, key: RStr<'_>, value: RStr<'_>) {
        self.cfg
            .annotations
            .insert(key.as_str().to_owned(), value.as_str().to_owned());
    }
    fn remove_annotation(&mut self, key: RStr<'_>) {
        self.cfg.annotations.remove(key.as_str());
    }
}

/// The engine's blocked signals seen through the ABI's `SignalSource`:
/// forwarded signals and SIGCHLD are reported; terminal-generated ones
/// already reached the container and are skipped.
#[derive(Debug)]
pub struct SignalAdapter<'s> {
    signals: &'s mut Signals,
}

impl<'s> SignalAdapter<'s> {
    /// Adapts `signals`.
    pub fn new(signals: &'s mut Signals) -> Self {
        Self { signals }
    }
}

impl abi::SignalSource for SignalAdapter<'_> {
    fn next(&mut self, timeout_ms: i64) -> ROption<i32> {
        let deadline = u64::try_from(timeout_ms)
            .ok()
            .map(|ms| Instant::now() + Duration::from_millis(ms));
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            match self.signals.wait(left) {
                Ok(Some(Received::Child)) => return ROption::RSome(libc::SIGCHLD),
                Ok(Some(Received::Signal {
                    signal,
                    from_terminal: false,
                })) => return ROption::RSome(signal as i32),
                Ok(Some(Received::Signal { .. })) | Ok(None) => {}
                Err(e) => {
                    tracing::warn!("{e}");
                    return ROption::RNone;
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return ROption::RNone;
            }
        }
    }
}

/// Registers plugin drivers into the engine's registry.
struct RegistrarAdapter<'r> {
    registry: &'r mut Registry,
    plugin: String,
}

impl abi::DriverRegistrar for RegistrarAdapter<'_> {
    fn register(&mut self, driver: ImageDriverBox) -> RResult<(), RString> {
        let name = driver.name().into_string();
        if name.is_empty() {
            return RErr("an image driver needs a non-empty name".into());
        }
        let tags: Vec<String> = driver
            .features()
            .into_iter()
            .map(RString::into_string)
            .collect();
        let wrapped = PluginDriver {
            plugin: self.plugin.clone(),
            name: name.clone(),
            features: features_from_tags(&tags),
            inner: driver,
            mounted: None,
        };
        match self.registry.register(Box::new(wrapped)) {
            Ok(()) => {
                tracing::info!(
                    plugin = self.plugin.as_str(),
                    "plugin registered image driver {name:?} ({})",
                    tags.join(", ")
                );
                ROk(())
            }
            Err(e) => RErr(e.to_string().into()),
        }
    }
}

/// The runtime's driver features from a plugin driver's feature tags:
/// `squashfs` for squashfs images, `unprivileged` when it works in a user
/// namespace. Every plugin driver is usable by root.
fn features_from_tags(tags: &[String]) -> Features {
    let has = |t: &str| tags.iter().any(|x| x == t);
    Features {
        squashfs: has("squashfs"),
        privileged: true,
        unprivileged: has("unprivileged"),
    }
}

/// A plugin's image driver in the runtime's driver stages. The plugin mounts
/// in the runtime process (`start`), under the run's private work dir, so a
/// FUSE daemon it starts lives outside the container; the container's
/// mount namespace only binds that mount as its root; `stop` lets the plugin
/// unmount and makes sure nothing stays mounted.
struct PluginDriver {
    plugin: String,
    name: String,
    features: Features,
    inner: ImageDriverBox,
    mounted: Option<PathBuf>,
}

impl std::fmt::Debug for PluginDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginDriver")
            .field("plugin", &self.plugin)
            .field("name", &self.name)
            .field("mounted", &self.mounted)
            .finish_non_exhaustive()
    }
}

/// Where a plugin driver mounts the image inside the run's work dir.
const PLUGIN_MOUNT_DIR: &str = "plugin-mount";

impl PluginDriver {
    fn fail(&self, reason: impl std::fmt::Display) -> ImageError {
        ImageError::Driver {
            driver: self.name.clone(),
            reason: format!("plugin {:?}: {reason}", self.plugin),
        }
    }
}

impl ImageDriver for PluginDriver {
    fn name(&self) -> &str {
        &self.name
    }

    fn features(&self) -> Features {
        self.features
    }

    fn start(&mut self, req: &MountRequest) -> Result<(), ImageError> {
        tracing::debug!(
            plugin = self.plugin.as_str(),
            "starting image driver {:?}",
            self.name
        );
        self.inner
            .start()
            .into_result()
            .map_err(|e| self.fail(e.message))?;
        let dir = req.workdir.join(PLUGIN_MOUNT_DIR);
        let mounted = std::fs::create_dir(&dir)
            .map_err(|e| {
                self.fail(format!(
                    "creating {}: {}",
                    dir.display(),
                    crate::image::io_reason(&e)
                ))
            })
            .and_then(|()| {
                self.inner
                    .mount(&abi::MountRequest {
                        image: rstring(&req.image),
                        offset: req.offset,
                        size: req.size,
                        fs_type: "squashfs".into(),
                        target: rstring(&dir),
                    })
                    .into_result()
                    .map_err(|e| self.fail(e.message))
            });
        if let Err(e) = mounted {
            // `stop` is only called after a successful `start`: undo here.
            if let RErr(s) = self.inner.stop() {
                tracing::warn!("{}", self.fail(s.message));
            }
            let _ = unmount_if_mounted(&dir);
            return Err(e);
        }
        if !is_mount_point(&dir) {
            let _ = self.inner.stop();
            return Err(self.fail(format!("nothing was mounted on {}", dir.display())));
        }
        self.mounted = Some(dir);
        Ok(())
    }

    fn mount(&mut self, _req: &MountRequest, target: &Path) -> Result<(), ImageError> {
        let dir = self
            .mounted
            .as_ref()
            .ok_or_else(|| self.fail("not started"))?;
        nix::mount::mount(
            Some(dir.as_path()),
            target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| {
            self.fail(format!(
                "binding {}: {}",
                dir.display(),
                e.desc().to_lowercase()
            ))
        })
    }

    fn stop(&mut self, _req: &MountRequest) -> Result<(), ImageError> {
        let stopped = self.inner.stop().into_result();
        let Some(dir) = self.mounted.take() else {
            return stopped.map_err(|e| self.fail(e.message));
        };
        // The plugin should have unmounted; never leave a mount behind (the
        // work dir is removed next).
        let left = unmount_if_mounted(&dir);
        match (stopped, left) {
            (Err(e), _) => Err(self.fail(e.message)),
            (Ok(()), Err(reason)) => Err(self.fail(reason)),
            (Ok(()), Ok(())) => Ok(()),
        }
    }
}

/// True when `dir` is a mount point (per /proc/self/mountinfo, which works
/// even when a FUSE daemon died and stat would fail).
fn is_mount_point(dir: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = mountinfo_escape(&dir.to_string_lossy());
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| m == want)
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn mountinfo_escape(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for c in p.chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\n' => out.push_str("\\012"),
            '\\' => out.push_str("\\134"),
            c => out.push(c),
        }
    }
    out
}

/// Lazily unmounts `dir` if something is still mounted there.
fn unmount_if_mounted(dir: &Path) -> Result<(), String> {
    if !is_mount_point(dir) {
        return Ok(());
    }
    tracing::warn!("{} is still mounted; unmounting it", dir.display());
    nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH).map_err(|e| {
        format!(
            "{} is left mounted: unmounting: {}",
            dir.display(),
            e.desc().to_lowercase()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vessel_plugin_api::abi::EngineConfig as _;

    #[test]
    fn conflict_names_every_monitor() {
        let e = HookError::MonitorConflict(vec!["a.com/x".into(), "b.com/y".into()]).to_string();
        assert!(
            e.starts_with("plugins \"a.com/x\" and \"b.com/y\" both register MonitorContainer"),
            "{e}"
        );
        assert!(!e.contains('\n'));
        assert_eq!(
            quoted_list(&["a".into(), "b".into(), "c".into()]),
            "\"a\", \"b\" and \"c\""
        );
    }

    #[test]
    fn config_adapter_reads_and_changes_the_engine_config() {
        let mut cfg = EngineConfig::new("/img", vec!["true".into()]);
        cfg.cleanenv = true;
        cfg.env.push(EnvOp::Set("A".into(), "1".into()));
        let mut a = ConfigAdapter::new(&mut cfg);
        assert_eq!(a.env_get("A".into()).into_option().unwrap().as_str(), "1");
        a.env_set("B".into(), "2".into());
        a.env_unset("A".into());
        assert!(a.env_get("A".into()).is_none());
        assert!(a
            .env_list()
            .iter()
            .any(|kv| kv.key == "B" && kv.value == "2"));
        let mut binds = a.binds();
        binds.push(abi::Bind {
            source: "/etc/hostname".into(),
            destination: "/h".into(),
            readonly: true,
        });
        a.set_binds(binds);
        a.set_hostname(ROption::RSome("box".into()));
        a.set_cwd(ROption::RSome("/tmp".into()));
        a.set_contain(true);
        let mut ns = a.namespaces();
        ns.pid = true;
        a.set_namespaces(ns);
        a.set_annotation("k".into(), "v".into());
        assert_eq!(a.annotations().len(), 1);
        assert_eq!(
            cfg.binds,
            [Bind {
                src: "/etc/hostname".into(),
                dst: "/h".into(),
                readonly: true
            }]
        );
        assert_eq!(cfg.hostname.as_deref(), Some("box"));
        assert_eq!(cfg.cwd.as_deref(), Some(Path::new("/tmp")));
        assert!(cfg.contain && cfg.namespaces.pid);
        assert_eq!(cfg.annotations["k"], "v");
        let env = cfg.environment(std::iter::empty());
        assert!(env.contains(&("B".into(), "2".into())));
        assert!(!env.iter().any(|(k, _)| k == "A"));
    }

    #[test]
    fn feature_tags_map_to_driver_features() {
        let f = features_from_tags(&["squashfs".into(), "unprivileged".into()]);
        assert!(f.squashfs && f.privileged && f.unprivileged);
        let f = features_from_tags(&[]);
        assert!(!f.squashfs && f.privileged && !f.unprivileged);
    }

    #[test]
    fn mount_points_are_found_in_mountinfo() {
        assert!(is_mount_point(Path::new("/")));
        assert!(!is_mount_point(Path::new("/nonexistent/dir")));
        assert_eq!(mountinfo_escape("/a b\\c"), "/a\\040b\\134c");
    }
}
