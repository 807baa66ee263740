//! Run a vessel plugin's callbacks in-process, without the runtime, in the
//! plugin's own unit tests. Add this crate as a dev-dependency beside
//! `vessel-plugin-api`.
//!
//! Each helper calls the callback through the same panic guard the exported
//! library uses, so a test sees exactly the error the runtime would (a panic
//! becomes a [`CallError`] with `panicked` set). Fakes stand in for what the
//! runtime provides: [`FakeEngineConfig`] (with the invocation an
//! EngineConfig callback sees and the devices and capabilities it adds),
//! [`FakeDriverRegistrar`], [`FakeSignals`], the host dirs
//! ([`set_install_dir`], [`set_config_dir`], [`set_state_dir`]); command
//! output written through
//! [`Invocation::stdout`](vessel_plugin_api::Invocation::stdout) is captured.
//!
//! # Example
//!
//! ```
//! use std::io::Write;
//! use vessel_plugin_api::{log, Arg, Command, Flag, Plugin};
//!
//! fn build() -> Plugin {
//!     Plugin::new("example.com/hello")
//!         .command(Command::new("hello").arg(Arg::new("names").multiple()), |inv| {
//!             writeln!(inv.stdout(), "hello {}", inv.arg_values("names").join(" "))?;
//!             Ok(0)
//!         })
//!         .flag("version", Flag::switch("shout"), |inv| {
//!             writeln!(inv.stdout(), "HELLO")?;
//!             Ok(())
//!         })
//!         .engine_config(|config| {
//!             log::info("setting HELLO");
//!             config.set_env("HELLO", "1");
//!             Ok(())
//!         })
//! }
//!
//! // In the plugin's unit tests:
//! use vessel_plugin_test as testing;
//!
//! let plugin = build();
//! let run = testing::run_command(&plugin, "hello", &["ann", "bob"], &[]).unwrap();
//! assert_eq!((run.status, run.stdout.as_str()), (0, "hello ann bob\n"));
//!
//! let out = testing::run_flag_pre_run(&plugin, "version", &[], &[("shout", None)]).unwrap();
//! assert_eq!(out, "HELLO\n");
//!
//! let mut config = testing::FakeEngineConfig::default();
//! testing::run_engine_config(&plugin, &mut config).unwrap();
//! assert_eq!(config.env["HELLO"], "1");
//! assert_eq!(testing::take_logs(), [(log::LogLevel::Info, "setting HELLO".to_string())]);
//! ```
//!
//! An EngineConfig callback driven by its own flag, with the invocation it
//! sees and the device it adds (checked as the runtime checks it):
//!
//! ```
//! use vessel_plugin_api::{ContainerCommand, Device, Flag, Plugin};
//! use vessel_plugin_test as testing;
//!
//! let plugin = Plugin::new("example.com/dev")
//!     .flag("exec", Flag::switch("null"), |_| Ok(()))
//!     .engine_config(|config| {
//!         if config.is_set("null") && *config.command() == ContainerCommand::Exec {
//!             config.add_device_at("/dev/null", "/dev/nothing")?;
//!         }
//!         Ok(())
//!     });
//! let mut config = testing::FakeEngineConfig::default();
//! testing::run_engine_config(&plugin, &mut config).unwrap();
//! assert!(config.devices.is_empty());
//! config.invocation.flags = vec![("null".into(), None)];
//! testing::run_engine_config(&plugin, &mut config).unwrap();
//! assert_eq!(
//!     config.devices,
//!     [Device { source: "/dev/null".into(), destination: "/dev/nothing".into() }]
//! );
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use vessel_plugin_abi::abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{ROption, RResult, RStr, RString, RVec},
};
use vessel_plugin_abi::{
    self as abi, CommandInvocation, ContainerSetup, ContainerSetup_TO, DriverRegistrar,
    DriverRegistrar_TO, EngineConfig, EngineConfig_TO, FlagValue, ImageDriverBox, KeyValue,
    MountRequest, PreRunInfo, SignalSource, SignalSource_TO,
};
use vessel_plugin_api::__export::capture_stdout;
use vessel_plugin_api::log::LogLevel;
pub use vessel_plugin_api::CallError;
use vessel_plugin_api::{
    Bind, ContainerInvocation, Device, ImageKind, Mount, Namespaces, Pid, Plugin, Signal,
    WaitStatus,
};

mod env;
mod manifest;
pub use env::{PathEdits, DEFAULT_PATH};
pub use manifest::{manifest, AddedFlag, ArgInfo, CommandInfo, FlagInfo, Manifest};

/// What a command printed and returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRun {
    /// The exit status the handler returned.
    pub status: i32,
    /// What it wrote to [`Invocation::stdout`](vessel_plugin_api::Invocation::stdout).
    pub stdout: String,
}

fn invocation(command: &str, args: &[&str], flags: &[(&str, Option<&str>)]) -> CommandInvocation {
    CommandInvocation {
        command: command.into(),
        args: args.iter().map(|a| RString::from(*a)).collect(),
        flags: flags
            .iter()
            .map(|(n, v)| FlagValue {
                name: (*n).into(),
                value: v.map(RString::from).into(),
            })
            .collect(),
    }
}

fn usage(message: String) -> CallError {
    CallError {
        message,
        panicked: false,
    }
}

/// Refuses what the runtime's parser would refuse before the plugin runs:
/// a flag the command does not declare, a switch with a value, a value
/// flag without one, a missing required argument, more values than the
/// arguments take.
fn check_flags(
    what: &str,
    declared: &[FlagInfo],
    flags: &[(&str, Option<&str>)],
) -> Result<(), CallError> {
    for (name, value) in flags {
        let f = declared
            .iter()
            .find(|f| f.name == *name)
            .ok_or_else(|| usage(format!("{what}: unexpected flag --{name}")))?;
        match (f.takes_value, value) {
            (true, None) => return Err(usage(format!("{what}: flag --{name} needs a value"))),
            (false, Some(_)) => return Err(usage(format!("{what}: flag --{name} takes no value"))),
            _ => {}
        }
    }
    Ok(())
}

fn check_command(
    cmd: &CommandInfo,
    args: &[&str],
    flags: &[(&str, Option<&str>)],
) -> Result<(), CallError> {
    let what = format!("command {:?}", cmd.name);
    check_flags(&what, &cmd.flags, flags)?;
    if let Some(missing) = cmd.args.iter().filter(|a| a.required).nth(args.len()) {
        return Err(usage(format!(
            "{what}: missing required argument {}",
            missing.name
        )));
    }
    if !cmd.args.iter().any(|a| a.multiple) && args.len() > cmd.args.len() {
        return Err(usage(format!(
            "{what}: unexpected argument {:?}",
            args[cmd.args.len()]
        )));
    }
    Ok(())
}

/// Runs the plugin command `command` with positional `args` and the given
/// flags (`(name, Some(value))`, or `(name, None)` for a switch; a value
/// flag may repeat).
///
/// As in the runtime, the invocation must fit the command's spec: a flag it
/// does not declare, a missing required argument or an extra value is an
/// error before the plugin runs (the runtime's parser refuses them).
pub fn run_command(
    plugin: &Plugin,
    command: &str,
    args: &[&str],
    flags: &[(&str, Option<&str>)],
) -> Result<CommandRun, CallError> {
    if let Some(cmd) = manifest(plugin).commands.iter().find(|c| c.name == command) {
        check_command(cmd, args, flags)?;
    }
    let inv = invocation(command, args, flags);
    let (status, stdout) = capture_stdout(|| plugin.calls().run_command(&inv).into_result());
    Ok(CommandRun {
        status: status?,
        stdout,
    })
}

/// Runs the pre-run hooks of the flags the plugin added to the built-in
/// `command`, as if it were run with `flags`; returns what they printed.
/// Flags the plugin did not add to `command` are refused, as the runtime's
/// parser would.
pub fn run_flag_pre_run(
    plugin: &Plugin,
    command: &str,
    args: &[&str],
    flags: &[(&str, Option<&str>)],
) -> Result<String, CallError> {
    let added: Vec<FlagInfo> = manifest(plugin)
        .flags
        .into_iter()
        .filter(|f| f.command == command)
        .map(|f| f.flag)
        .collect();
    check_flags(&format!("command {command:?}"), &added, flags)?;
    let inv = invocation(command, args, flags);
    let (result, stdout) = capture_stdout(|| plugin.calls().flag_pre_run(&inv).into_result());
    result?;
    Ok(stdout)
}

/// Runs the global pre-run hook as if user `user` (uid `uid`) ran `command ARGS...`.
pub fn run_global_pre_run(
    plugin: &Plugin,
    uid: u32,
    user: &str,
    command: &str,
    args: &[&str],
) -> Result<(), CallError> {
    let info = PreRunInfo {
        uid,
        user: user.into(),
        command: command.into(),
        args: args.iter().map(|a| RString::from(*a)).collect(),
    };
    plugin
        .calls()
        .global_pre_run(&info)
        .into_result()
        .map_err(CallError::from)
}

/// Runs the EngineConfig callback on `config`; it sees
/// `config.invocation` and its device and capability requests land in
/// `config.devices`, `config.capabilities_added` and
/// `config.capabilities_dropped`, checked as the runtime checks them.
pub fn run_engine_config(plugin: &Plugin, config: &mut FakeEngineConfig) -> Result<(), CallError> {
    let mut setup = FakeSetup {
        invocation: std::mem::take(&mut config.invocation),
        devices: std::mem::take(&mut config.devices),
        added: std::mem::take(&mut config.capabilities_added),
        dropped: std::mem::take(&mut config.capabilities_dropped),
    };
    let r = plugin
        .calls()
        .configure_container(
            EngineConfig_TO::from_ptr(&mut *config, TD_Opaque),
            ContainerSetup_TO::from_ptr(&mut setup, TD_Opaque),
        )
        .into_result()
        .map_err(CallError::from);
    config.invocation = setup.invocation;
    config.devices = setup.devices;
    config.capabilities_added = setup.added;
    config.capabilities_dropped = setup.dropped;
    r
}

/// The runtime's side of `ContainerSetup` for [`run_engine_config`].
struct FakeSetup {
    invocation: ContainerInvocation,
    devices: Vec<Device>,
    added: Vec<String>,
    dropped: Vec<String>,
}

impl FakeSetup {
    fn change(&mut self, name: RStr<'_>, add: bool) -> RResult<(), RString> {
        match abi::rules::capability(name.as_str()) {
            Ok((_, canonical)) => {
                let (to, from) = if add {
                    (&mut self.added, &mut self.dropped)
                } else {
                    (&mut self.dropped, &mut self.added)
                };
                from.retain(|c| c != canonical);
                if !to.iter().any(|c| c == canonical) {
                    to.push(canonical.to_owned());
                }
                RResult::ROk(())
            }
            Err(e) => RResult::RErr(e.into()),
        }
    }
}

fn rpath(p: &Path) -> RString {
    p.to_string_lossy().as_ref().into()
}

impl ContainerSetup for FakeSetup {
    fn command(&self) -> RString {
        self.invocation.command.as_str().into()
    }
    fn image(&self) -> RString {
        rpath(&self.invocation.image)
    }
    fn image_kind(&self) -> RString {
        match &self.invocation.image_kind {
            ImageKind::Sandbox => "sandbox".into(),
            ImageKind::Sif => "sif".into(),
            ImageKind::Other(o) => o.as_str().into(),
        }
    }
    fn args(&self) -> RVec<RString> {
        self.invocation
            .args
            .iter()
            .map(|a| RString::from(a.as_str()))
            .collect()
    }
    fn uid(&self) -> u32 {
        self.invocation.uid
    }
    fn gid(&self) -> u32 {
        self.invocation.gid
    }
    fn fakeroot(&self) -> bool {
        self.invocation.fakeroot
    }
    fn contain(&self) -> bool {
        self.invocation.contain
    }
    fn flags(&self) -> RVec<FlagValue> {
        self.invocation
            .flags
            .iter()
            .map(|(n, v)| FlagValue {
                name: n.as_str().into(),
                value: v.as_deref().map(RString::from).into(),
            })
            .collect()
    }
    fn devices(&self) -> RVec<abi::Device> {
        self.devices
            .iter()
            .map(|d| abi::Device {
                source: rpath(&d.source),
                destination: rpath(&d.destination),
            })
            .collect()
    }
    fn add_device(&mut self, device: abi::Device) -> RResult<(), RString> {
        let (src, dst) = (device.source.as_str(), device.destination.as_str());
        if let Err(e) = abi::rules::check_device(src, dst) {
            return RResult::RErr(e.into());
        }
        match self
            .devices
            .iter()
            .find(|d| d.destination == Path::new(dst))
        {
            Some(d) if d.source == Path::new(src) => RResult::ROk(()),
            Some(d) => RResult::RErr(
                format!(
                    "device {src}: destination {dst} is already taken by {}",
                    d.source.display()
                )
                .into(),
            ),
            None => {
                self.devices.push(Device {
                    source: src.into(),
                    destination: dst.into(),
                });
                RResult::ROk(())
            }
        }
    }
    fn capabilities_added(&self) -> RVec<RString> {
        self.added
            .iter()
            .map(|c| RString::from(c.as_str()))
            .collect()
    }
    fn capabilities_dropped(&self) -> RVec<RString> {
        self.dropped
            .iter()
            .map(|c| RString::from(c.as_str()))
            .collect()
    }
    fn add_capability(&mut self, name: RStr<'_>) -> RResult<(), RString> {
        self.change(name, true)
    }
    fn drop_capability(&mut self, name: RStr<'_>) -> RResult<(), RString> {
        self.change(name, false)
    }
}

/// Runs the PostStartProcess callback for `pid`.
pub fn run_post_start_process(
    plugin: &Plugin,
    config: &FakeEngineConfig,
    pid: Pid,
) -> Result<(), CallError> {
    plugin
        .calls()
        .post_start_process(EngineConfig_TO::from_ptr(config, TD_Opaque), pid.as_raw())
        .into_result()
        .map_err(CallError::from)
}

/// Runs the MonitorContainer callback for `pid`, feeding it `signals`.
pub fn run_monitor_container(
    plugin: &Plugin,
    config: &FakeEngineConfig,
    pid: Pid,
    signals: &mut FakeSignals,
) -> Result<WaitStatus, CallError> {
    plugin
        .calls()
        .monitor_container(
            EngineConfig_TO::from_ptr(config, TD_Opaque),
            pid.as_raw(),
            SignalSource_TO::from_ptr(signals, TD_Opaque),
        )
        .into_result()
        .map(WaitStatus::from_raw)
        .map_err(CallError::from)
}

/// Runs the RegisterImageDriver callback against `registrar`.
pub fn run_register_image_drivers(
    plugin: &Plugin,
    unprivileged: bool,
    registrar: &mut FakeDriverRegistrar,
) -> Result<(), CallError> {
    plugin
        .calls()
        .register_image_driver(
            unprivileged,
            DriverRegistrar_TO::from_ptr(registrar, TD_Opaque),
        )
        .into_result()
        .map_err(CallError::from)
}

/// Runs the Install callback for install dir `dir`.
pub fn run_install(plugin: &Plugin, dir: &Path) -> Result<(), CallError> {
    let dir = dir.to_string_lossy();
    plugin
        .calls()
        .install(RStr::from_str(&dir))
        .into_result()
        .map_err(CallError::from)
}

/// Makes [`host::install_dir`](vessel_plugin_api::host::install_dir) return
/// `dir` on this thread (none: unknown), as the runtime would for an
/// installed plugin.
pub fn set_install_dir(dir: Option<&Path>) {
    vessel_plugin_api::__export::set_install_dir(dir.map(Path::to_path_buf));
}

/// Makes [`host::config_dir`](vessel_plugin_api::host::config_dir) return
/// `dir` on this thread (none: unknown), as the runtime would.
pub fn set_config_dir(dir: Option<&Path>) {
    vessel_plugin_api::__export::set_config_dir(dir.map(Path::to_path_buf));
}

/// Makes [`host::state_dir`](vessel_plugin_api::host::state_dir) return
/// `dir` on this thread (none: an error), as the runtime would.
pub fn set_state_dir(dir: Option<&Path>) {
    vessel_plugin_api::__export::set_state_dir(dir.map(Path::to_path_buf));
}

/// Takes the log records this thread's callbacks emitted so far.
pub fn take_logs() -> Vec<(LogLevel, String)> {
    vessel_plugin_api::__export::take_logs()
}

/// An in-memory engine config.
///
/// Its environment behaves like the runtime's: [`from_host`](Self::from_host)
/// starts it as the runtime starts a container's (the default `PATH`, never
/// the host's; `--cleanenv`; the `VESSELENV_` family), a value a plugin
/// sets expands `$NAME` / `${NAME}` against the environment so far, and
/// reads see the `PATH` edits (`VESSELENV_PREPEND_PATH`...) applied after
/// every change, as the container will.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeEngineConfig {
    /// Bind mounts.
    pub binds: Vec<Bind>,
    /// Environment, before the `PATH` edits.
    pub env: BTreeMap<String, String>,
    /// The host's `PATH` edits, applied when the environment is read.
    pub path_edits: PathEdits,
    /// Contained mode.
    pub contain: bool,
    /// Hostname.
    pub hostname: Option<String>,
    /// Working directory.
    pub cwd: Option<String>,
    /// Namespaces.
    pub namespaces: Namespaces,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// The invocation the callback sees (`exec` of nothing by uid 0 by default).
    pub invocation: ContainerInvocation,
    /// Device nodes added.
    pub devices: Vec<Device>,
    /// Capabilities added (canonical `CAP_*` names).
    pub capabilities_added: Vec<String>,
    /// Capabilities dropped (canonical `CAP_*` names).
    pub capabilities_dropped: Vec<String>,
}

impl FakeEngineConfig {
    /// A config whose environment is the one the runtime starts a container
    /// with when its own environment is `host` (with `--cleanenv` when
    /// `cleanenv`).
    pub fn from_host<'a>(
        host: impl IntoIterator<Item = (&'a str, &'a str)>,
        cleanenv: bool,
    ) -> Self {
        let (env, path_edits) = env::initial(host, cleanenv);
        Self {
            env,
            path_edits,
            ..Self::default()
        }
    }

    /// The environment the container sees (the `PATH` edits applied).
    pub fn effective_env(&self) -> BTreeMap<String, String> {
        env::effective(&self.env, &self.path_edits)
    }
}

fn to_kvs(m: &BTreeMap<String, String>) -> RVec<KeyValue> {
    m.iter()
        .map(|(k, v)| KeyValue {
            key: k.as_str().into(),
            value: v.as_str().into(),
        })
        .collect()
}

impl EngineConfig for FakeEngineConfig {
    fn binds(&self) -> RVec<abi::Bind> {
        self.binds
            .iter()
            .map(|b| abi::Bind {
                source: b.source.as_str().into(),
                destination: b.destination.as_str().into(),
                readonly: b.readonly,
            })
            .collect()
    }
    fn set_binds(&mut self, binds: RVec<abi::Bind>) {
        self.binds = binds
            .iter()
            .map(|b| Bind {
                source: b.source.to_string(),
                destination: b.destination.to_string(),
                readonly: b.readonly,
            })
            .collect();
    }
    fn env_get(&self, key: RStr<'_>) -> ROption<RString> {
        self.effective_env()
            .get(key.as_str())
            .map(|v| RString::from(v.as_str()))
            .into()
    }
    fn env_set(&mut self, key: RStr<'_>, value: RStr<'_>) {
        let value = env::expand(value.as_str(), &self.env);
        self.env.insert(key.to_string(), value);
    }
    fn env_unset(&mut self, key: RStr<'_>) {
        self.env.remove(key.as_str());
    }
    fn env_list(&self) -> RVec<KeyValue> {
        to_kvs(&self.effective_env())
    }
    fn contain(&self) -> bool {
        self.contain
    }
    fn set_contain(&mut self, contain: bool) {
        self.contain = contain;
    }
    fn hostname(&self) -> ROption<RString> {
        self.hostname.as_deref().map(RString::from).into()
    }
    fn set_hostname(&mut self, hostname: ROption<RString>) {
        self.hostname = hostname.into_option().map(RString::into_string);
    }
    fn cwd(&self) -> ROption<RString> {
        self.cwd.as_deref().map(RString::from).into()
    }
    fn set_cwd(&mut self, cwd: ROption<RString>) {
        self.cwd = cwd.into_option().map(RString::into_string);
    }
    fn namespaces(&self) -> Namespaces {
        self.namespaces
    }
    fn set_namespaces(&mut self, namespaces: Namespaces) {
        self.namespaces = namespaces;
    }
    fn annotations(&self) -> RVec<KeyValue> {
        to_kvs(&self.annotations)
    }
    fn set_annotation(&mut self, key: RStr<'_>, value: RStr<'_>) {
        self.annotations.insert(key.to_string(), value.to_string());
    }
    fn remove_annotation(&mut self, key: RStr<'_>) {
        self.annotations.remove(key.as_str());
    }
}

/// Collects the image drivers a plugin registers.
#[derive(Default)]
pub struct FakeDriverRegistrar {
    // The registered drivers, in order, as the runtime would get them.
    drivers: Vec<ImageDriverBox>,
}

impl FakeDriverRegistrar {
    /// Names of the registered drivers.
    pub fn names(&self) -> Vec<String> {
        self.drivers
            .iter()
            .map(|d| d.name().into_string())
            .collect()
    }

    /// Features of driver `name`.
    pub fn features(&self, name: &str) -> Option<Vec<String>> {
        self.find(name)
            .map(|d| d.features().into_iter().map(RString::into_string).collect())
    }

    /// Calls `start` then `mount` of driver `name`, as the runtime would.
    pub fn mount(&self, name: &str, mount: &Mount) -> Result<(), CallError> {
        let d = self.find(name).ok_or_else(|| CallError {
            message: format!("no image driver {name:?} registered"),
            panicked: false,
        })?;
        d.start().into_result()?;
        d.mount(&MountRequest {
            image: mount.image.to_string_lossy().as_ref().into(),
            offset: mount.offset,
            size: mount.size,
            fs_type: mount.fs_type.as_str().into(),
            target: mount.target.to_string_lossy().as_ref().into(),
        })
        .into_result()
        .map_err(CallError::from)
    }

    /// Calls `stop` of driver `name`.
    pub fn stop(&self, name: &str) -> Result<(), CallError> {
        match self.find(name) {
            Some(d) => Ok(d.stop().into_result()?),
            None => Ok(()),
        }
    }

    fn find(&self, name: &str) -> Option<&ImageDriverBox> {
        self.drivers.iter().find(|d| d.name().as_str() == name)
    }
}

impl std::fmt::Debug for FakeDriverRegistrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeDriverRegistrar")
            .field("drivers", &self.names())
            .finish()
    }
}

impl DriverRegistrar for FakeDriverRegistrar {
    fn register(&mut self, driver: ImageDriverBox) -> RResult<(), RString> {
        let name = driver.name();
        if self.drivers.iter().any(|d| d.name() == name) {
            return RResult::RErr(format!("image driver {name:?} is already registered").into());
        }
        self.drivers.push(driver);
        RResult::ROk(())
    }
}

/// A queue of signals "received by the runtime"; `next` pops one, or
/// returns none (a timeout) when empty.
#[derive(Debug, Clone, Default)]
pub struct FakeSignals {
    /// Pending signals.
    pub queue: VecDeque<Signal>,
}

impl FakeSignals {
    /// A source that will deliver `signals` in order.
    pub fn new(signals: &[Signal]) -> Self {
        Self {
            queue: signals.iter().copied().collect(),
        }
    }
}

impl SignalSource for FakeSignals {
    fn next(&mut self, _timeout_ms: i64) -> ROption<i32> {
        self.queue.pop_front().map(Signal::as_raw).into()
    }
}
