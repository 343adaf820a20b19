//! The accept loop of a mutual-TLS listener: TLS handshake under a time
//! limit, the peer's identity read from its verified certificate, then
//! HTTP/1.1 (keep-alive, header read timeout) to a tower service.

use std::error::Error as StdError;
use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower_service::Service;

use crate::ocsp::OcspChecker;
use crate::trust::ClientSide;
use crate::{ListenerKind, PeerIdentity, ReloadableServerTls, VerifiedPeer};

type BoxError = Box<dyn StdError + Send + Sync>;

/// Why a handshake was refused, as counted by [`ListenerMetrics`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandshakeRefusal {
    /// The client presented no certificate.
    NoCertificate,
    /// The certificate (or one of its chain) is listed in a CRL.
    Revoked,
    /// Revocation status unknown: no CRL covers it, or its CRL is past
    /// nextUpdate (fail closed).
    RevocationUnknown,
    /// Outside its validity period (expired or not yet valid).
    Expired,
    /// It does not chain to a trusted CA of this listener.
    UnknownIssuer,
    /// Not allowed for this use: EKU without clientAuth, or a CA certificate
    /// presented as end entity.
    WrongUsage,
    /// Any other certificate fault (bad signature, encoding, critical
    /// extension...).
    BadCertificate,
    /// Not a certificate problem: protocol error, unsupported version, the
    /// peer closed or sent an alert.
    Protocol,
}

impl HandshakeRefusal {
    /// Every reason.
    pub const ALL: [Self; 8] = [
        Self::NoCertificate,
        Self::Revoked,
        Self::RevocationUnknown,
        Self::Expired,
        Self::UnknownIssuer,
        Self::WrongUsage,
        Self::BadCertificate,
        Self::Protocol,
    ];

    /// A snake-case label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoCertificate => "no_certificate",
            Self::Revoked => "revoked",
            Self::RevocationUnknown => "revocation_unknown",
            Self::Expired => "expired",
            Self::UnknownIssuer => "unknown_issuer",
            Self::WrongUsage => "wrong_usage",
            Self::BadCertificate => "bad_certificate",
            Self::Protocol => "protocol",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Classifies the error of a failed server handshake.
    pub fn classify(error: &std::io::Error) -> Self {
        use rustls::CertificateError as C;
        let Some(tls) = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        else {
            return Self::Protocol;
        };
        match tls {
            rustls::Error::NoCertificatesPresented => Self::NoCertificate,
            rustls::Error::InvalidCertificate(cert) => match cert {
                C::Revoked => Self::Revoked,
                C::UnknownRevocationStatus
                | C::ExpiredRevocationList
                | C::ExpiredRevocationListContext { .. } => Self::RevocationUnknown,
                C::Expired
                | C::ExpiredContext { .. }
                | C::NotValidYet
                | C::NotValidYetContext { .. } => Self::Expired,
                C::UnknownIssuer => Self::UnknownIssuer,
                C::InvalidPurpose | C::InvalidPurposeContext { .. } => Self::WrongUsage,
                C::Other(other)
                    if matches!(
                        other.0.downcast_ref::<webpki::Error>(),
                        Some(webpki::Error::CaUsedAsEndEntity)
                    ) =>
                {
                    Self::WrongUsage
                }
                _ => Self::BadCertificate,
            },
            rustls::Error::InvalidCertRevocationList(_) => Self::RevocationUnknown,
            _ => Self::Protocol,
        }
    }
}

/// Counters of one listener, cheap to update (relaxed atomics); the gateway
/// can expose them as metrics.
#[derive(Debug, Default)]
pub struct ListenerMetrics {
    handshakes_ok: AtomicU64,
    handshakes_failed: AtomicU64,
    handshakes_timed_out: AtomicU64,
    identities_refused: AtomicU64,
    ocsp_refused: AtomicU64,
    misdirected_clients: AtomicU64,
    refused: [AtomicU64; HandshakeRefusal::ALL.len()],
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListenerCounts {
    /// Handshakes completed with a verified peer whose identity was read.
    pub handshakes_ok: u64,
    /// Handshakes refused (certificate not trusted, revoked, expired, wrong
    /// EKU, no certificate, protocol error, peer closed...).
    pub handshakes_failed: u64,
    /// Handshakes not finished within the handshake timeout.
    pub handshakes_timed_out: u64,
    /// Verified certificates without the identity the listener requires.
    pub identities_refused: u64,
    /// Verified certificates refused by OCSP (revoked, or status not
    /// established: fail closed).
    pub ocsp_refused: u64,
    /// Verified clients of the other listener (see
    /// [`crate::ServerTlsFiles::misdirected_clients`]): counted in
    /// `handshakes_ok` too, as their connections are served for the
    /// application to refuse.
    pub misdirected_clients: u64,
    refused: [u64; HandshakeRefusal::ALL.len()],
}

impl ListenerCounts {
    /// Refused handshakes for one reason (they add up to `handshakes_failed`).
    pub fn refused(&self, reason: HandshakeRefusal) -> u64 {
        self.refused.get(reason.index()).copied().unwrap_or(0)
    }
}

impl ListenerMetrics {
    /// The counters now.
    pub fn counts(&self) -> ListenerCounts {
        ListenerCounts {
            handshakes_ok: self.handshakes_ok.load(Ordering::Relaxed),
            handshakes_failed: self.handshakes_failed.load(Ordering::Relaxed),
            handshakes_timed_out: self.handshakes_timed_out.load(Ordering::Relaxed),
            identities_refused: self.identities_refused.load(Ordering::Relaxed),
            ocsp_refused: self.ocsp_refused.load(Ordering::Relaxed),
            misdirected_clients: self.misdirected_clients.load(Ordering::Relaxed),
            refused: std::array::from_fn(|i| {
                self.refused
                    .get(i)
                    .map_or(0, |counter| counter.load(Ordering::Relaxed))
            }),
        }
    }
}

/// A connection a listener refused before any request: told to the
/// listener's owner (who may audit it) through [`RefusalObserver`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRefusal {
    /// The listener.
    pub listener: ListenerKind,
    /// The remote address.
    pub remote: std::net::SocketAddr,
    /// Why: a [`HandshakeRefusal`] label, `identity` (a verified
    /// certificate without the identity the listener requires),
    /// `ocsp_revoked` / `ocsp_unknown`, or [`MISDIRECTED_CLIENT`].
    pub reason: &'static str,
    /// The certificate's fingerprint when it was verified but refused.
    pub fingerprint: Option<crate::CertFingerprint>,
}

/// The [`ConnectionRefusal::reason`] of a verified client of the other
/// listener ([`crate::ServerTlsFiles::misdirected_clients`]): its connection
/// is served with the other listener's [`PeerIdentity`] so that the
/// application refuses each request with an answer.
pub const MISDIRECTED_CLIENT: &str = "misdirected_client";

/// Called once for every refused connection (not for handshake time-outs),
/// and once for every connection of a misdirected client, on the
/// connection's task: it must return at once (spawn any I/O).
#[derive(Clone)]
pub struct RefusalObserver(Arc<dyn Fn(ConnectionRefusal) + Send + Sync>);

impl RefusalObserver {
    /// An observer calling `f`.
    pub fn new(f: impl Fn(ConnectionRefusal) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    fn tell(&self, refusal: ConnectionRefusal) {
        (self.0)(refusal);
    }
}

impl std::fmt::Debug for RefusalObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefusalObserver")
    }
}

/// Limits of a listener.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// A TLS handshake not finished by then is dropped, so a client that
    /// stalls mid-handshake cannot hold a task (default 10 s).
    pub handshake_timeout: Duration,
    /// Time allowed for a request's headers once its first byte arrived, and
    /// on an idle keep-alive connection for the next request (default 10 s).
    pub header_read_timeout: Duration,
    /// Connections open at once, handshakes included; further clients wait
    /// in the kernel's accept queue (default 1024).
    pub max_connections: usize,
    /// After the shutdown signal, how long open connections get to finish
    /// their current request (default 30 s).
    pub shutdown_grace: Duration,
    /// The counters this listener updates.
    pub metrics: Arc<ListenerMetrics>,
    /// Checks peers whose certificate names an OCSP responder (see
    /// [`crate::ocsp`]); share one between listeners to share its cache.
    pub ocsp: OcspChecker,
    /// Told of every refused connection, if set.
    pub on_refusal: Option<RefusalObserver>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(30),
            metrics: Arc::default(),
            ocsp: OcspChecker::default(),
            on_refusal: None,
        }
    }
}

/// [`serve_with_options`] with [`ServeOptions::default`].
pub async fn serve<S, B>(
    listener: TcpListener,
    tls: ReloadableServerTls,
    kind: ListenerKind,
    service: S,
    shutdown: impl Future<Output = ()>,
) where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    serve_with_options(
        listener,
        tls,
        kind,
        service,
        ServeOptions::default(),
        shutdown,
    )
    .await;
}

/// Accepts connections on `listener` until `shutdown` completes, then stops
/// accepting and lets open connections finish (up to
/// [`ServeOptions::shutdown_grace`]).
///
/// Each connection: TLS handshake with the configuration current in `tls`
/// (within [`ServeOptions::handshake_timeout`]), the peer's
/// [`VerifiedPeer`] and [`PeerIdentity`] read for `kind` (a certificate
/// without them closes the connection), then HTTP/1.1 with keep-alive, each
/// request carrying both in its extensions. Refusals are logged with their
/// reason and the remote address (never request content) and counted.
pub async fn serve_with_options<S, B>(
    listener: TcpListener,
    tls: ReloadableServerTls,
    kind: ListenerKind,
    service: S,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(options.max_connections.max(1)));
    let options = Arc::new(options);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(listener = kind.as_str(), error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let loaded = tls.snapshot();
        let acceptor = TlsAcceptor::from(loaded.config.clone());
        let service = service.clone();
        let options = options.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let metrics = &options.metrics;
            let tell = |reason: &'static str, fingerprint: Option<crate::CertFingerprint>| {
                if let Some(observer) = &options.on_refusal {
                    observer.tell(ConnectionRefusal {
                        listener: kind,
                        remote,
                        reason,
                        fingerprint,
                    });
                }
            };
            let stream = match tokio::time::timeout(options.handshake_timeout, acceptor.accept(tcp))
                .await
            {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    let refusal = HandshakeRefusal::classify(&e);
                    if let Some(counter) = metrics.refused.get(refusal.index()) {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    metrics.handshakes_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(listener = kind.as_str(), %remote, refusal = refusal.as_str(), reason = %e, "TLS handshake refused");
                    tell(refusal.as_str(), None);
                    return;
                }
                Err(_) => {
                    metrics.handshakes_timed_out.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(listener = kind.as_str(), %remote, "TLS handshake timed out");
                    return;
                }
            };
            let chain = stream.get_ref().1.peer_certificates();
            let leaf = chain.and_then(|chain| chain.first());
            // On a listener that admits misdirected clients, whose client is
            // this? Only a certificate that verifies against this listener's
            // own CAs is read as this listener's identity.
            let (peer_kind, misdirected) = match (&loaded.sides, leaf) {
                (Some(sides), Some(der)) => {
                    let intermediates = chain.and_then(|c| c.get(1..)).unwrap_or_default();
                    match sides.side_of(der, intermediates) {
                        Some(ClientSide::Own) => (kind, false),
                        Some(ClientSide::Misdirected) => (kind.other(), true),
                        None => {
                            metrics.identities_refused.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(listener = kind.as_str(), %remote, "peer certificate verifies on neither side");
                            tell("identity", Some(crate::CertFingerprint::of(der)));
                            return;
                        }
                    }
                }
                _ => (kind, false),
            };
            let peer = match leaf.map(|der| VerifiedPeer::from_certificate(peer_kind, der)) {
                Some(Ok(peer)) => peer,
                Some(Err(e)) => {
                    metrics.identities_refused.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(listener = kind.as_str(), %remote, reason = %e, "peer certificate refused");
                    tell("identity", leaf.map(|der| crate::CertFingerprint::of(der)));
                    return;
                }
                None => {
                    // Unreachable with a verifier that requires a certificate.
                    metrics.identities_refused.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(listener = kind.as_str(), %remote, "no peer certificate");
                    return;
                }
            };
            if let Some(leaf) = leaf {
                // The issuer: the next certificate the peer sent, else the CA
                // of the trust store that issued it.
                let issuer = chain
                    .and_then(|chain| chain.get(1))
                    .or_else(|| loaded.trust.issuer_of(leaf));
                let verdict = match issuer {
                    Some(issuer) => options.ocsp.check(leaf, issuer).await,
                    None => Err(crate::TransportError::Ocsp("issuer not found".into())),
                };
                match verdict {
                    Ok(v) if v.is_acceptable() => {}
                    Ok(_) => {
                        metrics.ocsp_refused.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(listener = kind.as_str(), %remote, "peer certificate revoked (OCSP)");
                        tell("ocsp_revoked", Some(peer.fingerprint));
                        return;
                    }
                    Err(e) => {
                        metrics.ocsp_refused.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(listener = kind.as_str(), %remote, reason = %e, "peer certificate refused: OCSP status not established");
                        tell("ocsp_unknown", Some(peer.fingerprint));
                        return;
                    }
                }
            }
            metrics.handshakes_ok.fetch_add(1, Ordering::Relaxed);
            if misdirected {
                // Served only so that the application can refuse each request
                // with an answer; on record once per connection.
                metrics.misdirected_clients.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(listener = kind.as_str(), %remote, fingerprint = %peer.fingerprint, "a client of the other listener connected");
                tell(MISDIRECTED_CLIENT, Some(peer.fingerprint));
            }
            tracing::debug!(listener = kind.as_str(), %remote, peer = ?peer.identity, fingerprint = %peer.fingerprint, "peer authenticated");
            let identity: PeerIdentity = peer.identity.clone();
            let hyper_service =
                hyper::service::service_fn(move |mut request: Request<Incoming>| {
                    request.extensions_mut().insert(peer.clone());
                    request.extensions_mut().insert(identity.clone());
                    let mut service = service.clone();
                    async move {
                        poll_fn(|cx| service.poll_ready(cx)).await?;
                        service.call(request).await
                    }
                });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(options.header_read_timeout)
                .keep_alive(true);
            let connection = http.serve_connection(TokioIo::new(stream), hyper_service);
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(listener = kind.as_str(), %remote, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let grace = options.shutdown_grace;
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = kind.as_str(),
            "connections still open after the shutdown grace period"
        );
    }
}
