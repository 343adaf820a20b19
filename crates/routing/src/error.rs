//! The crate's one error enum: a directory that cannot be loaded. A refused
//! patient identifier or search is not an error: it is a value
//! ([`crate::IdentifierRefusal`], [`crate::search::SearchRefusal`]).

use std::path::PathBuf;

/// What went wrong loading the NCP directory.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    /// The directory file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The directory is not TOML of the expected shape (unknown keys
    /// included).
    #[error("NCP directory: {0}")]
    Syntax(#[from] toml::de::Error),
    /// The directory is well-formed TOML but inconsistent: a malformed
    /// country code, URL or pattern, a duplicate country, NCP or identifier
    /// system.
    #[error("NCP directory: {0}")]
    Invalid(String),
}
