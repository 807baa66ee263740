//! The Debian package (issue 10, item 7). `scripts/deb` builds it once per
//! test process (a release build: minutes the first time); the tests read
//! it with `dpkg-deb` and install it into scratch roots with `dpkg --root`,
//! so the machine's own /usr and dpkg database are never touched. Then the
//! packaged binary, pages and completion scripts are used as an admin would.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use vessel_tests::{
    busybox_rootfs, compiled_plugin, path_str as p, require_root, run_ok, session_dir, set_mode,
    stderr, stdout, workspace_root, TestRoot,
};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The .deb `scripts/deb` built, once per process.
fn deb() -> &'static Path {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(|| {
        let out = session_dir().join("deb");
        let o = Command::new(workspace_root().join("scripts/deb"))
            .arg(&out)
            .env_remove("VESSEL_COMPLETE")
            .output()
            .expect("run scripts/deb");
        assert!(
            o.status.success(),
            "scripts/deb failed:\n{}\n{}",
            stdout(&o),
            stderr(&o)
        );
        let debs: Vec<PathBuf> = std::fs::read_dir(&out)
            .expect("scripts/deb output dir")
            .map(|e| e.expect("dir entry").path())
            .filter(|f| f.extension().is_some_and(|x| x == "deb"))
            .collect();
        assert_eq!(debs.len(), 1, "{debs:?}");
        // The last line scripts/deb prints is the package's path.
        let last = stdout(&o).lines().last().unwrap_or_default().to_owned();
        assert_eq!(Path::new(last.trim()), debs[0], "{}", stdout(&o));
        debs[0].clone()
    })
}

fn dpkg_arch() -> String {
    let o = run_ok(Command::new("dpkg").arg("--print-architecture"));
    stdout(&o).trim().to_owned()
}

/// The `dpkg-deb -I PKG FIELD` value.
fn field(name: &str) -> String {
    let o = run_ok(Command::new("dpkg-deb").arg("-f").arg(deb()).arg(name));
    stdout(&o).trim().to_owned()
}

/// Every built-in command's man page name (`vessel-plugin-install`), from
/// the help of the binary under test: `vessel --help` and each command's.
fn builtin_pages(vessel: &Path, root: &Path) -> BTreeSet<String> {
    fn subcommands(help: &str) -> Vec<String> {
        help.lines()
            .skip_while(|l| !l.starts_with("Commands:"))
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            // Not the continuation lines of a wrapped description.
            .filter(|l| !l.starts_with("   "))
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .filter(|c| c != "help")
            .collect()
    }
    let mut pages = BTreeSet::new();
    let mut stack = vec![vec![]];
    while let Some(path) = stack.pop() {
        let mut c = Command::new(vessel);
        c.env("VESSEL_ROOT", root).args(&path).arg("--help");
        let help = stdout(&run_ok(&mut c));
        pages.insert(
            std::iter::once("vessel".to_owned())
                .chain(path.iter().cloned())
                .collect::<Vec<_>>()
                .join("-"),
        );
        for sub in subcommands(&help) {
            let mut next = path.clone();
            next.push(sub);
            stack.push(next);
        }
    }
    pages
}

/// A scratch root with an empty dpkg database, removed when dropped.
struct DpkgRoot {
    dir: tempfile::TempDir,
}

impl DpkgRoot {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("vessel-dpkg-root-")
            .tempdir()
            .expect("tempdir");
        set_mode(dir.path(), 0o755);
        let admin = dir.path().join("var/lib/dpkg");
        for d in ["info", "updates", "triggers"] {
            std::fs::create_dir_all(admin.join(d)).expect("dpkg admin dir");
        }
        std::fs::write(admin.join("status"), "").expect("dpkg status");
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `dpkg --root=ROOT ARGS` (its log goes nowhere, not to the host's).
    fn dpkg(&self, args: &[&str]) -> Output {
        run_ok(
            Command::new("dpkg")
                .arg(format!("--root={}", p(self.path())))
                .arg("--log=/dev/null")
                .args(args),
        )
    }

    fn install(&self) {
        // The scratch database knows no libc6 or squashfs-tools: the host
        // has them, which is all the binary needs here.
        self.dpkg(&["--force-depends", "-i", p(deb())]);
    }

    /// Every path under the root except dpkg's own database.
    fn files(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut stack = vec![self.path().to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("read_dir") {
                let path = e.expect("entry").path();
                let rel = format!("/{}", p(path.strip_prefix(self.path()).unwrap()));
                if rel == "/var/lib/dpkg" || "/var/lib/dpkg".starts_with(&format!("{rel}/")) {
                    if rel != "/var/lib/dpkg" {
                        stack.push(path);
                    }
                    continue;
                }
                if path.is_dir() && !path.is_symlink() {
                    stack.push(path.clone());
                }
                out.insert(rel);
            }
        }
        out
    }

    fn vessel(&self) -> PathBuf {
        self.path().join("usr/bin/vessel")
    }
}

#[test]
fn deb_holds_the_binary_pages_completions_and_metadata() {
    let deb = deb();
    assert_eq!(
        deb.file_name().unwrap().to_str().unwrap(),
        format!("vessel_{VERSION}_{}.deb", dpkg_arch())
    );
    assert_eq!(field("Package"), "vessel");
    assert_eq!(field("Version"), VERSION);
    assert_eq!(field("Section"), "admin");
    let depends = field("Depends");
    for d in ["libc6", "squashfs-tools"] {
        assert!(depends.contains(d), "Depends: {depends}");
    }
    let recommends = field("Recommends");
    assert!(
        recommends.contains("squashfuse"),
        "Recommends: {recommends}"
    );
    let info = stdout(&run_ok(Command::new("dpkg-deb").arg("-I").arg(deb)));
    assert!(info.contains("conffiles"), "{info}");

    // `dpkg-deb -c`: mode, owner, ..., path.
    let listing = stdout(&run_ok(Command::new("dpkg-deb").arg("-c").arg(deb)));
    let mut files = BTreeSet::new();
    for line in listing.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (mode, owner, path) = (cols[0], cols[1], cols[cols.len() - 1]);
        assert!(owner == "0/0" || owner == "root/root", "{line}");
        // Nothing group- or world-writable.
        assert_eq!(&mode[5..6], "-", "{line}");
        assert_eq!(&mode[8..9], "-", "{line}");
        files.insert(path.trim_start_matches('.').to_owned());
        if path.ends_with("/usr/bin/vessel") {
            assert_eq!(mode, "-rwxr-xr-x", "{line}");
        } else if !mode.starts_with('d') {
            assert_eq!(mode, "-rw-r--r--", "{line}");
        }
    }
    for want in [
        "/usr/bin/vessel",
        "/usr/share/bash-completion/completions/vessel",
        "/usr/share/zsh/vendor-completions/_vessel",
        "/usr/share/fish/vendor_completions.d/vessel.fish",
        "/usr/share/doc/vessel/README.md",
        "/usr/share/doc/vessel/copyright",
        "/etc/vessel/vessel.toml",
        "/usr/share/man/man1/vessel.1.gz",
        "/usr/share/man/man1/vessel-exec.1.gz",
        "/usr/share/man/man1/vessel-plugin-install.1.gz",
    ] {
        assert!(files.contains(want), "{want} not in:\n{listing}");
    }
    // One gzipped page per built-in command, and no other page.
    let pages: BTreeSet<String> = files
        .iter()
        .filter_map(|f| f.strip_prefix("/usr/share/man/man1/"))
        .filter(|f| !f.is_empty())
        .map(|f| {
            f.strip_suffix(".1.gz")
                .unwrap_or_else(|| panic!("not a gzipped section-1 page: {f}"))
                .to_owned()
        })
        .collect();
    let root = TestRoot::new();
    assert_eq!(
        pages,
        builtin_pages(vessel_tests::vessel_bin(), root.path())
    );
}

#[test]
#[ignore = "needs root"]
fn root_deb_installs_runs_a_container_and_removes_cleanly() {
    require_root();
    let r = DpkgRoot::new();
    let before = r.files();
    r.install();
    let installed = r.files();

    // dpkg's list is exactly what appeared.
    let listed: BTreeSet<String> = stdout(&r.dpkg(&["-L", "vessel"]))
        .lines()
        .filter(|l| !l.is_empty() && *l != "/.")
        .map(str::to_owned)
        .collect();
    let added: BTreeSet<String> = installed.difference(&before).cloned().collect();
    let listed_new: BTreeSet<String> = listed
        .iter()
        .filter(|l| !before.contains(*l))
        .cloned()
        .collect();
    assert_eq!(added, listed_new);
    let conffiles = std::fs::read_to_string(r.path().join("var/lib/dpkg/info/vessel.conffiles"))
        .expect("conffiles");
    assert_eq!(conffiles.trim(), "/etc/vessel/vessel.toml");

    // The packaged binary, with the packaged example config in its root.
    let v = r.vessel();
    let o = run_ok(Command::new(&v).env("VESSEL_ROOT", r.path()).arg("version"));
    assert_eq!(stdout(&o), format!("vessel version {VERSION}\n"));
    run_ok(
        Command::new(&v)
            .env("VESSEL_ROOT", r.path())
            .args(["plugin", "list"]),
    );
    // Every key the example shows, uncommented, is a key vessel accepts.
    let example = std::fs::read_to_string(r.path().join("etc/vessel/vessel.toml")).unwrap();
    let uncommented: String = example
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if rest.contains(" = ") && !rest.starts_with(' ') => rest,
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(uncommented.lines().filter(|l| l.contains(" = ")).count() >= 5);
    let other = TestRoot::new();
    std::fs::create_dir_all(other.path().join("etc/vessel")).unwrap();
    std::fs::write(other.path().join("etc/vessel/vessel.toml"), &uncommented).unwrap();
    let o = Command::new(&v)
        .env("VESSEL_ROOT", other.path())
        .args(["plugin", "list"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{uncommented}\n{}", stderr(&o));

    // `man vessel-exec` finds and renders the packaged page.
    let o = run_ok(
        Command::new("man")
            .arg("vessel-exec")
            .env("MANPATH", r.path().join("usr/share/man"))
            .env("MANWIDTH", "80")
            .env("MANPAGER", "cat")
            .env("PAGER", "cat"),
    );
    let page = stdout(&o);
    for want in [
        "vessel-exec - Run a command in a container",
        "--bind",
        "SEE ALSO",
    ] {
        assert!(page.contains(want), "{want} not in:\n{page}");
    }

    // A container, run by the packaged binary.
    let img = tempfile::tempdir().unwrap();
    set_mode(img.path(), 0o755);
    let rootfs = img.path().join("rootfs");
    busybox_rootfs(&rootfs, &[]);
    let o = run_ok(Command::new(&v).env("VESSEL_ROOT", r.path()).args([
        "exec",
        p(&rootfs),
        "/bin/echo",
        "hello from the package",
    ]));
    assert_eq!(stdout(&o), "hello from the package\n");

    // Remove keeps only the admin's config (a conffile); purge removes it.
    r.dpkg(&["-r", "vessel"]);
    let after_remove: BTreeSet<String> = r.files().difference(&before).cloned().collect();
    assert_eq!(
        after_remove,
        ["/etc", "/etc/vessel", "/etc/vessel/vessel.toml"]
            .map(str::to_owned)
            .into(),
    );
    r.dpkg(&["-P", "vessel"]);
    assert_eq!(r.files(), before);
}

/// What bash offers for `line` (a trailing space completes a new word),
/// through the packaged script, with the packaged vessel first on PATH.
fn bash_complete(r: &DpkgRoot, vessel_root: &Path, line: &str) -> Vec<String> {
    let script = r#"
source "$PKG/usr/share/bash-completion/completions/vessel"
read -ra COMP_WORDS <<< "$LINE"
if [[ "$LINE" == *" " ]]; then COMP_WORDS+=(""); fi
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE=$LINE
COMP_POINT=${#LINE}
f=$(complete -p vessel | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
"$f" vessel "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}" 2>/dev/null
printf '%s\n' "${COMPREPLY[@]}"
"#;
    let o = run_ok(
        Command::new("bash")
            .arg("-c")
            .arg(script)
            .env("PKG", r.path())
            .env("LINE", line)
            .env("VESSEL_ROOT", vessel_root)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    p(&r.path().join("usr/bin")),
                    std::env::var("PATH").unwrap_or_default()
                ),
            ),
    );
    stdout(&o)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
#[ignore = "needs root"]
fn root_deb_completions_offer_builtins_and_installed_plugin_names() {
    require_root();
    let r = DpkgRoot::new();
    r.install();
    // A plugin installed by the packaged binary.
    let root = TestRoot::new();
    let img = compiled_plugin("examples/plugins/cli-plugin");
    run_ok(
        Command::new(r.vessel())
            .env("VESSEL_ROOT", root.path())
            .args(["plugin", "install", "--allow-unsigned", "--yes", p(&img)]),
    );

    // bash: built-in commands, plugin subcommands, installed plugin names
    // (for inspect, enable, disable, uninstall, verify), plugin commands.
    assert_eq!(bash_complete(&r, root.path(), "vessel pl"), ["plugin"]);
    let subs = bash_complete(&r, root.path(), "vessel plugin ");
    for s in [
        "inspect",
        "install",
        "enable",
        "disable",
        "uninstall",
        "list",
    ] {
        assert!(subs.contains(&s.to_owned()), "{s}: {subs:?}");
    }
    for sub in ["inspect", "enable", "disable", "uninstall", "verify"] {
        let got = bash_complete(
            &r,
            root.path(),
            &format!("vessel plugin {sub} example.com/"),
        );
        assert_eq!(got, ["example.com/cli-plugin"], "{sub}");
    }
    let got = bash_complete(&r, root.path(), "vessel test-");
    assert_eq!(got, ["test-cmd"]);
    // An empty store: only the flags, no names and no error text.
    let empty = TestRoot::new();
    let got = bash_complete(&r, empty.path(), "vessel plugin enable ");
    assert!(got.iter().all(|v| v.starts_with("--")), "{got:?}");
    assert!(got.contains(&"--help".to_owned()), "{got:?}");

    // fish: the same answers through its vendor script.
    let fish = run_ok(
        Command::new("fish")
            .args(["--no-config", "-c"])
            .arg(format!(
                "source {}; complete -C 'vessel plugin inspect example.com/'",
                p(&r.path()
                    .join("usr/share/fish/vendor_completions.d/vessel.fish"))
            ))
            .env("VESSEL_ROOT", root.path())
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    p(&r.path().join("usr/bin")),
                    std::env::var("PATH").unwrap_or_default()
                ),
            ),
    );
    let fish = stdout(&fish);
    assert!(
        fish.lines()
            .any(|l| l.starts_with("example.com/cli-plugin")),
        "{fish}"
    );

    // zsh: the vendor file parses and compinit binds it to `vessel`.
    let zsh_dir = r.path().join("usr/share/zsh/vendor-completions");
    run_ok(Command::new("zsh").arg("-n").arg(zsh_dir.join("_vessel")));
    let o = run_ok(Command::new("zsh").args(["-f", "-c"]).arg(format!(
        "fpath=({} $fpath); autoload -U compinit; compinit -u -D; print -r -- ${{_comps[vessel]}}",
        p(&zsh_dir)
    )));
    assert_eq!(stdout(&o).trim(), "_vessel");
}
