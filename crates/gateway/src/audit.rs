//! The audit trail: every cross-border access and every refusal, at both
//! ends, as a FHIR AuditEvent in the store's append-only hash chain.
//!
//! Fail closed: [`record_access`] is awaited before data is released, and
//! its error refuses the request (the data is not sent when its access
//! cannot be recorded). Refusals are recorded best effort: a refusal is
//! returned whether or not its record could be written (and a failure to
//! write it is logged).

use ehds_fhir::audit_event::{self, AccessRecord};
use ehds_store::NewAuditRecord;
use time::OffsetDateTime;

use crate::GatewayError;
use crate::http::AppState;

/// Appends `record` to the audit chain; an error must refuse the request.
pub async fn record_access(state: &AppState, record: &AccessRecord) -> Result<(), GatewayError> {
    let content = audit_event::audit_event_json(record)?;
    let patient = record
        .patient
        .as_ref()
        .map(|p| format!("{}|{}", p.system, p.value));
    state
        .store
        .append_audit(NewAuditRecord {
            patient_identifier: patient.as_deref(),
            outcome: record.outcome.code(),
            content: &content,
            recorded_at: record.recorded,
        })
        .await?;
    Ok(())
}

/// Appends a refusal's record; a failure is logged, the refusal stands.
pub async fn record_refusal(state: &AppState, record: &AccessRecord) {
    if let Err(error) = record_access(state, record).await {
        tracing::error!(%error, "audit record of a refusal could not be written");
    }
}

/// Now, for `AccessRecord::recorded`.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Most security alerts recorded per minute and listener: a flood of
/// refused handshakes is counted on `/metrics` but cannot flood the chain.
pub const SECURITY_ALERTS_PER_MINUTE: u32 = 60;

/// Records connections the federation listener refused (TLS handshake,
/// certificate identity, OCSP) as Security Alert AuditEvents, at most
/// [`SECURITY_ALERTS_PER_MINUTE`] a minute; written in the background.
pub fn refusal_observer(
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
