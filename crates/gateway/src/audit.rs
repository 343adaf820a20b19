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
