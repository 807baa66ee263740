//! The container's filesystem setup as a list of steps: computed from the
//! config and what exists in the image, then applied through [`Syscalls`].
//!
//! Everything here runs in the container's own mount namespace (made
//! private first), so nothing propagates to the host and every mount is
//! released when the namespace dies with its last process.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use super::config::EngineConfig;
use super::sys::Syscalls;
use super::EngineError;

/// Device nodes bound into a minimal (`--contain`) /dev.
pub const CONTAINED_DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// One setup action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Bind `src` onto `dst`; `recursive` includes submounts; `readonly`
    /// remounts the bind read-only (keeping the flags a user namespace locks).
    Bind {
        /// Host path.
        src: PathBuf,
        /// Target under the new root.
        dst: PathBuf,
        /// rbind instead of bind.
        recursive: bool,
        /// Remount read-only after binding.
        readonly: bool,
    },
    /// Remount an existing mount read-only.
    RemountReadonly(PathBuf),
    /// Mount a pseudo filesystem (proc, tmpfs).
    Mount {
        /// Filesystem type, also used as the source name.
        fstype: String,
        /// Target under the new root.
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
    /// Set the hostname (in the UTS namespace).
    Hostname(String),
    /// Bring up loopback in the new network namespace.
    LoopbackUp,
    /// Make the new root `/` and detach the old one.
    PivotRoot(PathBuf),
    /// Change into the first candidate that exists; with `required`, the
    /// first candidate must exist.
    Chdir {
        /// Candidates in order, paths inside the container.
        candidates: Vec<PathBuf>,
        /// The first candidate was asked for explicitly (`--pwd`).
        required: bool,
    },
}

/// Where a container path lands under the new root before pivot_root.
pub fn under(root: &Path, inside: &Path) -> PathBuf {
    root.join(inside.strip_prefix("/").unwrap_or(inside))
}

/// What the plan needs to know besides the config.
#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    /// The new root (the image is mounted there already).
    pub root: &'a Path,
    /// The root is a bind of a host directory (sandbox) and is made read-only.
    pub readonly_root: bool,
    /// The host working directory, tried when no `--pwd` is given.
    pub host_cwd: Option<PathBuf>,
}

/// Computes the setup steps; `exists` says whether a path (under the new
/// root) exists, so mount points missing from a read-only image are skipped
/// (system mounts) or refused (user binds) instead of failing half-way.
pub fn plan(
    cfg: &EngineConfig,
    input: &PlanInput<'_>,
    exists: &dyn Fn(&Path) -> bool,
) -> Result<Vec<Step>, EngineError> {
    let root = input.root;
    let mut steps = Vec::new();
    if input.readonly_root {
        steps.push(Step::RemountReadonly(root.to_owned()));
    }
    let at = |p: &str| under(root, Path::new(p));
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
            steps.push(Step::Mount {
                fstype: "tmpfs".into(),
                dst: dev.clone(),
                flags: MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
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
            steps.push(bind("/tmp", at("tmp"), false, false));
        }
    }
    if let Some(home) = cfg.home_bind() {
        let dst = under(root, home);
        // Inside /tmp the home is already there through the /tmp bind.
        if exists(&dst) && !home.starts_with("/tmp") {
            steps.push(bind(&home.to_string_lossy(), dst, true, false));
        } else {
            tracing::debug!("home {} has no mount point in the image", home.display());
        }
    }
    for b in &cfg.binds {
        let dst = under(root, &b.dst);
        if !exists(&dst) {
            return Err(EngineError::BindDestination(b.dst.clone()));
        }
        steps.push(Step::Bind {
            src: b.src.clone(),
            dst,
            recursive: true,
            readonly: b.readonly,
        });
    }
    if let Some(h) = &cfg.hostname {
        steps.push(Step::Hostname(h.clone()));
    }
    if cfg.namespaces.net {
        steps.push(Step::LoopbackUp);
    }
    steps.push(Step::PivotRoot(root.to_owned()));
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

/// Applies the steps in order; the first failure is an error naming the step.
pub fn apply(steps: &[Step], sys: &mut dyn Syscalls) -> Result<(), EngineError> {
    let fail = |what: String| {
        move |e: nix::errno::Errno| EngineError::Setup {
            what: what.clone(),
            reason: e.desc().to_lowercase(),
        }
    };
    for step in steps {
        match step {
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
                sys.mount(Some(src), dst, None, flags, None)
                    .map_err(fail(format!(
                        "binding {} to {}",
                        src.display(),
                        dst.display()
                    )))?;
                if *readonly {
                    remount_readonly(sys, dst)?;
                }
            }
            Step::RemountReadonly(dst) => remount_readonly(sys, dst)?,
            Step::Mount {
                fstype,
                dst,
                flags,
                data,
            } => sys
                .mount(
                    Some(Path::new(fstype)),
                    dst,
                    Some(fstype),
                    *flags,
                    data.as_deref(),
                )
                .map_err(fail(format!("mounting {fstype} on {}", dst.display())))?,
            Step::Mkdir(d) => sys
                .mkdir(d, 0o755)
                .map_err(fail(format!("creating {}", d.display())))?,
            Step::Touch(f) => sys
                .touch(f)
                .map_err(fail(format!("creating {}", f.display())))?,
            Step::Symlink { target, link } => sys
                .symlink(target, link)
                .map_err(fail(format!("creating {}", link.display())))?,
            Step::Hostname(h) => sys
                .sethostname(h)
                .map_err(fail(format!("setting hostname {h:?}")))?,
            Step::LoopbackUp => sys
                .loopback_up()
                .map_err(fail("bringing up loopback".into()))?,
            Step::PivotRoot(root) => {
                // pivot_root(".", ".") stacks the old root on top of the new
                // one, so no put_old directory is needed in a read-only image.
                let f = fail(format!("pivot_root to {}", root.display()));
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

fn remount_readonly(sys: &mut dyn Syscalls, dst: &Path) -> Result<(), EngineError> {
    let what = || format!("making {} read-only", dst.display());
    let locked = sys.locked_flags(dst).map_err(|e| EngineError::Setup {
        what: what(),
        reason: e.desc().to_lowercase(),
    })?;
    sys.mount(
        None,
        dst,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | locked,
        None,
    )
    .map_err(|e| EngineError::Setup {
        what: what(),
        reason: e.desc().to_lowercase(),
    })
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

    fn input(root: &Path) -> PlanInput<'_> {
        PlanInput {
            root,
            readonly_root: true,
            host_cwd: Some("/work".into()),
        }
    }

    #[test]
    fn default_plan_rbinds_host_dirs_and_pivots() {
        let root = Path::new("/r");
        let steps = plan(&cfg(), &input(root), &|_| true).unwrap();
        assert_eq!(steps[0], Step::RemountReadonly(root.into()));
        assert!(steps.contains(&bind("/proc", "/r/proc".into(), true, false)));
        assert!(steps.contains(&bind("/dev", "/r/dev".into(), true, false)));
        assert!(steps.contains(&bind("/tmp", "/r/tmp".into(), false, false)));
        assert!(steps.contains(&Step::PivotRoot(root.into())));
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
        let root = Path::new("/r");
        let steps = plan(&c, &input(root), &|_| true).unwrap();
        assert!(steps.iter().any(|s| matches!(s, Step::Mount { fstype, dst, .. } if fstype == "proc" && dst == Path::new("/r/proc"))));
        assert!(steps.iter().any(|s| matches!(s, Step::Mount { fstype, dst, .. } if fstype == "tmpfs" && dst == Path::new("/r/dev"))));
        assert!(steps.contains(&bind("/dev/null", "/r/dev/null".into(), false, false)));
        assert!(!steps.iter().any(|s| matches!(s, Step::Bind { src, .. } if src == Path::new("/root") || src == Path::new("/tmp"))));
        assert!(steps.contains(&Step::Hostname("box".into())));
        assert!(steps.contains(&Step::LoopbackUp));
        assert!(
            matches!(steps.last().unwrap(), Step::Chdir { candidates, required: true } if candidates[0] == Path::new("/data"))
        );
    }

    #[test]
    fn missing_mount_points_skip_system_mounts_and_refuse_binds() {
        let mut c = cfg();
        let root = Path::new("/r");
        let steps = plan(&c, &input(root), &|p| p != Path::new("/r/sys")).unwrap();
        assert!(!steps
            .iter()
            .any(|s| matches!(s, Step::Bind { src, .. } if src == Path::new("/sys"))));
        c.binds.push(Bind::parse("/etc:/nope").unwrap());
        let e = plan(&c, &input(root), &|p| p != Path::new("/r/nope")).unwrap_err();
        assert!(e.to_string().contains("/nope"), "{e}");
    }

    #[test]
    fn apply_remounts_ro_binds_keeping_locked_flags() {
        let mut rec = Recorder {
            locked: MsFlags::MS_NOSUID,
            ..Default::default()
        };
        apply(&[bind("/a", "/r/a".into(), true, true)], &mut rec).unwrap();
        assert_eq!(rec.calls.len(), 2);
        assert!(
            rec.calls[0] == "mount /a -> /r/a - MsFlags(MS_BIND | MS_REC)",
            "{:?}",
            rec.calls
        );
        assert!(
            rec.calls[1].contains("MS_RDONLY")
                && rec.calls[1].contains("MS_NOSUID")
                && rec.calls[1].contains("MS_REMOUNT"),
            "{:?}",
            rec.calls
        );
    }

    #[test]
    fn apply_pivots_without_put_old() {
        let mut rec = Recorder::default();
        apply(&[Step::PivotRoot("/r".into())], &mut rec).unwrap();
        assert_eq!(
            rec.calls,
            ["chdir /r", "pivot_root . .", "umount .", "chdir /"]
        );
    }
}
