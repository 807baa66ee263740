//! OCI/Docker images to SIF: real images built with Debian's `umoci`
//! (busybox-static base, a layer deleting a file with a whiteout, a layer
//! with an opaque dir, a symlink, a hard link, a setuid file, ENV,
//! ENTRYPOINT, CMD, WORKDIR, labels), through `oci:`, a real
//! `docker-registry` (pushed with `skopeo`) and `docker-archive:`; hostile
//! layers crafted with the `tar` crate.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use vessel_tests::*;

/// Runs a tool and panics with its stderr when it fails.
fn sh(c: &mut Command) -> String {
    let o = c.output().expect("run tool");
    assert!(
        o.status.success(),
        "{:?} failed: {}",
        c,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The OCI layout built once per test process: tag `v3` is the full image.
fn fixture() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let work = session_dir().join("oci-fixture");
        std::fs::create_dir_all(&work).unwrap();
        let img = work.join("img");
        let b = work.join("bundle");
        let l = |tag: &str| format!("{}:{tag}", img.display());
        sh(Command::new("umoci").args(["init", "--layout"]).arg(&img));
        sh(Command::new("umoci").args(["new", "--image", &l("base")]));
        sh(Command::new("umoci")
            .args(["unpack", "--rootless", "--image", &l("base")])
            .arg(&b));
        let r = b.join("rootfs");
        busybox_rootfs(&r, &["data/old", "opq", "etc"]);
        std::fs::write(r.join("etc/gone"), "gone\n").unwrap();
        std::fs::write(r.join("opq/old"), "old\n").unwrap();
        sh(Command::new("umoci")
            .args(["repack", "--image", &l("base")])
            .arg(&b));
        std::fs::remove_dir_all(&b).unwrap();
        // Layer 2: whiteout, links, setuid.
        sh(Command::new("umoci")
            .args(["unpack", "--rootless", "--image", &l("base")])
            .arg(&b));
        let r = b.join("rootfs");
        std::fs::remove_file(r.join("etc/gone")).unwrap();
        std::fs::write(r.join("data/file"), "data\n").unwrap();
        std::fs::hard_link(r.join("data/file"), r.join("data/hard")).unwrap();
        std::os::unix::fs::symlink("/data/file", r.join("data/sym")).unwrap();
        std::fs::copy("/bin/busybox", r.join("bin/suid")).unwrap();
        set_mode(&r.join("bin/suid"), 0o4755);
        sh(Command::new("umoci")
            .args(["repack", "--image", &l("v2")])
            .arg(&b));
        // Layer 3: an opaque dir (umoci writes per-file whiteouts, so this
        // layer is added verbatim).
        let l3 = work.join("l3");
        std::fs::create_dir_all(l3.join("opq")).unwrap();
        std::fs::write(l3.join("opq/.wh..wh..opq"), "").unwrap();
        std::fs::write(l3.join("opq/fresh"), "fresh\n").unwrap();
        let tar = work.join("l3.tar");
        sh(Command::new("tar")
            .arg("-C")
            .arg(&l3)
            .arg("-cf")
            .arg(&tar)
            .arg("opq"));
        sh(Command::new("umoci")
            .args(["raw", "add-layer", "--image", &l("v2"), "--tag", "v3"])
            .arg(&tar));
        sh(Command::new("umoci").args([
            "config",
            "--image",
            &l("v3"),
            "--config.env",
            "GREETING=hello world",
            "--config.env",
            "QUOTE=it's $HOME",
            "--config.entrypoint",
            "/bin/sh",
            "--config.entrypoint",
            "-c",
            "--config.entrypoint",
            "echo \"[$*] $(pwd) $GREETING\"",
            "--config.entrypoint",
            "ep",
            "--config.cmd",
            "default cmd",
            "--config.cmd",
            "x",
            "--config.workingdir",
            "/work",
            "--config.label",
            "org.example.name=demo",
            "--config.label",
            "org.example.quote=it's",
        ]));
        sh(Command::new("chmod").arg("-R").arg("a+rX").arg(&work));
        img
    })
}

fn oci_ref(tag: &str) -> String {
    format!("oci:{}:{tag}", fixture().display())
}

/// The squashfs listing of a SIF without timestamps (owner, mode, size,
/// path, link target), sorted.
fn listing(sif: &Path) -> Vec<String> {
    let out = sh(Command::new("unsquashfs")
        .args(["-o", "32768", "-lln"])
        .arg(sif));
    let mut v: Vec<String> = out
        .lines()
        .filter(|l| l.contains("squashfs-root"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // perms owner size date time path [-> target]
            let mut keep = vec![f[0], f[1], f[2]];
            keep.extend(&f[5..]);
            keep.join(" ")
        })
        .collect();
    v.sort();
    v
}

fn line_for<'a>(list: &'a [String], path: &str) -> Option<&'a String> {
    let want = format!("squashfs-root{path}");
    list.iter().find(|l| {
        let mut f = l.split_whitespace().skip(3);
        f.next() == Some(want.as_str())
    })
}

/// A scratch dir every user can write in.
fn scratch(prefix: &str) -> tempfile::TempDir {
    let d = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    set_mode(d.path(), 0o1777);
    d
}

#[test]
#[ignore = "needs root"]
fn root_oci_layout_builds_with_layers_whiteouts_links_and_apptainer_semantics() {
    require_root();
    let env = RunEnv::new("vessel-oci-");
    let out_dir = scratch("vessel-oci-out-");
    let sif = out_dir.path().join("v3.sif");
    let o = env.run(&["build", path_str(&sif), &oci_ref("v3")]);
    ok(&o);
    let list = listing(&sif);
    // Whiteout and opaque dir: lower layers' entries gone.
    assert!(line_for(&list, "/etc/gone").is_none(), "{list:#?}");
    assert!(line_for(&list, "/opq/old").is_none(), "{list:#?}");
    assert!(line_for(&list, "/opq/fresh").is_some(), "{list:#?}");
    assert!(!list.iter().any(|l| l.contains(".wh.")), "{list:#?}");
    // Setuid, symlink, ownership kept (root build).
    let suid = line_for(&list, "/bin/suid").expect("suid");
    assert!(suid.starts_with("-rwsr-xr-x 0/0 "), "{suid}");
    let sym = line_for(&list, "/data/sym").expect("sym");
    assert!(sym.ends_with("-> /data/file"), "{sym}");
    // Apptainer's files.
    for p in [
        "/.singularity.d/runscript",
        "/.singularity.d/env/10-docker2singularity.sh",
        "/.singularity.d/labels.json",
        "/work",
    ] {
        assert!(line_for(&list, p).is_some(), "{p} missing: {list:#?}");
    }
    // The hard link is one inode; the data is there.
    let o = env.run(&[
        "exec",
        path_str(&sif),
        "sh",
        "-c",
        "stat -c %h /data/file; cat /data/hard /opq/fresh; ls /opq",
    ]);
    assert_eq!(ok(&o), "2\ndata\nfresh\nfresh\n");
    // ENV above the caller's environment; VESSELENV_ above the image.
    let o = env
        .cmd(&[
            "exec",
            path_str(&sif),
            "sh",
            "-c",
            "echo \"$GREETING|$QUOTE\"",
        ])
        .env("GREETING", "from the host")
        .output()
        .unwrap();
    assert_eq!(ok(&o), "hello world|it's $HOME\n");
    let o = env
        .cmd(&["exec", path_str(&sif), "sh", "-c", "echo \"$GREETING\""])
        .env("VESSELENV_GREETING", "override")
        .output()
        .unwrap();
    assert_eq!(ok(&o), "override\n");
    // ENTRYPOINT + CMD, arguments replace CMD, WORKDIR is run's cwd
    // (--pwd wins); exec keeps the caller's cwd.
    let o = env.run(&["run", path_str(&sif)]);
    assert_eq!(ok(&o), "[default cmd x] /work hello world\n");
    let o = env.run(&["run", path_str(&sif), "a 'b' $c", "d"]);
    assert_eq!(ok(&o), "[a 'b' $c d] /work hello world\n");
    let o = env.run(&["run", "--pwd", "/tmp", path_str(&sif)]);
    assert_eq!(ok(&o), "[default cmd x] /tmp hello world\n");
    // Labels in the SIF and in inspect.
    let o = env.run(&["inspect", "--json", path_str(&sif)]);
    let v: serde_json::Value = serde_json::from_str(&ok(&o)).unwrap();
    assert_eq!(v["labels"]["org.example.name"], "demo");
    assert_eq!(v["labels"]["org.example.quote"], "it's");
    assert!(v["runscript"].as_str().unwrap().contains("exec \"$@\""));
    assert!(v["environment"]["10-docker2singularity.sh"]
        .as_str()
        .unwrap()
        .contains("export GREETING='hello world'"));
    let sifl = ok(&env.run(&["sif", "list", path_str(&sif)]));
    assert_eq!(sifl.matches("JSON.Generic").count(), 2, "{sifl}");
    assert!(
        env.work_dirs_left().is_empty(),
        "{:?}",
        env.work_dirs_left()
    );
    let left: Vec<_> = std::fs::read_dir(out_dir.path())
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
}

#[test]
#[ignore = "needs root"]
fn root_same_image_through_registry_archive_and_layout_gives_the_same_sif_contents() {
    require_root();
    let reg = TestRegistry::start();
    let env = RunEnv::new("vessel-oci-");
    let out = scratch("vessel-oci-out-");
    let dest = format!("docker://{}/lab/demo:v3", reg.host);
    sh(Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(oci_ref("v3"))
        .arg(&dest));
    let archive = out.path().join("demo.tar");
    sh(Command::new("skopeo")
        .args(["copy", "--quiet"])
        .arg(oci_ref("v3"))
        .arg(format!("docker-archive:{}:lab/demo:v3", archive.display())));
    let a = out.path().join("a.sif");
    let b = out.path().join("b.sif");
    let c = out.path().join("c.sif");
    ok(&env.run(&["build", path_str(&a), &oci_ref("v3")]));
    let o = env
        .cmd(&["pull", "--insecure", path_str(&b), &dest])
        .env("XDG_CACHE_HOME", out.path())
        .output()
        .unwrap();
    ok(&o);
    ok(&env.run(&[
        "build",
        path_str(&c),
        &format!("docker-archive:{}", archive.display()),
    ]));
    let la = listing(&a);
    assert_eq!(la, listing(&b));
    assert_eq!(la, listing(&c));
    for sif in [&b, &c] {
        let o = env.run(&["inspect", "--json", path_str(sif)]);
        let v: serde_json::Value = serde_json::from_str(&ok(&o)).unwrap();
        assert_eq!(v["labels"]["org.example.name"], "demo");
        let o = env.run(&["run", path_str(sif), "z"]);
        assert_eq!(ok(&o), "[z] /work hello world\n");
    }
    // exec docker:// builds into the cache once, then reuses it.
    let cfg = env.root.path().join("etc/vessel");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(
        cfg.join("vessel.toml"),
        format!("insecure_registries = [\"{}\"]\n", reg.host),
    )
    .unwrap();
    for _ in 0..2 {
        let o = env.run(&["exec", &dest, "cat", "/opq/fresh"]);
        assert_eq!(ok(&o), "fresh\n");
    }
    let images = env.root.path().join("var/cache/vessel/images");
    let built: Vec<_> = std::fs::read_dir(&images)
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(built.len(), 1, "{built:?}");
    // A pinned digest reaches the same image.
    let (_, digest) = reg.stored_manifest("lab/demo", "v3");
    let o = env.run(&[
        "exec",
        &format!("docker://{}/lab/demo@{digest}", reg.host),
        "cat",
        "/data/file",
    ]);
    assert_eq!(ok(&o), "data\n");
    assert!(
        env.work_dirs_left().is_empty(),
        "{:?}",
        env.work_dirs_left()
    );
}

/// Pushes the fixture to `reg` as `lab/demo:v3`; returns the reference.
fn push_fixture(reg: &TestRegistry) -> String {
    let dest = format!("docker://{}/lab/demo:v3", reg.host);
    sh(Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(oci_ref("v3"))
        .arg(&dest));
    dest
}

/// Flips bytes in the middle of a file, keeping its size.
fn corrupt(path: &Path) {
    let mut b = std::fs::read(path).unwrap();
    let mid = b.len() / 2;
    for x in &mut b[mid..mid + 16] {
        *x ^= 0xff;
    }
    std::fs::write(path, b).unwrap();
}

#[test]
#[ignore = "needs root"]
fn root_a_corrupted_layer_in_the_registry_is_refused_with_nothing_left() {
    require_root();
    let reg = TestRegistry::start();
    let dest = push_fixture(&reg);
    let (manifest, _) = reg.stored_manifest("lab/demo", "v3");
    let layer = manifest["layers"][1]["digest"].as_str().unwrap().to_owned();
    corrupt(&reg.blob_path(&layer));
    let env = RunEnv::new("vessel-oci-");
    let out = scratch("vessel-oci-out-");
    let sif = out.path().join("x.sif");
    let o = env.run(&["pull", "--insecure", path_str(&sif), &dest]);
    assert_error(&o, 255, &["digest", &layer]);
    assert!(std::fs::read_dir(out.path()).unwrap().next().is_none());
    assert!(
        env.work_dirs_left().is_empty(),
        "{:?}",
        env.work_dirs_left()
    );
    let blobs = env.root.path().join("var/cache/vessel/blobs");
    let hex = layer.strip_prefix("sha256:").unwrap();
    assert!(!blobs.join(hex).exists());
    let stray: Vec<_> = std::fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

#[test]
#[ignore = "needs root"]
fn root_a_corrupted_blob_in_the_cache_is_fetched_again() {
    require_root();
    let reg = TestRegistry::start();
    let dest = push_fixture(&reg);
    let env = RunEnv::new("vessel-oci-");
    let out = scratch("vessel-oci-out-");
    let one = out.path().join("one.sif");
    ok(&env.run(&["pull", "--insecure", path_str(&one), &dest]));
    let (manifest, _) = reg.stored_manifest("lab/demo", "v3");
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_owned();
    let cached = env
        .root
        .path()
        .join("var/cache/vessel/blobs")
        .join(layer.strip_prefix("sha256:").unwrap());
    corrupt(&cached);
    let two = out.path().join("two.sif");
    ok(&env.run(&["pull", "--insecure", path_str(&two), &dest]));
    let d = format!(
        "sha256:{:x}",
        Sha256::digest(std::fs::read(&cached).unwrap())
    );
    assert_eq!(d, layer);
    assert_eq!(listing(&one), listing(&two));
}

/// An OCI layout at `dir` with these uncompressed layers (tag `latest`).
fn handmade_layout(dir: &Path, layers: &[Vec<u8>]) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let hex = format!("{:x}", Sha256::digest(bytes));
        std::fs::write(blobs.join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let descs: Vec<(String, usize)> = layers.iter().map(|l| put(l)).collect();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": descs.iter().map(|d| d.0.clone()).collect::<Vec<_>>()},
    });
    let (cd, cs) = put(config.to_string().as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": descs.iter().map(|(d, s)| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": s})).collect::<Vec<_>>(),
    });
    let (md, ms) = put(manifest.to_string().as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
            "annotations": {"org.opencontainers.image.ref.name": "latest"}}],
    });
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    sh(Command::new("chmod").arg("-R").arg("a+rX").arg(dir));
}

/// A tar with entries (path, kind, link target or content); names are
/// written raw, so `..` survives.
fn hostile_tar(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
    let mut buf = Vec::new();
    {
        let mut b = tar::Builder::new(&mut buf);
        for (path, kind, arg) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o755);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            let name = &mut h.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            let data: &[u8] = if *kind == tar::EntryType::Regular {
                arg.as_bytes()
            } else {
                let l = &mut h.as_old_mut().linkname;
                l[..arg.len()].copy_from_slice(arg.as_bytes());
                b""
            };
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append(&h, data).unwrap();
        }
        b.finish().unwrap();
    }
    buf
}

/// Hostile layers built by `who` (root, or nobody when it has user
/// namespaces): each refused or contained, nothing written outside.
fn hostile_layers_cannot_write_outside(as_nobody_user: bool) {
    use tar::EntryType::{Directory, Link, Regular, Symlink};
    let env = RunEnv::new("vessel-oci-");
    let victim = scratch("vessel-oci-victim-");
    let v = victim.path().to_str().unwrap().to_owned();
    let out = scratch("vessel-oci-out-");
    let base = hostile_tar(&[("bin/", Directory, ""), ("etc/", Directory, "")]);
    let cases: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        (
            "dotdot",
            hostile_tar(&[(
                "../../../../../../../../../../../../tmp/escaped",
                Regular,
                "x",
            )]),
            Some("leaves the rootfs"),
        ),
        (
            "abs-symlink",
            hostile_tar(&[("esc", Symlink, &v), ("esc/planted", Regular, "x")]),
            Some("esc/planted"),
        ),
        (
            "symlinked-parent",
            hostile_tar(&[
                ("up", Symlink, "../../../../../.."),
                (&format!("up{v}/planted"), Regular, "x"),
            ]),
            None,
        ),
        (
            "hardlink-shadow",
            hostile_tar(&[("shadow", Link, "/etc/shadow")]),
            Some("hard link target"),
        ),
        (
            "hardlink-dotdot",
            hostile_tar(&[("shadow", Link, "../../../../../../etc/shadow")]),
            Some("leaves the rootfs"),
        ),
    ];
    for (name, layer, refused) in cases {
        let dir = out.path().join(name);
        handmade_layout(&dir, &[base.clone(), layer]);
        let sif = out.path().join(format!("{name}.sif"));
        let args = ["build", path_str(&sif), &format!("oci:{}", dir.display())];
        let o = if as_nobody_user {
            env.cmd(&args)
                .env("XDG_CACHE_HOME", out.path())
                .env("HOME", out.path())
                .env_remove("VESSEL_LOG")
                .output_as_nobody()
        } else {
            env.run(&args)
        };
        match refused {
            Some(why) => {
                assert_error(&o, 255, &[why]);
                assert!(!sif.exists(), "{name}");
            }
            None => {
                ok(&o);
                // Contained: the file landed inside the image.
                let list = listing(&sif);
                assert!(
                    line_for(&list, &format!("{v}/planted")).is_some(),
                    "{name}: {list:#?}"
                );
            }
        }
        assert!(
            std::fs::read_dir(victim.path()).unwrap().next().is_none(),
            "{name}: wrote into the victim dir"
        );
        assert!(!Path::new("/tmp/escaped").exists(), "{name}");
        let shadow = std::fs::metadata("/etc/shadow").unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::nlink(&shadow), 1, "{name}");
    }
    assert!(
        env.work_dirs_left().is_empty(),
        "{:?}",
        env.work_dirs_left()
    );
}

trait AsNobody {
    fn output_as_nobody(&mut self) -> std::process::Output;
}

impl AsNobody for Command {
    fn output_as_nobody(&mut self) -> std::process::Output {
        as_nobody(self);
        self.output().expect("run as nobody")
    }
}

#[test]
#[ignore = "needs root"]
fn root_hostile_layers_cannot_write_outside_the_rootfs() {
    require_root();
    hostile_layers_cannot_write_outside(false);
}

#[test]
#[ignore = "needs root"]
fn root_hostile_layers_built_by_nobody_cannot_write_outside_the_rootfs() {
    require_root();
    hostile_layers_cannot_write_outside(true);
}

#[test]
#[ignore = "needs root"]
fn root_nobody_builds_an_oci_image_owned_by_itself_and_runs_it() {
    require_root();
    let env = RunEnv::new("vessel-oci-");
    let out = scratch("vessel-oci-out-");
    let sif = out.path().join("mine.sif");
    let o = env
        .cmd(&["build", path_str(&sif), &oci_ref("v3")])
        .env("XDG_CACHE_HOME", out.path())
        .output_as_nobody();
    ok(&o);
    let list = listing(&sif);
    let suid = line_for(&list, "/bin/suid").expect("suid");
    assert!(suid.starts_with("-rwsr-xr-x 65534/65534 "), "{suid}");
    assert!(line_for(&list, "/etc/gone").is_none());
    assert!(line_for(&list, "/opq/old").is_none());
    if nobody_has_userns() {
        let o = env
            .cmd(&["exec", &oci_ref("v3"), "cat", "/opq/fresh"])
            .env("XDG_CACHE_HOME", out.path())
            .output_as_nobody();
        assert_eq!(ok(&o), "fresh\n");
        assert!(out.path().join("vessel/images").is_dir());
    }
    assert!(
        env.work_dirs_left().is_empty(),
        "{:?}",
        env.work_dirs_left()
    );
}

#[test]
fn bad_sources_fail_with_one_line() {
    let env = RunEnv::new("vessel-oci-");
    let out = scratch("vessel-oci-out-");
    let sif = out.path().join("x.sif");
    let o = env.run(&["build", path_str(&sif), "oci:/nonexistent/layout"]);
    assert_error(&o, 255, &["/nonexistent/layout/index.json", "no such file"]);
    let o = env.run(&["build", path_str(&sif), "docker://bad host/x"]);
    assert_error(&o, 255, &["docker://bad host/x"]);
    let o = env.run(&["build", path_str(&sif), "docker-archive:/nonexistent.tar"]);
    assert_error(&o, 255, &["/nonexistent.tar", "no such file"]);
    let o = env.run(&["build", "--platform", "linux", path_str(&sif), "oci:/x"]);
    assert_error(&o, 255, &["platform"]);
    assert!(!sif.exists());
}

#[test]
#[ignore = "needs root"]
fn root_concurrent_runs_of_one_image_build_it_once() {
    require_root();
    let env = RunEnv::new("vessel-oci-");
    let children: Vec<_> = (0..3)
        .map(|_| {
            env.cmd(&["-v", "exec", &oci_ref("v3"), "cat", "/opq/fresh"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut builds = 0;
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert_eq!(ok(&o), "fresh\n");
        builds += stderr(&o).matches("into the cache").count();
    }
    assert_eq!(builds, 1);
    let images = env.root.path().join("var/cache/vessel/images");
    let entries: Vec<String> = std::fs::read_dir(&images)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(
        env.work_dirs_left().is_empty(),
        "{:?}",
        env.work_dirs_left()
    );
}

#[test]
fn another_platform_is_refused_when_asked_for() {
    let env = RunEnv::new("vessel-oci-");
    let out = scratch("vessel-oci-out-");
    let sif = out.path().join("arm.sif");
    let o = env.run(&[
        "build",
        "--platform",
        "linux/arm64",
        path_str(&sif),
        &oci_ref("v3"),
    ]);
    assert_error(&o, 255, &["is linux/amd64, not linux/arm64"]);
    assert!(!sif.exists());
    assert!(env.work_dirs_left().is_empty());
}
