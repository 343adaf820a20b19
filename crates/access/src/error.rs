//! The crate's one error enum: configuration that cannot be loaded, keys that
//! cannot be used, and a replay ledger that cannot answer. A refused assertion
//! is not an error: it is an [`crate::AssertionRefusal`] value.

use std::path::PathBuf;

/// What went wrong outside the assertion itself.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// A public or private key is not a valid key for its stated algorithm.
    #[error("key {kid:?} is not a valid {algorithm} key: {reason}")]
    InvalidKey {
        /// The key id (`kid`) of the key.
        kid: String,
        /// The algorithm the key is pinned to.
        algorithm: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A key or policy file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The trust list description is inconsistent (duplicate issuer or key id,
    /// malformed country code, a key with neither or both of `pem` and
    /// `pem_file`).
    #[error("trust list: {0}")]
    TrustList(String),
    /// The access policy is not valid TOML of the expected shape.
    #[error("access policy: {0}")]
    PolicySyntax(#[from] toml::de::Error),
    /// The access policy is well-formed TOML but names an unknown role or a
    /// malformed country.
    #[error("access policy: {0}")]
    Policy(String),
    /// An assertion could not be signed.
    #[error("cannot sign an assertion: {0}")]
    Signing(String),
    /// The replay ledger could not record or look up a token id; the request
    /// must fail closed (503), never pass unchecked.
    #[error("replay ledger: {0}")]
    Ledger(String),
}
