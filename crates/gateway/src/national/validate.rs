//! `POST /fhir/$validate`, `POST /fhir/Bundle/$validate` and
//! `POST /fhir/{type}/$validate` on the national API: the FHIR `$validate`
//! operation (<http://hl7.org/fhir/R4/resource-operation-validate.html>),
//! for any national system: 200 with an OperationOutcome of every issue,
//! reported as a push would be under the operator's policy
//! (`crate::validation_policy`: downgraded rules of the document's service,
//! unknown extensions).

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use crate::edge::AppState;
use crate::edge::extract::receive_resource;
use crate::edge::respond::outcome_response;
use crate::error::GatewayError;

/// `profile` query parameter of `$validate`.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct ValidateQuery {
    pub(crate) profile: Option<String>,
}

/// `POST /fhir/$validate`.
pub(crate) async fn on_any(
    State(state): State<AppState>,
    Query(query): Query<ValidateQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, GatewayError> {
    validate(state, None, query, headers, body).await
}

/// `POST /fhir/Bundle/$validate` (a static route: `/fhir/Bundle/{id}` would
/// otherwise take `$validate` as an id).
pub(crate) async fn on_bundle(
    State(state): State<AppState>,
    Query(query): Query<ValidateQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, GatewayError> {
    validate(state, Some("Bundle".to_owned()), query, headers, body).await
}

/// `POST /fhir/{type}/$validate`.
pub(crate) async fn on_type(
    State(state): State<AppState>,
    Path(resource_type): Path<String>,
    Query(query): Query<ValidateQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, GatewayError> {
    validate(state, Some(resource_type), query, headers, body).await
}

/// The `$validate` operation (<http://hl7.org/fhir/R4/resource-operation-validate.html>):
/// the resource in the body (or a Parameters with a `resource` parameter),
/// validated against R4 core, its claimed profiles and `profile`; 200 with
/// an OperationOutcome of every issue, whatever they are.
async fn validate(
    state: AppState,
    resource_type: Option<String>,
    query: ValidateQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, GatewayError> {
    let resource = receive_resource(&headers, body, &state).await?;
    if let Some(expected) = &resource_type
        && resource.resource_type() != expected
    {
        return Err(GatewayError::WrongResourceType {
            expected: "resource of the type named in the URL",
            found: resource.resource_type().to_owned(),
        });
    }
    let profiles: Vec<&str> = query.profile.iter().map(String::as_str).collect();
    // What a push would be told: the operator's policy, the service's for
    // a document of one, else the unknown-extensions policy alone.
    let default_policy = crate::validation_policy::ServicePolicy::default();
    let (service, policy) = match state.services.of_document(resource.root()) {
        Some((service, _)) => (service.name.as_str(), &service.validation),
        None => ("", &default_policy),
    };
    let report = state
        .validator
        .validate_downgrading(&resource, &profiles, &policy.downgraded_rules)
        .await;
    // The body and its parsed tree are not needed past here: freed before
    // the OperationOutcome is rendered, so that a large body's peak is the
    // larger of the two, not their sum (the memory budget's estimate,
    // `crate::edge::COST_PER_BODY_BYTE`).
    drop(resource);
    let judgement =
        crate::validation_policy::judge(report.issues, service, policy, &state.unknown_extensions);
    let note = judgement.report_note(service, false);
    let mut issues = judgement.issues;
    issues.extend(note);
    if issues.is_empty() {
        issues.push(ehds_fhir::outcome::Issue::new(
            ehds_fhir::outcome::Severity::Information,
            ehds_fhir::outcome::IssueType::Informational,
            "validation found no issues",
        ));
    }
    Ok(outcome_response(StatusCode::OK, &issues))
}
