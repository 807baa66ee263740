//! The plugin SDK: plain Rust closures and traits in, a panic-safe callback
//! table out.

use std::cell::RefCell;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::abi::abi_stable::std_types::{RErr, ROk, RStr};

use crate::abi::{
    self, CallResult, CommandInvocation, ContainerSetupMut, DriverRegistrarMut, EngineConfigMut,
    EngineConfigRef, PluginManifest, PreRunInfo, SignalSourceMut,
};
use crate::callbacks::{Calls, Handlers};
use crate::container::{ConfigMut, ConfigView, Registrar, Signals};
use crate::invocation::ContainerInvocation;
use crate::process::{Pid, WaitStatus};
use crate::spec::{Command, Flag};

/// The error type plugin callbacks return: anything that converts into a
/// boxed error, so `?` works on any error and `Err("text".into())` too.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result type of plugin callbacks.
pub type Result<T, E = BoxError> = std::result::Result<T, E>;

type CommandFn = Box<dyn Fn(&Invocation) -> Result<i32> + Send + Sync>;
type FlagFn = Box<dyn Fn(&Invocation) -> Result<()> + Send + Sync>;

/// A plugin: what it is and the callbacks it registers. Build one in the
/// function you pass to [`export_plugin!`](crate::export_plugin).
///
/// | builder method | callback kind | when the runtime calls it |
/// | --- | --- | --- |
/// | [`command`](Self::command), [`flag`](Self::flag), [`global_pre_run`](Self::global_pre_run) | Command | a plugin command runs; a built-in command runs with a plugin flag; before every command |
/// | [`engine_config`](Self::engine_config) | EngineConfig | after the CLI is parsed, before the container launches |
/// | [`monitor_container`](Self::monitor_container) | MonitorContainer | after the container starts; replaces the wait loop |
/// | [`post_start_process`](Self::post_start_process) | PostStartProcess | once the container process exists |
/// | [`register_image_drivers`](Self::register_image_drivers) | RegisterImageDriver | before the image is mounted |
/// | [`install`](Self::install) | Install | during `vessel plugin install`, as root |
pub struct Plugin {
    name: String,
    author: String,
    pub(crate) version: String,
    description: String,
    commands: Vec<(Command, CommandFn)>,
    flags: Vec<(String, Flag, FlagFn)>,
    pub(crate) handlers: Handlers,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// A plugin named `name` (a clean relative path like `example.com/x`)
    /// with no callbacks yet.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            author: String::new(),
            version: String::new(),
            description: String::new(),
            commands: Vec::new(),
            flags: Vec::new(),
            handlers: Handlers::default(),
        }
    }

    /// The plugin name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets the author.
    pub fn author(mut self, author: impl Into<String>) -> Self {
        self.author = author.into();
        self
    }

    /// Sets the plugin version.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Sets the one-line description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Adds a top-level command; `run` gets the parsed invocation and returns
    /// the exit status.
    pub fn command<F>(mut self, command: Command, run: F) -> Self
    where
        F: Fn(&Invocation) -> Result<i32> + Send + Sync + 'static,
    {
        self.commands.push((command, Box::new(run)));
        self.handlers.run_command = Some(Box::new(|p: &Plugin, inv: &CommandInvocation| {
            p.run_command(inv)
        }));
        self
    }

    /// Adds `flag` to the built-in command `command`; `pre_run` runs before
    /// that command whenever the flag is given and may abort it with an error.
    pub fn flag<F>(mut self, command: impl Into<String>, flag: Flag, pre_run: F) -> Self
    where
        F: Fn(&Invocation) -> Result<()> + Send + Sync + 'static,
    {
        self.flags.push((command.into(), flag, Box::new(pre_run)));
        self.handlers.flag_pre_run = Some(Box::new(|p: &Plugin, inv: &CommandInvocation| {
            p.run_flag_pre_run(inv)
        }));
        self
    }

    /// Sets a hook that runs before every command (but `plugin ...`) and may
    /// abort it with an error.
    pub fn global_pre_run<F>(mut self, hook: F) -> Self
    where
        F: Fn(&PreRun) -> Result<()> + Send + Sync + 'static,
    {
        self.handlers.global_pre_run = Some(Box::new(move |_: &Plugin, info: &PreRunInfo| {
            hook(&PreRun {
                uid: info.uid,
                user: info.user.to_string(),
                command: info.command.to_string(),
                args: info.args.iter().map(|a| a.to_string()).collect(),
            })
        }));
        self
    }

    /// Sets the EngineConfig callback: reads and changes every container's
    /// config, sees the invocation (command, image, this plugin's flags),
    /// and may add device nodes and capabilities.
    pub fn engine_config<F>(mut self, callback: F) -> Self
    where
        F: Fn(&mut ConfigMut<'_>) -> Result<()> + Send + Sync + 'static,
    {
        self.handlers.configure_container = Some(Box::new(
            move |_: &Plugin, mut config: EngineConfigMut<'_>, mut setup: ContainerSetupMut<'_>| {
                let invocation = ContainerInvocation::from_abi(&setup);
                // Both objects reborrowed for one common lifetime.
                callback(&mut ConfigMut {
                    inner: config.sabi_reborrow_mut(),
                    setup: setup.sabi_reborrow_mut(),
                    invocation,
                })
            },
        ));
        self
    }

    /// Sets the MonitorContainer callback: waits for the container process
    /// [`Pid`], handles the signals the runtime receives, and returns the
    /// container's [`WaitStatus`] (see [`Pid::try_wait`], [`Pid::signal`]).
    pub fn monitor_container<F>(mut self, callback: F) -> Self
    where
        F: Fn(&ConfigView<'_>, Pid, &mut Signals<'_>) -> Result<WaitStatus> + Send + Sync + 'static,
    {
        self.handlers.monitor_container = Some(Box::new(
            move |_: &Plugin,
                  config: EngineConfigRef<'_>,
                  pid: i32,
                  signals: SignalSourceMut<'_>| {
                callback(
                    &ConfigView { inner: config },
                    Pid::from_raw(pid),
                    &mut Signals { inner: signals },
                )
                .map(WaitStatus::as_raw)
            },
        ));
        self
    }

    /// Sets the PostStartProcess callback: acts on the started container's
    /// process; an error stops the container.
    pub fn post_start_process<F>(mut self, callback: F) -> Self
    where
        F: Fn(&ConfigView<'_>, Pid) -> Result<()> + Send + Sync + 'static,
    {
        self.handlers.post_start_process = Some(Box::new(
            move |_: &Plugin, config: EngineConfigRef<'_>, pid: i32| {
                callback(&ConfigView { inner: config }, Pid::from_raw(pid))
            },
        ));
        self
    }

    /// Sets the RegisterImageDriver callback; it gets whether the runtime is
    /// unprivileged and a registrar for [`Driver`](crate::Driver)s.
    pub fn register_image_drivers<F>(mut self, callback: F) -> Self
    where
        F: Fn(bool, &mut Registrar<'_>) -> Result<()> + Send + Sync + 'static,
    {
        self.handlers.register_image_driver = Some(Box::new(
            move |p: &Plugin, unprivileged: bool, registrar: DriverRegistrarMut<'_>| {
                callback(
                    unprivileged,
                    &mut Registrar {
                        inner: registrar,
                        plugin: p.name.clone(),
                    },
                )
            },
        ));
        self
    }

    /// Sets the Install callback: prepares files under the install dir (runs as root).
    pub fn install<F>(mut self, callback: F) -> Self
    where
        F: Fn(&Path) -> Result<()> + Send + Sync + 'static,
    {
        self.handlers.install = Some(Box::new(move |_: &Plugin, dir: RStr<'_>| {
            callback(Path::new(dir.as_str()))
        }));
        self
    }

    /// The ABI manifest of this plugin (see `vessel_plugin_test::manifest`).
    #[doc(hidden)]
    pub fn abi_manifest(&self) -> PluginManifest {
        PluginManifest {
            name: self.name.as_str().into(),
            author: self.author.as_str().into(),
            version: self.version.as_str().into(),
            description: self.description.as_str().into(),
            api_version: crate::API_VERSION.into(),
            commands: self.commands.iter().map(|(c, _)| c.to_abi()).collect(),
            flags: self
                .flags
                .iter()
                .map(|(cmd, f, _)| abi::AddedFlagSpec {
                    command: cmd.as_str().into(),
                    flag: f.to_abi(),
                })
                .collect(),
            global_pre_run: self.handlers.global_pre_run.is_some(),
        }
    }

    /// Its entry points, called in-process through the panic guard. Not
    /// part of the API: what `vessel-plugin-test` drives.
    #[doc(hidden)]
    pub fn calls(&self) -> Calls<'_> {
        Calls(self)
    }

    /// Runs `f`, turning an error into a [`CallError`] and a panic into one
    /// naming the plugin and the panic message.
    pub(crate) fn guard<T>(&self, f: impl FnOnce() -> Result<T>) -> CallResult<T> {
        guard(&self.name, f)
    }

    fn run_command(&self, inv: &CommandInvocation) -> Result<i32> {
        let (spec, run) = self
            .commands
            .iter()
            .find(|(c, _)| c.name == inv.command.as_str())
            .ok_or_else(|| format!("no command {:?}", inv.command.as_str()))?;
        let inv = Invocation::from_abi(inv).with_slots(spec);
        let status = run(&inv);
        inv.flush();
        status
    }

    fn run_flag_pre_run(&self, inv: &CommandInvocation) -> Result<()> {
        let inv = Invocation::from_abi(inv);
        let result = self
            .flags
            .iter()
            .filter(|(cmd, f, _)| *cmd == inv.command && inv.is_set(&f.name))
            .try_for_each(|(_, _, hook)| hook(&inv));
        inv.flush();
        result
    }
}

/// Runs `f` for plugin `plugin`, catching panics (which must never unwind
/// into the runtime: abi_stable would abort the process).
pub(crate) fn guard<T>(plugin: &str, f: impl FnOnce() -> Result<T>) -> CallResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => ROk(v),
        Ok(Err(e)) => RErr(abi::CallError {
            message: one_line(&e.to_string()).into(),
            panicked: false,
        }),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic payload".to_string());
            RErr(abi::CallError {
                message: format!("plugin {plugin:?} panicked: {}", one_line(&msg)).into(),
                panicked: true,
            })
        }
    }
}

/// Error messages cross into one-line CLI errors.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An error a callback returned, as the runtime sees it: what the
/// `vessel-plugin-test` helpers return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    /// One line saying what failed, naming the plugin when it panicked.
    pub message: String,
    /// The callback panicked (the SDK caught the panic at the boundary).
    pub panicked: bool,
}

impl From<abi::CallError> for CallError {
    fn from(e: abi::CallError) -> Self {
        Self {
            message: e.message.into_string(),
            panicked: e.panicked,
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CallError {}

thread_local! {
    // Set while `capture_stdout` runs: command output goes here, not stdout.
    static CAPTURE: RefCell<Option<Arc<Mutex<Vec<u8>>>>> = const { RefCell::new(None) };
}

/// Runs `f` with the command output of callbacks on this thread captured;
/// returns what `f` returned and the output. Not part of the API: what
/// `vessel-plugin-test` reads command output with.
#[doc(hidden)]
pub fn capture_stdout<T>(f: impl FnOnce() -> T) -> (T, String) {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let previous = CAPTURE.with(|c| c.replace(Some(buf.clone())));
    let result = f();
    CAPTURE.with(|c| *c.borrow_mut() = previous);
    let out = String::from_utf8_lossy(&buf.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    (result, out)
}

/// Where a callback's output goes: the process's stdout, or a buffer
/// [`capture_stdout`] reads.
#[derive(Debug, Clone, Default)]
struct Output(Option<Arc<Mutex<Vec<u8>>>>);

impl Output {
    fn current() -> Self {
        Self(CAPTURE.with(|c| c.borrow().clone()))
    }
}

/// A writer for a callback's output (see [`Invocation::stdout`]).
#[derive(Debug)]
pub struct OutputWriter<'a>(&'a Output);

impl Write for OutputWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &self.0 .0 {
            None => std::io::stdout().write(buf),
            Some(b) => {
                b.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(buf);
                Ok(buf.len())
            }
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match &self.0 .0 {
            None => std::io::stdout().flush(),
            Some(_) => Ok(()),
        }
    }
}

/// A parsed command invocation: a plugin command, or a built-in command
/// whose plugin-added flags were given.
///
/// The runtime passes the values of a plugin command's arguments in the
/// order the command declares them, leaving out absent ones. Install refuses
/// a required argument after an optional one and a multi-value argument that
/// is not the last, so the parser fills the slots strictly left to right and
/// the values map back to their arguments by the spec: [`arg`](Self::arg)
/// and [`arg_values`](Self::arg_values) look them up by name, and an absent
/// optional argument never shifts the next one.
#[derive(Debug)]
pub struct Invocation {
    command: String,
    args: Vec<String>,
    // Which values belong to which declared argument (plugin commands only).
    slots: Vec<(String, std::ops::Range<usize>)>,
    flags: Vec<(String, Option<String>)>,
    out: Output,
}

impl Invocation {
    fn from_abi(inv: &CommandInvocation) -> Self {
        Self {
            command: inv.command.to_string(),
            args: inv.args.iter().map(|a| a.to_string()).collect(),
            flags: inv
                .flags
                .iter()
                .map(|f| {
                    (
                        f.name.to_string(),
                        f.value.as_ref().map(|v| v.to_string()).into_option(),
                    )
                })
                .collect(),
            slots: Vec::new(),
            out: Output::current(),
        }
    }

    /// Assigns the values to the arguments `spec` declares, in order: a
    /// single argument takes one value, a multi-value one the rest.
    fn with_slots(mut self, spec: &Command) -> Self {
        let mut next = 0;
        for a in spec.args() {
            let n = if a.multiple {
                self.args.len().saturating_sub(next)
            } else {
                usize::from(next < self.args.len())
            };
            self.slots.push((a.name.clone(), next..next + n));
            next += n;
        }
        self
    }

    /// The command name.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Positional arguments, in order: for a plugin command the values of
    /// its declared arguments (absent ones left out); for a built-in command
    /// the words after the command name.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// The value of the argument the command declares as `name` (the first
    /// one for a multi-value argument); none when it was not given or the
    /// command declares no such argument.
    pub fn arg(&self, name: &str) -> Option<&str> {
        self.arg_values(name).first().map(String::as_str)
    }

    /// All values of the argument the command declares as `name`, in order
    /// (empty when it was not given).
    pub fn arg_values(&self, name: &str) -> &[String] {
        self.slots
            .iter()
            .find(|(n, _)| n == name)
            .map_or(&[], |(_, r)| &self.args[r.clone()])
    }

    /// The value of flag `--name`, if it was given with a value; when it was
    /// given several times, the last one (as most command lines do).
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flag_values(name).last().copied()
    }

    /// Every value of flag `--name`, in the order given (a value flag may
    /// repeat: `--tag a --tag b`); empty when it was not given.
    pub fn flag_values(&self, name: &str) -> Vec<&str> {
        self.flags
            .iter()
            .filter(|(n, _)| n == name)
            .filter_map(|(_, v)| v.as_deref())
            .collect()
    }

    /// True when flag or switch `--name` was given.
    pub fn is_set(&self, name: &str) -> bool {
        self.flags.iter().any(|(n, _)| n == name)
    }

    /// The command's standard output. Write through this rather than
    /// `println!` so the SDK's test helpers can capture it.
    pub fn stdout(&self) -> OutputWriter<'_> {
        OutputWriter(&self.out)
    }

    // The plugin has its own copy of std and so its own stdout buffer: flush
    // it before returning, or output could be lost when the runtime exits.
    fn flush(&self) {
        let _ = self.stdout().flush();
    }
}

/// What a global pre-run hook learns about the command about to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreRun {
    /// Real uid of the caller.
    pub uid: u32,
    /// User name of the caller (empty when unknown).
    pub user: String,
    /// The command about to run.
    pub command: String,
    /// The argument vector after the program name.
    pub args: Vec<String>,
}
