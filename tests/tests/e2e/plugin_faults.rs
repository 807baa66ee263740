//! Plugins that misbehave at run time (issue 8, items 17, 18 and 9's
//! install part): callbacks that hang get a deadline and do not make vessel
//! deaf to signals, store writers waiting on a hung install say so and take
//! Ctrl-C, crashes name the plugin, and killed installs leave nothing in
//! /tmp.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use vessel_tests::{
    busybox_rootfs, compiled_plugin, custom_plugin, ok, path_str as p, require_root, session_dir,
    set_mode, signed_copy, stderr, stdout, RunEnv,
};

const CLI_PLUGIN: &str = "examples/plugins/cli-plugin";

fn sandbox() -> &'static Path {
    static S: OnceLock<PathBuf> = OnceLock::new();
    S.get_or_init(|| {
        let dir = session_dir().join("plugin-faults-rootfs");
        let _ = std::fs::remove_dir_all(&dir);
        busybox_rootfs(&dir, &[]);
        set_mode(&dir, 0o755);
        dir
    })
}

/// A root trusting the reference key, with `config` as vessel.toml and the
/// signed `plugins` installed; vessel's TMPDIR is its own (empty) dir.
fn env_with(config: &str, plugins: &[PathBuf]) -> RunEnv {
    let env = RunEnv::new("vessel-faults-test-");
    env.root.trust_reference_key();
    let etc = env.root.path().join("etc/vessel");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("vessel.toml"), config).unwrap();
    for img in plugins {
        let signed = signed_copy(img, env.root.path(), None);
        ok(&env.root.run(&["plugin", "install", "--yes", p(&signed)]));
    }
    env
}

/// Waits for `child` at most `limit`; kills it (and fails) if it is still
/// running then: on the old code these runs hung forever.
fn finish_within(mut child: Child, limit: Duration, what: &str) -> Output {
    let start = Instant::now();
    while start.elapsed() < limit {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let o = child.wait_with_output().unwrap();
    panic!(
        "{what}: still running after {limit:?}\nstderr: {}",
        stderr(&o)
    );
}

fn spawn(mut c: Command) -> Child {
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vessel")
}

fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn alive(pid: i32) -> bool {
    // A zombie still answers kill(0): look at its state instead.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

fn one_error(o: &Output, code: i32, needles: &[&str]) -> String {
    let e = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout: {}\nstderr: {e}",
        stdout(o)
    );
    let errors: Vec<&str> = e.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "not one error line: {e:?}");
    for n in needles {
        assert!(errors[0].contains(n), "{:?} lacks {n:?}", errors[0]);
    }
    errors[0].to_owned()
}

const HANG_CONFIG: &str = r#"
use vessel_plugin_api::Plugin;
pub fn build() -> Plugin {
    Plugin::new("example.com/hang-config").version("0.1.0").engine_config(|_| loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    })
}
vessel_plugin_api::export_plugin!(build);
"#;

const HANG_POST_START: &str = r#"
use vessel_plugin_api::Plugin;
pub fn build() -> Plugin {
    Plugin::new("example.com/hang-post-start").version("0.1.0").post_start_process(|_, _| loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    })
}
vessel_plugin_api::export_plugin!(build);
"#;

const HANG_INSTALL: &str = r#"
use vessel_plugin_api::Plugin;
pub fn build() -> Plugin {
    Plugin::new("example.com/hang-install").version("0.1.0").install(|_| loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    })
}
vessel_plugin_api::export_plugin!(build);
"#;

const ABORT_COMMAND: &str = r#"
use vessel_plugin_api::{Command, Plugin};
pub fn build() -> Plugin {
    Plugin::new("example.com/abort-cmd")
        .version("0.1.0")
        .command(Command::new("abort-now"), |_| std::process::abort())
}
vessel_plugin_api::export_plugin!(build);
"#;

const SEGV_PLUGIN: &str = r#"
use vessel_plugin_api::{Command, Plugin};
fn crash() {
    // SAFETY: none; this plugin exists to crash.
    unsafe { std::ptr::null_mut::<u8>().write_volatile(1) }
}
pub fn build() -> Plugin {
    Plugin::new("example.com/segv")
        .version("0.1.0")
        .command(Command::new("segv-now"), |_| {
            crash();
            Ok(0)
        })
        .engine_config(|_| {
            crash();
            Ok(())
        })
}
vessel_plugin_api::export_plugin!(build);
"#;

#[test]
#[ignore = "needs root"]
fn root_a_hung_engine_config_callback_times_out_naming_the_plugin() {
    require_root();
    let img = custom_plugin("example.com/hang-config", Some(HANG_CONFIG));
    let env = env_with("plugin_timeout = 1\n", &[img]);
    let start = Instant::now();
    let o = finish_within(
        spawn(env.cmd(&["exec", p(sandbox()), "true"])),
        Duration::from_secs(20),
        "exec with a hung EngineConfig callback",
    );
    one_error(
        &o,
        255,
        &["plugin \"example.com/hang-config\": its EngineConfig callback did not return within 1s"],
    );
    assert!(start.elapsed() >= Duration::from_secs(1));
    assert!(env.work_dirs_left().is_empty());
}

#[test]
#[ignore = "needs root"]
fn root_a_hung_post_start_callback_times_out_or_takes_sigterm_and_the_container_stops() {
    require_root();
    let img = custom_plugin("example.com/hang-post-start", Some(HANG_POST_START));
    for (timeout, signal) in [
        (2, None),
        (60, Some(libc::SIGTERM)),
        (60, Some(libc::SIGINT)),
    ] {
        let env = env_with(
            &format!("plugin_timeout = {timeout}\n"),
            std::slice::from_ref(&img),
        );
        let host = tempfile::tempdir().unwrap();
        let bind = format!("{}:/mnt", host.path().display());
        let child = spawn(env.cmd(&[
            "exec",
            "-B",
            &bind,
            p(sandbox()),
            "sh",
            "-c",
            "echo $$ > /mnt/pid.tmp; mv /mnt/pid.tmp /mnt/pid; exec sleep 120",
        ]));
        let pid_file = host.path().join("pid");
        wait_for("the container to start", Duration::from_secs(20), || {
            pid_file.exists()
        });
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        if let Some(sig) = signal {
            // SAFETY: kill(2) on the vessel we started.
            unsafe { libc::kill(child.id() as i32, sig) };
        }
        let o = finish_within(child, Duration::from_secs(15), "vessel");
        let want = match signal {
            None => "plugin \"example.com/hang-post-start\": its PostStartProcess callback did not return within 2s".to_owned(),
            Some(s) => format!(
                "interrupted by {} while plugin \"example.com/hang-post-start\" ran its PostStartProcess callback",
                if s == libc::SIGTERM { "SIGTERM" } else { "SIGINT" }
            ),
        };
        one_error(&o, 255, &[&want]);
        wait_for("the container to end", Duration::from_secs(5), || {
            !alive(pid)
        });
        assert!(env.work_dirs_left().is_empty());
    }
}

/// A hung Install callback holds the store lock: another writer says it is
/// waiting and gives up on Ctrl-C; SIGKILLing the hung install leaves
/// nothing in /tmp and its scratch goes with the next store write.
#[test]
#[ignore = "needs root"]
fn root_writers_blocked_by_a_hung_install_say_so_and_take_ctrl_c() {
    require_root();
    let hang = custom_plugin("example.com/hang-install", Some(HANG_INSTALL));
    let env = env_with("plugin_timeout = 600\n", &[]);
    let hang = signed_copy(&hang, env.root.path(), None);
    let cli = signed_copy(&compiled_plugin(CLI_PLUGIN), env.root.path(), None);
    let mut holder = spawn(env.cmd(&["plugin", "install", "--yes", p(&hang)]));
    let lock = env.root.plugin_dir().join(".lock");
    wait_for(
        "the install to hold the store lock",
        Duration::from_secs(30),
        || {
            lock.exists()
                && !Command::new("flock")
                    .args(["-n", p(&lock), "true"])
                    .status()
                    .unwrap()
                    .success()
        },
    );

    let err_file = env.root.path().join("waiter.err");
    let mut waiter = env.cmd(&["plugin", "install", "--yes", p(&cli)]);
    waiter
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_file).unwrap());
    let mut waiter = waiter.spawn().unwrap();
    wait_for("the waiting message", Duration::from_secs(10), || {
        std::fs::read_to_string(&err_file)
            .unwrap()
            .contains("waiting for the plugin store lock (held by another vessel)")
    });
    assert!(waiter.try_wait().unwrap().is_none(), "the waiter gave up");
    // SAFETY: kill(2) on the vessel we started.
    unsafe { libc::kill(waiter.id() as i32, libc::SIGINT) };
    let start = Instant::now();
    let status = loop {
        if let Some(s) = waiter.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "SIGINT ignored");
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(&err_file).unwrap();
    assert_eq!(status.code(), Some(255), "{text}");
    let last = text.lines().last().unwrap_or("");
    assert_eq!(
        last,
        "error: plugin store: interrupted by SIGINT while waiting for the store lock"
    );

    // SIGKILL the hung install: its copies stay in the store's scratch,
    // not in /tmp, until the next writer sweeps them.
    holder.kill().unwrap();
    holder.wait().unwrap();
    let tmp_left: Vec<_> = std::fs::read_dir(env.tmp.path())
        .unwrap()
        .flatten()
        .collect();
    assert!(tmp_left.is_empty(), "left in TMPDIR: {tmp_left:?}");
    let scratch = env.root.plugin_dir().join(".scratch");
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 1);
    ok(&env.root.run(&["plugin", "install", "--yes", p(&cli)]));
    assert!(!scratch.exists(), "the next writer left the dead scratch");
    assert_eq!(ok(&env.root.run(&["test-cmd", "x"])), "test-cmd: x\n");
}

#[test]
#[ignore = "needs root"]
fn root_killed_installs_leave_nothing_in_tmp_and_the_next_write_sweeps_the_scratch() {
    require_root();
    let env = env_with("", &[]);
    let img = signed_copy(&compiled_plugin(CLI_PLUGIN), env.root.path(), None);
    for point in ["files-written", "meta-written"] {
        let o = env
            .root
            .vessel()
            .env("TMPDIR", env.tmp.path())
            .env("VESSEL_FAULT_INJECT", format!("{point}:kill"))
            .args(["plugin", "install", "--yes", "--upgrade", p(&img)])
            .output()
            .unwrap();
        assert_eq!(
            o.status.signal(),
            Some(libc::SIGKILL),
            "{point}: not killed"
        );
        let tmp_left: Vec<_> = std::fs::read_dir(env.tmp.path())
            .unwrap()
            .flatten()
            .collect();
        assert!(tmp_left.is_empty(), "{point}: left in TMPDIR: {tmp_left:?}");
        let scratch = env.root.plugin_dir().join(".scratch");
        let dead: Vec<_> = std::fs::read_dir(&scratch).unwrap().flatten().collect();
        assert_eq!(dead.len(), 1, "{point}: {dead:?}");
        let meta = std::fs::metadata(dead[0].path()).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o700
        );
        // A store write that makes no scratch of its own sweeps it.
        if point == "meta-written" {
            ok(&env
                .root
                .run(&["plugin", "disable", "example.com/cli-plugin"]));
        } else {
            ok(&env
                .root
                .run(&["plugin", "install", "--yes", "--upgrade", p(&img)]));
        }
        assert!(
            !scratch.exists(),
            "{point}: the dead install's scratch is left"
        );
    }
}

#[test]
#[ignore = "needs root"]
fn root_crashing_plugins_are_named_with_the_signal_and_callback() {
    require_root();
    let abort = custom_plugin("example.com/abort-cmd", Some(ABORT_COMMAND));
    let segv = custom_plugin("example.com/segv", Some(SEGV_PLUGIN));
    let env = env_with("", &[abort, segv]);
    let cases: [(&[&str], i32, &str); 3] = [
        (
            &["abort-now"],
            libc::SIGABRT,
            "error: plugin \"example.com/abort-cmd\" crashed (SIGABRT) in its command callback",
        ),
        (
            &["segv-now"],
            libc::SIGSEGV,
            "error: plugin \"example.com/segv\" crashed (SIGSEGV) in its command callback",
        ),
        (
            &["exec", p(sandbox()), "true"],
            libc::SIGSEGV,
            "error: plugin \"example.com/segv\" crashed (SIGSEGV) in its EngineConfig callback",
        ),
    ];
    for (args, signal, line) in cases {
        let o = env.run(args);
        assert_eq!(o.status.signal(), Some(signal), "{args:?}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(e.lines().any(|l| l == line), "{args:?}: {e}");
    }
}
