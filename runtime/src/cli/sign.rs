//! `vessel sign` and `vessel verify`.

use std::path::PathBuf;

use clap::Args;

use super::Error;
use vessel::sif_file::in_sif;
use vessel::trust::{
    load_signing_key, load_verifying_key, require_verified, verify_image_with_keys, TrustStore,
};
use vessel::Runtime;

// Arguments of `vessel sign` (not a doc comment: see `cli::Command`).
#[derive(Debug, Args)]
pub struct SignArgs {
    /// PKCS#8 PEM ed25519 private key.
    #[arg(long, value_name = "PRIVFILE")]
    pub key: PathBuf,
    /// The SIF image to sign (every object group gets a signature).
    pub image: PathBuf,
}

// Arguments of `vessel verify` (not a doc comment: see `cli::Command`).
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// SPKI PEM public key(s) to verify with instead of the trust store.
    #[arg(long, value_name = "PUBFILE")]
    pub key: Vec<PathBuf>,
    /// The SIF image to verify.
    pub image: PathBuf,
}

/// `object 3` or `objects 1, 2`.
fn ids(v: &[u32]) -> String {
    let list = v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
    if v.len() == 1 {
        format!("object {list}")
    } else {
        format!("objects {list}")
    }
}

/// Runs `vessel sign`.
pub fn run_sign(args: &SignArgs, _ctx: &Runtime) -> Result<i32, Error> {
    let key = load_signing_key(&args.key)?;
    let signed = vessel_sif::sign_image(&args.image, &key).map_err(in_sif(&args.image))?;
    for s in signed {
        // The image is signed: a closed stdout does not undo that.
        let _ = outln!(
            "Signed group {} ({}) with {} as object {}",
            s.group,
            ids(&s.objects),
            s.keyid,
            s.signature_id
        );
    }
    Ok(0)
}

/// Runs `vessel verify`.
pub fn run_verify(args: &VerifyArgs, ctx: &Runtime) -> Result<i32, Error> {
    let keys = if args.key.is_empty() {
        TrustStore::load(&ctx.paths)?.verifying_keys()
    } else {
        args.key
            .iter()
            .map(|p| load_verifying_key(p))
            .collect::<Result<Vec<_>, _>>()?
    };
    let report = verify_image_with_keys(&args.image, &keys)?;
    // Every signature with its verdict, then the groups that passed.
    for g in &report.groups {
        for sig in &g.signatures {
            let by = if sig.verified_by.is_empty() {
                sig.keyids.join(", ")
            } else {
                sig.verified_by.join(", ")
            };
            let why = match (&sig.verdict, &sig.failure) {
                (vessel_sif::Verdict::Bad, Some(f)) => format!(" ({f})"),
                _ => String::new(),
            };
            outln!(
                "Signature object {} (group {}, key {}): {}{why}",
                sig.signature_id,
                g.group,
                if by.is_empty() { "none" } else { &by },
                sig.verdict.as_str()
            )?;
        }
    }
    for g in report.groups.iter().filter(|g| g.is_ok()) {
        outln!(
            "Group {}: {} verified by {}",
            g.group,
            ids(&g.objects),
            g.verified_by.join(", ")
        )?;
    }
    require_verified(&args.image, &report)?;
    outln!("Verified {}", args.image.display())?;
    Ok(0)
}
