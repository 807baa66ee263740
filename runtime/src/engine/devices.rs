//! Device nodes plugins add to a container (`ContainerSetup::add_device`).
//!
//! Each one is a bind of the host node onto a path under the container's
//! /dev, so it keeps the host node's permissions and the host /dev mount's
//! flags (no node is ever created with mknod). A contained /dev is a tmpfs
//! the engine fills, so the mount point is made there. Without --contain
//! the container's /dev is the host's: a destination the host has is bound
//! over in the container's own mount namespace; when a destination is
//! missing from the host /dev, the container's /dev becomes a tmpfs holding
//! a bind of every host /dev entry instead, so the mount point is never
//! created on the host.

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use super::config::EngineConfig;
use super::plan::Step;

fn bind(src: &Path, dst: PathBuf, recursive: bool) -> Step {
    Step::Bind {
        src: src.to_owned(),
        dst,
        recursive,
        readonly: false,
    }
}

/// The mount point steps for `dst` under a /dev the engine filled itself:
/// its parent dirs below /dev, then an empty file to bind onto.
fn mount_point(dst: &Path) -> Vec<Step> {
    let mut steps: Vec<Step> = dst
        .ancestors()
        .skip(1)
        .take_while(|a| *a != Path::new("/dev"))
        .map(|a| Step::Mkdir(a.to_owned()))
        .collect();
    steps.reverse();
    steps.push(Step::Touch(dst.to_owned()));
    steps
}

/// Whether the host /dev must be rebuilt on a tmpfs for the devices of
/// `cfg` (not contained, and a destination missing from the host /dev).
pub fn needs_own_dev(cfg: &EngineConfig, host_dev: &Path) -> bool {
    !cfg.contain
        && cfg.devices.iter().any(|d| {
            let rel = d.dst.strip_prefix("/dev").unwrap_or(&d.dst);
            std::fs::symlink_metadata(host_dev.join(rel)).is_err()
        })
}

/// The steps making a tmpfs /dev that shows every entry of the host's
/// `host_dev` (dirs bound recursively, nodes and files bound, symlinks
/// copied), for a non-contained container that needs new device paths.
pub fn host_dev_on_tmpfs(host_dev: &Path) -> Vec<Step> {
    let dev = PathBuf::from("/dev");
    let mut steps = vec![Step::Mount {
        fstype: "tmpfs".into(),
        dst: dev.clone(),
        flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        data: Some("mode=755".into()),
    }];
    let Ok(entries) = std::fs::read_dir(host_dev) else {
        return steps;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let Ok(ft) = e.file_type() else { continue };
        let src = e.path();
        let dst = dev.join(e.file_name());
        if ft.is_symlink() {
            if let Ok(target) = std::fs::read_link(&src) {
                steps.push(Step::Symlink { target, link: dst });
            }
        } else if ft.is_dir() {
            steps.push(Step::Mkdir(dst.clone()));
            steps.push(bind(&src, dst, true));
        } else {
            steps.push(Step::Touch(dst.clone()));
            steps.push(bind(&src, dst, false));
        }
    }
    steps
}

/// The steps binding each requested device, after /dev is set up.
/// `own_dev`: the container's /dev is a tmpfs the engine filled (contained,
/// or rebuilt by [`host_dev_on_tmpfs`]).
pub fn device_steps(cfg: &EngineConfig, own_dev: bool) -> Vec<Step> {
    let mut steps = Vec::new();
    for d in &cfg.devices {
        if !own_dev && d.src == d.dst {
            // The host's /dev is the container's: already there.
            continue;
        }
        if own_dev {
            steps.extend(mount_point(&d.dst));
        }
        steps.push(bind(&d.src, d.dst.clone(), false));
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::config::{BindOrigin, DeviceRequest};

    fn cfg(contain: bool, devices: &[(&str, &str)]) -> EngineConfig {
        let mut c = EngineConfig::new("/img", vec!["true".into()]);
        c.contain = contain;
        c.devices = devices
            .iter()
            .map(|(s, d)| DeviceRequest {
                src: s.into(),
                dst: d.into(),
                origin: BindOrigin::Plugin("acme.org/gpu".into()),
            })
            .collect();
        c
    }

    #[test]
    fn contained_devices_get_mount_points_in_the_tmpfs() {
        let c = cfg(true, &[("/dev/null", "/dev/gpu/card0")]);
        assert!(!needs_own_dev(&c, Path::new("/dev")));
        assert_eq!(
            device_steps(&c, true),
            [
                Step::Mkdir("/dev/gpu".into()),
                Step::Touch("/dev/gpu/card0".into()),
                bind(Path::new("/dev/null"), "/dev/gpu/card0".into(), false),
            ]
        );
    }

    #[test]
    fn uncontained_devices_reuse_or_rebuild_the_host_dev() {
        let same = cfg(false, &[("/dev/null", "/dev/null")]);
        assert!(!needs_own_dev(&same, Path::new("/dev")));
        assert!(device_steps(&same, false).is_empty());
        let over = cfg(false, &[("/dev/zero", "/dev/null")]);
        assert_eq!(
            device_steps(&over, false),
            [bind(Path::new("/dev/zero"), "/dev/null".into(), false)]
        );
        let new = cfg(false, &[("/dev/null", "/dev/vessel-no-such-gpu0")]);
        assert!(needs_own_dev(&new, Path::new("/dev")));
        let host = tempfile::tempdir().unwrap();
        std::fs::create_dir(host.path().join("pts")).unwrap();
        std::fs::write(host.path().join("null"), "").unwrap();
        std::os::unix::fs::symlink("/proc/self/fd", host.path().join("fd")).unwrap();
        let steps = host_dev_on_tmpfs(host.path());
        assert!(matches!(&steps[0], Step::Mount { fstype, .. } if fstype == "tmpfs"));
        assert_eq!(
            steps[1..],
            [
                Step::Symlink {
                    target: "/proc/self/fd".into(),
                    link: "/dev/fd".into()
                },
                Step::Touch("/dev/null".into()),
                bind(&host.path().join("null"), "/dev/null".into(), false),
                Step::Mkdir("/dev/pts".into()),
                bind(&host.path().join("pts"), "/dev/pts".into(), true),
            ]
        );
    }
}
