use vessel_tests::{stdout, TestRoot};

#[test]
fn version_prints_the_version() {
    let root = TestRoot::new();
    let o = root.run(&["version"]);
    assert!(o.status.success());
    assert!(stdout(&o).starts_with("vessel version "), "{}", stdout(&o));
}

#[test]
fn a_non_utf8_argument_is_an_error_not_a_panic() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let root = TestRoot::new();
    let o = root
        .vessel()
        .args([
            OsStr::new("sif"),
            OsStr::new("list"),
            OsStr::from_bytes(b"\xff.sif"),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(255), "{}", vessel_tests::stderr(&o));
    let err = vessel_tests::stderr(&o);
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_closed_stdout_is_an_error_not_a_panic() {
    use std::process::Stdio;
    let root = TestRoot::new();
    for args in [
        &["version"][..],
        &["plugin", "list"],
        &["key", "list"],
        &["completion", "bash"],
    ] {
        // A pipe whose read end is closed before vessel starts: every
        // write to its stdout fails with EPIPE.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = root
            .vessel()
            .args(args)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = vessel_tests::stderr(&o);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(o.status.code(), Some(255), "{args:?}: {err}");
        assert!(err.contains("broken pipe"), "{args:?}: {err}");
    }
}
