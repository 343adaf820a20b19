//! A listener's TLS configuration that can be re-read from disk while
//! connections are open.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::server::danger::ClientCertVerifier;
use tokio::sync::watch;

use crate::trust::ClientSides;
use crate::{ServerTls, ServerTlsFiles, TransportError, TrustStore};

/// The current [`ServerConfig`] of a listener and the files it came from.
///
/// Cloning is cheap and shares the state: the serve loop holds one clone,
/// whoever reloads (a SIGHUP handler, an admin endpoint, a timer fetching
/// CRLs) another. Each new handshake takes the configuration current at its
/// start. Established connections are told of each successful reload: the
/// serve loop re-checks their peer's certificate against the new trust
/// material and closes, after the request in flight, those that no longer
/// pass (a certificate revoked by the new CRL keeps no connection open).
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
    /// The client-certificate verifier of `trust`: re-checks the peers of
    /// open connections after a reload.
    pub(crate) verifier: Arc<dyn ClientCertVerifier>,
    /// The `notAfter` of the listener's own chain.
    pub(crate) identity_expiries: Vec<crate::Expiry>,
}

impl Loaded {
    fn read(files: &ServerTlsFiles) -> Result<Self, TransportError> {
        let (config, trust, sides, identity) = ServerTls::load_listener(files)?;
        let verifier = trust.client_verifier()?;
        Ok(Self {
            config,
            trust,
            sides,
            verifier,
            identity_expiries: identity.expiries(),
        })
    }
}

#[derive(Debug)]
struct Inner {
    files: ServerTlsFiles,
    current: ArcSwap<Loaded>,
    reloads: AtomicU64,
    /// The number of successful reloads, watched by open connections.
    reloaded: watch::Sender<u64>,
}

impl ReloadableServerTls {
    /// Loads the configuration from `files` (see [`ServerTls::load`]).
    pub fn load(files: ServerTlsFiles) -> Result<Self, TransportError> {
        let loaded = Loaded::read(&files)?;
        Ok(Self {
            inner: Arc::new(Inner {
                files,
                current: ArcSwap::from_pointee(loaded),
                reloads: AtomicU64::new(0),
                reloaded: watch::Sender::new(0),
            }),
        })
    }

    /// Re-reads certificate, key, CAs and CRLs from the same files. On any
    /// error the configuration in force stays (nothing half-loaded is ever
    /// used) and the error is returned. On success, open connections re-check
    /// their peer against the new configuration (see the type's
    /// documentation).
    pub fn reload(&self) -> Result<(), TransportError> {
        match Loaded::read(&self.inner.files) {
            Ok(loaded) => {
                self.inner.current.store(Arc::new(loaded));
                let count = self.inner.reloads.fetch_add(1, Ordering::Relaxed) + 1;
                self.inner.reloaded.send_replace(count);
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

    /// Told of every successful reload (the value is the reload count).
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.reloaded.subscribe()
    }

    /// When the material in force stops serving: the `notAfter` of the
    /// listener's certificate chain and of every trusted CA, and the
    /// `nextUpdate` of every CRL in force.
    pub fn expiries(&self) -> Vec<crate::Expiry> {
        let loaded = self.snapshot();
        let mut expiries = loaded.identity_expiries.clone();
        expiries.extend(loaded.trust.expiries());
        expiries
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
