//! The image config as Apptainer's images keep it, so images move between
//! the two runtimes: `ENV` → `/.singularity.d/env/10-docker2singularity.sh`
//! (sourced by the engine above the caller's environment), `ENTRYPOINT` and
//! `CMD` → `/.singularity.d/runscript`, labels →
//! `/.singularity.d/labels.json`. `WORKDIR` is kept in the image config
//! stored in the SIF ([`super::CONFIG_OBJECT`]), where `vessel run` reads
//! it ([`workdir`]).

use std::collections::BTreeMap;
use std::path::Path;

use oci_spec::image::ImageConfiguration;

use super::unpack::Rootfs;
use super::OciError;

/// The environment script, inside the rootfs.
pub const ENV_SCRIPT: &str = ".singularity.d/env/10-docker2singularity.sh";
/// The runscript, inside the rootfs.
pub const RUNSCRIPT: &str = ".singularity.d/runscript";
/// The labels file, inside the rootfs.
pub const LABELS: &str = ".singularity.d/labels.json";

/// The mount points Apptainer's base environment adds to an image built
/// from an OCI image (made when missing; a layer's own are kept).
pub const BASE_DIRS: [&str; 11] = [
    "proc",
    "sys",
    "dev",
    "tmp",
    "var/tmp",
    "home",
    "root",
    "etc",
    "mnt",
    ".singularity.d/actions",
    ".singularity.d/libs",
];

/// Writes the env script, runscript and labels into `rootfs`, and the base
/// mount points the engine binds over.
pub fn write(rootfs: &Rootfs, config: &ImageConfiguration) -> Result<(), OciError> {
    for d in BASE_DIRS {
        rootfs.ensure_dir(Path::new(d))?;
    }
    let c = config.config().clone().unwrap_or_default();
    let env = c.env().clone().unwrap_or_default();
    rootfs.write_file(Path::new(ENV_SCRIPT), env_script(&env).as_bytes(), 0o755)?;
    let entrypoint = c.entrypoint().clone().unwrap_or_default();
    let cmd = c.cmd().clone().unwrap_or_default();
    rootfs.write_file(
        Path::new(RUNSCRIPT),
        runscript(&entrypoint, &cmd).as_bytes(),
        0o755,
    )?;
    rootfs.write_file(Path::new(LABELS), labels_json(config).as_bytes(), 0o644)?;
    // Docker makes WORKDIR when it is missing; `run` starts there.
    if let Some(w) = c.working_dir().as_deref().filter(|w| w.starts_with('/')) {
        rootfs.ensure_dir(Path::new(w))?;
    }
    Ok(())
}

/// Single-quotes `s` for `/bin/sh` (a `'` becomes `'\''`).
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn is_identifier(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c == b'_' || c.is_ascii_alphabetic())
        && b.all(|c| c == b'_' || c.is_ascii_alphanumeric())
}

/// `export NAME='value'` per `ENV` entry (values are literal: Docker
/// expanded them at build time); a bare `NAME` keeps the caller's value.
pub fn env_script(env: &[String]) -> String {
    let mut s = String::from("#!/bin/sh\n# Written by vessel from the image config (ENV).\n");
    for e in env {
        let (k, v) = match e.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (e.as_str(), None),
        };
        if !is_identifier(k) {
            tracing::warn!(
                name = k,
                "skipping an ENV entry that is not a variable name"
            );
            continue;
        }
        match v {
            Some(v) => s.push_str(&format!("export {k}={}\n", quote(v))),
            None => s.push_str(&format!("export {k}=\"${{{k}:-}}\"\n")),
        }
    }
    s
}

/// ENTRYPOINT, then `vessel run`'s arguments or, without any, CMD (Docker's
/// and Apptainer's rule); a shell when the image names nothing.
pub fn runscript(entrypoint: &[String], cmd: &[String]) -> String {
    let words = |v: &[String]| v.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
    let mut s = String::from(
        "#!/bin/sh\n# Written by vessel from the image config: ENTRYPOINT, then the\n\
         # arguments given to `run`, or CMD when there are none.\n",
    );
    if !cmd.is_empty() {
        s.push_str(&format!(
            "if [ $# -eq 0 ]; then\n    set -- {}\nfi\n",
            words(cmd)
        ));
    }
    if !entrypoint.is_empty() {
        s.push_str(&format!("set -- {} \"$@\"\n", words(entrypoint)));
    }
    s.push_str("if [ $# -eq 0 ]; then\n    set -- /bin/sh\nfi\nexec \"$@\"\n");
    s
}

/// The labels as a JSON object (sorted keys, pretty).
pub fn labels_json(config: &ImageConfiguration) -> String {
    let labels: BTreeMap<String, String> = config
        .config()
        .as_ref()
        .and_then(|c| c.labels().clone())
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut s = serde_json::to_string_pretty(&labels).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

/// The `WORKDIR` of an image config's bytes, when it names an absolute one.
pub fn workdir(config_bytes: &[u8]) -> Option<String> {
    let c = ImageConfiguration::from_reader(config_bytes).ok()?;
    let w = c.config().as_ref()?.working_dir().clone()?;
    (w.starts_with('/') && !w.contains('\0')).then_some(w)
}

/// A progress bar on a terminal (stderr), hidden otherwise.
pub(crate) fn bar(enabled: bool, len: u64, what: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !enabled || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(len);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg:>10} [{bar:30}] {pos}/{len} {bytes_per_sec}")
    {
        b.set_style(style.progress_chars("=> "));
    }
    b.set_message(what.to_owned());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_sh(script: &str, args: &[&str]) -> String {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s");
        std::fs::write(&p, script.replace("exec \"$@\"", "printf '[%s]' \"$@\"")).unwrap();
        let o = std::process::Command::new("/bin/sh")
            .arg(&p)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8(o.stdout).unwrap()
    }

    #[test]
    fn runscript_appends_args_to_entrypoint_and_replaces_cmd() {
        let ep = vec!["/bin/echo".to_owned(), "it's".to_owned()];
        let cmd = vec!["a b".to_owned(), "$HOME".to_owned()];
        let s = runscript(&ep, &cmd);
        assert_eq!(run_sh(&s, &[]), "[/bin/echo][it's][a b][$HOME]");
        assert_eq!(run_sh(&s, &["x y"]), "[/bin/echo][it's][x y]");
        assert_eq!(run_sh(&runscript(&[], &cmd), &["z"]), "[z]");
        assert_eq!(run_sh(&runscript(&[], &[]), &[]), "[/bin/sh]");
    }

    #[test]
    fn env_script_exports_literal_values() {
        let s = env_script(&["A=x'y $B".into(), "bad-name=1".into(), "C".into()]);
        assert!(s.contains("export A='x'\\''y $B'\n"), "{s}");
        assert!(!s.contains("bad-name"));
        assert!(s.contains("export C=\"${C:-}\"\n"));
    }
}
