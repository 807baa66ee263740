//! The SDK end to end through its testing helpers: every callback kind,
//! errors, panics and logging, as a plugin author's unit tests would.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use vessel_plugin_api::log::{self, LogLevel};
use vessel_plugin_api::{
    Arg, Bind, Command, Driver, Flag, Mount, Namespaces, Pid, Plugin, Signal, WaitStatus,
};
use vessel_plugin_test::{self as testing, FakeDriverRegistrar, FakeEngineConfig, FakeSignals};

struct LoopDriver {
    mounts: Arc<AtomicUsize>,
}

impl Driver for LoopDriver {
    fn name(&self) -> String {
        "loopy".into()
    }
    fn features(&self) -> Vec<String> {
        vec!["squashfs".into()]
    }
    fn mount(&self, m: &Mount) -> vessel_plugin_api::Result<()> {
        if m.fs_type != "squashfs" {
            return Err(format!("cannot mount {}", m.fs_type).into());
        }
        if m.size == 0 {
            panic!("empty image {}", m.image.display());
        }
        self.mounts.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn build(mounts: Arc<AtomicUsize>) -> Plugin {
    Plugin::new("example.com/all")
        .author("a")
        .version("1.2.3")
        .description("every kind")
        .command(
            Command::new("greet")
                .arg(Arg::new("who").required())
                .flag(Flag::value("greeting").short('g')),
            |inv| {
                let greeting = inv.flag("greeting").unwrap_or("hello");
                let who = inv.arg("who").unwrap_or_default();
                if who == "crash" {
                    panic!("asked to crash");
                }
                writeln!(inv.stdout(), "{greeting} {who}")?;
                Ok(3)
            },
        )
        .global_pre_run(|info| {
            if info.uid != 0 && info.command == "exec" {
                return Err(format!("user {} may not exec", info.user).into());
            }
            Ok(())
        })
        .engine_config(|c| {
            log::info(format!("had {} binds", c.binds().len()));
            c.add_bind("/data", "/data", true);
            c.set_env("FROM_PLUGIN", "yes");
            c.unset_env("SECRET");
            c.set_contain(true);
            c.set_hostname(Some("box"));
            c.set_cwd(Some("/work"));
            let mut ns = c.namespaces();
            ns.pid = true;
            c.set_namespaces(ns);
            c.set_annotation("org.example/by", "all");
            c.remove_annotation("old");
            Ok(())
        })
        .monitor_container(|c, pid, signals| {
            let mut forwarded = 0u8;
            while let Some(sig) = signals.next(Some(Duration::from_millis(10))) {
                log::debug(format!("forward {sig} to {pid}"));
                forwarded += 1;
            }
            assert_eq!(c.hostname().as_deref(), Some("box"));
            Ok(WaitStatus::exited(forwarded))
        })
        .post_start_process(|c, pid| {
            if c.annotation("fail").is_some() {
                return Err(format!("refusing pid {pid}").into());
            }
            Ok(())
        })
        .register_image_drivers(move |unprivileged, r| {
            if !unprivileged {
                r.register(LoopDriver {
                    mounts: mounts.clone(),
                })?;
            }
            Ok(())
        })
        .install(|dir| {
            std::fs::write(dir.join("state"), "installed")?;
            Ok(())
        })
}

#[test]
fn manifest_describes_everything() {
    let m = testing::manifest(&build(Arc::default()));
    assert_eq!(m.name.as_str(), "example.com/all");
    assert_eq!(m.api_version.as_str(), vessel_plugin_api::API_VERSION);
    assert_eq!(m.commands[0].flags[0].short, Some('g'));
    assert!(m.commands[0].args[0].required);
    assert!(m.global_pre_run);
}

#[test]
fn command_gets_args_and_flags() {
    let p = build(Arc::default());
    let run = testing::run_command(&p, "greet", &["ann"], &[("greeting", Some("hi"))]).unwrap();
    assert_eq!((run.status, run.stdout.as_str()), (3, "hi ann\n"));
    let e = testing::run_command(&p, "nope", &[], &[]).unwrap_err();
    assert!(!e.panicked);
}

#[test]
fn panics_become_errors_naming_the_plugin() {
    let p = build(Arc::default());
    let e = testing::run_command(&p, "greet", &["crash"], &[]).unwrap_err();
    assert!(e.panicked);
    assert_eq!(
        e.message,
        "plugin \"example.com/all\" panicked: asked to crash"
    );
}

#[test]
fn the_fake_refuses_what_the_runtimes_parser_would() {
    let p = build(Arc::default());
    for (args, flags, want) in [
        (
            &[][..],
            &[][..],
            "command \"greet\": missing required argument who",
        ),
        (
            &["a", "b"],
            &[],
            "command \"greet\": unexpected argument \"b\"",
        ),
        (
            &["a"],
            &[("nope", None)],
            "command \"greet\": unexpected flag --nope",
        ),
        (
            &["a"],
            &[("greeting", None)],
            "command \"greet\": flag --greeting needs a value",
        ),
    ] {
        let e = testing::run_command(&p, "greet", args, flags).unwrap_err();
        assert_eq!((e.message.as_str(), e.panicked), (want, false));
    }
    let e = testing::run_flag_pre_run(&p, "exec", &[], &[("gpu", None)]).unwrap_err();
    assert_eq!(e.message, "command \"exec\": unexpected flag --gpu");
}

#[test]
fn global_pre_run_can_abort() {
    let p = build(Arc::default());
    testing::run_global_pre_run(&p, 0, "root", "exec", &["exec", "x.sif"]).unwrap();
    let e = testing::run_global_pre_run(&p, 1000, "ann", "exec", &[]).unwrap_err();
    assert_eq!(e.message.as_str(), "user ann may not exec");
}

#[test]
fn engine_config_changes_the_config_and_logs() {
    let p = build(Arc::default());
    let mut c = FakeEngineConfig::default();
    c.env.insert("SECRET".into(), "x".into());
    c.annotations.insert("old".into(), "1".into());
    testing::run_engine_config(&p, &mut c).unwrap();
    assert_eq!(
        c.binds,
        [Bind {
            source: "/data".into(),
            destination: "/data".into(),
            readonly: true
        }]
    );
    assert_eq!(c.env.get("FROM_PLUGIN").map(String::as_str), Some("yes"));
    assert!(!c.env.contains_key("SECRET"));
    assert!(c.contain);
    assert_eq!(c.hostname.as_deref(), Some("box"));
    assert_eq!(c.cwd.as_deref(), Some("/work"));
    assert_eq!(
        c.namespaces,
        Namespaces {
            pid: true,
            ..Namespaces::default()
        }
    );
    assert_eq!(
        c.annotations.get("org.example/by").map(String::as_str),
        Some("all")
    );
    assert!(!c.annotations.contains_key("old"));
    assert_eq!(
        testing::take_logs(),
        [(LogLevel::Info, "had 0 binds".to_string())]
    );
}

#[test]
fn monitor_sees_signals_and_returns_a_wait_status() {
    let p = build(Arc::default());
    let c = FakeEngineConfig {
        hostname: Some("box".into()),
        ..FakeEngineConfig::default()
    };
    let status = testing::run_monitor_container(
        &p,
        &c,
        Pid::from_raw(42),
        &mut FakeSignals::new(&[Signal::TERM, Signal::INT]),
    )
    .unwrap();
    assert_eq!(status.exit_code(), Some(2));
    assert_eq!(testing::take_logs().len(), 2);
    // The assert inside the callback fails without the hostname: contained.
    let e = testing::run_monitor_container(
        &p,
        &FakeEngineConfig::default(),
        Pid::from_raw(1),
        &mut FakeSignals::default(),
    )
    .unwrap_err();
    assert!(e.panicked);
}

#[test]
fn post_start_can_fail() {
    let p = build(Arc::default());
    testing::run_post_start_process(&p, &FakeEngineConfig::default(), Pid::from_raw(7)).unwrap();
    let mut c = FakeEngineConfig::default();
    c.annotations.insert("fail".into(), String::new());
    let e = testing::run_post_start_process(&p, &c, Pid::from_raw(7)).unwrap_err();
    assert_eq!(e.message.as_str(), "refusing pid 7");
}

#[test]
fn drivers_register_mount_and_contain_panics() {
    let mounts = Arc::new(AtomicUsize::new(0));
    let p = build(mounts.clone());
    let mut r = FakeDriverRegistrar::default();
    testing::run_register_image_drivers(&p, true, &mut r).unwrap();
    assert!(r.names().is_empty());
    testing::run_register_image_drivers(&p, false, &mut r).unwrap();
    assert_eq!(r.names(), ["loopy"]);
    assert_eq!(r.features("loopy").unwrap(), ["squashfs"]);
    // Registering the same name twice is refused by the registrar.
    let e = testing::run_register_image_drivers(&p, false, &mut r).unwrap_err();
    assert!(e.message.contains("already registered"), "{}", e.message);

    let mut m = Mount {
        image: "/i.sif".into(),
        offset: 4096,
        size: 10,
        fs_type: "squashfs".into(),
        target: "/mnt".into(),
    };
    r.mount("loopy", &m).unwrap();
    assert_eq!(mounts.load(Ordering::SeqCst), 1);
    m.fs_type = "ext3".into();
    assert_eq!(
        r.mount("loopy", &m).unwrap_err().message.as_str(),
        "cannot mount ext3"
    );
    m.fs_type = "squashfs".into();
    m.size = 0;
    let e = r.mount("loopy", &m).unwrap_err();
    assert!(e.panicked);
    assert_eq!(
        e.message.as_str(),
        "plugin \"example.com/all\" panicked: empty image /i.sif"
    );
    r.stop("loopy").unwrap();
}

#[test]
fn install_writes_into_its_dir() {
    let p = build(Arc::default());
    let dir = std::env::temp_dir().join(format!("vessel-sdk-install-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    testing::run_install(&p, &dir).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("state")).unwrap(),
        "installed"
    );
    let e = testing::run_install(&p, Path::new("/nonexistent/dir")).unwrap_err();
    assert!(!e.panicked);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn install_dir_is_what_the_test_set_on_this_thread() {
    use vessel_plugin_api::host;
    // A callback reading its config from the install dir at run time.
    let p = Plugin::new("example.com/reads-config").engine_config(|c| {
        let dir = host::install_dir().ok_or("install dir unknown")?;
        let v = std::fs::read_to_string(dir.join("value"))?;
        c.set_env("VALUE", v.trim());
        Ok(())
    });
    testing::set_install_dir(None);
    let mut cfg = FakeEngineConfig::default();
    let e = testing::run_engine_config(&p, &mut cfg).unwrap_err();
    assert_eq!(e.message.as_str(), "install dir unknown");

    let dir = tempfile_dir("install-dir");
    std::fs::write(dir.join("value"), "42\n").unwrap();
    testing::set_install_dir(Some(&dir));
    assert_eq!(host::install_dir().as_deref(), Some(dir.as_path()));
    testing::run_engine_config(&p, &mut cfg).unwrap();
    assert_eq!(cfg.env["VALUE"], "42");
    // Other threads do not see it.
    let other = std::thread::spawn(host::install_dir).join().unwrap();
    assert_eq!(other, None);
    testing::set_install_dir(None);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tempfile_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vessel-sdk-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_fake_environment_behaves_like_the_runtimes() {
    let p = Plugin::new("example.com/env").engine_config(|c| {
        // References expand against the environment so far.
        c.set_env("LD_LIBRARY_PATH", "/gpu/lib:$LD_LIBRARY_PATH");
        let path = c.env("PATH").unwrap_or_default();
        c.set_env("SEEN_PATH", &path);
        Ok(())
    });
    let host = [
        ("PATH", "/host/bin"),
        ("LD_LIBRARY_PATH", "/host/lib"),
        ("SECRET", "x"),
        ("VESSELENV_APPEND_PATH", "/extra"),
    ];
    let mut c = FakeEngineConfig::from_host(host, false);
    testing::run_engine_config(&p, &mut c).unwrap();
    let env = c.effective_env();
    assert_eq!(env["LD_LIBRARY_PATH"], "/gpu/lib:/host/lib");
    // Never the host's PATH; the host's edit applies on top.
    let path = format!("{}:/extra", testing::DEFAULT_PATH);
    assert_eq!(
        (env["PATH"].as_str(), env["SEEN_PATH"].as_str()),
        (path.as_str(), path.as_str())
    );
    assert_eq!(env["SECRET"], "x");

    // --cleanenv: the host's variables are gone, LANG=C.
    let mut c = FakeEngineConfig::from_host(host, true);
    testing::run_engine_config(&p, &mut c).unwrap();
    let env = c.effective_env();
    assert_eq!(env["LD_LIBRARY_PATH"], "/gpu/lib:");
    assert!(!env.contains_key("SECRET"));
    assert_eq!(env["LANG"], "C");
}
