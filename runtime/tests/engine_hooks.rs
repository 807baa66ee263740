//! The engine's hook points, driven through the library with a recording
//! [`Hooks`] implementation: order, what each hook sees, a hook-registered
//! image driver, a failing post-start hook killing the container, and a
//! replacement monitor. Needs root (skips otherwise); runs single-threaded
//! (no libtest harness) because the engine clones and waits on signals.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;

use nix::unistd::Pid;
use vessel::engine::monitor::{self, Signals};
use vessel::engine::{self, Bind, EngineConfig, EnvOp, Hooks};
use vessel::image::driver::{Extract, Features, ImageDriver, MountRequest, Registry};
use vessel::image::ImageError;
use vessel::Error;

type Log = Rc<RefCell<Vec<String>>>;

/// Delegates to the builtin extraction driver and logs each stage; `mount`
/// runs in the container process, so it logs to a file.
#[derive(Debug)]
struct LoggingDriver {
    inner: Extract,
    log: Log,
    mount_log: PathBuf,
}

impl ImageDriver for LoggingDriver {
    fn name(&self) -> &str {
        "logging"
    }
    fn features(&self) -> Features {
        self.inner.features()
    }
    fn start(&mut self, req: &MountRequest) -> Result<(), ImageError> {
        self.log
            .borrow_mut()
            .push(format!("driver start unprivileged={}", req.unprivileged));
        self.inner.start(req)
    }
    fn mount(&mut self, req: &MountRequest, target: &Path) -> Result<(), ImageError> {
        std::fs::write(&self.mount_log, format!("mount at {}", target.display())).unwrap();
        self.inner.mount(req, target)
    }
    fn stop(&mut self, req: &MountRequest) -> Result<(), ImageError> {
        self.log.borrow_mut().push("driver stop".into());
        self.inner.stop(req)
    }
}

struct Recording {
    log: Log,
    bind_src: PathBuf,
    mount_log: PathBuf,
    fail_post_start: bool,
    own_monitor: bool,
    pid: Option<Pid>,
}

impl Hooks for Recording {
    fn engine_config(&mut self, cfg: &mut EngineConfig) -> Result<(), Error> {
        self.log.borrow_mut().push("engine_config".into());
        cfg.binds.push(Bind {
            src: self.bind_src.clone(),
            dst: "/mnt".into(),
            readonly: true,
            origin: vessel::engine::BindOrigin::Plugin("recording".into()),
        });
        cfg.env.push(EnvOp::Set("FROM_HOOK".into(), "yes".into()));
        cfg.image_driver = Some("logging".into());
        cfg.annotations.insert("seen".into(), "1".into());
        Ok(())
    }
    fn register_image_drivers(
        &mut self,
        registry: &mut Registry,
        unprivileged: bool,
    ) -> Result<(), Error> {
        self.log
            .borrow_mut()
            .push(format!("register unprivileged={unprivileged}"));
        registry.register(Box::new(LoggingDriver {
            inner: Extract::default(),
            log: self.log.clone(),
            mount_log: self.mount_log.clone(),
        }))?;
        Ok(())
    }
    fn post_start(&mut self, cfg: &EngineConfig, pid: Pid) -> Result<(), Error> {
        assert_eq!(cfg.annotations.get("seen").map(String::as_str), Some("1"));
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        self.pid = Some(pid);
        self.log.borrow_mut().push("post_start".into());
        if self.fail_post_start {
            return Err(vessel::plugin::PluginError::Callback {
                plugin: "test-plugin".into(),
                callback: "PostStartProcess",
                message: "post-start hook of test-plugin failed".into(),
            }
            .into());
        }
        Ok(())
    }
    fn monitor(
        &mut self,
        _cfg: &EngineConfig,
        pid: Pid,
        signals: &mut Signals,
    ) -> Option<Result<i32, Error>> {
        if !self.own_monitor {
            return None;
        }
        self.log.borrow_mut().push("monitor".into());
        Some(monitor::wait_forwarding(pid, signals).map_err(Error::from))
    }
}

fn rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    for d in ["bin", "proc", "sys", "dev", "tmp", "mnt", "root"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/cat")).unwrap();
    let img = dir.join("rootfs.squashfs");
    let ok = Command::new("mksquashfs")
        .arg(&root)
        .arg(&img)
        .args(["-noappend", "-no-progress", "-quiet"])
        .status()
        .unwrap()
        .success();
    assert!(ok, "mksquashfs failed");
    img
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping engine_hooks: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = rootfs(dir.path());
    let bind_src = dir.path().join("shared");
    std::fs::create_dir(&bind_src).unwrap();
    std::fs::write(bind_src.join("f"), "bound\n").unwrap();
    let out = dir.path().join("out");
    let mount_log = dir.path().join("mount.log");
    // /tmp is bound from the host, so the container writes `out` for us.
    let script = format!(
        "cat /mnt/f > {o}; echo $FROM_HOOK >> {o}; exit 9",
        o = out.display()
    );
    let new_hooks = |fail_post_start, own_monitor| Recording {
        log: Log::default(),
        bind_src: bind_src.clone(),
        mount_log: mount_log.clone(),
        fail_post_start,
        own_monitor,
        pid: None,
    };
    let cfg = || EngineConfig::new(&img, vec!["/bin/sh".into(), "-c".into(), script.clone()]);

    let mut h = new_hooks(false, false);
    let status = engine::run(cfg(), &mut h).unwrap();
    assert_eq!(status, 9);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "bound\nyes\n");
    assert_eq!(
        *h.log.borrow(),
        [
            "engine_config",
            "register unprivileged=false",
            "driver start unprivileged=false",
            "post_start",
            "driver stop"
        ]
    );
    assert!(std::fs::read_to_string(&mount_log)
        .unwrap()
        .starts_with("mount at "));
    println!("hooks run in order; config changes, driver and post_start seen: ok");

    let mut h = new_hooks(false, true);
    std::fs::remove_file(&out).unwrap();
    assert_eq!(engine::run(cfg(), &mut h).unwrap(), 9);
    assert!(h.log.borrow().contains(&"monitor".to_string()));
    println!("a replacement monitor returns the status: ok");

    let mut h = new_hooks(true, false);
    let busy = EngineConfig::new(
        &img,
        vec!["/bin/sh".into(), "-c".into(), "while :; do :; done".into()],
    );
    let e = engine::run(busy, &mut h).unwrap_err().to_string();
    assert_eq!(
        e,
        "plugin \"test-plugin\": post-start hook of test-plugin failed"
    );
    let pid = h.pid.expect("post_start saw the pid");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "container {pid} still runs"
    );
    assert_eq!(
        h.log.borrow().last().map(String::as_str),
        Some("driver stop")
    );
    println!("a failing post_start kills the container and fails the run: ok");
}
