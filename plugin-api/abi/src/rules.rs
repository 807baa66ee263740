//! The checks the runtime applies to what a plugin asks of a container
//! (device nodes, capabilities). They live beside the ABI so the runtime
//! and the SDK's test fakes apply the very same rules: a plugin's unit test
//! fails where the runtime would refuse.

use std::os::unix::fs::FileTypeExt;

/// Every Linux capability, indexed by its number (`<linux/capability.h>`).
pub const CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The number and canonical name of capability `name`: `CAP_SYS_ADMIN`,
/// `cap_sys_admin` and `sys_admin` all name number 21.
pub fn capability(name: &str) -> Result<(u32, &'static str), String> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    CAPABILITIES
        .iter()
        .position(|c| *c == full)
        .map(|i| (i as u32, CAPABILITIES[i]))
        .ok_or_else(|| format!("capability {name:?}: not a known Linux capability"))
}

/// Checks a device request: `destination` is an absolute, normal path
/// strictly under `/dev` (no `..`, `.` or empty components), and `source`
/// is a character or block device on the host (followed if a symlink, as
/// `/dev` entries often are).
pub fn check_device(source: &str, destination: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("device {source}: {why}"));
    if !destination.starts_with("/dev/") || destination.len() <= "/dev/".len() {
        return bad(&format!(
            "destination {destination:?} must be a path under /dev"
        ));
    }
    // Split by hand: `Path::components` silently drops `.` and `//`.
    let normal = destination[1..]
        .split('/')
        .all(|c| !c.is_empty() && c != "." && c != "..");
    if !normal {
        return bad(&format!(
            "destination {destination:?} must be a plain path (no '..' or '.')"
        ));
    }
    if destination.contains(|c: char| c.is_control()) || source.contains(|c: char| c.is_control()) {
        return bad("control characters in the path");
    }
    if !source.starts_with('/') {
        return bad("the source must be an absolute host path");
    }
    match std::fs::metadata(source) {
        Ok(m) if m.file_type().is_char_device() || m.file_type().is_block_device() => Ok(()),
        Ok(_) => bad("not a character or block device on the host"),
        Err(e) => bad(&io_reason(&e)),
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "does not exist on the host".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string().to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_by_any_spelling() {
        assert_eq!(capability("CAP_SYS_ADMIN").unwrap(), (21, "CAP_SYS_ADMIN"));
        assert_eq!(capability("sys_admin").unwrap().0, 21);
        assert_eq!(capability("cap_net_raw").unwrap(), (13, "CAP_NET_RAW"));
        assert_eq!(capability("CAP_CHECKPOINT_RESTORE").unwrap().0, 40);
        let e = capability("CAP_MAKE_COFFEE").unwrap_err();
        assert_eq!(
            e,
            "capability \"CAP_MAKE_COFFEE\": not a known Linux capability"
        );
    }

    #[test]
    fn devices_must_be_device_nodes_under_dev() {
        check_device("/dev/null", "/dev/null").unwrap();
        check_device("/dev/null", "/dev/gpu/card0").unwrap();
        for dst in [
            "/dev",
            "/dev/",
            "/etc/x",
            "/dev/../etc/x",
            "/dev/./x",
            "/dev//x",
            "dev/x",
            "/dev/x/",
        ] {
            assert!(check_device("/dev/null", dst).is_err(), "{dst}");
        }
        let e = check_device("/etc/hostname", "/dev/x").unwrap_err();
        assert!(e.contains("not a character or block device"), "{e}");
        let e = check_device("/nonexistent", "/dev/x").unwrap_err();
        assert_eq!(e, "device /nonexistent: does not exist on the host");
        assert!(check_device("dev/null", "/dev/x").is_err());
    }
}
