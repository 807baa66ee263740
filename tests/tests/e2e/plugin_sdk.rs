//! The SDK as a compiled plugin sees it (arguments by name, repeated value
//! flags), and the errors naming a disabled plugin behind an unknown
//! command, flag or image driver.

use std::sync::OnceLock;

use vessel_tests::{
    assert_error, busybox_rootfs, custom_plugin, ok, path_str, require_root, session_dir, stdout,
    RunEnv, TestRoot,
};

/// `greet WHO [GREETING] [EXTRA...] [--tag T]...`, printing each slot by name.
const SLOTS_PLUGIN: &str = r#"
use std::io::Write;
use vessel_plugin_api::{Arg, Command, Flag, Plugin};
pub fn build() -> Plugin {
    Plugin::new("example.com/slots").version("0.1.0").command(
        Command::new("greet")
            .arg(Arg::new("who").required())
            .arg(Arg::new("greeting"))
            .arg(Arg::new("extra").multiple())
            .flag(Flag::value("tag")),
        |inv| {
            writeln!(
                inv.stdout(),
                "who={:?} greeting={:?} extra={:?} tags={:?}",
                inv.arg("who"),
                inv.arg("greeting"),
                inv.arg_values("extra"),
                inv.flag_values("tag"),
            )?;
            Ok(0)
        },
    )
}
vessel_plugin_api::export_plugin!(build);
"#;

#[test]
#[ignore = "needs root"]
fn root_plugin_args_keep_their_slots_and_value_flags_repeat() {
    require_root();
    let root = TestRoot::new();
    let img = custom_plugin("example.com/slots", Some(SLOTS_PLUGIN));
    ok(&root.run(&[
        "plugin",
        "install",
        "--yes",
        "--allow-unsigned",
        path_str(&img),
    ]));

    // The optional GREETING is absent: it is none, and EXTRA stays empty.
    let o = root.run(&["greet", "ann"]);
    assert_eq!(ok(&o), "who=Some(\"ann\") greeting=None extra=[] tags=[]\n");
    let o = root.run(&["greet", "--tag", "a", "ann", "hi", "x", "--tag", "b", "y"]);
    assert_eq!(
        ok(&o),
        "who=Some(\"ann\") greeting=Some(\"hi\") extra=[\"x\", \"y\"] tags=[\"a\", \"b\"]\n"
    );
}

/// Adds command `gpu` and flag `--gpu`/`-g` to `exec`, registers an image
/// driver `acme-gpu`.
const GPU_PLUGIN: &str = r#"
use vessel_plugin_api::{Command, Driver, Flag, Mount, Plugin};
struct Acme;
impl Driver for Acme {
    fn name(&self) -> String { "acme-gpu".into() }
    fn features(&self) -> Vec<String> { vec!["squashfs".into()] }
    fn mount(&self, _m: &Mount) -> vessel_plugin_api::Result<()> { Err("not for mounting".into()) }
}
pub fn build() -> Plugin {
    Plugin::new("acme.org/gpu")
        .version("0.1.0")
        .command(Command::new("gpu"), |_| Ok(0))
        .flag("exec", Flag::switch("gpu").short('g'), |_| Ok(()))
        .register_image_drivers(|_, r| r.register(Acme))
}
vessel_plugin_api::export_plugin!(build);
"#;

/// A SIF image of a busybox rootfs (once per process).
fn busybox_sif() -> &'static std::path::Path {
    static SIF: OnceLock<std::path::PathBuf> = OnceLock::new();
    SIF.get_or_init(|| {
        let dir = session_dir().join("plugin-sdk-fixtures");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sandbox = dir.join("rootfs");
        busybox_rootfs(&sandbox, &[]);
        let sif = dir.join("rootfs.sif");
        ok(&TestRoot::new().run(&["build", path_str(&sif), path_str(&sandbox)]));
        sif
    })
}

#[test]
#[ignore = "needs root"]
fn root_a_disabled_plugins_command_flag_and_driver_are_named() {
    require_root();
    let env = RunEnv::new("vessel-disabled-test-");
    let root = &env.root;
    let img = custom_plugin("acme.org/gpu", Some(GPU_PLUGIN));
    ok(&root.run(&[
        "plugin",
        "install",
        "--yes",
        "--allow-unsigned",
        path_str(&img),
    ]));
    ok(&root.run(&["gpu"]));
    ok(&root.run(&["plugin", "disable", "acme.org/gpu"]));

    let hint = "comes from plugin \"acme.org/gpu\", which is disabled \
                (enable it with: vessel plugin enable acme.org/gpu)";
    let e = assert_error(&root.run(&["gpu"]), 255, &[]);
    assert_eq!(e, format!("error: command \"gpu\" {hint}"));
    let sif = path_str(busybox_sif());
    for flag in ["--gpu", "-g"] {
        let e = assert_error(&root.run(&["exec", flag, sif, "true"]), 255, &[]);
        assert_eq!(e, format!("error: flag --gpu of command \"exec\" {hint}"));
    }
    // A normal user gets the same answer.
    let e = assert_error(&root.run_as_nobody(&["gpu"]), 255, &[]);
    assert_eq!(e, format!("error: command \"gpu\" {hint}"));

    // The configured driver is only registered by a disabled plugin: the
    // driver names are not known before loading, so the error names the
    // disabled plugins that register drivers as its likely source.
    let etc = root.path().join("etc/vessel");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("vessel.toml"), "image_driver = \"acme-gpu\"\n").unwrap();
    let e = assert_error(&env.run(&["exec", sif, "true"]), 255, &[]);
    assert!(
        e.starts_with("error: image driver \"acme-gpu\" is not registered")
            && e.contains(
                "it likely comes from plugin \"acme.org/gpu\", which is disabled and registers \
                 image drivers (enable it with: vessel plugin enable acme.org/gpu)"
            ),
        "{e}"
    );
    assert!(env.work_dirs_left().is_empty());

    // Enabled again, everything is back; an unknown word stays clap's error.
    ok(&root.run(&["plugin", "enable", "acme.org/gpu"]));
    ok(&root.run(&["gpu"]));
    let o = root.run(&["gpux"]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
}
