//! `vessel sign` and `vessel verify` with real keys and images, including
//! byte-compatibility with the reference signature and tamper detection.

use std::path::Path;
use std::process::Command;

use vessel_sif::Image;
use vessel_tests::{reference, require_root, stderr, stdout, TestRoot};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const REF_KEYID: &str = "SHA256:x6l8ZblpSSXGaPMCzySedWg88BwIFcz8jlPb6el0mFs";

fn envelope(img: &Path, id: u32) -> serde_json::Value {
    let i = Image::open(img).unwrap();
    serde_json::from_slice(&i.read_object(id, 1 << 20).unwrap()).unwrap()
}

#[test]
fn reference_image_verifies_with_reference_key_only() {
    let root = TestRoot::new();
    let pubkey = reference("ed25519-public.pem");
    let signed = reference("one-group-signed-dsse.sif");
    let o = root.run(&["verify", "--key", s(&pubkey), s(&signed)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&format!("Group 1: objects 1, 2 verified by {REF_KEYID}")));

    let two = reference("two-groups-signed-dsse.sif");
    let o = root.run(&["verify", "--key", s(&pubkey), s(&two)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("Group 2: object 3 verified by"),
        "{}",
        stdout(&o)
    );

    let dir = tempfile::tempdir().unwrap();
    let o = root.run(&["key", "newpair", "--out", s(&dir.path().join("other"))]);
    assert!(o.status.success());
    let other = dir.path().join("other-public.pem");
    let o = root.run(&["verify", "--key", s(&other), s(&signed)]);
    assert_eq!(o.status.code(), Some(255));
    assert!(stderr(&o).contains("unknown key"), "{}", stderr(&o));

    let o = root.run(&[
        "verify",
        "--key",
        s(&pubkey),
        s(&reference("one-group.sif")),
    ]);
    assert_eq!(o.status.code(), Some(255));
    assert!(
        stderr(&o).contains("group 1 is not signed"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn flipping_one_byte_breaks_verification() {
    let root = TestRoot::new();
    let pubkey = reference("ed25519-public.pem");
    let good = std::fs::read(reference("one-group-signed-dsse.sif")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // (offset, what the error must say): object 1's data, object 2's
    // descriptor name, the header UUID.
    for (at, want) in [
        (32768 + 1, "object digest mismatch for object 1"),
        (4096 + 585 + 73, "descriptor digest mismatch for object 2"),
        (0x30 + 5, "header digest mismatch"),
    ] {
        let mut b = good.clone();
        b[at] ^= 0x80;
        let f = dir.path().join(format!("flip-{at}.sif"));
        std::fs::write(&f, &b).unwrap();
        let o = root.run(&["verify", "--key", s(&pubkey), s(&f)]);
        assert_eq!(o.status.code(), Some(255), "flip at {at}");
        let err = stderr(&o);
        assert!(err.contains(want), "flip at {at}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
}

#[test]
fn signing_with_the_reference_key_reproduces_the_reference_signature() {
    let root = TestRoot::new();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("one-group.sif");
    std::fs::copy(reference("one-group.sif"), &copy).unwrap();
    let o = root.run(&[
        "sign",
        "--key",
        s(&reference("ed25519-private.pem")),
        s(&copy),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!("Signed group 1 (objects 1, 2) with {REF_KEYID} as object 3\n")
    );
    let ours = envelope(&copy, 3);
    let theirs = envelope(&reference("one-group-signed-dsse.sif"), 3);
    assert_eq!(ours["payload"], theirs["payload"]);
    let ed = theirs["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["keyid"] == REF_KEYID)
        .unwrap();
    assert_eq!(&ours["signatures"][0]["keyid"], &ed["keyid"]);
    assert_eq!(&ours["signatures"][0]["sig"], &ed["sig"]);

    // siftool sees the same layout as in the reference signed image.
    let ours = Command::new("siftool")
        .args(["list", s(&copy)])
        .output()
        .unwrap();
    let list = stdout(&ours);
    assert!(list.contains("3    |NONE    |1   (G) |40960-"), "{list}");
    assert!(list.contains("|Signature (SHA-256)"), "{list}");
}

#[test]
fn sign_then_verify_with_a_new_key_and_every_group() {
    let root = TestRoot::new();
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("dev");
    assert!(root
        .run(&["key", "newpair", "--out", s(&prefix)])
        .status
        .success());
    let img = dir.path().join("two.sif");
    std::fs::copy(reference("two-groups.sif"), &img).unwrap();
    let o = root.run(&[
        "sign",
        "--key",
        s(&dir.path().join("dev-private.pem")),
        s(&img),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 2, "{}", stdout(&o));
    let o = root.run(&[
        "verify",
        "--key",
        s(&dir.path().join("dev-public.pem")),
        s(&img),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("Group 1: objects 1, 2 verified by SHA256:"));
    assert!(stdout(&o).contains("Group 2: object 3 verified by SHA256:"));

    // The reference key did not sign it.
    let o = root.run(&[
        "verify",
        "--key",
        s(&reference("ed25519-public.pem")),
        s(&img),
    ]);
    assert_eq!(o.status.code(), Some(255));

    // A failed sign (bad key file) leaves the image byte-identical.
    let before = std::fs::read(&img).unwrap();
    let o = root.run(&[
        "sign",
        "--key",
        s(&dir.path().join("dev-public.pem")),
        s(&img),
    ]);
    assert_eq!(o.status.code(), Some(255));
    assert!(
        stderr(&o).contains("not an ed25519 private key"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(&img).unwrap(), before);
}

/// A copy of the reference signed image in `dir`.
fn signed_ref_copy(dir: &Path, name: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::copy(reference("one-group-signed-dsse.sif"), &p).unwrap();
    p
}

/// Appends one object to the image at `p`.
fn append(p: &Path, input: vessel_sif::ObjectInput<&[u8]>) {
    let mut w = vessel_sif::Writer::open(p).unwrap();
    w.add(input).unwrap();
    w.finish().unwrap();
}

#[test]
fn an_object_outside_every_group_fails_verification() {
    let root = TestRoot::new();
    let dir = tempfile::tempdir().unwrap();
    let img = signed_ref_copy(dir.path(), "ungrouped.sif");
    // Signed group intact; a payload smuggled in beside it, in no group.
    append(
        &img,
        vessel_sif::ObjectInput::generic(&b"#!/bin/sh\nrm -rf /\n"[..])
            .name("smuggled")
            .no_group(),
    );
    let pubkey = reference("ed25519-public.pem");
    let o = root.run(&["verify", "--key", s(&pubkey), s(&img)]);
    assert_eq!(o.status.code(), Some(255), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("object 4 is in no object group"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_bad_signature_fails_its_group_even_beside_a_good_one() {
    let root = TestRoot::new();
    let dir = tempfile::tempdir().unwrap();
    let pubkey = reference("ed25519-public.pem");

    // A second envelope claiming the reference key, with a wrong signature.
    let img = signed_ref_copy(dir.path(), "bad.sif");
    let mut env = envelope(&img, 3);
    let sig = env["signatures"][0]["sig"].as_str().unwrap().to_owned();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    env["signatures"][0]["sig"] = format!("{flipped}{}", &sig[1..]).into();
    let bytes = serde_json::to_vec(&env).unwrap();
    append(
        &img,
        vessel_sif::ObjectInput::signature(vessel_sif::HashType::Sha256, 1, bytes.as_slice()),
    );
    let o = root.run(&["verify", "--key", s(&pubkey), s(&img)]);
    assert_eq!(o.status.code(), Some(255), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "Signature object 3 (group 1, key {REF_KEYID}): verified"
        )),
        "{out}"
    );
    let line4 = out
        .lines()
        .find(|l| l.starts_with("Signature object 4 (group 1, key "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line4.contains(REF_KEYID) && line4.contains("): bad ("),
        "{out}"
    );
    assert!(!out.contains("Group 1: objects 1, 2 verified"), "{out}");
    assert!(stderr(&o).contains("bad signature"), "{}", stderr(&o));

    // A signature by a key we do not have is listed, and does not fail the
    // group another trusted signature verifies.
    let img = signed_ref_copy(dir.path(), "unknown.sif");
    let o = root.run(&["key", "newpair", "--out", s(&dir.path().join("other"))]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = root.run(&[
        "sign",
        "--key",
        s(&dir.path().join("other-private.pem")),
        s(&img),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = root.run(&["verify", "--key", s(&pubkey), s(&img)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("Signature object 4 (group 1, key SHA256:"),
        "{out}"
    );
    assert!(out.contains("): unknown key"), "{out}");
    assert!(out.contains("Group 1: objects 1, 2 verified by"), "{out}");
}

/// `bytes` with every `from` replaced by `to` (same length).
fn replace_all(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = bytes.to_vec();
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            i += from.len();
        } else {
            i += 1;
        }
    }
    out
}

#[test]
#[ignore = "needs root"]
fn root_plugin_inspect_file_says_trusted_only_for_a_verified_signature() {
    require_root();
    let root = TestRoot::new();
    root.trust_reference_key();
    let dir = tempfile::tempdir().unwrap();
    let o = root.run(&["key", "newpair", "--out", s(&dir.path().join("other"))]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Signed by another key, then the envelope's keyid edited to claim the
    // trusted reference key (same length, so the image stays well-formed).
    let plugin = vessel_tests::compiled_plugin("examples/plugins/cli-plugin");
    let img = dir.path().join("forged.sif");
    std::fs::copy(&plugin, &img).unwrap();
    let o = root.run(&[
        "sign",
        "--key",
        s(&dir.path().join("other-private.pem")),
        s(&img),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let other_kid = stdout(&o)
        .split(" with ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap()
        .to_owned();
    let bytes = std::fs::read(&img).unwrap();
    std::fs::write(
        &img,
        replace_all(&bytes, other_kid.as_bytes(), REF_KEYID.as_bytes()),
    )
    .unwrap();
    let o = root.run(&["plugin", "inspect", s(&img)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains(REF_KEYID), "{out}");
    assert!(!out.contains("(trusted)"), "{out}");
    // Control: a real signature by the trusted key is shown as trusted.
    let gdir = dir.path().join("g");
    std::fs::create_dir(&gdir).unwrap();
    let good = vessel_tests::signed_copy(&plugin, &gdir, None);
    let out = stdout(&root.run(&["plugin", "inspect", s(&good)]));
    assert!(out.contains(&format!("{REF_KEYID} (trusted)")), "{out}");
}
