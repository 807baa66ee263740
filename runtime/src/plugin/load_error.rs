//! Why a plugin library was refused: one variant per check of the loader.

use std::path::PathBuf;

/// Why a plugin library was refused; every check has its own variant.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The library file does not exist.
    #[error("plugin {plugin:?}: {} does not exist", path.display())]
    Missing {
        /// The plugin.
        plugin: String,
        /// The library path.
        path: PathBuf,
    },
    /// The library file could not be opened or read.
    #[error("plugin {plugin:?}: cannot read {}: {source}", path.display())]
    Read {
        /// The plugin.
        plugin: String,
        /// The library path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The path is not a regular file.
    #[error("plugin {plugin:?}: {} is not a regular file", path.display())]
    NotRegularFile {
        /// The plugin.
        plugin: String,
        /// The library path.
        path: PathBuf,
    },
    /// The library is outside the plugin root whose directories are checked.
    #[error("plugin {plugin:?}: {} is outside the plugin directory {}", path.display(), root.display())]
    OutsidePluginRoot {
        /// The plugin.
        plugin: String,
        /// The library path.
        path: PathBuf,
        /// The plugin root.
        root: PathBuf,
    },
    /// Running as root, the library is not owned by root.
    #[error("plugin {plugin:?}: {} is owned by uid {uid}, not root", path.display())]
    NotRootOwned {
        /// The plugin.
        plugin: String,
        /// The library path.
        path: PathBuf,
        /// Its owner.
        uid: u32,
    },
    /// The library is group-writable.
    #[error("plugin {plugin:?}: {} is group-writable", path.display())]
    GroupWritable {
        /// The plugin.
        plugin: String,
        /// The library path.
        path: PathBuf,
    },
    /// The library is world-writable.
    #[error("plugin {plugin:?}: {} is world-writable", path.display())]
    WorldWritable {
        /// The plugin.
        plugin: String,
        /// The library path.
        path: PathBuf,
    },
    /// Running as root, a directory above the library is not owned by root.
    #[error("plugin {plugin:?}: directory {} is owned by uid {uid}, not root", dir.display())]
    DirNotRootOwned {
        /// The plugin.
        plugin: String,
        /// The directory.
        dir: PathBuf,
        /// Its owner.
        uid: u32,
    },
    /// A directory above the library is group- or world-writable.
    #[error("plugin {plugin:?}: directory {} is {who}-writable", dir.display())]
    DirWritable {
        /// The plugin.
        plugin: String,
        /// The directory.
        dir: PathBuf,
        /// `group` or `world`.
        who: &'static str,
    },
    /// The library's sha256 differs from the recorded one.
    #[error("plugin {plugin:?}: sha256 of {} is {actual}, expected {expected}", path.display())]
    DigestMismatch {
        /// The plugin.
        plugin: String,
        /// The library path.
        path: PathBuf,
        /// The recorded digest.
        expected: String,
        /// The digest of the bytes read.
        actual: String,
    },
    /// The file is not an ELF file at all.
    #[error("plugin {plugin:?}: {} is not an ELF file", path.display())]
    NotElf {
        /// The plugin.
        plugin: String,
        /// The library path.
        path: PathBuf,
    },
    /// The file starts like an ELF file but cannot be parsed.
    #[error("plugin {plugin:?}: {} is a malformed ELF file: {reason}", path.display())]
    MalformedElf {
        /// The plugin.
        plugin: String,
        /// The library path.
        path: PathBuf,
        /// What goblin said.
        reason: String,
    },
    /// The library is built for another machine.
    #[error("plugin {plugin:?}: {} is built for {found}, this host is {expected}", path.display())]
    WrongArchitecture {
        /// The plugin.
        plugin: String,
        /// The library path.
        path: PathBuf,
        /// Its `e_machine`.
        found: String,
        /// The host's.
        expected: String,
    },
    /// The file is a (PIE) executable, not a shared library.
    #[error("plugin {plugin:?}: {} is an executable, not a shared library", path.display())]
    Executable {
        /// The plugin.
        plugin: String,
        /// The library path.
        path: PathBuf,
    },
    /// The file is an ELF object of another kind (relocatable, core dump).
    #[error("plugin {plugin:?}: {} is an ELF {kind} file, not a shared library", path.display())]
    NotSharedObject {
        /// The plugin.
        plugin: String,
        /// The library path.
        path: PathBuf,
        /// Its `e_type`.
        kind: String,
    },
    /// A shared library that does not export the plugin root module.
    #[error("plugin {plugin:?}: {} is not a vessel plugin (it does not export the plugin root module)", path.display())]
    NotAPlugin {
        /// The plugin.
        plugin: String,
        /// The library path.
        path: PathBuf,
    },
    /// Copying the verified bytes into a sealed memfd failed.
    #[error("plugin {plugin:?}: cannot stage the verified library in memory: {source}")]
    Memfd {
        /// The plugin.
        plugin: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The dynamic loader refused the library.
    #[error("plugin {plugin:?}: dlopen failed: {reason}")]
    Dlopen {
        /// The plugin.
        plugin: String,
        /// What the dynamic loader said.
        reason: String,
    },
    /// The library was built with an incompatible abi_stable.
    #[error("plugin {plugin:?}: built with an incompatible abi_stable: {reason}")]
    AbiStable {
        /// The plugin.
        plugin: String,
        /// The details.
        reason: String,
    },
    /// The plugin-api versions of the plugin and the runtime do not match.
    #[error("plugin {plugin:?}: built against plugin-api {plugin_api}, which this runtime (plugin-api {runtime_api}) cannot load")]
    ApiVersion {
        /// The plugin.
        plugin: String,
        /// The version the plugin declares.
        plugin_api: String,
        /// The runtime's version.
        runtime_api: String,
    },
    /// abi_stable found a type layout that differs from the runtime's.
    #[error(
        "plugin {plugin:?}: its root module layout is incompatible with this runtime: {summary}"
    )]
    Layout {
        /// The plugin.
        plugin: String,
        /// First line of abi_stable's report (the full report is logged at debug level).
        summary: String,
    },
    /// Building the plugin's root module or its `init` failed.
    #[error("plugin {plugin:?}: initialisation failed: {reason}")]
    Init {
        /// The plugin.
        plugin: String,
        /// Why.
        reason: String,
    },
    /// The plugin's manifest entry point failed.
    #[error("plugin {plugin:?}: cannot read its manifest: {reason}")]
    Manifest {
        /// The plugin.
        plugin: String,
        /// Why.
        reason: String,
    },
    /// The library calls itself by another name than the one it was installed as.
    #[error("plugin {plugin:?}: the library says it is {declared:?}")]
    NameMismatch {
        /// The expected name.
        plugin: String,
        /// The name in its manifest.
        declared: String,
    },
}
