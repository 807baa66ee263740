//! OCI/Docker sources on the command line: `vessel build|pull` from
//! `docker://`, `oci:` and `docker-archive:`, those references as the
//! image of `exec|run|shell` (through the cache), and `vessel inspect`.

use std::path::{Path, PathBuf};

use clap::Args;

use super::registry::RegistryFlags;
use super::Error;
use vessel::image::oci::{self, cache::Cache, Platform, Source};
use vessel::Runtime;

// Flags for fetching an OCI/Docker image (not a doc comment: see `cli::Command`).
#[derive(Debug, Clone, Default, Args)]
pub struct OciFlags {
    /// The platform to take from a multi-platform image (OS/ARCH[/VARIANT]).
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
}

/// The library's options for these flags.
pub fn options(
    platform: Option<&str>,
    registry: &RegistryFlags,
    ctx: &Runtime,
) -> Result<oci::Options, Error> {
    Ok(oci::Options {
        platform: platform
            .map(Platform::parse)
            .transpose()
            .map_err(vessel::Error::from)?
            .unwrap_or_default(),
        strict_platform: platform.is_some(),
        registry: registry.options(ctx),
        cache: Cache::for_caller(&ctx.paths),
        progress: true,
    })
}

/// The image path to run: a `docker://`, `oci:` or `docker-archive:`
/// reference becomes its cached SIF; anything else is a path as given.
pub fn image_path(image: &Path, ctx: &Runtime) -> Result<PathBuf, Error> {
    let Some(s) = image.to_str().filter(|s| Source::is_source(s)) else {
        return Ok(image.to_owned());
    };
    let source = Source::parse(s).map_err(vessel::Error::from)?;
    let opts = options(None, &RegistryFlags::default(), ctx)?;
    Ok(oci::cached_image(&source, &opts).map_err(vessel::Error::from)?)
}

/// `vessel build OUT SOURCE` for an OCI/Docker source.
pub fn build(
    out: &Path,
    source: &str,
    key: Option<&Path>,
    force: bool,
    flags: &OciFlags,
    registry: &RegistryFlags,
    ctx: &Runtime,
) -> Result<i32, Error> {
    let source = Source::parse(source).map_err(vessel::Error::from)?;
    let opts = options(flags.platform.as_deref(), registry, ctx)?;
    oci::build(&source, out, key, force, &opts).map_err(vessel::Error::from)?;
    let _ = outln!("built {} from {source}", out.display());
    Ok(0)
}

/// `vessel pull [OUT] SOURCE` for an OCI/Docker source (OUT defaults to
/// `NAME_TAG.sif`; a directory gets that name inside).
pub fn pull(
    out: Option<PathBuf>,
    source: &str,
    force: bool,
    flags: &OciFlags,
    registry: &RegistryFlags,
    ctx: &Runtime,
) -> Result<i32, Error> {
    let src = Source::parse(source).map_err(vessel::Error::from)?;
    let out = match out {
        None => PathBuf::from(src.default_file_name()),
        Some(o) if o.is_dir() => o.join(src.default_file_name()),
        Some(o) => o,
    };
    build(&out, source, None, force, flags, registry, ctx)
}

// Arguments of `vessel inspect` (not a doc comment: see `cli::Command`).
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Print JSON (labels, runscript, environment).
    #[arg(long)]
    pub json: bool,
    /// A SIF image, a sandbox directory, or an oci:/docker:/docker-archive:
    /// reference (built into the cache first).
    pub image: PathBuf,
}

/// `vessel inspect IMAGE`.
pub fn run_inspect(a: &InspectArgs, ctx: &Runtime) -> Result<i32, Error> {
    let path = image_path(&a.image, ctx)?;
    let info = vessel::image::inspect::inspect(&path).map_err(vessel::Error::from)?;
    if a.json {
        let v = serde_json::json!({
            "labels": info.labels,
            "runscript": info.runscript,
            "environment": info.environment,
        });
        outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default())?;
        return Ok(0);
    }
    outln!("Labels:")?;
    for (k, v) in &info.labels {
        outln!("  {k}: {v}")?;
    }
    outln!("Runscript:")?;
    for l in info.runscript.as_deref().unwrap_or("").lines() {
        outln!("  {l}")?;
    }
    outln!("Environment:")?;
    for (name, text) in &info.environment {
        outln!("  {name}:")?;
        for l in text.lines() {
            outln!("    {l}")?;
        }
    }
    Ok(0)
}
