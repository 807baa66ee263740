//! `plugin compile` is reproducible: the same plugin source compiled in two
//! copies of the vessel tree at different absolute paths, under different
//! `HOME`s and at different times, gives the same library and the same image
//! bytes; `plugin verify-build` says so, and names the first difference
//! after a one-character change. A plugin's own lock-file pins are kept.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use vessel_tests::{assert_error, ok, snapshot, stdout, vessel_bin, workspace_root};

const LIB_RS: &str = r#"
use vessel_plugin_api::{Command, Plugin};

pub fn build() -> Plugin {
    Plugin::new("example.com/repro")
        .version("0.1.0")
        .description("built twice")
        .command(Command::new("repro"), |inv| {
            use std::io::Write;
            writeln!(inv.stdout(), "repro at {}", file!())?;
            Ok(0)
        })
}

vessel_plugin_api::export_plugin!(build);
"#;

/// Copies the source tree (not build output, not git metadata) to `to`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let name = e.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        let ft = e.file_type().unwrap();
        let dst = to.join(&name);
        if ft.is_dir() {
            copy_tree(&e.path(), &dst);
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).unwrap(), &dst).unwrap();
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

/// `vessel ARGS` with `home` as HOME (cargo and rustup keep their real
/// dirs: the registry cache is not what is being tested).
fn vessel(home: &Path, args: &[&str]) -> Output {
    let real_home = PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()));
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| real_home.join(".cargo"));
    let rustup_home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| real_home.join(".rustup"));
    Command::new(vessel_bin())
        .args(args)
        .env("HOME", home)
        .env("CARGO_HOME", cargo_home)
        .env("RUSTUP_HOME", rustup_home)
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("VESSEL_SOURCE_TREE")
        .output()
        .expect("run vessel")
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A copy of the tree at `tree` with the test plugin in it; returns the
/// plugin dir.
fn tree_with_plugin(tree: &Path, home: &Path) -> PathBuf {
    copy_tree(&workspace_root(), tree);
    let dir = tree.join("plugins/repro");
    ok(&vessel(
        home,
        &[
            "plugin",
            "create",
            "--source-tree",
            p(tree),
            p(&dir),
            "example.com/repro",
        ],
    ));
    std::fs::write(dir.join("src/lib.rs"), LIB_RS).unwrap();
    dir
}

fn sha256_of_manifest(home: &Path, image: &Path) -> String {
    let json = ok(&vessel(home, &["plugin", "inspect", "--json", p(image)]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["manifest"]["sha256"].as_str().unwrap().to_owned()
}

#[test]
fn plugin_compile_is_bit_identical_across_trees_homes_and_time() {
    let base = tempfile::tempdir().unwrap();
    let (tree_a, tree_b) = (
        base.path().join("a/vessel"),
        base.path().join("bb/x/vessel-two"),
    );
    let (home_a, home_b) = (base.path().join("home-a"), base.path().join("home-bb"));
    for h in [&home_a, &home_b] {
        std::fs::create_dir_all(h).unwrap();
    }
    let dir_a = tree_with_plugin(&tree_a, &home_a);
    let dir_b = tree_with_plugin(&tree_b, &home_b);

    let img_a = base.path().join("a.sif");
    let img_b = base.path().join("b.sif");
    let compile = |home: &Path, tree: &Path, dir: &Path, out: &Path| {
        ok(&vessel(
            home,
            &[
                "plugin",
                "compile",
                "--source-tree",
                p(tree),
                "--out",
                p(out),
                p(dir),
            ],
        ))
    };
    compile(&home_a, &tree_a, &dir_a, &img_a);
    // Seconds apart: the image's times come from the source, not the clock.
    std::thread::sleep(std::time::Duration::from_secs(2));
    compile(&home_b, &tree_b, &dir_b, &img_b);

    let sha = sha256_of_manifest(&home_a, &img_a);
    assert_eq!(
        sha,
        sha256_of_manifest(&home_b, &img_b),
        "plugin.so differs"
    );
    assert!(
        std::fs::read(&img_a).unwrap() == std::fs::read(&img_b).unwrap(),
        "the images differ"
    );
    // The build machine's paths are not in the library.
    let lib = std::fs::read(tree_a.join("target/plugin-build/release/librepro.so")).unwrap();
    let needle = tree_a.to_str().unwrap().as_bytes();
    assert!(
        !lib.windows(needle.len()).any(|w| w == needle),
        "the library contains the tree's path"
    );
    let inspect = ok(&vessel(&home_a, &["plugin", "inspect", p(&img_a)]));
    assert!(
        inspect.contains("Source:") && inspect.contains("Built in:"),
        "{inspect}"
    );

    // verify-build rebuilds from the other tree's source, without writing to it.
    let before = snapshot(&dir_b);
    let o = vessel(
        &home_b,
        &[
            "plugin",
            "verify-build",
            "--source-tree",
            p(&tree_b),
            p(&img_a),
            p(&dir_b),
        ],
    );
    assert_eq!(stdout(&o), format!("reproduced: {sha}\n"), "{o:?}");
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(snapshot(&dir_b), before, "verify-build wrote into DIR");

    // One character of source changed: the difference is named, exit 1.
    let lib_rs = dir_b.join("src/lib.rs");
    let changed = std::fs::read_to_string(&lib_rs)
        .unwrap()
        .replace("twice", "twicE");
    std::fs::write(&lib_rs, changed).unwrap();
    let o = vessel(
        &home_b,
        &[
            "plugin",
            "verify-build",
            "--source-tree",
            p(&tree_b),
            p(&img_a),
            p(&dir_b),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stdout(&o).starts_with("source hash differs"), "{o:?}");

    // A tree whose plugin API is another major version is refused.
    let abi_toml = tree_b.join("plugin-api/abi/Cargo.toml");
    let text = std::fs::read_to_string(&abi_toml).unwrap();
    std::fs::write(
        &abi_toml,
        text.replacen("version = \"1.", "version = \"2.", 1),
    )
    .unwrap();
    let o = vessel(
        &home_b,
        &["plugin", "compile", "--source-tree", p(&tree_b), p(&dir_b)],
    );
    assert_error(&o, 255, &["plugin API 2.", "this vessel has 1."]);
}

#[test]
fn a_plugins_own_lock_pins_are_kept() {
    let base = tempfile::tempdir().unwrap();
    let home = base.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let tree = workspace_root();
    let dir = tree
        .join("target/test-plugins")
        .join(format!("pinned-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    ok(&vessel(
        &home,
        &["plugin", "create", p(&dir), "example.com/pinned"],
    ));
    let toml = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        text.replace("[dependencies]\n", "[dependencies]\nhumantime = \"2\"\n"),
    )
    .unwrap();
    // A first compile resolves humantime; the author then pins an older one.
    let img = dir.join("pinned.sif");
    ok(&vessel(
        &home,
        &["plugin", "compile", "--out", p(&img), p(&dir)],
    ));
    let pin = Command::new("cargo")
        .args(["update", "-p", "humantime", "--precise", "2.1.0"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(pin.status.success(), "{pin:?}");
    ok(&vessel(
        &home,
        &["plugin", "compile", "--out", p(&img), p(&dir)],
    ));
    let lock = std::fs::read_to_string(dir.join("Cargo.lock")).unwrap();
    assert!(
        lock.contains("name = \"humantime\"\nversion = \"2.1.0\""),
        "the pin was lost:\n{lock}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
