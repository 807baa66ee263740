//! Plugins survive runtime upgrades: a plugin built against an earlier
//! plugin-api 1.x (a golden binary under tests/golden/) loads and runs in
//! this runtime unchanged.

use vessel::plugin::{load, LoadSpec};
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
