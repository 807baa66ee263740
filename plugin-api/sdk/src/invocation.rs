//! What an EngineConfig callback learns about the invocation that starts
//! the container (plugin-api 1.2), in plain Rust types.

use std::path::PathBuf;

use crate::abi::{ContainerSetupMut, FlagValue};

/// The built-in command starting the container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum ContainerCommand {
    /// `vessel exec IMAGE COMMAND...`
    #[default]
    Exec,
    /// `vessel run IMAGE [ARGS...]`
    Run,
    /// `vessel shell IMAGE`
    Shell,
    /// A command a later runtime added.
    Other(String),
}

impl ContainerCommand {
    /// The command's name, e.g. `exec`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Exec => "exec",
            Self::Run => "run",
            Self::Shell => "shell",
            Self::Other(s) => s,
        }
    }

    /// The command called `name`.
    pub fn from_name(name: &str) -> Self {
        match name {
            "exec" => Self::Exec,
            "run" => Self::Run,
            "shell" => Self::Shell,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl std::fmt::Display for ContainerCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the image is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum ImageKind {
    /// A sandbox directory.
    #[default]
    Sandbox,
    /// A SIF file.
    Sif,
    /// A kind a later runtime added.
    Other(String),
}

impl ImageKind {
    /// The kind called `name` (`sandbox`, `sif`).
    pub fn from_name(name: &str) -> Self {
        match name {
            "sandbox" => Self::Sandbox,
            "sif" => Self::Sif,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// The invocation that starts the container, as the user typed it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerInvocation {
    /// `exec`, `run` or `shell`.
    pub command: ContainerCommand,
    /// The image path as given.
    pub image: PathBuf,
    /// What the image is.
    pub image_kind: ImageKind,
    /// The container command and its arguments.
    pub args: Vec<String>,
    /// Real uid of the caller.
    pub uid: u32,
    /// Real gid of the caller.
    pub gid: u32,
    /// `--fakeroot` was given.
    pub fakeroot: bool,
    /// `--contain` was given (the config's `contain()` is the current
    /// value, which plugins may have changed).
    pub contain: bool,
    /// The flags this plugin added to the command that were given: name
    /// and value (none for a switch).
    pub flags: Vec<(String, Option<String>)>,
}

impl ContainerInvocation {
    /// The value of this plugin's flag `--name`, if given with a value.
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rfind(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// True when this plugin's flag or switch `--name` was given.
    pub fn is_set(&self, name: &str) -> bool {
        self.flags.iter().any(|(n, _)| n == name)
    }

    /// True when the caller is root (uid 0).
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    pub(crate) fn from_abi(s: &ContainerSetupMut<'_>) -> Self {
        Self {
            command: ContainerCommand::from_name(s.command().as_str()),
            image: PathBuf::from(s.image().into_string()),
            image_kind: ImageKind::from_name(s.image_kind().as_str()),
            args: s.args().into_iter().map(|a| a.into_string()).collect(),
            uid: s.uid(),
            gid: s.gid(),
            fakeroot: s.fakeroot(),
            contain: s.contain(),
            flags: s.flags().iter().map(flag_from_abi).collect(),
        }
    }
}

fn flag_from_abi(f: &FlagValue) -> (String, Option<String>) {
    (
        f.name.to_string(),
        f.value.as_ref().map(|v| v.to_string()).into_option(),
    )
}

/// A host device node shown in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The character or block device on the host.
    pub source: PathBuf,
    /// Its path in the container, under `/dev`.
    pub destination: PathBuf,
}
