//! The `vessel` binary: parse, set up tracing, dispatch, map errors to exit codes.

use std::process::ExitCode;

mod cli;

use cli::{dynamic, GlobalArgs};
use tracing_subscriber::EnvFilter;
use vessel::EXIT_RUNTIME_FAILURE;

fn init_tracing(g: &GlobalArgs) {
    let level = if g.debug {
        "debug"
    } else if g.verbose {
        "info"
    } else if g.quiet {
        "error"
    } else {
        "warn"
    };
    let filter = EnvFilter::try_from_env("VESSEL_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, not in logs and captured output.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .without_time()
        .init();
}

fn main() -> ExitCode {
    // `plugin compile` runs cargo with this binary as its rustc wrapper.
    if let Some(spec) = std::env::var_os(vessel::plugin::build::wrapper::RUSTC_WRAPPER_ENV) {
        return wrap_rustc(&spec);
    }
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // A TAB in a shell (VESSEL_COMPLETE=SHELL vessel -- WORDS): answered
    // before any config, plugin hook or logging.
    match cli::complete::answer_from_env(&args) {
        Ok(true) => return ExitCode::SUCCESS,
        Ok(false) => {}
        Err(e) => return fail(&e),
    }
    // The packaging step: man pages and completion scripts from the
    // built-in tree, on the build machine, whatever plugins it has.
    if args.get(1).is_some_and(|a| a == cli::docs::COMMAND) {
        return match cli::docs::run(&args[2..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        };
    }
    match dynamic::run(args, init_tracing) {
        Ok(code) => ExitCode::from(u8::try_from(code & 0xff).unwrap_or(u8::MAX)),
        Err(e) => {
            eprintln!("error: {}", render(&e));
            ExitCode::from(EXIT_RUNTIME_FAILURE as u8)
        }
    }
}

/// Prints `e` as the one `error:` line and returns the runtime-failure status.
fn fail(e: &dyn std::error::Error) -> ExitCode {
    eprintln!("error: {}", render(e));
    ExitCode::from(EXIT_RUNTIME_FAILURE as u8)
}

/// Runs rustc (`argv[1]`) with the rest of the arguments, crate metadata
/// made machine-independent; never returns on success.
fn wrap_rustc(spec: &std::ffi::OsStr) -> ExitCode {
    use std::os::unix::process::CommandExt as _;
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let Some((rustc, rest)) = args.split_first() else {
        eprintln!("error: rustc wrapper: no rustc to run");
        return ExitCode::from(EXIT_RUNTIME_FAILURE as u8);
    };
    let rest = vessel::plugin::build::wrapper::rewrite_args(spec, rest);
    let e = std::process::Command::new(rustc).args(rest).exec();
    eprintln!(
        "error: rustc wrapper: cannot run {}: {e}",
        rustc.to_string_lossy()
    );
    ExitCode::from(EXIT_RUNTIME_FAILURE as u8)
}

/// The one line the CLI prints for `e`: its text, then the text of each
/// `#[source]` in its chain that the text above does not already include.
fn render(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    // Messages carry text vessel did not write (plugin errors, image data):
    // cut it to a readable size and make it inert.
    let line = one_line(&msg);
    vessel_sif::text::inert(&vessel_sif::text::capped(&line, MAX_ERROR_LEN)).into_owned()
}

/// The longest error line printed; the rest is cut, saying how much.
const MAX_ERROR_LEN: usize = 4096;

/// Error text as the CLI prints it: one line, and the capitalised OS
/// messages std gives ("No such file or directory (os error 2)") in the same
/// lowercase style as ours.
fn one_line(msg: &str) -> String {
    let flat = msg.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = String::with_capacity(flat.len());
    let mut rest = flat.as_str();
    while let Some(i) = rest.find(" (os error ") {
        let end = rest[i..].find(')').map_or(rest.len(), |j| i + j + 1);
        out.push_str(&rest[..i]);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out.split(": ")
        .map(|seg| {
            let mut c = seg.chars();
            match (c.next(), c.next()) {
                (Some(a), Some(b)) if a.is_ascii_uppercase() && b.is_ascii_lowercase() => {
                    let mut s = a.to_ascii_lowercase().to_string();
                    s.push_str(&seg[1..]);
                    s
                }
                _ => seg.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use super::{one_line, render};

    #[derive(Debug, thiserror::Error)]
    enum Inner {
        #[error("/x")]
        Read(#[source] std::io::Error),
    }

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("plugin \"p\": {0}")]
        Embeds(#[source] Inner),
        #[error(transparent)]
        Transparent(Inner),
    }

    #[test]
    fn the_source_chain_is_rendered_once() {
        let io = || std::io::Error::from_raw_os_error(2);
        assert_eq!(
            render(&Outer::Embeds(Inner::Read(io()))),
            "plugin \"p\": /x: no such file or directory"
        );
        assert_eq!(
            render(&Outer::Transparent(Inner::Read(io()))),
            "/x: no such file or directory"
        );
    }

    #[test]
    fn hostile_error_text_is_inert_and_capped() {
        #[derive(Debug, thiserror::Error)]
        #[error("plugin \"p\": {0}")]
        struct PluginSaid(String);
        let forged = PluginSaid("bad\n\u{1b}[2Kerror: all fine\u{7}".into());
        assert_eq!(
            render(&forged),
            "plugin \"p\": bad \\u{1b}[2Kerror: all fine\\u{7}"
        );
        let huge = render(&PluginSaid("x".repeat(10_000_000)));
        assert!(huge.len() < 4200, "{}", huge.len());
        assert!(huge.ends_with("more bytes cut)"), "{huge}");
    }

    #[test]
    fn errors_print_on_one_lowercase_line() {
        assert_eq!(
            one_line("/x: No such file or directory (os error 2)"),
            "/x: no such file or directory"
        );
        assert_eq!(one_line("a\nb"), "a b");
        assert_eq!(
            one_line("verified by SHA256:abc: Permission denied (os error 13)"),
            "verified by SHA256:abc: permission denied"
        );
    }
}
