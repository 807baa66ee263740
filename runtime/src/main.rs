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
    match dynamic::run(std::env::args_os().collect(), init_tracing) {
        Ok(code) => ExitCode::from(u8::try_from(code & 0xff).unwrap_or(u8::MAX)),
        Err(e) => {
            eprintln!("error: {}", one_line(&e.to_string()));
            ExitCode::from(EXIT_RUNTIME_FAILURE as u8)
        }
    }
}

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
    use super::one_line;

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
