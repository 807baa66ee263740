//! Keys, the trust store and the signing policy.

/// Errors from keys and the trust store.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {}
