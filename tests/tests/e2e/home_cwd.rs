//! The caller's home and current directory (issue 16 items 1 and 2), as
//! root and as a normal user whose home and working dir exist only on the
//! host (below /var/tmp, which the test images do not have, so their mount
//! points are made on the underlay).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use vessel_tests::{
    as_nobody, assert_error, busybox_rootfs, nobody_has_userns, ok, path_str as p, require_root,
    session_dir, set_mode, stderr, RunEnv, NOBODY,
};

/// A busybox image (sandbox dir and SIF) with a marker in its /etc.
fn images() -> &'static [(&'static str, PathBuf); 2] {
    static I: OnceLock<[(&'static str, PathBuf); 2]> = OnceLock::new();
    I.get_or_init(|| {
        let dir = session_dir().join("home-cwd-fixtures");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        set_mode(&dir, 0o755);
        let root = dir.join("rootfs");
        busybox_rootfs(&root, &[]);
        std::fs::write(root.join("etc/image-marker"), "image etc\n").unwrap();
        let sif = dir.join("img.sif");
        let o = vessel_tests::TestRoot::new().run(&["build", p(&sif), p(&root)]);
        assert!(o.status.success(), "vessel build: {}", stderr(&o));
        [("sandbox", root), ("sif", sif)]
    })
}

fn sandbox() -> &'static Path {
    &images()[0].1
}

/// Who runs vessel: root, or `nobody` with a home of its own.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Root,
    User,
}

/// The callers to test: root, and nobody where it may make user namespaces.
fn callers() -> Vec<Who> {
    let mut v = vec![Who::Root];
    if nobody_has_userns() {
        v.push(Who::User);
    } else {
        eprintln!("nobody cannot create user namespaces here: testing root only");
    }
    v
}

/// A host tree only the host has: `BASE/home/alice` (with `.marker`) and
/// `BASE/work/proj` (with `script.sh`), owned by the caller.
struct HostTree {
    base: tempfile::TempDir,
    who: Who,
}

impl HostTree {
    fn new(who: Who) -> Self {
        let base = tempfile::Builder::new()
            .prefix("vessel-home-cwd-")
            .tempdir_in("/var/tmp")
            .unwrap();
        set_mode(base.path(), 0o755);
        let t = Self { base, who };
        for d in ["home/alice", "work/proj", "other"] {
            std::fs::create_dir_all(t.path(d)).unwrap();
        }
        std::fs::write(t.home().join(".marker"), "home file\n").unwrap();
        std::fs::write(t.path("other/.marker"), "other home\n").unwrap();
        let script = t.work().join("script.sh");
        std::fs::write(&script, "#!/bin/sh\necho \"script in $(pwd)\"\n").unwrap();
        set_mode(&script, 0o755);
        for d in ["home", "work", "other"] {
            let o = std::process::Command::new("chown")
                .args(["-R", &t.owner(), p(&t.path(d))])
                .output()
                .unwrap();
            assert!(o.status.success());
        }
        set_mode(&t.home(), 0o700);
        t
    }

    fn owner(&self) -> String {
        match self.who {
            Who::Root => "0:0".into(),
            Who::User => format!("{NOBODY}:{NOBODY}"),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.base.path().join(rel)
    }

    fn home(&self) -> PathBuf {
        self.path("home/alice")
    }

    fn work(&self) -> PathBuf {
        self.path("work/proj")
    }

    /// `vessel ARGS` from `cwd` with `HOME` = alice's home.
    fn run(&self, env: &RunEnv, cwd: &Path, args: &[&str]) -> Output {
        let mut c = env.cmd(args);
        if self.who == Who::User {
            as_nobody(&mut c);
        }
        c.current_dir(cwd).env("HOME", self.home());
        c.output().unwrap()
    }

    /// `vessel exec [FLAGS] IMAGE sh -c SCRIPT` from the work dir.
    fn sh(&self, env: &RunEnv, flags: &[&str], script: &str) -> Output {
        self.sh_in(env, &self.work(), flags, script)
    }

    fn sh_in(&self, env: &RunEnv, cwd: &Path, flags: &[&str], script: &str) -> Output {
        let mut args = vec!["exec"];
        args.extend(flags);
        args.extend([p(sandbox()), "sh", "-c", script]);
        self.run(env, cwd, &args)
    }
}

#[test]
#[ignore = "needs root"]
fn root_home_and_cwd_are_bound_and_cwd_is_where_the_command_starts() {
    require_root();
    let env = RunEnv::new("vessel-home-cwd-test-");
    for who in callers() {
        let t = HostTree::new(who);
        for (kind, img) in images() {
            let script = "pwd; echo \"HOME=$HOME\"; cat \"$HOME/.marker\"; ./script.sh; \
                          touch made-inside";
            let o = t.run(&env, &t.work(), &["exec", p(img), "sh", "-c", script]);
            let out = ok(&o);
            assert_eq!(
                out,
                format!(
                    "{w}\nHOME={h}\nhome file\nscript in {w}\n",
                    w = t.work().display(),
                    h = t.home().display()
                ),
                "{who:?} {kind}"
            );
            // The cwd is the host's: what the command made is there.
            let made = t.work().join("made-inside");
            let owner = std::fs::metadata(&made).unwrap().uid();
            assert_eq!(owner, if who == Who::Root { 0 } else { NOBODY });
            std::fs::remove_file(made).unwrap();
            // `vessel run` too, from a dir inside the home.
            let o = t.run(
                &env,
                &t.home(),
                &["run", p(img), "sh", "-c", "pwd; cat .marker"],
            );
            assert_eq!(
                ok(&o),
                format!("{}\nhome file\n", t.home().display()),
                "{who:?} {kind}"
            );
        }
        // At -v the working directory and its reason are logged.
        let o = t.sh(&env, &["--no-mount", "cwd"], "pwd");
        assert_eq!(ok(&o), format!("{}\n", t.home().display()));
        let o = t.run(
            &env,
            &t.work(),
            &["-v", "exec", "--no-mount", "cwd", p(sandbox()), "true"],
        );
        let err = stderr(&o);
        assert!(
            err.contains(&format!(
                "working directory {} (the home directory): {} (the current directory) is not in the container",
                t.home().display(),
                t.work().display()
            )),
            "{who:?}: {err}"
        );
    }
    assert!(env.work_dirs_left().is_empty());
}

#[test]
#[ignore = "needs root"]
fn root_no_home_home_spec_no_mount_and_pwd() {
    require_root();
    let env = RunEnv::new("vessel-home-cwd-test-");
    for who in callers() {
        let t = HostTree::new(who);
        let (h, w) = (t.home(), t.work());
        // --no-home: HOME is still the caller's, but nothing is there.
        let o = t.sh(
            &env,
            &["--no-home"],
            "echo $HOME; test -e $HOME || echo no-home; pwd",
        );
        assert_eq!(
            ok(&o),
            format!("{}\nno-home\n{}\n", h.display(), w.display()),
            "{who:?}"
        );
        let o = t.sh(
            &env,
            &["--no-mount", "home"],
            "test -e $HOME || echo no-home",
        );
        assert_eq!(ok(&o), "no-home\n", "{who:?}");
        // --home SRC:DST binds SRC at DST, which becomes HOME.
        let other = t.path("other");
        let spec = format!("{}:/home/bob", other.display());
        let o = t.sh(&env, &["--home", &spec], "echo $HOME; cat ~/.marker");
        assert_eq!(ok(&o), "/home/bob\nother home\n", "{who:?}");
        let o = t.sh(
            &env,
            &["--home", &spec, "--env", &format!("A={}", h.display())],
            "test -e $A || echo alice-not-there",
        );
        assert_eq!(ok(&o), "alice-not-there\n", "{who:?}");
        // --home SRC: at its own path.
        let o = t.sh(
            &env,
            &["--home", p(&other)],
            "echo $HOME; cat $HOME/.marker",
        );
        assert_eq!(
            ok(&o),
            format!("{}\nother home\n", other.display()),
            "{who:?}"
        );
        // A missing --home source is the caller's error.
        let o = t.sh(&env, &["--home", "/nonexistent/h:/home/x"], "true");
        assert_error(&o, 255, &["/nonexistent/h", "home mount"]);
        // --no-mount cwd: the cwd is not there; the command starts in HOME.
        let o = t.sh(
            &env,
            &["--no-mount", "cwd", "--env", &format!("W={}", w.display())],
            "pwd; test -e $W || echo no-cwd",
        );
        assert_eq!(ok(&o), format!("{}\nno-cwd\n", h.display()), "{who:?}");
        // Neither: the root.
        let o = t.sh(&env, &["--no-mount", "home,cwd"], "pwd");
        assert_eq!(ok(&o), "/\n", "{who:?}");
        // --pwd wins, and must exist.
        let o = t.sh(&env, &["--pwd", "/etc"], "pwd; cat image-marker");
        assert_eq!(ok(&o), "/etc\nimage etc\n", "{who:?}");
        let o = t.sh(&env, &["--pwd", "/nonexistent"], "true");
        assert_error(&o, 255, &["working directory /nonexistent"]);
        // Unknown --no-mount names are refused.
        let o = t.sh(&env, &["--no-mount", "cwd,bogus"], "true");
        assert_error(&o, 255, &["--no-mount \"bogus\"", "expected home or cwd"]);
    }
    assert!(env.work_dirs_left().is_empty());
}

#[test]
#[ignore = "needs root"]
fn root_contain_gives_an_empty_home_and_fakeroot_a_root_home() {
    require_root();
    let env = RunEnv::new("vessel-home-cwd-test-");
    for who in callers() {
        let t = HostTree::new(who);
        let (h, w) = (t.home(), t.work());
        // --contain: an empty, writable home; the cwd is not bound, so the
        // command starts in that home.
        let o = t.sh(
            &env,
            &["--contain", "--env", &format!("W={}", w.display())],
            "pwd; ls -A $HOME | wc -l; touch $HOME/new && echo writable; \
             test -e $W || echo no-cwd",
        );
        assert_eq!(
            ok(&o).split_whitespace().collect::<Vec<_>>(),
            [p(&h), "0", "writable", "no-cwd"],
            "{who:?}"
        );
        assert!(
            !h.join("new").exists(),
            "{who:?}: the host home was written"
        );
        // --contain --home SRC still binds SRC (Apptainer's rule).
        let o = t.sh(
            &env,
            &["--contain", "--home", p(&t.path("other"))],
            "cat $HOME/.marker",
        );
        assert_eq!(ok(&o), "other home\n", "{who:?}");
        // --fakeroot: HOME=/root (the image's), the host home not bound;
        // the cwd still is.
        let o = t.sh(
            &env,
            &["--fakeroot", "--env", &format!("A={}", h.display())],
            "echo $HOME; id -u; test -e $A || echo no-host-home; pwd",
        );
        assert_eq!(
            ok(&o),
            format!("/root\n0\nno-host-home\n{}\n", w.display()),
            "{who:?}"
        );
        // ... unless asked for with --home.
        let o = t.sh(
            &env,
            &["--fakeroot", "--home", p(&h)],
            "echo $HOME; cat $HOME/.marker",
        );
        assert_eq!(ok(&o), format!("{}\nhome file\n", h.display()), "{who:?}");
    }
    assert!(env.work_dirs_left().is_empty());
}

#[test]
#[ignore = "needs root"]
fn root_a_system_dir_cwd_is_not_bound() {
    require_root();
    let env = RunEnv::new("vessel-home-cwd-test-");
    for who in callers() {
        let t = HostTree::new(who);
        // The image has no /usr: not bound from the host, the command
        // starts in HOME instead.
        let o = t.sh_in(
            &env,
            Path::new("/usr"),
            &[],
            "pwd; test -e /usr || echo no-usr",
        );
        assert_eq!(
            ok(&o),
            format!("{}\nno-usr\n", t.home().display()),
            "{who:?}"
        );
        // The image's /etc, not the host's.
        let o = t.sh_in(
            &env,
            Path::new("/etc"),
            &[],
            "pwd; cat image-marker; test -e os-release || echo image-etc",
        );
        assert_eq!(ok(&o), "/etc\nimage etc\nimage-etc\n", "{who:?}");
    }
}

#[test]
#[ignore = "needs root"]
fn root_a_home_symlink_planted_in_tmp_does_not_reach_the_container() {
    require_root();
    let env = RunEnv::new("vessel-home-cwd-test-");
    // nobody owns a dir in /tmp and plants `home -> /etc` in it; root runs
    // with HOME pointing there (sudo keeping a user's HOME, a job script).
    let evil = tempfile::Builder::new()
        .prefix("vessel-home-plant-")
        .tempdir()
        .unwrap();
    set_mode(evil.path(), 0o755);
    std::os::unix::fs::chown(evil.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    let home = evil.path().join("home");
    let mut c = std::process::Command::new("ln");
    c.args(["-s", "/etc", p(&home)]);
    as_nobody(&mut c);
    assert!(c.status().unwrap().success());
    let t = HostTree::new(Who::Root);
    let o = env
        .cmd(&[
            "exec",
            p(sandbox()),
            "sh",
            "-c",
            "cat /etc/image-marker; test -e /etc/os-release || echo image-etc",
        ])
        .current_dir(t.work())
        .env("HOME", &home)
        .output()
        .unwrap();
    // The image's /etc stays: the host's is not bound over it.
    assert_eq!(ok(&o), "image etc\nimage-etc\n", "{}", stderr(&o));
    assert!(stderr(&o).contains("not mounting the home directory"));
    // Asked for explicitly, it is an error naming the path.
    let o = env
        .cmd(&["exec", "--home", p(&home), p(sandbox()), "true"])
        .current_dir(t.work())
        .output()
        .unwrap();
    assert_error(&o, 255, &[p(&home), "host's /tmp"]);
    assert!(env.work_dirs_left().is_empty());
}
