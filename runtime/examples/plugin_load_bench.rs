//! Measures what the safe load path costs: loading a plugin with every check
//! (open once, permissions, sha256, goblin ELF checks, sealed memfd, dlopen,
//! plugin-api version and abi_stable layout checks, init) against a bare
//! dlopen of the same bytes, median of many runs in one process.
//!
//! ```text
//! cargo build --release -p fixture-minimal -p cli-plugin
//! cargo run --release -p vessel --example plugin_load_bench -- \
//!     target/release/libfixture_minimal.so target/release/libcli_plugin.so
//! ```
//!
//! Every run maps a fresh copy: the full load gets a new memfd each time,
//! and the bare dlopen gets its own pre-made copy of the file (dlopen of an
//! already-loaded path only bumps a refcount, which would measure nothing).
//! Libraries are never unloaded (as in the runtime), so `RUNS` copies stay
//! mapped until the process exits.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use vessel::plugin::loader::{self, LoadSpec};

fn stats(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    let p90 = v[(v.len() * 9 / 10).min(v.len() - 1)];
    (v[0], v[v.len() / 2], p90)
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn bench(path: &Path, runs: usize, scratch: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    let spec = LoadSpec::new(path).sha256(loader::hex(&sha2_digest(&bytes)));

    // Checks only (everything before dlopen).
    let mut verify = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        loader::verify(&spec)?;
        verify.push(t.elapsed());
    }

    // Full load.
    let mut full = Vec::with_capacity(runs);
    let mut name = String::new();
    for _ in 0..runs {
        let t = Instant::now();
        let p = loader::load(&spec)?;
        full.push(t.elapsed());
        name = p.name().to_string();
    }

    // Bare dlopen of a fresh copy of the same bytes.
    let copies: Vec<PathBuf> = (0..runs)
        .map(|i| {
            let c = scratch.join(format!(
                "{i}-{}",
                path.file_name().unwrap().to_string_lossy()
            ));
            std::fs::write(&c, &bytes).map(|_| c)
        })
        .collect::<Result<_, _>>()?;
    let mut bare = Vec::with_capacity(runs);
    for c in &copies {
        let t = Instant::now();
        // SAFETY: a plugin library built in this tree; it is never unloaded.
        let lib = unsafe { libloading::Library::new(c) }?;
        bare.push(t.elapsed());
        std::mem::forget(lib);
    }

    let (bmin, bmed, bp90) = stats(bare);
    let (vmin, vmed, vp90) = stats(verify);
    let (fmin, fmed, fp90) = stats(full);
    println!();
    println!(
        "{name}  ({}, {} bytes, {runs} runs)",
        path.display(),
        bytes.len()
    );
    println!("{:<34} {:>12} {:>12} {:>12}", "", "min", "median", "p90");
    for (label, min, med, p90) in [
        ("bare dlopen", bmin, bmed, bp90),
        ("checks only (no dlopen)", vmin, vmed, vp90),
        ("full load (checks+memfd+dlopen+abi)", fmin, fmed, fp90),
    ] {
        println!(
            "{label:<34} {:>12} {:>12} {:>12}",
            micros(min),
            micros(med),
            micros(p90)
        );
    }
    println!(
        "overhead of the safe load path: {} per plugin ({:.1}x a bare dlopen)",
        micros(fmed.saturating_sub(bmed)),
        fmed.as_secs_f64() / bmed.as_secs_f64()
    );
    Ok(())
}

fn sha2_digest(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).to_vec()
}

fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let runs = match args.iter().position(|a| a == "--runs") {
        Some(i) => {
            let n = args.get(i + 1).context("--runs needs a number")?.parse()?;
            args.drain(i..i + 2);
            n
        }
        None => 101,
    };
    if args.is_empty() || runs == 0 {
        bail!("usage: plugin_load_bench [--runs N] PLUGIN.so...");
    }
    let scratch = tempfile::tempdir()?;
    for a in &args {
        bench(Path::new(a), runs, scratch.path())?;
    }
    Ok(())
}
