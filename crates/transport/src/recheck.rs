//! Whether an open connection's peer may stay: its certificate re-checked
//! against trust material reloaded since its handshake, its OCSP status
//! asked again when its last answer expires, and the connection's age
//! capped, so that no identity outlives its check (issue 16, defect 1).
//!
//! [`Recheck::until_close`] waits for the first reason to close; the serve
//! loop then lets the request in flight finish and closes the connection.

use std::time::Duration;

use rustls::pki_types::{CertificateDer, UnixTime};
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::ReloadableServerTls;
use crate::ocsp::{OcspChecker, OcspVerdict};
use crate::reload::Loaded;
use crate::trust::ClientSide;

/// The shortest wait before asking an OCSP responder again about a live
/// connection's certificate, whatever the last answer's nextUpdate says (a
/// stale-by-skew answer would otherwise be asked again in a loop).
const MIN_OCSP_RECHECK: Duration = Duration::from_secs(1);

/// Why an open connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// The peer's certificate no longer verifies against the reloaded trust
    /// material (revoked, CRL expired, certificate expired...), or its
    /// client side changed.
    Untrusted {
        /// Whether a CRL lists it.
        revoked: bool,
    },
    /// The OCSP responder now says revoked.
    OcspRevoked,
    /// The OCSP status can no longer be established (fail closed).
    OcspUnknown,
    /// The connection reached its maximum age.
    MaxAge,
}

impl CloseReason {
    /// The [`crate::ConnectionRefusal::reason`] told for it, if it is a
    /// refusal (reaching the maximum age is not).
    pub(crate) fn refusal(self) -> Option<&'static str> {
        match self {
            Self::Untrusted { revoked: true } => Some("revoked_on_recheck"),
            Self::Untrusted { revoked: false } => Some("untrusted_on_recheck"),
            Self::OcspRevoked => Some("ocsp_revoked_on_recheck"),
            Self::OcspUnknown => Some("ocsp_unknown_on_recheck"),
            Self::MaxAge => None,
        }
    }

    /// A snake-case label for logs.
    pub(crate) fn as_str(self) -> &'static str {
        self.refusal().unwrap_or("max_age")
    }
}

/// The state needed to re-check one connection's peer.
pub(crate) struct Recheck {
    tls: ReloadableServerTls,
    reloaded: watch::Receiver<u64>,
    /// The certificate chain the peer sent, leaf first.
    chain: Vec<CertificateDer<'static>>,
    /// With misdirected clients admitted: the side the peer verified on at
    /// the handshake, which it must keep.
    side: Option<ClientSide>,
    ocsp: OcspChecker,
    /// When to ask the OCSP responder again (the last `good`'s nextUpdate).
    ocsp_due: Option<Instant>,
    /// When the connection reaches its maximum age.
    max_age_at: Option<Instant>,
}

impl Recheck {
    /// Starts watching: `reloaded` must be subscribed before the handshake
    /// so that no reload is missed. `ocsp_next_update` is the handshake's
    /// OCSP answer's nextUpdate, if it had one.
    pub(crate) fn new(
        tls: ReloadableServerTls,
        reloaded: watch::Receiver<u64>,
        chain: Vec<CertificateDer<'static>>,
        side: Option<ClientSide>,
        ocsp: OcspChecker,
        ocsp_next_update: Option<OffsetDateTime>,
        max_age: Duration,
    ) -> Self {
        Self {
            tls,
            reloaded,
            chain,
            side,
            ocsp,
            ocsp_due: ocsp_next_update.map(due),
            max_age_at: Instant::now().checked_add(max_age),
        }
    }

    /// Resolves with the first reason to close the connection; pending for
    /// ever if none comes.
    pub(crate) async fn until_close(&mut self) -> CloseReason {
        loop {
            let max_age = sleep_until(self.max_age_at);
            let ocsp_due = sleep_until(self.ocsp_due);
            tokio::select! {
                changed = self.reloaded.changed() => {
                    if changed.is_err() {
                        // The configuration is gone: nothing will reload.
                        self.reloaded = watch::Sender::new(0).subscribe();
                        continue;
                    }
                    let loaded = self.tls.snapshot();
                    if let Err(reason) = self.verify(&loaded) {
                        return reason;
                    }
                    if let Err(reason) = self.ask_ocsp(&loaded).await {
                        return reason;
                    }
                }
                () = ocsp_due => {
                    let loaded = self.tls.snapshot();
                    if let Err(reason) = self.ask_ocsp(&loaded).await {
                        return reason;
                    }
                }
                () = max_age => return CloseReason::MaxAge,
            }
        }
    }

    /// The peer's chain against the verifier in force now (chain, validity,
    /// EKU, CRLs), on the same side as at the handshake.
    fn verify(&self, loaded: &Loaded) -> Result<(), CloseReason> {
        let untrusted = CloseReason::Untrusted { revoked: false };
        let Some((leaf, intermediates)) = self.chain.split_first() else {
            return Err(untrusted);
        };
        loaded
            .verifier
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map_err(|e| CloseReason::Untrusted {
                revoked: matches!(
                    e,
                    rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked)
                ),
            })?;
        match (&loaded.sides, self.side) {
            (Some(sides), Some(side)) if sides.side_of(leaf, intermediates) != Some(side) => {
                Err(untrusted)
            }
            _ => Ok(()),
        }
    }

    /// The OCSP status now, for a certificate that names a responder (the
    /// checker's cache answers until the last response's nextUpdate).
    async fn ask_ocsp(&mut self, loaded: &Loaded) -> Result<(), CloseReason> {
        let Some(leaf) = self.chain.first() else {
            return Err(CloseReason::OcspUnknown);
        };
        let issuer = self
            .chain
            .get(1)
            .or_else(|| loaded.trust.issuer_of(leaf))
            .cloned();
        let Some(issuer) = issuer else {
            return Err(CloseReason::OcspUnknown);
        };
        match self.ocsp.check(leaf, &issuer).await {
            Ok(OcspVerdict::NotApplicable) => {
                self.ocsp_due = None;
                Ok(())
            }
            Ok(OcspVerdict::Good { next_update }) => {
                self.ocsp_due = next_update.map(due);
                Ok(())
            }
            Ok(OcspVerdict::Revoked) => Err(CloseReason::OcspRevoked),
            Err(_) => Err(CloseReason::OcspUnknown),
        }
    }
}

/// The instant of `next_update`, at least [`MIN_OCSP_RECHECK`] from now.
fn due(next_update: OffsetDateTime) -> Instant {
    let wait = next_update - OffsetDateTime::now_utc();
    let wait = Duration::try_from(wait).unwrap_or(Duration::ZERO);
    let now = Instant::now();
    now.checked_add(wait.max(MIN_OCSP_RECHECK))
        .unwrap_or(now + MIN_OCSP_RECHECK)
}

/// Sleeps until `at`, or for ever.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
