//! Apptainer's everyday semantics (issue 16) on an Apptainer-style image: a
//! busybox rootfs with `/.singularity.d/runscript` and
//! `/.singularity.d/env/*.sh`, run as a sandbox dir and as a SIF.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use vessel_tests::{
    busybox_rootfs, nobody_has_userns, path_str as p, require_root, session_dir, set_mode, stderr,
    stdout, RunEnv,
};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn write_exec(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    set_mode(path, 0o755);
}

/// The image: `%environment` puts /opt/app/bin on PATH and sets LEVEL and
/// IMG_VAR; 01-base.sh runs first (lexical order) and 90 appends to ORDER.
fn images() -> &'static [(&'static str, PathBuf); 2] {
    static I: OnceLock<[(&'static str, PathBuf); 2]> = OnceLock::new();
    I.get_or_init(|| {
        let dir = session_dir().join("apptainer-fixtures");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        set_mode(&dir, 0o755);
        let root = dir.join("rootfs");
        busybox_rootfs(&root, &[]);
        std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
        let sd = root.join(".singularity.d");
        write_exec(
            &sd.join("runscript"),
            "#!/bin/sh\necho \"runscript: $* $IMG_VAR\"\n",
        );
        write_exec(&sd.join("env/01-base.sh"), "export ORDER=first\n");
        write_exec(
            &sd.join("env/90-environment.sh"),
            concat!(
                "export PATH=\"/opt/app/bin:$PATH\"\n",
                "export LEVEL=image\n",
                "export IMG_VAR=image\n",
                "export ORDER=\"$ORDER,second\"\n",
            ),
        );
        std::fs::write(sd.join("env/README"), "not a script: never sourced\n").unwrap();
        write_exec(&root.join("opt/app/bin/appcmd"), "#!/bin/sh\necho appcmd\n");
        let sif = dir.join("apptainer.sif");
        let o = vessel_tests::TestRoot::new().run(&["build", p(&sif), p(&root)]);
        assert!(o.status.success(), "vessel build: {}", stderr(&o));
        [("sandbox", root), ("sif", sif)]
    })
}

/// `vessel exec` with a clean host environment plus `vars`.
fn exec(env: &RunEnv, vars: &[(&str, &str)], args: &[&str]) -> (String, String, Option<i32>) {
    let mut c = env.cmd(args);
    c.env_clear()
        .env("TMPDIR", env.tmp.path())
        .env("VESSEL_ROOT", env.root.path())
        .env("PATH", "/host/only/bin:/usr/bin:/bin")
        .env("HOME", "/root");
    for (k, v) in vars {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    (stdout(&o), stderr(&o), o.status.code())
}

/// A script printing `NAME=value` (or `unset`) for each of `vars`.
fn show(vars: &str) -> String {
    let fields: Vec<String> = vars
        .split(',')
        .map(|v| format!("{v}=${{{v}-unset}}"))
        .collect();
    format!("echo \"{}\"", fields.join(" "))
}

#[test]
#[ignore = "needs root"]
fn root_apptainer_env_precedence_at_each_level() {
    require_root();
    let env = RunEnv::new("vessel-apptainer-test-");
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("vars.env");
    std::fs::write(
        &file,
        "# a comment\nexport LEVEL=file\nFILEVAR=\"$IMG_VAR-f\"\n",
    )
    .unwrap();
    let script = show("LEVEL,IMG_VAR,HOSTVAR,ORDER,PATH");
    for (kind, img) in images() {
        let run = |vars: &[(&str, &str)], flags: &[&str]| {
            let mut a = vec!["exec"];
            a.extend_from_slice(flags);
            a.extend([p(img), "sh", "-c", &script]);
            let (out, err, code) = exec(&env, vars, &a);
            assert_eq!(code, Some(0), "{kind} {flags:?}: {err}");
            out
        };
        let host = [("LEVEL", "host"), ("HOSTVAR", "h")];
        // Host < image: the image's value wins, the host's other vars pass,
        // PATH is the default plus the image's, never the host's.
        let image_path = format!("/opt/app/bin:{DEFAULT_PATH}");
        assert_eq!(
            run(&host, &[]),
            format!("LEVEL=image IMG_VAR=image HOSTVAR=h ORDER=first,second PATH={image_path}\n"),
            "{kind}"
        );
        // Image < SINGULARITYENV_ < APPTAINERENV_ < VESSELENV_ < --env-file < --env.
        let mut vars = host.to_vec();
        vars.push(("SINGULARITYENV_LEVEL", "singularityenv"));
        assert!(
            run(&vars, &[]).starts_with("LEVEL=singularityenv "),
            "{kind}"
        );
        vars.push(("APPTAINERENV_LEVEL", "apptainerenv"));
        assert!(run(&vars, &[]).starts_with("LEVEL=apptainerenv "), "{kind}");
        vars.push(("VESSELENV_LEVEL", "vesselenv"));
        assert!(run(&vars, &[]).starts_with("LEVEL=vesselenv "), "{kind}");
        let flags = ["--env-file", p(&file)];
        assert!(run(&vars, &flags).starts_with("LEVEL=file "), "{kind}");
        let flags = ["--env-file", p(&file), "--env", "LEVEL=flag"];
        assert!(run(&vars, &flags).starts_with("LEVEL=flag "), "{kind}");
        // --env-file values expand against the container environment.
        let (out, err, _) = exec(
            &env,
            &[],
            &[
                "exec",
                "--env-file",
                p(&file),
                p(img),
                "sh",
                "-c",
                "echo $FILEVAR",
            ],
        );
        assert_eq!(out, "image-f\n", "{kind}: {err}");
        // The image's PATH finds its commands.
        let (out, err, _) = exec(&env, &[], &["exec", p(img), "appcmd"]);
        assert_eq!(out, "appcmd\n", "{kind}: {err}");
        // The runscript keeps getting the arguments, with the image's env.
        let (out, err, _) = exec(&env, &[], &["run", p(img), "a", "b c"]);
        assert_eq!(out, "runscript: a b c image\n", "{kind}: {err}");
    }
    assert!(env.work_dirs_left().is_empty());
}

#[test]
#[ignore = "needs root"]
fn root_apptainer_path_edits_and_references() {
    require_root();
    let env = RunEnv::new("vessel-apptainer-test-");
    for (kind, img) in images() {
        let (out, err, _) = exec(
            &env,
            &[
                ("VESSELENV_PREPEND_PATH", "/pre"),
                ("APPTAINERENV_APPEND_PATH", "/post"),
            ],
            &[
                "exec",
                "--env",
                "PATH=$PATH:/extra",
                "--env",
                "B=${IMG_VAR}-\\$IMG_VAR $(id)",
                p(img),
                "sh",
                "-c",
                "echo \"$PATH|$B\"",
            ],
        );
        assert_eq!(
            out,
            format!("/pre:/opt/app/bin:{DEFAULT_PATH}:/extra:/post|image-$IMG_VAR $(id)\n"),
            "{kind}: {err}"
        );
        // A missing command is still 127.
        let (_, err, code) = exec(&env, &[], &["exec", p(img), "no-such-cmd"]);
        assert_eq!(code, Some(127), "{kind}: {err}");
        assert!(
            err.contains("no-such-cmd: command not found"),
            "{kind}: {err}"
        );
    }
}

#[test]
#[ignore = "needs root"]
fn root_apptainer_cleanenv_keeps_term_proxies_and_the_image_env() {
    require_root();
    let env = RunEnv::new("vessel-apptainer-test-");
    let script = show("HOSTVAR,LANG,TERM,HOME,https_proxy,NO_PROXY,IMG_VAR,K,PATH");
    for (kind, img) in images() {
        let vars = [
            ("HOSTVAR", "h"),
            ("LANG", "de_DE.UTF-8"),
            ("TERM", "xterm-test"),
            ("https_proxy", "http://proxy:3128"),
            ("NO_PROXY", "localhost"),
            ("VESSELENV_K", "v"),
        ];
        let (out, err, code) = exec(
            &env,
            &vars,
            &["exec", "--cleanenv", p(img), "sh", "-c", &script],
        );
        assert_eq!(code, Some(0), "{kind}: {err}");
        assert_eq!(
            out,
            format!(
                "HOSTVAR=unset LANG=C TERM=xterm-test HOME=/root https_proxy=http://proxy:3128 \
                 NO_PROXY=localhost IMG_VAR=image K=v PATH=/opt/app/bin:{DEFAULT_PATH}\n"
            ),
            "{kind}"
        );
        // Without --cleanenv the host's LANG passes.
        let (out, err, _) = exec(&env, &vars, &["exec", p(img), "sh", "-c", "echo $LANG"]);
        assert_eq!(out, "de_DE.UTF-8\n", "{kind}: {err}");
    }
}

#[test]
#[ignore = "needs root"]
fn root_apptainer_env_without_a_shell_in_the_image() {
    require_root();
    let env = RunEnv::new("vessel-apptainer-test-");
    // Only busybox under another name: no /bin/sh to source the scripts.
    let root = env.tmp.path().join("noshell");
    for d in [
        "proc", "sys", "dev", "tmp", "root", "etc", "home", "mnt", "bin",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    write_exec(
        &root.join(".singularity.d/env/90-environment.sh"),
        "export IMG_VAR=image\n",
    );
    set_mode(&root, 0o755);
    let o = env
        .cmd(&[
            "exec",
            "--env",
            "A=$HOME/x",
            p(&root),
            "/bin/busybox",
            "env",
        ])
        .env("HOME", "/root")
        .env("VESSEL_LOG", "debug")
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        out.contains("A=/root/x\n") && !out.contains("IMG_VAR"),
        "{out}"
    );
    assert!(
        stderr(&o).contains("no /bin/sh: they are not applied"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
#[ignore = "needs root"]
fn root_apptainer_the_caller_has_a_passwd_entry() {
    require_root();
    let env = RunEnv::new("vessel-apptainer-test-");
    let who = "id -un; id -gn; grep -c . /etc/passwd";
    for (kind, img) in images() {
        // As root in a user namespace: root, the image's one entry replaced.
        let o = env.run(&["exec", "--userns", p(img), "sh", "-c", who]);
        assert_eq!(stdout(&o), "root\nroot\n1\n", "{kind}: {}", stderr(&o));
        if !nobody_has_userns() {
            eprintln!("{kind}: no unprivileged user namespaces here: root case only");
            continue;
        }
        let o = env.run_as_nobody(&["exec", p(img), "sh", "-c", who]);
        assert_eq!(stdout(&o), "nobody\nnogroup\n2\n", "{kind}: {}", stderr(&o));
        // The generated file is read-only inside.
        let o = env.run_as_nobody(&["exec", p(img), "sh", "-c", "echo x >> /etc/passwd"]);
        assert!(!o.status.success(), "{kind}: /etc/passwd is writable");
        let o = env.run_as_nobody(&["exec", "--fakeroot", p(img), "id", "-un"]);
        assert_eq!(stdout(&o), "root\n", "{kind}: {}", stderr(&o));
    }
    assert!(env.work_dirs_left().is_empty());
}
