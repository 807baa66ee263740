//! Why a plugin library was refused: which plugin, which file, and which
//! check of the loader failed.

use std::fmt;
use std::path::PathBuf;

/// A plugin library the loader refused.
#[derive(Debug)]
pub struct LoadError {
    /// The plugin (its name, or the file name when loaded by path).
    pub plugin: String,
    /// The library file.
    pub path: PathBuf,
    /// The check that failed.
    pub kind: LoadErrorKind,
}

impl LoadError {
    /// A refusal of `plugin`'s library at `path`.
    pub fn new(plugin: impl Into<String>, path: impl Into<PathBuf>, kind: LoadErrorKind) -> Self {
        Self {
            plugin: plugin.into(),
            path: path.into(),
            kind,
        }
    }
}

/// Which check of the loader failed; every check has its own variant.
#[derive(Debug)]
pub enum LoadErrorKind {
    /// The library file does not exist.
    Missing,
    /// The library file could not be opened or read.
    Read {
        /// The I/O error.
        source: std::io::Error,
    },
    /// The path is not a regular file.
    NotRegularFile,
    /// The library is outside the plugin root whose directories are checked.
    OutsidePluginRoot {
        /// The plugin root.
        root: PathBuf,
    },
    /// Running as root, the library is not owned by root.
    NotRootOwned {
        /// Its owner.
        uid: u32,
    },
    /// The library is group-writable.
    GroupWritable,
    /// The library is world-writable.
    WorldWritable,
    /// Running as root, a directory above the library is not owned by root.
    DirNotRootOwned {
        /// The directory.
        dir: PathBuf,
        /// Its owner.
        uid: u32,
    },
    /// A directory above the library is group- or world-writable.
    DirWritable {
        /// The directory.
        dir: PathBuf,
        /// `group` or `world`.
        who: &'static str,
    },
    /// The library's sha256 differs from the recorded one.
    DigestMismatch {
        /// The recorded digest.
        expected: String,
        /// The digest of the bytes read.
        actual: String,
    },
    /// The file is not an ELF file at all.
    NotElf,
    /// The file starts like an ELF file but cannot be parsed.
    MalformedElf {
        /// What goblin said.
        reason: String,
    },
    /// The library is built for another machine.
    WrongArchitecture {
        /// Its `e_machine`.
        found: String,
        /// The host's.
        expected: String,
    },
    /// The file is a (PIE) executable, not a shared library.
    Executable,
    /// The file is an ELF object of another kind (relocatable, core dump).
    NotSharedObject {
        /// Its `e_type`.
        elf_type: String,
    },
    /// A shared library that does not export the plugin root module.
    NotAPlugin,
    /// Copying the verified bytes into a sealed memfd failed.
    Memfd {
        /// The OS error.
        source: std::io::Error,
    },
    /// The installed file, loaded in place, changed while it was loaded
    /// (someone cleared its immutable flag and wrote it meanwhile).
    ChangedWhileLoading,
    /// The dynamic loader refused the library.
    Dlopen {
        /// What the dynamic loader said.
        reason: String,
    },
    /// The library was built with an incompatible abi_stable.
    AbiStable {
        /// The details.
        reason: String,
    },
    /// The plugin-api versions of the plugin and the runtime do not match.
    ApiVersion {
        /// The version the plugin declares.
        plugin_api: String,
        /// The runtime's version.
        runtime_api: String,
    },
    /// abi_stable found a type layout that differs from the runtime's.
    Layout {
        /// First line of abi_stable's report (the full report is logged at
        /// debug level).
        summary: String,
    },
    /// Building the plugin's root module or its `init` failed.
    Init {
        /// Why (the plugin's message).
        reason: String,
    },
    /// The plugin's manifest entry point failed.
    Manifest {
        /// Why (the plugin's message).
        reason: String,
    },
    /// The library calls itself by another name than the one it was
    /// installed as.
    NameMismatch {
        /// The name in its manifest.
        declared: String,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use LoadErrorKind as K;
        let (plugin, path) = (&self.plugin, self.path.display());
        write!(f, "plugin {plugin:?}: ")?;
        match &self.kind {
            K::Missing => write!(f, "{path} does not exist"),
            K::Read { .. } => write!(f, "cannot read {path}"),
            K::NotRegularFile => write!(f, "{path} is not a regular file"),
            K::OutsidePluginRoot { root } => write!(
                f,
                "{path} is outside the plugin directory {}",
                root.display()
            ),
            K::NotRootOwned { uid } => write!(f, "{path} is owned by uid {uid}, not root"),
            K::GroupWritable => write!(f, "{path} is group-writable"),
            K::WorldWritable => write!(f, "{path} is world-writable"),
            K::DirNotRootOwned { dir, uid } => write!(
                f,
                "directory {} is owned by uid {uid}, not root",
                dir.display()
            ),
            K::DirWritable { dir, who } => {
                write!(f, "directory {} is {who}-writable", dir.display())
            }
            K::DigestMismatch { expected, actual } => {
                write!(f, "sha256 of {path} is {actual}, expected {expected}")
            }
            K::NotElf => write!(f, "{path} is not an ELF file"),
            K::MalformedElf { reason } => write!(f, "{path} is a malformed ELF file: {reason}"),
            K::WrongArchitecture { found, expected } => {
                write!(f, "{path} is built for {found}, this host is {expected}")
            }
            K::Executable => write!(f, "{path} is an executable, not a shared library"),
            K::NotSharedObject { elf_type } => {
                write!(f, "{path} is an ELF {elf_type} file, not a shared library")
            }
            K::NotAPlugin => write!(
                f,
                "{path} is not a vessel plugin (it does not export the plugin root module)"
            ),
            K::Memfd { .. } => write!(f, "cannot stage the verified library in memory"),
            K::ChangedWhileLoading => write!(
                f,
                "{path} changed while it was loaded (its immutable flag was cleared): refusing it"
            ),
            K::Dlopen { reason } => write!(f, "dlopen failed: {reason}"),
            K::AbiStable { reason } => write!(f, "built with an incompatible abi_stable: {reason}"),
            K::ApiVersion {
                plugin_api,
                runtime_api,
            } => write!(
                f,
                "built against plugin-api {plugin_api}, which this runtime (plugin-api {runtime_api}) cannot load"
            ),
            K::Layout { summary } => write!(
                f,
                "its root module layout is incompatible with this runtime: {summary}"
            ),
            K::Init { reason } => write!(f, "initialisation failed: {reason}"),
            K::Manifest { reason } => write!(f, "cannot read its manifest: {reason}"),
            K::NameMismatch { declared } => write!(f, "the library says it is {declared:?}"),
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            LoadErrorKind::Read { source } | LoadErrorKind::Memfd { source } => Some(source),
            _ => None,
        }
    }
}
