//! Mutual-TLS transport of the NCP gateway: trust stores and revocation, the
//! listeners' and the outbound client's TLS configurations, their reload, the
//! accept loop, and the peer identity read from a verified certificate. (The
//! development PKI the tests and local runs use is `ehds-dev-pki`'s.)
//!
//! Must not know about: FHIR content, validation, storage or routing rules
//! (the NCP directory, which peer may ask what).
//!
//! # Two trust domains
//!
//! * The **federation** listener and the outbound client trust only the
//!   federation CA: peers are other countries' NCPs.
//! * The **national** listener trusts only the country's national CA: hospital
//!   EHRs, pharmacies, doctors' systems, the patient portal.
//!
//! A certificate from one domain is therefore refused at the handshake on the
//! other's listener (unknown issuer), unless the listener names that domain's
//! CAs as [`ServerTlsFiles::misdirected_clients`] (the gateway does so for
//! its own national CA on its federation listener): such a certificate is
//! verified in full like the listener's own clients', then identified as the
//! other listener's kind (never as this listener's: only a certificate that
//! verifies against the listener's own CAs alone is), reported as
//! [`MISDIRECTED_CLIENT`] and served, so that the application can answer a
//! misconfigured national system with a refusal it can read, and record it.
//!
//! # Verification policy (there is no option to weaken any of it)
//!
//! * **TLS 1.3 only** (RFC 8446). Every 1.3 suite is AEAD with ephemeral
//!   (EC)DHE, certificates travel encrypted, and renegotiation is gone; all
//!   peers are systems the federation or the country configures, so no
//!   legacy client needs TLS 1.2. Crypto: rustls with the *ring* provider.
//! * **Client certificate required** on every listener and verified by
//!   webpki ([`TrustStore::client_verifier`]): chain to a trust anchor,
//!   validity period, EKU `id-kp-clientAuth` (RFC 5280 §4.2.1.12), and an
//!   end entity must not be a CA (basicConstraints cA=TRUE is refused,
//!   RFC 5280 §4.2.1.9). The outbound client does the same for servers with
//!   EKU `id-kp-serverAuth` and checks the URL's host against the
//!   certificate's SAN (RFC 6125).
//! * **Revocation fails closed** (RFC 5280 §6.3): every certificate of the
//!   chain must be covered by a CRL of its issuer; a CA with no CRL makes
//!   [`TrustStore::load`] fail (rustls would otherwise skip revocation
//!   entirely); an unknown status is refused, and a CRL past its
//!   `nextUpdate` (RFC 5280 §5.1.2.5) makes every handshake it covers fail
//!   until a fresh CRL is loaded ([`ReloadableServerTls::reload`]).
//! * **OCSP** (RFC 6960) on top, for certificates that name a responder in
//!   their Authority Information Access extension: after the handshake, the
//!   listener asks the responder (or its cache, valid until the response's
//!   nextUpdate) and admits the peer only on a verified, current `good`;
//!   revoked, unknown, unreachable, badly signed or stale all refuse. See
//!   [`ocsp`]. (The outbound client relies on CRLs only.)
//! * **No session resumption**: every connection makes a full handshake, so
//!   a certificate revoked by a reloaded CRL cannot come back through a
//!   resumed session.
//! * **Revocation reaches open connections**: after each reload
//!   ([`ReloadableServerTls::reload`]) every open connection's peer
//!   certificate is verified again against the new CAs and CRLs (and its
//!   OCSP status asked again, as also when the last answer's nextUpdate
//!   passes); one that fails is closed after the request in flight and
//!   reported to the [`RefusalObserver`]. No connection lives longer than
//!   [`ServeOptions::max_connection_age`]. The outbound
//!   [`FederationClient`] swaps its pool on reload and renews it with age
//!   ([`PoolLimits`]).
//! * **Bounded handshakes and slow clients**: a handshake not finished
//!   within [`ServeOptions::handshake_timeout`] is dropped; the outbound
//!   client's connect timeout covers TCP and TLS; a client that reads its
//!   responses slower than [`ServeOptions::min_send_rate`] is disconnected.
//!
//! # Answers of the transport itself
//!
//! Two answers never reach the application, both FHIR OperationOutcomes
//! (built by hand, see `answer.rs`): 400 to a request without exactly one
//! valid `Host` header (RFC 9112 §3.2), and 403 to a verified client whose
//! certificate lacks the identity the listener requires.
//!
//! # Identity convention
//!
//! * Federation NCP certificates (federation CA): subject `C=<ISO 3166-1
//!   alpha-2>` and `CN=<NCP id>` (plus an `O`), SAN DNS = the NCP's host
//!   name as listed in the NCP directory. Server certificates carry EKU
//!   serverAuth, client certificates EKU clientAuth. Read as
//!   [`PeerIdentity::FederationNcp`].
//! * National client certificates (national CA): subject `C`,
//!   `O=<organisation>`, `OU=<client kind>` (one of
//!   [`NationalClientKind`]: `ehr-system`, `pharmacy`, `doctor-system`,
//!   `patient-portal`), `CN=<client id>`; EKU clientAuth. Read as
//!   [`PeerIdentity::NationalClient`].
//!
//! Each attribute must occur exactly once; a verified certificate without
//! them is refused (its request is answered 403, then the connection is
//! closed). Comparing the identity with the NCP directory or the gateway's
//! own country is the caller's job.

mod answer;
mod client;
mod error;
mod expiry;
mod federation_client;
mod identity;
pub mod ocsp;
mod recheck;
mod reload;
mod send_rate;
mod serve;
mod trust;

pub use client::{ClientTimeouts, PoolLimits, federation_client};
pub use error::TransportError;
pub use expiry::{Expiry, ExpiryKind};
pub use federation_client::{
    ExpectedPeer, FederationClient, PREFLIGHT_VALIDITY, PeerFailure, VerifiedAnswer,
};
pub use identity::{CertFingerprint, ListenerKind, NationalClientKind, PeerIdentity, VerifiedPeer};
pub use reload::ReloadableServerTls;
pub use serve::{
    ConnectionRefusal, HandshakeRefusal, ListenerCounts, ListenerMetrics, MISDIRECTED_CLIENT,
    RefusalObserver, ServeOptions, serve, serve_with_options,
};
pub use trust::{
    ALPN_HTTP11, AnchorSummary, IdentityFiles, ServerTls, ServerTlsFiles, TlsIdentity, TrustFiles,
    TrustStore, client_config, crypto_provider,
};
