//! `vessel cache list|clean`: the caller's cache of images (every kind).

use clap::{Args, Subcommand};

use super::Error;
use vessel::cache::{format_size, Cache, CacheError, Entry};
use vessel::Runtime;

// Arguments of `vessel cache` (not a doc comment: see `cli::Command`).
#[derive(Debug, Args)]
pub struct CacheArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: CacheCommand,
}

// `vessel cache` subcommands (not a doc comment: see `cli::Command`).
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// List the cache's entries: kind, key, size, last use (oldest first).
    List,
    /// Remove entries: all of them, or those named (KEY or KIND/KEY).
    Clean {
        /// Remove every entry.
        #[arg(long, conflicts_with = "keys")]
        all: bool,
        /// Entries to remove.
        #[arg(value_name = "KEY")]
        keys: Vec<String>,
    },
}

/// Runs `vessel cache`.
pub fn run(args: &CacheArgs, ctx: &Runtime) -> Result<i32, Error> {
    let cache = Cache::for_caller(ctx.paths.root(), ctx.config.cache_max_size()).map_err(lib)?;
    let entries = cache.list().map_err(lib)?;
    match &args.command {
        CacheCommand::List => {
            if entries.is_empty() {
                outln!("The cache is empty.")?;
                return Ok(0);
            }
            let kw = entries
                .iter()
                .map(|e| e.kind.len())
                .max()
                .unwrap_or(0)
                .max(4);
            let keyw = entries
                .iter()
                .map(|e| e.key.len())
                .max()
                .unwrap_or(0)
                .max(3);
            outln!("{:kw$}  {:keyw$}  {:>10}  LAST USED", "KIND", "KEY", "SIZE")?;
            for e in &entries {
                outln!(
                    "{:kw$}  {:keyw$}  {:>10}  {}",
                    e.kind,
                    e.key,
                    format_size(e.size),
                    utc(e.last_used)
                )?;
            }
            Ok(0)
        }
        CacheCommand::Clean { all, keys } => {
            if !all && keys.is_empty() {
                return Err(Error::Usage(
                    "cache clean: name the entries to remove, or --all".into(),
                ));
            }
            let chosen: Vec<&Entry> = if *all {
                entries.iter().collect()
            } else {
                let mut v = Vec::new();
                for k in keys {
                    let found: Vec<&Entry> = entries
                        .iter()
                        .filter(|e| e.key == *k || format!("{}/{}", e.kind, e.key) == *k)
                        .collect();
                    if found.is_empty() {
                        return Err(lib(CacheError::NoEntry(k.clone())));
                    }
                    v.extend(found);
                }
                v
            };
            for e in chosen {
                cache.remove(&e.kind, &e.key).map_err(lib)?;
                let _ = outln!("Removed {}/{} ({})", e.kind, e.key, format_size(e.size));
            }
            Ok(0)
        }
    }
}

fn lib(e: CacheError) -> Error {
    Error::Vessel(e.into())
}

/// `2026-12-02 05:47:32 UTC` (the same rendering as `plugin inspect`).
fn utc(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    super::plugin_build::utc_time(secs)
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_utc_times() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_887_052);
        assert_eq!(super::utc(t), "2026-11-28 17:30:52 UTC");
        assert_eq!(super::utc(std::time::UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
    }
}
