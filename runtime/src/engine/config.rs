//! The engine config: everything that decides how one container runs.
//!
//! It is a plain data struct with public fields because plugins read and
//! change it through the EngineConfig hook; [`EngineConfig::validate`] runs
//! after the hooks, before any mount, so a bad value from a flag, from
//! `vessel.toml` or from a plugin fails the same way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::EngineError;

/// Who asked for a bind, so an error about it names them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BindOrigin {
    /// `--bind` on the command line.
    #[default]
    Flag,
    /// `bind_paths` in vessel.toml.
    Config,
    /// An EngineConfig plugin.
    Plugin(String),
    /// The engine itself (the caller's /etc/passwd and /etc/group).
    Engine,
    /// The engine's home mount (the caller's home, or `--home`).
    Home,
    /// The engine's bind of the caller's current directory.
    Cwd,
}

impl std::fmt::Display for BindOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Flag => f.write_str("--bind"),
            Self::Config => f.write_str("vessel.toml bind_paths"),
            Self::Plugin(p) => write!(f, "plugin {p:?}"),
            Self::Engine => f.write_str("vessel"),
            Self::Home => f.write_str("the home mount; --no-home skips it"),
            Self::Cwd => f.write_str("the current directory mount; --no-mount cwd skips it"),
        }
    }
}

/// One bind mount from the host into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// Host path.
    pub src: PathBuf,
    /// Absolute path inside the container.
    pub dst: PathBuf,
    /// Read-only inside the container.
    pub readonly: bool,
    /// Who asked for it.
    pub origin: BindOrigin,
}

impl Bind {
    /// Parses `SRC[:DST[:ro|rw]]` from `--bind`; DST defaults to SRC.
    pub fn parse(spec: &str) -> Result<Self, EngineError> {
        Self::parse_from(spec, BindOrigin::Flag)
    }

    /// Parses `SRC[:DST[:ro|rw]]` asked for by `origin`.
    pub fn parse_from(spec: &str, origin: BindOrigin) -> Result<Self, EngineError> {
        let bad = |why: &str| EngineError::BadBind {
            spec: spec.to_owned(),
            origin: origin.clone(),
            reason: why.to_owned(),
        };
        let parts: Vec<&str> = spec.split(':').collect();
        let (src, dst, opt) = match parts.as_slice() {
            [s] => (*s, *s, None),
            [s, d] => (*s, *d, None),
            [s, d, o] => (*s, *d, Some(*o)),
            _ => return Err(bad("expected SRC[:DST[:ro|rw]]")),
        };
        if src.is_empty() || dst.is_empty() {
            return Err(bad("empty path"));
        }
        let readonly = match opt {
            None | Some("rw") => false,
            Some("ro") => true,
            Some(o) => return Err(bad(&format!("unknown option {o:?}, expected ro or rw"))),
        };
        Ok(Self {
            src: PathBuf::from(src),
            dst: PathBuf::from(dst),
            readonly,
            origin,
        })
    }

    /// Parses a `--bind` value: a comma-separated list of bind specs.
    pub fn parse_list(value: &str) -> Result<Vec<Self>, EngineError> {
        Self::parse_list_from(value, &BindOrigin::Flag)
    }

    /// Parses a comma-separated list of bind specs asked for by `origin`.
    pub fn parse_list_from(value: &str, origin: &BindOrigin) -> Result<Vec<Self>, EngineError> {
        value
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| Self::parse_from(s, origin.clone()))
            .collect()
    }
}

/// One change to the container's environment, applied in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvOp {
    /// Set `name` to `value`.
    Set(String, String),
    /// Remove `name`.
    Unset(String),
}

impl EnvOp {
    /// Parses `--env K=V`.
    pub fn parse_set(spec: &str) -> Result<Self, EngineError> {
        match spec.split_once('=') {
            Some((k, v)) if valid_env_name(k) => Ok(Self::Set(k.to_owned(), v.to_owned())),
            _ => Err(EngineError::BadEnv(spec.to_owned())),
        }
    }
}

fn valid_env_name(k: &str) -> bool {
    !k.is_empty()
        && !k.contains(|c: char| c.is_control())
        && !k.starts_with(|c: char| c.is_ascii_digit())
}

/// Which namespaces to create besides the mount namespace (always created).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Namespaces {
    /// PID namespace: the command runs as PID 1.
    pub pid: bool,
    /// UTS namespace (implied by a hostname).
    pub uts: bool,
    /// IPC namespace.
    pub ipc: bool,
    /// Network namespace with loopback only.
    pub net: bool,
    /// User namespace (always on for unprivileged users and with fakeroot).
    pub user: bool,
}

/// What the user ran, as EngineConfig plugins see it: the built-in command
/// and the flags plugins added to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Launch {
    /// The built-in command: `exec`, `run` or `shell`.
    pub command: String,
    /// `--contain` as given (`EngineConfig::contain` may be changed by plugins).
    pub contain: bool,
    /// The flags each plugin added to the command that were given, by
    /// plugin name: flag name and value (none for a switch).
    pub plugin_flags: BTreeMap<String, Vec<(String, Option<String>)>>,
}

/// A host device node to show in the container (plugins ask for these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRequest {
    /// The character or block device on the host.
    pub src: PathBuf,
    /// Its path in the container, under /dev.
    pub dst: PathBuf,
    /// Who asked for it.
    pub origin: BindOrigin,
}

/// A capability a plugin adds to or drops from a root container's set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapRequest {
    /// The capability number.
    pub cap: u32,
    /// Added (else dropped).
    pub add: bool,
    /// Who asked for it.
    pub origin: BindOrigin,
}

/// The image to run: a path as the user gave it; resolved by `image::Image::open`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Path of the sandbox directory or SIF file.
    pub path: PathBuf,
}

/// `vessel run`: a script in the image run instead of the command when present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runscript {
    /// Path inside the container.
    pub path: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
}

/// Everything that decides how one container runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// The image.
    pub image: ImageRef,
    /// The command and its arguments (argv), never empty after validation.
    pub command: Vec<String>,
    /// Host paths bound into the container, in order.
    pub binds: Vec<Bind>,
    /// Environment changes (`--env`, plugins), applied in order last; `$VAR`
    /// in a value expands against the container environment (see `env`).
    pub env: Vec<EnvOp>,
    /// Variables from `--env-file`, below `env` and above `VESSELENV_*`.
    pub env_file: Vec<(String, String)>,
    /// Start from an empty environment instead of the host's.
    pub cleanenv: bool,
    /// Minimal /dev, no host home, no host /tmp.
    pub contain: bool,
    /// Hostname inside the container; implies a UTS namespace.
    pub hostname: Option<String>,
    /// Working directory inside the container; `None` = the host cwd if it
    /// exists there, else the home directory, else `/`.
    pub cwd: Option<PathBuf>,
    /// Namespaces to create.
    pub namespaces: Namespaces,
    /// Map the user to root inside a user namespace.
    pub fakeroot: bool,
    /// What the command may do as root (see `privs`).
    pub privileges: super::privs::Privileges,
    /// With a PID namespace, run a tiny init as PID 1 that forwards signals
    /// to the command and reaps orphans (`--no-init` turns it off).
    pub init: bool,
    /// Free-form key/values for plugins to pass information along.
    pub annotations: BTreeMap<String, String>,
    /// Name of the image driver to use (`image_driver` in vessel.toml).
    pub image_driver: Option<String>,
    /// Where extracted images are kept between runs (`None`: extract
    /// into each run's work dir).
    pub cache: Option<crate::cache::Cache>,
    /// The home directory inside the container (`$HOME`): the invoking
    /// user's, or `--home`'s DST (see [`EngineConfig::home_mount`]).
    pub home: Option<PathBuf>,
    /// The host dir mounted at `home` (`--home SRC[:DST]`); `None` = the
    /// caller's own home at its own path.
    pub home_source: Option<PathBuf>,
    /// Mount a home directory (`--no-home` / `--no-mount home` turn it off).
    pub mount_home: bool,
    /// Bind the host's current directory at its own path when not
    /// contained (`--no-mount cwd` turns it off).
    pub mount_cwd: bool,
    /// Run this script instead of `command` when it exists in the image.
    pub runscript: Option<Runscript>,
    /// A writable tmpfs layer over the image: changes vanish at exit
    /// (`--writable-tmpfs`).
    pub writable_tmpfs: bool,
    /// A persistent writable layer: `DIR/upper` holds the changes, kept
    /// across runs (`--overlay DIR`; DIR must belong to the caller).
    pub overlay: Option<PathBuf>,
    /// What the user ran (for plugins).
    pub launch: Launch,
    /// Host device nodes bound under the container's /dev.
    pub devices: Vec<DeviceRequest>,
    /// Capability changes of a root container, in order (the last change of
    /// a capability wins).
    pub capabilities: Vec<CapRequest>,
}

impl EngineConfig {
    /// A config with defaults for `image` and `command`.
    pub fn new(image: impl Into<PathBuf>, command: Vec<String>) -> Self {
        Self {
            image: ImageRef { path: image.into() },
            command,
            binds: Vec::new(),
            env: Vec::new(),
            env_file: Vec::new(),
            cleanenv: false,
            contain: false,
            hostname: None,
            cwd: None,
            namespaces: Namespaces::default(),
            fakeroot: false,
            init: true,
            privileges: super::privs::Privileges::Default,
            annotations: BTreeMap::new(),
            image_driver: None,
            cache: None,
            home: std::env::var_os("HOME").map(PathBuf::from),
            home_source: None,
            mount_home: true,
            mount_cwd: true,
            runscript: None,
            writable_tmpfs: false,
            overlay: None,
            launch: Launch::default(),
            devices: Vec::new(),
            capabilities: Vec::new(),
        }
    }

    /// The capability changes as masks: (added, dropped).
    pub fn capability_masks(&self) -> (u64, u64) {
        self.capabilities.iter().fold((0, 0), |(add, drop), c| {
            let bit = 1u64 << c.cap;
            if c.add {
                (add | bit, drop & !bit)
            } else {
                (add & !bit, drop | bit)
            }
        })
    }

    /// Capabilities are added to root containers only: in a user namespace
    /// (unprivileged runs, --fakeroot) the container already holds every
    /// capability over its own namespace and can get none on the host, so
    /// an add is ignored with a warning naming who asked; drops stay.
    pub fn settle_capabilities(&mut self) {
        if !self.namespaces.user {
            return;
        }
        self.capabilities.retain(|c| {
            if c.add {
                let name = vessel_plugin_abi::rules::CAPABILITIES
                    .get(c.cap as usize)
                    .copied()
                    .unwrap_or("?");
                tracing::warn!(
                    "{name} not added (asked by {}): the container runs in a user namespace, where capabilities give no host privilege",
                    c.origin
                );
            }
            !c.add
        });
    }

    /// Whether the container gets a writable layer over the image.
    pub fn writable(&self) -> bool {
        self.writable_tmpfs || self.overlay.is_some()
    }

    /// Applies the rules that tie options together (hostname implies a UTS
    /// namespace, fakeroot and unprivileged runs imply a user namespace).
    pub fn normalize(&mut self, privileged: bool) {
        if self.hostname.is_some() {
            self.namespaces.uts = true;
        }
        if self.fakeroot || !privileged {
            self.namespaces.user = true;
        }
    }

    /// Checks the config before any work is done: the first problem is a
    /// one-line error.
    pub fn validate(&self) -> Result<(), EngineError> {
        if self.command.is_empty() || self.command[0].is_empty() {
            return Err(EngineError::NoCommand);
        }
        if !self.image.path.exists() {
            return Err(EngineError::ImageMissing(self.image.path.clone()));
        }
        for b in &self.binds {
            if !b.dst.is_absolute() {
                return Err(EngineError::BadBind {
                    spec: b.dst.display().to_string(),
                    origin: b.origin.clone(),
                    reason: "destination must be an absolute path".into(),
                });
            }
            if let Err(e) = std::fs::metadata(&b.src) {
                return Err(EngineError::BindSource {
                    src: b.src.clone(),
                    origin: b.origin.clone(),
                    reason: crate::engine::io_reason(&e),
                });
            }
        }
        for d in &self.devices {
            vessel_plugin_abi::rules::check_device(
                &d.src.to_string_lossy(),
                &d.dst.to_string_lossy(),
            )
            .map_err(|reason| EngineError::BadDevice {
                origin: d.origin.clone(),
                reason,
            })?;
        }
        if let Some(h) = &self.hostname {
            if h.is_empty() || h.len() > 64 || h.contains(|c: char| c == '/' || c.is_control()) {
                return Err(EngineError::BadHostname(h.clone()));
            }
        }
        if let Some(o) = &self.overlay {
            if self.writable_tmpfs {
                return Err(EngineError::BadOverlay {
                    dir: o.clone(),
                    reason: "--overlay and --writable-tmpfs exclude each other".into(),
                });
            }
        }
        if let Some(c) = &self.cwd {
            if !c.is_absolute() {
                return Err(EngineError::BadCwd(c.clone()));
            }
        }
        if let Some(src) = self.home_source.as_ref().filter(|_| self.mount_home) {
            let bad = |reason: String| EngineError::BindSource {
                src: src.clone(),
                origin: BindOrigin::Home,
                reason,
            };
            match std::fs::metadata(src) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(bad("not a directory".into())),
                Err(e) => return Err(bad(crate::engine::io_reason(&e))),
            }
            if !self.home.as_deref().is_some_and(usable_home) {
                return Err(EngineError::BadBind {
                    spec: self
                        .home
                        .as_deref()
                        .unwrap_or(Path::new(""))
                        .display()
                        .to_string(),
                    origin: BindOrigin::Home,
                    reason: "destination must be an absolute path other than /".into(),
                });
            }
        }
        for (k, v) in &self.env_file {
            if !valid_env_name(k) || k.contains('=') || v.contains('\0') {
                return Err(EngineError::BadEnv(k.clone()));
            }
        }
        for op in &self.env {
            let name = match op {
                EnvOp::Set(k, v) => {
                    if v.contains('\0') {
                        return Err(EngineError::BadEnv(format!("{k}={v}")));
                    }
                    k
                }
                EnvOp::Unset(k) => k,
            };
            if !valid_env_name(name) || name.contains('=') {
                return Err(EngineError::BadEnv(name.clone()));
            }
        }
        Ok(())
    }

    /// The container's environment as the command sees it when the image
    /// has no environment scripts (see [`super::env`] for the precedence).
    pub fn environment(
        &self,
        host: impl Iterator<Item = (String, String)>,
    ) -> Vec<(String, String)> {
        super::env::plan(self, host).evaluate()
    }

    /// What is mounted at the container's home directory, by Apptainer's
    /// rules: `--home SRC[:DST]` binds SRC at DST (even with `--contain`);
    /// else `--contain` gives an empty tmpfs at `$HOME`; else the caller's
    /// home is bound at its own path, except under `--fakeroot`, whose
    /// home is the image's `/root`. Nothing with `--no-home`.
    pub fn home_mount(&self) -> Option<HomeMount> {
        if !self.mount_home {
            return None;
        }
        if let Some(src) = &self.home_source {
            return Some(HomeMount::Bind {
                src: src.clone(),
                dst: self.home.clone().filter(|h| usable_home(h))?,
            });
        }
        if self.contain {
            let home = super::env::container_home(self).map(PathBuf::from)?;
            return usable_home(&home).then_some(HomeMount::Tmpfs(home));
        }
        if self.fakeroot {
            return None;
        }
        let home = self.home.clone().filter(|h| usable_home(h))?;
        Some(HomeMount::Bind {
            src: home.clone(),
            dst: home,
        })
    }
}

/// A home directory that can be a mount point: absolute and not `/`.
fn usable_home(h: &Path) -> bool {
    h.is_absolute() && h.parent().is_some()
}

/// What the container gets at its home directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HomeMount {
    /// A host dir bound (recursively, read-write) at `dst`.
    Bind {
        /// Host path.
        src: PathBuf,
        /// Path inside the container.
        dst: PathBuf,
    },
    /// An empty tmpfs at this path (`--contain`).
    Tmpfs(PathBuf),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bind_specs() {
        let b = Bind::parse("/a").unwrap();
        assert_eq!(
            (b.src.as_path(), b.dst.as_path(), b.readonly),
            (Path::new("/a"), Path::new("/a"), false)
        );
        let b = Bind::parse("/a:/b:ro").unwrap();
        assert_eq!(
            (b.src.as_path(), b.dst.as_path(), b.readonly),
            (Path::new("/a"), Path::new("/b"), true)
        );
        assert_eq!(Bind::parse_list("/a,/b:/c:rw").unwrap().len(), 2);
        assert!(Bind::parse("/a:/b:xx").is_err());
        assert!(Bind::parse("/a:/b:ro:extra").is_err());
        assert!(Bind::parse(":/b").is_err());
    }

    #[test]
    fn validate_names_a_missing_bind_source() {
        let d = tempfile::tempdir().unwrap();
        let mut c = EngineConfig::new(d.path(), vec!["true".into()]);
        c.binds.push(Bind::parse("/nonexistent/x:/x").unwrap());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("/nonexistent/x") && !e.contains('\n'), "{e}");
        assert!(e.contains("(from --bind)"), "{e}");
        c.binds[0].origin = BindOrigin::Plugin("acme.org/gpu".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains(r#"(from plugin "acme.org/gpu")"#), "{e}");
        c.binds[0] = Bind::parse("/tmp:rel").unwrap();
        assert!(c.validate().is_err());
        c.binds.clear();
        c.validate().unwrap();
        c.command.clear();
        assert!(c.validate().is_err());
    }

    #[test]
    fn hostname_implies_uts_and_unprivileged_implies_user() {
        let mut c = EngineConfig::new("/", vec!["true".into()]);
        c.hostname = Some("box".into());
        c.normalize(true);
        assert!(c.namespaces.uts && !c.namespaces.user);
        c.normalize(false);
        assert!(c.namespaces.user);
    }

    #[test]
    fn environment_applies_ops_in_order() {
        let mut c = EngineConfig::new("/", vec!["true".into()]);
        let host = || {
            vec![
                ("A".to_string(), "1".to_string()),
                ("TERM".into(), "xterm".into()),
            ]
            .into_iter()
        };
        c.env = vec![
            EnvOp::parse_set("B=2").unwrap(),
            EnvOp::Unset("A".into()),
            EnvOp::parse_set("B=3").unwrap(),
        ];
        let e = c.environment(host());
        assert!(e.contains(&("B".into(), "3".into())));
        assert!(!e.iter().any(|(k, _)| k == "A"));
        assert!(e.iter().any(|(k, _)| k == "PATH"));
        c.cleanenv = true;
        c.env.clear();
        let e = c.environment(host());
        assert!(!e.iter().any(|(k, _)| k == "A"));
        assert!(e.iter().any(|(k, _)| k == "TERM"));
        assert!(EnvOp::parse_set("=x").is_err() && EnvOp::parse_set("noequals").is_err());
    }
}
