//! What a plugin gets, item by item, from its manifest alone: the words
//! install, upgrade and `inspect` show an admin (and `--json` carries).
//! Commands, flags and the global pre-run hook are listed one by one from
//! the manifest; every other callback kind by its disclosure text from the
//! callback table ([`CallbackKind::describe`]).

use serde::Serialize;
use vessel_sif::text::inert;

use super::manifest::{CallbackKind, Manifest};

/// The words for a global pre-run hook: it sees everything.
pub const GLOBAL_PRE_RUN: &str =
    "runs before every vessel command, sees every user's arguments, may abort them";

/// One thing a plugin is able to do.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Capability {
    /// `command`, `flag`, `global_pre_run`, or a callback kind's name.
    pub kind: &'static str,
    /// The command or flag it concerns, for `command` and `flag`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The sentence shown (plugin-supplied parts made inert).
    pub text: String,
}

/// Everything `m` discloses, in a fixed order: commands, flags, the global
/// pre-run hook, then the runtime callbacks in ABI order.
pub fn capabilities(m: &Manifest) -> Vec<Capability> {
    let mut caps = Vec::new();
    for c in &m.commands {
        let mut text = format!("adds the command \"vessel {}\"", inert(&c.name));
        if !c.flags.is_empty() {
            let f: Vec<_> = c
                .flags
                .iter()
                .map(|f| format!("--{}", inert(&f.name)))
                .collect();
            text.push_str(&format!(" (flags {})", f.join(", ")));
        }
        if !c.about.is_empty() {
            text.push_str(&format!(": {}", inert(&c.about)));
        }
        caps.push(Capability {
            kind: "command",
            name: Some(c.name.clone()),
            text,
        });
    }
    for f in &m.flags {
        caps.push(Capability {
            kind: "flag",
            name: Some(format!("{} --{}", f.command, f.flag.name)),
            text: format!(
                "adds the flag --{} to the built-in \"vessel {}\"; its hook runs before that command when the flag is given and may abort it",
                inert(&f.flag.name),
                inert(&f.command)
            ),
        });
    }
    if m.global_pre_run {
        caps.push(Capability {
            kind: "global_pre_run",
            name: None,
            text: format!("global pre-run hook: {GLOBAL_PRE_RUN}"),
        });
    }
    let command_items = !m.commands.is_empty() || !m.flags.is_empty() || m.global_pre_run;
    for &kind in &m.callbacks {
        // The command kind is disclosed by its items; on its own (nothing
        // registered yet) by its generic words.
        if kind == CallbackKind::Command && command_items {
            continue;
        }
        caps.push(Capability {
            kind: kind.as_str(),
            name: None,
            text: kind.describe().to_owned(),
        });
    }
    caps
}

/// What an upgrade from `old` to `new` changes in what the plugin gets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CapabilityDiff {
    /// Capabilities only the new version has.
    pub added: Vec<Capability>,
    /// Capabilities only the old version had.
    pub removed: Vec<Capability>,
}

/// The capabilities added and removed from `old` to `new`.
pub fn diff(old: &Manifest, new: &Manifest) -> CapabilityDiff {
    let (o, n) = (capabilities(old), capabilities(new));
    CapabilityDiff {
        added: n.iter().filter(|c| !o.contains(c)).cloned().collect(),
        removed: o.iter().filter(|c| !n.contains(c)).cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::manifest::{AddedFlagSpec, FlagSpec};

    fn manifest() -> Manifest {
        serde_json::from_value(serde_json::json!({
            "name": "t", "api_version": "1.0.0", "sha256": "00", "version": "0.1.0",
        }))
        .unwrap()
    }

    #[test]
    fn a_global_pre_run_hook_alone_is_called_out_not_described_as_commands() {
        let mut m = manifest();
        m.callbacks = vec![CallbackKind::Command];
        m.global_pre_run = true;
        let caps = capabilities(&m);
        assert_eq!(caps.len(), 1, "{caps:?}");
        assert_eq!(caps[0].kind, "global_pre_run");
        assert!(caps[0].text.contains(GLOBAL_PRE_RUN));
    }

    #[test]
    fn flags_name_their_command_and_diffs_show_what_changed() {
        let old = manifest();
        let mut new = manifest();
        new.callbacks = vec![CallbackKind::Command, CallbackKind::EngineConfig];
        new.flags = vec![AddedFlagSpec {
            command: "version".into(),
            flag: FlagSpec {
                name: "x".into(),
                short: None,
                help: String::new(),
                takes_value: false,
            },
        }];
        let d = diff(&old, &new);
        assert!(d.removed.is_empty());
        let kinds: Vec<_> = d.added.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, ["flag", "engine_config"]);
        assert!(d.added[0]
            .text
            .contains("--x to the built-in \"vessel version\""));
        assert_eq!(diff(&new, &old).removed.len(), 2);
    }
}
