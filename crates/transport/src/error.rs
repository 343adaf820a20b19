//! The one error type of the crate.

use std::path::PathBuf;

/// Everything that can go wrong in ehds-transport: loading trust material,
/// building TLS configurations, reading a peer's identity, or accepting
/// connections.
///
/// A refused handshake is not an error of this type: the serve loop logs and
/// counts it (see [`crate::ListenerMetrics`]) and goes on accepting.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
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
    /// A trust store without any CA certificate.
    #[error("the trust store has no CA certificate")]
    NoTrustAnchors,
    /// A CA in the trust store has no CRL: the revocation status of every
    /// certificate it issued would be unknown, so the store is refused
    /// (fail closed).
    #[error("no CRL for the CA \"{subject}\": revocation status would be unknown (fail closed)")]
    MissingCrl {
        /// The CA's subject.
        subject: String,
    },
    /// A CRL whose issuer is none of the trust store's CAs.
    #[error("{path}: the CRL's issuer \"{issuer}\" is not a CA of this trust store")]
    CrlWithoutCa {
        /// The CRL file.
        path: PathBuf,
        /// The CRL's issuer.
        issuer: String,
    },
    /// rustls refused the configuration (key does not match certificate, ...).
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// rustls refused the trust anchors or a CRL.
    #[error("certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// The outbound HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// The OCSP status of a certificate could not be established (responder
    /// unreachable, error status, bad signature, stale, unknown): refused.
    #[error("OCSP: {0}")]
    Ocsp(String),
    /// A verified certificate does not carry the identity the listener
    /// requires (see the identity convention in the crate documentation).
    #[error("peer identity: {0}")]
    Identity(String),
}
