//! The EHDS NCP gateway, assembled.
//!
//! Owns: the HTTP APIs (axum) and their OperationOutcome error mapping (one
//! table, [`error::classify`]), the configuration file ([`config`]), metrics,
//! and start-up: configuration checked, store opened and migrated, listener
//! bound, then serving until shut down.
//!
//! Must not know about: how JSON is parsed, how documents are validated, how
//! rows are written: it calls the FHIR, validation and store crates for that.
//! It does not read the environment: the binary hands it a configuration.

pub mod config;
pub mod error;
pub mod http;
pub mod metrics;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ehds_store::Store;
use tokio::net::TcpListener;

pub use config::{CheckedConfig, GatewayConfig};
pub use error::GatewayError;

/// A gateway whose store is open and whose listener is bound.
#[derive(Debug)]
pub struct Gateway {
    listener: TcpListener,
    state: http::AppState,
}

impl Gateway {
    /// Opens the store (migrating it) and binds the national API listener.
    pub async fn bind(config: &CheckedConfig) -> Result<Self, GatewayError> {
        let store = Store::open(&config.store).await?;
        Self::bind_with_store(config, store).await
    }

    /// Binds the listener over an already opened store.
    pub async fn bind_with_store(
        config: &CheckedConfig,
        store: Store,
    ) -> Result<Self, GatewayError> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| GatewayError::Bind {
                    addr: config.listen.to_string(),
                    source,
                })?;
        let state = http::AppState {
            store,
            metrics: Arc::new(metrics::Metrics::default()),
            limits: http::Limits {
                max_body_bytes: config.raw.server.max_body_bytes,
                body_timeout: Duration::from_secs(config.raw.server.body_timeout_secs),
            },
        };
        Ok(Self { listener, state })
    }

    /// The address the national API listens on.
    pub fn local_addr(&self) -> Result<SocketAddr, GatewayError> {
        self.listener.local_addr().map_err(GatewayError::Serve)
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), GatewayError> {
        let store = self.state.store.clone();
        let app = http::router(self.state);
        let result = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(GatewayError::Serve);
        store.close().await;
        result
    }
}
