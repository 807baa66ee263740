//! Plan and apply checked with the recording Syscalls double.

use super::*;
use crate::engine::config::Bind;
use crate::engine::hostdirs::HostDir;
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
        pinned: Default::default(),
    }
}

fn paths(c: &[Workdir]) -> Vec<&Path> {
    c.iter().map(|w| w.path.as_path()).collect()
}

#[test]
fn default_plan_rbinds_host_dirs_and_pivots() {
    let steps = plan(&cfg(), &input(), &|_| true).unwrap();
    assert_eq!(steps[0], Step::SecureRoot { readonly: true });
    assert!(steps.contains(&bind("/proc", "/proc".into(), true, false)));
    assert!(steps.contains(&bind("/dev", "/dev".into(), true, false)));
    // Recursive, so host mounts under /tmp do not break the bind.
    assert!(steps.contains(&bind("/tmp", "/tmp".into(), true, false)));
    assert!(steps.contains(&Step::PivotRoot));
    let Step::Chdir {
        candidates,
        required: false,
    } = steps.last().unwrap()
    else {
        panic!("{steps:#?}")
    };
    assert_eq!(paths(candidates), ["/work", "/root", "/"].map(Path::new));
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
        matches!(steps.last().unwrap(), Step::Chdir { candidates, required: true } if paths(candidates) == [Path::new("/data")])
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

fn host_dir(p: &str, ino: u64) -> HostDir {
    HostDir {
        path: p.into(),
        id: (1, ino),
    }
}

/// The caller alice, home /home/alice, in /home/alice/proj or `cwd`.
fn alice(cwd: &str) -> (EngineConfig, PlanInput) {
    let mut c = EngineConfig::new("/img", vec!["/bin/true".into()]);
    c.home = Some("/home/alice".into());
    let mut i = input();
    i.host_cwd = Some(cwd.into());
    i.pinned.home = Some(host_dir("/home/alice", 2));
    i.pinned.cwd = Some(host_dir(cwd, 3));
    (c, i)
}

fn host_binds(steps: &[Step]) -> Vec<(&Path, &Path, &BindOrigin)> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::BindHost { src, dst, origin } => {
                Some((src.path.as_path(), dst.as_path(), origin))
            }
            _ => None,
        })
        .collect()
}

fn position(steps: &[Step], f: impl Fn(&Step) -> bool) -> usize {
    steps
        .iter()
        .position(f)
        .unwrap_or_else(|| panic!("{steps:#?}"))
}

#[test]
fn home_and_cwd_are_bound_at_their_own_paths_with_mount_points_made_when_missing() {
    let (mut c, i) = alice("/srv/data");
    c.binds.push(Bind::parse("/etc:/mnt/etc").unwrap());
    // The image has neither /home/alice nor /srv.
    let exists = |p: &Path| !p.starts_with("/home/alice") && !p.starts_with("/srv");
    let steps = plan(&c, &i, &exists).unwrap();
    assert_eq!(
        host_binds(&steps),
        [
            (
                Path::new("/home/alice"),
                Path::new("/home/alice"),
                &BindOrigin::Home
            ),
            (
                Path::new("/srv/data"),
                Path::new("/srv/data"),
                &BindOrigin::Cwd
            ),
        ]
    );
    // One underlay per deepest existing dir, outermost first, naming who
    // asked for each mount point.
    assert_eq!(
        steps[1],
        Step::Underlay {
            dir: "/".into(),
            staging: "/w/underlay0".into(),
            create: vec![MountPoint {
                dst: "/srv/data".into(),
                dir: true,
                origin: BindOrigin::Cwd
            }],
        }
    );
    assert!(matches!(&steps[2], Step::Underlay { dir, create, .. }
        if dir == Path::new("/home") && create[0].origin == BindOrigin::Home));
    // Home after /tmp, the cwd after the user's binds.
    let tmp = position(&steps, |s| *s == bind("/tmp", "/tmp".into(), true, false));
    let home = position(&steps, |s| {
        matches!(
            s,
            Step::BindHost {
                origin: BindOrigin::Home,
                ..
            }
        )
    });
    let user = position(
        &steps,
        |s| matches!(s, Step::Bind { src, .. } if src == Path::new("/etc")),
    );
    let cwd = position(&steps, |s| {
        matches!(
            s,
            Step::BindHost {
                origin: BindOrigin::Cwd,
                ..
            }
        )
    });
    assert!(tmp < home && home < user && user < cwd, "{steps:#?}");
    let Some(Step::Chdir { candidates, .. }) = steps.last() else {
        panic!("{steps:#?}")
    };
    assert_eq!(
        paths(candidates),
        ["/srv/data", "/home/alice", "/"].map(Path::new)
    );
    assert_eq!(candidates[0].why, "the current directory");
    // With a writable layer the mount points are made in it.
    let mut i = i;
    i.layer = Some(Layer::Tmpfs);
    let steps = plan(&c, &i, &exists).unwrap();
    assert!(!steps.iter().any(|s| matches!(s, Step::Underlay { .. })));
    assert!(steps.contains(&Step::MountPoint(MountPoint {
        dst: "/home/alice".into(),
        dir: true,
        origin: BindOrigin::Home
    })));
}

#[test]
fn the_cwd_is_not_bound_when_a_system_dir_or_already_there() {
    for cwd in [
        "/usr",
        "/",
        "/etc",
        "/proc/1",
        "/home/alice/proj",
        "/tmp/x",
        "/data/x",
    ] {
        let (mut c, i) = alice(cwd);
        c.binds.push(Bind::parse("/data").unwrap());
        let steps = plan(&c, &i, &|_| true).unwrap();
        assert!(
            !host_binds(&steps)
                .iter()
                .any(|(_, _, o)| **o == BindOrigin::Cwd),
            "{cwd}: {steps:#?}"
        );
        // Still the first place to start in (the image's own /usr).
        let Some(Step::Chdir { candidates, .. }) = steps.last() else {
            panic!()
        };
        assert_eq!(candidates[0].path, Path::new(cwd));
    }
    // --no-mount cwd and --contain: never bound.
    for f in [
        (|c: &mut EngineConfig| c.mount_cwd = false) as fn(&mut EngineConfig),
        |c| c.contain = true,
    ] {
        let (mut c, i) = alice("/srv");
        f(&mut c);
        let steps = plan(&c, &i, &|_| true).unwrap();
        assert!(!host_binds(&steps)
            .iter()
            .any(|(_, _, o)| **o == BindOrigin::Cwd));
    }
}

#[test]
fn contain_gives_an_empty_home_and_no_home_gives_none() {
    let (mut c, i) = alice("/srv");
    c.contain = true;
    let steps = plan(&c, &i, &|p| !p.starts_with("/home/alice")).unwrap();
    assert!(host_binds(&steps).is_empty(), "{steps:#?}");
    assert!(steps.contains(&Step::Mount {
        fstype: "tmpfs".into(),
        dst: "/home/alice".into(),
        flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        data: Some("mode=700".into()),
    }));
    assert!(
        matches!(&steps[1], Step::Underlay { create, .. } if create[0].dst == Path::new("/home/alice"))
    );
    // A home below the contained /tmp: its mount point goes in that tmpfs.
    c.home = Some("/tmp/h/alice".into());
    let steps = plan(&c, &i, &|p| !p.starts_with("/tmp/h")).unwrap();
    let tmp = position(
        &steps,
        |s| matches!(s, Step::Mount { dst, .. } if dst == Path::new("/tmp")),
    );
    let mp = position(
        &steps,
        |s| matches!(s, Step::MountPoint(m) if m.dst == Path::new("/tmp/h/alice")),
    );
    let home = position(
        &steps,
        |s| matches!(s, Step::Mount { dst, .. } if dst == Path::new("/tmp/h/alice")),
    );
    assert!(tmp < mp && mp < home);
    assert!(!steps.iter().any(|s| matches!(s, Step::Underlay { .. })));
    // --no-home: nothing at all.
    let (mut c, i) = alice("/srv");
    c.mount_home = false;
    for contain in [false, true] {
        c.contain = contain;
        let steps = plan(&c, &i, &|_| true).unwrap();
        assert!(!steps.iter().any(|s| matches!(s, Step::Mount { dst, .. } | Step::BindHost { dst, .. } if dst.starts_with("/home"))));
    }
}

#[test]
fn fakeroot_starts_in_root_and_custom_homes_bind_elsewhere() {
    let (mut c, mut i) = alice("/");
    c.fakeroot = true;
    i.pinned.home = None;
    let steps = plan(&c, &i, &|_| true).unwrap();
    assert!(host_binds(&steps).is_empty());
    let Some(Step::Chdir { candidates, .. }) = steps.last() else {
        panic!()
    };
    assert_eq!(paths(candidates), ["/", "/root", "/"].map(Path::new));
    // --home /data/alice:/home/bob (even under --fakeroot).
    c.home_source = Some("/data/alice".into());
    c.home = Some("/home/bob".into());
    i.pinned.home = Some(host_dir("/data/alice", 9));
    let steps = plan(&c, &i, &|_| true).unwrap();
    assert_eq!(
        host_binds(&steps),
        [(
            Path::new("/data/alice"),
            Path::new("/home/bob"),
            &BindOrigin::Home
        )]
    );
}

#[test]
fn a_home_reached_through_the_host_tmp_is_not_mounted_there() {
    // Visible at its own path through the /tmp bind: nothing to do.
    let (mut c, mut i) = alice("/srv");
    c.home = Some("/tmp/u/alice".into());
    i.pinned.home = Some(host_dir("/tmp/u/alice", 2));
    let steps = plan(&c, &i, &|_| true).unwrap();
    assert!(!host_binds(&steps)
        .iter()
        .any(|(_, _, o)| **o == BindOrigin::Home));
    // A /tmp path that resolves elsewhere (a symlink someone planted in
    // /tmp): its mount point would be looked up in the host's /tmp.
    i.pinned.home = Some(host_dir("/etc", 2));
    let steps = plan(&c, &i, &|_| true).unwrap();
    assert!(!host_binds(&steps)
        .iter()
        .any(|(_, _, o)| **o == BindOrigin::Home));
    c.home_source = Some("/etc".into());
    let e = plan(&c, &i, &|_| true).unwrap_err().to_string();
    assert!(
        e.starts_with("bind destination /tmp/u/alice (from the home mount"),
        "{e}"
    );
}

#[test]
fn a_host_dir_is_reopened_by_identity_then_bound() {
    let mut rec = Recorder::default();
    let step = Step::BindHost {
        src: host_dir("/home/alice", 7),
        dst: "/home/alice".into(),
        origin: BindOrigin::Home,
    };
    apply(&[step], Path::new("/r"), &mut rec).unwrap();
    assert_eq!(
        rec.calls,
        [
            "open /home/alice 1:7",
            "mount /home/alice -> /r/home/alice - MS_BIND | MS_REC"
        ]
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
