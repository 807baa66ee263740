//! vessel-sif against the reference vectors: reading, byte-identical
//! deterministic writing, and DSSE signatures.

use std::path::PathBuf;

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use vessel_sif::{
    keyid, list_signatures, sign_image, verify_image, Arch, CreateOptions, DataType, FsType, Image,
    Link, ObjectInput, PartType, SignatureKind, SigningKey, VerifyFailure, VerifyingKey, Writer,
};

fn reference(name: &str) -> PathBuf {
    let dir = std::env::var_os("VESSEL_SIF_REFERENCE").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/sif-reference"),
        PathBuf::from,
    );
    dir.join(name)
}

const ALL: [&str; 7] = [
    "empty.sif",
    "one-object-generic-json.sif",
    "one-group.sif",
    "one-group-signed-dsse.sif",
    "one-group-signed-pgp.sif",
    "two-groups.sif",
    "two-groups-signed-dsse.sif",
];

fn private_key() -> SigningKey {
    let pem = std::fs::read_to_string(reference("ed25519-private.pem")).unwrap();
    SigningKey::from_pkcs8_pem(&pem).unwrap()
}

fn public_key() -> VerifyingKey {
    let pem = std::fs::read_to_string(reference("ed25519-public.pem")).unwrap();
    VerifyingKey::from_public_key_pem(&pem).unwrap()
}

#[test]
fn every_reference_file_parses() {
    for f in ALL {
        let img = Image::open(reference(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(img.header().version_str(), "01");
        for d in img.descriptors() {
            let mut r = img.object_reader(d.id).unwrap();
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut r, &mut v).unwrap();
            assert_eq!(v.len() as i64, d.size, "{f} object {}", d.id);
        }
    }
}

#[test]
fn one_group_layout() {
    let img = Image::open(reference("one-group.sif")).unwrap();
    let ds: Vec<_> = img.descriptors().collect();
    assert_eq!(ds.len(), 2);
    assert_eq!(ds[0].offset, 32768);
    assert_eq!(ds[0].size, 4);
    let p = ds[1].partition().unwrap();
    assert_eq!(p.fs, FsType::Squashfs);
    assert_eq!(p.part_type, PartType::PrimSys);
    assert_eq!(p.arch.go_name(), "386");
    assert_eq!(img.primary_partition().unwrap().id, 2);
    assert_eq!(img.header().arch.go_name(), "386");
    assert_eq!(img.group_ids(), vec![1]);
}

fn object(img: &Image, id: u32) -> Vec<u8> {
    img.read_object(id, 1 << 30).unwrap()
}

#[test]
fn deterministic_writer_reproduces_reference_bytes() {
    let src = Image::open(reference("two-groups.sif")).unwrap();
    let dir = tempfile::tempdir().unwrap();

    let out = dir.path().join("one-group.sif");
    let mut w = Writer::create(&out, &CreateOptions::deterministic()).unwrap();
    let i386 = Arch::from_go_name("386").unwrap();
    w.add(ObjectInput::partition(
        FsType::Raw,
        PartType::System,
        i386,
        &[0xfa, 0xce, 0xfe, 0xed][..],
    ))
    .unwrap();
    let sq = object(&src, 2);
    w.add(ObjectInput::partition(
        FsType::Squashfs,
        PartType::PrimSys,
        i386,
        sq.as_slice(),
    ))
    .unwrap();
    w.finish().unwrap();
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(reference("one-group.sif")).unwrap()
    );

    let out = dir.path().join("two-groups.sif");
    let mut w = Writer::create(&out, &CreateOptions::deterministic()).unwrap();
    w.add(ObjectInput::partition(
        FsType::Raw,
        PartType::System,
        i386,
        &[0xfa, 0xce, 0xfe, 0xed][..],
    ))
    .unwrap();
    w.add(ObjectInput::partition(
        FsType::Squashfs,
        PartType::PrimSys,
        i386,
        sq.as_slice(),
    ))
    .unwrap();
    let ext3 = object(&src, 3);
    let amd64 = Arch::from_go_name("amd64").unwrap();
    w.add(ObjectInput::partition(FsType::Ext3, PartType::System, amd64, ext3.as_slice()).group(2))
        .unwrap();
    w.finish().unwrap();
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(reference("two-groups.sif")).unwrap()
    );

    let out = dir.path().join("json.sif");
    let mut w = Writer::create(&out, &CreateOptions::deterministic()).unwrap();
    w.add(ObjectInput::generic_json(&b"{}"[..]).name("data.json"))
        .unwrap();
    w.finish().unwrap();
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(reference("one-object-generic-json.sif")).unwrap()
    );

    let out = dir.path().join("empty.sif");
    Writer::create(&out, &CreateOptions::deterministic())
        .unwrap()
        .finish()
        .unwrap();
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(reference("empty.sif")).unwrap()
    );
}

#[test]
fn second_primary_partition_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.sif");
    let mut w = Writer::create(&out, &CreateOptions::new()).unwrap();
    let a = Arch::host();
    w.add(ObjectInput::partition(
        FsType::Squashfs,
        PartType::PrimSys,
        a,
        &b"x"[..],
    ))
    .unwrap();
    let e = w
        .add(ObjectInput::partition(
            FsType::Squashfs,
            PartType::PrimSys,
            a,
            &b"y"[..],
        ))
        .unwrap_err();
    assert!(
        matches!(e, vessel_sif::Error::DuplicatePrimaryPartition),
        "{e}"
    );
    drop(w);
    assert!(!out.exists(), "an unfinished image must not appear");
}

fn envelope(img: &Image, id: u32) -> serde_json::Value {
    serde_json::from_slice(&object(img, id)).unwrap()
}

#[test]
fn signing_reproduces_the_reference_ed25519_entry() {
    let key = private_key();
    assert_eq!(
        keyid(&key.verifying_key()),
        "SHA256:x6l8ZblpSSXGaPMCzySedWg88BwIFcz8jlPb6el0mFs"
    );
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("one-group.sif");
    std::fs::copy(reference("one-group.sif"), &copy).unwrap();
    let signed = sign_image(&copy, &key).unwrap();
    assert_eq!(signed.len(), 1);
    assert_eq!(signed[0].signature_id, 3);
    assert_eq!(signed[0].objects, vec![1, 2]);

    let ours = Image::open(&copy).unwrap();
    let theirs = Image::open(reference("one-group-signed-dsse.sif")).unwrap();
    let (a, b) = (envelope(&ours, 3), envelope(&theirs, 3));
    assert_eq!(a["payloadType"], b["payloadType"]);
    assert_eq!(a["payload"], b["payload"], "same payload bytes");
    assert_eq!(a["signatures"][0], b["signatures"][0], "same keyid and sig");
    assert_eq!(a["signatures"].as_array().unwrap().len(), 1);

    // The signature descriptor matches the reference's apart from its size.
    let (da, db) = (ours.descriptor(3).unwrap(), theirs.descriptor(3).unwrap());
    let mut da2 = da.clone();
    da2.size = db.size;
    da2.size_with_padding = db.size_with_padding;
    assert_eq!(&da2, db);
    assert_eq!(da.link(), Link::Group(1));
    // Everything before the signature data is byte-identical except the data size.
    let fa = std::fs::read(&copy).unwrap();
    let fb = std::fs::read(reference("one-group-signed-dsse.sif")).unwrap();
    assert_eq!(fa[..0x78], fb[..0x78]);
    assert_eq!(fa[0x80..40960], {
        let mut v = fb[0x80..40960].to_vec();
        // Patch the reference's signature size fields to ours.
        let at = 4096 + 2 * 585 + 25 - 0x80;
        v[at..at + 8].copy_from_slice(&da.size.to_le_bytes());
        v[at + 8..at + 16].copy_from_slice(&da.size.to_le_bytes());
        v
    });

    let report = verify_image(&ours, &[key.verifying_key()]).unwrap();
    assert!(report.is_ok(), "{report:?}");
}

#[test]
fn reference_signatures_verify_and_tampering_is_typed() {
    let pk = public_key();
    let img = Image::open(reference("one-group-signed-dsse.sif")).unwrap();
    let r = verify_image(&img, &[pk]).unwrap();
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(r.groups[0].objects, vec![1, 2]);
    assert_eq!(
        r.groups[0].verified_by,
        vec!["SHA256:x6l8ZblpSSXGaPMCzySedWg88BwIFcz8jlPb6el0mFs".to_string()]
    );

    let img2 = Image::open(reference("two-groups-signed-dsse.sif")).unwrap();
    let r = verify_image(&img2, &[pk]).unwrap();
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(r.groups.len(), 2);
    assert_eq!(r.groups[1].objects, vec![3]);

    // Another key: unknown.
    let other = SigningKey::from_bytes(&[7; 32]).verifying_key();
    let r = verify_image(&img, &[other]).unwrap();
    assert!(
        matches!(r.first_failure(), Some(VerifyFailure::UnknownKey { .. })),
        "{r:?}"
    );

    // Unsigned image.
    let r = verify_image(&Image::open(reference("one-group.sif")).unwrap(), &[pk]).unwrap();
    assert!(matches!(
        r.first_failure(),
        Some(VerifyFailure::Unsigned { group: 1 })
    ));

    // PGP is listed, not mistaken for DSSE.
    let pgp = Image::open(reference("one-group-signed-pgp.sif")).unwrap();
    let r = verify_image(&pgp, &[pk]).unwrap();
    assert!(matches!(
        r.first_failure(),
        Some(VerifyFailure::NotDsse { signature_id: 3 })
    ));
    assert_eq!(list_signatures(&pgp).unwrap()[0].kind, SignatureKind::Pgp);
    match &list_signatures(&img).unwrap()[0].kind {
        SignatureKind::Dsse { keyids } => assert_eq!(keyids.len(), 2),
        k => panic!("{k:?}"),
    }

    let bytes = std::fs::read(reference("one-group-signed-dsse.sif")).unwrap();
    let flip = |at: usize| {
        let mut b = bytes.clone();
        b[at] ^= 0x01;
        let img = Image::from_source(b).unwrap();
        verify_image(&img, &[pk]).unwrap().first_failure().cloned()
    };
    assert_eq!(
        flip(0x30),
        Some(VerifyFailure::HeaderDigestMismatch { signature_id: 3 })
    );
    assert_eq!(
        flip(4096 + 585 + 73),
        Some(VerifyFailure::DescriptorDigestMismatch {
            signature_id: 3,
            object_id: 2
        })
    );
    assert_eq!(
        flip(32768),
        Some(VerifyFailure::ObjectDigestMismatch {
            signature_id: 3,
            object_id: 1
        })
    );
    // A flipped byte inside the ed25519 sig's base64 breaks the signature.
    let sig_data = &bytes[40960..];
    let at = 40960 + find(sig_data, b"\"sig\":\"") + 10;
    let r = flip(at);
    assert!(
        matches!(
            r,
            Some(VerifyFailure::BadSignature { .. }) | Some(VerifyFailure::Malformed { .. })
        ),
        "{r:?}"
    );
    // The payload type is part of the signed PAE; a changed byte of it is caught.
    assert!(flip(40960 + 20).is_some());
    let _ = DataType::Signature;
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).position(|w| w == needle).unwrap()
}
