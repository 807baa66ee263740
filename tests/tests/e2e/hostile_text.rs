//! Text vessel did not write stays inert: escape sequences and newlines in a
//! plugin's manifest, log lines and errors cannot drive the terminal, hide
//! or forge lines; a huge plugin error is cut; `--hostname` and `--env`
//! names with control characters are refused.

use vessel_tests::{
    assert_error, custom_plugin, ok, path_str as p, require_root, stderr, stdout, TestRoot,
};

/// A plugin whose every text is hostile.
const HOSTILE_PLUGIN: &str = r#"
use vessel_plugin_api::{Command, Plugin};

pub fn build() -> Plugin {
    Plugin::new("example.com/hostile")
        .author("evil\u{1b}]0;pwned\u{7}")
        .version("0.1.0")
        .description("fine\u{1b}[1A\u{1b}[2K\nSignatures:  FAKEKEY (trusted)")
        .command(Command::new("hostile").about("hidden\u{1b}[8m"), |_inv| {
            vessel_plugin_api::log::warn("line\n\u{1b}[31mWARN forged\u{200b}");
            Err(format!("bad\u{1b}[2K{}", "x".repeat(1_000_000)).into())
        })
}

vessel_plugin_api::export_plugin!(build);
"#;

fn no_escapes(what: &str, text: &str) {
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}') && !text.contains('\u{200b}'),
        "{what} has raw control characters: {text:?}"
    );
}

#[test]
#[ignore = "needs root"]
fn root_hostile_plugin_text_is_escaped_and_capped() {
    require_root();
    let root = TestRoot::new();
    let img = custom_plugin("example.com/hostile", Some(HOSTILE_PLUGIN));

    // inspect FILE: the description cannot hide or forge the Signatures line.
    let text = ok(&root.run(&["plugin", "inspect", p(&img)]));
    no_escapes("inspect", &text);
    let sigs: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("Signatures:"))
        .collect();
    assert_eq!(sigs, ["Signatures:  none (unsigned)"], "{text}");
    assert!(text.contains("Description: fine\\u{1b}[1A"), "{text}");

    ok(&root.run(&["plugin", "install", "--yes", "--allow-unsigned", p(&img)]));
    no_escapes("help", &ok(&root.run(&["--help"])));
    no_escapes("list", &ok(&root.run(&["plugin", "list", "-l"])));

    // The plugin's log line is one line; its error is one capped line.
    let o = root.run(&["hostile"]);
    let e = stderr(&o);
    no_escapes("stderr", &e);
    assert!(!e.lines().any(|l| l.starts_with("WARN forged")), "{e}");
    let line = assert_error(
        &o,
        255,
        &["plugin \"example.com/hostile\"", "bad\\u{1b}[2K"],
    );
    assert!(
        line.len() < 4200 && line.ends_with("more bytes cut)"),
        "{}",
        line.len()
    );
    assert_eq!(e.lines().count(), 2, "{e}");
    assert!(stdout(&o).is_empty());
}

#[test]
fn hostname_and_env_names_with_control_characters_are_refused() {
    let root = TestRoot::new();
    // Any directory is a sandbox image; the options are refused before it
    // is looked into.
    let image = root.path().join("sandbox");
    std::fs::create_dir(&image).unwrap();
    for (flag, value, needle) in [
        ("--hostname", "box\nevil", "hostname"),
        ("--env", "A\nB=1", "env"),
        ("--env", "A\u{1b}B=1", "env"),
    ] {
        let o = root.run(&["exec", flag, value, p(&image), "/bin/true"]);
        let line = assert_error(&o, 255, &[needle]);
        no_escapes("error", &line);
        assert!(!line.contains('\n'));
    }
}
