//! `vessel sif list|info|dump|header`: inspect SIF images with the same
//! columns and wording as the reference `siftool`.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use vessel_sif::{display, Image};

use super::Error;
use vessel::sif_file::in_sif;
use vessel::Runtime;

// Arguments of `vessel sif` (not a doc comment: see `cli::Command`).
#[derive(Debug, Args)]
pub struct SifArgs {
    /// What to show.
    #[command(subcommand)]
    pub command: SifCommand,
}

// `vessel sif` subcommands (not a doc comment: see `cli::Command`).
#[derive(Debug, Subcommand)]
pub enum SifCommand {
    /// List the data objects of an image.
    List {
        /// The SIF image.
        file: PathBuf,
    },
    /// Show one data object's descriptor.
    Info {
        /// Object ID.
        id: u32,
        /// The SIF image.
        file: PathBuf,
    },
    /// Write one data object's bytes to stdout.
    Dump {
        /// Object ID.
        id: u32,
        /// The SIF image.
        file: PathBuf,
    },
    /// Show the global header.
    Header {
        /// The SIF image.
        file: PathBuf,
    },
}

use super::stdout_err;

/// Runs `vessel sif`.
pub fn run(args: &SifArgs, _ctx: &Runtime) -> Result<i32, Error> {
    let mut out = std::io::stdout().lock();
    match &args.command {
        SifCommand::List { file } => {
            let img = Image::open(file).map_err(in_sif(file))?;
            out.write_all(display::list_text(&img).as_bytes())
                .map_err(stdout_err)?;
        }
        SifCommand::Info { id, file } => {
            let img = Image::open(file).map_err(in_sif(file))?;
            let d = img.descriptor(*id).map_err(in_sif(file))?;
            out.write_all(display::info_text(d).as_bytes())
                .map_err(stdout_err)?;
        }
        SifCommand::Dump { id, file } => {
            let img = Image::open(file).map_err(in_sif(file))?;
            let mut r = img.object_reader(*id).map_err(in_sif(file))?;
            std::io::copy(&mut r, &mut out).map_err(stdout_err)?;
        }
        SifCommand::Header { file } => {
            let img = Image::open(file).map_err(in_sif(file))?;
            out.write_all(display::header_text(img.header()).as_bytes())
                .map_err(stdout_err)?;
        }
    }
    out.flush().map_err(stdout_err)?;
    Ok(0)
}
