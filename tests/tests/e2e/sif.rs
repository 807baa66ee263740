//! `vessel sif list|info|dump|header` against the real `siftool`, and images
//! crossing between vessel-sif and siftool in both directions.

use std::path::{Path, PathBuf};
use std::process::Command;

use vessel_sif::{Arch, CreateOptions, FsType, Image, ObjectInput, PartType, Writer};
use vessel_tests::{reference, sif_reference_dir, stderr, stdout, TestRoot};

fn siftool(args: &[&str]) -> std::process::Output {
    Command::new("siftool")
        .args(args)
        .output()
        .expect("siftool must be installed (apt-get install siftool)")
}

fn reference_images() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(sif_reference_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sif"))
        .collect();
    v.sort();
    assert!(v.len() >= 7, "reference images missing: {v:?}");
    v
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every object's `info` and `dump` output, and `list` and `header`, are
/// identical between vessel and siftool.
fn assert_same_as_siftool(root: &TestRoot, img: &Path) {
    for cmd in ["list", "header"] {
        let ours = root.run(&["sif", cmd, s(img)]);
        let theirs = siftool(&[cmd, s(img)]);
        assert!(ours.status.success(), "{}", stderr(&ours));
        assert!(theirs.status.success());
        assert_eq!(
            stdout(&ours),
            stdout(&theirs),
            "sif {cmd} {}",
            img.display()
        );
    }
    let ids: Vec<u32> = Image::open(img)
        .unwrap()
        .descriptors()
        .map(|d| d.id)
        .collect();
    for id in ids {
        let id = id.to_string();
        for cmd in ["info", "dump"] {
            let ours = root.run(&["sif", cmd, &id, s(img)]);
            let theirs = siftool(&[cmd, &id, s(img)]);
            assert!(ours.status.success(), "{}", stderr(&ours));
            assert_eq!(
                ours.stdout,
                theirs.stdout,
                "sif {cmd} {id} {}",
                img.display()
            );
        }
    }
}

#[test]
fn sif_commands_match_siftool_on_every_reference_file() {
    let root = TestRoot::new();
    for img in reference_images() {
        assert_same_as_siftool(&root, &img);
    }
}

#[test]
fn image_written_by_vessel_sif_is_read_by_siftool() {
    let root = TestRoot::new();
    let dir = tempfile::tempdir().unwrap();
    let payload: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let manifest = br#"{"name":"example.com/x"}"#;
    let img = dir.path().join("plugin.sif");
    let mut w = Writer::create(&img, &CreateOptions::new()).unwrap();
    w.add(
        ObjectInput::partition(
            FsType::Raw,
            PartType::Data,
            Arch::host(),
            payload.as_slice(),
        )
        .name("plugin.so"),
    )
    .unwrap();
    w.add(ObjectInput::generic_json(&manifest[..]).name("plugin.manifest"))
        .unwrap();
    w.add(
        ObjectInput::partition(
            FsType::Squashfs,
            PartType::PrimSys,
            Arch::host(),
            &b"hsqs"[..],
        )
        .group(2),
    )
    .unwrap();
    w.add(ObjectInput::generic(&b"raw"[..]).no_group()).unwrap();
    w.finish().unwrap();

    assert_same_as_siftool(&root, &img);
    assert_eq!(siftool(&["dump", "1", s(&img)]).stdout, payload);
    assert_eq!(siftool(&["dump", "2", s(&img)]).stdout, manifest);
    let info = stdout(&siftool(&["info", "1", s(&img)]));
    assert!(info.contains("Name:             plugin.so"), "{info}");
    assert!(info.contains("Partition Type:   Data"), "{info}");
    let header = stdout(&siftool(&["header", s(&img)]));
    assert!(
        header.contains(&format!("Primary Architecture: {}", Arch::host())),
        "{header}"
    );
}

#[test]
fn image_written_by_siftool_is_read_by_vessel() {
    let root = TestRoot::new();
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("st.sif");
    let part = dir.path().join("root.squashfs");
    let json = dir.path().join("meta.json");
    let def = dir.path().join("recipe.def");
    std::fs::write(&part, vec![0x5a; 9000]).unwrap();
    std::fs::write(&json, b"{\"a\":1}").unwrap();
    std::fs::write(&def, b"Bootstrap: scratch\n").unwrap();
    assert!(siftool(&["new", s(&img)]).status.success());
    let adds: [&[&str]; 3] = [
        &[
            "--datatype",
            "4",
            "--partfs",
            "1",
            "--parttype",
            "2",
            "--partarch",
            "2",
        ],
        &[
            "--datatype",
            "6",
            "--groupid",
            "1",
            "--filename",
            "meta.json",
        ],
        &["--datatype", "1", "--groupid", "2", "--link", "1"],
    ];
    for (args, file) in adds.iter().zip([&part, &json, &def]) {
        let mut a = vec!["add"];
        a.extend_from_slice(args);
        a.extend([s(&img), s(file)]);
        let o = siftool(&a);
        assert!(o.status.success(), "siftool {a:?}: {}", stderr(&o));
    }
    assert_same_as_siftool(&root, &img);
    let i = Image::open(&img).unwrap();
    let prim = i.primary_partition().expect("primary partition");
    assert_eq!(prim.partition().unwrap().arch.go_name(), "amd64");
    assert_eq!(i.read_object(prim.id, 1 << 20).unwrap(), vec![0x5a; 9000]);
    assert_eq!(i.descriptor(2).unwrap().name(), "meta.json");
}

#[test]
fn malformed_image_gives_one_line_error_and_exit_255() {
    let root = TestRoot::new();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.sif");
    let good = std::fs::read(reference("one-group.sif")).unwrap();
    std::fs::write(&bad, &good[..35000]).unwrap();
    let o = root.run(&["sif", "list", s(&bad)]);
    assert_eq!(o.status.code(), Some(255));
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!("error: {}: sif image truncated", bad.display())),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");

    let o = root.run(&["sif", "info", "9", s(&reference("one-group.sif"))]);
    assert_eq!(o.status.code(), Some(255));
    assert!(
        stderr(&o).contains("sif object 9 not found"),
        "{}",
        stderr(&o)
    );
}
