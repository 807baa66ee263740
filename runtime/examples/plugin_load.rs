//! Bench helper for `bench/plugins.sh`: the time one plugin load takes in a
//! fresh process, printed in microseconds on one line.
//!
//! - `plugin_load bare LIB`: what any loader must at least do: read the file,
//!   sha256 it, dlopen it (RTLD_NOW).
//! - `plugin_load vessel LIB SHA256 [PLUGIN_DIR NAME]`: vessel's loader with
//!   every check (ownership, digest, ELF, sealed memfd, API version, layouts,
//!   the plugin's init). Given the store's dir and the plugin's name, as
//!   `dispatch::load_installed` calls it: the meta is read first (the
//!   caller has it), then the files are pinned and the library loaded with
//!   the meta's install stamp, so an unchanged file skips its hash. Its
//!   layouts are still checked: this helper is not the binary that
//!   installed the plugin (`vessel exec` by that binary skips that too).

use std::time::Instant;

use sha2::{Digest, Sha256};
use vessel::plugin::loader::{self, LoadSpec};
use vessel::plugin::store::Store;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || -> ! {
        eprintln!("usage: plugin_load bare LIB | vessel LIB SHA256 [PLUGIN_DIR NAME]");
        std::process::exit(2)
    };
    let (mode, lib) = match (args.first(), args.get(1)) {
        (Some(m), Some(l)) => (m.as_str(), l.as_str()),
        _ => usage(),
    };
    let mut t = Instant::now();
    match mode {
        "bare" => {
            let bytes = std::fs::read(lib).unwrap_or_else(|e| fail(lib, &e.to_string()));
            let digest = Sha256::digest(&bytes);
            std::hint::black_box(digest);
            let c = std::ffi::CString::new(lib).unwrap_or_else(|_| usage());
            // SAFETY: loading a plugin library the caller named; it is never unloaded.
            let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
            if h.is_null() {
                fail(lib, "dlopen failed");
            }
        }
        "vessel" => {
            let Some(sha) = args.get(2) else { usage() };
            let mut spec = LoadSpec::new(lib).sha256(sha.clone());
            if let (Some(dir), Some(name)) = (args.get(3), args.get(4)) {
                let store = Store::new(dir);
                // What load_installed is handed: read before the clock starts.
                let meta = store
                    .get(name)
                    .unwrap_or_else(|e| fail(lib, &e.to_string()));
                t = Instant::now();
                let meta = store
                    .pin(&meta)
                    .unwrap_or_else(|e| fail(lib, &e.to_string()));
                spec = spec
                    .plugin_root(dir)
                    .name(name.clone())
                    .install_dir(store.files_dir(&meta))
                    .installed(meta.library)
                    .layouts_checked_by(meta.checked_by);
            }
            loader::load(&spec).unwrap_or_else(|e| fail(lib, &e.to_string()));
        }
        _ => usage(),
    }
    println!("{}", t.elapsed().as_micros());
}

fn fail(lib: &str, why: &str) -> ! {
    eprintln!("error: {lib}: {why}");
    std::process::exit(1)
}
