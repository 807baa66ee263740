//! What container-related callbacks work with: the engine config, the
//! signal source of a monitor, and image drivers with their registrar.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::abi::abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RErr, ROk, ROption, RResult, RString, RVec},
};

use crate::abi::{
    self, CallResult, ContainerSetupMut, DriverRegistrarMut, EngineConfigMut, EngineConfigRef,
    ImageDriver_TO, MountRequest, Namespaces, SignalSourceMut,
};
use crate::invocation::{ContainerCommand, ContainerInvocation, Device};
use crate::process::Signal;
use crate::sdk::{guard, Result};

/// A bind mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// Host path.
    pub source: String,
    /// Path inside the container.
    pub destination: String,
    /// Mounted read-only.
    pub readonly: bool,
}

impl Bind {
    pub(crate) fn to_abi(&self) -> abi::Bind {
        abi::Bind {
            source: self.source.as_str().into(),
            destination: self.destination.as_str().into(),
            readonly: self.readonly,
        }
    }
    pub(crate) fn from_abi(b: &abi::Bind) -> Self {
        Self {
            source: b.source.to_string(),
            destination: b.destination.to_string(),
            readonly: b.readonly,
        }
    }
}

fn ropt(o: ROption<RString>) -> Option<String> {
    o.into_option().map(|s| s.into_string())
}

fn kvs(v: RVec<abi::KeyValue>) -> Vec<(String, String)> {
    v.into_iter()
        .map(|kv| (kv.key.into_string(), kv.value.into_string()))
        .collect()
}

macro_rules! config_getters {
    () => {
        /// Bind mounts, in mount order.
        pub fn binds(&self) -> Vec<Bind> {
            self.inner.binds().iter().map(Bind::from_abi).collect()
        }
        /// One environment variable of the container.
        pub fn env(&self, key: &str) -> Option<String> {
            ropt(self.inner.env_get(key.into()))
        }
        /// All environment variables of the container.
        pub fn env_list(&self) -> Vec<(String, String)> {
            kvs(self.inner.env_list())
        }
        /// Contained mode.
        pub fn contain(&self) -> bool {
            self.inner.contain()
        }
        /// The hostname, if set.
        pub fn hostname(&self) -> Option<String> {
            ropt(self.inner.hostname())
        }
        /// The working directory inside the container, if set.
        pub fn cwd(&self) -> Option<String> {
            ropt(self.inner.cwd())
        }
        /// Requested namespaces.
        pub fn namespaces(&self) -> Namespaces {
            self.inner.namespaces()
        }
        /// One annotation.
        pub fn annotation(&self, key: &str) -> Option<String> {
            self.annotations()
                .into_iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
        }
        /// All annotations.
        pub fn annotations(&self) -> Vec<(String, String)> {
            kvs(self.inner.annotations())
        }
    };
}

/// The engine config an EngineConfig callback may change, with the
/// invocation that starts the container ([`ConfigMut::invocation`]) and
/// the device nodes and capabilities it may add.
pub struct ConfigMut<'a> {
    pub(crate) inner: EngineConfigMut<'a>,
    pub(crate) setup: ContainerSetupMut<'a>,
    pub(crate) invocation: ContainerInvocation,
}

fn setup_result(r: RResult<(), RString>) -> Result<()> {
    r.into_result().map_err(|e| e.into_string().into())
}

impl ConfigMut<'_> {
    config_getters!();

    /// The invocation that starts the container: command, image, args,
    /// caller, `--fakeroot`, `--contain` and this plugin's flags.
    pub fn invocation(&self) -> &ContainerInvocation {
        &self.invocation
    }
    /// The built-in command starting the container (`exec`, `run`, `shell`).
    pub fn command(&self) -> &ContainerCommand {
        &self.invocation.command
    }
    /// The image path as the user gave it.
    pub fn image(&self) -> &Path {
        &self.invocation.image
    }
    /// The value of this plugin's flag `--name` on the command, if given
    /// with a value.
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.invocation.flag(name)
    }
    /// True when this plugin's flag or switch `--name` was given.
    pub fn is_set(&self, name: &str) -> bool {
        self.invocation.is_set(name)
    }
    /// The device nodes added so far (by every plugin).
    pub fn devices(&self) -> Vec<Device> {
        self.setup
            .devices()
            .iter()
            .map(|d| Device {
                source: PathBuf::from(d.source.as_str()),
                destination: PathBuf::from(d.destination.as_str()),
            })
            .collect()
    }
    /// Shows the host device node `path` (e.g. `/dev/nvidia0`) at the same
    /// path in the container, also with `--contain`. It must be a character
    /// or block device under `/dev`; the error says why not.
    pub fn add_device(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let p = path.as_ref();
        self.add_device_at(p, p)
    }
    /// Shows the host device node `source` at `destination` (a path under
    /// `/dev`, no `..`) in the container.
    pub fn add_device_at(
        &mut self,
        source: impl AsRef<Path>,
        destination: impl AsRef<Path>,
    ) -> Result<()> {
        let device = abi::Device {
            source: source.as_ref().to_string_lossy().as_ref().into(),
            destination: destination.as_ref().to_string_lossy().as_ref().into(),
        };
        setup_result(self.setup.add_device(device))
    }
    /// Capabilities added so far (`CAP_*` names, by every plugin).
    pub fn capabilities_added(&self) -> Vec<String> {
        self.setup
            .capabilities_added()
            .into_iter()
            .map(RString::into_string)
            .collect()
    }
    /// Capabilities dropped so far (`CAP_*` names, by every plugin).
    pub fn capabilities_dropped(&self) -> Vec<String> {
        self.setup
            .capabilities_dropped()
            .into_iter()
            .map(RString::into_string)
            .collect()
    }
    /// Adds capability `name` (`CAP_SYS_PTRACE` or `sys_ptrace`) to a root
    /// container's set. Containers in a user namespace (unprivileged runs,
    /// `--fakeroot`) already hold every capability over their own namespace
    /// and none on the host: there the runtime ignores the add with a
    /// warning. An unknown name is an error.
    pub fn add_capability(&mut self, name: &str) -> Result<()> {
        setup_result(self.setup.add_capability(name.into()))
    }
    /// Drops capability `name` from the container's set.
    pub fn drop_capability(&mut self, name: &str) -> Result<()> {
        setup_result(self.setup.drop_capability(name.into()))
    }

    /// Appends a bind mount.
    pub fn add_bind(
        &mut self,
        source: impl Into<String>,
        destination: impl Into<String>,
        readonly: bool,
    ) {
        let mut binds = self.inner.binds();
        binds.push(abi::Bind {
            source: source.into().into(),
            destination: destination.into().into(),
            readonly,
        });
        self.inner.set_binds(binds);
    }
    /// Replaces the bind mounts.
    pub fn set_binds(&mut self, binds: &[Bind]) {
        self.inner
            .set_binds(binds.iter().map(Bind::to_abi).collect());
    }
    /// Sets an environment variable.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.inner.env_set(key.into(), value.into());
    }
    /// Removes an environment variable.
    pub fn unset_env(&mut self, key: &str) {
        self.inner.env_unset(key.into());
    }
    /// Turns contained mode on or off.
    pub fn set_contain(&mut self, contain: bool) {
        self.inner.set_contain(contain);
    }
    /// Sets or clears the hostname.
    pub fn set_hostname(&mut self, hostname: Option<&str>) {
        self.inner.set_hostname(hostname.map(RString::from).into());
    }
    /// Sets or clears the working directory.
    pub fn set_cwd(&mut self, cwd: Option<&str>) {
        self.inner.set_cwd(cwd.map(RString::from).into());
    }
    /// Changes the requested namespaces.
    pub fn set_namespaces(&mut self, namespaces: Namespaces) {
        self.inner.set_namespaces(namespaces);
    }
    /// Sets an annotation.
    pub fn set_annotation(&mut self, key: &str, value: &str) {
        self.inner.set_annotation(key.into(), value.into());
    }
    /// Removes an annotation.
    pub fn remove_annotation(&mut self, key: &str) {
        self.inner.remove_annotation(key.into());
    }
}

/// A read-only view of a started container's engine config.
pub struct ConfigView<'a> {
    pub(crate) inner: EngineConfigRef<'a>,
}

impl ConfigView<'_> {
    config_getters!();
}

/// The signals the runtime received while a plugin monitors a container.
pub struct Signals<'a> {
    pub(crate) inner: SignalSourceMut<'a>,
}

impl Signals<'_> {
    /// Waits up to `timeout` (none: forever) for the next signal the runtime
    /// received; returns it, or none on timeout. [`Signal::CHLD`] means a
    /// child changed state: time for [`Pid::try_wait`](crate::Pid::try_wait).
    /// Signals the terminal generated already reached the container and are
    /// not reported; forward the others to the container
    /// ([`Pid::signal`](crate::Pid::signal)).
    pub fn next(&mut self, timeout: Option<Duration>) -> Option<Signal> {
        let ms = timeout.map_or(-1, |t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX));
        self.inner.next(ms).into_option().map(Signal::from_raw)
    }
}

/// What an image driver mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The image file.
    pub image: PathBuf,
    /// Byte offset of the filesystem inside the image file.
    pub offset: u64,
    /// Byte size of the filesystem.
    pub size: u64,
    /// Filesystem type, e.g. `squashfs`.
    pub fs_type: String,
    /// Directory to mount on.
    pub target: PathBuf,
}

/// An image driver, implemented in plain Rust. The SDK wraps it so that a
/// panic in any method becomes an error naming the plugin.
///
/// For each container using it, the runtime calls `start`, then `mount` on
/// an empty directory private to that run, both in the runtime's own process
/// before the container exists (so a FUSE daemon the driver starts lives
/// outside the container), and binds that directory as the container's
/// root. After the container exited it calls `stop`, which must undo the
/// mount; the runtime detaches anything still mounted there and reports it.
/// Tag `features` with `squashfs` and, when it works for users without
/// privileges, `unprivileged`.
pub trait Driver: Send + Sync + 'static {
    /// The driver name.
    fn name(&self) -> String;
    /// Filesystems and features it handles, e.g. `squashfs`.
    fn features(&self) -> Vec<String> {
        Vec::new()
    }
    /// Called once before the first mount.
    fn start(&self) -> Result<()> {
        Ok(())
    }
    /// Mounts a filesystem of an image on a directory.
    fn mount(&self, mount: &Mount) -> Result<()>;
    /// Called once after the container exits.
    fn stop(&self) -> Result<()> {
        Ok(())
    }
}

struct GuardedDriver<D> {
    plugin: String,
    driver: D,
}

impl<D: Driver> abi::ImageDriver for GuardedDriver<D> {
    fn name(&self) -> RString {
        match guard(&self.plugin, || Ok(self.driver.name())) {
            ROk(n) => n.into(),
            RErr(_) => RString::new(),
        }
    }
    fn features(&self) -> RVec<RString> {
        match guard(&self.plugin, || Ok(self.driver.features())) {
            ROk(f) => f.into_iter().map(RString::from).collect(),
            RErr(_) => RVec::new(),
        }
    }
    fn start(&self) -> CallResult<()> {
        guard(&self.plugin, || self.driver.start())
    }
    fn mount(&self, r: &MountRequest) -> CallResult<()> {
        let m = Mount {
            image: PathBuf::from(r.image.as_str()),
            offset: r.offset,
            size: r.size,
            fs_type: r.fs_type.to_string(),
            target: PathBuf::from(r.target.as_str()),
        };
        guard(&self.plugin, || self.driver.mount(&m))
    }
    fn stop(&self) -> CallResult<()> {
        guard(&self.plugin, || self.driver.stop())
    }
}

/// Registers image drivers with the runtime.
pub struct Registrar<'a> {
    pub(crate) inner: DriverRegistrarMut<'a>,
    pub(crate) plugin: String,
}

impl Registrar<'_> {
    /// Registers `driver`; fails when the runtime already has a driver of that name.
    pub fn register<D: Driver>(&mut self, driver: D) -> Result<()> {
        let guarded = GuardedDriver {
            plugin: self.plugin.clone(),
            driver,
        };
        let obj = ImageDriver_TO::from_value(guarded, TD_Opaque);
        self.inner
            .register(obj)
            .into_result()
            .map_err(|e| e.into_string().into())
    }
}

impl std::fmt::Debug for ConfigMut<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigMut").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ConfigView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigView").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Signals<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signals").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Registrar<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrar").finish_non_exhaustive()
    }
}
