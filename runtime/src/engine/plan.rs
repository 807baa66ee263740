//! The container's filesystem setup as a list of steps: computed from the
//! config and what exists in the image, then applied through [`Syscalls`].
//!
//! Everything here runs in the container's own mount namespace (made
//! private first), so nothing propagates to the host and every mount is
//! released when the namespace dies with its last process. Every path
//! inside the container is resolved inside the root ([`Syscalls::resolve`]),
//! never joined onto it as a string: the image may be hostile.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use super::config::EngineConfig;
use super::privs::Privileges;
use nix::errno::Errno;

use super::sys::{MountAttr, Resolved, Syscalls};
use super::EngineError;

/// Device nodes bound into a minimal (`--contain`) /dev.
pub const CONTAINED_DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Paths hidden from a confined root container, and whether each is a
/// directory (runc's `maskedPaths`).
pub const MASKED: [(&str, bool); 11] = [
    ("/proc/acpi", true),
    ("/proc/asound", true),
    ("/proc/kcore", false),
    ("/proc/keys", false),
    ("/proc/latency_stats", false),
    ("/proc/timer_list", false),
    ("/proc/timer_stats", false),
    ("/proc/sched_debug", false),
    ("/proc/scsi", true),
    ("/sys/firmware", true),
    ("/sys/devices/virtual/powercap", true),
];

/// Paths a confined root container sees read-only (runc's `readonlyPaths`).
pub const READONLY: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// One setup action. Paths named `dst`, `dir`, `file` and `link` are paths
/// inside the container, resolved under the root when the step is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Lock down the mounts the image root is made of (recursively):
    /// nosuid and nodev always, read-only with `readonly`.
    SecureRoot {
        /// Make the whole root read-only.
        readonly: bool,
    },
    /// Bind `src` onto `dst`; `recursive` includes submounts; `readonly`
    /// makes the bind and everything mounted below it read-only.
    Bind {
        /// Host path.
        src: PathBuf,
        /// Target inside the container.
        dst: PathBuf,
        /// rbind instead of bind.
        recursive: bool,
        /// Make read-only (recursively) after binding.
        readonly: bool,
    },
    /// Mount a pseudo filesystem (proc, tmpfs).
    Mount {
        /// Filesystem type, also used as the source name.
        fstype: String,
        /// Target inside the container.
        dst: PathBuf,
        /// Mount flags.
        flags: MsFlags,
        /// Filesystem options.
        data: Option<String>,
    },
    /// Create a directory.
    Mkdir(PathBuf),
    /// Create an empty file to bind a device node onto.
    Touch(PathBuf),
    /// Create a symlink `link` -> `target`.
    Symlink {
        /// What the link points to.
        target: PathBuf,
        /// The link.
        link: PathBuf,
    },
    /// Hide a path if it exists: a read-only empty tmpfs over a directory,
    /// /dev/null over a file.
    Mask {
        /// Path inside the container.
        dst: PathBuf,
        /// It is a directory.
        dir: bool,
    },
    /// Make a path (and everything below it) read-only if it exists.
    ReadonlyInPlace(PathBuf),
    /// Set the hostname (in the UTS namespace).
    Hostname(String),
    /// Bring up loopback in the new network namespace.
    LoopbackUp,
    /// Make the new root `/` and detach the old one.
    PivotRoot,
    /// Change into the first candidate that exists; with `required`, the
    /// first candidate must exist.
    Chdir {
        /// Candidates in order, paths inside the container.
        candidates: Vec<PathBuf>,
        /// The first candidate was asked for explicitly (`--pwd`).
        required: bool,
    },
}

/// What the plan needs to know besides the config.
#[derive(Debug, Clone)]
pub struct PlanInput {
    /// The root is made read-only (it always is today: images are immutable).
    pub readonly_root: bool,
    /// The host working directory, tried when no `--pwd` is given.
    pub host_cwd: Option<PathBuf>,
}

/// Computes the setup steps; `exists` says whether a path inside the
/// container exists (resolved inside the root), so mount points missing
/// from a read-only image are skipped (system mounts) or refused (user
/// binds) instead of failing half-way.
pub fn plan(
    cfg: &EngineConfig,
    input: &PlanInput,
    exists: &dyn Fn(&Path) -> bool,
) -> Result<Vec<Step>, EngineError> {
    let mut steps = vec![Step::SecureRoot {
        readonly: input.readonly_root,
    }];
    let at = |p: &str| Path::new("/").join(p);
    let nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;

    if exists(&at("proc")) {
        if cfg.namespaces.pid {
            steps.push(Step::Mount {
                fstype: "proc".into(),
                dst: at("proc"),
                flags: nodev | MsFlags::MS_NOEXEC,
                data: None,
            });
        } else {
            steps.push(bind("/proc", at("proc"), true, false));
        }
    }
    if exists(&at("sys")) {
        steps.push(bind("/sys", at("sys"), true, false));
    }
    if exists(&at("dev")) {
        if cfg.contain {
            let dev = at("dev");
            // nodev is safe: each device is a bind of the host node, a
            // mount of its own with the host /dev's flags.
            steps.push(Step::Mount {
                fstype: "tmpfs".into(),
                dst: dev.clone(),
                flags: nodev | MsFlags::MS_NOEXEC,
                data: Some("mode=755,size=1m".into()),
            });
            for d in CONTAINED_DEVICES {
                if Path::new("/dev").join(d).exists() {
                    steps.push(Step::Touch(dev.join(d)));
                    steps.push(bind(&format!("/dev/{d}"), dev.join(d), false, false));
                }
            }
            // The terminal the container inherited lives in /dev/pts.
            if Path::new("/dev/pts/ptmx").exists() {
                steps.push(Step::Mkdir(dev.join("pts")));
                steps.push(bind("/dev/pts", dev.join("pts"), false, false));
                steps.push(Step::Symlink {
                    target: "pts/ptmx".into(),
                    link: dev.join("ptmx"),
                });
            }
            steps.push(Step::Mkdir(dev.join("shm")));
            steps.push(Step::Mount {
                fstype: "tmpfs".into(),
                dst: dev.join("shm"),
                flags: nodev,
                data: Some("mode=1777".into()),
            });
            for (name, target) in [
                ("fd", "/proc/self/fd"),
                ("stdin", "/proc/self/fd/0"),
                ("stdout", "/proc/self/fd/1"),
                ("stderr", "/proc/self/fd/2"),
            ] {
                steps.push(Step::Symlink {
                    target: target.into(),
                    link: dev.join(name),
                });
            }
        } else {
            steps.push(bind("/dev", at("dev"), true, false));
        }
    }
    if exists(&at("tmp")) {
        if cfg.contain {
            steps.push(Step::Mount {
                fstype: "tmpfs".into(),
                dst: at("tmp"),
                flags: nodev,
                data: Some("mode=1777".into()),
            });
        } else {
            // Recursive: a non-recursive bind of a tree with mounts below
            // it is refused in a user namespace (they are locked to it).
            steps.push(bind("/tmp", at("tmp"), true, false));
        }
    }
    if let Some(home) = cfg.home_bind() {
        // Inside /tmp the home is already there through the /tmp bind.
        if exists(home) && !home.starts_with("/tmp") {
            steps.push(bind(&home.to_string_lossy(), home.to_owned(), true, false));
        } else {
            tracing::debug!("home {} has no mount point in the image", home.display());
        }
    }
    for b in &cfg.binds {
        if !exists(&b.dst) {
            return Err(EngineError::BindDestination(b.dst.clone()));
        }
        steps.push(Step::Bind {
            src: b.src.clone(),
            dst: b.dst.clone(),
            recursive: true,
            readonly: b.readonly,
        });
    }
    if cfg.privileges != Privileges::Keep && !cfg.namespaces.user {
        // runc's defaults: kernel interfaces a root container must not
        // read or change (core_pattern runs a program as host root).
        for (path, dir) in MASKED {
            steps.push(Step::Mask {
                dst: path.into(),
                dir,
            });
        }
        for path in READONLY {
            steps.push(Step::ReadonlyInPlace(path.into()));
        }
    }
    if let Some(h) = &cfg.hostname {
        steps.push(Step::Hostname(h.clone()));
    }
    if cfg.namespaces.net {
        steps.push(Step::LoopbackUp);
    }
    steps.push(Step::PivotRoot);
    let mut candidates = Vec::new();
    let required = cfg.cwd.is_some();
    candidates.extend(cfg.cwd.clone());
    candidates.extend(input.host_cwd.clone());
    candidates.extend(cfg.home.clone().filter(|_| !cfg.contain));
    candidates.push(PathBuf::from("/"));
    steps.push(Step::Chdir {
        candidates,
        required,
    });
    Ok(steps)
}

fn bind(src: &str, dst: PathBuf, recursive: bool, readonly: bool) -> Step {
    Step::Bind {
        src: src.into(),
        dst,
        recursive,
        readonly,
    }
}

fn setup_error(what: String) -> impl Fn(Errno) -> EngineError {
    move |e: Errno| EngineError::Setup {
        what: what.clone(),
        reason: e.desc().to_lowercase(),
    }
}

/// Resolves `dst` inside `root` for a mount; a path that does not resolve
/// (a symlink pointing nowhere inside the root, a missing directory) is an
/// error naming it.
fn target(sys: &mut dyn Syscalls, root: &Path, dst: &Path) -> Result<Resolved, EngineError> {
    sys.resolve(root, dst).map_err(|e| EngineError::Setup {
        what: format!("mount point {} in the container", dst.display()),
        reason: e.desc().to_lowercase(),
    })
}

/// Applies the steps to the image mounted at `root`, in order; the first
/// failure is an error naming the step.
pub fn apply(steps: &[Step], root: &Path, sys: &mut dyn Syscalls) -> Result<(), EngineError> {
    for step in steps {
        match step {
            Step::SecureRoot { readonly } => {
                let mut attr = MountAttr::NOSUID | MountAttr::NODEV;
                if *readonly {
                    attr = attr | MountAttr::RDONLY;
                }
                sys.mount_setattr(root, attr, true)
                    .map_err(setup_error(format!("securing {}", root.display())))?;
            }
            Step::Bind {
                src,
                dst,
                recursive,
                readonly,
            } => {
                let mut flags = MsFlags::MS_BIND;
                if *recursive {
                    flags |= MsFlags::MS_REC;
                }
                let t = target(sys, root, dst)?;
                sys.mount(Some(src), t.path(), None, flags, None)
                    .map_err(setup_error(format!(
                        "binding {} to {}",
                        src.display(),
                        dst.display()
                    )))?;
                if *readonly {
                    // The descriptor names the directory under the new
                    // mount: resolve again to reach the bind itself.
                    let t = target(sys, root, dst)?;
                    sys.mount_setattr(t.path(), MountAttr::RDONLY, true)
                        .map_err(setup_error(format!("making {} read-only", dst.display())))?;
                }
            }
            Step::Mount {
                fstype,
                dst,
                flags,
                data,
            } => {
                let t = target(sys, root, dst)?;
                sys.mount(
                    Some(Path::new(fstype)),
                    t.path(),
                    Some(fstype),
                    *flags,
                    data.as_deref(),
                )
                .map_err(setup_error(format!(
                    "mounting {fstype} on {}",
                    dst.display()
                )))?
            }
            Step::Mkdir(d) => sys
                .mkdir_in(root, d, 0o755)
                .map_err(setup_error(format!("creating {}", d.display())))?,
            Step::Touch(f) => sys
                .touch_in(root, f)
                .map_err(setup_error(format!("creating {}", f.display())))?,
            Step::Symlink { target, link } => sys
                .symlink_in(root, target, link)
                .map_err(setup_error(format!("creating {}", link.display())))?,
            Step::Mask { dst, dir } => {
                // Present or not depends on the kernel: absent is fine.
                let Ok(t) = sys.resolve(root, dst) else {
                    continue;
                };
                let what = setup_error(format!("masking {}", dst.display()));
                if *dir {
                    sys.mount(
                        Some(Path::new("tmpfs")),
                        t.path(),
                        Some("tmpfs"),
                        MsFlags::MS_RDONLY
                            | MsFlags::MS_NOSUID
                            | MsFlags::MS_NODEV
                            | MsFlags::MS_NOEXEC,
                        Some("size=0"),
                    )
                    .map_err(what)?;
                } else {
                    sys.mount(
                        Some(Path::new("/dev/null")),
                        t.path(),
                        None,
                        MsFlags::MS_BIND,
                        None,
                    )
                    .map_err(what)?;
                }
            }
            Step::ReadonlyInPlace(dst) => {
                let Ok(t) = sys.resolve(root, dst) else {
                    continue;
                };
                let what = setup_error(format!("making {} read-only", dst.display()));
                sys.mount(
                    Some(t.path()),
                    t.path(),
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                )
                .map_err(&what)?;
                let t = target(sys, root, dst)?;
                sys.mount_setattr(t.path(), MountAttr::RDONLY, true)
                    .map_err(&what)?;
            }
            Step::Hostname(h) => sys
                .sethostname(h)
                .map_err(setup_error(format!("setting hostname {h:?}")))?,
            Step::LoopbackUp => sys
                .loopback_up()
                .map_err(setup_error("bringing up loopback".into()))?,
            Step::PivotRoot => {
                // pivot_root(".", ".") stacks the old root on top of the new
                // one, so no put_old directory is needed in a read-only image.
                let f = setup_error(format!("pivot_root to {}", root.display()));
                sys.chdir(root).map_err(&f)?;
                sys.pivot_root(Path::new("."), Path::new(".")).map_err(&f)?;
                sys.umount2(Path::new("."), MntFlags::MNT_DETACH)
                    .map_err(&f)?;
                sys.chdir(Path::new("/")).map_err(&f)?;
            }
            Step::Chdir {
                candidates,
                required,
            } => {
                let mut done = false;
                for (i, c) in candidates.iter().enumerate() {
                    match sys.chdir(c) {
                        Ok(()) => {
                            done = true;
                            break;
                        }
                        Err(e) if i == 0 && *required => {
                            return Err(EngineError::Setup {
                                what: format!("changing to working directory {}", c.display()),
                                reason: e.desc().to_lowercase(),
                            })
                        }
                        Err(_) => {}
                    }
                }
                if !done {
                    return Err(EngineError::Setup {
                        what: "changing to a working directory".into(),
                        reason: "none of the candidates exists".into(),
                    });
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
            readonly_root: true,
            host_cwd: Some("/work".into()),
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
    fn missing_mount_points_skip_system_mounts_and_refuse_binds() {
        let mut c = cfg();
        let steps = plan(&c, &input(), &|p| p != Path::new("/sys")).unwrap();
        assert!(!steps
            .iter()
            .any(|s| matches!(s, Step::Bind { src, .. } if src == Path::new("/sys"))));
        c.binds.push(Bind::parse("/etc:/nope").unwrap());
        let e = plan(&c, &input(), &|p| p != Path::new("/nope")).unwrap_err();
        assert!(e.to_string().contains("/nope"), "{e}");
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
}
