//! Image drivers: how a squashfs partition becomes the container's root.
//!
//! A driver has three stages. `start` runs in the runtime process before the
//! container exists (attach a loop device, extract, start a daemon); `mount`
//! runs in the container's new mount namespace before pivot_root, so what it
//! mounts dies with the namespace; `stop` runs in the runtime process after
//! the container has exited (release what `start` set up). Plugins register
//! more drivers into the [`Registry`] before the image is mounted.

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use super::loopdev::LoopDevice;
use super::ImageError;
use crate::cache::{Cache, Held, Outcome, SANDBOXES};
use crate::engine::sys::{RealSyscalls, Syscalls};

/// What a driver can do, shown to users and used to pick a builtin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// Mounts squashfs partitions.
    pub squashfs: bool,
    /// Works for root in the initial user namespace.
    pub privileged: bool,
    /// Works inside an unprivileged user namespace.
    pub unprivileged: bool,
}

/// One image to mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountRequest {
    /// The image file (absolute).
    pub image: PathBuf,
    /// Byte offset of the squashfs partition.
    pub offset: u64,
    /// Byte length of the partition.
    pub size: u64,
    /// The container runs in a user namespace without host privileges.
    pub unprivileged: bool,
    /// A private, empty directory the driver may use; removed by the runtime
    /// after `stop`.
    pub workdir: PathBuf,
}

/// An image driver.
pub trait ImageDriver: std::fmt::Debug {
    /// The name `image_driver` in vessel.toml refers to.
    fn name(&self) -> &str;
    /// What it supports.
    fn features(&self) -> Features;
    /// Prepares, in the runtime process, before the container exists.
    fn start(&mut self, _req: &MountRequest) -> Result<(), ImageError> {
        Ok(())
    }
    /// Mounts the image read-only at `target`, inside the container's mount
    /// namespace, in the container process before it execs (single-threaded:
    /// start no threads). State changed here is not seen by the runtime
    /// process; a helper process started here (a FUSE daemon) must end with
    /// the namespace or be found again by `stop` (e.g. via a pid file in
    /// `req.workdir`). A driver may instead mount in `start` under
    /// `req.workdir` and only bind that here.
    fn mount(&mut self, req: &MountRequest, target: &Path) -> Result<(), ImageError>;
    /// [`ImageDriver::mount`] with its mount calls going through `sys`, so
    /// the container setup can be checked with a recording double. The
    /// engine calls this one; the default falls back to `mount` for
    /// drivers that make their calls themselves.
    fn mount_with(
        &mut self,
        req: &MountRequest,
        target: &Path,
        sys: &mut dyn Syscalls,
    ) -> Result<(), ImageError> {
        let _ = sys;
        self.mount(req, target)
    }
    /// Releases, in the runtime process, what `start` set up. Called on every
    /// path once `start` succeeded.
    fn stop(&mut self, _req: &MountRequest) -> Result<(), ImageError> {
        Ok(())
    }
}

/// The registered drivers, builtins first.
#[derive(Debug)]
pub struct Registry {
    drivers: Vec<Box<dyn ImageDriver>>,
}

/// Name of the builtin kernel squashfs driver.
pub const KERNEL_SQUASHFS: &str = "squashfs";
/// Name of the builtin extraction driver.
pub const EXTRACT: &str = "extract";

impl Registry {
    /// A registry with the builtin drivers (extraction without a cache).
    pub fn with_builtins() -> Self {
        Self::with_cache(None)
    }

    /// A registry with the builtin drivers; extraction keeps its trees in
    /// `cache` when there is one.
    pub fn with_cache(cache: Option<Cache>) -> Self {
        Self {
            drivers: vec![
                Box::new(KernelSquashfs::default()),
                Box::new(super::fuse::Fuse::default()),
                Box::new(Extract {
                    cache,
                    ..Extract::default()
                }),
            ],
        }
    }

    /// Adds a driver; a name already taken is an error.
    pub fn register(&mut self, driver: Box<dyn ImageDriver>) -> Result<(), ImageError> {
        if self.drivers.iter().any(|d| d.name() == driver.name()) {
            return Err(ImageError::DuplicateDriver(driver.name().to_owned()));
        }
        tracing::debug!("registered image driver {:?}", driver.name());
        self.drivers.push(driver);
        Ok(())
    }

    /// Names of all registered drivers, in registration order.
    pub fn names(&self) -> Vec<&str> {
        self.drivers.iter().map(|d| d.name()).collect()
    }

    /// The driver to use: the configured one, else the kernel mount when
    /// privileged, FUSE when not and the caller can use it, else (cached)
    /// extraction.
    pub fn select(
        &mut self,
        configured: Option<&str>,
        unprivileged: bool,
    ) -> Result<&mut dyn ImageDriver, ImageError> {
        let name = match configured {
            Some(name) => name,
            None if !unprivileged => KERNEL_SQUASHFS,
            None => match super::fuse::unavailable() {
                None => super::fuse::FUSE,
                Some(why) => {
                    tracing::debug!("no fuse mount ({why}): extracting instead");
                    EXTRACT
                }
            },
        };
        let known = self.names().join(", ");
        match self.drivers.iter_mut().find(|d| d.name() == name) {
            Some(d) => Ok(d.as_mut()),
            None => Err(ImageError::UnknownDriver {
                name: name.to_owned(),
                known,
            }),
        }
    }
}

/// Kernel squashfs through a loop device at the partition's offset (root only).
#[derive(Debug, Default)]
pub struct KernelSquashfs {
    dev: Option<LoopDevice>,
}

impl ImageDriver for KernelSquashfs {
    fn name(&self) -> &str {
        KERNEL_SQUASHFS
    }
    fn features(&self) -> Features {
        Features {
            squashfs: true,
            privileged: true,
            unprivileged: false,
        }
    }
    fn start(&mut self, req: &MountRequest) -> Result<(), ImageError> {
        if req.unprivileged {
            return Err(self.fail("kernel squashfs mounts need root outside a user namespace"));
        }
        let dev = LoopDevice::attach(&req.image, req.offset, req.size)?;
        tracing::info!(
            "image {}: root loop mount through {}",
            req.image.display(),
            dev.path().display()
        );
        self.dev = Some(dev);
        Ok(())
    }
    fn mount(&mut self, req: &MountRequest, target: &Path) -> Result<(), ImageError> {
        self.mount_with(req, target, &mut RealSyscalls)
    }
    fn mount_with(
        &mut self,
        _req: &MountRequest,
        target: &Path,
        sys: &mut dyn Syscalls,
    ) -> Result<(), ImageError> {
        let dev = self.dev.as_ref().ok_or_else(|| self.fail("not started"))?;
        sys.mount(
            Some(dev.path()),
            target,
            Some("squashfs"),
            MsFlags::MS_RDONLY | MsFlags::MS_NODEV | MsFlags::MS_NOSUID,
            None,
        )
        .map_err(|e| {
            self.fail(&format!(
                "mounting {}: {}",
                dev.path().display(),
                e.desc().to_lowercase()
            ))
        })
    }
    fn stop(&mut self, _req: &MountRequest) -> Result<(), ImageError> {
        // Closing our handle leaves only the mount holding the device; the
        // kernel detaches it (autoclear) when the container's namespace goes.
        self.dev = None;
        Ok(())
    }
}

impl KernelSquashfs {
    fn fail(&self, reason: &str) -> ImageError {
        ImageError::Driver {
            driver: KERNEL_SQUASHFS.into(),
            reason: reason.into(),
        }
    }
}

/// Extraction with `unsquashfs`, bound as the root: into the per-user
/// cache (extracted once per image digest, reused read-only) when there is
/// one, else into the run's private work dir.
#[derive(Debug, Default)]
pub struct Extract {
    dir: Option<PathBuf>,
    cache: Option<Cache>,
    held: Option<Held>,
}

impl Extract {
    /// The driver as if `start` had extracted the image to `dir`.
    #[cfg(test)]
    pub(crate) fn with_extracted(dir: PathBuf) -> Self {
        Self {
            dir: Some(dir),
            ..Self::default()
        }
    }
}

impl ImageDriver for Extract {
    fn name(&self) -> &str {
        EXTRACT
    }
    fn features(&self) -> Features {
        Features {
            squashfs: true,
            privileged: true,
            unprivileged: true,
        }
    }
    fn start(&mut self, req: &MountRequest) -> Result<(), ImageError> {
        let image = req.image.display();
        if let Some(cache) = &self.cache {
            match super::cached::prepare(cache, req) {
                Ok((held, outcome, key)) => {
                    match outcome {
                        Outcome::Hit => {
                            tracing::info!("image {image}: cache hit {SANDBOXES}/{key}")
                        }
                        Outcome::Built => {
                            tracing::info!("image {image}: cache build {SANDBOXES}/{key}")
                        }
                        Outcome::Rebuilt => {
                            tracing::info!("image {image}: cache rebuild {SANDBOXES}/{key}")
                        }
                    }
                    self.dir = Some(super::cached::rootfs(held.path()));
                    self.held = Some(held);
                    return Ok(());
                }
                Err(e) => tracing::warn!("{e}; extracting for this run only"),
            }
        }
        tracing::info!("image {image}: extracting into the run's work dir (no cache)");
        let dest = req.workdir.join("rootfs");
        super::cached::unsquashfs(req, &dest)?;
        self.dir = Some(dest);
        Ok(())
    }
    fn mount(&mut self, req: &MountRequest, target: &Path) -> Result<(), ImageError> {
        self.mount_with(req, target, &mut RealSyscalls)
    }
    fn mount_with(
        &mut self,
        _req: &MountRequest,
        target: &Path,
        sys: &mut dyn Syscalls,
    ) -> Result<(), ImageError> {
        let dir = self.dir.as_ref().ok_or_else(|| ImageError::Driver {
            driver: EXTRACT.into(),
            reason: "not started".into(),
        })?;
        // nosuid/nodev (and read-only) are set on the whole root by the
        // engine once it is mounted, whatever the driver.
        sys.mount(
            Some(dir.as_path()),
            target,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )
        .map_err(|e| ImageError::Driver {
            driver: EXTRACT.into(),
            reason: format!("binding {}: {}", dir.display(), e.desc().to_lowercase()),
        })
    }
    fn stop(&mut self, _req: &MountRequest) -> Result<(), ImageError> {
        // A cached tree becomes evictable again; one in the work dir goes
        // with it.
        self.held = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fake;
    impl ImageDriver for Fake {
        fn name(&self) -> &str {
            "fake"
        }
        fn features(&self) -> Features {
            Features::default()
        }
        fn mount(&mut self, _: &MountRequest, _: &Path) -> Result<(), ImageError> {
            Ok(())
        }
    }

    #[test]
    fn selects_builtins_and_registered_drivers() {
        let mut r = Registry::with_builtins();
        assert_eq!(r.select(None, false).unwrap().name(), KERNEL_SQUASHFS);
        let unprivileged = if super::super::fuse::unavailable().is_none() {
            super::super::fuse::FUSE
        } else {
            EXTRACT
        };
        assert_eq!(r.select(None, true).unwrap().name(), unprivileged);
        let e = r.select(Some("fake"), false).unwrap_err().to_string();
        assert_eq!(
            e,
            "image driver \"fake\" is not registered (known: squashfs, fuse, extract)"
        );
        r.register(Box::new(Fake)).unwrap();
        assert_eq!(r.select(Some("fake"), true).unwrap().name(), "fake");
        assert!(r.register(Box::new(Fake)).is_err());
    }
}
