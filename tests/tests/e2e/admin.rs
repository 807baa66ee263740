//! What an admin can rely on (issue 10): install and inspect disclose
//! exactly what a plugin gets; install asks for consent on a terminal and
//! refuses without one; downgrades need --allow-downgrade; a second
//! container monitor is refused at install and enable; a plugin running
//! containers use cannot be uninstalled or disabled without --force; list
//! -l, inspect, key remove and plugin verify show what an admin needs.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use vessel_tests::{
    assert_error, busybox_rootfs, compiled_plugin, custom_plugin, ok, path_str as p, require_root,
    signed_copy, stderr, stdout, vessel_bin, RunEnv, TestRoot,
};

const LOG_PLUGIN: &str = "examples/plugins/log-plugin";
const RUNTIME_PLUGIN: &str = "examples/plugins/runtime-plugin";
const HOOK_WORDS: &str =
    "runs before every vessel command, sees every user's arguments, may abort them";

/// Runs `vessel ARGS` for `root` on a pseudo-terminal (util-linux
/// `script`), typing `input`.
fn on_terminal(root: &TestRoot, args: &[&str], input: &str) -> Output {
    let mut line = format!("VESSEL_ROOT='{}' '{}'", p(root.path()), p(vessel_bin()));
    for a in args {
        line.push_str(&format!(" '{a}'"));
    }
    let mut child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env_remove("VESSEL_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
    }
    child.wait_with_output().expect("wait for script")
}

#[test]
#[ignore = "needs root"]
fn root_install_discloses_a_global_hook_and_asks_for_consent() {
    require_root();
    let root = TestRoot::new();
    root.trust_reference_key();
    let img = signed_copy(&compiled_plugin(LOG_PLUGIN), root.path(), None);
    let name = "example.com/log-plugin";

    // Without a terminal and without --yes: refused, nothing installed.
    let o = root.run(&["plugin", "install", p(&img)]);
    assert_error(&o, 255, &["needs consent", "not a terminal", "--yes"]);
    assert!(stdout(&o).contains(HOOK_WORDS), "{}", stdout(&o));
    assert!(ok(&root.run(&["plugin", "list"])).contains("no plugins installed"));

    // On a terminal: the disclosure, then the question; "n" declines.
    let o = on_terminal(&root, &["plugin", "install", p(&img)], "n\n");
    let out = stdout(&o);
    assert!(out.contains(HOOK_WORDS), "{out}");
    assert!(!out.contains("add commands"), "{out}");
    assert!(out.contains("Install? [y/N]"), "{out}");
    assert!(out.contains("declined"), "{out}");
    assert!(ok(&root.run(&["plugin", "list"])).contains("no plugins installed"));
    // "y" installs.
    let o = on_terminal(&root, &["plugin", "install", p(&img)], "y\n");
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("installed"), "{}", stdout(&o));

    // inspect says the same, in text and JSON.
    let text = ok(&root.run(&["plugin", "inspect", name]));
    assert!(text.contains(HOOK_WORDS), "{text}");
    for field in ["Installed:", "Files dir:", "Config dir:", "State dir:"] {
        assert!(text.contains(field), "{field}: {text}");
    }
    assert!(
        text.contains("etc/vessel/plugins/example.com/log-plugin"),
        "{text}"
    );
    assert!(text.contains("key still trusted"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&root.run(&["plugin", "inspect", "--json", name]))).unwrap();
    let caps = json["capabilities"].as_array().unwrap();
    assert!(
        caps.iter()
            .any(|c| c["kind"] == "global_pre_run"
                && c["text"].as_str().unwrap().contains(HOOK_WORDS)),
        "{json}"
    );
    assert_eq!(json["installed"]["signer_trusted"], true, "{json}");

    // list -l: version, callbacks, signer; the default table is unchanged.
    let long = ok(&root.run(&["plugin", "list", "-l"]));
    let header = long.lines().next().unwrap();
    for col in ["VERSION", "CALLBACKS", "SIGNED BY"] {
        assert!(header.contains(col), "{long}");
    }
    let keyid = json["installed"]["signer"].as_str().unwrap().to_owned();
    assert!(long.contains("0.1.0") && long.contains(&keyid), "{long}");
    assert_eq!(
        ok(&root.run(&["plugin", "list"])),
        format!("ENABLED  NAME\n    yes  {name}\n")
    );
    assert!(ok(&root.run(&["plugin", "verify"])).contains(&format!("{name}: ok")));

    // key remove names the plugins signed by the key and needs consent.
    let o = root.run(&["key", "remove", &keyid]);
    assert!(stdout(&o).contains(name), "{}", stdout(&o));
    assert_error(&o, 255, &["--yes", "1 installed plugin"]);
    assert!(ok(&root.run(&["key", "list"])).contains(&keyid));
    ok(&root.run(&["key", "remove", "--yes", &keyid]));
    let text = ok(&root.run(&["plugin", "inspect", name]));
    assert!(text.contains("key no longer trusted"), "{text}");
    // verify re-checks against today's trust store: the signer is gone.
    let o = root.run(&["plugin", "verify", name]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("FAILED") && stdout(&o).contains("no longer trusted"));
}

fn versioned(crate_name: &str, version: &str, engine_config: bool) -> std::path::PathBuf {
    let extra = if engine_config {
        ".engine_config(|_cfg| Ok(()))"
    } else {
        ""
    };
    let code = format!(
        "use vessel_plugin_api::Plugin;\n\
         pub fn build() -> Plugin {{\n    Plugin::new(\"example.com/versioned\").version(\"{version}\"){extra}\n}}\n\
         vessel_plugin_api::export_plugin!(build);\n"
    );
    custom_plugin(crate_name, Some(&code))
}

#[test]
#[ignore = "needs root"]
fn root_downgrades_need_allow_downgrade_and_upgrades_show_the_difference() {
    require_root();
    let root = TestRoot::new();
    let new = versioned("example.com/versioned-new", "0.2.0", false);
    let old = versioned("example.com/versioned-old", "0.1.0", true);
    let install = |args: &[&str]| {
        let mut a = vec!["plugin", "install", "--yes", "--allow-unsigned"];
        a.extend_from_slice(args);
        root.run(&a)
    };
    ok(&install(&[p(&new)]));
    let before = ok(&root.run(&["plugin", "inspect", "--json", "example.com/versioned"]));
    let o = install(&["--upgrade", p(&old)]);
    assert_error(
        &o,
        255,
        &[
            "0.1.0 is older than the installed 0.2.0",
            "--allow-downgrade",
        ],
    );
    let after = ok(&root.run(&["plugin", "inspect", "--json", "example.com/versioned"]));
    assert_eq!(before, after, "a refused downgrade changed the plugin");

    let out = ok(&install(&["--upgrade", "--allow-downgrade", p(&old)]));
    assert!(out.contains("0.2.0 -> 0.1.0"), "{out}");
    assert!(
        out.contains("  + read and change the configuration of every container"),
        "{out}"
    );
    // The same version again: said so.
    let out = ok(&install(&["--upgrade", p(&old)]));
    assert!(
        out.contains("version 0.1.0 is already installed with the same library"),
        "{out}"
    );
    assert!(out.contains("(no capability added or removed)"), "{out}");
    // An upgrade without --yes and without a terminal is refused too.
    let o = root.run(&[
        "plugin",
        "install",
        "--allow-unsigned",
        "--upgrade",
        p(&new),
    ]);
    assert_error(&o, 255, &["upgrade needs consent", "--yes"]);
}

const SECOND_MONITOR: &str = r#"
use vessel_plugin_api::Plugin;

pub fn build() -> Plugin {
    Plugin::new("example.com/monitor-two")
        .version("1.0.0")
        .monitor_container(|_config, _pid, _signals| Err("not for running".into()))
}

vessel_plugin_api::export_plugin!(build);
"#;

#[test]
#[ignore = "needs root"]
fn root_a_second_monitor_is_refused_at_install_and_enable() {
    require_root();
    let root = TestRoot::new();
    root.trust_reference_key();
    let first = signed_copy(&compiled_plugin(RUNTIME_PLUGIN), root.path(), None);
    let second = custom_plugin("example.com/monitor-two", Some(SECOND_MONITOR));
    ok(&root.run(&["plugin", "install", "--yes", p(&first)]));
    let o = root.run(&["plugin", "install", "--yes", "--allow-unsigned", p(&second)]);
    assert_error(
        &o,
        255,
        &["monitor_container", "\"example.com/runtime-plugin\""],
    );
    ok(&root.run(&["plugin", "disable", "example.com/runtime-plugin"]));
    ok(&root.run(&["plugin", "install", "--yes", "--allow-unsigned", p(&second)]));
    let o = root.run(&["plugin", "enable", "example.com/runtime-plugin"]);
    assert_error(
        &o,
        255,
        &["monitor_container", "\"example.com/monitor-two\""],
    );
    assert!(ok(&root.run(&["plugin", "list"])).contains("     no  example.com/runtime-plugin"));
}

#[test]
#[ignore = "needs root"]
fn root_a_plugin_a_running_container_uses_cannot_be_removed_without_force() {
    require_root();
    let env = RunEnv::new("vessel-inuse-test-");
    env.root.trust_reference_key();
    let img = signed_copy(&compiled_plugin(RUNTIME_PLUGIN), env.root.path(), None);
    ok(&env.root.run(&["plugin", "install", "--yes", p(&img)]));
    let name = "example.com/runtime-plugin";
    let rootfs = env.tmp.path().join("rootfs");
    busybox_rootfs(&rootfs, &[]);
    let mut child = env
        .cmd(&["exec", p(&rootfs), "/bin/sleep", "30"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start a container");
    // The post-start record says the container runs with the plugin loaded.
    let pid_file = env.root.plugin_state_dir(name).join("post-start.pid");
    let start = Instant::now();
    while !pid_file.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the container did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for args in [["plugin", "uninstall", name], ["plugin", "disable", name]] {
        let o = env.root.run(&args);
        assert_error(
            &o,
            255,
            &[
                &format!("plugin \"{name}\" is in use by 1 running container(s)"),
                "--force",
            ],
        );
    }
    assert!(ok(&env.root.run(&["plugin", "list"])).contains(&format!("    yes  {name}")));
    ok(&env.root.run(&["plugin", "uninstall", "--force", name]));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    assert!(!Path::new(&env.root.plugin_files(name)).exists());
}
