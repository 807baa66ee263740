//! Example vessel plugin `example.com/squashfuse-driver`: registers the
//! image driver `squashfuse`, which mounts a SIF's squashfs partition with
//! the `squashfuse` FUSE binary (`squashfuse -o offset=N IMAGE DIR`). FUSE
//! needs no kernel squashfs mount privilege, so the driver is offered to
//! unprivileged runs too (they need a `/dev/fuse` the user may open).
//!
//! Select it with `image_driver = "squashfuse"` in vessel.toml. The
//! runtime calls `mount` in its own process, under the run's private work
//! dir, and `stop` after the container exited; `stop` unmounts what this
//! driver mounted (`fusermount3 -u`, `fusermount -u`, then `umount`), which
//! also ends the squashfuse daemon.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use vessel_plugin_api::{log, Driver, Mount, Plugin};

/// The driver name `image_driver` selects.
pub const DRIVER: &str = "squashfuse";

/// The squashfuse driver; remembers its mounts so `stop` can undo them.
#[derive(Debug, Default)]
pub struct Squashfuse {
    mounted: Mutex<Vec<PathBuf>>,
}

/// Runs `cmd`; a failure is one line: the program and its last stderr line.
fn run(mut cmd: Command) -> Result<(), String> {
    let prog = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("running {prog}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("no output");
    Err(format!("{prog} failed ({}): {last}", out.status))
}

fn unmount(dir: &Path) -> Result<(), String> {
    let mut last = String::new();
    for (prog, args) in [
        ("fusermount3", &["-u"][..]),
        ("fusermount", &["-u"][..]),
        ("umount", &[][..]),
    ] {
        let mut c = Command::new(prog);
        c.args(args).arg(dir);
        match run(c) {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(format!("unmounting {}: {last}", dir.display()))
}

impl Driver for Squashfuse {
    fn name(&self) -> String {
        DRIVER.into()
    }

    fn features(&self) -> Vec<String> {
        vec!["squashfs".into(), "fuse".into(), "unprivileged".into()]
    }

    fn mount(&self, m: &Mount) -> vessel_plugin_api::Result<()> {
        if m.fs_type != "squashfs" {
            return Err(format!("cannot mount {:?} filesystems", m.fs_type).into());
        }
        log::info(format!(
            "squashfuse driver: mounting {} (squashfs at offset {}) on {}",
            m.image.display(),
            m.offset,
            m.target.display()
        ));
        let mut c = Command::new("squashfuse");
        c.arg("-o")
            .arg(format!("offset={}", m.offset))
            .arg(&m.image)
            .arg(&m.target);
        run(c)?;
        self.mounted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(m.target.clone());
        Ok(())
    }

    fn stop(&self) -> vessel_plugin_api::Result<()> {
        let dirs = std::mem::take(&mut *self.mounted.lock().unwrap_or_else(|p| p.into_inner()));
        let mut first_err = None;
        for d in dirs {
            match unmount(&d) {
                Ok(()) => log::debug(format!("squashfuse driver: unmounted {}", d.display())),
                Err(e) => {
                    log::error(&e);
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

/// Builds the plugin; the runtime calls it once when it loads the library.
pub fn build() -> Plugin {
    Plugin::new("example.com/squashfuse-driver")
        .author("vessel developers")
        .version("0.1.0")
        .description("Image driver \"squashfuse\": mounts SIF squashfs partitions with FUSE")
        .register_image_drivers(|unprivileged, registrar| {
            log::debug(format!(
                "registering image driver {DRIVER:?} (unprivileged run: {unprivileged})"
            ));
            registrar.register(Squashfuse::default())
        })
}

vessel_plugin_api::export_plugin!(build);

#[cfg(test)]
mod tests {
    use super::*;
    use vessel_plugin_test::{self as testing, FakeDriverRegistrar};

    #[test]
    fn registers_squashfuse_for_privileged_and_unprivileged_runs() {
        for unprivileged in [false, true] {
            let mut reg = FakeDriverRegistrar::default();
            testing::run_register_image_drivers(&build(), unprivileged, &mut reg).unwrap();
            assert_eq!(reg.names(), [DRIVER]);
            let f = reg.features(DRIVER).unwrap();
            assert!(f.contains(&"squashfs".to_string()) && f.contains(&"unprivileged".to_string()));
        }
        // Registering twice is refused by the registrar, and reported.
        let mut reg = FakeDriverRegistrar::default();
        testing::run_register_image_drivers(&build(), false, &mut reg).unwrap();
        let e = testing::run_register_image_drivers(&build(), false, &mut reg).unwrap_err();
        assert!(e.message.contains("already registered"), "{}", e.message);
        testing::take_logs();
    }

    #[test]
    fn a_file_that_is_not_squashfs_fails_with_one_line_and_logs_the_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("not-an-image");
        std::fs::write(&image, b"garbage").unwrap();
        let target = dir.path().join("mnt");
        std::fs::create_dir(&target).unwrap();
        let mut reg = FakeDriverRegistrar::default();
        testing::run_register_image_drivers(&build(), true, &mut reg).unwrap();
        testing::take_logs();
        let e = reg
            .mount(
                DRIVER,
                &Mount {
                    image: image.clone(),
                    offset: 0,
                    size: 7,
                    fs_type: "squashfs".into(),
                    target: target.clone(),
                },
            )
            .unwrap_err();
        assert!(e.message.contains("squashfuse"), "{}", e.message);
        assert!(!e.message.contains('\n'));
        let logs = testing::take_logs();
        assert!(
            logs.iter()
                .any(|(_, m)| m.starts_with("squashfuse driver: mounting")),
            "{logs:?}"
        );
        // Nothing was mounted, so stop has nothing to undo.
        reg.stop(DRIVER).unwrap();
    }

    #[test]
    fn other_filesystems_are_refused() {
        let mut reg = FakeDriverRegistrar::default();
        testing::run_register_image_drivers(&build(), false, &mut reg).unwrap();
        let e = reg
            .mount(
                DRIVER,
                &Mount {
                    image: "/x".into(),
                    offset: 0,
                    size: 0,
                    fs_type: "ext3".into(),
                    target: "/mnt".into(),
                },
            )
            .unwrap_err();
        assert_eq!(e.message.as_str(), "cannot mount \"ext3\" filesystems");
        testing::take_logs();
    }
}
