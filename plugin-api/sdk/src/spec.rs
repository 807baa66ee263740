//! Specs of the commands and flags a plugin adds to the command line.

use crate::abi;

/// A top-level command spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub(crate) name: String,
    about: String,
    args: Vec<Arg>,
    flags: Vec<Flag>,
}

impl Command {
    /// A command called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            about: String::new(),
            args: Vec::new(),
            flags: Vec::new(),
        }
    }
    /// One-line help.
    pub fn about(mut self, about: impl Into<String>) -> Self {
        self.about = about.into();
        self
    }
    /// Adds a positional argument.
    pub fn arg(mut self, arg: Arg) -> Self {
        self.args.push(arg);
        self
    }
    /// Adds a flag.
    pub fn flag(mut self, flag: Flag) -> Self {
        self.flags.push(flag);
        self
    }
    /// The declared positional arguments, in order.
    pub(crate) fn args(&self) -> &[Arg] {
        &self.args
    }
    pub(crate) fn to_abi(&self) -> abi::CommandSpec {
        abi::CommandSpec {
            name: self.name.as_str().into(),
            about: self.about.as_str().into(),
            args: self.args.iter().map(Arg::to_abi).collect(),
            flags: self.flags.iter().map(Flag::to_abi).collect(),
        }
    }
}

/// A positional argument spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    pub(crate) name: String,
    help: String,
    required: bool,
    pub(crate) multiple: bool,
}

impl Arg {
    /// An optional single argument shown as `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            help: String::new(),
            required: false,
            multiple: false,
        }
    }
    /// Help text.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = help.into();
        self
    }
    /// Must be given.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
    /// Takes all remaining values.
    pub fn multiple(mut self) -> Self {
        self.multiple = true;
        self
    }
    fn to_abi(&self) -> abi::ArgSpec {
        abi::ArgSpec {
            name: self.name.as_str().into(),
            help: self.help.as_str().into(),
            required: self.required,
            multiple: self.multiple,
        }
    }
}

/// A flag spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub(crate) name: String,
    short: Option<char>,
    help: String,
    takes_value: bool,
}

impl Flag {
    /// A switch `--name`.
    pub fn switch(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            short: None,
            help: String::new(),
            takes_value: false,
        }
    }
    /// A flag with a value, `--name VALUE`.
    pub fn value(name: impl Into<String>) -> Self {
        Self {
            takes_value: true,
            ..Self::switch(name)
        }
    }
    /// Short name `-c`.
    pub fn short(mut self, c: char) -> Self {
        self.short = Some(c);
        self
    }
    /// Help text.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = help.into();
        self
    }
    pub(crate) fn to_abi(&self) -> abi::FlagSpec {
        abi::FlagSpec {
            name: self.name.as_str().into(),
            short: self.short.map(u32::from).into(),
            help: self.help.as_str().into(),
            takes_value: self.takes_value,
        }
    }
}
