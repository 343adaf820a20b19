//! Patients' rights under EHDS that the country holding the data enforces:
//! opting out of cross-border exchange, per service and optionally per
//! requesting country, set by the patient's national portal and checked at
//! every cross-border identification, list and retrieval
//! ([`crate::federation`]).
//!
//! `POST /fhir/$cross-border-opt-out` (patient portal only) takes a FHIR
//! `Parameters` resource:
//!
//! | parameter | type | |
//! | --- | --- | --- |
//! | `patient` | Identifier | the patient's national identifier (system and value) |
//! | `service` | code | `patient-summary` or `eprescription` |
//! | `country` | code | optional: the requesting country the opt-out is towards (ISO 3166-1 alpha-2); absent: every country |
//! | `optOut` | boolean | `true` to opt out, `false` to withdraw the opt-out |

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use ehds_access::Operation;
use ehds_fhir::Node;
use ehds_fhir::outcome::{Issue, IssueType, Severity};
use ehds_transport::{NationalClientKind, VerifiedPeer};

use crate::error::GatewayError;
use crate::http::{AppState, NationalCaller};

/// The service a cross-border operation belongs to.
pub fn service_of(operation: Operation) -> &'static str {
    match operation {
        Operation::ReadPatientSummary => "patient-summary",
        Operation::ListPrescriptions | Operation::ReadPrescription | Operation::Dispense => {
            "eprescription"
        }
    }
}

fn invalid(message: &str, at: &str) -> GatewayError {
    let mut report = ehds_validation::ValidationReport::default();
    report.push(Issue::error(IssueType::Invalid, message).at(at));
    GatewayError::Invalid(report)
}

/// A named parameter of a `Parameters` resource.
fn parameter<'a>(parameters: &'a Node, name: &str) -> Option<&'a Node> {
    parameters
        .get("parameter")?
        .items()
        .iter()
        .find(|p| p.get("name").and_then(Node::as_str) == Some(name))
}

/// `POST /fhir/$cross-border-opt-out`.
pub async fn opt_out(
    State(state): State<AppState>,
    peer: Option<Extension<VerifiedPeer>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, GatewayError> {
    let caller = NationalCaller::of(peer.as_deref(), state.country.as_deref())?;
    caller.require(
        &[NationalClientKind::PatientPortal],
        "change a patient's cross-border choices",
    )?;
    let resource = crate::http::receive_resource(&headers, body, state.limits).await?;
    if resource.resource_type() != "Parameters" {
        return Err(GatewayError::WrongResourceType {
            expected: "Parameters",
            found: resource.resource_type().to_owned(),
        });
    }
    let root = resource.root();
    let report = state.validator.validate(&resource, &[]);
    if !report.is_acceptable() {
        return Err(GatewayError::Invalid(report));
    }
    let identifier = parameter(root, "patient")
        .and_then(|p| p.get("valueIdentifier"))
        .ok_or_else(|| {
            invalid(
                "patient (valueIdentifier) is required",
                "Parameters.parameter",
            )
        })?;
    let (Some(system), Some(value)) = (
        identifier.get("system").and_then(Node::as_str),
        identifier.get("value").and_then(Node::as_str),
    ) else {
        return Err(invalid(
            "the patient identifier needs a system and a value",
            "Parameters.parameter",
        ));
    };
    if let Some(federation) = &state.federation {
        match federation.directory.check_patient_identifier(system, value) {
            Ok(routed) if routed.country.code().as_str() == federation.country => {}
            Ok(_) => {
                return Err(invalid(
                    "this patient identifier is issued by another country",
                    "Parameters.parameter",
                ));
            }
            Err(refusal) => return Err(GatewayError::Identifier(refusal)),
        }
    }
    let service = parameter(root, "service")
        .and_then(|p| p.get("valueCode"))
        .and_then(Node::as_str)
        .filter(|s| matches!(*s, "patient-summary" | "eprescription"))
        .ok_or_else(|| {
            invalid(
                "service (valueCode) must be patient-summary or eprescription",
                "Parameters.parameter",
            )
        })?;
    let country = match parameter(root, "country") {
        None => None,
        Some(p) => Some(
            p.get("valueCode")
                .and_then(Node::as_str)
                .filter(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()))
                .ok_or_else(|| {
                    invalid(
                        "country (valueCode) must be an ISO 3166-1 alpha-2 code",
                        "Parameters.parameter",
                    )
                })?,
        ),
    };
    let opt_out = match parameter(root, "optOut").map(|p| p.get("valueBoolean").map(|v| &v.value)) {
        Some(Some(ehds_fhir::json::Json::Bool(b))) => *b,
        _ => {
            return Err(invalid(
                "optOut (valueBoolean) is required",
                "Parameters.parameter",
            ));
        }
    };
    let key = format!("{system}|{value}");
    let message = if opt_out {
        state
            .store
            .set_opt_out(&key, service, country, time::OffsetDateTime::now_utc())
            .await?;
        "the opt-out is in force from now on"
    } else if state.store.withdraw_opt_out(&key, service, country).await? {
        "the opt-out is withdrawn"
    } else {
        "there was no such opt-out"
    };
    Ok(crate::error::outcome_response(
        StatusCode::OK,
        &[Issue::new(
            Severity::Information,
            IssueType::Informational,
            message,
        )],
    ))
}
