//! `plugin verify [NAME]`: re-checks installed plugins against what was
//! installed and against today's trust store. The library must still hash
//! to the recorded sha256, the kept image must still hold that library, and
//! its signature must come from a key trusted today (or the plugin was
//! installed unsigned, which is reported, and fails under a `required`
//! signature policy).

use sha2::{Digest, Sha256};

use super::image::PluginImage;
use super::store::{Meta, Store, PLUGIN_SIF, PLUGIN_SO};
use crate::config::SignaturePolicy;
use crate::trust::TrustStore;

/// The result of checking one installed plugin.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Audit {
    /// The plugin.
    pub name: String,
    /// Signers verified today against the trust store.
    pub trusted_signers: Vec<String>,
    /// What is wrong; empty when the plugin checks out.
    pub problems: Vec<String>,
}

impl Audit {
    /// True when nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks one installed plugin.
pub fn audit(store: &Store, trust: &TrustStore, policy: SignaturePolicy, meta: &Meta) -> Audit {
    let mut problems = Vec::new();
    let mut trusted_signers = Vec::new();
    let dir = store.files_dir(meta);
    let want = &meta.manifest.sha256;
    match std::fs::read(dir.join(PLUGIN_SO)) {
        Ok(lib) => {
            let got = sha256_hex(&lib);
            if &got != want {
                problems.push(format!("{PLUGIN_SO} hashes to {got}, installed as {want}"));
            }
        }
        Err(e) => problems.push(format!("{PLUGIN_SO}: {e}")),
    }
    match PluginImage::open(&dir.join(PLUGIN_SIF)) {
        Ok(img) => {
            if &img.manifest.sha256 != want {
                problems.push(format!(
                    "the kept image is of another library ({})",
                    img.manifest.sha256
                ));
            }
            match img.library() {
                Ok(lib) if &sha256_hex(&lib) != want => {
                    problems.push("the kept image's library does not match".into())
                }
                Ok(_) => {}
                Err(e) => problems.push(e.to_string()),
            }
            match img.checked_signers(&trust.verifying_keys()) {
                Ok(sigs) => {
                    trusted_signers = sigs
                        .into_iter()
                        .filter(|(_, t)| *t)
                        .map(|(k, _)| k)
                        .collect()
                }
                Err(e) => problems.push(format!("signatures: {e}")),
            }
        }
        Err(e) => problems.push(e.to_string()),
    }
    if trusted_signers.is_empty() {
        let what = match &meta.signer {
            Some(k) => format!("its signer {k} is no longer trusted"),
            None => "it is not signed by a trusted key".to_owned(),
        };
        if policy == SignaturePolicy::Required {
            problems.push(what);
        } else {
            tracing::warn!(plugin = meta.name(), "{what}");
        }
    }
    Audit {
        name: meta.name().to_owned(),
        trusted_signers,
        problems,
    }
}

/// The installed plugins whose install-time signer is `keyid`.
pub fn signed_by<'m>(metas: &'m [Meta], keyid: &str) -> Vec<&'m Meta> {
    metas
        .iter()
        .filter(|m| m.signer.as_deref() == Some(keyid))
        .collect()
}
