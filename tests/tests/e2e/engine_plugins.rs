//! Plugins in the container engine, end to end: the example plugins are
//! compiled, signed and installed with `vessel plugin install`, then
//! containers run with `vessel exec` on a busybox rootfs (a sandbox dir
//! and a SIF built by `vessel build`). After every run nothing may be left:
//! no mount of the images or work dirs, no work dir (each test gives vessel
//! its own TMPDIR, which must end up empty).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use vessel_tests::{
    as_nobody, assert_error, busybox_rootfs, compiled_plugin, custom_plugin, mountinfo,
    nobody_has_userns, ok, path_str as p, require_root, session_dir, set_mode, signed_copy, stderr,
    stdout, RunEnv, TestRoot,
};

const CONFIG_PLUGIN: &str = "examples/plugins/config-plugin";
const RUNTIME_PLUGIN: &str = "examples/plugins/runtime-plugin";
const SQUASHFUSE_DRIVER: &str = "examples/plugins/squashfuse-driver";
const LOG_PLUGIN: &str = "examples/plugins/log-plugin";

/// A busybox rootfs with `/config-plugin/hostname` (config-plugin's bind
/// destination), as a sandbox and as a SIF; built once per test process.
struct Images {
    dir: PathBuf,
    sandbox: PathBuf,
    sif: PathBuf,
}

fn images() -> &'static Images {
    static I: OnceLock<Images> = OnceLock::new();
    I.get_or_init(|| {
        let dir = session_dir().join("engine-plugin-fixtures");
        let _ = std::fs::remove_dir_all(&dir);
        let sandbox = dir.join("rootfs");
        busybox_rootfs(&sandbox, &["config-plugin"]);
        std::fs::write(sandbox.join("config-plugin/hostname"), "image\n").unwrap();
        for d in [&dir, &sandbox] {
            set_mode(d, 0o755);
        }
        let sif = dir.join("rootfs.sif");
        let o = TestRoot::new().run(&["build", p(&sif), p(&sandbox)]);
        assert!(o.status.success(), "vessel build: {}", stderr(&o));
        set_mode(&sif, 0o644);
        Images { dir, sandbox, sif }
    })
}

/// One test's VESSEL_ROOT (trusting the reference key) and private TMPDIR.
struct Env {
    run: RunEnv,
}

impl std::ops::Deref for Env {
    type Target = RunEnv;
    fn deref(&self) -> &RunEnv {
        &self.run
    }
}

impl Env {
    fn new() -> Self {
        let run = RunEnv::new("vessel-hooks-test-");
        run.root.trust_reference_key();
        Self { run }
    }

    /// Installs the plugin image `img` (signed with the trusted key).
    fn install(&self, img: &Path) {
        let signed = signed_copy(img, self.root.path(), None);
        ok(&self.root.run(&["plugin", "install", "--yes", p(&signed)]));
    }

    /// The files dir of installed plugin `name` (through its name link).
    fn plugin_files(&self, name: &str) -> PathBuf {
        self.root.plugin_files(name)
    }

    fn write_config(&self, text: &str) {
        let etc = self.root.path().join("etc/vessel");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("vessel.toml"), text).unwrap();
    }

    /// No work dir and no mount of the images or work dirs is left.
    fn assert_clean(&self) {
        let left = self.work_dirs_left();
        assert!(left.is_empty(), "work dirs left behind: {left:?}");
        let info = mountinfo();
        for needle in [
            images().dir.to_string_lossy().into_owned(),
            self.tmp.path().to_string_lossy().into_owned(),
        ] {
            assert!(
                !info.contains(&needle),
                "mounts of {needle} left behind:\n{info}"
            );
        }
    }
}

#[test]
#[ignore = "needs root"]
fn root_config_plugin_bind_and_env_are_visible_in_the_container() {
    require_root();
    let env = Env::new();
    env.install(&compiled_plugin(CONFIG_PLUGIN));
    let conf = env
        .root
        .plugin_config_dir("example.com/config-plugin")
        .join("config-plugin.conf");
    assert!(
        std::fs::read_to_string(&conf)
            .unwrap()
            .contains("bind = /etc/hostname:/config-plugin/hostname:ro"),
        "the Install callback wrote the default config"
    );
    let script = "cat /config-plugin/hostname; echo CONFIG_PLUGIN=$CONFIG_PLUGIN; \
                  if echo x 2>/dev/null > /config-plugin/hostname; then echo writable; fi";
    let imgs = images();
    if let Ok(host_name) = std::fs::read_to_string("/etc/hostname") {
        // The default config: the host's /etc/hostname, read-only.
        for img in [&imgs.sandbox, &imgs.sif] {
            let o = env.run(&["exec", p(img), "sh", "-c", script]);
            assert_eq!(ok(&o), format!("{host_name}CONFIG_PLUGIN=1\n"), "{img:?}");
            env.assert_clean();
        }
    } else {
        eprintln!("no /etc/hostname on this host: checked the edited config only");
    }

    // The config is read when each container starts: an edit applies to the next.
    let host = tempfile::tempdir().unwrap();
    set_mode(host.path(), 0o755);
    let file = host.path().join("value");
    std::fs::write(&file, "from the edited config\n").unwrap();
    set_mode(&file, 0o644);
    std::fs::write(
        &conf,
        format!(
            "bind = {}:/config-plugin/hostname:ro\nenv = CONFIG_PLUGIN=edited\n",
            file.display()
        ),
    )
    .unwrap();
    let want = "from the edited config\nCONFIG_PLUGIN=edited\n";
    for img in [&imgs.sandbox, &imgs.sif] {
        let o = env.run(&["exec", p(img), "sh", "-c", script]);
        assert_eq!(ok(&o), want, "{img:?}");
        env.assert_clean();
    }
    if nobody_has_userns() {
        let o = env.run_as_nobody(&["exec", p(&imgs.sandbox), "sh", "-c", script]);
        assert_eq!(ok(&o), want, "as nobody");
        env.assert_clean();
        eprintln!("config-plugin: checked as root and as nobody");
    } else {
        eprintln!("config-plugin: unprivileged user namespaces unavailable; checked as root only");
    }

    // Lazy loading: exec opens config-plugin; `version` never does.
    let o = env.run(&["-d", "exec", p(&imgs.sandbox), "true"]);
    let loads = |o: &Output| {
        stderr(o)
            .lines()
            .filter(|l| l.contains("loading plugin library") && l.contains("config-plugin"))
            .count()
    };
    assert_eq!(loads(&o), 1, "{}", stderr(&o));
    let o = env.run(&["-d", "version"]);
    assert_eq!(loads(&o), 0, "{}", stderr(&o));

    // A bad config stops the run with the plugin's one-line error.
    std::fs::write(&conf, "bind = nonsense\n").unwrap();
    let o = env.run(&["exec", p(&imgs.sandbox), "true"]);
    assert_error(
        &o,
        255,
        &[
            "plugin \"example.com/config-plugin\"",
            "config-plugin.conf line 1",
        ],
    );
    env.assert_clean();
}

#[test]
#[ignore = "needs root"]
fn root_runtime_plugin_records_pid_and_status() {
    require_root();
    let env = Env::new();
    env.install(&compiled_plugin(RUNTIME_PLUGIN));
    let imgs = images();
    let out = tempfile::tempdir().unwrap();
    let out_s = out.path().to_str().unwrap().to_owned();
    let records = env.root.plugin_state_dir("example.com/runtime-plugin");
    for img in [&imgs.sandbox, &imgs.sif] {
        // Records in root's state dir (the default) and in $VESSEL_RUNTIME_PLUGIN_DIR.
        for dir in [None, Some(out.path())] {
            let _ = std::fs::remove_file(out.path().join("self"));
            let bind = format!("{out_s}:/mnt");
            let mut c = env.cmd(&[
                "exec",
                "-B",
                &bind,
                p(img),
                "sh",
                "-c",
                "echo $$ > /mnt/self; exit 7",
            ]);
            if let Some(d) = dir {
                c.env("VESSEL_RUNTIME_PLUGIN_DIR", d);
            }
            let o = c.output().unwrap();
            assert_eq!(o.status.code(), Some(7), "{img:?}: {}", stderr(&o));
            let pid: i32 = std::fs::read_to_string(out.path().join("self"))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            let recs = dir.map_or(records.clone(), Path::to_path_buf);
            assert_eq!(
                std::fs::read_to_string(recs.join("post-start.pid")).unwrap(),
                format!("{pid}\n")
            );
            assert_eq!(
                std::fs::read_to_string(recs.join("monitor.status")).unwrap(),
                format!("pid {pid}\nstatus 7\n"),
                "{img:?}"
            );
            env.assert_clean();
        }
        // A container killed by a signal: 128+N, recorded as such.
        let o = env.run(&["exec", p(img), "sh", "-c", "kill -KILL $$"]);
        assert_eq!(o.status.code(), Some(137), "{img:?}: {}", stderr(&o));
        let text = std::fs::read_to_string(records.join("monitor.status")).unwrap();
        assert!(text.ends_with("status 137\n"), "{text}");
        env.assert_clean();
    }

    // The plugin's monitor forwards the SIGTERM vessel receives.
    let ready = out.path().join("ready");
    let script = "trap 'echo got-term; exit 3' TERM; touch /mnt/ready; \
                  while true; do sleep 0.05; done";
    let bind = format!("{out_s}:/mnt");
    let child = env
        .cmd(&["exec", "-B", &bind, p(&imgs.sandbox), "sh", "-c", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready.exists() {
        assert!(Instant::now() < deadline, "container never got ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(stdout(&o), "got-term\n", "{}", stderr(&o));
    assert_eq!(o.status.code(), Some(3));
    let text = std::fs::read_to_string(records.join("monitor.status")).unwrap();
    assert!(text.ends_with("status 3\n"), "{text}");
    env.assert_clean();
}

const SECOND_MONITOR: &str = r#"
use vessel_plugin_api::Plugin;
pub fn build() -> Plugin {
    Plugin::new("example.com/second-monitor")
        .version("0.1.0")
        .monitor_container(|_, _, _| Err("the second monitor must never run".into()))
}
vessel_plugin_api::export_plugin!(build);
"#;

#[test]
#[ignore = "needs root"]
fn root_two_monitor_plugins_refuse_to_start_naming_both() {
    require_root();
    let env = Env::new();
    env.install(&compiled_plugin(RUNTIME_PLUGIN));
    let second = signed_copy(
        &custom_plugin("example.com/second-monitor", Some(SECOND_MONITOR)),
        env.root.path(),
        None,
    );
    // A second monitor is refused up front, naming both plugins.
    let o = env.root.run(&["plugin", "install", "--yes", p(&second)]);
    assert_error(
        &o,
        255,
        &[
            "\"example.com/second-monitor\"",
            "\"example.com/runtime-plugin\"",
            "monitor_container",
        ],
    );
    // With the first disabled the second installs, and enabling the first
    // again is refused the same way.
    ok(&env
        .root
        .run(&["plugin", "disable", "example.com/runtime-plugin"]));
    ok(&env.root.run(&["plugin", "install", "--yes", p(&second)]));
    let o = env
        .root
        .run(&["plugin", "enable", "example.com/runtime-plugin"]);
    assert_error(&o, 255, &["\"example.com/second-monitor\""]);
    // Swapped back, the one enabled monitor supervises containers.
    ok(&env
        .root
        .run(&["plugin", "disable", "example.com/second-monitor"]));
    ok(&env
        .root
        .run(&["plugin", "enable", "example.com/runtime-plugin"]));
    let host = tempfile::tempdir().unwrap();
    let bind = format!("{}:/mnt", host.path().display());
    let o = env.run(&[
        "exec",
        "-B",
        &bind,
        p(&images().sandbox),
        "touch",
        "/mnt/ran",
    ]);
    ok(&o);
    assert!(host.path().join("ran").exists());
    env.assert_clean();
}

#[test]
#[ignore = "needs root"]
fn root_post_start_error_stops_the_container_and_names_the_plugin() {
    require_root();
    let env = Env::new();
    env.install(&compiled_plugin(RUNTIME_PLUGIN));
    let host = tempfile::tempdir().unwrap();
    let bind = format!("{}:/mnt", host.path().display());
    for img in [&images().sandbox, &images().sif] {
        let o = env
            .cmd(&[
                "exec",
                "-B",
                &bind,
                p(img),
                "sh",
                "-c",
                "touch /mnt/started; sleep 1; touch /mnt/finished",
            ])
            .env("VESSEL_RUNTIME_PLUGIN_DIR", "/nonexistent/records")
            .output()
            .unwrap();
        assert_error(
            &o,
            255,
            &[
                "plugin \"example.com/runtime-plugin\"",
                "/nonexistent/records/post-start.pid",
            ],
        );
        std::thread::sleep(Duration::from_millis(1500));
        assert!(
            !host.path().join("finished").exists(),
            "{img:?}: the container kept running"
        );
        env.assert_clean();
    }
}

#[test]
#[ignore = "needs root"]
fn root_a_runtime_plugin_that_fails_to_load_stops_the_run_before_the_container_starts() {
    require_root();
    let env = Env::new();
    env.install(&compiled_plugin(RUNTIME_PLUGIN));
    let so = env
        .plugin_files("example.com/runtime-plugin")
        .join("plugin.so");
    vessel_tests::unseal(&so);
    set_mode(&so, 0o664);
    let host = tempfile::tempdir().unwrap();
    let bind = format!("{}:/mnt", host.path().display());
    for img in [&images().sandbox, &images().sif] {
        let o = env.run(&["-d", "exec", "-B", &bind, p(img), "touch", "/mnt/ran"]);
        assert_error(
            &o,
            255,
            &["plugin \"example.com/runtime-plugin\"", "group-writable"],
        );
        // Refused before anything was mounted or started, not killed after.
        let log = stderr(&o);
        assert!(
            !log.contains("container process") && !log.contains("with image driver"),
            "{img:?}: {log}"
        );
        assert!(
            !host.path().join("ran").exists(),
            "{img:?}: the container ran"
        );
        env.assert_clean();
    }
}

/// Whether `nobody` can open /dev/fuse (needed for an unprivileged FUSE mount).
fn nobody_can_use_fuse() -> bool {
    let mut c = Command::new("sh");
    c.args(["-c", "exec 3<>/dev/fuse"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    as_nobody(&mut c);
    c.status().map(|s| s.success()).unwrap_or(false)
}

#[test]
#[ignore = "needs root"]
fn root_squashfuse_driver_mounts_sif_images() {
    require_root();
    if !std::path::Path::new("/dev/fuse").exists() {
        eprintln!("squashfuse: skipped, this machine has no /dev/fuse");
        return;
    }
    let env = Env::new();
    let sif = p(&images().sif);
    let script = "echo hello; grep ' / ' /proc/self/mounts | cut -d' ' -f3";
    // Without the cwd (the test's, missing from the image), whose mount
    // point would be made on an underlay bound over the image's /.
    let no_cwd = ["--no-mount", "cwd"];
    env.write_config("image_driver = \"squashfuse\"\n");
    // Configured but not installed: a clear error.
    let o = env.run(&["exec", sif, "true"]);
    assert_error(&o, 255, &["image driver \"squashfuse\" is not registered"]);
    env.assert_clean();

    env.install(&compiled_plugin(SQUASHFUSE_DRIVER));
    let o = env.run(&["-v", "exec", no_cwd[0], no_cwd[1], sif, "sh", "-c", script]);
    assert_eq!(ok(&o), "hello\nfuse.squashfuse\n", "{}", stderr(&o));
    let log = stderr(&o);
    assert!(
        log.contains("squashfuse driver: mounting")
            && log.contains("example.com/squashfuse-driver"),
        "the plugin did not log its mount: {log}"
    );
    env.assert_clean();
    let o = env.run(&["exec", sif, "sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    env.assert_clean();
    // A sandbox dir needs no image driver: the driver plugin stays unopened.
    let o = env.run(&["-d", "exec", p(&images().sandbox), "true"]);
    assert!(
        ok(&o).is_empty() && !stderr(&o).contains("loading plugin library"),
        "{}",
        stderr(&o)
    );
    env.assert_clean();

    // Unprivileged: the driver is offered to user-namespace runs too; it
    // works where the user may open /dev/fuse.
    if !nobody_has_userns() {
        eprintln!("squashfuse: unprivileged user namespaces unavailable; ran as root only");
        return;
    }
    let o = env.run_as_nobody(&["-v", "exec", no_cwd[0], no_cwd[1], sif, "sh", "-c", script]);
    if nobody_can_use_fuse() {
        assert_eq!(ok(&o), "hello\nfuse.squashfuse\n", "{}", stderr(&o));
        assert!(stderr(&o).contains("squashfuse driver: mounting"));
        eprintln!("squashfuse: ran as root and as nobody (/dev/fuse usable by nobody)");
    } else {
        let e = assert_error(
            &o,
            255,
            &[
                "image driver \"squashfuse\"",
                "plugin \"example.com/squashfuse-driver\"",
            ],
        );
        assert!(stderr(&o).contains("squashfuse driver: mounting"));
        eprintln!(
            "squashfuse: ran as root; as nobody /dev/fuse is not usable here, so the \
             unprivileged run used the plugin's driver and failed cleanly: {e}"
        );
    }
    env.assert_clean();
}

#[test]
#[ignore = "needs root"]
fn root_log_plugin_logs_commands_but_not_plugin_admin() {
    require_root();
    let env = Env::new();
    env.install(&compiled_plugin(LOG_PLUGIN));
    let conf = env
        .root
        .plugin_config_dir("example.com/log-plugin")
        .join("log-plugin.conf");
    assert!(conf.is_file(), "the Install callback wrote its config");
    let log_dir = tempfile::tempdir().unwrap();
    set_mode(log_dir.path(), 0o755);
    let log = log_dir.path().join("commands.log");
    std::fs::write(&log, "").unwrap();
    set_mode(&log, 0o666);
    std::fs::write(&conf, format!("file = {}\n", log.display())).unwrap();

    ok(&env.root.run(&["version"]));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "uid=0 user=root command=version args=[\"version\"]\n"
    );
    ok(&env.root.run(&["plugin", "list"]));
    ok(&env
        .root
        .run(&["plugin", "inspect", "example.com/log-plugin"]));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap().lines().count(),
        1,
        "plugin commands are not hooked"
    );
    let o = env.root.run_as_nobody(&["version"]);
    ok(&o);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.lines().nth(1),
        Some("uid=65534 user=nobody command=version args=[\"version\"]"),
        "{text}"
    );
    // A container command is logged with its arguments.
    let img = p(&images().sandbox);
    ok(&env.run(&["exec", img, "true"]));
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.lines().nth(2),
        Some(format!("uid=0 user=root command=exec args=[\"exec\", \"{img}\", \"true\"]").as_str()),
        "{text}"
    );
    env.assert_clean();
}

#[test]
#[ignore = "needs root"]
fn root_ctrl_c_reaches_a_container_under_a_plugin_monitor() {
    require_root();
    let env = Env::new();
    env.install(&compiled_plugin(RUNTIME_PLUGIN));
    let (_img, rootfs) = crate::engine_security::sandbox(&[]);
    crate::engine_security::ctrl_c_in_a_shell_stops_the_command(&env, &rootfs);
    env.assert_clean();
}
