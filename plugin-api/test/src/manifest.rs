//! What a plugin says about itself, in plain Rust types: the manifest the
//! runtime reads from the library at `plugin compile`.

use vessel_plugin_abi as abi;
use vessel_plugin_api::Plugin;

/// The plugin's manifest as the runtime reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Plugin name.
    pub name: String,
    /// Author.
    pub author: String,
    /// Plugin version.
    pub version: String,
    /// One-line description.
    pub description: String,
    /// The plugin-api version the plugin is built against.
    pub api_version: String,
    /// Top-level commands it adds.
    pub commands: Vec<CommandInfo>,
    /// Flags it adds to built-in commands.
    pub flags: Vec<AddedFlag>,
    /// It has a global pre-run hook.
    pub global_pre_run: bool,
}

/// A command the plugin adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandInfo {
    /// Command name.
    pub name: String,
    /// One-line help.
    pub about: String,
    /// Positional arguments, in order.
    pub args: Vec<ArgInfo>,
    /// Flags of the command.
    pub flags: Vec<FlagInfo>,
}

/// A positional argument of a plugin command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgInfo {
    /// Value name.
    pub name: String,
    /// Help text.
    pub help: String,
    /// Must be given.
    pub required: bool,
    /// Takes all remaining values.
    pub multiple: bool,
}

/// A flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagInfo {
    /// Long name without dashes.
    pub name: String,
    /// Short name.
    pub short: Option<char>,
    /// Help text.
    pub help: String,
    /// Takes a value.
    pub takes_value: bool,
}

/// A flag the plugin adds to a built-in command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedFlag {
    /// The built-in command.
    pub command: String,
    /// The flag.
    pub flag: FlagInfo,
}

fn flag(f: &abi::FlagSpec) -> FlagInfo {
    FlagInfo {
        name: f.name.to_string(),
        short: f.short.into_option().and_then(char::from_u32),
        help: f.help.to_string(),
        takes_value: f.takes_value,
    }
}

/// The manifest `plugin` exports.
pub fn manifest(plugin: &Plugin) -> Manifest {
    let m = plugin.abi_manifest();
    Manifest {
        name: m.name.into_string(),
        author: m.author.into_string(),
        version: m.version.into_string(),
        description: m.description.into_string(),
        api_version: m.api_version.into_string(),
        commands: m
            .commands
            .iter()
            .map(|c| CommandInfo {
                name: c.name.to_string(),
                about: c.about.to_string(),
                args: c
                    .args
                    .iter()
                    .map(|a| ArgInfo {
                        name: a.name.to_string(),
                        help: a.help.to_string(),
                        required: a.required,
                        multiple: a.multiple,
                    })
                    .collect(),
                flags: c.flags.iter().map(flag).collect(),
            })
            .collect(),
        flags: m
            .flags
            .iter()
            .map(|f| AddedFlag {
                command: f.command.to_string(),
                flag: flag(&f.flag),
            })
            .collect(),
        global_pre_run: m.global_pre_run,
    }
}
