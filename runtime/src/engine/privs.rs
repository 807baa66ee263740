//! What a root container may do: by default less than root on the host.
//!
//! Apptainer leaves a container started by root fully privileged. vessel
//! confines it the way Docker does: the command keeps only Docker's default
//! capability set ([`DEFAULT_CAPS`], bounding set included, so no exec can
//! regain the others), runs with `no_new_privs`, and sees the `/proc` and
//! `/sys` paths runc masks hidden or read-only (see `plan`) and a default
//! seccomp filter (see `seccomp`). The runtime
//! and the container's init are made non-dumpable, so the container cannot
//! reach the host through `/proc/<runtime pid>/root` or ptrace them.
//! `--keep-privs` keeps everything (Apptainer's behaviour); `--no-privs`
//! drops every capability. Containers in a user namespace (every
//! unprivileged run) hold capabilities only over their own namespace and
//! keep them, as well as their mounts and syscalls; `no_new_privs` applies
//! to them too.

use nix::errno::Errno;

/// Which privileges the command keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Privileges {
    /// Docker's default capabilities, no_new_privs, masked /proc and /sys.
    #[default]
    Default,
    /// Everything root has (`--keep-privs`).
    Keep,
    /// No capability at all (`--no-privs`), no_new_privs, masks.
    None,
}

/// Docker's default capability set (moby `oci/caps/defaults.go`).
pub const DEFAULT_CAPS: [u32; 14] = [
    libc_caps::CHOWN,
    libc_caps::DAC_OVERRIDE,
    libc_caps::FSETID,
    libc_caps::FOWNER,
    libc_caps::MKNOD,
    libc_caps::NET_RAW,
    libc_caps::SETGID,
    libc_caps::SETUID,
    libc_caps::SETFCAP,
    libc_caps::SETPCAP,
    libc_caps::NET_BIND_SERVICE,
    libc_caps::SYS_CHROOT,
    libc_caps::KILL,
    libc_caps::AUDIT_WRITE,
];

/// Capability numbers from <linux/capability.h>.
mod libc_caps {
    pub const CHOWN: u32 = 0;
    pub const DAC_OVERRIDE: u32 = 1;
    pub const FOWNER: u32 = 3;
    pub const FSETID: u32 = 4;
    pub const KILL: u32 = 5;
    pub const SETGID: u32 = 6;
    pub const SETUID: u32 = 7;
    pub const SETPCAP: u32 = 8;
    pub const NET_BIND_SERVICE: u32 = 10;
    pub const NET_RAW: u32 = 13;
    pub const SYS_CHROOT: u32 = 18;
    pub const MKNOD: u32 = 27;
    pub const AUDIT_WRITE: u32 = 29;
    pub const SETFCAP: u32 = 31;
}

/// The capability mask a set of capabilities stands for.
pub fn mask(caps: &[u32]) -> u64 {
    caps.iter().fold(0, |m, c| m | 1u64 << c)
}

/// Makes this process non-dumpable: other processes of its user (the
/// container's root among them) can then neither ptrace it nor open its
/// `/proc/<pid>/root`, `fd`, `mem`, unless they hold CAP_SYS_PTRACE.
pub fn make_undumpable() -> Result<(), Errno> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Every capability the kernel knows, as a mask.
fn all_caps() -> u64 {
    let last = last_cap().min(63);
    if last == 63 {
        u64::MAX
    } else {
        (1u64 << (last + 1)) - 1
    }
}

/// Applies `p` to this process, right before it execs the command, with the
/// capabilities plugins added (`add`, root containers only) and dropped
/// (`drop`). `in_userns`: the capabilities are those of a user namespace
/// and kept, but for the dropped ones. `--no-privs` keeps none, whatever
/// was added.
pub fn apply(p: Privileges, in_userns: bool, add: u64, drop: u64) -> Result<(), Errno> {
    if in_userns || p == Privileges::Keep {
        if drop != 0 {
            drop_caps(all_caps() & !drop)?;
        }
        if p == Privileges::Keep {
            return Ok(());
        }
    } else {
        let keep = match p {
            Privileges::None => 0,
            _ => (mask(&DEFAULT_CAPS) | add) & !drop,
        };
        drop_caps(keep)?;
    }
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// The highest capability number the kernel knows.
fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Drops every capability outside `keep` from the bounding, ambient,
/// effective, permitted and inheritable sets.
fn drop_caps(keep: u64) -> Result<(), Errno> {
    for cap in 0..=last_cap().min(63) {
        if keep & (1 << cap) == 0 {
            // SAFETY: prctl with integer arguments.
            if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } < 0 {
                match Errno::last() {
                    // Unknown to this kernel: nothing to drop.
                    Errno::EINVAL => {}
                    e => return Err(e),
                }
            }
        }
    }
    // SAFETY: prctl with integer arguments.
    if unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    } < 0
    {
        return Err(Errno::last());
    }
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let word = |i: u32| {
        let w = (keep >> (32 * i)) as u32;
        Data {
            effective: w,
            permitted: w,
            inheritable: w,
        }
    };
    let data = [word(0), word(1)];
    // SAFETY: header and the two data words are what capset(2) v3 reads.
    if unsafe { libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr()) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_caps_are_dockers() {
        // What `docker run` shows as CapEff for root.
        assert_eq!(mask(&DEFAULT_CAPS), 0xa80425fb);
    }
}
