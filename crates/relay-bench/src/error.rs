//! Everything that can stop the bench ([`BenchError`]).

/// Everything that can stop the bench.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BenchError {
    /// Reading or writing a file, starting a process.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// TLS material.
    #[error(transparent)]
    Transport(#[from] ehds_transport::TransportError),
    /// Signing assertions.
    #[error(transparent)]
    Access(#[from] ehds_access::AccessError),
    /// Starting or running a gateway.
    #[error(transparent)]
    Gateway(#[from] ehds_gateway::StartError),
    /// Setting up the two countries' run.
    #[error(transparent)]
    Loopback(#[from] ehds_loopback::LoopbackError),
    /// Writing the development PKI.
    #[error(transparent)]
    DevPki(#[from] ehds_dev_pki::DevPkiError),
    /// An HTTPS client.
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// The run could not be set up as it must be.
    #[error("{0}")]
    Setup(String),
}
