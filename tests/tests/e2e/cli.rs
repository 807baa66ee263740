use vessel_tests::{stdout, TestRoot};

#[test]
fn version_prints_the_version() {
    let root = TestRoot::new();
    let o = root.run(&["version"]);
    assert!(o.status.success());
    assert!(stdout(&o).starts_with("vessel version "), "{}", stdout(&o));
}
