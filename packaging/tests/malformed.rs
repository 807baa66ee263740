//! Malformed input: a table of corrupted reference images, each with the
//! typed error it must give, and a bounded property test that mutates valid
//! images at random (no panic, no hang, memory bounded by the file size).

use std::path::PathBuf;

use ed25519_dalek::pkcs8::DecodePublicKey;
use proptest::prelude::*;
use vessel_sif::{
    display, list_signatures, verify_image, Error, Image, SignatureKind, VerifyFailure,
    VerifyingKey,
};

fn reference(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("VESSEL_SIF_REFERENCE").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/sif-reference"),
        PathBuf::from,
    );
    std::fs::read(dir.join(name)).unwrap()
}

fn public_key() -> VerifyingKey {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/sif-reference");
    let pem = std::fs::read_to_string(dir.join("ed25519-public.pem")).unwrap();
    VerifyingKey::from_public_key_pem(&pem).unwrap()
}

fn set_i64(b: &mut [u8], at: usize, v: i64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn set_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Offset of field `field` in descriptor slot `slot`.
fn desc(slot: usize, field: usize) -> usize {
    4096 + 585 * slot + field
}

type Mutate = fn(&mut Vec<u8>);
type Expect = fn(&Error) -> bool;
type SigMutate<'a> = Box<dyn Fn(&mut Vec<u8>) + 'a>;

#[test]
fn corrupted_images_give_typed_errors() {
    let cases: Vec<(&str, &str, Mutate, Expect)> = vec![
        (
            "empty file",
            "one-group.sif",
            |b| b.clear(),
            |e| {
                matches!(
                    e,
                    Error::Truncated {
                        needed: 128,
                        actual: 0
                    }
                )
            },
        ),
        (
            "shorter than header",
            "one-group.sif",
            |b| b.truncate(100),
            |e| {
                matches!(
                    e,
                    Error::Truncated {
                        needed: 128,
                        actual: 100
                    }
                )
            },
        ),
        (
            "bad magic",
            "one-group.sif",
            |b| b[0x20] = b'X',
            |e| matches!(e, Error::BadMagic),
        ),
        (
            "version 02",
            "one-group.sif",
            |b| b[0x2B] = b'2',
            |e| matches!(e, Error::UnsupportedVersion(v) if v == "02"),
        ),
        (
            "absurd descriptor count",
            "one-group.sif",
            |b| set_i64(b, 0x58, 1 << 40),
            |e| matches!(e, Error::TooManyDescriptors(n) if *n == 1 << 40),
        ),
        (
            "negative descriptor count",
            "one-group.sif",
            |b| set_i64(b, 0x58, -1),
            |e| matches!(e, Error::InvalidHeader(m) if m.contains("negative descriptor count")),
        ),
        (
            "descriptor size disagrees with count",
            "one-group.sif",
            |b| set_i64(b, 0x58, 47),
            |e| matches!(e, Error::InvalidHeader(m) if m.contains("descriptors size")),
        ),
        (
            "descriptors free above total",
            "one-group.sif",
            |b| set_i64(b, 0x50, 49),
            |e| matches!(e, Error::InvalidHeader(m) if m.contains("descriptors free")),
        ),
        (
            "descriptor table over the header",
            "one-group.sif",
            |b| set_i64(b, 0x60, 0),
            |e| matches!(e, Error::InvalidHeader(m) if m.contains("overlaps the header")),
        ),
        (
            "descriptor table beyond eof",
            "one-group.sif",
            |b| set_i64(b, 0x60, i64::MAX - 8),
            |e| matches!(e, Error::DescriptorsBeyondEof { .. }),
        ),
        (
            "file cut inside the descriptor table",
            "one-group.sif",
            |b| b.truncate(20_000),
            |e| {
                matches!(
                    e,
                    Error::DescriptorsBeyondEof {
                        offset: 4096,
                        size: 28080,
                        file_len: 20_000
                    }
                )
            },
        ),
        (
            "file cut inside the data",
            "one-group.sif",
            |b| b.truncate(35_000),
            |e| {
                matches!(
                    e,
                    Error::Truncated {
                        needed: 40960,
                        actual: 35_000
                    }
                )
            },
        ),
        (
            "data size beyond eof",
            "one-group.sif",
            |b| set_i64(b, 0x78, i64::MAX),
            |e| matches!(e, Error::Truncated { .. }),
        ),
        (
            "negative data size",
            "one-group.sif",
            |b| set_i64(b, 0x78, -5),
            |e| matches!(e, Error::InvalidHeader(m) if m.contains("negative data size")),
        ),
        (
            "data offset inside the table",
            "one-group.sif",
            |b| set_i64(b, 0x70, 5000),
            |e| matches!(e, Error::InvalidHeader(m) if m.contains("overlaps the descriptor table")),
        ),
        (
            "object beyond eof",
            "one-group.sif",
            |b| set_i64(b, desc(1, 17), 1 << 40),
            |e| matches!(e, Error::ObjectBeyondEof { id: 2, .. }),
        ),
        (
            "object size overflows",
            "one-group.sif",
            |b| set_i64(b, desc(0, 25), i64::MAX),
            |e| matches!(e, Error::ObjectBeyondEof { id: 1, .. }),
        ),
        (
            "negative object size",
            "one-group.sif",
            |b| set_i64(b, desc(0, 25), -1),
            |e| matches!(e, Error::InvalidDescriptor { slot: 0, .. }),
        ),
        (
            "object inside the descriptor table",
            "one-group.sif",
            |b| set_i64(b, desc(0, 17), 4096),
            |e| matches!(e, Error::InvalidDescriptor { slot: 0, reason } if reason.contains("before the data section")),
        ),
        (
            "overlapping objects",
            "one-group.sif",
            |b| set_i64(b, desc(1, 17), 32768),
            |e| {
                matches!(
                    e,
                    Error::OverlappingObjects { a: 1, b: 2 }
                        | Error::OverlappingObjects { a: 2, b: 1 }
                )
            },
        ),
        (
            "duplicate object id",
            "one-group.sif",
            |b| set_u32(b, desc(1, 5), 1),
            |e| matches!(e, Error::DuplicateObjectId(1)),
        ),
        (
            "object id zero",
            "one-group.sif",
            |b| set_u32(b, desc(0, 5), 0),
            |e| matches!(e, Error::InvalidDescriptor { slot: 0, reason } if reason.contains("id 0")),
        ),
    ];
    assert!(cases.len() >= 15);
    for (what, file, mutate, expect) in cases {
        let mut b = reference(file);
        mutate(&mut b);
        match Image::from_source(b) {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => {
                assert!(expect(&e), "{what}: unexpected error {e:?}");
                let msg = e.to_string();
                assert!(!msg.contains('\n') && !msg.ends_with('.'), "{what}: {msg}");
            }
        }
    }
}

#[test]
fn corrupted_signatures_give_typed_failures() {
    let pk = public_key();
    let good = reference("one-group-signed-dsse.sif");
    let sig_at = 40960;
    let sig = &good[sig_at..];
    let find = |needle: &[u8]| sig.windows(needle.len()).position(|w| w == needle).unwrap();

    let cases: Vec<(&str, SigMutate<'_>, &str)> = vec![
        (
            "bad json",
            Box::new(|b: &mut Vec<u8>| b[sig_at] = b'x'),
            "bad json",
        ),
        (
            "bad payload base64",
            Box::new(move |b: &mut Vec<u8>| b[sig_at + find(b"\"payload\":\"") + 12] = b'*'),
            "bad payload base64",
        ),
        (
            "bad sig base64",
            Box::new(move |b: &mut Vec<u8>| b[sig_at + find(b"\"sig\":\"") + 8] = b'*'),
            "bad signature base64",
        ),
        (
            "other payload type",
            Box::new(move |b: &mut Vec<u8>| b[sig_at + find(b"vnd.sylabs") + 4] = b'X'),
            "unexpected payload type",
        ),
        (
            "signature object too large to be one",
            Box::new(|b: &mut Vec<u8>| {
                // Grow the signature object to 2 MiB of spaces.
                b.resize(sig_at + (2 << 20), b' ');
                let n = b.len() as i64;
                set_i64(b, desc(2, 25), n - sig_at as i64);
                set_i64(b, desc(2, 33), n - sig_at as i64);
                set_i64(b, 0x78, n - 32176);
            }),
            "more than the allowed",
        ),
    ];
    for (what, mutate, want) in cases {
        let mut b = good.clone();
        mutate(&mut b);
        let img = Image::from_source(b).unwrap_or_else(|e| panic!("{what}: {e}"));
        let r = verify_image(&img, &[pk]).unwrap();
        match r.first_failure() {
            Some(VerifyFailure::Malformed {
                signature_id: 3,
                reason,
            }) => {
                assert!(reason.contains(want), "{what}: {reason}")
            }
            other => panic!("{what}: {other:?}"),
        }
        // Listing reads only the envelope, so it still shows the keyids when
        // the envelope itself parses.
        let kind = &list_signatures(&img).unwrap()[0].kind;
        if want == "bad json" || want == "more than the allowed" {
            assert_eq!(kind, &SignatureKind::Unknown, "{what}");
        } else if want != "unexpected payload type" {
            assert!(
                matches!(kind, SignatureKind::Dsse { keyids } if keyids.len() == 2),
                "{what}"
            );
        }
    }
}

/// Exercises everything a reader of an untrusted image would call.
fn exercise(img: &Image<Vec<u8>>, pk: VerifyingKey) {
    let _ = display::list_text(img);
    let _ = display::header_text(img.header());
    for d in img.descriptors() {
        let _ = display::info_text(d);
        let _ = img.read_object(d.id, 1 << 20);
        let mut r = img.object_reader(d.id).unwrap();
        let _ = std::io::copy(&mut r, &mut std::io::sink());
    }
    let _ = verify_image(img, &[pk]).unwrap();
    let _ = list_signatures(img).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_mutations_never_panic(
        file in prop::sample::select(vec![
            "one-group-signed-dsse.sif", "two-groups-signed-dsse.sif",
            "one-group-signed-pgp.sif", "one-object-generic-json.sif", "empty.sif",
        ]),
        // Mostly header and descriptor bytes, where the structure lives.
        edits in prop::collection::vec((0usize..6000, any::<u8>()), 1..8),
        tail_edits in prop::collection::vec((0usize..400_000, any::<u8>()), 0..4),
        cut in prop::option::of(0usize..400_000),
    ) {
        let mut b = reference(file);
        let n = b.len();
        for (at, v) in edits.into_iter().chain(tail_edits) {
            b[at % n] = v;
        }
        if let Some(c) = cut {
            b.truncate(c.min(n));
        }
        if let Ok(img) = Image::from_source(b) {
            exercise(&img, public_key());
        }
    }
}
