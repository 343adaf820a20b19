//! The accept loop of a mutual-TLS listener: TLS handshake under a time
//! limit, the peer's identity read from its verified certificate, then
//! HTTP/1.1 (keep-alive, header read timeout, minimum send rate) to a tower
//! service, the connection closed when its peer is no longer trusted or it
//! reaches its maximum age.

use std::error::Error as StdError;
use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Either;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower_service::Service;

use crate::answer;
use crate::ocsp::{OcspChecker, OcspVerdict};
use crate::recheck::Recheck;
use crate::send_rate::{Paced, SendRate};
use crate::trust::ClientSide;
use crate::{ListenerKind, ReloadableServerTls, VerifiedPeer};

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
        error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .map_or(Self::Protocol, Self::of_tls_error)
    }

    /// Classifies a rustls error of a handshake.
    fn of_tls_error(tls: &rustls::Error) -> Self {
        use rustls::CertificateError as C;
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
    closed_on_recheck: AtomicU64,
    closed_at_max_age: AtomicU64,
    slow_readers: Arc<AtomicU64>,
    bad_host_requests: AtomicU64,
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
    /// Open connections closed because their peer's certificate no longer
    /// passed a re-check (a reload of the trust material, a new OCSP
    /// answer).
    pub closed_on_recheck: u64,
    /// Open connections closed at [`ServeOptions::max_connection_age`].
    pub closed_at_max_age: u64,
    /// Connections dropped because their client read responses slower than
    /// [`ServeOptions::min_send_rate`].
    pub slow_readers: u64,
    /// Requests answered 400 for their `Host` header (RFC 9112 §3.2).
    pub bad_host_requests: u64,
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
            closed_on_recheck: self.closed_on_recheck.load(Ordering::Relaxed),
            closed_at_max_age: self.closed_at_max_age.load(Ordering::Relaxed),
            slow_readers: self.slow_readers.load(Ordering::Relaxed),
            bad_host_requests: self.bad_host_requests.load(Ordering::Relaxed),
            refused: std::array::from_fn(|i| {
                self.refused
                    .get(i)
                    .map_or(0, |counter| counter.load(Ordering::Relaxed))
            }),
        }
    }
}

/// A connection a listener refused before any request, or closed when its
/// peer no longer passed a re-check: told to the listener's owner (who may
/// audit it) through [`RefusalObserver`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRefusal {
    /// The listener.
    pub listener: ListenerKind,
    /// The remote address.
    pub remote: std::net::SocketAddr,
    /// Why: a [`HandshakeRefusal`] label, `identity` (a verified
    /// certificate without the identity the listener requires),
    /// `ocsp_revoked` / `ocsp_unknown`, [`MISDIRECTED_CLIENT`], or, for an
    /// open connection closed because its peer no longer passes a re-check,
    /// `revoked_on_recheck` (CRL), `untrusted_on_recheck` (any other
    /// verification failure), `ocsp_revoked_on_recheck` or
    /// `ocsp_unknown_on_recheck`.
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
/// once for every open connection closed on a failed re-check, and once for
/// every connection of a misdirected client, on the
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
    /// A connection older than this is closed after the request in flight,
    /// so that no peer keeps an identity checked long ago (default 10 min;
    /// the client reconnects with a full handshake).
    pub max_connection_age: Duration,
    /// How long a response write may stay blocked by a client that does not
    /// read, and the window over which [`ServeOptions::min_send_rate`] is
    /// then measured (default 30 s).
    pub write_timeout: Duration,
    /// Bytes per second a client must accept, averaged over each
    /// [`ServeOptions::write_timeout`] window while a response write is
    /// blocked; a slower reader is disconnected (default 1 024).
    pub min_send_rate: u64,
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
            max_connection_age: Duration::from_secs(600),
            write_timeout: Duration::from_secs(30),
            min_send_rate: 1024,
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
    B: http_body::Body<Data = Bytes> + Send + 'static,
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
/// [`VerifiedPeer`] and [`PeerIdentity`] read for `kind`, then HTTP/1.1 with
/// keep-alive, each request carrying both in its extensions. A verified
/// certificate without the identity `kind` requires gets a 403
/// OperationOutcome to its request and the connection closes; a request
/// whose `Host` header is missing, repeated or invalid gets a 400
/// OperationOutcome (RFC 9112 §3.2) without reaching `service`.
///
/// While open, a connection is closed (after the request in flight) when a
/// reload of `tls` no longer verifies its peer's certificate, when its OCSP
/// status, asked again at the last answer's nextUpdate, is no longer
/// `good`, and at [`ServeOptions::max_connection_age`]; and at once when its
/// client reads responses slower than [`ServeOptions::min_send_rate`].
/// Refusals are logged with their reason and the remote address (never
/// request content) and counted.
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
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    // Every connection task holds a receiver: `closed()` on the sender
    // resolves once they have all ended.
    let (stop, _) = watch::channel(false);
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
        // Subscribed before the snapshot: a reload between the two is seen
        // by the connection's re-check.
        let reloaded = tls.subscribe();
        let loaded = tls.snapshot();
        let acceptor = TlsAcceptor::from(loaded.config.clone());
        let service = service.clone();
        let options = options.clone();
        let stopping = stop.subscribe();
        let tls = tls.clone();
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
            let chain: Vec<CertificateDer<'static>> = stream
                .get_ref()
                .1
                .peer_certificates()
                .map(|chain| chain.iter().map(|der| der.clone().into_owned()).collect())
                .unwrap_or_default();
            let Some((leaf, intermediates)) = chain.split_first() else {
                // Unreachable with a verifier that requires a certificate.
                metrics.identities_refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(listener = kind.as_str(), %remote, "no peer certificate");
                return;
            };
            // On a listener that admits misdirected clients, whose client is
            // this? Only a certificate that verifies against this listener's
            // own CAs is read as this listener's identity.
            let (peer_kind, side) = match &loaded.sides {
                Some(sides) => match sides.side_of(leaf, intermediates) {
                    Some(ClientSide::Own) => (kind, Some(ClientSide::Own)),
                    Some(ClientSide::Misdirected) => (kind.other(), Some(ClientSide::Misdirected)),
                    None => {
                        metrics.identities_refused.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(listener = kind.as_str(), %remote, "peer certificate verifies on neither side");
                        tell("identity", Some(crate::CertFingerprint::of(leaf)));
                        return;
                    }
                },
                None => (kind, None),
            };
            let peer = match VerifiedPeer::from_certificate(peer_kind, leaf) {
                Ok(peer) => Some(peer),
                Err(e) => {
                    // Verified, so it can read an answer: a 403 to its
                    // request, then the connection closes.
                    metrics.identities_refused.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(listener = kind.as_str(), %remote, reason = %e, "peer certificate refused");
                    tell("identity", Some(crate::CertFingerprint::of(leaf)));
                    None
                }
            };
            let mut recheck = None;
            if let Some(peer) = &peer {
                // The issuer: the next certificate the peer sent, else the CA
                // of the trust store that issued it.
                let issuer = intermediates
                    .first()
                    .or_else(|| loaded.trust.issuer_of(leaf));
                let verdict = match issuer {
                    Some(issuer) => options.ocsp.check(leaf, issuer).await,
                    None => Err(crate::TransportError::Ocsp("issuer not found".into())),
                };
                let ocsp_next_update = match verdict {
                    Ok(OcspVerdict::Good { next_update }) => next_update,
                    Ok(v) if v.is_acceptable() => None,
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
                };
                metrics.handshakes_ok.fetch_add(1, Ordering::Relaxed);
                if side == Some(ClientSide::Misdirected) {
                    // Served only so that the application can refuse each
                    // request with an answer; on record once per connection.
                    metrics.misdirected_clients.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(listener = kind.as_str(), %remote, fingerprint = %peer.fingerprint, "a client of the other listener connected");
                    tell(MISDIRECTED_CLIENT, Some(peer.fingerprint));
                }
                tracing::debug!(listener = kind.as_str(), %remote, peer = ?peer.identity, fingerprint = %peer.fingerprint, "peer authenticated");
                recheck = Some(Recheck::new(
                    tls,
                    reloaded,
                    chain.clone(),
                    side,
                    options.ocsp.clone(),
                    ocsp_next_update,
                    options.max_connection_age,
                ));
            }
            let fingerprint = crate::CertFingerprint::of(leaf);
            drop(loaded);
            let bad_hosts = Arc::clone(metrics);
            let hyper_service =
                hyper::service::service_fn(move |mut request: Request<Incoming>| {
                    let early = match &peer {
                        Some(peer) => {
                            request.extensions_mut().insert(peer.clone());
                            request.extensions_mut().insert(peer.identity.clone());
                            let refusal = answer::host_refusal(&request);
                            if refusal.is_some() {
                                bad_hosts.bad_host_requests.fetch_add(1, Ordering::Relaxed);
                            }
                            refusal
                        }
                        None => Some(answer::identity_refusal()),
                    };
                    let mut service = service.clone();
                    async move {
                        if let Some(early) = early {
                            return Ok(early.map(Either::Right));
                        }
                        poll_fn(|cx| service.poll_ready(cx)).await?;
                        let response = service.call(request).await?;
                        Ok::<_, S::Error>(response.map(Either::Left))
                    }
                });
            let rate = SendRate {
                window: options.write_timeout,
                min_bytes_per_second: options.min_send_rate,
            };
            let io = Paced::new(stream, rate, Arc::clone(&metrics.slow_readers));
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(options.header_read_timeout)
                .keep_alive(true);
            let connection = http.serve_connection(TokioIo::new(io), hyper_service);
            let mut connection = std::pin::pin!(connection);
            let mut stopping = stopping;
            let mut closing = false;
            loop {
                let armed = !closing;
                let close = async {
                    match &mut recheck {
                        Some(recheck) if armed => recheck.until_close().await,
                        _ => std::future::pending().await,
                    }
                };
                tokio::select! {
                    ended = connection.as_mut() => {
                        if let Err(e) = ended {
                            tracing::debug!(listener = kind.as_str(), %remote, error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    _ = stopping.wait_for(|stop| *stop), if !closing => {
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    }
                    reason = close => {
                        match reason.refusal() {
                            Some(refusal) => {
                                metrics.closed_on_recheck.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(listener = kind.as_str(), %remote, %fingerprint, reason = reason.as_str(), "peer no longer trusted: closing its connection after the request in flight");
                                tell(refusal, Some(fingerprint));
                            }
                            None => {
                                metrics.closed_at_max_age.fetch_add(1, Ordering::Relaxed);
                                tracing::debug!(listener = kind.as_str(), %remote, "connection reached its maximum age: closing after the request in flight");
                            }
                        }
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
            }
            drop(stopping);
        });
    }
    drop(listener);
    stop.send_replace(true);
    let grace = options.shutdown_grace;
    if tokio::time::timeout(grace, stop.closed()).await.is_err() {
        tracing::warn!(
            listener = kind.as_str(),
            "connections still open after the shutdown grace period"
        );
    }
}
