//! `vessel key newpair|list|trust|remove`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::Error;
use vessel::plugin::audit;
use vessel::plugin::store::Store;
use vessel::trust::{generate_keypair, TrustStore};
use vessel::Runtime;
use vessel_sif::text::inert;

// Arguments of `vessel key` (not a doc comment: see `cli::Command`).
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: KeyCommand,
}

// `vessel key` subcommands (not a doc comment: see `cli::Command`).
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate an ed25519 key pair: PREFIX-private.pem (PKCS#8, mode 0600)
    /// and PREFIX-public.pem (SPKI).
    Newpair {
        /// Path prefix of the two key files.
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
    },
    /// List the trusted public keys.
    List,
    /// Trust a public key (root only).
    Trust {
        /// SPKI PEM public key file.
        pubfile: PathBuf,
    },
    /// Stop trusting a key (root only). Lists the installed plugins signed
    /// by it and asks first (or --yes).
    Remove {
        /// Remove it without asking, even if installed plugins are signed by it.
        #[arg(short = 'y', long)]
        yes: bool,
        /// The keyid, as `vessel key list` prints it.
        keyid: String,
    },
}

/// Runs `vessel key`.
pub fn run(args: &KeyArgs, ctx: &Runtime) -> Result<i32, Error> {
    match &args.command {
        KeyCommand::Newpair { out } => {
            let files = generate_keypair(out)?;
            // The keys are written: a closed stdout does not undo that.
            let _ = outln!("Private key: {}", files.private.display());
            let _ = outln!("Public key:  {}", files.public.display());
            let _ = outln!("Key ID:      {}", files.keyid);
        }
        KeyCommand::List => {
            let store = TrustStore::load(&ctx.paths)?;
            if store.keys().is_empty() {
                outln!("There are no trusted keys.")?;
            } else {
                outln!("KEYID{:46}FILE", "")?;
                for k in store.keys() {
                    outln!("{:<51}{}", k.keyid, k.path.display())?;
                }
            }
        }
        KeyCommand::Trust { pubfile } => {
            let mut store = TrustStore::load(&ctx.paths)?;
            let added = store.add(pubfile)?;
            if added.already_trusted {
                let _ = outln!("Key {} is already trusted.", added.keyid);
            } else {
                let _ = outln!("Trusted key {} ({}).", added.keyid, added.path.display());
            }
        }
        KeyCommand::Remove { yes, keyid } => {
            let mut store = TrustStore::load(&ctx.paths)?;
            vessel::trust::require_root("removing a trusted key")?;
            if store.contains(keyid) && !confirm_signed_plugins(ctx, keyid, *yes)? {
                let _ = outln!("Key {keyid} kept.");
                return Ok(1);
            }
            store.remove(keyid)?;
            let _ = outln!("Removed key {keyid}.");
        }
    }
    Ok(0)
}

/// Lists the installed plugins signed by `keyid` and asks whether to go on
/// (true without asking when there are none, or with `--yes`).
fn confirm_signed_plugins(ctx: &Runtime, keyid: &str, yes: bool) -> Result<bool, Error> {
    let store = Store::new(ctx.paths.plugin_dir());
    let metas = store.list()?;
    let signed = audit::signed_by(&metas, keyid);
    if signed.is_empty() {
        return Ok(true);
    }
    outln!(
        "Installed plugins signed by {keyid} ({}); `plugin verify` will fail for them under a required signature policy:",
        signed.len()
    )?;
    for m in &signed {
        outln!("  {}", inert(m.name()))?;
    }
    if yes {
        return Ok(true);
    }
    super::plugin_build::confirm("Remove the key? [y/N] ").ok_or_else(|| {
        Error::Usage(format!(
            "key {keyid} signed {} installed plugin(s) and stdin is not a terminal; pass --yes to remove it",
            signed.len()
        ))
    })
}
