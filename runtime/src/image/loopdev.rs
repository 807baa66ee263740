//! Loop devices over a byte range of an image file, set up with ioctls.
//!
//! Devices are attached read-only with autoclear: the kernel detaches one as
//! soon as nothing holds it (no open descriptor, no mount), so a killed
//! container never leaves a loop device behind.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::ImageError;

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_SET_FD: libc::c_ulong = 0x4C00;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LOOP_SET_STATUS64: libc::c_ulong = 0x4C04;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;

/// `struct loop_info64` from linux/loop.h.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config` from linux/loop.h.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// An attached loop device; dropping it closes this handle, after which the
/// kernel detaches the device once any mount of it is gone.
#[derive(Debug)]
pub struct LoopDevice {
    dev: File,
    path: PathBuf,
}

impl LoopDevice {
    /// Attaches `size` bytes of `image` at `offset` to a free loop device,
    /// read-only with autoclear.
    pub fn attach(image: &Path, offset: u64, size: u64) -> Result<Self, ImageError> {
        let err = |what: &str, e: std::io::Error| ImageError::Loop {
            path: image.to_owned(),
            reason: format!("{what}: {}", super::io_reason(&e)),
        };
        let backing = File::open(image).map_err(|e| err("opening image", e))?;
        let ctl = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/loop-control")
            .map_err(|e| err("opening /dev/loop-control", e))?;
        let mut info = LoopInfo64 {
            lo_device: 0,
            lo_inode: 0,
            lo_rdevice: 0,
            lo_offset: offset,
            lo_sizelimit: size,
            lo_number: 0,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR,
            lo_file_name: [0; 64],
            lo_crypt_name: [0; 64],
            lo_encrypt_key: [0; 32],
            lo_init: [0; 2],
        };
        let name = image.as_os_str().as_encoded_bytes();
        let n = name.len().min(63);
        info.lo_file_name[..n].copy_from_slice(&name[..n]);
        // Another process may take the free device between GET_FREE and
        // CONFIGURE (EBUSY): ask again a few times.
        for _ in 0..16 {
            // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a number.
            let num = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE) };
            if num < 0 {
                return Err(err(
                    "finding a free loop device",
                    std::io::Error::last_os_error(),
                ));
            }
            let path = PathBuf::from(format!("/dev/loop{num}"));
            let dev = match OpenOptions::new().read(true).open(&path) {
                Ok(d) => d,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(err(&format!("opening {}", path.display()), e)),
            };
            let cfg = LoopConfig {
                fd: backing.as_raw_fd() as u32,
                block_size: 0,
                info,
                reserved: [0; 8],
            };
            // SAFETY: LOOP_CONFIGURE reads a loop_config we own for the call.
            let r = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CONFIGURE, &cfg) };
            if r == 0 {
                tracing::debug!(
                    "attached {} at offset {offset} to {}",
                    image.display(),
                    path.display()
                );
                return Ok(Self { dev, path });
            }
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EBUSY) => continue,
                // Kernels before 5.8 lack LOOP_CONFIGURE.
                Some(libc::EINVAL) | Some(libc::ENOTTY) => {
                    return Self::attach_legacy(image, &backing, dev, path, &info)
                }
                _ => return Err(err(&format!("configuring {}", path.display()), e)),
            }
        }
        Err(ImageError::Loop {
            path: image.to_owned(),
            reason: "no free loop device".into(),
        })
    }

    fn attach_legacy(
        image: &Path,
        backing: &File,
        dev: File,
        path: PathBuf,
        info: &LoopInfo64,
    ) -> Result<Self, ImageError> {
        let err = |what: &str, e: std::io::Error| ImageError::Loop {
            path: image.to_owned(),
            reason: format!("{what} {}: {}", path.display(), super::io_reason(&e)),
        };
        // SAFETY: LOOP_SET_FD takes the backing descriptor as its argument.
        if unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_SET_FD, backing.as_raw_fd()) } < 0 {
            return Err(err("attaching", std::io::Error::last_os_error()));
        }
        // SAFETY: LOOP_SET_STATUS64 reads a loop_info64 we own for the call.
        if unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_SET_STATUS64, info) } < 0 {
            let e = std::io::Error::last_os_error();
            // SAFETY: LOOP_CLR_FD takes no argument; undo the half setup.
            unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CLR_FD, 0) };
            return Err(err("configuring", e));
        }
        Ok(Self { dev, path })
    }

    /// The device node, e.g. `/dev/loop3`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open device (kept open until the mount holds the device).
    pub fn file(&self) -> &File {
        &self.dev
    }
}
