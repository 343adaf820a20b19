//! Patients' rights under EHDS (Art. 8–10) that the country holding the
//! data enforces, on the national API for the patient portal: opting out of
//! cross-border exchange, per service and optionally per requesting
//! country, checked at every cross-border identification, list and
//! retrieval (`crate::federation::admit`); restricting parts of their data
//! or whole documents (`$cross-border-restriction`, applied by
//! `crate::release`); and reading
//! who accessed it.
//!
//! `POST /fhir/$cross-border-opt-out` (patient portal only) takes a FHIR
//! `Parameters` resource:
//!
//! | parameter | type | |
//! | --- | --- | --- |
//! | `patient` | Identifier | the patient's national identifier (system and value) |
//! | `service` | code | a service of the registry (`crate::services`): `patient-summary`, `eprescription`, `laboratory-report`, … |
//! | `country` | code | optional: the requesting country the opt-out is towards (ISO 3166-1 alpha-2); absent: every country |
//! | `optOut` | boolean | `true` to opt out, `false` to withdraw the opt-out |
//!
//! `GET /fhir/$cross-border-opt-out?patient.identifier=system|value` (patient
//! portal only): the opt-outs in force, as a `Parameters` resource with one
//! `optOut` parameter each, whose parts are `service` (code), `country`
//! (code, absent for every country) and `since` (instant); then one
//! `service` parameter per service of the registry (`crate::services`), the
//! choices the patient has, with parts `name` (code) and `title` (string).
//!
//! `GET /fhir/AuditEvent?patient.identifier=system|value[&_count=n][&_before=seq]`
//! (patient portal only): the patient's access log, newest first: every
//! cross-border access and refusal concerning the patient recorded at this
//! gateway, as the AuditEvents stored in the hash chain (exact bytes), with a
//! `next` link for paging. Authenticating the patient is the portal's job:
//! the gateway answers the national portal, for patients of this country.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use ehds_fhir::Node;
use ehds_fhir::outcome::{Issue, IssueType};
use ehds_routing::patient_rights::{AccessLogQuery, PatientChoicesQuery};
use ehds_transport::NationalClientKind;

use crate::edge::AppState;
use crate::edge::extract::{FhirBody, NationalCaller, receive_resource};
use crate::edge::patient::patient_key;
use crate::edge::respond::{SearchSet, fhir_json, information};
use crate::error::GatewayError;

fn invalid(message: &str, at: &str) -> GatewayError {
    let mut report = ehds_validation::ValidationReport::default();
    report.push(Issue::error(IssueType::Invalid, message).at(at));
    GatewayError::Invalid(report)
}

/// The request body as a valid `Parameters` resource.
async fn received_parameters(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<ehds_fhir::ReceivedResource, GatewayError> {
    let resource = FhirBody(receive_resource(headers, body, state).await?).of_type("Parameters")?;
    let report = state.validator.validate(&resource, &[]).await;
    if !report.is_acceptable() {
        return Err(GatewayError::Invalid(report));
    }
    Ok(resource)
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
pub(crate) async fn opt_out(
    State(state): State<AppState>,
    caller: NationalCaller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, GatewayError> {
    caller.require(
        &[NationalClientKind::PatientPortal],
        "change a patient's cross-border choices",
    )?;
    let resource = received_parameters(&state, &headers, body).await?;
    let root = resource.root();
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
            Ok(routed) if routed.country.code() == federation.country => {}
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
        .filter(|s| state.services.contains(s))
        .ok_or_else(|| {
            invalid(
                &format!(
                    "service (valueCode) must be one of: {}",
                    state.services.names()
                ),
                "Parameters.parameter",
            )
        })?;
    let country = match parameter(root, "country") {
        None => None,
        Some(p) => Some(
            p.get("valueCode")
                .and_then(Node::as_str)
                .filter(|c| ehds_identifiers::CountryCode::parse(c).is_some())
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
    let key = patient_key(system, value)?;
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
    Ok(information(StatusCode::OK, message))
}

/// `GET /fhir/AuditEvent?patient.identifier=…`: the patient's access log.
pub(crate) async fn access_log(
    State(state): State<AppState>,
    caller: NationalCaller,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Response, GatewayError> {
    caller.require(
        &[NationalClientKind::PatientPortal],
        "read a patient's access log",
    )?;
    let AccessLogQuery {
        patient,
        count,
        before,
    } = AccessLogQuery::parse(query.as_deref().unwrap_or_default())
        .map_err(GatewayError::Search)?;
    let (system, value) = (&patient.system, &patient.value);
    own_patient_at(&state, system, value, "http.patient.identifier")?;
    let key = patient_key(system, value)?;
    let records = state.store.audit_for_patient(&key, count, before).await?;
    let mut set = SearchSet::page(1024 * (records.len() + 1));
    if records.len() == count as usize
        && let Some(last) = records.last()
    {
        set.link(
            "next",
            format!(
                "AuditEvent?patient.identifier={}%7C{}&_count={count}&_before={}",
                ehds_routing::search::percent_encode(system),
                ehds_routing::search::percent_encode(value),
                last.seq
            ),
        );
    }
    for record in &records {
        set.entry(None, &record.content);
    }
    Ok(set.into_response())
}

/// Checks that `system|value` is a patient identifier this country issues
/// (with `[federation]`, by the NCP directory): `Err(None)` for another
/// country's, `Err(Some(refusal))` for one the directory refuses.
fn own_patient(state: &AppState, system: &str, value: &str) -> Result<(), Option<GatewayError>> {
    let Some(federation) = &state.federation else {
        return Ok(());
    };
    match federation.directory.check_patient_identifier(system, value) {
        Ok(routed) if routed.country.code() == federation.country => Ok(()),
        Ok(_) => Err(None),
        Err(refusal) => Err(Some(GatewayError::Identifier(refusal))),
    }
}

/// `GET /fhir/$cross-border-opt-out?patient.identifier=system|value`: the
/// patient's opt-outs in force, for the patient portal.
pub(crate) async fn current_opt_outs(
    State(state): State<AppState>,
    caller: NationalCaller,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Response, GatewayError> {
    caller.require(
        &[NationalClientKind::PatientPortal],
        "read a patient's cross-border choices",
    )?;
    let PatientChoicesQuery { patient } =
        PatientChoicesQuery::parse(query.as_deref().unwrap_or_default())
            .map_err(GatewayError::Search)?;
    let (system, value) = (&patient.system, &patient.value);
    own_patient_at(&state, system, value, "http.patient.identifier")?;
    let opt_outs = state
        .store
        .opt_outs_of(&patient_key(system, value)?)
        .await?;
    let mut parameters = Vec::with_capacity(opt_outs.len());
    for opt_out in opt_outs {
        let since = opt_out
            .since
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| {
                GatewayError::Store(ehds_store::StoreError::Corrupt(format!(
                    "opt-out time: {e}"
                )))
            })?;
        let mut parts = vec![serde_json::json!({"name": "service", "valueCode": opt_out.service})];
        if let Some(country) = opt_out.country {
            parts.push(serde_json::json!({"name": "country", "valueCode": country}));
        }
        parts.push(serde_json::json!({"name": "since", "valueInstant": since}));
        parameters.push(serde_json::json!({"name": "optOut", "part": parts}));
    }
    // The services the patient may opt out of, from the registry, after
    // the opt-outs in force.
    for service in state.services.services() {
        parameters.push(serde_json::json!({"name": "service", "part": [
            {"name": "name", "valueCode": service.name},
            {"name": "title", "valueString": service.title},
        ]}));
    }
    let resource = if parameters.is_empty() {
        serde_json::json!({"resourceType": "Parameters"})
    } else {
        serde_json::json!({"resourceType": "Parameters", "parameter": parameters})
    };
    Ok(fhir_json(StatusCode::OK, resource.to_string()))
}

/// Checks that `system|value` is a patient identifier of this country,
/// locating a refusal at `at`.
fn own_patient_at(
    state: &AppState,
    system: &str,
    value: &str,
    at: &str,
) -> Result<(), GatewayError> {
    own_patient(state, system, value).map_err(|e| {
        e.unwrap_or_else(|| invalid("this patient identifier is issued by another country", at))
    })
}

/// `system` and `value` of an Identifier-shaped node, both present.
fn identifier_of(node: &Node) -> Option<(&str, &str)> {
    let system = node.get("system").and_then(Node::as_str)?;
    let value = node.get("value").and_then(Node::as_str)?;
    (!system.is_empty() && !value.is_empty()).then_some((system, value))
}

/// `POST /fhir/$cross-border-restriction` (patient portal only): restricts
/// a part of the patient's data from cross-border exchange, or lifts the
/// restriction. A `Parameters` resource:
///
/// | parameter | type | |
/// | --- | --- | --- |
/// | `patient` | Identifier | the patient's national identifier |
/// | `section` | Coding | a section of the patient summary, by its code (e.g. LOINC 11450-4, problems) |
/// | `entry` | Reference | an entry of the patient summary: `reference` is its `fullUrl` or `Type/id` |
/// | `entryIdentifier` | Identifier | an entry of the patient summary, by its business identifier |
/// | `prescription` | Identifier | a prescription, by its identifier |
/// | `document` | Identifier | a whole document of any document service (a laboratory report, a PDF original, a summary), by its identifier: `Bundle.identifier`, or the `masterIdentifier` of a PDF original |
/// | `restrict` | boolean | `true` to restrict, `false` to lift the restriction |
///
/// Exactly one of `section`, `entry`, `entryIdentifier`, `prescription` and
/// `document`. Effective at once: the next cross-border read releases the
/// summary without the part, lists no restricted prescription, and neither
/// lists nor answers a restricted document (to the caller abroad it is not
/// found, as one that does not exist).
pub(crate) async fn restriction(
    State(state): State<AppState>,
    caller: NationalCaller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, GatewayError> {
    const AT: &str = "Parameters.parameter";
    caller.require(
        &[NationalClientKind::PatientPortal],
        "change a patient's cross-border restrictions",
    )?;
    let resource = received_parameters(&state, &headers, body).await?;
    let root = resource.root();
    let (system, value) = parameter(root, "patient")
        .and_then(|p| p.get("valueIdentifier"))
        .and_then(identifier_of)
        .ok_or_else(|| {
            invalid(
                "patient (valueIdentifier with system and value) is required",
                AT,
            )
        })?;
    own_patient_at(&state, system, value, AT)?;
    let mut targets = Vec::new();
    if let Some(p) = parameter(root, "section") {
        let coding = p
            .get("valueCoding")
            .ok_or_else(|| invalid("section must be a valueCoding", AT))?;
        let (Some(s), Some(c)) = (
            coding.get("system").and_then(Node::as_str),
            coding.get("code").and_then(Node::as_str),
        ) else {
            return Err(invalid("section needs a system and a code", AT));
        };
        targets.push((ehds_store::RestrictionKind::Section, format!("{s}|{c}")));
    }
    if let Some(p) = parameter(root, "entry") {
        let reference = p
            .get("valueReference")
            .and_then(|r| r.get("reference"))
            .and_then(Node::as_str)
            .ok_or_else(|| invalid("entry must be a valueReference with a reference", AT))?;
        targets.push((ehds_store::RestrictionKind::Entry, reference.to_owned()));
    }
    if let Some(p) = parameter(root, "entryIdentifier") {
        let (s, v) = p
            .get("valueIdentifier")
            .and_then(identifier_of)
            .ok_or_else(|| {
                invalid(
                    "entryIdentifier must be a valueIdentifier with system and value",
                    AT,
                )
            })?;
        targets.push((ehds_store::RestrictionKind::Identifier, format!("{s}|{v}")));
    }
    if let Some(p) = parameter(root, "prescription") {
        let (s, v) = p
            .get("valueIdentifier")
            .and_then(identifier_of)
            .ok_or_else(|| {
                invalid(
                    "prescription must be a valueIdentifier with system and value",
                    AT,
                )
            })?;
        targets.push((
            ehds_store::RestrictionKind::Prescription,
            format!("{s}|{v}"),
        ));
    }
    if let Some(p) = parameter(root, "document") {
        let (s, v) = p
            .get("valueIdentifier")
            .and_then(identifier_of)
            .ok_or_else(|| {
                invalid(
                    "document must be a valueIdentifier with system and value",
                    AT,
                )
            })?;
        targets.push((ehds_store::RestrictionKind::Document, format!("{s}|{v}")));
    }
    let [(kind, target)] = <[_; 1]>::try_from(targets).map_err(|_| {
        invalid(
            "exactly one of section, entry, entryIdentifier, prescription and document is \
             required",
            AT,
        )
    })?;
    let restrict =
        match parameter(root, "restrict").map(|p| p.get("valueBoolean").map(|v| &v.value)) {
            Some(Some(ehds_fhir::json::Json::Bool(b))) => *b,
            _ => return Err(invalid("restrict (valueBoolean) is required", AT)),
        };
    let key = patient_key(system, value)?;
    let message = if restrict {
        state
            .store
            .set_restriction(&key, kind, &target, time::OffsetDateTime::now_utc())
            .await?;
        "the restriction is in force from now on"
    } else if state.store.lift_restriction(&key, kind, &target).await? {
        "the restriction is lifted"
    } else {
        "there was no such restriction"
    };
    Ok(information(StatusCode::OK, message))
}

/// `GET /fhir/$cross-border-restriction?patient.identifier=system|value`
/// (patient portal only): the restrictions in force, as a `Parameters`
/// resource with one `restriction` parameter per restriction (parts `kind`
/// and `target`, as set).
pub(crate) async fn restrictions(
    State(state): State<AppState>,
    caller: NationalCaller,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Response, GatewayError> {
    caller.require(
        &[NationalClientKind::PatientPortal],
        "read a patient's cross-border restrictions",
    )?;
    let PatientChoicesQuery { patient } =
        PatientChoicesQuery::parse(query.as_deref().unwrap_or_default())
            .map_err(GatewayError::Search)?;
    let (system, value) = (patient.system.as_str(), patient.value.as_str());
    own_patient_at(&state, system, value, "http.patient.identifier")?;
    let found = state
        .store
        .restrictions_for_patient(&patient_key(system, value)?)
        .await?;
    let parameters: Vec<serde_json::Value> = found
        .iter()
        .map(|r| {
            serde_json::json!({
                "name": "restriction",
                "part": [
                    {"name": "kind", "valueCode": r.kind.as_str()},
                    {"name": "target", "valueString": r.target},
                ]
            })
        })
        .collect();
    let mut body = serde_json::json!({"resourceType": "Parameters"});
    if !parameters.is_empty()
        && let Some(object) = body.as_object_mut()
    {
        object.insert("parameter".into(), serde_json::Value::Array(parameters));
    }
    Ok(fhir_json(
        StatusCode::OK,
        serde_json::to_vec(&body).unwrap_or_default(),
    ))
}
