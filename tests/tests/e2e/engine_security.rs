//! The engine against hostile images and a shared host: each test performs
//! the attack or fault (as `nobody` where another user is the attacker) and
//! checks vessel does not fall for it. Each builds its own busybox sandbox
//! under a world-traversable temp dir, so tests can change it freely.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use vessel_tests::{
    as_nobody, assert_error, busybox_rootfs, nobody_has_userns, path_str as p, require_root,
    set_mode, static_c_binary, stderr, stdout, RunEnv, TmpfsMount, NOBODY,
};

/// A fresh busybox sandbox: (guard, rootfs path).
pub(crate) fn sandbox(extra_dirs: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::Builder::new()
        .prefix("vessel-sec-img-")
        .tempdir()
        .unwrap();
    set_mode(d.path(), 0o755);
    let root = d.path().join("rootfs");
    busybox_rootfs(&root, extra_dirs);
    (d, root)
}

/// A world-traversable host dir for bind sources.
fn host_dir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("vessel-sec-host-")
        .tempdir()
        .unwrap();
    set_mode(d.path(), 0o755);
    d
}

#[test]
#[ignore = "needs root"]
fn root_ro_bind_and_ro_image_root_are_read_only_below_too() {
    require_root();
    let env = RunEnv::new("vessel-sec-");
    let host = host_dir();
    let _sub = TmpfsMount::new(&host.path().join("sub"), 0o755);
    let (_img, rootfs) = sandbox(&["opt"]);
    let _opt = TmpfsMount::new(&rootfs.join("opt"), 0o755);
    let bind = format!("{}:/mnt:ro", host.path().display());
    let o = env.run(&[
        "exec",
        "-B",
        &bind,
        p(&rootfs),
        "sh",
        "-c",
        "echo x > /mnt/sub/f && echo wrote-bind; echo x > /opt/f && echo wrote-root; true",
    ]);
    assert_eq!(stdout(&o), "", "{}", stderr(&o));
    assert_eq!(
        stderr(&o).matches("Read-only file system").count(),
        2,
        "{}",
        stderr(&o)
    );
    assert!(!host.path().join("sub/f").exists());
    assert!(!rootfs.join("opt/f").exists());
    assert!(env.work_dirs_left().is_empty());
}

#[test]
#[ignore = "needs root"]
fn root_unprivileged_run_survives_a_mount_under_host_tmp() {
    require_root();
    if !nobody_has_userns() {
        eprintln!("root_unprivileged_run_survives_a_mount_under_host_tmp: skipped, no user namespaces for nobody");
        return;
    }
    let env = RunEnv::new("vessel-sec-");
    // The container binds the host's /tmp itself, so the mount must be there.
    let t = tempfile::Builder::new()
        .prefix("vessel-sec-tmpmount-")
        .tempdir_in("/tmp")
        .unwrap();
    set_mode(t.path(), 0o755);
    let _m = TmpfsMount::new(&t.path().join("m"), 0o755);
    std::fs::write(t.path().join("m/seen"), "under a host mount\n").unwrap();
    let home = host_dir();
    nix::unistd::chown(
        home.path(),
        Some(nix::unistd::Uid::from_raw(NOBODY)),
        Some(nix::unistd::Gid::from_raw(NOBODY)),
    )
    .unwrap();
    let (_img, rootfs) = sandbox(&[]);
    let seen = t.path().join("m/seen");
    let mut c = env.cmd(&["exec", p(&rootfs), "cat", p(&seen)]);
    as_nobody(&mut c);
    c.env("HOME", home.path());
    let o = c.output().unwrap();
    assert_eq!(stdout(&o), "under a host mount\n", "{}", stderr(&o));
    assert!(o.status.success());
    assert!(env.work_dirs_left().is_empty());
}

#[test]
#[ignore = "needs root"]
fn root_a_symlinked_bind_destination_is_followed_inside_the_root() {
    require_root();
    let env = RunEnv::new("vessel-sec-");
    let (_img, rootfs) = sandbox(&["opt"]);
    // Absolute and relative links out of the root.
    std::fs::remove_dir(rootfs.join("mnt")).unwrap();
    symlink("/etc", rootfs.join("mnt")).unwrap();
    symlink("../../../../../../../../../home", rootfs.join("opt/up")).unwrap();
    let src = host_dir();
    std::fs::write(src.path().join("marker"), "bound\n").unwrap();
    let b = format!("{0}:/mnt,{0}:/opt/up", src.path().display());
    let o = env.run(&[
        "exec",
        "-B",
        &b,
        p(&rootfs),
        "sh",
        "-c",
        "cat /etc/marker /home/marker",
    ]);
    assert_eq!(stdout(&o), "bound\nbound\n", "{}", stderr(&o));
    assert!(!Path::new("/etc/marker").exists());
    // A link that resolves to nothing inside the root is refused by name.
    symlink("/no/such/dir", rootfs.join("nowhere")).unwrap();
    let b = format!("{}:/nowhere", src.path().display());
    let o = env.run(&["exec", "-B", &b, p(&rootfs), "true"]);
    assert_error(&o, 255, &["/nowhere"]);
    assert!(env.work_dirs_left().is_empty());
}

/// Flips two entries of a directory (RENAME_EXCHANGE) as fast as it can,
/// until killed.
const FLIPPER_C: &str = r#"
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int fd = open(argv[1], O_PATH | O_DIRECTORY);
    if (fd < 0) { perror("open"); return 1; }
    for (;;)
        if (renameat2(fd, argv[2], fd, argv[3], RENAME_EXCHANGE)) { perror("renameat2"); return 1; }
}
"#;

#[test]
#[ignore = "needs root"]
fn root_a_dev_swapped_for_a_symlink_during_setup_creates_nothing_outside() {
    require_root();
    let env = RunEnv::new("vessel-sec-");
    let (_img, rootfs) = sandbox(&[]);
    let outside = host_dir();
    symlink(outside.path(), rootfs.join("dev-link")).unwrap();
    // The sandbox belongs to `nobody`, who flips `dev` between a directory
    // and a symlink to a host dir while root sets the container up (runc
    // CVE-2021-30465).
    let nobody = Some(nix::unistd::Uid::from_raw(NOBODY));
    nix::unistd::chown(&rootfs, nobody, None).unwrap();
    nix::unistd::fchownat(
        None,
        &rootfs.join("dev-link"),
        nobody,
        None,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .unwrap();
    nix::unistd::chown(&rootfs.join("dev"), nobody, None).unwrap();
    let (_bin, flipper) = static_c_binary("flipper", FLIPPER_C);
    let mut c = Command::new(&flipper);
    c.arg(&rootfs).args(["dev", "dev-link"]);
    as_nobody(&mut c);
    let mut flipping = c.spawn().unwrap();
    let mut outcomes = Vec::new();
    for _ in 0..100 {
        let o = env.run(&["exec", "--contain", p(&rootfs), "true"]);
        if !o.status.success() {
            assert_error(&o, 255, &["/dev"]);
        }
        outcomes.push(o.status.code());
        let created: Vec<_> = std::fs::read_dir(outside.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(
            created.is_empty(),
            "root created {created:?} in {} through the dev symlink",
            outside.path().display()
        );
    }
    let _ = flipping.kill();
    let _ = flipping.wait();
    assert!(env.work_dirs_left().is_empty());
    // Unswapped, the contained /dev is complete.
    if std::fs::symlink_metadata(rootfs.join("dev"))
        .unwrap()
        .is_symlink()
    {
        std::fs::rename(rootfs.join("dev"), rootfs.join("dev-tmp")).unwrap();
        std::fs::rename(rootfs.join("dev-link"), rootfs.join("dev")).unwrap();
        std::fs::rename(rootfs.join("dev-tmp"), rootfs.join("dev-link")).unwrap();
    }
    let o = env.run(&[
        "exec",
        "--contain",
        p(&rootfs),
        "sh",
        "-c",
        "test -c /dev/null && echo ok",
    ]);
    assert_eq!(stdout(&o), "ok\n", "{} {outcomes:?}", stderr(&o));
}

/// Prints its effective uid; with `drop` first becomes `nobody` and execs
/// itself again, so a setuid-root copy shows whether the bit took effect.
const EUID_C: &str = r#"
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "drop") == 0) {
        if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534)) { perror("drop"); return 1; }
        execl(argv[0], argv[0], (char *)0);
        perror("exec");
        return 1;
    }
    printf("euid=%d\n", (int)geteuid());
    return 0;
}
"#;

/// A sandbox with a setuid-root `/bin/euid` and a SIF built from it.
fn setuid_images(env: &RunEnv) -> (tempfile::TempDir, tempfile::TempDir, PathBuf, PathBuf) {
    let (bin_dir, euid) = static_c_binary("euid", EUID_C);
    let (img, rootfs) = sandbox(&[]);
    let target = rootfs.join("bin/euid");
    std::fs::copy(&euid, &target).unwrap();
    set_mode(&target, 0o4755);
    let sif = img.path().join("suid.sif");
    let o = env.run(&["build", p(&sif), p(&rootfs)]);
    assert!(o.status.success(), "build: {}", stderr(&o));
    set_mode(&sif, 0o644);
    (bin_dir, img, rootfs, sif)
}

fn use_extract_driver(env: &RunEnv) {
    let etc = env.root.path().join("etc/vessel");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("vessel.toml"), "image_driver = \"extract\"\n").unwrap();
}

#[test]
#[ignore = "needs root"]
fn root_setuid_binaries_in_the_image_gain_nothing() {
    require_root();
    let sandbox_env = RunEnv::new("vessel-sec-");
    let (_b, _i, rootfs, sif) = setuid_images(&sandbox_env);
    let extract_env = RunEnv::new("vessel-sec-");
    use_extract_driver(&extract_env);
    for (kind, env, img) in [
        ("sandbox", &sandbox_env, &rootfs),
        ("sif, kernel squashfs", &sandbox_env, &sif),
        ("sif, extracted", &extract_env, &sif),
    ] {
        let o = env.run(&["exec", p(img), "/bin/euid", "drop"]);
        assert_eq!(stdout(&o), "euid=65534\n", "{kind}: {}", stderr(&o));
        assert!(env.work_dirs_left().is_empty(), "{kind}");
    }
}

#[test]
#[ignore = "needs root"]
fn root_work_dir_of_an_extracted_image_is_private_while_it_runs() {
    require_root();
    let env = RunEnv::new("vessel-sec-");
    let (_b, _i, _rootfs, sif) = setuid_images(&env);
    use_extract_driver(&env);
    // Root's extraction lands in root's image cache (kept after the run);
    // without a cache it would be the run's work dir. Either way the tree
    // holding the image's setuid binary sits below a root-owned 0700 dir.
    let sandboxes = env.root.path().join("var/cache/vessel/sandboxes");
    let extracted = || -> Option<PathBuf> {
        let in_work = env.work_dirs_left().into_iter();
        let in_cache = std::fs::read_dir(&sandboxes)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path());
        in_work
            .chain(in_cache)
            .find(|d| d.join("rootfs/bin/euid").exists())
    };
    let mut running = env.cmd(&["exec", p(&sif), "sleep", "30"]).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let work = loop {
        if let Some(d) = extracted() {
            break d;
        }
        assert!(std::time::Instant::now() < deadline, "no extracted image");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let private = work
        .ancestors()
        .take_while(|a| *a != env.root.path() && *a != env.tmp.path())
        .find(|a| {
            let m = std::fs::metadata(a).unwrap();
            m.uid() == 0 && m.permissions().mode() & 0o077 == 0
        });
    assert!(
        private.is_some(),
        "no root-owned private dir above {}",
        work.display()
    );
    // Another user can neither run the image's setuid binary nor read it.
    let mut c = Command::new(work.join("rootfs/bin/euid"));
    as_nobody(&mut c);
    let o = c.output();
    let mut ls = Command::new("ls");
    ls.arg(work.join("rootfs/bin"));
    as_nobody(&mut ls);
    let listed = ls.output().unwrap();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(running.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = running.wait();
    match o {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}"),
        Ok(o) => panic!("nobody ran the image's setuid binary: {}", stdout(&o)),
    }
    assert!(!listed.status.success(), "nobody listed {}", work.display());
    assert!(env.work_dirs_left().is_empty());
}

/// Pushes a character into its stdin's terminal input (TIOCSTI) and says
/// whether the kernel let it.
const TIOCSTI_C: &str = r#"
#include <stdio.h>
#include <sys/ioctl.h>
int main(void) {
    char c = '#';
    if (ioctl(0, TIOCSTI, &c) == 0) puts("tiocsti=ok"); else perror("tiocsti");
    return 0;
}
"#;

/// `vessel ARGS` under `script`, so vessel's stdin/stdout is a pty that
/// is the controlling terminal of its session, as in an interactive shell.
fn under_a_pty(env: &RunEnv, args: &[&str], nobody: bool) -> Output {
    let vessel = vessel_tests::vessel_bin();
    let line = std::iter::once(p(vessel))
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut c = Command::new("script");
    c.args(["-qec", &line, "/dev/null"])
        .env("VESSEL_ROOT", env.root.path())
        .env("TMPDIR", env.tmp.path())
        .stdin(std::process::Stdio::null());
    if nobody {
        as_nobody(&mut c);
    }
    c.output().unwrap()
}

#[test]
#[ignore = "needs root"]
fn root_the_container_cannot_reach_the_callers_terminal() {
    require_root();
    let env = RunEnv::new("vessel-sec-");
    let (_b, tiocsti) = static_c_binary("tiocsti", TIOCSTI_C);
    let (_img, rootfs) = sandbox(&[]);
    std::fs::copy(&tiocsti, rootfs.join("bin/tiocsti")).unwrap();
    set_mode(&rootfs.join("bin/tiocsti"), 0o755);
    // Own session, no controlling terminal, though stdin is the caller's tty.
    let o = under_a_pty(
        &env,
        &[
            "exec",
            p(&rootfs),
            "sh",
            "-c",
            "test -t 0 && echo stdin-is-a-tty; \
             set -- $(cat /proc/$PPID/stat); outer=$6; set -- $(cat /proc/self/stat); \
             [ $6 != $outer ] && echo own-session; \
             (exec 3</dev/tty) 2>/dev/null && echo has-ctty || echo no-ctty",
        ],
        false,
    );
    let out = stdout(&o).replace('\r', "");
    assert_eq!(
        out,
        "stdin-is-a-tty\nown-session\nno-ctty\n",
        "{}",
        stderr(&o)
    );
    // An unprivileged container cannot type into the caller's terminal.
    if nobody_has_userns() {
        let o = under_a_pty(&env, &["exec", p(&rootfs), "/bin/tiocsti"], true);
        let out = stdout(&o).replace('\r', "");
        assert!(
            out.contains("tiocsti: Operation not permitted") && !out.contains("tiocsti=ok"),
            "{out:?} {}",
            stderr(&o)
        );
    }
    assert!(env.work_dirs_left().is_empty());
}

/// Pids of the zombie processes descending from `ancestor`.
fn zombies_below(ancestor: u32) -> Vec<u32> {
    let stat = |pid: u32| -> Option<(char, u32)> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = &s[s.rfind(')')? + 2..];
        let mut f = rest.split(' ');
        let state = f.next()?.chars().next()?;
        let ppid = f.next()?.parse().ok()?;
        Some((state, ppid))
    };
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Some((state, mut ppid)) = stat(pid) else {
            continue;
        };
        if state != 'Z' {
            continue;
        }
        while ppid > 1 {
            if ppid == ancestor {
                found.push(pid);
                break;
            }
            ppid = stat(ppid).map_or(0, |(_, p)| p);
        }
    }
    found
}

#[test]
#[ignore = "needs root"]
fn root_pid_namespace_init_reaps_orphans_and_passes_sigterm_on() {
    require_root();
    let env = RunEnv::new("vessel-sec-");
    let (_img, rootfs) = sandbox(&[]);
    // An orphan that exits at once, then a command without signal handlers.
    let mut running = env
        .cmd(&[
            "exec",
            "--pid",
            p(&rootfs),
            "sh",
            "-c",
            "sh -c 'sleep 0.1 &'; exec sleep 1000",
        ])
        .spawn()
        .unwrap();
    let vessel = running.id();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let zombies = zombies_below(vessel);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(vessel as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let status = loop {
        if let Some(s) = running.try_wait().unwrap() {
            break Some(s);
        }
        if std::time::Instant::now() > deadline {
            let _ = running.kill();
            let _ = running.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(zombies.is_empty(), "zombies left unreaped: {zombies:?}");
    let status = status.expect("SIGTERM to vessel did not end `sleep` running under --pid");
    assert_eq!(status.code(), Some(143));
    assert!(env.work_dirs_left().is_empty());
}

/// Pids of processes whose argv is exactly `argv`.
fn processes_running(argv: &[&str]) -> Vec<i32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want))
        .collect()
}

/// Waits up to 5 s for `done`.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    done()
}

#[test]
#[ignore = "needs root"]
fn root_background_processes_die_with_the_container() {
    require_root();
    let env = RunEnv::new("vessel-sec-");
    let (img, rootfs) = sandbox(&[]);
    let sif = img.path().join("bg.sif");
    let o = env.run(&["build", p(&sif), p(&rootfs)]);
    assert!(o.status.success(), "build: {}", stderr(&o));
    let nobody = nobody_has_userns();
    // Unique per test process, so concurrent runs of this test never see
    // each other's sleeps.
    let secs: Vec<String> = (1..=3)
        .map(|i| format!("{}{i}", 900000 + std::process::id()))
        .collect();
    for (kind, image, secs, as_user) in [
        ("sandbox", &rootfs, secs[0].as_str(), false),
        ("sif", &sif, secs[1].as_str(), false),
        ("unprivileged sandbox", &rootfs, secs[2].as_str(), true),
    ] {
        if as_user && !nobody {
            continue;
        }
        let run = |args: &[&str]| {
            if as_user {
                env.run_as_nobody(args)
            } else {
                env.run(args)
            }
        };
        let o = run(&[
            "exec",
            p(image),
            "sh",
            "-c",
            &format!("sleep {secs} >/dev/null 2>&1 & echo started"),
        ]);
        assert_eq!(stdout(&o), "started\n", "{kind}: {}", stderr(&o));
        let gone = eventually(|| processes_running(&["sleep", secs]).is_empty());
        for pid in processes_running(&["sleep", secs]) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        assert!(
            gone,
            "{kind}: the container's background process outlived vessel"
        );
    }
    // Nothing pins the image's loop device any more.
    let sif_name = sif.to_string_lossy().into_owned();
    assert!(eventually(|| {
        let o = Command::new("losetup").arg("-a").output().unwrap();
        !stdout(&o).contains(&sif_name)
    }));
    assert!(env.work_dirs_left().is_empty());
}

#[test]
#[ignore = "needs root"]
fn root_a_sigkilled_run_leaves_no_work_dir_after_the_next_run() {
    require_root();
    let (img, rootfs) = sandbox(&[]);
    let sandbox_env = RunEnv::new("vessel-sec-");
    let sif = img.path().join("k.sif");
    let o = sandbox_env.run(&["build", p(&sif), p(&rootfs)]);
    assert!(o.status.success(), "build: {}", stderr(&o));
    let extract_env = RunEnv::new("vessel-sec-");
    use_extract_driver(&extract_env);
    for (kind, env, image) in [
        ("sandbox", &sandbox_env, &rootfs),
        ("extracted sif", &extract_env, &sif),
    ] {
        let mut running = env
            .cmd(&["exec", p(image), "sleep", "987653"])
            .spawn()
            .unwrap();
        assert!(
            eventually(|| !processes_running(&["sleep", "987653"]).is_empty()),
            "{kind}: the container did not start"
        );
        assert!(!env.work_dirs_left().is_empty(), "{kind}");
        running.kill().unwrap();
        running.wait().unwrap();
        // The container dies with vessel (parent-death signal).
        assert!(
            eventually(|| processes_running(&["sleep", "987653"]).is_empty()),
            "{kind}: the container outlived a SIGKILLed vessel"
        );
        // The next run removes what the killed one could not.
        let o = env.run(&["exec", p(image), "true"]);
        assert!(o.status.success(), "{kind}: {}", stderr(&o));
        let left = env.work_dirs_left();
        assert!(left.is_empty(), "{kind}: left behind: {left:?}");
    }
}

/// The `CapEff` line of /proc/self/status of this process.
fn host_cap_eff() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("CapEff:"))
        .unwrap()
        .to_owned()
}

#[test]
#[ignore = "needs root"]
fn root_containers_are_confined_unless_asked() {
    require_root();
    let env = RunEnv::new("vessel-sec-");
    let (_img, rootfs) = sandbox(&[]);
    let (_b, tiocsti) = static_c_binary("tiocsti", TIOCSTI_C);
    std::fs::copy(&tiocsti, rootfs.join("bin/tiocsti")).unwrap();
    set_mode(&rootfs.join("bin/tiocsti"), 0o755);
    // What a root container tries: its capabilities, core_pattern (runs a
    // program as host root), the host root through vessel's /proc entry,
    // kernel memory.
    let probe = "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; \
                 v=$(cat /proc/sys/kernel/core_pattern); \
                 (echo \"$v\" > /proc/sys/kernel/core_pattern) 2>/dev/null && echo wrote-core-pattern; \
                 ls /proc/$PPID/root/ >/dev/null 2>&1 && echo reached-host-root; \
                 head -c 1 /proc/kcore 2>/dev/null | wc -c";
    let o = env.run(&["exec", p(&rootfs), "sh", "-c", probe]);
    assert_eq!(
        stdout(&o),
        "CapEff:\t00000000a80425fb\nNoNewPrivs:\t1\n0\n",
        "{}",
        stderr(&o)
    );
    let o = env.run(&["exec", "--no-privs", p(&rootfs), "sh", "-c", probe]);
    assert_eq!(
        stdout(&o),
        "CapEff:\t0000000000000000\nNoNewPrivs:\t1\n0\n",
        "{}",
        stderr(&o)
    );
    let o = env.run(&[
        "exec",
        "--keep-privs",
        p(&rootfs),
        "grep",
        "-E",
        "^(CapEff|NoNewPrivs)",
        "/proc/self/status",
    ]);
    assert_eq!(
        stdout(&o),
        format!("{}\nNoNewPrivs:\t0\n", host_cap_eff()),
        "{}",
        stderr(&o)
    );
    // The default seccomp filter: no user namespace from inside (it needs
    // no capability), unless privileges are kept.
    let userns = "unshare -U true 2>/dev/null && echo made-a-userns || echo refused";
    let o = env.run(&["exec", p(&rootfs), "sh", "-c", userns]);
    assert_eq!(stdout(&o), "refused\n", "{}", stderr(&o));
    let o = env.run(&["exec", "--keep-privs", p(&rootfs), "sh", "-c", userns]);
    assert_eq!(stdout(&o), "made-a-userns\n", "{}", stderr(&o));
    // Without CAP_SYS_ADMIN, a root container cannot type into the
    // caller's terminal either.
    let o = under_a_pty(&env, &["exec", p(&rootfs), "/bin/tiocsti"], false);
    let out = stdout(&o).replace('\r', "");
    assert!(
        out.contains("tiocsti: Operation not permitted") && !out.contains("tiocsti=ok"),
        "{out:?} {}",
        stderr(&o)
    );
    assert!(env.work_dirs_left().is_empty());
}

#[test]
#[ignore = "needs root"]
fn root_ctrl_c_in_a_shell_still_stops_the_command_it_runs() {
    require_root();
    let env = RunEnv::new("vessel-sec-");
    let (_img, rootfs) = sandbox(&[]);
    ctrl_c_in_a_shell_stops_the_command(&env, &rootfs);
    assert!(env.work_dirs_left().is_empty());
}

/// Under a pty, `vessel shell` (with and without `--pid`) runs `sleep 100`,
/// gets Ctrl-C, then runs another command: Ctrl-C must stop the sleep.
pub(crate) fn ctrl_c_in_a_shell_stops_the_command(env: &RunEnv, rootfs: &Path) {
    for pid in [&[][..], &["--pid"][..]] {
        let mut args = vec!["shell"];
        args.extend_from_slice(pid);
        args.push(p(rootfs));
        // Typed at the terminal: a command, Ctrl-C, then another command.
        let typing = "sleep 1; printf 'sleep 100\\n'; sleep 1; printf '\\003'; sleep 1; \
                      printf 'echo after-ctrl-c; exit\\n'; sleep 1";
        let vessel = vessel_tests::vessel_bin();
        let line = std::iter::once(p(vessel))
            .chain(args.iter().copied())
            .map(|a| format!("'{a}'"))
            .collect::<Vec<_>>()
            .join(" ");
        let started = std::time::Instant::now();
        let o = Command::new("sh")
            .arg("-c")
            .arg(format!("({typing}) | script -qec \"{line}\" /dev/null"))
            .env("VESSEL_ROOT", env.root.path())
            .env("TMPDIR", env.tmp.path())
            .output()
            .unwrap();
        let out = stdout(&o).replace('\r', "");
        assert!(
            out.lines().any(|l| l == "after-ctrl-c"),
            "{pid:?}: {out:?} {}",
            stderr(&o)
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{pid:?}"
        );
    }
}
