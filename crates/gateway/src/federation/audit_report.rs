//! `POST /fhir/AuditEvent` on the federation API: another country's NCP
//! reports a refusal it decided about one of this country's patients
//! (`crate::audit::report`). The AuditEvent must be valid, observed by the
//! calling NCP (`source.site` is its country) and name a patient of this
//! country; it is appended to this gateway's hash chain exactly as sent, so
//! the patient's access log covers both ends. (The report is itself the
//! record: this route is not behind the audited exit.)

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use ehds_fhir::Node;
use ehds_transport::VerifiedPeer;
use time::OffsetDateTime;

use crate::edge::AppState;
use crate::edge::extract::{FhirBody, receive_resource};
use crate::edge::patient::patient_key;
use crate::edge::respond::information;
use crate::error::GatewayError;

/// The route.
pub(crate) const PATH: &str = "/fhir/AuditEvent";

/// The handler.
pub(crate) async fn receive(
    State(state): State<AppState>,
    peer: Option<Extension<VerifiedPeer>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, GatewayError> {
    let federation = state.cross_border()?;
    let (ncp, _) = super::admit::calling_ncp(federation, peer.as_deref())?;
    let resource =
        FhirBody(receive_resource(&headers, body, &state).await?).of_type("AuditEvent")?;
    let report = state.validator.validate(&resource, &[]).await;
    if !report.is_acceptable() {
        return Err(GatewayError::Invalid(report));
    }
    let root = resource.root();
    let invalid = |message: &str, at: &str| {
        let mut report = ehds_validation::ValidationReport::default();
        report.push(
            ehds_fhir::outcome::Issue::error(ehds_fhir::outcome::IssueType::Invalid, message)
                .at(at),
        );
        GatewayError::Invalid(report)
    };
    if root
        .get("source")
        .and_then(|s| s.get("site"))
        .and_then(Node::as_str)
        != Some(ncp.country().as_str())
    {
        return Err(GatewayError::Forbidden(
            "an NCP reports only events it observed itself (source.site is its country)".into(),
        ));
    }
    let patient = root
        .get("entity")
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e.get("what"))
        .find(|w| w.get("type").and_then(Node::as_str) == Some("Patient"))
        .and_then(|w| w.get("identifier"))
        .and_then(|i| {
            Some((
                i.get("system").and_then(Node::as_str)?,
                i.get("value").and_then(Node::as_str)?,
            ))
        })
        .ok_or_else(|| {
            invalid(
                "the event names no patient (entity.what of type Patient with an identifier)",
                "AuditEvent.entity",
            )
        })?;
    match federation
        .directory
        .check_patient_identifier(patient.0, patient.1)
    {
        Ok(routed) if routed.country.code() == federation.country => {}
        _ => {
            return Err(invalid(
                "the patient is not of this country",
                "AuditEvent.entity",
            ));
        }
    }
    let outcome = root
        .get("outcome")
        .and_then(Node::as_str)
        .filter(|o| matches!(*o, "0" | "4" | "8" | "12"))
        .ok_or_else(|| invalid("outcome must be 0, 4, 8 or 12", "AuditEvent.outcome"))?;
    let recorded = root
        .get("recorded")
        .and_then(Node::as_str)
        .and_then(|r| OffsetDateTime::parse(r, &time::format_description::well_known::Rfc3339).ok())
        .ok_or_else(|| invalid("recorded must be an instant", "AuditEvent.recorded"))?;
    let key = patient_key(patient.0, patient.1)?;
    state
        .store
        .append_audit(ehds_store::NewAuditRecord {
            patient_identifier: Some(&key),
            outcome,
            content: resource.bytes(),
            recorded_at: recorded,
        })
        .await?;
    Ok(information(
        StatusCode::CREATED,
        "the reported event is in this NCP's audit trail",
    ))
}
