//! Connections a listener refused (TLS handshake, certificate identity,
//! OCSP, a national system on the other listener) as DICOM Security Alert
//! AuditEvents in the hash chain, written in the background, on both
//! listeners. `ehds-transport` only tells (`RefusalObserver`); this records.
//!
//! Rate-limited per source and reason ([`AlertLimiter`]), so that nobody can
//! silence the audit (issue 16 #3): a flood of one reason from one source
//! uses only its own budget, never another reason's or another source's.
//! What the limit leaves unrecorded is counted on `/metrics`
//! (`ehds_security_alerts_suppressed_total`), logged as a warning once per
//! source, reason and minute, and stated in the next record written for
//! that source and reason.

use std::net::IpAddr;
use std::sync::Mutex;

use ehds_fhir::audit_event;
use ehds_store::NewAuditRecord;
use hashlink::LruCache;
use time::OffsetDateTime;

use crate::edge::AppState;
use crate::error::GatewayError;

/// Most security alerts recorded per minute for one source and one reason:
/// the rest are counted, not recorded, so a flood cannot flood the chain.
pub(crate) const SECURITY_ALERTS_PER_MINUTE: u32 = 10;

/// How many (source, reason) budgets a listener keeps: the least recently
/// seen leaves first, so the limiter's memory is bounded whatever the
/// number of sources.
pub(crate) const SECURITY_ALERT_KEYS: usize = 4096;

/// The source an alert is counted against: an IPv4 address, or an IPv6
/// address's /64 (one site's usual allocation, so one host cannot take
/// fresh budgets by changing its interface identifier).
fn source_of(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let [a, b, c, d, ..] = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
        }
    }
}

/// One (source, reason)'s budget in its current minute.
#[derive(Debug, Clone, Copy, Default)]
struct Budget {
    /// Minutes since the Unix epoch.
    minute: i64,
    /// Alerts recorded in that minute.
    recorded: u32,
    /// Alerts not recorded since the last one recorded (any minute).
    suppressed: u64,
}

/// What to do with one refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Record it, stating how many of its source and reason were not.
    Record {
        /// Not recorded since the last record of this source and reason.
        suppressed_before: u64,
    },
    /// Count it only; `first` when it is the first suppressed of its
    /// source, reason and minute (the one logged).
    Suppress {
        /// The first suppressed in this minute.
        first: bool,
    },
}

/// The per-(source, reason) rate limit of one listener's security alerts,
/// in bounded memory (an LRU of [`SECURITY_ALERT_KEYS`] budgets).
#[derive(Debug)]
pub(crate) struct AlertLimiter {
    budgets: Mutex<LruCache<(IpAddr, &'static str), Budget>>,
    per_minute: u32,
}

impl AlertLimiter {
    /// A limiter of `per_minute` alerts per source and reason, keeping at
    /// most `keys` budgets.
    pub(crate) fn new(per_minute: u32, keys: usize) -> Self {
        Self {
            budgets: Mutex::new(LruCache::new(keys.max(1))),
            per_minute,
        }
    }

    /// Whether a refusal of `reason` from `remote` in `minute` (since the
    /// Unix epoch) is recorded. A poisoned lock records (fail open towards
    /// the audit, never towards silence).
    pub(crate) fn admit(&self, remote: IpAddr, reason: &'static str, minute: i64) -> Admission {
        let Ok(mut budgets) = self.budgets.lock() else {
            return Admission::Record {
                suppressed_before: 0,
            };
        };
        let key = (source_of(remote), reason);
        let budget = match budgets.get_mut(&key) {
            Some(budget) => budget,
            None => {
                budgets.insert(
                    key,
                    Budget {
                        minute,
                        ..Budget::default()
                    },
                );
                match budgets.get_mut(&key) {
                    Some(budget) => budget,
                    None => {
                        return Admission::Record {
                            suppressed_before: 0,
                        };
                    }
                }
            }
        };
        if budget.minute != minute {
            budget.minute = minute;
            budget.recorded = 0;
        }
        if budget.recorded < self.per_minute {
            budget.recorded += 1;
            let suppressed_before = std::mem::take(&mut budget.suppressed);
            Admission::Record { suppressed_before }
        } else {
            budget.suppressed += 1;
            // Within a minute, the first suppressed one comes right after
            // the budget's last record.
            Admission::Suppress {
                first: budget.suppressed == 1,
            }
        }
    }
}

/// Records connections a listener refused (TLS handshake, certificate
/// identity, OCSP, misdirected clients) as Security Alert AuditEvents,
/// rate-limited per source and reason ([`AlertLimiter`]); written in the
/// background.
pub(crate) fn refusal_observer(
    state: AppState,
    source_ncp: audit_event::NcpParty,
) -> ehds_transport::RefusalObserver {
    let limiter = AlertLimiter::new(SECURITY_ALERTS_PER_MINUTE, SECURITY_ALERT_KEYS);
    ehds_transport::RefusalObserver::new(move |refusal| {
        let now = OffsetDateTime::now_utc();
        let minute = now.unix_timestamp().div_euclid(60);
        let listener = refusal.listener.as_str();
        let suppressed_before = match limiter.admit(refusal.remote.ip(), refusal.reason, minute) {
            Admission::Record { suppressed_before } => suppressed_before,
            Admission::Suppress { first } => {
                state
                    .metrics
                    .count_security_alert_suppressed(listener, refusal.reason);
                if first {
                    tracing::warn!(
                        listener,
                        reason = refusal.reason,
                        remote = %refusal.remote.ip(),
                        per_minute = SECURITY_ALERTS_PER_MINUTE,
                        "security alerts of this source and reason over the rate limit: counted, not recorded, until the next minute"
                    );
                }
                return;
            }
        };
        let alert = audit_event::SecurityAlert {
            recorded: now,
            source_ncp: source_ncp.clone(),
            remote_address: refusal.remote.ip().to_string(),
            reason: refusal.reason.to_owned(),
            peer_fingerprint: refusal.fingerprint.map(|f| f.to_hex()),
            suppressed_before,
        };
        let state = state.clone();
        tokio::spawn(async move {
            let written = match audit_event::security_alert_json(&alert) {
                Ok(content) => state
                    .store
                    .append_audit(NewAuditRecord {
                        patient_identifier: None,
                        outcome: audit_event::AuditOutcome::MinorFailure.code(),
                        content: &content,
                        recorded_at: alert.recorded,
                    })
                    .await
                    .map(|_| ())
                    .map_err(GatewayError::from),
                Err(error) => Err(GatewayError::from(error)),
            };
            if let Err(error) = written {
                tracing::error!(%error, "the security alert of a refused connection could not be written");
            }
        });
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const FLOODER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 8));

    /// A flood of no-certificate refusals from one source leaves every
    /// other reason of that source, and every other source, its own budget
    /// in the same minute; the next record of the flooded key states how
    /// many were not recorded (issue 16 #3).
    #[test]
    fn a_flood_of_one_reason_silences_no_other() {
        let limiter = AlertLimiter::new(SECURITY_ALERTS_PER_MINUTE, 64);
        let minute = 29_000_000;
        let mut recorded = 0;
        let mut firsts = 0;
        for _ in 0..1000 {
            match limiter.admit(FLOODER, "no_certificate", minute) {
                Admission::Record { .. } => recorded += 1,
                Admission::Suppress { first } => firsts += u32::from(first),
            }
        }
        assert_eq!(recorded, SECURITY_ALERTS_PER_MINUTE);
        assert_eq!(firsts, 1, "one warning per source, reason and minute");
        assert_eq!(
            limiter.admit(FLOODER, "revoked", minute),
            Admission::Record {
                suppressed_before: 0
            }
        );
        assert_eq!(
            limiter.admit(OTHER, "no_certificate", minute),
            Admission::Record {
                suppressed_before: 0
            }
        );
        // The next minute, the flooded key's first record carries the count.
        assert_eq!(
            limiter.admit(FLOODER, "no_certificate", minute + 1),
            Admission::Record {
                suppressed_before: 1000 - u64::from(SECURITY_ALERTS_PER_MINUTE)
            }
        );
        assert_eq!(
            limiter.admit(FLOODER, "no_certificate", minute + 1),
            Admission::Record {
                suppressed_before: 0
            }
        );
    }

    /// The limiter keeps at most its number of keys: many sources cannot
    /// grow it; an evicted source starts again with a fresh budget.
    #[test]
    fn the_limiter_s_memory_is_bounded() {
        let limiter = AlertLimiter::new(1, 8);
        for host in 0..=255u8 {
            let _ = limiter.admit(
                IpAddr::V4(Ipv4Addr::new(198, 51, 100, host)),
                "unknown_issuer",
                1,
            );
        }
        let len = limiter
            .budgets
            .lock()
            .map(|b| b.len())
            .unwrap_or(usize::MAX);
        assert_eq!(len, 8);
    }

    /// The interface identifiers of one IPv6 /64 share one budget.
    #[test]
    fn one_ipv6_64_is_one_source() {
        let limiter = AlertLimiter::new(1, 8);
        let host = |last| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, last));
        assert!(matches!(
            limiter.admit(host(1), "revoked", 1),
            Admission::Record { .. }
        ));
        assert!(matches!(
            limiter.admit(host(2), "revoked", 1),
            Admission::Suppress { .. }
        ));
    }
}
