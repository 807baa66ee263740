//! The ABI adapters: the runtime's own types seen through the stable ABI's
//! traits. [`ConfigAdapter`] is the engine config, [`SetupAdapter`] the
//! invocation with the devices and capabilities, [`SignalAdapter`] the
//! signals the runtime receives, and [`RegistrarAdapter`] wraps every
//! driver a plugin registers into the runtime's image driver.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RErr, ROk, ROption, RResult, RStr, RString, RVec};
use vessel_plugin_abi::{
    self as abi, ContainerSetupMut, ContainerSetup_TO, DriverRegistrarMut, DriverRegistrar_TO,
    EngineConfigMut, EngineConfigRef, EngineConfig_TO, ImageDriverBox, SignalSourceMut,
    SignalSource_TO,
};

use crate::engine::config::{Bind, BindOrigin, CapRequest, DeviceRequest, EngineConfig, EnvOp};
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

/// What one plugin's 1.2 EngineConfig callback sees of the invocation, and
/// the devices and capability changes it asks for, through the ABI's
/// `ContainerSetup`. Requests are checked as they come (the plugin gets
/// the error) and carry the plugin as their origin.
#[derive(Debug)]
pub struct SetupAdapter {
    plugin: String,
    command: String,
    image: String,
    image_kind: &'static str,
    args: Vec<String>,
    fakeroot: bool,
    contain: bool,
    flags: Vec<(String, Option<String>)>,
    devices: Vec<DeviceRequest>,
    capabilities: Vec<CapRequest>,
}

impl SetupAdapter {
    /// The setup of `cfg` for plugin `plugin`: the devices and capability
    /// changes move into the adapter until [`Self::finish`].
    pub fn for_plugin(cfg: &mut EngineConfig, plugin: &str) -> Self {
        Self {
            plugin: plugin.to_owned(),
            command: cfg.launch.command.clone(),
            image: cfg.image.path.to_string_lossy().into_owned(),
            image_kind: if cfg.image.path.is_dir() {
                "sandbox"
            } else {
                "sif"
            },
            args: cfg.command.clone(),
            fakeroot: cfg.fakeroot,
            contain: cfg.launch.contain,
            flags: cfg
                .launch
                .plugin_flags
                .get(plugin)
                .cloned()
                .unwrap_or_default(),
            devices: std::mem::take(&mut cfg.devices),
            capabilities: std::mem::take(&mut cfg.capabilities),
        }
    }

    /// Puts the devices and capability changes back into `cfg`.
    pub fn finish(self, cfg: &mut EngineConfig) {
        cfg.devices = self.devices;
        cfg.capabilities = self.capabilities;
    }

    /// The setup as the ABI object the callback gets.
    pub fn abi_mut(&mut self) -> ContainerSetupMut<'_> {
        ContainerSetup_TO::from_ptr(self, TD_Opaque)
    }

    fn change_capability(&mut self, name: RStr<'_>, add: bool) -> RResult<(), RString> {
        match vessel_plugin_abi::rules::capability(name.as_str()) {
            Ok((cap, _)) => {
                self.capabilities.push(CapRequest {
                    cap,
                    add,
                    origin: BindOrigin::Plugin(self.plugin.clone()),
                });
                ROk(())
            }
            Err(e) => RErr(e.into()),
        }
    }

    fn capability_names(&self, added: bool) -> RVec<RString> {
        let mut cfg = EngineConfig::new("/", Vec::new());
        cfg.capabilities = self.capabilities.clone();
        let (add, drop) = cfg.capability_masks();
        let mask = if added { add } else { drop };
        vessel_plugin_abi::rules::CAPABILITIES
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1u64 << i) != 0)
            .map(|(_, n)| RString::from(*n))
            .collect()
    }
}

impl abi::ContainerSetup for SetupAdapter {
    fn command(&self) -> RString {
        self.command.as_str().into()
    }
    fn image(&self) -> RString {
        self.image.as_str().into()
    }
    fn image_kind(&self) -> RString {
        self.image_kind.into()
    }
    fn args(&self) -> RVec<RString> {
        self.args
            .iter()
            .map(|a| RString::from(a.as_str()))
            .collect()
    }
    fn uid(&self) -> u32 {
        nix::unistd::getuid().as_raw()
    }
    fn gid(&self) -> u32 {
        nix::unistd::getgid().as_raw()
    }
    fn fakeroot(&self) -> bool {
        self.fakeroot
    }
    fn contain(&self) -> bool {
        self.contain
    }
    fn flags(&self) -> RVec<abi::FlagValue> {
        self.flags
            .iter()
            .map(|(n, v)| abi::FlagValue {
                name: n.as_str().into(),
                value: v.as_deref().map(RString::from).into(),
            })
            .collect()
    }
    fn devices(&self) -> RVec<abi::Device> {
        self.devices
            .iter()
            .map(|d| abi::Device {
                source: rstring(&d.src),
                destination: rstring(&d.dst),
            })
            .collect()
    }
    fn add_device(&mut self, device: abi::Device) -> RResult<(), RString> {
        let (src, dst) = (device.source.as_str(), device.destination.as_str());
        if let Err(e) = vessel_plugin_abi::rules::check_device(src, dst) {
            return RErr(e.into());
        }
        let req = DeviceRequest {
            src: PathBuf::from(src),
            dst: PathBuf::from(dst),
            origin: BindOrigin::Plugin(self.plugin.clone()),
        };
        // The same node twice is one node; another node at a taken
        // destination would silently hide the first.
        match self.devices.iter().find(|d| d.dst == req.dst) {
            Some(d) if d.src == req.src => ROk(()),
            Some(d) => RErr(
                format!(
                    "device {src}: destination {dst} is already taken by {} (from {})",
                    d.src.display(),
                    d.origin
                )
                .into(),
            ),
            None => {
                self.devices.push(req);
                ROk(())
            }
        }
    }
    fn capabilities_added(&self) -> RVec<RString> {
        self.capability_names(true)
    }
    fn capabilities_dropped(&self) -> RVec<RString> {
        self.capability_names(false)
    }
    fn add_capability(&mut self, name: RStr<'_>) -> RResult<(), RString> {
        self.change_capability(name, true)
    }
    fn drop_capability(&mut self, name: RStr<'_>) -> RResult<(), RString> {
        self.change_capability(name, false)
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

    #[test]
    fn setup_adapter_shows_the_invocation_and_checks_requests() {
        use vessel_plugin_abi::ContainerSetup as _;
        let mut cfg = EngineConfig::new("/", vec!["nvidia-smi".into(), "-L".into()]);
        cfg.launch.command = "exec".into();
        cfg.launch.contain = true;
        cfg.launch
            .plugin_flags
            .insert("acme.org/gpu".into(), vec![("gpu".into(), None)]);
        cfg.launch.plugin_flags.insert(
            "acme.org/other".into(),
            vec![("x".into(), Some("1".into()))],
        );
        let mut s = SetupAdapter::for_plugin(&mut cfg, "acme.org/gpu");
        assert_eq!(s.command().as_str(), "exec");
        assert_eq!(s.image_kind().as_str(), "sandbox");
        assert!(s.contain() && !s.fakeroot());
        assert_eq!(s.args().len(), 2);
        let flags = s.flags();
        assert_eq!(flags.len(), 1, "only the plugin's own flags");
        assert_eq!(flags[0].name.as_str(), "gpu");
        let dev = |src: &str, dst: &str| abi::Device {
            source: src.into(),
            destination: dst.into(),
        };
        s.add_device(dev("/dev/null", "/dev/gpu0")).unwrap();
        s.add_device(dev("/dev/null", "/dev/gpu0")).unwrap();
        let e = s.add_device(dev("/dev/zero", "/dev/gpu0")).unwrap_err();
        assert!(e.contains("already taken by /dev/null"), "{e}");
        let e = s.add_device(dev("/etc/passwd", "/dev/x")).unwrap_err();
        assert!(e.contains("not a character or block device"), "{e}");
        assert!(s.add_device(dev("/dev/null", "/dev/../etc/x")).is_err());
        s.add_capability("sys_admin".into()).unwrap();
        s.drop_capability("CAP_NET_RAW".into()).unwrap();
        let e = s.add_capability("CAP_FLY".into()).unwrap_err();
        assert!(e.contains("not a known Linux capability"), "{e}");
        assert_eq!(s.capabilities_added()[0].as_str(), "CAP_SYS_ADMIN");
        assert_eq!(s.capabilities_dropped()[0].as_str(), "CAP_NET_RAW");
        s.finish(&mut cfg);
        assert_eq!(cfg.devices.len(), 1);
        assert_eq!(
            cfg.devices[0].origin,
            BindOrigin::Plugin("acme.org/gpu".into())
        );
        assert_eq!(cfg.capability_masks(), (1 << 21, 1 << 13));
    }
}
