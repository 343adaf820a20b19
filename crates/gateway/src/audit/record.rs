//! Appending one AuditEvent of an access or a refusal to the store's
//! hash chain.

use ehds_fhir::audit_event::{self, AccessRecord};
use ehds_store::NewAuditRecord;

use crate::edge::AppState;
use crate::error::GatewayError;

/// Appends `record` to the audit chain; an error must refuse the request.
pub(crate) async fn record_access(
    state: &AppState,
    record: &AccessRecord,
) -> Result<(), GatewayError> {
    let content = audit_event::audit_event_json(record)?;
    let patient = record
        .patient
        .as_ref()
        .map(ehds_identifiers::PatientIdentifier::key);
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
