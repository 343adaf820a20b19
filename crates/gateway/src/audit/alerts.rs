//! Connections a listener refused (TLS handshake, certificate identity,
//! OCSP, a national system on the federation listener) as DICOM Security
//! Alert AuditEvents in the hash chain, at most
//! [`SECURITY_ALERTS_PER_MINUTE`] a minute per listener, written in the
//! background. `ehds-transport` only tells (`RefusalObserver`); this records.

use ehds_fhir::audit_event;
use ehds_store::NewAuditRecord;
use time::OffsetDateTime;

use crate::edge::AppState;
use crate::error::GatewayError;

/// Most security alerts recorded per minute and listener: a flood of
/// refused handshakes is counted on `/metrics` but cannot flood the chain.
pub(crate) const SECURITY_ALERTS_PER_MINUTE: u32 = 60;

/// Records connections the federation listener refused (TLS handshake,
/// certificate identity, OCSP) as Security Alert AuditEvents, at most
/// [`SECURITY_ALERTS_PER_MINUTE`] a minute; written in the background.
pub(crate) fn refusal_observer(
    state: AppState,
    source_ncp: audit_event::NcpParty,
) -> ehds_transport::RefusalObserver {
    let budget = std::sync::Arc::new(std::sync::Mutex::new((0_i64, 0_u32)));
    ehds_transport::RefusalObserver::new(move |refusal| {
        let now = OffsetDateTime::now_utc();
        let minute = now.unix_timestamp().div_euclid(60);
        let allowed = match budget.lock() {
            Ok(mut used) => {
                if used.0 != minute {
                    *used = (minute, 0);
                }
                used.1 += 1;
                used.1 <= SECURITY_ALERTS_PER_MINUTE
            }
            Err(_) => false,
        };
        if !allowed {
            return;
        }
        let alert = audit_event::SecurityAlert {
            recorded: now,
            source_ncp: source_ncp.clone(),
            remote_address: refusal.remote.ip().to_string(),
            reason: refusal.reason.to_owned(),
            peer_fingerprint: refusal.fingerprint.map(|f| f.to_hex()),
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
