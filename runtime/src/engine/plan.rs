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

use super::config::{BindOrigin, EngineConfig};
use super::privs::Privileges;
use nix::errno::Errno;

use super::sys::{EntryKind, MountAttr, Resolved, Syscalls};
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
    /// Stack a writable overlay over the (read-only) image at the root.
    Overlay {
        /// Where the upper and work dirs come from.
        layer: Layer,
        /// The run's private work dir (host path).
        workdir: PathBuf,
        /// In a user namespace: overlay keeps its metadata in user.* xattrs.
        userxattr: bool,
    },
    /// Make mount points below `dir` (an existing directory of a read-only
    /// image) without writing to the image, as Apptainer's underlay does:
    /// a tmpfs in `staging` (a host path in the private work dir) gets one
    /// bind per entry of `dir`, is bound over `dir`, the mount points are
    /// made in it, and it is made read-only.
    Underlay {
        /// The existing directory inside the container.
        dir: PathBuf,
        /// Host dir the tmpfs is put together in.
        staging: PathBuf,
        /// The mount points to make below `dir`.
        create: Vec<MountPoint>,
    },
    /// Make a mount point (and its missing parents) in a writable root.
    MountPoint(MountPoint),
    /// Bind a host dir the caller opened before launch (home, cwd) onto
    /// `dst`, recursively, if the path still names the same inode.
    BindHost {
        /// The host dir.
        src: super::hostdirs::HostDir,
        /// Target inside the container.
        dst: PathBuf,
        /// Who asked for it (named in errors).
        origin: BindOrigin,
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
        /// Candidates in order.
        candidates: Vec<Workdir>,
        /// The first candidate was asked for explicitly (`--pwd`).
        required: bool,
    },
}

/// A bind destination missing from the image, to be made for the bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPoint {
    /// Path inside the container.
    pub dst: PathBuf,
    /// A directory (else an empty file, for a file bind).
    pub dir: bool,
    /// Who asked for the bind.
    pub origin: BindOrigin,
}

/// A working directory candidate and why it is one (logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workdir {
    /// Path inside the container.
    pub path: PathBuf,
    /// What it is: "--pwd", "the current directory", ...
    pub why: String,
}

/// Where a writable layer keeps its changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layer {
    /// On a tmpfs in the private work dir: gone at exit (`--writable-tmpfs`).
    Tmpfs,
    /// In caller-owned dirs (`--overlay DIR`), checked by the runtime
    /// before the container's mount namespace existed; reopened there and
    /// required to be the same inodes (dev, ino).
    Dirs {
        /// The overlay's upper dir (the changes).
        upper: PathBuf,
        /// Its (dev, ino).
        upper_id: (u64, u64),
        /// The overlay's work dir (same filesystem as `upper`).
        work: PathBuf,
        /// Its (dev, ino).
        work_id: (u64, u64),
    },
}

/// What the plan needs to know besides the config.
#[derive(Debug, Clone)]
pub struct PlanInput {
    /// The host working directory, tried when no `--pwd` is given.
    pub host_cwd: Option<PathBuf>,
    /// The run's private (0700) work dir: layers and staging dirs go there.
    pub workdir: PathBuf,
    /// A writable layer over the image, if asked for.
    pub layer: Option<Layer>,
    /// The host home and current directory to bind, opened before launch.
    pub pinned: super::hostdirs::Pinned,
}

/// The mount points for binds whose destination is missing from the
/// image: with a writable layer, made in it; else grouped under their
/// deepest existing ancestor, each group one underlay (outermost first, so
/// a nested underlay sees through the one around it).
fn mount_points(
    cfg: &EngineConfig,
    input: &PlanInput,
    engine: &[MountPoint],
    exists: &dyn Fn(&Path) -> bool,
) -> Result<Vec<Step>, EngineError> {
    let mut groups: Vec<(PathBuf, Vec<MountPoint>)> = Vec::new();
    let mut steps = Vec::new();
    let binds = cfg
        .binds
        .iter()
        .filter(|b| !exists(&b.dst))
        .map(|b| MountPoint {
            dst: b.dst.clone(),
            dir: b.src.is_dir(),
            origin: b.origin.clone(),
        });
    for mp in engine.iter().cloned().chain(binds) {
        if input.layer.is_some() {
            steps.push(Step::MountPoint(mp));
            continue;
        }
        let Some(anc) = mp.dst.ancestors().skip(1).find(|a| exists(a)) else {
            return Err(EngineError::BindDestination {
                dst: mp.dst.clone(),
                origin: mp.origin.clone(),
                reason: "no directory above it exists in the image".into(),
            });
        };
        let anc = anc.to_owned();
        match groups.iter_mut().find(|(a, _)| *a == anc) {
            Some((_, g)) => g.push(mp),
            None => groups.push((anc, vec![mp])),
        }
    }
    groups.sort_by_key(|(a, _)| a.components().count());
    for (i, (dir, create)) in groups.into_iter().enumerate() {
        steps.push(Step::Underlay {
            dir,
            staging: input.workdir.join(format!("underlay{i}")),
            create,
        });
    }
    Ok(steps)
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
    // The image itself is never written: a writable layer stacks on it.
    let mut steps = vec![Step::SecureRoot { readonly: true }];
    if let Some(layer) = &input.layer {
        steps.push(Step::Overlay {
            layer: layer.clone(),
            workdir: input.workdir.clone(),
            userxattr: cfg.namespaces.user,
        });
    }
    let engine = super::hostdirs::plan(cfg, input, exists)?;
    // Before any other mount: an underlay of `/` or of a dir holding a
    // mount point would hide what was mounted there.
    steps.extend(mount_points(cfg, input, &engine.wants, exists)?);
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
        // Devices plugins add at paths the host /dev lacks need a /dev of
        // the container's own (see `devices`).
        let own_dev = cfg.contain || super::devices::needs_own_dev(cfg, Path::new("/dev"));
        if !cfg.contain && own_dev {
            steps.extend(super::devices::host_dev_on_tmpfs(Path::new("/dev")));
        } else if cfg.contain {
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
        steps.extend(super::devices::device_steps(cfg, own_dev));
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
    steps.extend(engine.home);
    for b in &cfg.binds {
        steps.push(Step::Bind {
            src: b.src.clone(),
            dst: b.dst.clone(),
            recursive: true,
            readonly: b.readonly,
        });
    }
    steps.extend(engine.cwd);
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
    steps.push(Step::Chdir {
        candidates: engine.chdir,
        required: cfg.cwd.is_some(),
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

/// Makes `mp` and its missing parents inside the root (resolved there).
fn make_mount_point(
    sys: &mut dyn Syscalls,
    root: &Path,
    mp: &MountPoint,
) -> Result<(), EngineError> {
    let parents: Vec<&Path> = mp.dst.ancestors().skip(1).collect();
    let mut r = Ok(());
    for p in parents.iter().rev().skip(1) {
        r = r.and_then(|()| sys.mkdir_in(root, p, 0o755));
    }
    r = r.and_then(|()| {
        if mp.dir {
            sys.mkdir_in(root, &mp.dst, 0o755)
        } else {
            sys.touch_in(root, &mp.dst)
        }
    });
    r.map_err(|e| EngineError::BindDestination {
        dst: mp.dst.clone(),
        origin: mp.origin.clone(),
        reason: format!("making the mount point: {}", e.desc().to_lowercase()),
    })
}

/// Builds an underlay of `dir` (see [`Step::Underlay`]).
fn underlay(sys: &mut dyn Syscalls, root: &Path, dir: &Path, staging: &Path) -> Result<(), Errno> {
    let (Some(parent), Some(name)) = (staging.parent(), staging.file_name()) else {
        return Err(Errno::EINVAL);
    };
    sys.mkdir_in(parent, &Path::new("/").join(name), 0o700)?;
    sys.mount(
        Some(Path::new("tmpfs")),
        staging,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=755"),
    )?;
    for e in sys.read_dir_in(root, dir)? {
        let inside = Path::new("/").join(&e.name);
        match e.kind {
            EntryKind::Symlink(target) => sys.symlink_in(staging, &target, &inside)?,
            kind => {
                let flags = if kind == EntryKind::Dir {
                    sys.mkdir_in(staging, &inside, 0o755)?;
                    MsFlags::MS_BIND | MsFlags::MS_REC
                } else {
                    sys.touch_in(staging, &inside)?;
                    MsFlags::MS_BIND
                };
                // A bind of the locked-down image keeps its ro/nosuid/nodev.
                let from = sys.resolve(root, &dir.join(&e.name))?;
                let to = sys.resolve(staging, &inside)?;
                sys.mount(Some(from.path()), to.path(), None, flags, None)?;
            }
        }
    }
    let t = sys.resolve(root, dir)?;
    sys.mount(
        Some(staging),
        t.path(),
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )
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
            Step::Overlay {
                layer,
                workdir,
                userxattr,
            } => {
                let f = setup_error("mounting the writable layer".into());
                // Kept alive until the mount: they name the dirs exactly.
                let (upper, work, _held) = match layer {
                    Layer::Tmpfs => {
                        let t = workdir.join("layer");
                        sys.mkdir_in(workdir, Path::new("/layer"), 0o700)
                            .map_err(&f)?;
                        sys.mount(
                            Some(Path::new("tmpfs")),
                            &t,
                            Some("tmpfs"),
                            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                            Some("mode=700"),
                        )
                        .map_err(&f)?;
                        // The upper dir's mode is the container root's.
                        sys.mkdir_in(&t, Path::new("/upper"), 0o755).map_err(&f)?;
                        sys.mkdir_in(&t, Path::new("/work"), 0o700).map_err(&f)?;
                        let u = sys.resolve(&t, Path::new("/upper")).map_err(&f)?;
                        let w = sys.resolve(&t, Path::new("/work")).map_err(&f)?;
                        (u.path().to_owned(), w.path().to_owned(), Some((u, w)))
                    }
                    Layer::Dirs {
                        upper,
                        upper_id,
                        work,
                        work_id,
                    } => {
                        let f = |e: Errno| EngineError::BadOverlay {
                            dir: upper.parent().unwrap_or(upper).to_owned(),
                            reason: if e == Errno::ESTALE {
                                "replaced while the container started".into()
                            } else {
                                e.desc().to_lowercase()
                            },
                        };
                        let u = sys.open_checked(upper, *upper_id).map_err(f)?;
                        let w = sys.open_checked(work, *work_id).map_err(f)?;
                        (u.path().to_owned(), w.path().to_owned(), Some((u, w)))
                    }
                };
                let lower = sys.resolve(root, Path::new("/")).map_err(&f)?;
                let data = format!(
                    "lowerdir={},upperdir={},workdir={}{}",
                    lower.path().display(),
                    upper.display(),
                    work.display(),
                    if *userxattr { ",userxattr" } else { "" }
                );
                sys.mount(
                    Some(Path::new("overlay")),
                    root,
                    Some("overlay"),
                    MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                    Some(&data),
                )
                .map_err(&f)?;
            }
            Step::Underlay {
                dir,
                staging,
                create,
            } => {
                let Some(first) = create.first() else {
                    continue;
                };
                underlay(sys, root, dir, staging).map_err(|e| EngineError::BindDestination {
                    dst: first.dst.clone(),
                    origin: first.origin.clone(),
                    reason: format!(
                        "making a mount point under {}: {}",
                        dir.display(),
                        e.desc().to_lowercase()
                    ),
                })?;
                for mp in create {
                    make_mount_point(sys, root, mp)?;
                }
                // Back to what the image is: read-only, nosuid, nodev.
                let t = target(sys, root, dir)?;
                sys.mount_setattr(
                    t.path(),
                    MountAttr::RDONLY | MountAttr::NOSUID | MountAttr::NODEV,
                    true,
                )
                .map_err(setup_error(format!("securing {}", dir.display())))?;
            }
            Step::MountPoint(mp) => make_mount_point(sys, root, mp)?,
            Step::BindHost { src, dst, origin } => {
                let s =
                    sys.open_checked(&src.path, src.id)
                        .map_err(|e| EngineError::BindSource {
                            src: src.path.clone(),
                            origin: origin.clone(),
                            reason: if e == Errno::ESTALE || e == Errno::ELOOP {
                                "replaced while the container started".into()
                            } else {
                                e.desc().to_lowercase()
                            },
                        })?;
                let t = target(sys, root, dst)?;
                sys.mount(
                    Some(s.path()),
                    t.path(),
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                )
                .map_err(setup_error(format!(
                    "binding {} to {}",
                    src.path.display(),
                    dst.display()
                )))?;
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
                let mut missing: Vec<&Workdir> = Vec::new();
                let mut done = false;
                for (i, c) in candidates.iter().enumerate() {
                    match sys.chdir(&c.path) {
                        Ok(()) => {
                            done = true;
                            match missing.first() {
                                None => tracing::info!(
                                    "working directory {} ({})",
                                    c.path.display(),
                                    c.why
                                ),
                                Some(m) => tracing::info!(
                                    "working directory {} ({}): {} ({}) is not in the container",
                                    c.path.display(),
                                    c.why,
                                    m.path.display(),
                                    m.why
                                ),
                            }
                            break;
                        }
                        Err(e) if i == 0 && *required => {
                            return Err(EngineError::Setup {
                                what: format!("changing to working directory {}", c.path.display()),
                                reason: e.desc().to_lowercase(),
                            })
                        }
                        Err(_) => missing.push(c),
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
#[path = "plan_tests.rs"]
mod tests;
