//! Plugins survive runtime upgrades: a plugin built against an earlier
//! plugin-api 1.x (a golden binary under tests/golden/) loads and runs in
//! this runtime unchanged.

use vessel::plugin::{load, LoadSpec};
use vessel_plugin_test::FakeEngineConfig;
use vessel_tests::workspace_root;

#[test]
fn a_plugin_built_against_api_1_0_0_loads_and_runs() {
    let so = workspace_root().join("tests/golden/cli-plugin-api-1.0.0.so");
    let p = load(&LoadSpec::new(&so).name("example.com/cli-plugin")).expect("golden plugin loads");
    assert_eq!(p.manifest().api_version, "1.0.0");
    assert!(vessel_plugin_abi::API_VERSION.starts_with("1."));
    assert_eq!(p.run_command("test-cmd", &["x".into()], &[]).unwrap(), 0);
    let e = p
        .flag_pre_run("verify", &[], &[("abort".into(), None)])
        .unwrap_err();
    assert!(e.to_string().contains("verify aborted by --abort"), "{e}");
}

#[test]
fn a_plugin_built_against_api_1_1_0_loads_and_runs_its_engine_config() {
    // config-plugin 1.1 reads its config from its install dir (the 1.1
    // host service) and has the 1.0 EngineConfig entry point only.
    let so = workspace_root().join("tests/golden/config-plugin-api-1.1.0.so");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config-plugin.conf"),
        "bind = /etc/hostname:/golden:ro\nenv = GOLDEN=1.1\n",
    )
    .unwrap();
    let p = load(
        &LoadSpec::new(&so)
            .name("example.com/config-plugin")
            .install_dir(dir.path()),
    )
    .expect("golden 1.1 plugin loads");
    assert_eq!(p.manifest().api_version, "1.1.0");
    assert!(p.entries().configure_container.is_none());
    let mut cfg = FakeEngineConfig::default();
    p.engine_config(&mut cfg).unwrap();
    assert_eq!(cfg.env["GOLDEN"], "1.1");
    assert_eq!(cfg.binds.len(), 1);
    assert_eq!(cfg.binds[0].destination, "/golden");
}
