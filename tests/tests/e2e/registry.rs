//! `oras://` distribution against the real reference registry
//! (`docker-registry`): push/pull round trips in Apptainer's layout, digest
//! pins, tampered and missing content, concurrent pulls, and plugins
//! installed by reference under the signature policy.

use std::path::Path;

use sha2::{Digest, Sha256};
use vessel_tests::{
    assert_error, compiled_plugin, ok, require_root, signed_copy, stderr, stdout, TestRegistry,
    TestRoot,
};

const CLI_PLUGIN: &str = "examples/plugins/cli-plugin";

/// A file of `len` pseudo-random bytes (not a valid SIF: push and pull
/// move bytes, they do not interpret them).
fn random_file(dir: &Path, name: &str, len: usize) -> std::path::PathBuf {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ len as u64;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn sha256(p: &Path) -> String {
    format!("sha256:{:x}", Sha256::digest(std::fs::read(p).unwrap()))
}

/// The `(sha256:…)` a push or pull prints.
fn printed_digest(out: &str) -> String {
    let i = out.rfind("(sha256:").expect("a digest in the output");
    out[i + 1..].split(')').next().unwrap().to_owned()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn push_then_pull_by_tag_and_by_digest_gives_identical_bytes_in_apptainers_layout() {
    let reg = TestRegistry::start();
    let root = TestRoot::new();
    let work = tempfile::tempdir().unwrap();
    let img = random_file(work.path(), "alpine.sif", 3 << 20);
    let r = reg.reference("lab/alpine:v1");
    let out = ok(&reg.vessel(&root, &["push", "--insecure", img.to_str().unwrap(), &r]));
    let manifest_digest = printed_digest(&out);

    // The layout Apptainer reads and writes.
    let (m, stored_digest) = reg.stored_manifest("lab/alpine", "v1");
    assert_eq!(stored_digest, manifest_digest);
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.sylabs.sif.config.v1+json"
    );
    let config_blob =
        std::fs::read(reg.blob_path(m["config"]["digest"].as_str().unwrap())).unwrap();
    assert_eq!(config_blob, b"{}");
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.sylabs.sif.layer.v1.sif"
    );
    assert_eq!(
        layers[0]["annotations"]["org.opencontainers.image.title"],
        "alpine.sif"
    );
    assert_eq!(layers[0]["digest"], sha256(&img));
    assert_eq!(layers[0]["size"], 3 << 20);

    // By tag, to a named file.
    let dest = work.path().join("pulled");
    std::fs::create_dir(&dest).unwrap();
    let by_tag = dest.join("by-tag.sif");
    ok(&reg.vessel(&root, &["pull", "--insecure", by_tag.to_str().unwrap(), &r]));
    assert_eq!(
        std::fs::read(&by_tag).unwrap(),
        std::fs::read(&img).unwrap()
    );

    // By digest, into a directory (default name from repo and digest).
    let by_digest = reg.reference(&format!("lab/alpine@{manifest_digest}"));
    let o = ok(&reg.vessel(
        &root,
        &["pull", "--insecure", dest.to_str().unwrap(), &by_digest],
    ));
    assert_eq!(printed_digest(&o), manifest_digest);
    let hex = manifest_digest.strip_prefix("sha256:").unwrap();
    let named = dest.join(format!("alpine_{}.sif", &hex[..12]));
    assert_eq!(std::fs::read(&named).unwrap(), std::fs::read(&img).unwrap());
    // Nothing else was left in the destination (no temp files).
    assert_eq!(entries(&dest).len(), 2, "{:?}", entries(&dest));

    // A digest the repository does not have: 404, named.
    let absent = reg.reference(&format!("lab/alpine@sha256:{}", "0".repeat(64)));
    assert_error(
        &reg.vessel(
            &root,
            &[
                "pull",
                "--insecure",
                work.path().join("x.sif").to_str().unwrap(),
                &absent,
            ],
        ),
        255,
        &["registry", "lab/alpine", "404"],
    );
    assert!(!work.path().join("x.sif").exists());

    // An existing different file is not replaced without --force.
    let other = random_file(work.path(), "other.sif", 10);
    assert_error(
        &reg.vessel(&root, &["pull", "--insecure", other.to_str().unwrap(), &r]),
        255,
        &["other.sif", "exists", "--force"],
    );
    assert_eq!(std::fs::read(&other).unwrap().len(), 10);
    ok(&reg.vessel(
        &root,
        &["pull", "--insecure", "--force", other.to_str().unwrap(), &r],
    ));
    assert_eq!(std::fs::read(&other).unwrap(), std::fs::read(&img).unwrap());
}

#[test]
fn a_tampered_or_truncated_blob_in_the_registry_is_refused_and_leaves_no_file() {
    let reg = TestRegistry::start();
    let root = TestRoot::new();
    let work = tempfile::tempdir().unwrap();
    let img = random_file(work.path(), "img.sif", 1 << 20);
    let r = reg.reference("lab/img:v1");
    ok(&reg.vessel(&root, &["push", "--insecure", img.to_str().unwrap(), &r]));
    let blob = reg.blob_path(&sha256(&img));
    let good = std::fs::read(&blob).unwrap();
    assert_eq!(good, std::fs::read(&img).unwrap(), "the blob is the image");

    let dest = work.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    let out = dest.join("img.sif");

    // Same size, one byte changed in the middle.
    let mut bad = good.clone();
    bad[good.len() / 2] ^= 0xff;
    std::fs::write(&blob, &bad).unwrap();
    let e = assert_error(
        &reg.vessel(&root, &["pull", "--insecure", out.to_str().unwrap(), &r]),
        255,
        &["registry", "lab/img", "digest", "nothing was written"],
    );
    assert!(e.contains(&sha256(&img)), "{e}");
    assert_eq!(entries(&dest), Vec::<String>::new());

    // Shorter than the manifest says.
    std::fs::write(&blob, &good[..good.len() - 4096]).unwrap();
    assert_error(
        &reg.vessel(&root, &["pull", "--insecure", out.to_str().unwrap(), &r]),
        255,
        &["registry", "lab/img"],
    );
    assert_eq!(entries(&dest), Vec::<String>::new());

    // Restored: the pull works again.
    std::fs::write(&blob, &good).unwrap();
    ok(&reg.vessel(&root, &["pull", "--insecure", out.to_str().unwrap(), &r]));
    assert_eq!(std::fs::read(&out).unwrap(), good);
}

#[test]
fn missing_tag_bad_reference_and_tls_errors_are_one_line_naming_the_registry() {
    let reg = TestRegistry::start();
    let root = TestRoot::new();
    let work = tempfile::tempdir().unwrap();
    let img = random_file(work.path(), "img.sif", 4096);
    ok(&reg.vessel(
        &root,
        &[
            "push",
            "--insecure",
            img.to_str().unwrap(),
            &reg.reference("lab/img:v1"),
        ],
    ));
    let out = work.path().join("o.sif");
    let o = out.to_str().unwrap();
    let e = assert_error(
        &reg.vessel(
            &root,
            &["pull", "--insecure", o, &reg.reference("lab/img:nope")],
        ),
        255,
        &[&reg.host, "lab/img", "no such tag \"nope\"", "404"],
    );
    assert!(!e.contains('\n'));
    assert_error(
        &reg.vessel(
            &root,
            &["pull", "--insecure", o, &reg.reference("lab/absent:v1")],
        ),
        255,
        &[&reg.host, "lab/absent", "404"],
    );
    assert_error(
        &reg.vessel(&root, &["pull", o, "oras://127.0.0.1:5000/Bad/Repo"]),
        255,
        &["registry reference", "Bad/Repo"],
    );
    // Without --insecure the client insists on TLS, which a plain HTTP
    // registry does not speak.
    assert_error(
        &reg.vessel(&root, &["pull", o, &reg.reference("lab/img:v1")]),
        255,
        &[&reg.host, "lab/img"],
    );
    assert!(!out.exists());
    // insecure_registries in vessel.toml: plain HTTP for the listed host only.
    let etc = root.path().join("etc/vessel");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(
        etc.join("vessel.toml"),
        format!("insecure_registries = [\"{}\"]\n", reg.host),
    )
    .unwrap();
    ok(&reg.vessel(&root, &["pull", o, &reg.reference("lab/img:v1")]));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&img).unwrap());
}

#[test]
fn eight_concurrent_pulls_into_one_dir_all_succeed_with_one_intact_file() {
    let reg = TestRegistry::start();
    let root = TestRoot::new();
    let work = tempfile::tempdir().unwrap();
    let img = random_file(work.path(), "big.sif", 8 << 20);
    let r = reg.reference("lab/big:v1");
    ok(&reg.vessel(&root, &["push", "--insecure", img.to_str().unwrap(), &r]));
    let dest = work.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    let out = dest.join("big.sif");
    let children: Vec<_> = (0..8)
        .map(|_| {
            root.vessel()
                .env("DOCKER_CONFIG", reg.docker_config())
                .args(["pull", "--insecure", out.to_str().unwrap(), &r])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(entries(&dest), ["big.sif"]);
    assert_eq!(sha256(&out), sha256(&img));
}

#[test]
#[ignore = "needs root"]
fn root_plugin_by_reference_inspect_install_signed_refuse_unsigned_and_pin() {
    require_root();
    let reg = TestRegistry::start();
    let root = TestRoot::new();
    root.trust_reference_key();
    let work = tempfile::tempdir().unwrap();
    let unsigned = compiled_plugin(CLI_PLUGIN);
    let signed = signed_copy(&unsigned, work.path(), None);
    let r_signed = reg.reference("plugins/cli:1");
    let r_unsigned = reg.reference("plugins/cli:unsigned");
    let pushed = ok(&reg.vessel(
        &root,
        &[
            "plugin",
            "push",
            "--insecure",
            signed.to_str().unwrap(),
            &r_signed,
        ],
    ));
    let digest = printed_digest(&pushed);
    ok(&reg.vessel(
        &root,
        &[
            "plugin",
            "push",
            "--insecure",
            unsigned.to_str().unwrap(),
            &r_unsigned,
        ],
    ));

    // Inspect reads the manifest's annotations (no library download).
    let info = ok(&reg.vessel(&root, &["plugin", "inspect", "--insecure", &r_signed]));
    assert!(
        info.contains("Name:") && info.contains("Callbacks:"),
        "{info}"
    );
    assert!(info.contains(&digest), "{info}");
    let (m, _) = reg.stored_manifest("plugins/cli", "1");
    let name = m["annotations"]["org.vessel.plugin.name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(info.contains(&name), "{info}");
    assert!(m["annotations"]["org.vessel.plugin.api-version"].is_string());

    // Unsigned: refused by the default policy, nothing installed.
    assert_error(
        &reg.vessel(
            &root,
            &["plugin", "install", "--yes", "--insecure", &r_unsigned],
        ),
        255,
        &["not signed"],
    );
    assert!(stdout(&root.run(&["plugin", "list"])).contains("There are no plugins installed."));

    // A pin that does not match: refused before anything is installed.
    let wrong = format!("sha256:{}", "1".repeat(64));
    assert_error(
        &reg.vessel(
            &root,
            &[
                "plugin",
                "install",
                "--yes",
                "--insecure",
                "--digest",
                &wrong,
                &r_signed,
            ],
        ),
        255,
        &["plugins/cli", "404"],
    );

    // Signed and pinned: installed, origin recorded.
    ok(&reg.vessel(
        &root,
        &[
            "plugin",
            "install",
            "--yes",
            "--insecure",
            "--digest",
            &digest,
            &r_signed,
        ],
    ));
    let list = ok(&root.run(&["plugin", "list", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(v[0]["name"], name);
    assert_eq!(v[0]["origin"]["digest"], digest);
    assert!(v[0]["origin"]["reference"]
        .as_str()
        .unwrap()
        .ends_with("plugins/cli:1"));
    // The wide listing shows the origin: reference pinned to the digest.
    let long = ok(&root.run(&["plugin", "list", "-l"]));
    assert!(long.lines().next().unwrap().ends_with("  ORIGIN"), "{long}");
    let row = long.lines().find(|l| l.contains(&name)).expect("a row");
    assert!(row.ends_with(&format!("plugins/cli:1@{digest}")), "{long}");
    let shown = ok(&root.run(&["plugin", "inspect", &name]));
    assert!(
        shown.contains("Origin:") && shown.contains(&digest),
        "{shown}"
    );

    // --upgrade from the tag works too; no temp files are left behind.
    ok(&reg.vessel(
        &root,
        &[
            "plugin",
            "install",
            "--yes",
            "--insecure",
            "--upgrade",
            &r_signed,
        ],
    ));
    let tmp_left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("vessel-fetch-"))
        .collect();
    assert!(tmp_left.is_empty(), "{tmp_left:?}");
}

/// Runs `openssl ARGS` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let o = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (apt-get install openssl)");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A registry over TLS (a certificate for 127.0.0.1 from a test CA) with
/// htpasswd Basic auth for `alice`/`wonderland`; returns it and the CA file.
fn tls_registry_with_auth() -> (TestRegistry, tempfile::TempDir) {
    let pki = tempfile::tempdir().unwrap();
    let d = pki.path();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=vessel test ca",
    ]);
    openssl(d, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(d, &csr);
    std::fs::write(d.join("ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "2",
            "-extfile",
            "ext",
        ],
    );
    let hash = bcrypt::hash("wonderland", 4).unwrap();
    std::fs::write(d.join("htpasswd"), format!("alice:{hash}\n")).unwrap();
    let extra = format!(
        "  tls:\n    certificate: {0}/srv.pem\n    key: {0}/srv.key\nauth:\n  htpasswd:\n    realm: vessel-test\n    path: {0}/htpasswd\n",
        d.display()
    );
    (TestRegistry::start_with(&extra), pki)
}

#[test]
fn tls_with_a_private_ca_and_basic_auth_login_wrong_password_and_logout() {
    let (reg, pki) = tls_registry_with_auth();
    let ca = pki.path().join("ca.pem");
    let ca = ca.to_str().unwrap();
    let root = TestRoot::new();
    let work = tempfile::tempdir().unwrap();
    let img = random_file(work.path(), "img.sif", 1 << 20);
    let r = reg.reference("team/img:v1");
    let img_s = img.to_str().unwrap();

    // The system roots do not know the test CA.
    assert_error(
        &reg.vessel(&root, &["push", img_s, &r]),
        255,
        &[&reg.host, "team/img"],
    );
    // Known CA, no credentials: the registry wants a login.
    assert_error(
        &reg.vessel(&root, &["push", "--ca", ca, img_s, &r]),
        255,
        &[&reg.host, "team/img", "login required", "401"],
    );

    // A wrong password is refused at login and nothing is stored.
    let login = |password: &str| {
        use std::io::Write;
        let mut c = root
            .vessel()
            .env("DOCKER_CONFIG", reg.docker_config())
            .args([
                "registry",
                "login",
                "--ca",
                ca,
                "--username",
                "alice",
                "--password-stdin",
                &reg.host,
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(c.stdin.take().unwrap(), "{password}").unwrap();
        c.wait_with_output().unwrap()
    };
    assert_error(&login("rabbit-hole"), 255, &[&reg.host, "alice", "401"]);
    let config = reg.docker_config().join("config.json");
    assert!(!config.exists());

    // The right one is stored in Docker's format, 0600.
    ok(&login("wonderland"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&config).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert!(v["auths"][&reg.host]["auth"].is_string(), "{v}");

    ok(&reg.vessel(&root, &["push", "--ca", ca, img_s, &r]));
    let out = work.path().join("out.sif");
    ok(&reg.vessel(&root, &["pull", "--ca", ca, out.to_str().unwrap(), &r]));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&img).unwrap());
    // --insecure means plain HTTP, which a TLS registry does not speak.
    assert_error(
        &reg.vessel(
            &root,
            &["pull", "--insecure", "--force", out.to_str().unwrap(), &r],
        ),
        255,
        &[&reg.host],
    );

    // Logout removes the entry; pulls need a login again.
    ok(&reg.vessel(&root, &["registry", "logout", &reg.host]));
    assert_error(
        &reg.vessel(
            &root,
            &["pull", "--ca", ca, "--force", out.to_str().unwrap(), &r],
        ),
        255,
        &["login required", "401"],
    );
}

/// Runs `c` and returns its output and peak RSS in KiB (from `wait4`).
// The child is reaped by wait4 (for its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn run_measured(c: &mut std::process::Command) -> (std::process::ExitStatus, String, u64) {
    use std::os::unix::process::ExitStatusExt;
    let child = c
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stderr = child.stderr.unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).ok();
        s
    });
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; both pointers are valid for the call.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid);
    let err = reader.join().unwrap();
    (
        std::process::ExitStatus::from_raw(status),
        err,
        usage.ru_maxrss as u64,
    )
}

#[test]
fn a_large_image_round_trips_with_memory_independent_of_its_size() {
    let reg = TestRegistry::start();
    let root = TestRoot::new();
    let work = tempfile::tempdir().unwrap();
    // 192 MiB: far more than the bound below, so buffering would show.
    let img = work.path().join("large.sif");
    {
        use std::io::Write;
        let block = std::fs::read(random_file(work.path(), "block", 1 << 20)).unwrap();
        let mut f = std::io::BufWriter::new(std::fs::File::create(&img).unwrap());
        for i in 0u32..192 {
            f.write_all(&i.to_le_bytes()).unwrap();
            f.write_all(&block[4..]).unwrap();
        }
    }
    let r = reg.reference("lab/large:v1");
    let bound_kib = 96 * 1024;
    let (st, err, push_rss) = run_measured(
        root.vessel()
            .env("DOCKER_CONFIG", reg.docker_config())
            .args(["push", "--insecure", img.to_str().unwrap(), &r]),
    );
    assert!(st.success(), "{err}");
    let out = work.path().join("out.sif");
    let (st, err, pull_rss) = run_measured(
        root.vessel()
            .env("DOCKER_CONFIG", reg.docker_config())
            .args(["pull", "--insecure", out.to_str().unwrap(), &r]),
    );
    assert!(st.success(), "{err}");
    assert_eq!(sha256(&out), sha256(&img));
    // A forked child's peak RSS starts at its parent's (this test binary,
    // whose size depends on the tests running beside it): measure a trivial
    // command the same way and bound what the transfers add to it.
    let (st, err, base_rss) = run_measured(root.vessel().arg("version"));
    assert!(st.success(), "{err}");
    let (push_rss, pull_rss) = (
        push_rss.saturating_sub(base_rss),
        pull_rss.saturating_sub(base_rss),
    );
    assert!(
        push_rss < bound_kib && pull_rss < bound_kib,
        "peak RSS above a trivial run: push {push_rss} KiB, pull {pull_rss} KiB for a 192 MiB image"
    );
}

#[test]
fn quiet_push_and_pull_print_nothing_and_still_transfer() {
    let reg = TestRegistry::start();
    let root = TestRoot::new();
    let work = tempfile::tempdir().unwrap();
    let img = random_file(work.path(), "q.sif", 1 << 20);
    let r = reg.reference("lab/quiet:v1");
    // -q before the command and after it: the same global flag.
    let o = reg.vessel(
        &root,
        &["-q", "push", "--insecure", img.to_str().unwrap(), &r],
    );
    assert_eq!((ok(&o).as_str(), stderr(&o).as_str()), ("", ""));
    let out = work.path().join("out.sif");
    let o = reg.vessel(
        &root,
        &["pull", "--quiet", "--insecure", out.to_str().unwrap(), &r],
    );
    assert_eq!((ok(&o).as_str(), stderr(&o).as_str()), ("", ""));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&img).unwrap());
    // Without -q the informational line is there.
    let o = reg.vessel(
        &root,
        &["pull", "--insecure", "--force", out.to_str().unwrap(), &r],
    );
    assert!(ok(&o).starts_with("Pulled "), "{}", stdout(&o));
}
