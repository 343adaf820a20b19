//! The one error type of the crate.

/// What stops a loopback run or the demo.
#[derive(Debug, thiserror::Error)]
pub enum LoopbackError {
    /// The run's files could not be set up (a port, a shipped file, a key).
    #[error("loopback set-up: {0}")]
    Setup(String),
    /// A step of the demo failed (a request, a file it reads).
    #[error("demo: {0}")]
    Demo(String),
    /// A gateway refused its configuration, failed to start or to serve.
    #[error(transparent)]
    Gateway(#[from] ehds_gateway::StartError),
    /// The development PKI could not be written.
    #[error(transparent)]
    DevPki(#[from] ehds_dev_pki::DevPkiError),
    /// A client's certificate or trust could not be loaded.
    #[error(transparent)]
    Transport(#[from] ehds_transport::TransportError),
    /// A gateway's store could not be read (the demo's audit trails).
    #[error(transparent)]
    Store(#[from] ehds_store::StoreError),
}
