//! What can stop the gateway from starting, or a command of the binary:
//! never a request's error (those are `crate::error::GatewayError`, mapped
//! to OperationOutcomes), so that no start-up failure has a status and no
//! request failure is a configuration problem.

use ehds_store::StoreError;
use ehds_transport::TransportError;

/// A start-up or command-line failure.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// `ehds-gateway validate` found errors.
    #[error("validation found errors")]
    ValidationFailed,
    /// A server stopped with an I/O error.
    #[error("server: {0}")]
    Serve(std::io::Error),
    /// TLS material could not be loaded.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The store could not be opened, migrated or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An OperationOutcome could not be rendered (the `validate` command).
    #[error(transparent)]
    Render(#[from] ehds_fhir::outcome::OutcomeRenderError),
}
