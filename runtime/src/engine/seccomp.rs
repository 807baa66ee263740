//! The default seccomp filter of a confined root container.
//!
//! Capabilities already stop most kernel interfaces a container should not
//! use; this filter closes what capabilities do not cover and mirrors the
//! syscalls Docker's default profile refuses: creating user namespaces
//! (`unshare`, `clone` with CLONE_NEWUSER, which need no capability and
//! open a large kernel surface), the keyring, bpf, perf, ptrace and
//! process_vm_*, userfaultfd, module, clock, swap, reboot and kexec calls.
//! They fail with EPERM; `clone3`, whose flags a filter cannot read, fails
//! with ENOSYS so libc falls back to `clone` (as under Docker).

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

/// Syscalls refused with EPERM, whatever their arguments.
const REFUSED: &[i64] = &[
    libc::SYS_acct,
    libc::SYS_add_key,
    libc::SYS_bpf,
    libc::SYS_clock_adjtime,
    libc::SYS_clock_settime,
    libc::SYS_delete_module,
    libc::SYS_finit_module,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fsopen,
    libc::SYS_fspick,
    libc::SYS_init_module,
    libc::SYS_kcmp,
    libc::SYS_kexec_file_load,
    libc::SYS_kexec_load,
    libc::SYS_keyctl,
    libc::SYS_mount,
    libc::SYS_mount_setattr,
    libc::SYS_move_mount,
    libc::SYS_name_to_handle_at,
    libc::SYS_open_by_handle_at,
    libc::SYS_open_tree,
    libc::SYS_perf_event_open,
    libc::SYS_pivot_root,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_ptrace,
    libc::SYS_quotactl,
    libc::SYS_reboot,
    libc::SYS_request_key,
    libc::SYS_setns,
    libc::SYS_settimeofday,
    libc::SYS_swapoff,
    libc::SYS_swapon,
    libc::SYS_umount2,
    libc::SYS_unshare,
    libc::SYS_userfaultfd,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ioperm,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_iopl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_uselib,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ustat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_sysfs,
];

/// Why the filter could not be built or installed.
#[derive(Debug, thiserror::Error)]
#[error("seccomp filter: {0}")]
pub struct SeccompError(#[source] seccompiler::Error);

fn program(rules: BTreeMap<i64, Vec<SeccompRule>>, errno: i32) -> Result<BpfProgram, SeccompError> {
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| SeccompError(seccompiler::Error::Backend(e)))?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
        arch,
    )
    .map_err(|e| SeccompError(seccompiler::Error::Backend(e)))?;
    filter
        .try_into()
        .map_err(|e| SeccompError(seccompiler::Error::Backend(e)))
}

/// The default filters, to install in order.
pub fn default_filters() -> Result<Vec<BpfProgram>, SeccompError> {
    let backend = |e| SeccompError(seccompiler::Error::Backend(e));
    let mut refused: BTreeMap<i64, Vec<SeccompRule>> =
        REFUSED.iter().map(|&n| (n, Vec::new())).collect();
    let newuser = libc::CLONE_NEWUSER as u64;
    refused.insert(
        libc::SYS_clone,
        vec![SeccompRule::new(vec![SeccompCondition::new(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(newuser),
            newuser,
        )
        .map_err(backend)?])
        .map_err(backend)?],
    );
    let clone3: BTreeMap<i64, Vec<SeccompRule>> =
        [(libc::SYS_clone3, Vec::new())].into_iter().collect();
    Ok(vec![
        program(refused, libc::EPERM)?,
        program(clone3, libc::ENOSYS)?,
    ])
}

/// Installs the default filters on this process (no_new_privs must be set
/// or the process must hold CAP_SYS_ADMIN).
pub fn install_default() -> Result<(), SeccompError> {
    for p in default_filters()? {
        seccompiler::apply_filter(&p).map_err(SeccompError)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_filters_compile() {
        let f = default_filters().unwrap();
        assert_eq!(f.len(), 2);
        assert!(f[0].len() > REFUSED.len());
    }
}
