//! Plan and apply checked with the recording Syscalls double.

use super::*;
use crate::engine::config::Bind;
use crate::engine::sys::Recorder;

fn cfg() -> EngineConfig {
    let mut c = EngineConfig::new("/img", vec!["/bin/true".into()]);
    c.home = Some("/root".into());
    c
}

fn input() -> PlanInput {
    PlanInput {
        host_cwd: Some("/work".into()),
        workdir: "/w".into(),
        layer: None,
    }
}

#[test]
fn default_plan_rbinds_host_dirs_and_pivots() {
    let steps = plan(&cfg(), &input(), &|_| true).unwrap();
    assert_eq!(steps[0], Step::SecureRoot { readonly: true });
    assert!(steps.contains(&bind("/proc", "/proc".into(), true, false)));
    assert!(steps.contains(&bind("/dev", "/dev".into(), true, false)));
    // Recursive, so host mounts under /tmp do not break the bind.
    assert!(steps.contains(&bind("/tmp", "/tmp".into(), true, false)));
    assert!(steps.contains(&bind("/root", "/root".into(), true, false)));
    assert!(steps.contains(&Step::PivotRoot));
    let last = steps.last().unwrap();
    assert_eq!(
        last,
        &Step::Chdir {
            candidates: vec!["/work".into(), "/root".into(), "/".into()],
            required: false
        }
    );
}

#[test]
fn contain_pid_and_hostname() {
    let mut c = cfg();
    c.contain = true;
    c.namespaces.pid = true;
    c.namespaces.net = true;
    c.hostname = Some("box".into());
    c.cwd = Some("/data".into());
    let steps = plan(&c, &input(), &|_| true).unwrap();
    assert!(steps.iter().any(|s| matches!(s, Step::Mount { fstype, dst, .. } if fstype == "proc" && dst == Path::new("/proc"))));
    assert!(steps.iter().any(|s| matches!(s, Step::Mount { fstype, dst, flags, .. } if fstype == "tmpfs" && dst == Path::new("/dev") && flags.contains(MsFlags::MS_NOSUID | MsFlags::MS_NODEV))));
    assert!(steps.contains(&bind("/dev/null", "/dev/null".into(), false, false)));
    assert!(!steps.iter().any(|s| matches!(s, Step::Bind { src, .. } if src == Path::new("/root") || src == Path::new("/tmp"))));
    assert!(steps.contains(&Step::Hostname("box".into())));
    assert!(steps.contains(&Step::LoopbackUp));
    assert!(
        matches!(steps.last().unwrap(), Step::Chdir { candidates, required: true } if candidates[0] == Path::new("/data"))
    );
}

#[test]
fn only_confined_root_containers_get_masked_paths() {
    let masked = |c: &EngineConfig| {
        plan(c, &input(), &|_| true)
            .unwrap()
            .iter()
            .filter(|s| matches!(s, Step::Mask { .. } | Step::ReadonlyInPlace(_)))
            .count()
    };
    let mut c = cfg();
    assert_eq!(masked(&c), MASKED.len() + READONLY.len());
    c.privileges = Privileges::None;
    assert_eq!(masked(&c), MASKED.len() + READONLY.len());
    c.privileges = Privileges::Keep;
    assert_eq!(masked(&c), 0);
    c.privileges = Privileges::Default;
    c.namespaces.user = true;
    assert_eq!(masked(&c), 0);
}

#[test]
fn missing_mount_points_skip_system_mounts_and_underlay_binds() {
    let mut c = cfg();
    let steps = plan(&c, &input(), &|p| p != Path::new("/sys")).unwrap();
    assert!(!steps
        .iter()
        .any(|s| matches!(s, Step::Bind { src, .. } if src == Path::new("/sys"))));
    c.binds.push(Bind::parse("/etc:/usr/local/gpu").unwrap());
    c.binds
        .push(Bind::parse("/etc/hostname:/usr/local/h").unwrap());
    c.binds.push(Bind::parse("/etc:/opt/a/b").unwrap());
    let missing = |p: &Path| !p.starts_with("/usr/local") && !p.starts_with("/opt");
    let steps = plan(&c, &input(), &missing).unwrap();
    // Right after the root is locked down, outermost first.
    assert_eq!(
        steps[1],
        Step::Underlay {
            dir: "/".into(),
            staging: "/w/underlay0".into(),
            create: vec![MountPoint {
                dst: "/opt/a/b".into(),
                dir: true,
                origin: BindOrigin::Flag
            }],
        }
    );
    assert!(matches!(&steps[2], Step::Underlay { dir, create, .. }
        if dir == Path::new("/usr") && create.len() == 2 && !create[1].dir));
    // With a writable layer the mount points are made in it.
    let mut i = input();
    i.layer = Some(Layer::Tmpfs);
    let steps = plan(&c, &i, &missing).unwrap();
    assert!(matches!(
        &steps[1],
        Step::Overlay {
            layer: Layer::Tmpfs,
            userxattr: false,
            ..
        }
    ));
    assert!(matches!(&steps[2], Step::MountPoint(m) if m.dst == Path::new("/usr/local/gpu")));
    assert!(!steps.iter().any(|s| matches!(s, Step::Underlay { .. })));
}

#[test]
fn an_underlay_binds_every_entry_then_makes_the_mount_point_read_only() {
    use crate::engine::sys::{DirEntry, EntryKind};
    let mut rec = Recorder::default();
    let entry = |n: &str, kind| DirEntry {
        name: n.into(),
        kind,
    };
    rec.dirs.insert(
        "/usr".into(),
        vec![
            entry("bin", EntryKind::Dir),
            entry("lib64", EntryKind::Symlink("lib".into())),
            entry("x", EntryKind::Other),
        ],
    );
    let step = Step::Underlay {
        dir: "/usr".into(),
        staging: "/w/underlay0".into(),
        create: vec![MountPoint {
            dst: "/usr/local/gpu".into(),
            dir: true,
            origin: BindOrigin::Plugin("acme.org/gpu".into()),
        }],
    };
    apply(&[step], Path::new("/r"), &mut rec).unwrap();
    assert_eq!(
        rec.calls,
        [
            "mkdir /w/underlay0",
            "mount tmpfs -> /w/underlay0 tmpfs MS_NOSUID | MS_NODEV mode=755",
            "readdir /r/usr",
            "mkdir /w/underlay0/bin",
            "mount /r/usr/bin -> /w/underlay0/bin - MS_BIND | MS_REC",
            "symlink lib /w/underlay0/lib64",
            "touch /w/underlay0/x",
            "mount /r/usr/x -> /w/underlay0/x - MS_BIND",
            "mount /w/underlay0 -> /r/usr - MS_BIND | MS_REC",
            "mkdir /r/usr",
            "mkdir /r/usr/local",
            "mkdir /r/usr/local/gpu",
            "setattr /r/usr rdonly,nosuid,nodev recursive",
        ]
    );
    // A failure names the bind's asker.
    let mut rec = Recorder::default();
    let step = Step::Underlay {
        dir: "/nodir".into(),
        staging: "/w/underlay0".into(),
        create: vec![MountPoint {
            dst: "/nodir/gpu".into(),
            dir: true,
            origin: BindOrigin::Plugin("acme.org/gpu".into()),
        }],
    };
    let e = apply(&[step], Path::new("/r"), &mut rec)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(r#"bind destination /nodir/gpu (from plugin "acme.org/gpu"): "#),
        "{e}"
    );
}

#[test]
fn a_writable_layer_stacks_an_overlay_on_the_locked_down_image() {
    let mut rec = Recorder::default();
    let steps = [
        Step::SecureRoot { readonly: true },
        Step::Overlay {
            layer: Layer::Tmpfs,
            workdir: "/w".into(),
            userxattr: true,
        },
    ];
    apply(&steps, Path::new("/w/root"), &mut rec).unwrap();
    assert_eq!(
        rec.calls,
        [
            "setattr /w/root rdonly,nosuid,nodev recursive",
            "mkdir /w/layer",
            "mount tmpfs -> /w/layer tmpfs MS_NOSUID | MS_NODEV mode=700",
            "mkdir /w/layer/upper",
            "mkdir /w/layer/work",
            "mount overlay -> /w/root overlay MS_NOSUID | MS_NODEV lowerdir=/w/root/.,upperdir=/w/layer/upper,workdir=/w/layer/work,userxattr",
        ]
    );
    let mut rec = Recorder::default();
    let step = Step::Overlay {
        layer: Layer::Dirs {
            upper: "/o/upper".into(),
            upper_id: (1, 2),
            work: "/o/work".into(),
            work_id: (1, 3),
        },
        workdir: "/w".into(),
        userxattr: false,
    };
    apply(&[step], Path::new("/w/root"), &mut rec).unwrap();
    assert_eq!(
        rec.calls,
        [
            "open /o/upper 1:2",
            "open /o/work 1:3",
            "mount overlay -> /w/root overlay MS_NOSUID | MS_NODEV lowerdir=/w/root/.,upperdir=/o/upper,workdir=/o/work"
        ]
    );
}

#[test]
fn ro_binds_are_made_read_only_recursively_through_the_resolved_target() {
    let mut rec = Recorder::default();
    apply(
        &[bind("/a", "/x/a".into(), true, true)],
        Path::new("/r"),
        &mut rec,
    )
    .unwrap();
    assert_eq!(
        rec.calls,
        [
            "mount /a -> /r/x/a - MS_BIND | MS_REC",
            "setattr /r/x/a rdonly recursive"
        ]
    );
}

#[test]
fn the_root_is_locked_down_recursively() {
    let mut rec = Recorder::default();
    let r = Path::new("/r");
    apply(&[Step::SecureRoot { readonly: true }], r, &mut rec).unwrap();
    apply(&[Step::SecureRoot { readonly: false }], r, &mut rec).unwrap();
    assert_eq!(
        rec.calls,
        [
            "setattr /r rdonly,nosuid,nodev recursive",
            "setattr /r nosuid,nodev recursive"
        ]
    );
}

#[test]
fn apply_pivots_without_put_old() {
    let mut rec = Recorder::default();
    apply(&[Step::PivotRoot], Path::new("/r"), &mut rec).unwrap();
    assert_eq!(
        rec.calls,
        ["chdir /r", "pivot_root . .", "umount .", "chdir /"]
    );
}

#[test]
fn plugin_devices_are_bound_through_syscalls_into_a_contained_dev() {
    use crate::engine::config::{BindOrigin, DeviceRequest};
    let mut c = cfg();
    c.contain = true;
    c.devices.push(DeviceRequest {
        src: "/dev/null".into(),
        dst: "/dev/gpu/card0".into(),
        origin: BindOrigin::Plugin("acme.org/gpu".into()),
    });
    let steps = plan(&c, &input(), &|_| true).unwrap();
    let dev_tmpfs = steps
        .iter()
        .position(|s| matches!(s, Step::Mount { fstype, dst, .. } if fstype == "tmpfs" && dst == Path::new("/dev")))
        .unwrap();
    let card = steps
        .iter()
        .position(|s| *s == bind("/dev/null", "/dev/gpu/card0".into(), false, false))
        .unwrap();
    assert!(dev_tmpfs < card, "bound after /dev is made");
    let mut rec = Recorder::default();
    apply(&steps[card - 2..=card], Path::new("/w/root"), &mut rec).unwrap();
    assert_eq!(rec.calls.len(), 3, "{:?}", rec.calls);
    assert!(rec.calls[0].contains("/dev/gpu"), "{:?}", rec.calls);
    assert!(rec.calls[1].contains("/dev/gpu/card0"), "{:?}", rec.calls);
    assert!(
        rec.calls[2].starts_with("mount /dev/null -> ") && rec.calls[2].contains("MS_BIND"),
        "{:?}",
        rec.calls
    );
}
