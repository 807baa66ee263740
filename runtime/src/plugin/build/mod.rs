//! `plugin create` and `plugin compile` (cargo, then load, manifest, image,
//! signature): plugins are built
//! inside the source tree this vessel was built from, against its own
//! plugin-api and lock file, so what is compiled matches the runtime.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::PluginError;

mod compile;
mod lock;
pub mod provenance;
mod verify;
pub mod wrapper;

pub use compile::{compile, CompileOptions};
pub use verify::{verify_build, Verdict};

/// Errors creating or building plugin crates.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The source tree this binary was built from is gone.
    #[error("the vessel source tree {0} is missing or not a vessel tree; plugins are compiled inside one (pass --source-tree DIR or set VESSEL_SOURCE_TREE)")]
    NoSourceTree(PathBuf),
    /// DIR is not inside the source tree.
    #[error("{dir} is outside the vessel source tree {tree}: plugins are created and compiled inside it")]
    OutsideTree {
        /// The directory given.
        dir: PathBuf,
        /// The source tree.
        tree: PathBuf,
    },
    /// DIR for `create` exists and is not empty.
    #[error("{0} already exists and is not empty")]
    NotEmpty(PathBuf),
    /// DIR for `compile` has no usable Cargo.toml.
    #[error("{path}: {reason}")]
    BadCrate {
        /// The Cargo.toml.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// cargo could not be run, or failed.
    #[error("cargo build of {dir} failed: {reason}")]
    Cargo {
        /// The plugin crate.
        dir: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// `SOURCE_DATE_EPOCH` is not a number of seconds.
    #[error("SOURCE_DATE_EPOCH {0:?} is not a non-negative number of seconds")]
    BadSourceDate(String),
    /// The plugin's lock file pins a crate shared with the runtime to
    /// another version.
    #[error("the plugin's Cargo.lock pins {package} {plugin_version}, but the runtime uses {runtime_version} (the plugin API and what it pulls in are shared with the runtime; run `cargo update -p {package} --precise {runtime_version}` in the plugin crate)")]
    SharedPin {
        /// The crate.
        package: String,
        /// The plugin's pin.
        plugin_version: String,
        /// The runtime's version.
        runtime_version: String,
    },
    /// The source tree's plugin API is another major version than the
    /// runtime's.
    #[error("the vessel source tree {tree} has plugin API {tree_version}, this vessel has {runtime_version}: compile plugins in the tree of this vessel's version (git clone --branch v{runtime_pkg})")]
    ApiMismatch {
        /// The source tree.
        tree: PathBuf,
        /// Its plugin API version.
        tree_version: String,
        /// The runtime's.
        runtime_version: String,
        /// The runtime's package version (the release tag).
        runtime_pkg: &'static str,
    },
    /// An I/O error on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The environment variable naming the vessel source tree plugins are
/// compiled in (for a packaged vessel, or a relocated checkout).
pub const SOURCE_TREE_ENV: &str = "VESSEL_SOURCE_TREE";

/// The source tree plugins are compiled in, canonical: `explicit`
/// (`--source-tree`), else `$VESSEL_SOURCE_TREE`, else the tree this vessel
/// was built from. Its plugin API must be this runtime's major version.
pub fn source_tree_from(explicit: Option<&Path>) -> Result<PathBuf, BuildError> {
    let raw = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(SOURCE_TREE_ENV).map(PathBuf::from))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    let tree = raw
        .canonicalize()
        .map_err(|_| BuildError::NoSourceTree(raw.clone()))?;
    let abi_toml = tree.join("plugin-api/abi/Cargo.toml");
    if !tree.join("plugin-api/sdk/Cargo.toml").is_file() || !abi_toml.is_file() {
        return Err(BuildError::NoSourceTree(tree));
    }
    let tree_version = fs::read_to_string(&abi_toml)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| {
            t.get("package")?
                .get("version")?
                .as_str()
                .map(str::to_owned)
        })
        .ok_or_else(|| BuildError::NoSourceTree(tree.clone()))?;
    let runtime_version = vessel_plugin_abi::API_VERSION;
    let major = |v: &str| v.split('.').next().map(str::to_owned);
    if major(&tree_version) != major(runtime_version) {
        return Err(BuildError::ApiMismatch {
            tree,
            tree_version,
            runtime_version: runtime_version.to_owned(),
            runtime_pkg: env!("CARGO_PKG_VERSION"),
        });
    }
    Ok(tree)
}

/// [`source_tree_from`] without an explicit tree.
pub fn source_tree() -> Result<PathBuf, BuildError> {
    source_tree_from(None)
}

/// Absolute, normalised form of `dir` (which may not exist yet), resolving
/// symlinks through its deepest existing ancestor.
fn resolve(dir: &Path) -> Result<PathBuf, BuildError> {
    let abs = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir().map_err(io_err(dir))?.join(dir)
    };
    // Lexical clean-up first, so `a/../..` cannot slip past the prefix check.
    let mut clean = PathBuf::new();
    for c in abs.components() {
        match c {
            std::path::Component::ParentDir => {
                clean.pop();
            }
            std::path::Component::CurDir => {}
            other => clean.push(other),
        }
    }
    let mut existing = clean.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = existing.canonicalize() {
            let mut out = c;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return Ok(out);
        }
        match (existing.parent(), existing.file_name()) {
            (Some(p), Some(n)) => {
                rest.push(n.to_owned());
                existing = p;
            }
            _ => return Ok(clean),
        }
    }
}

/// `dir`, resolved, if it is inside the source tree (and not the tree itself).
pub fn inside_tree(tree: &Path, dir: &Path) -> Result<PathBuf, BuildError> {
    let d = resolve(dir)?;
    if d.starts_with(tree) && d != tree {
        Ok(d)
    } else {
        Err(BuildError::OutsideTree {
            dir: d,
            tree: tree.to_owned(),
        })
    }
}

/// The crate name cargo will give a plugin named `name`
/// (`example.com/my-plugin` → `my-plugin`).
pub fn crate_name_for(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    let mut s: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
        s.insert_str(0, "plugin-");
    }
    s
}

/// Writes a compilable skeleton plugin crate into `dir` (which must be in
/// the tree and not exist or be empty). `lib_rs` is the source of the
/// crate's `src/lib.rs`.
pub fn create(tree: &Path, dir: &Path, name: &str, lib_rs: &str) -> Result<PathBuf, BuildError> {
    let dir = inside_tree(tree, dir)?;
    if let Ok(mut rd) = fs::read_dir(&dir) {
        if rd.next().is_some() {
            return Err(BuildError::NotEmpty(dir));
        }
    } else if dir.exists() {
        return Err(BuildError::NotEmpty(dir));
    }
    let api = relative_path(&dir, &tree.join("plugin-api/sdk"));
    let crate_name = crate_name_for(name);
    let cargo_toml = format!(
        r#"[package]
name = "{crate_name}"
version = "0.1.0"
edition = "2021"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
vessel-plugin-api = {{ path = "{api}" }}

# A plugin is its own workspace: `vessel plugin compile` builds it with the
# runtime's versions of every crate it shares with the runtime (the plugin API
# and what it pulls in) and the versions in its own Cargo.lock for the rest.
[workspace]
"#,
        api = api.display()
    );
    fs::create_dir_all(dir.join("src")).map_err(io_err(&dir))?;
    let files: [(PathBuf, &str); 3] = [
        (dir.join("Cargo.toml"), cargo_toml.as_str()),
        (dir.join("src/lib.rs"), lib_rs),
        // Cargo.lock is part of the plugin's source: its own pins are kept.
        (dir.join(".gitignore"), "/target\n*.sif\n"),
    ];
    for (p, text) in files {
        fs::write(&p, text).map_err(io_err(&p))?;
    }
    Ok(dir)
}

/// `to` relative to `from` (both absolute and normalised).
fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let f: Vec<_> = from.components().collect();
    let t: Vec<_> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..f.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c);
    }
    out
}

/// What cargo built.
#[derive(Debug, Clone)]
pub struct Built {
    /// The plugin crate dir.
    pub dir: PathBuf,
    /// The crate (package) name.
    pub crate_name: String,
    /// The built shared library.
    pub library: PathBuf,
    /// `rustc --version`.
    pub rustc_version: String,
    /// The host target triple it was built for.
    pub target: String,
    /// The Cargo.lock it was built with.
    pub lock: PathBuf,
}

fn package_name(dir: &Path) -> Result<String, BuildError> {
    let path = dir.join("Cargo.toml");
    let text = fs::read_to_string(&path).map_err(|e| BuildError::BadCrate {
        path: path.clone(),
        reason: format!("cannot read it: {e}"),
    })?;
    let value: toml::Table = toml::from_str(&text).map_err(|e| BuildError::BadCrate {
        path: path.clone(),
        reason: format!("invalid toml: {}", e.message()),
    })?;
    let pkg = value.get("package").and_then(|p| p.as_table());
    let name = pkg
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .ok_or_else(|| BuildError::BadCrate {
            path: path.clone(),
            reason: "no [package] name".into(),
        })?;
    let is_cdylib = value
        .get("lib")
        .and_then(|l| l.get("crate-type"))
        .and_then(|t| t.as_array())
        .is_some_and(|a| a.iter().any(|t| t.as_str() == Some("cdylib")));
    if !is_cdylib {
        return Err(BuildError::BadCrate {
            path,
            reason: "not a plugin crate: [lib] crate-type must include \"cdylib\"".into(),
        });
    }
    Ok(name.to_owned())
}

fn rustc_info() -> (String, String) {
    let out = Command::new("rustc").arg("-vV").output();
    let text = out
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let version = text.lines().next().unwrap_or("rustc unknown").to_owned();
    let host = text
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .unwrap_or(std::env::consts::ARCH)
        .to_owned();
    (version, host)
}

fn is_workspace_member(tree: &Path, dir: &Path) -> Result<bool, BuildError> {
    let out = Command::new("cargo")
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(tree)
        .output()
        .map_err(|e| BuildError::Cargo {
            dir: dir.to_owned(),
            reason: format!("cannot run cargo: {e}"),
        })?;
    if !out.status.success() {
        return Err(BuildError::Cargo {
            dir: dir.to_owned(),
            reason: format!(
                "cargo metadata failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    let manifest = dir.join("Cargo.toml");
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| BuildError::Cargo {
            dir: dir.to_owned(),
            reason: format!("cargo metadata printed invalid json: {e}"),
        })?;
    Ok(v["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| p["manifest_path"].as_str().map(Path::new) == Some(manifest.as_path())))
}

fn run_cargo(dir: &Path, cmd: &mut Command) -> Result<(), BuildError> {
    tracing::debug!(?cmd, "running cargo");
    // cargo's own output streams to the user.
    let status = cmd.status().map_err(|e| BuildError::Cargo {
        dir: dir.to_owned(),
        reason: format!("cannot run cargo: {e}"),
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(BuildError::Cargo {
            dir: dir.to_owned(),
            reason: format!("cargo exited with {status}"),
        })
    }
}

/// The absolute paths that can reach a library (panic locations,
/// `file!()`, build-script output dirs, registry sources), each with the
/// fixed path it is remapped to. rustc applies the last matching prefix, so
/// the more specific paths come last.
fn remaps(tree: &Path, dir: &Path, target_dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let mut maps: Vec<(PathBuf, &'static str)> = Vec::new();
    if let Some(h) = cargo_home {
        maps.push((h, "/cargo"));
    }
    maps.push((tree.to_owned(), "/vessel"));
    maps.push((target_dir.to_owned(), "/target"));
    maps.push((dir.to_owned(), "/plugin"));
    maps
}

/// The rustc flags for [`remaps`], as `CARGO_ENCODED_RUSTFLAGS`.
fn remap_flags(maps: &[(PathBuf, &str)]) -> String {
    maps.iter()
        .map(|(from, to)| format!("--remap-path-prefix={}={to}", from.display()))
        .collect::<Vec<_>>()
        .join("\x1f")
}

/// Builds the plugin crate in `dir` (inside `tree`) with cargo: release
/// profile, host target, into `target_dir`, reproducibly (paths remapped,
/// `SOURCE_DATE_EPOCH` passed on). A workspace member builds `--locked`
/// against the tree's Cargo.lock; a crate of its own workspace builds with
/// its own Cargo.lock merged with the tree's shared crates (see `lock`).
pub fn cargo_build(
    tree: &Path,
    dir: &Path,
    target_dir: &Path,
    source_date_epoch: i64,
) -> Result<Built, BuildError> {
    let dir = inside_tree(tree, dir)?;
    let crate_name = package_name(&dir)?;
    let (rustc_version, target) = rustc_info();
    let maps = remaps(tree, &dir, target_dir);
    // This binary is cargo's rustc wrapper: it gives every crate a `-C
    // metadata` hash free of machine paths (see `wrapper`).
    let this = std::env::current_exe().map_err(|e| BuildError::Cargo {
        dir: dir.clone(),
        reason: format!("cannot find the vessel binary to wrap rustc with: {e}"),
    })?;
    let cargo = |cwd: &Path| {
        let mut c = Command::new("cargo");
        c.current_dir(cwd)
            .env("CARGO_TARGET_DIR", target_dir)
            .env("CARGO_ENCODED_RUSTFLAGS", remap_flags(&maps))
            .env("RUSTC_WRAPPER", &this)
            .env(wrapper::RUSTC_WRAPPER_ENV, wrapper::encode(&maps))
            .env("SOURCE_DATE_EPOCH", source_date_epoch.to_string())
            .env_remove("RUSTFLAGS")
            .env_remove("RUSTC_WORKSPACE_WRAPPER");
        c
    };
    let lock;
    if is_workspace_member(tree, &dir)? {
        lock = tree.join("Cargo.lock");
        run_cargo(
            &dir,
            cargo(tree).args(["build", "--release", "--locked", "-p", &crate_name]),
        )?;
    } else {
        let tree_lock = lock::Lock::read(&tree.join("Cargo.lock"))?;
        let own = dir.join("Cargo.lock");
        let seed = if own.is_file() {
            lock::Lock::read(&own)?.merged_with(&tree_lock)?
        } else {
            tree_lock.clone()
        };
        seed.write(&own)?;
        // Resolve (adds the plugin's own entries, drops unused ones), check
        // that the shared crates kept the runtime's versions, build locked.
        run_cargo(
            &dir,
            cargo(&dir)
                .args(["metadata", "--format-version", "1"])
                .stdout(std::process::Stdio::null()),
        )?;
        lock::Lock::read(&own)?.check_against(&tree_lock)?;
        run_cargo(&dir, cargo(&dir).args(["build", "--release", "--locked"]))?;
        lock = own;
    }
    let library = target_dir
        .join("release")
        .join(format!("lib{}.so", crate_name.replace('-', "_")));
    if !library.is_file() {
        return Err(BuildError::Cargo {
            dir,
            reason: format!("cargo did not produce {}", library.display()),
        });
    }
    Ok(Built {
        dir,
        crate_name,
        library,
        rustc_version,
        target,
        lock,
    })
}

/// The `src/lib.rs` of a new plugin: its manifest and no callbacks yet.
fn skeleton_lib_rs(name: &str) -> String {
    format!(
        r#"//! The vessel plugin `{name}`.
//!
//! Add callbacks to the builder below (see the vessel-plugin-api docs:
//! `.command(..)`, `.flag(..)`, `.engine_config(..)`, ...), then build the
//! plugin image with `vessel plugin compile DIR`.

use vessel_plugin_api::Plugin;

/// Builds the plugin; the runtime calls it once when it loads the library.
pub fn build() -> Plugin {{
    Plugin::new("{name}")
        .author("")
        .version("0.1.0")
        .description("")
}}

vessel_plugin_api::export_plugin!(build);
"#
    )
}

/// `plugin create DIR NAME`: a new plugin crate skeleton in DIR, inside the
/// source tree. Returns the crate dir.
pub fn create_plugin(
    dir: &Path,
    name: &str,
    source_tree: Option<&Path>,
) -> Result<PathBuf, crate::Error> {
    super::store::validate_name(name)?;
    let tree = source_tree_from(source_tree).map_err(PluginError::from)?;
    Ok(create(&tree, dir, name, &skeleton_lib_rs(name)).map_err(PluginError::from)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_names_are_cargo_safe() {
        assert_eq!(crate_name_for("example.com/my-plugin"), "my-plugin");
        assert_eq!(crate_name_for("x.y/9lives"), "plugin-9lives");
        assert_eq!(crate_name_for("a/b c"), "b-c");
    }

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative_path(Path::new("/t/a/b"), Path::new("/t/plugin-api")),
            Path::new("../../plugin-api")
        );
    }

    #[test]
    fn dirs_outside_the_tree_are_refused() {
        let tree = tempfile::tempdir().unwrap();
        let tree = tree.path().canonicalize().unwrap();
        assert!(inside_tree(&tree, &tree.join("x/y")).is_ok());
        assert!(matches!(
            inside_tree(&tree, Path::new("/tmp")),
            Err(BuildError::OutsideTree { .. })
        ));
        assert!(inside_tree(&tree, &tree.join("x/../../z")).is_err());
        assert!(inside_tree(&tree, &tree).is_err());
    }
}
