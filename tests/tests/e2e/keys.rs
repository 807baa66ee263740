//! `vessel key newpair|list|trust|remove` and the root-only trust store.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use vessel_tests::{is_root, reference, require_root, stderr, stdout, TestRoot};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn store_listing(root: &TestRoot) -> Vec<(String, Vec<u8>)> {
    let dir = root.path().join("etc/vessel/keys");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut v: Vec<_> = rd
        .map(|e| {
            let p = e.unwrap().path();
            (p.display().to_string(), std::fs::read(&p).unwrap())
        })
        .collect();
    v.sort();
    v
}

const REF_KEYID: &str = "SHA256:x6l8ZblpSSXGaPMCzySedWg88BwIFcz8jlPb6el0mFs";

#[test]
fn newpair_writes_private_0600_and_public_keys() {
    let root = TestRoot::new();
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("dev");
    let o = root.run(&["key", "newpair", "--out", s(&prefix)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let private = dir.path().join("dev-private.pem");
    let public = dir.path().join("dev-public.pem");
    let mode = std::fs::metadata(&private).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let pem = std::fs::read_to_string(&private).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    let pem = std::fs::read_to_string(&public).unwrap();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    assert!(
        stdout(&o).contains("Key ID:      SHA256:"),
        "{}",
        stdout(&o)
    );

    // Never overwrites.
    let o = root.run(&["key", "newpair", "--out", s(&prefix)]);
    assert_eq!(o.status.code(), Some(255));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
}

#[test]
fn empty_store_lists_nothing() {
    let root = TestRoot::new();
    let o = root.run(&["key", "list"]);
    assert!(o.status.success());
    assert_eq!(stdout(&o), "There are no trusted keys.\n");
}

#[test]
fn root_non_root_trust_fails_and_leaves_store_unchanged() {
    let root = TestRoot::new();
    let pubkey = reference("ed25519-public.pem");
    if is_root() {
        // Seed the store so "unchanged" covers existing content too.
        let o = root.run(&["key", "trust", s(&pubkey)]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let before = store_listing(&root);
    let other = tempfile::tempdir().unwrap();
    vessel_tests::set_mode(other.path(), 0o755);
    let o = root.run(&["key", "newpair", "--out", s(&other.path().join("o"))]);
    assert!(o.status.success(), "{}", stderr(&o));
    let other_pub = other.path().join("o-public.pem");

    let run = |args: &[&str]| {
        if is_root() {
            root.run_as_nobody(args)
        } else {
            root.run(args)
        }
    };
    let o = run(&["key", "trust", s(&other_pub)]);
    assert_eq!(o.status.code(), Some(255));
    let err = stderr(&o);
    assert!(err.contains("trusting a key requires root"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert_eq!(store_listing(&root), before);

    let o = run(&["key", "remove", REF_KEYID]);
    assert_eq!(o.status.code(), Some(255));
    assert!(stderr(&o).contains("requires root"), "{}", stderr(&o));
    assert_eq!(store_listing(&root), before);
}

#[test]
#[ignore = "needs root"]
fn root_trust_list_verify_remove() {
    require_root();
    let root = TestRoot::new();
    let signed = reference("one-group-signed-dsse.sif");

    // Not trusted yet: verification against the store fails.
    let o = root.run(&["verify", s(&signed)]);
    assert_eq!(o.status.code(), Some(255));
    assert!(stderr(&o).contains("unknown key"), "{}", stderr(&o));

    let o = root.run(&["key", "trust", s(&reference("ed25519-public.pem"))]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(REF_KEYID));
    let o = root.run(&["key", "list"]);
    assert!(stdout(&o).contains(REF_KEYID), "{}", stdout(&o));

    let o = root.run(&["verify", s(&signed)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("Group 1: objects 1, 2 verified by {REF_KEYID}")),
        "{}",
        stdout(&o)
    );

    // Trusting again is a no-op.
    let o = root.run(&["key", "trust", s(&reference("ed25519-public.pem"))]);
    assert!(stdout(&o).contains("already trusted"), "{}", stdout(&o));
    assert_eq!(store_listing(&root).len(), 1);

    // A private key is not a public key.
    let o = root.run(&["key", "trust", s(&reference("ed25519-private.pem"))]);
    assert_eq!(o.status.code(), Some(255));
    assert!(
        stderr(&o).contains("not an ed25519 public key"),
        "{}",
        stderr(&o)
    );

    let o = root.run(&["key", "remove", REF_KEYID]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&root.run(&["key", "list"])),
        "There are no trusted keys.\n"
    );
    let o = root.run(&["key", "remove", REF_KEYID]);
    assert_eq!(o.status.code(), Some(255));
    assert!(
        stderr(&o).contains("is not in the trust store"),
        "{}",
        stderr(&o)
    );
    let o = root.run(&["verify", s(&signed)]);
    assert_eq!(o.status.code(), Some(255));
}
