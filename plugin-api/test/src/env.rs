//! The container environment as the runtime builds it, for
//! [`FakeEngineConfig`](crate::FakeEngineConfig): Apptainer's precedence,
//! as in the runtime's `engine::env` (this crate cannot link the runtime).
//! `PATH` is never the host's; `--cleanenv` keeps only `TERM`, the proxy
//! variables and `LANG=C`; `SINGULARITYENV_`, `APPTAINERENV_` then
//! `VESSELENV_` host variables are injected without their prefix; their
//! `*_PREPEND_PATH` / `*_APPEND_PATH` edit `PATH` after every other change
//! (a plugin's too); `$NAME` / `${NAME}` in a value a plugin sets expand
//! against the environment so far, `\$` is a literal dollar.

use std::collections::BTreeMap;

/// The container's default `PATH` (Apptainer's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const PROXY_VARS: [&str; 10] = [
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "ftp_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "FTP_PROXY",
];

const PREFIXES: [&str; 3] = ["SINGULARITYENV_", "APPTAINERENV_", "VESSELENV_"];

/// `PATH` edits the runtime applies last.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathEdits {
    /// Directory lists put in front of `PATH`, in order.
    pub prepend: Vec<String>,
    /// Directory lists put after `PATH`, in order.
    pub append: Vec<String>,
}

/// The environment a container starts with from host environment `host`,
/// and the `PATH` edits to apply after every change.
pub(crate) fn initial<'a>(
    host: impl IntoIterator<Item = (&'a str, &'a str)>,
    cleanenv: bool,
) -> (BTreeMap<String, String>, PathEdits) {
    let host: Vec<(&str, &str)> = host.into_iter().collect();
    let mut env: BTreeMap<String, String> = host
        .iter()
        .filter(|(k, _)| {
            if cleanenv {
                *k == "TERM" || PROXY_VARS.contains(k)
            } else {
                *k != "PATH" && !PREFIXES.iter().any(|p| k.starts_with(p))
            }
        })
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if cleanenv {
        env.insert("LANG".into(), "C".into());
    }
    env.insert("PATH".into(), DEFAULT_PATH.into());
    let mut edits = PathEdits::default();
    for prefix in PREFIXES {
        let mut vars: Vec<(&str, &str)> = host
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?, *v)))
            .filter(|(k, _)| !k.is_empty())
            .collect();
        vars.sort();
        for (k, v) in vars {
            match k {
                "PREPEND_PATH" => edits.prepend.push(v.to_owned()),
                "APPEND_PATH" => edits.append.push(v.to_owned()),
                _ => {
                    env.insert(k.to_owned(), v.to_owned());
                }
            }
        }
    }
    (env, edits)
}

/// `env` with the `PATH` edits applied: what the container sees.
pub(crate) fn effective(
    env: &BTreeMap<String, String>,
    edits: &PathEdits,
) -> BTreeMap<String, String> {
    let mut env = env.clone();
    let mut path = env.get("PATH").cloned();
    for p in &edits.prepend {
        path = Some(match path {
            Some(old) if !old.is_empty() => format!("{p}:{old}"),
            _ => p.clone(),
        });
    }
    for p in &edits.append {
        path = Some(match path {
            Some(old) if !old.is_empty() => format!("{old}:{p}"),
            _ => p.clone(),
        });
    }
    if let Some(path) = path {
        env.insert("PATH".into(), path);
    }
    env
}

/// `value` with `$NAME` and `${NAME}` replaced by their values in `env`
/// (empty when unset); `\$` is a literal dollar, a lone `$` stays.
pub(crate) fn expand(value: &str, env: &BTreeMap<String, String>) -> String {
    let ident = |s: &str| {
        let mut cs = s.chars();
        matches!(cs.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
            && cs.all(|c| c == '_' || c.is_ascii_alphanumeric())
    };
    let mut out = String::new();
    let mut rest = value;
    while let Some(c) = rest.chars().next() {
        if let Some(r) = rest.strip_prefix("\\$") {
            out.push('$');
            rest = r;
            continue;
        }
        if c == '$' {
            let after = &rest[1..];
            let (name, consumed) = match after.strip_prefix('{') {
                Some(inner) => match inner.find('}') {
                    Some(end) if ident(&inner[..end]) => (&inner[..end], end + 2),
                    _ => ("", 0),
                },
                None => {
                    let end = after
                        .char_indices()
                        .find(|&(i, ch)| {
                            !(ch == '_' || ch.is_ascii_alphanumeric())
                                || (i == 0 && ch.is_ascii_digit())
                        })
                        .map_or(after.len(), |(i, _)| i);
                    (&after[..end], end)
                }
            };
            if !name.is_empty() {
                out.push_str(env.get(name).map_or("", String::as_str));
                rest = &after[consumed..];
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_path_is_never_copied_and_prefixed_variables_are_injected() {
        let host = [
            ("PATH", "/host/bin"),
            ("HOME", "/home/ann"),
            ("APPTAINERENV_X", "a"),
            ("VESSELENV_X", "v"),
            ("VESSELENV_PREPEND_PATH", "/pre"),
            ("SINGULARITYENV_APPEND_PATH", "/post"),
        ];
        let (env, edits) = initial(host, false);
        assert_eq!(env["PATH"], DEFAULT_PATH);
        assert_eq!(env["X"], "v");
        assert_eq!(env["HOME"], "/home/ann");
        assert!(!env.contains_key("VESSELENV_X"));
        assert_eq!(
            effective(&env, &edits)["PATH"],
            format!("/pre:{DEFAULT_PATH}:/post")
        );
    }

    #[test]
    fn cleanenv_keeps_term_proxies_and_sets_lang() {
        let host = [
            ("TERM", "xterm"),
            ("HOME", "/h"),
            ("https_proxy", "p"),
            ("X", "1"),
        ];
        let (env, _) = initial(host, true);
        let keys: Vec<&str> = env.keys().map(String::as_str).collect();
        assert_eq!(keys, ["LANG", "PATH", "TERM", "https_proxy"]);
        assert_eq!(env["LANG"], "C");
    }

    #[test]
    fn references_expand_like_the_runtime() {
        let env = BTreeMap::from([("A".to_owned(), "1".to_owned())]);
        assert_eq!(expand("$A:${A}:$B:\\$A:$:${1}", &env), "1:1::$A:$:${1}");
    }
}
