//! The container's environment, with Apptainer's precedence.
//!
//! Lowest to highest: the container default `PATH` plus the host
//! environment (or, with `--cleanenv`, only `TERM`, `HOME`, `LANG=C` and the
//! proxy variables); the image's `/.singularity.d/env/*.sh` scripts; the
//! `SINGULARITYENV_*`, `APPTAINERENV_*` then `VESSELENV_*` host variables;
//! `--env-file`; `--env` (and plugin changes). `PATH` is never copied from
//! the host. The `*_PREPEND_PATH` / `*_APPEND_PATH` variables edit the final
//! `PATH`.
//!
//! The result is a [`Plan`]: a base environment the command (or the image's
//! shell) is started with, and the [`Step`]s that follow the image's
//! scripts. Without scripts to run the steps are evaluated here
//! ([`Plan::evaluate`]); with them, they are rendered as a shell script the
//! image's `/bin/sh` runs after sourcing the scripts ([`Plan::script`]), so
//! a `$VAR` in an `--env` value sees what the image set, as in Apptainer.

use std::path::{Path, PathBuf};

use super::config::{EngineConfig, EnvOp};
use super::EngineError;

/// The container's default `PATH` (Apptainer's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Proxy variables that pass even with `--cleanenv`.
pub const PROXY_VARS: [&str; 10] = [
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

/// Host prefixes whose variables are injected without the prefix, lowest
/// precedence first (so `VESSELENV_X` wins over `APPTAINERENV_X`).
pub const PREFIXES: [&str; 3] = ["SINGULARITYENV_", "APPTAINERENV_", "VESSELENV_"];

/// Where the image keeps its environment scripts.
pub const IMAGE_ENV_DIR: &str = "/.singularity.d/env";

/// One piece of a value: literal text or a `$NAME` / `${NAME}` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text as is.
    Lit(String),
    /// The value of a variable (empty when unset).
    Var(String),
}

/// Splits a value into literal text and variable references: `$NAME` and
/// `${NAME}` refer to a variable, `\$` is a literal dollar, anything else
/// (a lone `$`, `$(`) is literal text.
pub fn parse_value(v: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut rest = v;
    while let Some(c) = rest.chars().next() {
        if let Some(r) = rest.strip_prefix("\\$") {
            lit.push('$');
            rest = r;
            continue;
        }
        if c == '$' {
            let after = &rest[1..];
            let (name, consumed) = if let Some(inner) = after.strip_prefix('{') {
                match inner.find('}') {
                    Some(end) if is_identifier(&inner[..end]) => (&inner[..end], end + 2),
                    _ => ("", 0),
                }
            } else {
                let end = after
                    .char_indices()
                    .find(|&(i, ch)| {
                        !(ch == '_' || ch.is_ascii_alphanumeric())
                            || (i == 0 && ch.is_ascii_digit())
                    })
                    .map_or(after.len(), |(i, _)| i);
                (&after[..end], end)
            };
            if !name.is_empty() {
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit)));
                }
                parts.push(Part::Var(name.to_owned()));
                rest = &after[consumed..];
                continue;
            }
        }
        lit.push(c);
        rest = &rest[c.len_utf8()..];
    }
    if !lit.is_empty() {
        parts.push(Part::Lit(lit));
    }
    parts
}

/// A name the shell can assign (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn is_identifier(s: &str) -> bool {
    let mut cs = s.chars();
    matches!(cs.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && cs.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// One change applied after the image's scripts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Set a variable; references expand against the environment so far.
    Set(String, Vec<Part>),
    /// Remove a variable.
    Unset(String),
    /// Put a directory list in front of `PATH`.
    PrependPath(String),
    /// Put a directory list after `PATH`.
    AppendPath(String),
}

/// The container's environment before and after the image's scripts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// What the command (or the image's shell) starts with.
    pub base: Vec<(String, String)>,
    /// Applied in order after the image's scripts.
    pub steps: Vec<Step>,
}

fn set(env: &mut Vec<(String, String)>, k: &str, v: String) {
    env.retain(|(n, _)| n != k);
    env.push((k.to_owned(), v));
}

fn get<'e>(env: &'e [(String, String)], k: &str) -> Option<&'e str> {
    env.iter().rfind(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

fn expand(parts: &[Part], env: &[(String, String)]) -> String {
    parts
        .iter()
        .map(|p| match p {
            Part::Lit(s) => s.as_str(),
            Part::Var(n) => get(env, n).unwrap_or(""),
        })
        .collect()
}

/// The HOME the container sees: `--home`'s DST when given, else `/root`
/// under fakeroot, else the caller's.
pub fn container_home(cfg: &EngineConfig) -> Option<String> {
    if cfg.fakeroot && cfg.home_source.is_none() {
        return Some("/root".into());
    }
    cfg.home
        .as_deref()
        .map(|h| h.to_string_lossy().into_owned())
}

/// Computes the plan from the config and the host environment.
pub fn plan(cfg: &EngineConfig, host: impl Iterator<Item = (String, String)>) -> Plan {
    let host: Vec<(String, String)> = host.collect();
    let mut base: Vec<(String, String)> = if cfg.cleanenv {
        host.iter()
            .filter(|(k, _)| k == "TERM" || PROXY_VARS.contains(&k.as_str()))
            .cloned()
            .collect()
    } else {
        host.iter()
            .filter(|(k, _)| k != "PATH" && !PREFIXES.iter().any(|p| k.starts_with(p)))
            .cloned()
            .collect()
    };
    if cfg.cleanenv {
        set(&mut base, "LANG", "C".into());
    }
    if let Some(h) = container_home(cfg) {
        set(&mut base, "HOME", h);
    }
    set(&mut base, "PATH", DEFAULT_PATH.into());

    let mut steps = Vec::new();
    let mut path_edits = Vec::new();
    for prefix in PREFIXES {
        let mut vars: Vec<(&str, &str)> = host
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?, v.as_str())))
            .filter(|(k, _)| !k.is_empty())
            .collect();
        vars.sort();
        for (k, v) in vars {
            match k {
                "PREPEND_PATH" => path_edits.push(Step::PrependPath(v.to_owned())),
                "APPEND_PATH" => path_edits.push(Step::AppendPath(v.to_owned())),
                // The host already expanded these: taken literally.
                _ => steps.push(Step::Set(k.to_owned(), vec![Part::Lit(v.to_owned())])),
            }
        }
    }
    for (k, v) in &cfg.env_file {
        steps.push(Step::Set(k.clone(), parse_value(v)));
    }
    for op in &cfg.env {
        steps.push(match op {
            EnvOp::Set(k, v) => Step::Set(k.clone(), parse_value(v)),
            EnvOp::Unset(k) => Step::Unset(k.clone()),
        });
    }
    steps.extend(path_edits);
    Plan { base, steps }
}

impl Plan {
    /// The final environment when no image script runs.
    pub fn evaluate(&self) -> Vec<(String, String)> {
        let mut env = self.base.clone();
        apply_steps(&mut env, &self.steps);
        env
    }

    /// Moves the steps on names a shell cannot assign into the base (no
    /// image script can touch them either), so [`Plan::script`] only has
    /// identifiers to export.
    fn split_for_shell(&self) -> (Vec<(String, String)>, Vec<&Step>) {
        let mut base = self.base.clone();
        let mut shell = Vec::new();
        for s in &self.steps {
            match s {
                Step::Set(k, _) | Step::Unset(k) if !is_identifier(k) => {
                    apply_steps(&mut base, std::slice::from_ref(s))
                }
                s => shell.push(s),
            }
        }
        (base, shell)
    }

    /// The environment and `/bin/sh -c` script that source the image's
    /// scripts in order, apply the steps, and exec `"$@"`.
    pub fn script(&self, scripts: &[PathBuf]) -> (Vec<(String, String)>, String) {
        let (base, steps) = self.split_for_shell();
        let mut s = String::new();
        for f in scripts {
            s.push_str(&format!(". {}\n", quote(&f.to_string_lossy())));
        }
        for step in steps {
            match step {
                Step::Set(k, parts) => s.push_str(&format!("export {k}={}\n", shell_word(parts))),
                Step::Unset(k) => s.push_str(&format!("unset {k}\n")),
                Step::PrependPath(p) => {
                    s.push_str(&format!("export PATH={}\"${{PATH:+:$PATH}}\"\n", quote(p)))
                }
                Step::AppendPath(p) => {
                    s.push_str(&format!("export PATH=\"${{PATH:+$PATH:}}\"{}\n", quote(p)))
                }
            }
        }
        // A missing command fails like the runtime's own check (exit 127).
        s.push_str(concat!(
            "if ! command -v \"$1\" >/dev/null 2>&1; then\n",
            "  printf 'error: %s: command not found in the container\\n' \"$1\" >&2\n",
            "  exit 127\n",
            "fi\n",
            "exec \"$@\"\n"
        ));
        (base, s)
    }
}

fn apply_steps(env: &mut Vec<(String, String)>, steps: &[Step]) {
    for step in steps {
        match step {
            Step::Set(k, parts) => {
                let v = expand(parts, env);
                set(env, k, v);
            }
            Step::Unset(k) => env.retain(|(n, _)| n != k),
            Step::PrependPath(p) => {
                let v = match get(env, "PATH") {
                    Some(old) if !old.is_empty() => format!("{p}:{old}"),
                    _ => p.clone(),
                };
                set(env, "PATH", v);
            }
            Step::AppendPath(p) => {
                let v = match get(env, "PATH") {
                    Some(old) if !old.is_empty() => format!("{old}:{p}"),
                    _ => p.clone(),
                };
                set(env, "PATH", v);
            }
        }
    }
}

/// Single-quotes `s` for the shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A shell word for a value: literal parts single-quoted, references as
/// `"${NAME}"`, so nothing else in the value is ever evaluated.
fn shell_word(parts: &[Part]) -> String {
    if parts.is_empty() {
        return "''".into();
    }
    parts
        .iter()
        .map(|p| match p {
            Part::Lit(s) => quote(s),
            Part::Var(n) => format!("\"${{{n}}}\""),
        })
        .collect()
}

/// The image's environment scripts (`*.sh` files in
/// `/.singularity.d/env`), in lexical order, as paths inside the container.
/// `dir` is that directory as this process sees it.
pub fn image_scripts(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| !t.is_dir()).unwrap_or(false) || e.path().is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".sh"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| Path::new(IMAGE_ENV_DIR).join(n))
        .collect()
}

/// Parses an `--env-file`: `NAME=VALUE` lines (an `export ` in front is
/// allowed), `#` comments and blank lines skipped; a value in single quotes
/// is literal, in double quotes or bare it may reference `$VAR`.
pub fn parse_env_file(path: &Path, text: &str) -> Result<Vec<(String, String)>, EngineError> {
    let bad = |n: usize, reason: &str| EngineError::BadEnvFile {
        path: path.to_owned(),
        line: n + 1,
        reason: reason.to_owned(),
    };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let Some((k, v)) = line.split_once('=') else {
            return Err(bad(n, "expected NAME=VALUE"));
        };
        if !is_identifier(k) {
            return Err(bad(n, "invalid variable name"));
        }
        let v = if let Some(inner) = v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
            inner.replace('$', "\\$")
        } else if let Some(inner) = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            inner.to_owned()
        } else {
            v.to_owned()
        };
        if v.contains('\0') {
            return Err(bad(n, "value contains a nul byte"));
        }
        out.push((k.to_owned(), v));
    }
    Ok(out)
}

/// Reads and parses an `--env-file`.
pub fn read_env_file(path: &Path) -> Result<Vec<(String, String)>, EngineError> {
    let text = std::fs::read_to_string(path).map_err(|e| EngineError::Setup {
        what: format!("env file {}", path.display()),
        reason: super::io_reason(&e),
    })?;
    parse_env_file(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(vars: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    fn val<'e>(env: &'e [(String, String)], k: &str) -> Option<&'e str> {
        get(env, k)
    }

    fn cfg() -> EngineConfig {
        let mut c = EngineConfig::new("/img", vec!["true".into()]);
        c.home = Some("/home/alice".into());
        c
    }

    #[test]
    fn values_split_into_literals_and_references() {
        use Part::*;
        assert_eq!(
            parse_value("$PATH:/foo"),
            [Var("PATH".into()), Lit(":/foo".into())]
        );
        assert_eq!(
            parse_value("a${B}c\\$D$"),
            [Lit("a".into()), Var("B".into()), Lit("c$D$".into())]
        );
        assert_eq!(parse_value("$(id) ${x"), [Lit("$(id) ${x".into())]);
        assert_eq!(parse_value("$1"), [Lit("$1".into())]);
    }

    #[test]
    fn each_level_overrides_the_one_below() {
        let mut c = cfg();
        let h = &[
            ("PATH", "/host/bin"),
            ("V", "host"),
            ("W", "host"),
            ("X", "host"),
            ("Y", "host"),
            ("SINGULARITYENV_V", "sing"),
            ("APPTAINERENV_V", "app"),
            ("APPTAINERENV_W", "app"),
            ("VESSELENV_V", "vessel"),
            ("VESSELENV_X", "vessel"),
            ("VESSELENV_Y", "vessel"),
        ];
        c.env_file = vec![("X".into(), "file".into()), ("Y".into(), "file".into())];
        c.env = vec![EnvOp::parse_set("Y=flag").unwrap()];
        let e = plan(&c, host(h)).evaluate();
        assert_eq!(
            val(&e, "PATH"),
            Some(DEFAULT_PATH),
            "PATH is never the host's"
        );
        assert_eq!(val(&e, "V"), Some("vessel"));
        assert_eq!(val(&e, "W"), Some("app"));
        assert_eq!(val(&e, "X"), Some("file"));
        assert_eq!(val(&e, "Y"), Some("flag"));
        assert_eq!(val(&e, "HOME"), Some("/home/alice"));
        assert!(!e.iter().any(|(k, _)| k.starts_with("VESSELENV_")));
    }

    #[test]
    fn references_expand_and_path_edits_apply_last() {
        let mut c = cfg();
        c.env = vec![
            EnvOp::parse_set("PATH=$PATH:/foo").unwrap(),
            EnvOp::parse_set("A=${HOME}/x \\$HOME").unwrap(),
        ];
        let h = &[
            ("VESSELENV_PREPEND_PATH", "/pre"),
            ("APPTAINERENV_APPEND_PATH", "/post"),
        ];
        let e = plan(&c, host(h)).evaluate();
        assert_eq!(
            val(&e, "PATH").unwrap(),
            format!("/pre:{DEFAULT_PATH}:/foo:/post")
        );
        assert_eq!(val(&e, "A"), Some("/home/alice/x $HOME"));
    }

    #[test]
    fn cleanenv_keeps_term_home_lang_and_proxies() {
        let mut c = cfg();
        c.cleanenv = true;
        let h = &[
            ("TERM", "xterm"),
            ("LANG", "de_DE.UTF-8"),
            ("SECRET", "x"),
            ("https_proxy", "http://p:3128"),
            ("NO_PROXY", "localhost"),
            ("VESSELENV_K", "v"),
        ];
        let e = plan(&c, host(h)).evaluate();
        let mut names: Vec<&str> = e.iter().map(|(k, _)| k.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "HOME",
                "K",
                "LANG",
                "NO_PROXY",
                "PATH",
                "TERM",
                "https_proxy"
            ]
        );
        assert_eq!(val(&e, "LANG"), Some("C"));
        assert_eq!(val(&e, "https_proxy"), Some("http://p:3128"));
        c.fakeroot = true;
        assert_eq!(val(&plan(&c, host(h)).evaluate(), "HOME"), Some("/root"));
    }

    #[test]
    fn the_script_sources_in_order_then_applies_steps_quoted() {
        let mut c = cfg();
        c.env = vec![
            EnvOp::parse_set("A=it's $(x) $B").unwrap(),
            EnvOp::parse_set("odd-name=1").unwrap(),
            EnvOp::Unset("C".into()),
        ];
        let p = plan(&c, host(&[("VESSELENV_PREPEND_PATH", "/p")]));
        let (base, s) = p.script(&["/e/01.sh".into(), "/e/90 x.sh".into()]);
        assert_eq!(val(&base, "odd-name"), Some("1"));
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(
            lines[..5],
            [
                ". '/e/01.sh'",
                ". '/e/90 x.sh'",
                "export A='it'\\''s $(x) '\"${B}\"",
                "unset C",
                "export PATH='/p'\"${PATH:+:$PATH}\"",
            ]
        );
        assert!(s.ends_with("exec \"$@\"\n"));
    }

    #[test]
    fn env_files_parse_and_name_the_bad_line() {
        let p = Path::new("/f");
        let v = parse_env_file(p, "# c\n\nexport A=1\nB=\"x $A\"\nC='$A'\nD=a=b\n").unwrap();
        assert_eq!(
            v,
            [
                ("A".into(), "1".into()),
                ("B".into(), "x $A".into()),
                ("C".into(), "\\$A".into()),
                ("D".into(), "a=b".into())
            ]
        );
        let e = parse_env_file(p, "A=1\nnot a var\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/f") && e.contains("line 2"), "{e}");
        assert!(parse_env_file(p, "1A=x\n").is_err());
    }
}
