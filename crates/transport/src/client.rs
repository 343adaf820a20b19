//! The outbound HTTP client to other countries' NCPs, and the limits of
//! its connection pool.

use std::time::Duration;

use crate::{TlsIdentity, TransportError, TrustStore, client_config};

/// Time limits of the outbound client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientTimeouts {
    /// TCP connect plus TLS handshake (default 5 s): a peer that accepts TCP
    /// but never completes the handshake fails after this.
    pub connect: Duration,
    /// The whole request, from connect to the end of the response body
    /// (default 30 s).
    pub request: Duration,
}

impl Default for ClientTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            request: Duration::from_secs(30),
        }
    }
}

/// A `reqwest::Client` for calling other NCPs: mutual TLS with the gateway's
/// federation client certificate (`identity`), servers verified against
/// `trust` (the federation CA and its CRLs, see [`client_config`]) with the
/// URL's host checked against the server certificate's SAN (RFC 6125),
/// HTTPS only, no redirects followed, no proxy (and no proxy taken from the
/// environment), TLS 1.3 only.
///
/// The caller takes the URL from the NCP directory; the host in it is the
/// name the server certificate must carry.
///
/// Idle pooled connections close after the default
/// [`PoolLimits::idle_timeout`]; [`crate::FederationClient`] also renews
/// the whole pool on reload and with age.
pub fn federation_client(
    identity: &TlsIdentity,
    trust: &TrustStore,
    timeouts: ClientTimeouts,
) -> Result<reqwest::Client, TransportError> {
    pooled_client(identity, trust, timeouts, PoolLimits::default())
}

/// [`federation_client`] with the idle limit of `pool`.
pub(crate) fn pooled_client(
    identity: &TlsIdentity,
    trust: &TrustStore,
    timeouts: ClientTimeouts,
    pool: PoolLimits,
) -> Result<reqwest::Client, TransportError> {
    let config = client_config(identity, trust)?;
    let config = std::sync::Arc::unwrap_or_clone(config);
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .http1_only()
        // The caller reads the server's certificate from each response
        // (`reqwest::tls::TlsInfo`) to check its subject against the NCP
        // directory, beyond the host-name check.
        .tls_info(true)
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.request)
        .pool_idle_timeout(pool.idle_timeout)
        .build()?)
}

/// Limits of the outbound client's connection pool, so that no pooled
/// connection outlives the check of its server's certificate for long
/// (issue 16, defect 1: revocation must reach the outbound pool too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    /// An idle pooled connection is closed after this (default 30 s).
    pub idle_timeout: Duration,
    /// The client and its pool are replaced by fresh ones after this
    /// (default 10 min): pooled connections then close once their request
    /// ends, and new ones make a full handshake.
    pub max_age: Duration,
}

impl Default for PoolLimits {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30),
            max_age: Duration::from_secs(600),
        }
    }
}
