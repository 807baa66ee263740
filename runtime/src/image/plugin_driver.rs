//! A plugin's image driver in the runtime's driver stages. The plugin
//! mounts in the runtime process (`start`), under the run's private work
//! dir, so a FUSE daemon it starts lives outside the container; the
//! container's mount namespace only binds that mount as its root; `stop`
//! lets the plugin unmount and makes sure nothing stays mounted. The
//! runtime's own mount calls go through [`Syscalls`].

use std::path::{Path, PathBuf};

use abi_stable::std_types::RErr;
use nix::mount::{MntFlags, MsFlags};
use vessel_plugin_abi::{self as abi, ImageDriverBox};

use super::driver::{Features, ImageDriver, MountRequest};
use super::ImageError;
use crate::engine::sys::{RealSyscalls, Syscalls};

/// The runtime's driver features from a plugin driver's feature tags:
/// `squashfs` for squashfs images, `unprivileged` when it works in a user
/// namespace. Every plugin driver is usable by root.
fn features_from_tags(tags: &[String]) -> Features {
    let has = |t: &str| tags.iter().any(|x| x == t);
    Features {
        squashfs: has("squashfs"),
        privileged: true,
        unprivileged: has("unprivileged"),
    }
}

/// A plugin's image driver (see the module docs).
pub struct PluginDriver<S: Syscalls = RealSyscalls> {
    plugin: String,
    name: String,
    features: Features,
    inner: ImageDriverBox,
    mounted: Option<PathBuf>,
    sys: S,
}

impl PluginDriver {
    /// Wraps driver `inner`, called `name`, with feature tags `tags`, that
    /// plugin `plugin` registered.
    pub fn new(plugin: &str, name: &str, tags: &[String], inner: ImageDriverBox) -> Self {
        Self::with_syscalls(plugin, name, tags, inner, RealSyscalls)
    }
}

impl<S: Syscalls> PluginDriver<S> {
    /// Like [`PluginDriver::new`], making its mount calls through `sys`.
    pub fn with_syscalls(
        plugin: &str,
        name: &str,
        tags: &[String],
        inner: ImageDriverBox,
        sys: S,
    ) -> Self {
        Self {
            plugin: plugin.to_owned(),
            name: name.to_owned(),
            features: features_from_tags(tags),
            inner,
            mounted: None,
            sys,
        }
    }
}

impl<S: Syscalls> std::fmt::Debug for PluginDriver<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginDriver")
            .field("plugin", &self.plugin)
            .field("name", &self.name)
            .field("mounted", &self.mounted)
            .finish_non_exhaustive()
    }
}

/// Where a plugin driver mounts the image inside the run's work dir.
const PLUGIN_MOUNT_DIR: &str = "plugin-mount";

impl<S: Syscalls> PluginDriver<S> {
    fn fail(&self, reason: impl std::fmt::Display) -> ImageError {
        ImageError::Driver {
            driver: self.name.clone(),
            reason: format!("plugin {:?}: {reason}", self.plugin),
        }
    }
}

fn rstring(p: &Path) -> abi::abi_stable::std_types::RString {
    p.to_string_lossy().as_ref().into()
}

impl<S: Syscalls + std::fmt::Debug + Default> ImageDriver for PluginDriver<S> {
    fn name(&self) -> &str {
        &self.name
    }

    fn features(&self) -> Features {
        self.features
    }

    fn start(&mut self, req: &MountRequest) -> Result<(), ImageError> {
        tracing::debug!(
            plugin = self.plugin.as_str(),
            "starting image driver {:?}",
            self.name
        );
        self.inner
            .start()
            .into_result()
            .map_err(|e| self.fail(e.message))?;
        let dir = req.workdir.join(PLUGIN_MOUNT_DIR);
        let mounted = std::fs::create_dir(&dir)
            .map_err(|e| {
                self.fail(format!(
                    "creating {}: {}",
                    dir.display(),
                    crate::image::io_reason(&e)
                ))
            })
            .and_then(|()| {
                self.inner
                    .mount(&abi::MountRequest {
                        image: rstring(&req.image),
                        offset: req.offset,
                        size: req.size,
                        fs_type: "squashfs".into(),
                        target: rstring(&dir),
                    })
                    .into_result()
                    .map_err(|e| self.fail(e.message))
            });
        if let Err(e) = mounted {
            // `stop` is only called after a successful `start`: undo here.
            if let RErr(s) = self.inner.stop() {
                tracing::warn!("{}", self.fail(s.message));
            }
            let _ = unmount_if_mounted(&mut self.sys, &dir);
            return Err(e);
        }
        if !is_mount_point(&dir) {
            let _ = self.inner.stop();
            return Err(self.fail(format!("nothing was mounted on {}", dir.display())));
        }
        self.mounted = Some(dir);
        Ok(())
    }

    fn mount(&mut self, req: &MountRequest, target: &Path) -> Result<(), ImageError> {
        // Moved out for the call: `mount_with` borrows self mutably too.
        let mut sys = std::mem::take(&mut self.sys);
        let r = self.mount_with(req, target, &mut sys);
        self.sys = sys;
        r
    }

    fn mount_with(
        &mut self,
        _req: &MountRequest,
        target: &Path,
        sys: &mut dyn Syscalls,
    ) -> Result<(), ImageError> {
        let dir = self
            .mounted
            .as_ref()
            .ok_or_else(|| self.fail("not started"))?;
        sys.mount(
            Some(dir.as_path()),
            target,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )
        .map_err(|e| {
            self.fail(format!(
                "binding {}: {}",
                dir.display(),
                e.desc().to_lowercase()
            ))
        })
    }

    fn stop(&mut self, _req: &MountRequest) -> Result<(), ImageError> {
        let stopped = self.inner.stop().into_result();
        let Some(dir) = self.mounted.take() else {
            return stopped.map_err(|e| self.fail(e.message));
        };
        // The plugin should have unmounted; never leave a mount behind (the
        // work dir is removed next).
        let left = unmount_if_mounted(&mut self.sys, &dir);
        match (stopped, left) {
            (Err(e), _) => Err(self.fail(e.message)),
            (Ok(()), Err(reason)) => Err(self.fail(reason)),
            (Ok(()), Ok(())) => Ok(()),
        }
    }
}

/// True when `dir` is a mount point (per /proc/self/mountinfo, which works
/// even when a FUSE daemon died and stat would fail).
fn is_mount_point(dir: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = mountinfo_escape(&dir.to_string_lossy());
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| m == want)
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn mountinfo_escape(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for c in p.chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\n' => out.push_str("\\012"),
            '\\' => out.push_str("\\134"),
            c => out.push(c),
        }
    }
    out
}

/// Lazily unmounts `dir` if something is still mounted there.
fn unmount_if_mounted(sys: &mut impl Syscalls, dir: &Path) -> Result<(), String> {
    if !is_mount_point(dir) {
        return Ok(());
    }
    tracing::warn!("{} is still mounted; unmounting it", dir.display());
    sys.umount2(dir, MntFlags::MNT_DETACH).map_err(|e| {
        format!(
            "{} is left mounted: unmounting: {}",
            dir.display(),
            e.desc().to_lowercase()
        )
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use abi_stable::sabi_trait::TD_Opaque;
    use abi_stable::std_types::{RResult, RString, RVec};
    use vessel_plugin_abi::{CallError, CallResult, ImageDriver_TO};

    use super::*;
    use crate::engine::sys::Recorder;

    /// A plugin driver that logs its calls and mounts nothing; `fail_mount`
    /// makes its mount fail.
    #[derive(Clone, Default)]
    struct FakeDriver {
        calls: Arc<Mutex<Vec<String>>>,
        fail_mount: bool,
    }

    impl FakeDriver {
        fn log(&self, call: &str) {
            self.calls.lock().unwrap().push(call.to_owned());
        }
        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl abi::ImageDriver for FakeDriver {
        fn name(&self) -> RString {
            "fake".into()
        }
        fn features(&self) -> RVec<RString> {
            RVec::new()
        }
        fn start(&self) -> CallResult<()> {
            self.log("start");
            RResult::ROk(())
        }
        fn mount(&self, request: &abi::MountRequest) -> CallResult<()> {
            self.log(&format!("mount {}", request.target));
            if self.fail_mount {
                return RResult::RErr(CallError {
                    message: "no fuse here".into(),
                    panicked: false,
                });
            }
            RResult::ROk(())
        }
        fn stop(&self) -> CallResult<()> {
            self.log("stop");
            RResult::ROk(())
        }
    }

    fn driver(fake: &FakeDriver) -> PluginDriver<Recorder> {
        let inner = ImageDriver_TO::from_value(fake.clone(), TD_Opaque);
        PluginDriver::with_syscalls("example.com/p", "fake", &[], inner, Recorder::default())
    }

    fn request(workdir: &Path) -> MountRequest {
        MountRequest {
            image: "/img.sif".into(),
            offset: 4096,
            size: 8192,
            unprivileged: false,
            workdir: workdir.to_owned(),
        }
    }

    #[test]
    fn mount_binds_the_plugin_mount_through_syscalls() {
        let fake = FakeDriver::default();
        let mut d = driver(&fake);
        let req = request(Path::new("/run/w"));
        let e = d.mount(&req, Path::new("/root")).unwrap_err().to_string();
        assert!(e.contains("plugin \"example.com/p\": not started"), "{e}");
        assert!(d.sys.calls.is_empty());

        d.mounted = Some(PathBuf::from("/run/w/plugin-mount"));
        d.mount(&req, Path::new("/root")).unwrap();
        assert_eq!(
            d.sys.calls,
            ["mount /run/w/plugin-mount -> /root - MS_BIND | MS_REC"]
        );
        // The engine's path: through the syscalls it hands in.
        let mut rec = Recorder::default();
        d.mount_with(&req, Path::new("/r"), &mut rec).unwrap();
        assert_eq!(
            rec.calls,
            ["mount /run/w/plugin-mount -> /r - MS_BIND | MS_REC"]
        );
    }

    #[test]
    fn a_start_that_mounts_nothing_fails_and_stops_the_plugin() {
        let work = tempfile::tempdir().unwrap();
        let fake = FakeDriver::default();
        let mut d = driver(&fake);
        let e = d.start(&request(work.path())).unwrap_err().to_string();
        assert!(e.contains("nothing was mounted on"), "{e}");
        let target = work.path().join(PLUGIN_MOUNT_DIR);
        assert_eq!(
            fake.calls(),
            [
                "start".to_string(),
                format!("mount {}", target.display()),
                "stop".into()
            ]
        );
        // Nothing was mounted, so there is nothing to unmount.
        assert!(d.sys.calls.is_empty());
        assert!(d.mounted.is_none());
    }

    #[test]
    fn a_failing_plugin_mount_is_reported_and_undone() {
        let work = tempfile::tempdir().unwrap();
        let fake = FakeDriver {
            fail_mount: true,
            ..FakeDriver::default()
        };
        let mut d = driver(&fake);
        let e = d.start(&request(work.path())).unwrap_err().to_string();
        assert!(e.contains("plugin \"example.com/p\": no fuse here"), "{e}");
        assert_eq!(fake.calls().last().map(String::as_str), Some("stop"));
        assert!(d.sys.calls.is_empty());
    }

    #[test]
    fn stop_with_nothing_left_mounted_unmounts_nothing() {
        let work = tempfile::tempdir().unwrap();
        let fake = FakeDriver::default();
        let mut d = driver(&fake);
        d.mounted = Some(work.path().to_owned());
        d.stop(&request(work.path())).unwrap();
        assert_eq!(fake.calls(), ["stop"]);
        assert!(d.sys.calls.is_empty());
        assert!(d.mounted.is_none());
    }

    #[test]
    fn feature_tags_map_to_driver_features() {
        let f = features_from_tags(&["squashfs".into(), "unprivileged".into()]);
        assert!(f.squashfs && f.privileged && f.unprivileged);
        let f = features_from_tags(&[]);
        assert!(!f.squashfs && f.privileged && !f.unprivileged);
    }

    #[test]
    fn mount_points_are_found_in_mountinfo() {
        assert!(is_mount_point(Path::new("/")));
        assert!(!is_mount_point(Path::new("/nonexistent/dir")));
        assert_eq!(mountinfo_escape("/a b\\c"), "/a\\040b\\134c");
    }
}
