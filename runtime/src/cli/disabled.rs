//! Naming the disabled plugin behind a word the command line does not know:
//! `vessel gpu` or `vessel exec --gpu` when the plugin that adds `gpu` is
//! installed but disabled, and an image driver that only a disabled plugin
//! could have registered. Only installed metas are read, never a library.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use vessel::image::ImageError;
use vessel::plugin::manifest::CallbackKind;
use vessel::plugin::store::Meta;

/// A word of the command line, or an image driver, that a disabled plugin
/// would provide.
#[derive(Debug, thiserror::Error)]
pub enum DisabledError {
    /// A command or flag a disabled plugin adds.
    #[error(
        "{what} comes from plugin \"{plugin}\", which is disabled \
         (enable it with: vessel plugin enable {plugin})"
    )]
    Provides {
        /// `command "gpu"` or `flag --gpu of command "exec"`.
        what: String,
        /// The disabled plugin.
        plugin: String,
    },
    /// The configured image driver is not registered, and disabled plugins
    /// register image drivers. Drivers register at run time, so their names
    /// are not in the metas: these plugins are the likely source.
    #[error(
        "{source}; it likely comes from {plugins}, which {verb} disabled and \
         {registers} image drivers (enable it with: vessel plugin enable {hint})"
    )]
    Driver {
        /// The registry's error.
        #[source]
        source: ImageError,
        /// `plugin "a"` or `plugin "a" or plugin "b"`.
        plugins: String,
        /// "is" or "are".
        verb: &'static str,
        /// "registers" or "register".
        registers: &'static str,
        /// The plugin name, or `NAME` when there are several.
        hint: String,
    },
}

fn disabled(metas: &[Meta]) -> impl Iterator<Item = &Meta> {
    metas.iter().filter(|m| !m.enabled)
}

fn context_string(e: &clap::Error, kind: ContextKind) -> Option<&str> {
    match e.get(kind)? {
        ContextValue::String(s) => Some(s),
        _ => None,
    }
}

/// When clap refused an unknown command or flag that a disabled plugin adds,
/// the error naming that plugin. `argv` is the words after the program name.
pub fn explain_parse_error(
    e: &clap::Error,
    metas: &[Meta],
    argv: &[String],
) -> Option<DisabledError> {
    match e.kind() {
        ErrorKind::InvalidSubcommand => {
            let name = context_string(e, ContextKind::InvalidSubcommand)?;
            let meta =
                disabled(metas).find(|m| m.manifest.commands.iter().any(|c| c.name == name))?;
            Some(DisabledError::Provides {
                what: format!("command \"{name}\""),
                plugin: meta.manifest.name.clone(),
            })
        }
        ErrorKind::UnknownArgument => {
            let word = context_string(e, ContextKind::InvalidArg)?;
            let word = word.split_once('=').map_or(word, |(w, _)| w);
            // The built-in command: the first word that is not a flag (the
            // global flags before it take no value).
            let command = argv.iter().find(|a| !a.starts_with('-'))?;
            let matches = |f: &vessel::plugin::manifest::FlagSpec| match word.strip_prefix("--") {
                Some(long) => f.name == long,
                None => {
                    let mut short = word.strip_prefix('-').unwrap_or_default().chars();
                    matches!((short.next(), short.next()), (Some(c), None) if f.short == Some(c))
                }
            };
            disabled(metas).find_map(|m| {
                let af = m
                    .manifest
                    .flags
                    .iter()
                    .find(|af| &af.command == command && matches(&af.flag))?;
                Some(DisabledError::Provides {
                    what: format!("flag --{} of command \"{command}\"", af.flag.name),
                    plugin: m.manifest.name.clone(),
                })
            })
        }
        _ => None,
    }
}

/// When the configured image driver is not registered and disabled plugins
/// register image drivers, an error naming them as its likely source; any
/// other error is given back unchanged.
pub fn explain_driver_error(
    e: vessel::Error,
    metas: &[Meta],
) -> Result<DisabledError, vessel::Error> {
    let vessel::Error::Image(source @ ImageError::UnknownDriver { .. }) = e else {
        return Err(e);
    };
    let names: Vec<&str> = disabled(metas)
        .filter(|m| {
            m.manifest
                .callbacks
                .contains(&CallbackKind::RegisterImageDriver)
        })
        .map(|m| m.manifest.name.as_str())
        .collect();
    let one = names.len() == 1;
    let Some(first) = names.first() else {
        return Err(source.into());
    };
    Ok(DisabledError::Driver {
        plugins: names
            .iter()
            .map(|n| format!("plugin \"{n}\""))
            .collect::<Vec<_>>()
            .join(" or "),
        verb: if one { "is" } else { "are" },
        registers: if one { "registers" } else { "register" },
        hint: if one {
            (*first).to_owned()
        } else {
            "NAME".to_owned()
        },
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::dynamic::build_command;
    use vessel::plugin::manifest::Manifest;
    use vessel::plugin::store::new_meta;

    fn gpu(enabled: bool) -> Meta {
        let manifest: Manifest = serde_json::from_value(serde_json::json!({
            "name": "acme.org/gpu",
            "api_version": "1.1.0",
            "sha256": "",
            "callbacks": ["command", "register_image_driver"],
            "commands": [{"name": "gpu", "about": "gpus"}],
            "flags": [{"command": "exec", "flag": {"name": "gpu", "short": "g"}}]
        }))
        .expect("test manifest");
        new_meta(manifest, enabled, None)
    }

    fn explain(metas: &[Meta], args: &[&str]) -> Option<String> {
        let e = build_command(metas)
            .try_get_matches_from(std::iter::once("vessel").chain(args.iter().copied()))
            .expect_err("does not parse");
        let argv: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        explain_parse_error(&e, metas, &argv).map(|d| d.to_string())
    }

    #[test]
    fn a_disabled_plugins_command_and_flags_are_named() {
        let off = [gpu(false)];
        let hint = "comes from plugin \"acme.org/gpu\", which is disabled \
                    (enable it with: vessel plugin enable acme.org/gpu)";
        assert_eq!(
            explain(&off, &["gpu"]),
            Some(format!("command \"gpu\" {hint}"))
        );
        for args in [
            &["exec", "--gpu", "img", "true"][..],
            &["-q", "exec", "-g", "img"],
            &["exec", "--gpu=1", "img"],
        ] {
            assert_eq!(
                explain(&off, args),
                Some(format!("flag --gpu of command \"exec\" {hint}")),
                "{args:?}"
            );
        }
        // Not the plugin's: clap's own error stands.
        assert_eq!(explain(&off, &["gpux"]), None);
        assert_eq!(explain(&off, &["run", "--gpu", "img"]), None);
        assert_eq!(explain(&off, &["exec", "--gpus", "img"]), None);
        assert_eq!(explain(&[], &["gpu"]), None);
    }

    #[test]
    fn an_unknown_driver_names_disabled_driver_plugins() {
        let err = || {
            vessel::Error::Image(ImageError::UnknownDriver {
                name: "fuse".into(),
                known: "squashfs, extract".into(),
            })
        };
        let text = explain_driver_error(err(), &[gpu(false)])
            .expect("named")
            .to_string();
        assert_eq!(
            text,
            "image driver \"fuse\" is not registered (known: squashfs, extract); it likely comes \
             from plugin \"acme.org/gpu\", which is disabled and registers image drivers \
             (enable it with: vessel plugin enable acme.org/gpu)"
        );
        assert!(explain_driver_error(err(), &[gpu(true)]).is_err());
        let other = vessel::Error::Image(ImageError::DuplicateDriver("x".into()));
        assert!(explain_driver_error(other, &[gpu(false)]).is_err());
    }
}
