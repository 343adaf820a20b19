//! A listener's TLS configuration that can be re-read from disk while
//! connections are open.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use rustls::ServerConfig;

use crate::trust::ClientSides;
use crate::{ServerTls, ServerTlsFiles, TransportError, TrustStore};

/// The current [`ServerConfig`] of a listener and the files it came from.
///
/// Cloning is cheap and shares the state: the serve loop holds one clone,
/// whoever reloads (a SIGHUP handler, an admin endpoint, a timer fetching
/// CRLs) another. Each new handshake takes the configuration current at its
/// start; established connections keep the one they were made with.
#[derive(Debug, Clone)]
pub struct ReloadableServerTls {
    inner: Arc<Inner>,
}

/// A configuration and the trust store it was built from, swapped together.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) trust: TrustStore,
    /// With [`ServerTlsFiles::misdirected_clients`]: which side a client
    /// certificate chains to.
    pub(crate) sides: Option<ClientSides>,
}

#[derive(Debug)]
struct Inner {
    files: ServerTlsFiles,
    current: ArcSwap<Loaded>,
    reloads: AtomicU64,
}

impl ReloadableServerTls {
    /// Loads the configuration from `files` (see [`ServerTls::load`]).
    pub fn load(files: ServerTlsFiles) -> Result<Self, TransportError> {
        let (config, trust, sides) = ServerTls::load_listener(&files)?;
        Ok(Self {
            inner: Arc::new(Inner {
                files,
                current: ArcSwap::from_pointee(Loaded {
                    config,
                    trust,
                    sides,
                }),
                reloads: AtomicU64::new(0),
            }),
        })
    }

    /// Re-reads certificate, key, CAs and CRLs from the same files. On any
    /// error the configuration in force stays (nothing half-loaded is ever
    /// used) and the error is returned.
    pub fn reload(&self) -> Result<(), TransportError> {
        match ServerTls::load_listener(&self.inner.files) {
            Ok((config, trust, sides)) => {
                self.inner.current.store(Arc::new(Loaded {
                    config,
                    trust,
                    sides,
                }));
                self.inner.reloads.fetch_add(1, Ordering::Relaxed);
                tracing::info!("TLS configuration reloaded");
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS reload failed; the previous configuration stays in force");
                Err(e)
            }
        }
    }

    /// The configuration new handshakes use.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.inner.current.load().config.clone()
    }

    /// The configuration and its trust store, as one consistent snapshot.
    pub(crate) fn snapshot(&self) -> Arc<Loaded> {
        self.inner.current.load_full()
    }

    /// The files it reads.
    pub fn files(&self) -> &ServerTlsFiles {
        &self.inner.files
    }

    /// How many reloads succeeded.
    pub fn reload_count(&self) -> u64 {
        self.inner.reloads.load(Ordering::Relaxed)
    }
}
