//! Example vessel plugin `example.com/gpu-plugin`: a flag-driven
//! EngineConfig plugin. It adds `--gpu` to `vessel exec`, `run` and
//! `shell`; with it, the container gets the host's GPU libraries and device
//! nodes, as the admin configured them; without it, nothing changes.
//!
//! The config is `gpu.toml` in the plugin's config dir
//! (`$VESSEL_ROOT/etc/vessel/plugins/example.com/gpu-plugin/`), written with
//! defaults at install when absent and never replaced by an upgrade:
//!
//! ```toml
//! # The host dir bound read-only at /usr/local/gpu (absent from images:
//! # the runtime makes the mount point).
//! libs = "/usr/lib/x86_64-linux-gnu/nvidia"
//! # Device nodes: "PATH" (same path in the container) or "HOST:CONTAINER".
//! devices = ["/dev/nvidiactl", "/dev/nvidia0"]
//! ```
//!
//! With `--gpu`, `LD_LIBRARY_PATH` in the container starts with
//! `/usr/local/gpu`. It works for root and for normal users (the devices
//! are binds of the host nodes, with their host permissions).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use vessel_plugin_api::{host, log, ConfigMut, Flag, Plugin};

/// The config file in the config dir.
pub const CONFIG_FILE: &str = "gpu.toml";

/// Where the libraries appear in the container.
pub const MOUNT_POINT: &str = "/usr/local/gpu";

/// The flag it adds.
pub const FLAG: &str = "gpu";

/// What the Install callback writes when there is no config yet.
pub const DEFAULT_CONFIG: &str = r#"# gpu-plugin: what `vessel exec|run|shell --gpu` adds to the container.
# The host dir bound read-only at /usr/local/gpu (first on LD_LIBRARY_PATH).
libs = "/usr/lib/x86_64-linux-gnu/nvidia"
# Device nodes: "PATH" (same path in the container) or "HOST:CONTAINER"
# (CONTAINER under /dev).
devices = ["/dev/nvidiactl", "/dev/nvidia0"]
"#;

/// The parsed `gpu.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuConfig {
    /// Host dir with the driver libraries.
    pub libs: PathBuf,
    /// Device nodes, `PATH` or `HOST:CONTAINER`.
    #[serde(default)]
    pub devices: Vec<String>,
}

impl GpuConfig {
    /// Parses the config text; errors name the file.
    pub fn parse(text: &str) -> Result<Self, String> {
        let c: Self = toml::from_str(text)
            .map_err(|e| format!("{CONFIG_FILE}: {}", one_line(&e.to_string())))?;
        if !c.libs.is_absolute() {
            return Err(format!(
                "{CONFIG_FILE}: libs {:?} must be an absolute path",
                c.libs
            ));
        }
        Ok(c)
    }

    /// The devices as (host, container) pairs.
    pub fn device_pairs(&self) -> Vec<(String, String)> {
        self.devices
            .iter()
            .map(|d| match d.split_once(':') {
                Some((h, c)) => (h.to_owned(), c.to_owned()),
                None => (d.clone(), d.clone()),
            })
            .collect()
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn read_config() -> Result<(PathBuf, GpuConfig), String> {
    let path = host::config_dir()
        .ok_or("the runtime did not say where the plugin's config dir is")?
        .join(CONFIG_FILE);
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    Ok((path, GpuConfig::parse(&text)?))
}

fn apply(cfg: &mut ConfigMut<'_>) -> vessel_plugin_api::Result<()> {
    if !cfg.is_set(FLAG) {
        return Ok(());
    }
    let (path, gpu) = read_config()?;
    if !gpu.libs.is_dir() {
        return Err(format!(
            "libs {} is not a directory on this host (set libs in {})",
            gpu.libs.display(),
            path.display()
        )
        .into());
    }
    log::info(format!(
        "--gpu on {}: binding {} at {MOUNT_POINT}",
        cfg.command(),
        gpu.libs.display()
    ));
    cfg.add_bind(gpu.libs.to_string_lossy(), MOUNT_POINT, true);
    let ld = match cfg.env("LD_LIBRARY_PATH").filter(|v| !v.is_empty()) {
        Some(old) => format!("{MOUNT_POINT}:{old}"),
        None => MOUNT_POINT.to_owned(),
    };
    cfg.set_env("LD_LIBRARY_PATH", &ld);
    for (host_node, container_node) in gpu.device_pairs() {
        cfg.add_device_at(Path::new(&host_node), Path::new(&container_node))
            .map_err(|e| format!("{e} (listed in {})", path.display()))?;
    }
    Ok(())
}

/// Builds the plugin; the runtime calls it once when it loads the library.
pub fn build() -> Plugin {
    let mut p = Plugin::new("example.com/gpu-plugin")
        .author("vessel developers")
        .version("0.1.0")
        .description("--gpu on exec/run/shell: binds the host's GPU libraries and device nodes")
        .install(|_| {
            // Never replaces the admin's file (upgrades run this too).
            if host::install_default_config(CONFIG_FILE, DEFAULT_CONFIG)? {
                log::info(format!("wrote the default {CONFIG_FILE}"));
            }
            Ok(())
        })
        .engine_config(apply);
    for command in ["exec", "run", "shell"] {
        // The flag's effect is in the EngineConfig callback, which sees
        // its value; the pre-run hook has nothing to check.
        p = p.flag(
            command,
            Flag::switch(FLAG).help("bind the host's GPU libraries and devices (see gpu.toml)"),
            |_| Ok(()),
        );
    }
    p
}

vessel_plugin_api::export_plugin!(build);

#[cfg(test)]
mod tests {
    use super::*;
    use vessel_plugin_api::{Bind, ContainerCommand, Device};
    use vessel_plugin_test::{self as testing, FakeEngineConfig};

    /// A config dir with `gpu.toml` naming `libs` and `devices`.
    fn config(libs: &Path, devices: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let list: Vec<String> = devices.iter().map(|d| format!("{d:?}")).collect();
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            format!("libs = {:?}\ndevices = [{}]\n", libs, list.join(", ")),
        )
        .unwrap();
        dir
    }

    fn with_gpu() -> FakeEngineConfig {
        let mut cfg = FakeEngineConfig::default();
        cfg.invocation.command = ContainerCommand::Run;
        cfg.invocation.flags = vec![(FLAG.into(), None)];
        cfg
    }

    #[test]
    fn with_gpu_binds_libs_sets_ld_library_path_and_adds_devices() {
        let libs = tempfile::tempdir().unwrap();
        let dir = config(libs.path(), &["/dev/null", "/dev/zero:/dev/gpu0"]);
        testing::set_config_dir(Some(dir.path()));
        let mut cfg = with_gpu();
        cfg.env.insert("LD_LIBRARY_PATH".into(), "/opt/lib".into());
        testing::run_engine_config(&build(), &mut cfg).unwrap();
        testing::set_config_dir(None);
        assert_eq!(
            cfg.binds,
            [Bind {
                source: libs.path().to_string_lossy().into_owned(),
                destination: MOUNT_POINT.into(),
                readonly: true,
            }]
        );
        assert_eq!(cfg.env["LD_LIBRARY_PATH"], "/usr/local/gpu:/opt/lib");
        assert_eq!(
            cfg.devices,
            [
                Device {
                    source: "/dev/null".into(),
                    destination: "/dev/null".into()
                },
                Device {
                    source: "/dev/zero".into(),
                    destination: "/dev/gpu0".into()
                },
            ]
        );
        assert!(testing::take_logs()
            .iter()
            .any(|(_, m)| m.starts_with("--gpu on run")));
    }

    #[test]
    fn without_gpu_nothing_changes_not_even_a_config_read() {
        testing::set_config_dir(None);
        let mut cfg = FakeEngineConfig::default();
        cfg.invocation.flags = vec![("other".into(), None)];
        let before = cfg.clone();
        testing::run_engine_config(&build(), &mut cfg).unwrap();
        assert_eq!(cfg, before);
    }

    #[test]
    fn bad_configs_and_devices_are_errors_naming_the_file() {
        let libs = tempfile::tempdir().unwrap();
        let dir = config(libs.path(), &["/etc/hostname:/dev/gpu0"]);
        testing::set_config_dir(Some(dir.path()));
        let e = testing::run_engine_config(&build(), &mut with_gpu()).unwrap_err();
        assert!(
            e.message.contains("not a character or block device") && e.message.contains("gpu.toml"),
            "{}",
            e.message
        );
        let dir2 = config(libs.path(), &["/dev/null:/etc/passwd"]);
        testing::set_config_dir(Some(dir2.path()));
        let e = testing::run_engine_config(&build(), &mut with_gpu()).unwrap_err();
        assert!(
            e.message.contains("must be a path under /dev"),
            "{}",
            e.message
        );
        let dir3 = config(Path::new("/nonexistent/gpu"), &[]);
        testing::set_config_dir(Some(dir3.path()));
        let e = testing::run_engine_config(&build(), &mut with_gpu()).unwrap_err();
        assert!(e.message.contains("is not a directory"), "{}", e.message);
        testing::set_config_dir(None);
        assert!(GpuConfig::parse("libs = \"relative\"").is_err());
        assert!(GpuConfig::parse("libs = \"/x\"\ncolour = 1")
            .unwrap_err()
            .starts_with("gpu.toml: "));
    }

    #[test]
    fn install_writes_the_default_config_once() {
        let dir = tempfile::tempdir().unwrap();
        testing::set_config_dir(Some(dir.path()));
        let p = build();
        testing::run_install(&p, &dir.path().join("install")).unwrap();
        let file = dir.path().join(CONFIG_FILE);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), DEFAULT_CONFIG);
        GpuConfig::parse(DEFAULT_CONFIG).unwrap();
        std::fs::write(&file, "libs = \"/site/gpu\"\n").unwrap();
        testing::run_install(&p, &dir.path().join("install")).unwrap();
        testing::set_config_dir(None);
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "libs = \"/site/gpu\"\n"
        );
        let m = testing::manifest(&p);
        assert_eq!(m.flags.len(), 3, "{m:?}");
        testing::take_logs();
    }
}
