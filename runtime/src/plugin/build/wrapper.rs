//! Stable crate identities for reproducible plugin builds. cargo gives each
//! crate a `-C metadata` hash that rustc mixes into every symbol; for a path
//! dependency outside the building workspace (the plugin API crates, seen
//! from a plugin crate of its own workspace) that hash includes the tree's
//! absolute path, so the same plugin built in two checkouts gets different
//! symbols. During `plugin compile` the `vessel` binary is cargo's
//! `RUSTC_WRAPPER`: it replaces that hash by one computed from the
//! command line with every machine path remapped, then runs rustc.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

/// Set (to the encoded remaps) when the `vessel` binary is run by cargo as
/// `RUSTC_WRAPPER`.
pub const RUSTC_WRAPPER_ENV: &str = "VESSEL_RUSTC_WRAPPER_REMAP";

const FIELD: char = '\u{1f}';
const RECORD: char = '\u{1e}';

/// Encodes the `(from, to)` path remaps for [`RUSTC_WRAPPER_ENV`].
pub(super) fn encode(remaps: &[(PathBuf, &str)]) -> String {
    remaps
        .iter()
        .map(|(from, to)| format!("{}{FIELD}{to}", from.display()))
        .collect::<Vec<_>>()
        .join(&RECORD.to_string())
}

fn decode(spec: &OsStr) -> Vec<(Vec<u8>, Vec<u8>)> {
    let text = spec.to_string_lossy();
    text.split(RECORD)
        .filter_map(|r| r.split_once(FIELD))
        .map(|(f, t)| (f.as_bytes().to_vec(), t.as_bytes().to_vec()))
        .collect()
}

/// `arg` with every occurrence of a remapped path prefix replaced (longest
/// first, so a path inside another maps to its own target).
fn remapped(arg: &[u8], remaps: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut sorted: Vec<&(Vec<u8>, Vec<u8>)> = remaps.iter().collect();
    sorted.sort_by_key(|(f, _)| std::cmp::Reverse(f.len()));
    let mut out = Vec::with_capacity(arg.len());
    let mut i = 0;
    'outer: while i < arg.len() {
        for (from, to) in &sorted {
            if !from.is_empty() && arg[i..].starts_with(from) {
                out.extend_from_slice(to);
                i += from.len();
                continue 'outer;
            }
        }
        out.push(arg[i]);
        i += 1;
    }
    out
}

/// The rustc arguments (after the rustc path) with `-C metadata=` replaced
/// by a hash of the machine-independent rest of the command line.
pub fn rewrite_args(spec: &OsStr, args: &[OsString]) -> Vec<OsString> {
    let remaps = decode(spec);
    let mut h = Sha256::new();
    let mut metadata_at = None;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_bytes();
        // Options whose value is a machine path or an unstable hash.
        let (skip_value, skip_self) = match a {
            b"-C" | b"--codegen" => {
                let v = args.get(i + 1).map_or(&b""[..], |v| v.as_bytes());
                if v.starts_with(b"metadata=") {
                    metadata_at = Some(i + 1);
                }
                let unstable = v.starts_with(b"metadata=") || v.starts_with(b"extra-filename=");
                (unstable, unstable)
            }
            b"-L" | b"--out-dir" => (true, true),
            b"--extern" => {
                // Keep the crate name, not the path (its file name has cargo's
                // unstable hash in it).
                let v = args.get(i + 1).map_or(&b""[..], |v| v.as_bytes());
                let name = v.split(|b| *b == b'=').next().unwrap_or(v);
                h.update(b"--extern\0");
                h.update(name);
                h.update(b"\0");
                i += 2;
                continue;
            }
            _ if a.starts_with(b"--remap-path-prefix") => (a == b"--remap-path-prefix", true),
            _ => (false, false),
        };
        if !skip_self {
            h.update(remapped(a, &remaps));
            h.update(b"\0");
        }
        i += if skip_value { 2 } else { 1 };
    }
    let mut out = args.to_vec();
    if let Some(at) = metadata_at {
        let digest = h.finalize();
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        out[at] = OsString::from(format!("metadata={hex}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn rustc_line(tree: &str, meta: &str) -> Vec<OsString> {
        args(&[
            "--crate-name",
            "vessel_plugin_api",
            &format!("{tree}/plugin-api/sdk/src/lib.rs"),
            "-C",
            &format!("metadata={meta}"),
            "-C",
            &format!("extra-filename=-{meta}"),
            "--out-dir",
            &format!("{tree}/target/release/deps"),
            "-L",
            &format!("dependency={tree}/target/release/deps"),
            "--extern",
            &format!("abi_stable={tree}/target/release/deps/libabi_stable-{meta}.rlib"),
            &format!("--remap-path-prefix={tree}=/vessel"),
        ])
    }

    #[test]
    fn metadata_depends_on_the_crate_not_on_where_the_tree_is() {
        let a = rewrite_args(
            OsStr::new(&encode(&[(PathBuf::from("/a/vessel"), "/vessel")])),
            &rustc_line("/a/vessel", "1111"),
        );
        let b = rewrite_args(
            OsStr::new(&encode(&[(PathBuf::from("/bb/other"), "/vessel")])),
            &rustc_line("/bb/other", "2222"),
        );
        assert_eq!(a[4], b[4]);
        assert_ne!(a[4], OsString::from("metadata=1111"));
        // The output file names cargo expects are untouched.
        assert_eq!(a[6], OsString::from("extra-filename=-1111"));

        // Another crate gets another hash.
        let mut other = rustc_line("/a/vessel", "1111");
        other[1] = OsString::from("vessel_plugin_abi");
        let c = rewrite_args(
            OsStr::new(&encode(&[(PathBuf::from("/a/vessel"), "/vessel")])),
            &other,
        );
        assert_ne!(a[4], c[4]);
    }
}
