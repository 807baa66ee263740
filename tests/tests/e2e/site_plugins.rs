//! Plugins that do site work (issue 9), end to end: gpu-plugin's `--gpu`
//! (a flag-driven EngineConfig plugin binding into a path the image lacks,
//! setting LD_LIBRARY_PATH, adding device nodes), config dirs that survive
//! upgrades and reinstalls, per-user state dirs (log-plugin and
//! runtime-plugin as `nobody`), and capabilities plugins add and drop.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use vessel_tests::{
    as_nobody, assert_error, busybox_rootfs, compiled_plugin, custom_plugin, mountinfo,
    nobody_has_userns, ok, path_str as p, require_root, session_dir, set_mode, signed_copy, stderr,
    RunEnv, NOBODY,
};

const GPU_PLUGIN: &str = "examples/plugins/gpu-plugin";
const LOG_PLUGIN: &str = "examples/plugins/log-plugin";
const RUNTIME_PLUGIN: &str = "examples/plugins/runtime-plugin";
const GPU: &str = "example.com/gpu-plugin";

/// A busybox sandbox without /usr (so /usr/local/gpu is absent), built once.
fn sandbox() -> &'static PathBuf {
    static S: OnceLock<PathBuf> = OnceLock::new();
    S.get_or_init(|| {
        let dir = session_dir().join("site-plugin-fixtures");
        let _ = std::fs::remove_dir_all(&dir);
        let rootfs = dir.join("rootfs");
        busybox_rootfs(&rootfs, &[]);
        set_mode(&dir, 0o755);
        assert!(!rootfs.join("usr/local/gpu").exists());
        rootfs
    })
}

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
        let run = RunEnv::new("vessel-site-test-");
        run.root.trust_reference_key();
        Self { run }
    }

    fn install(&self, img: &Path, extra: &[&str]) -> Output {
        let signed = signed_copy(img, self.root.path(), None);
        let mut args = vec!["plugin", "install", "--yes"];
        args.extend_from_slice(extra);
        args.push(p(&signed));
        self.root.run(&args)
    }

    fn assert_clean(&self) {
        let left = self.work_dirs_left();
        assert!(left.is_empty(), "work dirs left behind: {left:?}");
        let info = mountinfo();
        let tmp = self.tmp.path().to_string_lossy().into_owned();
        assert!(!info.contains(&tmp), "mounts of {tmp} left behind");
    }

    /// `vessel ARGS`, without the test harness's LD_LIBRARY_PATH (the
    /// containers inherit the caller's environment).
    fn cmd(&self, args: &[&str]) -> std::process::Command {
        let mut c = self.run.cmd(args);
        c.env_remove("LD_LIBRARY_PATH");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn run_as_nobody(&self, args: &[&str]) -> Output {
        let mut c = self.cmd(args);
        as_nobody(&mut c);
        c.output().unwrap()
    }

    /// `vessel ARGS` as nobody with its own state home.
    fn run_as_nobody_with(&self, state_home: &Path, args: &[&str]) -> Output {
        let mut c = self.cmd(args);
        as_nobody(&mut c);
        c.env("XDG_STATE_HOME", state_home);
        c.output().unwrap()
    }
}

/// A dir owned by nobody (mode 0700), in a world-traversable temp dir.
fn nobody_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    set_mode(d.path(), 0o755);
    let home = d.path().join("home");
    std::fs::create_dir(&home).unwrap();
    nix::unistd::chown(
        &home,
        Some(nix::unistd::Uid::from_raw(NOBODY)),
        Some(nix::unistd::Gid::from_raw(NOBODY)),
    )
    .unwrap();
    set_mode(&home, 0o700);
    d
}

/// A world-readable host libs dir with one file.
fn libs_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("libgpu.so.1"), "gpu library\n").unwrap();
    set_mode(d.path(), 0o755);
    set_mode(&d.path().join("libgpu.so.1"), 0o644);
    d
}

const WITH_GPU: &str = "cat /usr/local/gpu/libgpu.so.1; echo LD=$LD_LIBRARY_PATH; \
     test -c /dev/gpu0 && echo dev0; echo x > /dev/gpu0 && echo wrote0; \
     test -c /dev/gpu1 && echo dev1";
const WANT_GPU: &str = "gpu library\nLD=/usr/local/gpu\ndev0\nwrote0\ndev1\n";
const WITHOUT_GPU: &str = "test -e /usr/local/gpu || echo no-libs; echo LD=$LD_LIBRARY_PATH; \
     test -e /dev/gpu0 || echo no-dev0";

#[test]
#[ignore = "needs root"]
fn root_gpu_plugin_binds_libs_env_and_devices_only_with_gpu() {
    require_root();
    let env = Env::new();
    ok(&env.install(&compiled_plugin(GPU_PLUGIN), &[]));
    let conf = env.root.plugin_config_dir(GPU).join("gpu.toml");
    let default = std::fs::read_to_string(&conf).expect("Install wrote the default gpu.toml");
    assert!(default.contains("libs = "), "{default}");
    let meta = std::fs::metadata(&conf).unwrap();
    assert_eq!(meta.uid(), 0, "the config is root's");

    let libs = libs_dir();
    std::fs::write(
        &conf,
        format!(
            "libs = {:?}\ndevices = [\"/dev/null:/dev/gpu0\", \"/dev/zero:/dev/gpu1\"]\n",
            libs.path()
        ),
    )
    .unwrap();
    let img = p(sandbox());
    for contain in [false, true] {
        let mut args = vec!["exec", "--gpu"];
        if contain {
            args.push("--contain");
        }
        args.extend([img, "sh", "-c", WITH_GPU]);
        assert_eq!(ok(&env.run(&args)), WANT_GPU, "as root, contain={contain}");
        env.assert_clean();
        if nobody_has_userns() {
            let o = env.run_as_nobody(&args);
            assert_eq!(ok(&o), WANT_GPU, "as nobody, contain={contain}");
            env.assert_clean();
        }
    }
    // run and shell take the flag too.
    let o = env.run(&["run", "--gpu", img, "sh", "-c", "echo $LD_LIBRARY_PATH"]);
    assert_eq!(ok(&o), "/usr/local/gpu\n");
    // The image itself is unchanged.
    assert!(!sandbox().join("usr").exists());

    // Without --gpu nothing changes.
    let o = env.run(&["exec", img, "sh", "-c", WITHOUT_GPU]);
    assert_eq!(ok(&o), "no-libs\nLD=\nno-dev0\n");
    env.assert_clean();

    // A bad device in the config stops the run naming the plugin and file.
    std::fs::write(
        &conf,
        format!(
            "libs = {:?}\ndevices = [\"/etc/hostname:/dev/gpu0\"]\n",
            libs.path()
        ),
    )
    .unwrap();
    let o = env.run(&["exec", "--gpu", img, "true"]);
    assert_error(
        &o,
        255,
        &[
            "plugin \"example.com/gpu-plugin\"",
            "not a character or block device",
            "gpu.toml",
        ],
    );
    std::fs::write(
        &conf,
        format!(
            "libs = {:?}\ndevices = [\"/dev/null:/dev/../etc/x\"]\n",
            libs.path()
        ),
    )
    .unwrap();
    let o = env.run(&["exec", "--gpu", img, "true"]);
    assert_error(&o, 255, &["gpu-plugin", "must be a plain path"]);
    env.assert_clean();
    if !nobody_has_userns() {
        eprintln!("gpu-plugin: unprivileged user namespaces unavailable; checked as root only");
    }
}

#[test]
#[ignore = "needs root"]
fn root_an_admins_plugin_config_survives_upgrade_and_reinstall_and_purge_removes_it() {
    require_root();
    let env = Env::new();
    let img = compiled_plugin(GPU_PLUGIN);
    ok(&env.install(&img, &[]));
    let dir = env.root.plugin_config_dir(GPU);
    let conf = dir.join("gpu.toml");
    let edited = "# the admin's\nlibs = \"/site/gpu\"\ndevices = []\n";
    std::fs::write(&conf, edited).unwrap();
    let inspect = ok(&env.root.run(&["plugin", "inspect", GPU]));
    assert!(inspect.contains(&dir.display().to_string()), "{inspect}");

    ok(&env.install(&img, &["--upgrade"]));
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), edited, "upgrade");
    ok(&env.root.run(&["plugin", "uninstall", GPU]));
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), edited, "uninstall");
    ok(&env.install(&img, &[]));
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), edited, "reinstall");

    // A symlink an attacker could have put at the config file is never
    // written through by the Install callback.
    std::fs::remove_file(&conf).unwrap();
    let target = env.tmp.path().join("target");
    std::os::unix::fs::symlink(&target, &conf).unwrap();
    ok(&env.install(&img, &["--upgrade"]));
    assert!(
        !target.exists(),
        "the default was written through a symlink"
    );
    std::fs::remove_file(&conf).unwrap();
    ok(&env.install(&img, &["--upgrade"]));
    assert!(conf.is_file(), "a missing default is written again");

    let o = ok(&env.root.run(&["plugin", "uninstall", "--purge", GPU]));
    assert!(o.contains("uninstalled"), "{o}");
    assert!(!dir.exists(), "--purge removes the config dir");
    assert!(!env
        .root
        .path()
        .join("etc/vessel/plugins")
        .join("example.com")
        .exists());
    // Not installed any more: nothing to purge, and a name that is not a
    // plugin name never reaches the file system.
    let o = env.root.run(&["plugin", "uninstall", "--purge", GPU]);
    assert_error(&o, 255, &["example.com/gpu-plugin"]);
}

#[test]
#[ignore = "needs root"]
fn root_log_and_runtime_plugins_work_for_nobody_in_their_state_dirs() {
    require_root();
    let env = Env::new();
    ok(&env.install(&compiled_plugin(LOG_PLUGIN), &[]));
    ok(&env.install(&compiled_plugin(RUNTIME_PLUGIN), &[]));
    let home = nobody_dir();
    let state = home.path().join("home/state");

    // log-plugin: any command, no user namespace needed.
    let o = env.run_as_nobody_with(&state, &["version"]);
    ok(&o);
    assert!(!stderr(&o).contains("WARN"), "{}", stderr(&o));
    let log_dir = state.join("vessel/plugins/example.com/log-plugin");
    let log = std::fs::read_to_string(log_dir.join("commands.log")).unwrap();
    assert_eq!(
        log,
        "uid=65534 user=nobody command=version args=[\"version\"]\n"
    );
    let m = std::fs::metadata(&log_dir).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o777), (NOBODY, 0o700));
    // Root's records go to root's state dir under VESSEL_ROOT.
    ok(&env.root.run(&["version"]));
    let root_log = env
        .root
        .plugin_state_dir("example.com/log-plugin")
        .join("commands.log");
    assert!(std::fs::read_to_string(&root_log)
        .unwrap()
        .starts_with("uid=0 user=root command=version"));

    // runtime-plugin: its monitor and post-start records, as nobody.
    if nobody_has_userns() {
        let img = p(sandbox());
        let o = env.run_as_nobody_with(&state, &["exec", img, "sh", "-c", "exit 7"]);
        assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
        let rec = state.join("vessel/plugins/example.com/runtime-plugin");
        let status = std::fs::read_to_string(rec.join("monitor.status")).unwrap();
        assert!(status.ends_with("status 7\n"), "{status}");
        assert!(rec.join("post-start.pid").is_file());
        env.assert_clean();

        // The default state home is ~/.local/state.
        let mut c = env.cmd(&["exec", img, "true"]);
        as_nobody(&mut c);
        c.env("HOME", home.path().join("home"))
            .env_remove("XDG_STATE_HOME");
        ok(&c.output().unwrap());
        assert!(home
            .path()
            .join("home/.local/state/vessel/plugins/example.com/runtime-plugin/monitor.status")
            .is_file());
        env.assert_clean();
    } else {
        eprintln!("runtime-plugin as nobody: unprivileged user namespaces unavailable; skipped");
    }
}

#[test]
#[ignore = "needs root"]
fn root_a_state_dir_planted_by_another_user_is_refused() {
    require_root();
    let env = Env::new();
    ok(&env.install(&compiled_plugin(LOG_PLUGIN), &[]));
    ok(&env.install(&compiled_plugin(RUNTIME_PLUGIN), &[]));
    // nobody's state home is writable by nobody, but root (the "other
    // user" here) planted the plugin's state dir in it beforehand.
    let home = nobody_dir();
    let state = home.path().join("home/state");
    let planted = state.join("vessel/plugins/example.com/runtime-plugin");
    std::fs::create_dir_all(&planted).unwrap();
    for d in [
        state.clone(),
        state.join("vessel"),
        state.join("vessel/plugins"),
        state.join("vessel/plugins/example.com"),
    ] {
        nix::unistd::chown(
            &d,
            Some(nix::unistd::Uid::from_raw(NOBODY)),
            Some(nix::unistd::Gid::from_raw(NOBODY)),
        )
        .unwrap();
    }
    // A symlink planted where log-plugin's dir goes, pointing at a dir
    // nobody may write: never followed.
    let elsewhere = tempfile::tempdir().unwrap();
    nix::unistd::chown(
        elsewhere.path(),
        Some(nix::unistd::Uid::from_raw(NOBODY)),
        None,
    )
    .unwrap();
    std::os::unix::fs::symlink(
        elsewhere.path(),
        state.join("vessel/plugins/example.com/log-plugin"),
    )
    .unwrap();
    ok(&env.run_as_nobody_with(&state, &["version"]));
    assert!(
        std::fs::read_dir(elsewhere.path())
            .unwrap()
            .next()
            .is_none(),
        "log-plugin wrote through a planted symlink"
    );
    if nobody_has_userns() {
        let o = env.run_as_nobody_with(&state, &["exec", p(sandbox()), "true"]);
        assert_error(
            &o,
            255,
            &[
                "plugin \"example.com/runtime-plugin\"",
                "owned by uid 0",
                "refusing it",
            ],
        );
        assert!(std::fs::read_dir(&planted).unwrap().next().is_none());
        env.assert_clean();
    }
}

const CAPS_PLUGIN: &str = r#"
use vessel_plugin_api::Plugin;
pub fn build() -> Plugin {
    Plugin::new("example.com/caps-plugin")
        .version("0.1.0")
        .engine_config(|cfg| {
            cfg.add_capability("sys_ptrace")?;
            cfg.drop_capability("CAP_NET_RAW")?;
            if cfg.add_capability("CAP_FLY").is_ok() {
                return Err("an unknown capability was accepted".into());
            }
            Ok(())
        })
}
vessel_plugin_api::export_plugin!(build);
"#;

fn cap_eff(o: &Output) -> u64 {
    let out = ok(o);
    let hex = out
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap_or_else(|| panic!("no CapEff in {out}"))
        .trim();
    u64::from_str_radix(hex, 16).unwrap()
}

#[test]
#[ignore = "needs root"]
fn root_capabilities_plugins_add_and_drop_show_in_cap_eff() {
    require_root();
    let env = Env::new();
    let img = p(sandbox());
    let cmd = ["exec", img, "grep", "CapEff", "/proc/self/status"];
    let before = cap_eff(&env.run(&cmd));
    assert_eq!(before & (1 << 19), 0, "no CAP_SYS_PTRACE by default");
    assert_ne!(before & (1 << 13), 0, "CAP_NET_RAW by default");

    ok(&env.install(
        &custom_plugin("example.com/caps-plugin", Some(CAPS_PLUGIN)),
        &[],
    ));
    let after = cap_eff(&env.run(&cmd));
    assert_eq!(
        after,
        (before | 1 << 19) & !(1 << 13),
        "{before:x} -> {after:x}"
    );
    env.assert_clean();
    // --no-privs keeps none, whatever a plugin added.
    let none = cap_eff(&env.run(&[
        "exec",
        "--no-privs",
        img,
        "grep",
        "CapEff",
        "/proc/self/status",
    ]));
    assert_eq!(none, 0);
    if nobody_has_userns() {
        // Unprivileged: the add is ignored with a warning naming the plugin.
        let o = env.run_as_nobody(&cmd);
        ok(&o);
        let err = stderr(&o);
        assert!(
            err.contains("CAP_SYS_PTRACE not added")
                && err.contains("plugin \"example.com/caps-plugin\""),
            "{err}"
        );
        env.assert_clean();
    }
}
