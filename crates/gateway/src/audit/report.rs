//! A refusal this gateway decided about a patient of another country,
//! reported to that country's NCP (its federation `POST AuditEvent`, served
//! by `crate::federation::audit_report`), so that the patient's access log
//! at home covers both ends.
//!
//! Sent in the background and once: the refusal stands and is in this
//! gateway's trail whatever happens to the report; a failure is logged
//! without patient data. The report names the patient, so it is sent only to
//! a server whose certificate passed the same pre-flight check as before
//! any relayed request (directory identity and OCSP), and the answer's
//! server is checked again.

use std::sync::Arc;

use axum::http::header;
use ehds_fhir::audit_event::AccessRecord;
use ehds_routing::Ncp;

use crate::edge::CrossBorder;
use crate::edge::respond::FHIR_JSON;
use crate::edge::state::PeerNcpTarget;

/// Largest answer read from the patient's country (an OperationOutcome).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Sends `record` to `ncp` in the background.
pub(crate) fn report_refusal(federation: Arc<CrossBorder>, ncp: Ncp, record: &AccessRecord) {
    let content = match ehds_fhir::audit_event::audit_event_json(record) {
        Ok(content) => content,
        Err(error) => {
            tracing::error!(%error, "a refusal could not be reported to the patient's country");
            return;
        }
    };
    tokio::spawn(async move {
        let target = PeerNcpTarget::of(&ncp);
        if let Err(failure) = federation.client.preflight(target.expected()).await {
            tracing::warn!(%failure, "a refusal was not reported: the patient's country's server did not pass its check");
            return;
        }
        let request = federation
            .client
            .request(reqwest::Method::POST, &ncp.federation_url_for("AuditEvent"))
            .header(header::CONTENT_TYPE, FHIR_JSON)
            .body(content);
        match federation
            .client
            .send(request, target.expected(), MAX_ANSWER_BYTES)
            .await
        {
            Ok(answer) if (200..300).contains(&answer.status) => {}
            Ok(answer) => tracing::warn!(
                status = answer.status,
                "the patient's country did not accept the report of a refusal"
            ),
            Err(failure) => tracing::warn!(
                %failure,
                "the report of a refusal did not reach the patient's country"
            ),
        }
    });
}
