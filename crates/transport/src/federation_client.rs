//! The outbound federation client that checks who answers: every request to
//! another country's NCP goes through [`FederationClient`], which returns the
//! answer only once the answering server's certificate is the NCP the caller
//! expects (subject `C` and `CN`, beyond the host-name check of the
//! handshake) and is not revoked by OCSP (for a certificate naming a
//! responder); and which checks a server before anything about a patient is
//! sent to it ([`FederationClient::preflight`]: a request carrying no patient
//! data, whose verdict stands for [`PREFLIGHT_VALIDITY`]).
//!
//! What peer is expected comes from the caller (the NCP directory is the
//! gateway's); this module knows certificates, not routing.
//!
//! Its connection pool follows the trust material (issue 16, defect 1): a
//! reload ([`FederationClient::reload`], or [`FederationClient::follow`] of
//! the federation listener) swaps in a new client whose connections all make
//! a new handshake against the reloaded CAs and CRLs, and the client is
//! renewed after [`crate::PoolLimits::max_age`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::client::pooled_client;
use crate::ocsp::{OcspChecker, OcspOptions};
use crate::{
    ClientTimeouts, IdentityFiles, ListenerKind, PeerIdentity, PoolLimits, ReloadableServerTls,
    TlsIdentity, TransportError, TrustFiles, TrustStore,
};

/// How long a pre-flight check of a peer's server certificate (identity and
/// OCSP, made with a request that carries no patient data) stands before it
/// is made again ahead of the next request.
pub const PREFLIGHT_VALIDITY: Duration = Duration::from_secs(300);

/// The NCP a request is meant for, as the directory names it.
#[derive(Debug, Clone, Copy)]
pub struct ExpectedPeer<'a> {
    /// The NCP's id (the key its pre-flight verdict is kept under).
    pub ncp_id: &'a str,
    /// Its certificate's subject `C`.
    pub country: &'a str,
    /// Its certificate's subject `CN`.
    pub common_name: &'a str,
    /// A URL of its federation API (the base the directory gives); the
    /// pre-flight request, which carries no patient data, goes to `/healthz`
    /// on its host, and only when no check of it stands.
    pub federation_url: &'a str,
}

/// Why a request to a peer gave no usable answer. Carries no patient data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerFailure {
    /// The peer did not answer in time.
    Timeout,
    /// The peer could not be reached, or its answer broke off.
    Unreachable,
    /// A URL to call is invalid.
    InvalidUrl,
    /// The answering server's certificate could not be read.
    CertificateUnreadable,
    /// The answering server's certificate is not the expected NCP's.
    NotTheExpectedPeer,
    /// Its issuer is not a federation CA.
    UnknownIssuer,
    /// OCSP says revoked (or not good).
    Revoked,
    /// OCSP status could not be established (fail closed).
    RevocationUnknown,
    /// The answer is larger than the limit.
    TooLarge,
}

impl PeerFailure {
    /// What happened, in words without patient data.
    pub fn message(self) -> &'static str {
        match self {
            Self::Timeout => "the peer did not answer in time",
            Self::Unreachable => "the peer could not be reached",
            Self::InvalidUrl => "the peer's federation URL is invalid",
            Self::CertificateUnreadable => "the peer's certificate could not be read",
            Self::NotTheExpectedPeer => {
                "the answering server's certificate is not the directory's NCP for that country"
            }
            Self::UnknownIssuer => "the peer's certificate issuer is not a federation CA",
            Self::Revoked => "the peer's certificate is revoked (OCSP)",
            Self::RevocationUnknown => {
                "the revocation status of the peer's certificate could not be established (OCSP)"
            }
            Self::TooLarge => "the peer's answer is larger than this gateway accepts",
        }
    }
}

impl std::fmt::Display for PeerFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// A peer's answer whose server certificate passed the checks.
#[derive(Debug)]
pub struct VerifiedAnswer {
    /// HTTP status.
    pub status: u16,
    /// The response headers.
    pub headers: http::HeaderMap,
    /// The body, read within the limit.
    pub body: bytes::Bytes,
}

/// The mutual-TLS client to other countries' NCPs, with the checks of the
/// answering server that the handshake alone does not make, and a pool
/// renewed on reload and with age. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct FederationClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The files to reload from ([`FederationClient::load`]).
    source: Option<(IdentityFiles, TrustFiles)>,
    timeouts: ClientTimeouts,
    pool: PoolLimits,
    current: ArcSwap<Built>,
    ocsp: OcspChecker,
    preflighted: Mutex<HashMap<String, Instant>>,
    reloads: AtomicU64,
}

/// One HTTP client, the material it was built from, and when.
#[derive(Debug)]
struct Built {
    client: reqwest::Client,
    identity: TlsIdentity,
    trust: TrustStore,
    at: Instant,
}

impl Built {
    fn new(
        identity: TlsIdentity,
        trust: TrustStore,
        timeouts: ClientTimeouts,
        pool: PoolLimits,
    ) -> Result<Self, TransportError> {
        Ok(Self {
            client: pooled_client(&identity, &trust, timeouts, pool)?,
            identity,
            trust,
            at: Instant::now(),
        })
    }
}

impl FederationClient {
    /// A client with the gateway's federation `identity`, servers verified
    /// against `trust` ([`crate::federation_client`]); [`Self::reload`]
    /// renews its pool with the same material.
    pub fn new(
        identity: &TlsIdentity,
        trust: TrustStore,
        timeouts: ClientTimeouts,
    ) -> Result<Self, TransportError> {
        let pool = PoolLimits::default();
        let built = Built::new(identity.clone(), trust, timeouts, pool)?;
        Ok(Self::from_parts(None, timeouts, pool, built))
    }

    /// A client reading its identity and trust store from files, which
    /// [`Self::reload`] reads again.
    pub fn load(
        identity: IdentityFiles,
        trust: TrustFiles,
        timeouts: ClientTimeouts,
        pool: PoolLimits,
    ) -> Result<Self, TransportError> {
        let built = Built::new(
            TlsIdentity::load(&identity)?,
            TrustStore::load(&trust)?,
            timeouts,
            pool,
        )?;
        Ok(Self::from_parts(
            Some((identity, trust)),
            timeouts,
            pool,
            built,
        ))
    }

    fn from_parts(
        source: Option<(IdentityFiles, TrustFiles)>,
        timeouts: ClientTimeouts,
        pool: PoolLimits,
        built: Built,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                source,
                timeouts,
                pool,
                current: ArcSwap::from_pointee(built),
                ocsp: OcspChecker::new(OcspOptions::default()),
                preflighted: Mutex::default(),
                reloads: AtomicU64::new(0),
            }),
        }
    }

    /// The client in force, replaced first by a fresh one (same material,
    /// empty pool) if it is older than [`PoolLimits::max_age`].
    fn current(&self) -> Arc<Built> {
        let inner = &self.inner;
        let current = inner.current.load_full();
        if current.at.elapsed() < inner.pool.max_age {
            return current;
        }
        match Built::new(
            current.identity.clone(),
            current.trust.clone(),
            inner.timeouts,
            inner.pool,
        ) {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                // Whoever swaps first wins; a concurrent caller's fresh
                // client is simply dropped.
                let _ = inner.current.compare_and_swap(&current, Arc::clone(&fresh));
                fresh
            }
            Err(error) => {
                tracing::error!(%error, "renewing the federation client failed; the current one stays");
                current
            }
        }
    }

    /// When the material in force stops serving: the `notAfter` of the
    /// client certificate chain and of every trusted CA, and the
    /// `nextUpdate` of every CRL in force.
    pub fn expiries(&self) -> Vec<crate::Expiry> {
        let current = self.inner.current.load();
        let mut expiries = current.identity.expiries();
        expiries.extend(current.trust.expiries());
        expiries
    }

    /// Re-reads identity, CAs and CRLs (from the files of [`Self::load`];
    /// a client made by [`Self::new`] keeps its material) and swaps in a new
    /// HTTP client: from now on every request makes a new handshake checked
    /// against them (a server certificate revoked by the new CRL is
    /// refused), the old pool's connections close once their requests end,
    /// and standing pre-flight checks are forgotten. On any error the
    /// client in force stays and the error is returned.
    pub fn reload(&self) -> Result<(), TransportError> {
        let inner = &self.inner;
        let fresh = match &inner.source {
            Some((identity, trust)) => TlsIdentity::load(identity).and_then(|identity| {
                Built::new(
                    identity,
                    TrustStore::load(trust)?,
                    inner.timeouts,
                    inner.pool,
                )
            }),
            None => {
                let current = inner.current.load();
                Built::new(
                    current.identity.clone(),
                    current.trust.clone(),
                    inner.timeouts,
                    inner.pool,
                )
            }
        };
        match fresh {
            Ok(fresh) => {
                inner.current.store(Arc::new(fresh));
                if let Ok(mut checked) = inner.preflighted.lock() {
                    checked.clear();
                }
                inner.reloads.fetch_add(1, Ordering::Relaxed);
                tracing::info!("federation client reloaded");
                Ok(())
            }
            Err(error) => {
                tracing::error!(%error, "federation client reload failed; the previous client stays in force");
                Err(error)
            }
        }
    }

    /// Reloads this client after every successful reload of `listener`
    /// (the gateway's federation listener reads the same CAs and CRLs), so
    /// that whatever reloads the listener (SIGHUP, the periodic reload)
    /// renews the outbound pool too. Needs a Tokio runtime: returns false
    /// (and does nothing) outside one. The follower stops when the last
    /// clone of this client is dropped.
    pub fn follow(&self, listener: &ReloadableServerTls) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("no Tokio runtime: the federation client will not follow reloads");
            return false;
        };
        let mut reloaded = listener.subscribe();
        let client = Arc::downgrade(&self.inner);
        runtime.spawn(async move {
            while reloaded.changed().await.is_ok() {
                let Some(inner) = client.upgrade() else {
                    break;
                };
                // Errors are logged; the client in force stays.
                let _ = FederationClient { inner }.reload();
            }
        });
        true
    }

    /// How many reloads succeeded.
    pub fn reload_count(&self) -> u64 {
        self.inner.reloads.load(Ordering::Relaxed)
    }

    /// A request to build (method and URL); send it with [`Self::send`].
    pub fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.current().client.request(method, url)
    }

    /// Checks the expected peer's server certificate (identity, OCSP) with a
    /// request that carries no patient data, unless a check of it stands
    /// ([`PREFLIGHT_VALIDITY`]). Call before sending anything about a
    /// patient; every answer is checked again all the same.
    pub async fn preflight(&self, expected: ExpectedPeer<'_>) -> Result<(), PeerFailure> {
        let now = Instant::now();
        let standing = self
            .inner
            .preflighted
            .lock()
            .map(|checked| {
                checked
                    .get(expected.ncp_id)
                    .is_some_and(|until| *until > now)
            })
            .unwrap_or(false);
        if standing {
            return Ok(());
        }
        let url = reqwest::Url::parse(expected.federation_url)
            .and_then(|base| base.join("/healthz"))
            .map_err(|_| PeerFailure::InvalidUrl)?;
        let response = self
            .current()
            .client
            .get(url)
            .send()
            .await
            .map_err(failure_of)?;
        self.check_server(&response, expected).await?;
        if let Ok(mut checked) = self.inner.preflighted.lock() {
            checked.insert(expected.ncp_id.to_owned(), now + PREFLIGHT_VALIDITY);
        }
        Ok(())
    }

    /// Sends `request`, checks the answering server is `expected` (identity
    /// and OCSP) and reads the body up to `max_body` bytes.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
        expected: ExpectedPeer<'_>,
        max_body: usize,
    ) -> Result<VerifiedAnswer, PeerFailure> {
        let response = request.send().await.map_err(failure_of)?;
        self.check_server(&response, expected).await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = read_limited(response, max_body).await?;
        Ok(VerifiedAnswer {
            status,
            headers,
            body,
        })
    }

    async fn check_server(
        &self,
        response: &reqwest::Response,
        expected: ExpectedPeer<'_>,
    ) -> Result<(), PeerFailure> {
        let leaf = response
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(reqwest::tls::TlsInfo::peer_certificate)
            .ok_or(PeerFailure::CertificateUnreadable)?;
        match PeerIdentity::from_certificate(ListenerKind::Federation, leaf) {
            Ok(PeerIdentity::FederationNcp { country, ncp_id })
                if country == expected.country && ncp_id == expected.common_name => {}
            _ => return Err(PeerFailure::NotTheExpectedPeer),
        }
        // A certificate that names no responder is `NotApplicable` (CRLs
        // alone decide, at the handshake).
        let built = self.current();
        let issuer = built
            .trust
            .issuer_of(leaf)
            .ok_or(PeerFailure::UnknownIssuer)?;
        match self.inner.ocsp.check(leaf, issuer).await {
            Ok(verdict) if verdict.is_acceptable() => Ok(()),
            Ok(_) => Err(PeerFailure::Revoked),
            Err(_) => Err(PeerFailure::RevocationUnknown),
        }
    }
}

fn failure_of(error: reqwest::Error) -> PeerFailure {
    if error.is_timeout() {
        PeerFailure::Timeout
    } else {
        PeerFailure::Unreachable
    }
}

async fn read_limited(
    mut response: reqwest::Response,
    max_body: usize,
) -> Result<bytes::Bytes, PeerFailure> {
    if response
        .content_length()
        .is_some_and(|n| n > max_body as u64)
    {
        return Err(PeerFailure::TooLarge);
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > max_body {
                    return Err(PeerFailure::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(bytes::Bytes::from(body)),
            Err(error) => return Err(failure_of(error)),
        }
    }
}
