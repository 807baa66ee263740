//! `plugin.manifest`: the JSON object stored in a plugin image (and beside the
//! installed library) describing what the plugin is and what it can do.
//! `plugin compile` generates it by loading the built library; `install`,
//! `list`, `inspect` and the CLI read it without opening the library.

use serde::{Deserialize, Serialize};

use vessel_plugin_abi::CallbackEntries;

macro_rules! define_callback_kind {
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
        /// The callback kinds a plugin can register, in ABI order (from
        /// [`vessel_plugin_abi::callback_table!`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum CallbackKind {
            $(
                $(#[doc = $kdoc])*
                #[serde(rename = $name)]
                $kind,
            )*
        }

        const KIND_COUNT: usize = [$($name),*].len();

        impl CallbackKind {
            /// Every kind, in ABI order.
            pub const ALL: [CallbackKind; KIND_COUNT] = [$(CallbackKind::$kind),*];

            /// The name used in manifests, `--callback` and listings.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(CallbackKind::$kind => $name,)*
                }
            }

            /// What a plugin with this callback can do, in plain words (shown at install).
            pub fn describe(self) -> &'static str {
                match self {
                    $(CallbackKind::$kind => $discloses,)*
                }
            }

            /// The kinds whose entry points a loaded root module has, in ABI order.
            pub fn of(entries: &CallbackEntries) -> Vec<CallbackKind> {
                let mut kinds = Vec::new();
                $(
                    if false $(|| entries.$entry.is_some())* {
                        kinds.push(CallbackKind::$kind);
                    }
                )*
                // Entry points appended later belong to a kind above.
                $(
                    if entries.$aentry.is_some() && !kinds.contains(&CallbackKind::$akind) {
                        kinds.push(CallbackKind::$akind);
                    }
                )*
                kinds.sort();
                kinds
            }
        }
    };
}

vessel_plugin_abi::callback_table!(define_callback_kind);

/// A positional argument of a plugin command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArgSpec {
    /// Value name shown in help.
    pub name: String,
    /// Help text.
    #[serde(default)]
    pub help: String,
    /// Must be given.
    #[serde(default)]
    pub required: bool,
    /// Takes all remaining values.
    #[serde(default)]
    pub multiple: bool,
}

/// A flag, either on a plugin command or added to an existing command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagSpec {
    /// Long name without dashes.
    pub name: String,
    /// Optional short name.
    #[serde(default)]
    pub short: Option<char>,
    /// Help text.
    #[serde(default)]
    pub help: String,
    /// Takes a value (`--name VALUE`) rather than being a switch.
    #[serde(default)]
    pub takes_value: bool,
}

/// A top-level command a plugin adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandSpec {
    /// Command name.
    pub name: String,
    /// One-line help.
    #[serde(default)]
    pub about: String,
    /// Positional arguments, in order.
    #[serde(default)]
    pub args: Vec<ArgSpec>,
    /// Flags of the command.
    #[serde(default)]
    pub flags: Vec<FlagSpec>,
}

/// A flag a plugin adds to an existing (built-in) command, with a pre-run hook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddedFlagSpec {
    /// The built-in command it is added to, e.g. `version` or `verify`.
    pub command: String,
    /// The flag.
    pub flag: FlagSpec,
}

/// The contents of `plugin.manifest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Plugin name, a clean relative path such as `example.com/cli-plugin`.
    pub name: String,
    /// Author.
    #[serde(default)]
    pub author: String,
    /// Plugin version.
    #[serde(default)]
    pub version: String,
    /// One-line description.
    #[serde(default)]
    pub description: String,
    /// The plugin-api version it was built against (semver `MAJOR.MINOR.PATCH`).
    pub api_version: String,
    /// The vessel version that compiled it.
    #[serde(default)]
    pub runtime_version: String,
    /// `rustc --version` of the build.
    #[serde(default)]
    pub rustc_version: String,
    /// Target triple of the build.
    #[serde(default)]
    pub target: String,
    /// Registered callback kinds, in ABI order.
    #[serde(default)]
    pub callbacks: Vec<CallbackKind>,
    /// Top-level commands it adds.
    #[serde(default)]
    pub commands: Vec<CommandSpec>,
    /// Flags it adds to built-in commands.
    #[serde(default)]
    pub flags: Vec<AddedFlagSpec>,
    /// It registered a global pre-run hook (runs before every command but `plugin ...`).
    #[serde(default)]
    pub global_pre_run: bool,
    /// Lowercase hex sha256 of `plugin.so`.
    pub sha256: String,
    /// What the plugin was built from, recorded by `plugin compile` (none in
    /// a library's description of itself, or in images of older vessels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<crate::plugin::build::provenance::Provenance>,
}

impl Manifest {
    /// True when the plugin registered this callback kind.
    pub fn has(&self, kind: CallbackKind) -> bool {
        self.callbacks.contains(&kind)
    }
}
