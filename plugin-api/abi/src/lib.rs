//! The stable ABI between vessel and its plugins: the root module every
//! plugin exports, the `#[repr(C)]` data types that cross the boundary, the
//! `sabi_trait` objects the runtime hands to plugins, and the frozen layouts
//! of earlier API versions.
//!
//! This is everything the runtime links. Plugin authors never use it
//! directly: the SDK (`vessel-plugin-api`) builds the root module from plain
//! Rust closures, and `vessel-plugin-test` fakes the runtime's side.
//!
//! Compatibility rules: every type here is checked by abi_stable at load
//! time. The root module, [`HostServices`] and the `sabi_trait`s are prefix
//! types, so later API versions only ever append fields or methods after the
//! `last_prefix_field` marker and plugins built against 1.0 keep loading.
//! abi_stable also compares each type's name and defining package (see
//! `build.rs`), never its module path.

// abi_stable's generated names (`PluginMod_Ref`, `EngineConfig_TO`).
#![allow(non_camel_case_types)]
// abi_stable 0.11's `sabi_trait` expansion puts impls inside a const block.
#![allow(non_local_definitions)]

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    sabi_trait,
    sabi_types::{RMut, RRef, VersionStrings},
    std_types::{RBox, ROption, RResult, RStr, RString, RVec},
    StableAbi,
};

/// An error returned by a plugin callback.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    /// One line saying what failed, already naming the plugin when it panicked.
    pub message: RString,
    /// The callback panicked (the SDK caught the panic at the boundary).
    pub panicked: bool,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CallError {}

/// What a callback returns: a value or a [`CallError`].
pub type CallResult<T> = RResult<T, CallError>;

/// Severity of a log record a plugin sends to the runtime.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Something failed.
    Error,
    /// Something looks wrong.
    Warn,
    /// Normal progress (`vessel -v`).
    Info,
    /// Details for debugging (`vessel -d`).
    Debug,
    /// Very verbose details.
    Trace,
}

/// Services the runtime offers to a plugin, handed over once by the
/// root module's `init` entry point.
#[repr(C)]
#[derive(StableAbi, Debug)]
#[sabi(kind(Prefix(prefix_ref = HostServices_Ref, prefix_fields = HostServices_Prefix)))]
#[sabi(missing_field(option))]
pub struct HostServices {
    /// Emits a log record into the runtime's log, tagged with the plugin name.
    #[sabi(last_prefix_field)]
    pub log: extern "C" fn(plugin: RStr<'_>, level: LogLevel, message: RStr<'_>),
    /// The install dir of plugin `plugin` (what its Install callback got),
    /// or none when the runtime does not know it. Appended after the
    /// prefix: a runtime that predates it simply lacks the field.
    pub install_dir: extern "C" fn(plugin: RStr<'_>) -> ROption<RString>,
    /// (1.2) The config dir of plugin `plugin`
    /// (`$VESSEL_ROOT/etc/vessel/plugins/NAME`, root-owned, the admin's;
    /// it may not exist), or none when the runtime does not know it.
    pub config_dir: extern "C" fn(plugin: RStr<'_>) -> ROption<RString>,
    /// (1.2) The state dir of plugin `plugin` for the calling user, created
    /// (mode 0700) on first use, or why it cannot be had.
    pub state_dir: extern "C" fn(plugin: RStr<'_>) -> RResult<RString, RString>,
}

/// A positional argument of a plugin command.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct ArgSpec {
    /// Value name shown in help.
    pub name: RString,
    /// Help text.
    pub help: RString,
    /// Must be given.
    pub required: bool,
    /// Takes all remaining values.
    pub multiple: bool,
}

/// A flag of a plugin command, or one added to a built-in command.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct FlagSpec {
    /// Long name without dashes.
    pub name: RString,
    /// Optional short name (a Unicode scalar value).
    pub short: ROption<u32>,
    /// Help text.
    pub help: RString,
    /// Takes a value (`--name VALUE`) rather than being a switch.
    pub takes_value: bool,
}

/// A top-level command a plugin adds.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// Command name.
    pub name: RString,
    /// One-line help.
    pub about: RString,
    /// Positional arguments, in order.
    pub args: RVec<ArgSpec>,
    /// Flags of the command.
    pub flags: RVec<FlagSpec>,
}

/// A flag a plugin adds to a built-in command; its pre-run hook runs before
/// that command when the flag is given.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct AddedFlagSpec {
    /// The built-in command, e.g. `version`.
    pub command: RString,
    /// The flag.
    pub flag: FlagSpec,
}

/// What a plugin says about itself. The callback kinds are not listed here:
/// the runtime derives them from which entry points of [`PluginMod`] are
/// present, so the two can never disagree.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct PluginManifest {
    /// Plugin name, a clean relative path such as `example.com/cli-plugin`.
    pub name: RString,
    /// Author.
    pub author: RString,
    /// Plugin version.
    pub version: RString,
    /// One-line description.
    pub description: RString,
    /// The plugin-api version the plugin was built against.
    pub api_version: RString,
    /// Top-level commands it adds.
    pub commands: RVec<CommandSpec>,
    /// Flags it adds to built-in commands.
    pub flags: RVec<AddedFlagSpec>,
    /// It has a global pre-run hook.
    pub global_pre_run: bool,
}

/// One flag given on the command line.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct FlagValue {
    /// Long name without dashes.
    pub name: RString,
    /// The value, or none for a switch.
    pub value: ROption<RString>,
}

/// A command invocation: a plugin command, or a built-in command whose
/// plugin-added flags were given.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct CommandInvocation {
    /// The command name.
    pub command: RString,
    /// Positional arguments, in order.
    pub args: RVec<RString>,
    /// The flags that were given (only this plugin's flags).
    pub flags: RVec<FlagValue>,
}

/// What a global pre-run hook learns about the command about to run.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct PreRunInfo {
    /// Real uid of the caller.
    pub uid: u32,
    /// User name of the caller (empty when unknown).
    pub user: RString,
    /// The command about to run, e.g. `exec`.
    pub command: RString,
    /// The full argument vector after the program name.
    pub args: RVec<RString>,
}

/// A bind mount of the container.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// Host path.
    pub source: RString,
    /// Path inside the container.
    pub destination: RString,
    /// Mounted read-only.
    pub readonly: bool,
}

/// Optional namespaces of the container (the mount namespace is always new).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Namespaces {
    /// New PID namespace.
    pub pid: bool,
    /// New UTS namespace.
    pub uts: bool,
    /// New IPC namespace.
    pub ipc: bool,
    /// New network namespace.
    pub net: bool,
    /// New user namespace.
    pub user: bool,
}

/// A key/value pair (environment variables, annotations).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// Key.
    pub key: RString,
    /// Value.
    pub value: RString,
}

/// The engine config of the container being prepared. Methods are only
/// ever appended after the `last_prefix_field` one, so plugins built against
/// an older API keep working.
#[sabi_trait]
pub trait EngineConfig {
    /// Bind mounts, in mount order.
    fn binds(&self) -> RVec<Bind>;
    /// Replaces the bind mounts.
    fn set_binds(&mut self, binds: RVec<Bind>);
    /// One environment variable of the container.
    fn env_get(&self, key: RStr<'_>) -> ROption<RString>;
    /// Sets an environment variable of the container.
    fn env_set(&mut self, key: RStr<'_>, value: RStr<'_>);
    /// Removes an environment variable of the container.
    fn env_unset(&mut self, key: RStr<'_>);
    /// All environment variables of the container.
    fn env_list(&self) -> RVec<KeyValue>;
    /// Contained mode: no home or host dirs are bound in.
    fn contain(&self) -> bool;
    /// Turns contained mode on or off.
    fn set_contain(&mut self, contain: bool);
    /// Hostname (needs a UTS namespace), if set.
    fn hostname(&self) -> ROption<RString>;
    /// Sets or clears the hostname.
    fn set_hostname(&mut self, hostname: ROption<RString>);
    /// Working directory inside the container, if set.
    fn cwd(&self) -> ROption<RString>;
    /// Sets or clears the working directory.
    fn set_cwd(&mut self, cwd: ROption<RString>);
    /// Requested namespaces.
    fn namespaces(&self) -> Namespaces;
    /// Changes the requested namespaces.
    fn set_namespaces(&mut self, namespaces: Namespaces);
    /// All annotations (free-form key/values plugins and tools share).
    fn annotations(&self) -> RVec<KeyValue>;
    /// Sets an annotation.
    fn set_annotation(&mut self, key: RStr<'_>, value: RStr<'_>);
    /// Removes an annotation.
    #[sabi(last_prefix_field)]
    fn remove_annotation(&mut self, key: RStr<'_>);
}

/// A mutable engine config handed to EngineConfig callbacks.
pub type EngineConfigMut<'a> = EngineConfig_TO<'a, RMut<'a, ()>>;
/// A read-only view of the engine config of a started container.
pub type EngineConfigRef<'a> = EngineConfig_TO<'a, RRef<'a, ()>>;

/// A device node to make visible in the container.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The character or block device on the host.
    pub source: RString,
    /// Where it appears in the container: a path under `/dev`.
    pub destination: RString,
}

/// The invocation that starts a container, and what an EngineConfig
/// callback may ask for beyond the engine config: device nodes and
/// capability changes (new in 1.2; methods are only ever appended after
/// the `last_prefix_field` one).
#[sabi_trait]
pub trait ContainerSetup {
    /// The built-in command starting the container: `exec`, `run` or `shell`.
    fn command(&self) -> RString;
    /// The image path as the user gave it.
    fn image(&self) -> RString;
    /// The image kind: `sandbox` (a directory) or `sif` (a file).
    fn image_kind(&self) -> RString;
    /// The container command and its arguments.
    fn args(&self) -> RVec<RString>;
    /// Real uid of the caller.
    fn uid(&self) -> u32;
    /// Real gid of the caller.
    fn gid(&self) -> u32;
    /// `--fakeroot` was given.
    fn fakeroot(&self) -> bool;
    /// `--contain` was given (what the user asked; `EngineConfig::contain`
    /// is the current value, which plugins may change).
    fn contain(&self) -> bool;
    /// The flags this plugin added to the command that were given.
    fn flags(&self) -> RVec<FlagValue>;
    /// The device nodes added so far, by every plugin.
    fn devices(&self) -> RVec<Device>;
    /// Adds a device node (see [`rules::check_device`]); an error says why not.
    fn add_device(&mut self, device: Device) -> RResult<(), RString>;
    /// Capabilities added so far (`CAP_*` names), by every plugin.
    fn capabilities_added(&self) -> RVec<RString>;
    /// Capabilities dropped so far (`CAP_*` names), by every plugin.
    fn capabilities_dropped(&self) -> RVec<RString>;
    /// Adds a capability to a root container's set (see [`rules::capability`]).
    fn add_capability(&mut self, name: RStr<'_>) -> RResult<(), RString>;
    /// Drops a capability from the container's set.
    #[sabi(last_prefix_field)]
    fn drop_capability(&mut self, name: RStr<'_>) -> RResult<(), RString>;
}

/// The container setup handed to a 1.2 EngineConfig callback.
pub type ContainerSetupMut<'a> = ContainerSetup_TO<'a, RMut<'a, ()>>;

/// The signals the runtime received while a plugin monitors the container.
#[sabi_trait]
pub trait SignalSource {
    /// Waits up to `timeout_ms` milliseconds (negative: forever) for the next
    /// signal the runtime received and returns its number, or none on timeout.
    /// `SIGCHLD` means a child changed state (time to call waitpid); signals
    /// the terminal generated (Ctrl-C) already reached the container, which
    /// shares the foreground process group, and are not reported.
    #[sabi(last_prefix_field)]
    fn next(&mut self, timeout_ms: i64) -> ROption<i32>;
}

/// The signal source handed to a MonitorContainer callback.
pub type SignalSourceMut<'a> = SignalSource_TO<'a, RMut<'a, ()>>;

/// Where and what to mount for an image driver.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct MountRequest {
    /// The image file.
    pub image: RString,
    /// Byte offset of the filesystem inside the image file.
    pub offset: u64,
    /// Byte size of the filesystem.
    pub size: u64,
    /// Filesystem type, e.g. `squashfs`.
    pub fs_type: RString,
    /// Directory to mount on.
    pub target: RString,
}

/// A named image driver a plugin registers. The runtime keeps it for the
/// rest of the process, so it must be `Send + Sync + 'static`.
#[sabi_trait]
pub trait ImageDriver: Send + Sync + 'static {
    /// The driver name (`image_driver` in `vessel.toml` selects it).
    fn name(&self) -> RString;
    /// Filesystems and features it handles, e.g. `squashfs`, `overlay`.
    fn features(&self) -> RVec<RString>;
    /// Called once before the first mount.
    fn start(&self) -> CallResult<()>;
    /// Mounts a filesystem of an image on a directory.
    fn mount(&self, request: &MountRequest) -> CallResult<()>;
    /// Called once after the container exits.
    #[sabi(last_prefix_field)]
    fn stop(&self) -> CallResult<()>;
}

/// An owned image driver object.
pub type ImageDriverBox = ImageDriver_TO<RBox<()>>;

/// What RegisterImageDriver callbacks register their drivers with.
#[sabi_trait]
pub trait DriverRegistrar {
    /// Registers a driver; fails if its name is taken.
    #[sabi(last_prefix_field)]
    fn register(&mut self, driver: ImageDriverBox) -> RResult<(), RString>;
}

/// The registrar handed to a RegisterImageDriver callback.
pub type DriverRegistrarMut<'a> = DriverRegistrar_TO<'a, RMut<'a, ()>>;

/// The callback table: every callback kind and its entry points in the root
/// module, in ABI order. This list is the one place a callback kind is
/// declared: the root module's fields ([`PluginMod`], [`CallbackEntries`]),
/// the runtime's `CallbackKind` (name, description, what it discloses at
/// install) and typed calls, and the SDK's exported entry points and
/// handlers are all generated from it.
///
/// `callback_table!(m)` invokes the macro `m` with the table:
///
/// ```text
/// /// What the kind is.
/// Kind = "name in manifests", "what a plugin with it can do (shown at install)" {
///     /// What the entry point does.
///     #[sabi(last_prefix_field)]   // only on the last field of the 1.0 layout
///     entry(arg: Type, ...) -> Ret = "callback name in error messages", prefix;
/// }
/// ```
///
/// `prefix` entry points belong to the 1.0 layout. Entry points added
/// later go, in ABI order, into the `appended { Kind: entry(...) -> Ret =
/// "label"; }` section after the kinds: they are fields after `install`
/// (the accessor of an appended field returns an `Option`: a plugin built
/// against an older API lacks it) and belong to the kind they name.
/// Never reorder or remove an entry.
#[macro_export]
macro_rules! callback_table {
    ($m:ident) => {
        $m! {
            /// New commands, flags on existing commands, pre-run hooks.
            Command = "command", "run code from the vessel command line (the commands, flags and hooks it registered are listed one by one)" {
                /// Command: runs one of the plugin's commands, returns its exit status.
                run_command(invocation: &$crate::CommandInvocation) -> i32 = "command", prefix;
                /// Command: pre-run hook for flags added to a built-in command; an error aborts it.
                flag_pre_run(invocation: &$crate::CommandInvocation) -> () = "flag pre-run", prefix;
                /// Command: runs before every command; an error aborts it.
                global_pre_run(info: &$crate::PreRunInfo) -> () = "global pre-run", prefix;
            }
            /// Read and change every container's engine config.
            EngineConfig = "engine_config", "read and change the configuration of every container before it starts (mounts, environment, namespaces, process, host device nodes, the capabilities of root containers)" {
                /// EngineConfig: reads and changes the engine config.
                engine_config(config: $crate::EngineConfigMut<'_>) -> () = "engine config", prefix;
            }
            /// Replace the wait/forward-signals loop.
            MonitorContainer = "monitor_container", "replace the supervision of every container: it waits for the container, forwards its signals and decides its exit status" {
                /// MonitorContainer: waits for the container, returns its raw wait status.
                monitor_container(
                    config: $crate::EngineConfigRef<'_>,
                    pid: i32,
                    signals: $crate::SignalSourceMut<'_>
                ) -> i32 = "monitor container", prefix;
            }
            /// Act on the container's pid once it exists.
            PostStartProcess = "post_start_process", "act as root on every container process once it has started (its pid), and stop the container by failing" {
                /// PostStartProcess: acts on the started container's pid; an error stops it.
                post_start_process(config: $crate::EngineConfigRef<'_>, pid: i32) -> ()
                    = "post start process", prefix;
            }
            /// Register a named image driver.
            RegisterImageDriver = "register_image_driver", "register image drivers that mount container images (as root) in place of the built-in ones" {
                /// RegisterImageDriver: registers image drivers.
                register_image_driver(unprivileged: bool, registrar: $crate::DriverRegistrarMut<'_>) -> ()
                    = "register image driver", prefix;
            }
            /// Prepare files under its install dir at install time.
            Install = "install", "run code as root once, when it is installed or upgraded, to prepare files in its install dir" {
                /// Install: prepares files under the plugin's install dir.
                #[sabi(last_prefix_field)]
                install(install_dir: $crate::abi_stable::std_types::RStr<'_>) -> () = "install", prefix;
            }
            ;
            appended {
                /// EngineConfig (1.2): reads and changes the engine config,
                /// sees the invocation, adds devices and capabilities. Called
                /// instead of `engine_config` when present.
                EngineConfig: configure_container(
                    config: $crate::EngineConfigMut<'_>,
                    setup: $crate::ContainerSetupMut<'_>
                ) -> () = "engine config";
            }
        }
    };
}

// An entry point of a current root module: appended fields may be missing.
macro_rules! entry_of {
    (prefix, $m:expr, $entry:ident) => {
        $m.$entry()
    };
    (appended, $m:expr, $entry:ident) => {
        $m.$entry().flatten()
    };
}

macro_rules! define_root_module {
    ($(
        $(#[doc = $kdoc:literal])*
        $kind:ident = $name:literal, $discloses:literal {$(
            $(#[doc = $doc:literal])*
            $(#[sabi($sabi:meta)])?
            $entry:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty = $label:literal, $layout:ident;
        )*}
    )* ; appended {$(
        $(#[doc = $adoc:literal])*
        $akind:ident: $aentry:ident($($aarg:ident: $aty:ty),* $(,)?) -> $aret:ty = $alabel:literal;
    )*}) => {
        // abi_stable derives helper types (`PluginMod_Prefix`, ...) without
        // Debug; spanned by this macro, they would trip the workspace lint.
        #[allow(missing_debug_implementations)]
        mod root_module {
            use super::*;

            /// The root module every plugin exports. The SDK fills it; `manifest`
            /// and `init` are always present, each callback entry point (see
            /// [`callback_table!`]) is present only when the plugin registered
            /// that kind. New entry points are appended after `install` in later
            /// API versions; the layout each older version had stays in a frozen
            /// module ([`v1_0`], [`v1_1`]) so the runtime keeps loading its plugins.
            #[repr(C)]
            #[derive(StableAbi, Debug)]
            #[sabi(kind(Prefix(prefix_ref = PluginMod_Ref, prefix_fields = PluginMod_Prefix)))]
            #[sabi(missing_field(option))]
            pub struct PluginMod {
                /// Describes the plugin.
                pub manifest: extern "C" fn() -> CallResult<PluginManifest>,
                /// Hands the host services to the plugin; called once right after loading.
                pub init: extern "C" fn(host: HostServices_Ref) -> CallResult<()>,
                $($(
                    $(#[doc = $doc])*
                    $(#[sabi($sabi)])?
                    pub $entry: Option<extern "C" fn($($arg: $ty),*) -> CallResult<$ret>>,
                )*)*
                $(
                    $(#[doc = $adoc])*
                    pub $aentry: Option<extern "C" fn($($aarg: $aty),*) -> CallResult<$aret>>,
                )*
            }

            /// The callback entry points of a loaded root module, whatever
            /// plugin-api 1.x layout it was built with (none for an entry point
            /// its version lacks).
            #[derive(Debug, Clone, Copy, Default)]
            pub struct CallbackEntries {
                $($(
                    $(#[doc = $doc])*
                    pub $entry: Option<extern "C" fn($($arg: $ty),*) -> CallResult<$ret>>,
                )*)*
                $(
                    $(#[doc = $adoc])*
                    pub $aentry: Option<extern "C" fn($($aarg: $aty),*) -> CallResult<$aret>>,
                )*
            }

            impl PluginMod {
                /// A root module with these entry points.
                pub fn new(
                    manifest: extern "C" fn() -> CallResult<PluginManifest>,
                    init: extern "C" fn(host: HostServices_Ref) -> CallResult<()>,
                    entries: CallbackEntries,
                ) -> Self {
                    Self {
                        manifest,
                        init,
                        $($($entry: entries.$entry,)*)*
                        $($aentry: entries.$aentry,)*
                    }
                }
            }

            impl PluginMod_Ref {
                /// The callback entry points this module has.
                pub fn callback_entries(self) -> CallbackEntries {
                    CallbackEntries {
                        $($($entry: entry_of!($layout, self, $entry),)*)*
                        $($aentry: entry_of!(appended, self, $aentry),)*
                    }
                }
            }
        }
        pub use root_module::*;
    };
}

callback_table!(define_root_module);

impl RootModule for PluginMod_Ref {
    declare_root_module_statics! {PluginMod_Ref}
    const BASE_NAME: &'static str = "vessel_plugin";
    const NAME: &'static str = "vessel plugin";
    // The version of this crate the plugin was built with: the loader checks
    // it (same major, minor not newer) before abi_stable checks layouts.
    const VERSION_STRINGS: VersionStrings = abi_stable::package_version_strings!();
}

pub mod rules;
pub mod v1_0;
pub mod v1_1;

/// Re-exported so the runtime, the SDK and plugins use exactly the
/// abi_stable these layouts were built with.
pub use abi_stable;

/// The plugin-api version of this ABI: the contract version a plugin
/// records (in its manifest and abi_stable's root-module version) and the
/// runtime checks (same major, plugin minor not newer).
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The exported symbol every abi_stable library (and so every plugin)
/// defines; equal to `abi_stable::library::ROOT_MODULE_LOADER_NAME`.
pub const ROOT_MODULE_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_carry_the_package_name_1x_plugins_were_built_with() {
        use abi_stable::StableAbi;
        for layout in [
            <CallError as StableAbi>::LAYOUT,
            <PluginManifest as StableAbi>::LAYOUT,
            <MountRequest as StableAbi>::LAYOUT,
        ] {
            assert_eq!(layout.package(), "vessel-plugin-api");
        }
    }

    #[test]
    fn root_symbol_matches_abi_stable() {
        assert_eq!(
            ROOT_MODULE_SYMBOL,
            abi_stable::library::ROOT_MODULE_LOADER_NAME
        );
    }
}
