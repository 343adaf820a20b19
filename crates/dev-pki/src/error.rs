//! The one error type of the crate.

use std::path::PathBuf;

/// Everything that can go wrong writing or amending a development PKI.
#[derive(Debug, thiserror::Error)]
pub enum DevPkiError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file or folder could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A PEM or DER file does not hold what it should.
    #[error("{path}: {reason}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rcgen refused a certificate, key or CRL.
    #[error("generating the development PKI: {0}")]
    Generate(#[from] rcgen::Error),
}
