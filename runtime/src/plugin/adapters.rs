//! The ABI adapters: the runtime's own types seen through the stable ABI's
//! traits. [`ConfigAdapter`] is the engine config, [`SignalAdapter`] the
//! signals the runtime receives, and [`RegistrarAdapter`] wraps every
//! driver a plugin registers into the runtime's image driver.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RErr, ROk, ROption, RResult, RStr, RString, RVec};
use vessel_plugin_abi::{
    self as abi, DriverRegistrarMut, DriverRegistrar_TO, EngineConfigMut, EngineConfigRef,
    EngineConfig_TO, ImageDriverBox, SignalSourceMut, SignalSource_TO,
};

use crate::engine::config::{Bind, BindOrigin, EngineConfig, EnvOp};
use crate::engine::monitor::{Received, Signals};
use crate::image::driver::Registry;
use crate::image::plugin_driver::PluginDriver;

/// The runtime's engine config seen through the ABI's `EngineConfig`.
/// Environment reads show the container's effective environment (the
/// host's unless cleanenv, then every change); writes append changes.
#[derive(Debug)]
pub struct ConfigAdapter<'c> {
    cfg: &'c mut EngineConfig,
    /// The plugin whose callback changes the config: binds it adds are its.
    plugin: String,
}

impl<'c> ConfigAdapter<'c> {
    /// Adapts `cfg` for a read-only view.
    pub fn new(cfg: &'c mut EngineConfig) -> Self {
        Self {
            cfg,
            plugin: String::new(),
        }
    }

    /// Adapts `cfg` for the EngineConfig callback of `plugin`.
    pub fn for_plugin(cfg: &'c mut EngineConfig, plugin: &str) -> Self {
        Self {
            cfg,
            plugin: plugin.to_owned(),
        }
    }

    /// The config as the ABI object EngineConfig callbacks change.
    pub fn abi_mut(&mut self) -> EngineConfigMut<'_> {
        EngineConfig_TO::from_ptr(self, TD_Opaque)
    }

    /// The config as the read-only ABI object of a started container.
    pub fn abi_ref(&self) -> EngineConfigRef<'_> {
        EngineConfig_TO::from_ptr(self, TD_Opaque)
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
        let old = std::mem::take(&mut self.cfg.binds);
        self.cfg.binds = binds
            .iter()
            .map(|b| {
                let mut bind = Bind {
                    src: PathBuf::from(b.source.as_str()),
                    dst: PathBuf::from(b.destination.as_str()),
                    readonly: b.readonly,
                    origin: BindOrigin::Plugin(self.plugin.clone()),
                };
                // A bind the plugin kept is still its first asker's.
                if let Some(o) = old
                    .iter()
                    .find(|o| (&o.src, &o.dst, o.readonly) == (&bind.src, &bind.dst, bind.readonly))
                {
                    bind.origin = o.origin.clone();
                }
                bind
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
/// signals sent to vessel and SIGCHLD are reported for the plugin to act
/// on; terminal-generated ones (Ctrl-C) are passed on to the container's
/// process group here, as the engine's own monitor does, and not reported.
#[derive(Debug)]
pub struct SignalAdapter<'s> {
    signals: &'s mut Signals,
    container: nix::unistd::Pid,
}

impl<'s> SignalAdapter<'s> {
    /// Adapts `signals` for a plugin monitoring the container `container`.
    pub fn new(signals: &'s mut Signals, container: nix::unistd::Pid) -> Self {
        Self { signals, container }
    }

    /// The signals as the ABI object a MonitorContainer callback reads.
    pub fn abi_mut(&mut self) -> SignalSourceMut<'_> {
        SignalSource_TO::from_ptr(self, TD_Opaque)
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
                // The container has no terminal of its own (a session of
                // its own): what the terminal sent (Ctrl-C) goes to its
                // whole process group, as the terminal would have, here
                // rather than by the plugin, so the command run by an
                // interactive shell gets it once.
                Ok(Some(Received::Signal {
                    signal,
                    from_terminal: true,
                })) => crate::engine::monitor::forward(self.container, signal, true),
                Ok(None) => {}
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
#[derive(Debug)]
pub struct RegistrarAdapter<'r> {
    registry: &'r mut Registry,
    plugin: String,
}

impl<'r> RegistrarAdapter<'r> {
    /// Registers the drivers of plugin `plugin` into `registry`.
    pub fn new(registry: &'r mut Registry, plugin: &str) -> Self {
        Self {
            registry,
            plugin: plugin.to_owned(),
        }
    }

    /// The registrar as the ABI object a RegisterImageDriver callback gets.
    pub fn abi_mut(&mut self) -> DriverRegistrarMut<'_> {
        DriverRegistrar_TO::from_ptr(self, TD_Opaque)
    }
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
        let wrapped = PluginDriver::new(&self.plugin, &name, &tags, driver);
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

#[cfg(test)]
mod tests {
    use super::*;
    use vessel_plugin_abi::EngineConfig as _;

    #[test]
    fn config_adapter_reads_and_changes_the_engine_config() {
        let mut cfg = EngineConfig::new("/img", vec!["true".into()]);
        cfg.cleanenv = true;
        cfg.env.push(EnvOp::Set("A".into(), "1".into()));
        cfg.binds.push(Bind::parse("/etc:/e").unwrap());
        let mut a = ConfigAdapter::for_plugin(&mut cfg, "acme.org/x");
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
            [
                Bind::parse("/etc:/e").unwrap(),
                Bind {
                    src: "/etc/hostname".into(),
                    dst: "/h".into(),
                    readonly: true,
                    origin: BindOrigin::Plugin("acme.org/x".into()),
                }
            ]
        );
        assert_eq!(cfg.hostname.as_deref(), Some("box"));
        assert_eq!(cfg.cwd.as_deref(), Some(Path::new("/tmp")));
        assert!(cfg.contain && cfg.namespaces.pid);
        assert_eq!(cfg.annotations["k"], "v");
        let env = cfg.environment(std::iter::empty());
        assert!(env.contains(&("B".into(), "2".into())));
        assert!(!env.iter().any(|(k, _)| k == "A"));
    }
}
