//! ePrescriptions at home on the national API (the prescriber's side;
//! what is tracked and why: `crate::eprescription`):
//!
//! - `POST /fhir/MedicationRequest`: a prescriber system pushes a
//!   prescription (create, <http://hl7.org/fhir/R4/http.html#create>);
//! - `POST /fhir/Bundle` with a prescription Bundle of several items (HL7
//!   Europe MPD multi-item prescriptions), routed here by
//!   `super::documents`;
//! - `GET /fhir/MedicationRequest/{id}`: read;
//! - `POST /fhir/MedicationRequest/{id}/$cross-border-status`: cancel,
//!   withdraw from dispensing abroad, or make available again.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ehds_fhir::Node;
use ehds_fhir::audit_event::EntityTarget;
use ehds_identifiers::PatientIdentifier;
use ehds_routing::search::TokenParam;
use ehds_store::DocumentIdentifier as Identifier;
use ehds_transport::NationalClientKind;

use crate::audit::Trail;
use crate::edge::AppState;
use crate::edge::extract::{FhirBody, NationalCaller, receive_resource};
use crate::edge::respond::{FHIR_JSON, fhir_json, information};
use crate::eprescription as ep;
use crate::error::{DispenseRefusal, GatewayError};

/// `POST /fhir/MedicationRequest`: a prescriber system pushes a prescription.
pub(crate) async fn push(
    State(state): State<AppState>,
    caller: NationalCaller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, GatewayError> {
    caller.require(ep::PRESCRIBERS, "push prescriptions")?;
    let resource =
        FhirBody(receive_resource(&headers, body, &state).await?).of_type("MedicationRequest")?;
    let findings = state
        .validator
        .validate_downgrading(
            &resource,
            ep::mpd_profiles(&state),
            downgraded_rules(&state),
        )
        .await;
    under_policy(&state, findings)?;
    let facts = ep::prescription_facts(resource.root(), "MedicationRequest", None)?;
    let (status, stored) = ep::store_prescription(
        &state,
        &facts,
        &caller.sender(),
        resource.bytes(),
        "MedicationRequest",
    )
    .await?;
    let state_header = ep::prescription_state(&stored);
    let mut response = (status, stored.content).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    if let Ok(location) = HeaderValue::from_str(&format!("/fhir/MedicationRequest/{}", stored.id)) {
        headers.insert(header::LOCATION, location);
    }
    if let Ok(value) = HeaderValue::from_str(&state_header) {
        headers.insert("x-prescription-state", value);
    }
    Ok(response)
}

/// The ePrescription service's validation policy on `findings`
/// (`crate::validation_policy`), counted on `/metrics`: the refusal under
/// `enforce` with errors (stored prescriptions answer with their bytes, so
/// under `report` the errors are seen on `/metrics` and from `$validate`).
fn under_policy(
    state: &AppState,
    findings: ehds_validation::ValidationReport,
) -> Result<(), GatewayError> {
    let (name, policy) = state.services.eprescription_policy();
    let judgement = state.judged(findings.issues, name, policy, None);
    if judgement.verdict.stores() {
        return Ok(());
    }
    Err(GatewayError::Invalid(ehds_validation::ValidationReport {
        issues: judgement.issues,
    }))
}

/// The rules the ePrescription service downgrades.
fn downgraded_rules(state: &AppState) -> &[String] {
    &state.services.eprescription_policy().1.downgraded_rules
}

/// Whether `bundle` is a prescription Bundle: a `collection` holding at
/// least one MedicationRequest (HL7 Europe MPD multi-item prescriptions,
/// examples 100A, 200A, 300A).
pub(crate) fn is_prescription_bundle(bundle: &Node) -> bool {
    ep::text(bundle, "type") == Some("collection")
        && bundle
            .get("entry")
            .map(Node::items)
            .unwrap_or_default()
            .iter()
            .any(|e| {
                e.get("resource").and_then(|r| ep::text(r, "resourceType"))
                    == Some("MedicationRequest")
            })
}

/// `POST /fhir/Bundle` with a prescription Bundle (several items, HL7
/// Europe MPD): the Bundle is validated whole and each MedicationRequest
/// against the MPD profile; the patient is the Patient entry each item's
/// `subject` resolves to (by its identifier with system and value); every
/// item is checked before any is stored, then each is stored as its own
/// prescription, its bytes exactly the item's bytes within the Bundle.
/// The answer is a `batch-response` Bundle with one entry per item, in
/// order (`201 Created` or, for an item already stored with the same bytes,
/// `200 OK`, with its `location`). Pushing the same Bundle again stores
/// nothing new.
pub(crate) async fn push_bundle(
    state: &AppState,
    caller: &NationalCaller,
    resource: &ehds_fhir::ReceivedResource,
) -> Result<Response, GatewayError> {
    caller.require(ep::PRESCRIBERS, "push prescriptions")?;
    under_policy(
        state,
        state
            .validator
            .validate_downgrading(resource, &[], downgraded_rules(state))
            .await,
    )?;
    let bundle = resource.root();
    let index = ehds_fhir::bundle::BundleIndex::new(bundle);
    let mut items = Vec::new();
    for entry in index.entries() {
        let Some(item) = entry
            .resource
            .filter(|r| ep::text(r, "resourceType") == Some("MedicationRequest"))
        else {
            continue;
        };
        let at = format!("Bundle.entry[{}].resource", entry.index);
        let (start, end) = (item.span.start as usize, item.span.end as usize);
        if start > end || end > resource.bytes().len() {
            return Err(ep::refuse("the item could not be read", &at));
        }
        let bytes = resource.bytes().slice(start..end);
        let item_resource =
            ehds_fhir::ReceivedResource::parse(bytes).map_err(GatewayError::MalformedJson)?;
        let mut item_report = state
            .validator
            .validate_downgrading(
                &item_resource,
                ep::mpd_profiles(state),
                downgraded_rules(state),
            )
            .await;
        for issue in &mut item_report.issues {
            issue.expression = Some(match issue.expression.take() {
                Some(e) => e.replacen("MedicationRequest", &at, 1),
                None => at.clone(),
            });
        }
        under_policy(state, item_report)?;
        let patient = item
            .get("subject")
            .and_then(|s| ep::text(s, "reference"))
            .and_then(|r| match index.resolve(entry.index, r) {
                ehds_fhir::bundle::Resolution::Entry(i) => index.entry(i).and_then(|e| e.resource),
                _ => None,
            })
            .filter(|p| ep::text(p, "resourceType") == Some("Patient"))
            .and_then(|p| {
                p.get("identifier")
                    .map(Node::items)
                    .unwrap_or_default()
                    .iter()
                    .find_map(|i| {
                        PatientIdentifier::new(ep::text(i, "system")?, ep::text(i, "value")?)
                            .map(|p| p.key())
                    })
            });
        let patient = match patient {
            Some(patient) => Some(patient),
            None if item
                .get("subject")
                .and_then(|s| s.get("identifier"))
                .is_some() =>
            {
                None
            }
            None => {
                return Err(ep::refuse(
                    "the item's subject must be a Patient entry of this Bundle with an identifier (system and value), or carry subject.identifier: a country of treatment finds prescriptions by the patient's identifier",
                    &format!("{at}.subject"),
                ));
            }
        };
        // Checked, not yet stored.
        let facts = ep::prescription_facts(item, &at, patient)?;
        items.push((at, facts, item_resource));
    }
    // Every item is checked before any is stored: an identifier already
    // taken by other content refuses the whole Bundle.
    for (_, facts, item_resource) in &items {
        let taken = state
            .store
            .prescription_by_identifier(&Identifier {
                system: facts.identifier.0.to_owned(),
                value: facts.identifier.1.to_owned(),
            })
            .await?;
        if let Some(existing) = taken
            && existing.content != item_resource.bytes().as_ref()
        {
            return Err(GatewayError::IdentifierConflict {
                existing_id: existing.id,
            });
        }
    }
    let sender = caller.sender();
    let mut answer = Vec::with_capacity(256 * items.len());
    answer.extend_from_slice(br#"{"resourceType":"Bundle","type":"batch-response","entry":["#);
    let mut created = false;
    for (i, (at, facts, item_resource)) in items.iter().enumerate() {
        let (status, stored) =
            ep::store_prescription(state, facts, &sender, item_resource.bytes(), at).await?;
        created |= status == StatusCode::CREATED;
        if i > 0 {
            answer.push(b',');
        }
        let entry = serde_json::json!({"response": {
            "status": if status == StatusCode::CREATED { "201 Created" } else { "200 OK" },
            "location": format!("MedicationRequest/{}", stored.id),
        }});
        answer.extend_from_slice(entry.to_string().as_bytes());
    }
    answer.extend_from_slice(b"]}");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = (status, answer).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    Ok(response)
}

/// `GET /fhir/MedicationRequest/{id}`: the exact bytes stored, for the
/// system that pushed them (`NationalCaller::require_sender`), or, for
/// `<country>.<id>`, a prescription held by another country
/// (`crate::relay::prescription_read`). Behind the audited exit: a read of
/// patient data at home is on the patient's record too.
pub(crate) async fn read(
    State(state): State<AppState>,
    caller: NationalCaller,
    trail: Trail,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, GatewayError> {
    if let Some(held_by) = crate::relay::send::held_abroad(&state, &id) {
        return crate::relay::prescription_read::relay(&state, &caller, &headers, &trail, held_by)
            .await;
    }
    trail.target(EntityTarget::Id(id.clone()));
    let prescription = state
        .store
        .prescription(&id)
        .await?
        .ok_or_else(|| GatewayError::ResourceNotFound(format!("MedicationRequest/{id}")))?;
    if let Some((system, value)) = prescription.patient_identifier.split_once('|') {
        trail.patient(&TokenParam {
            system: system.to_owned(),
            value: value.to_owned(),
        });
    }
    // The patient's record shows a refused read too.
    caller.require_sender(&prescription.sender)?;
    Ok(fhir_json(StatusCode::OK, prescription.content))
}

/// `POST /fhir/MedicationRequest/{id}/$cross-border-status` (prescriber
/// systems): cancel a prescription, withdraw it from dispensing abroad, or
/// make it available again. `Parameters`: `status` (code: `cancelled`,
/// `not-available-abroad`, `active`) and `reason` (string, required for the
/// first two). Answers 200 with the state in `X-Prescription-State`; 409
/// when the prescription's state does not allow it (completed or cancelled
/// are final).
pub(crate) async fn set_cross_border_status(
    State(state): State<AppState>,
    caller: NationalCaller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, GatewayError> {
    caller.require(
        &[
            NationalClientKind::EhrSystem,
            NationalClientKind::DoctorSystem,
        ],
        "change a prescription's state",
    )?;
    let resource =
        FhirBody(receive_resource(&headers, body, &state).await?).of_type("Parameters")?;
    let parameter = |name: &str| {
        resource
            .root()
            .get("parameter")
            .map(Node::items)
            .unwrap_or_default()
            .iter()
            .find(|p| ep::text(p, "name") == Some(name))
    };
    let status = parameter("status")
        .and_then(|p| ep::text(p, "valueCode"))
        .and_then(ehds_store::PrescriptionStatus::from_code)
        .filter(|s| {
            matches!(
                s,
                ehds_store::PrescriptionStatus::Cancelled
                    | ehds_store::PrescriptionStatus::NotAvailableAbroad
                    | ehds_store::PrescriptionStatus::Active
            )
        })
        .ok_or_else(|| {
            ep::refuse(
                "status (valueCode) must be cancelled, not-available-abroad or active",
                "Parameters.parameter",
            )
        })?;
    let reason = parameter("reason").and_then(|p| ep::text(p, "valueString"));
    let conflict = |message: String| GatewayError::DispenseRefused {
        kind: DispenseRefusal::StateConflict,
        message,
        at: None,
    };
    match state
        .store
        .set_prescription_status(&id, status, reason)
        .await?
    {
        ehds_store::StatusChangeOutcome::Changed { .. }
        | ehds_store::StatusChangeOutcome::Unchanged(_) => {}
        ehds_store::StatusChangeOutcome::Refused(refusal) => {
            use ehds_store::StatusChangeRefusal as R;
            return Err(match refusal {
                R::UnknownPrescription => {
                    GatewayError::ResourceNotFound(format!("MedicationRequest/{id}"))
                }
                R::ReasonRequired => ep::refuse(
                    "reason (valueString) is required to cancel or withdraw a prescription",
                    "Parameters.parameter",
                ),
                R::SetByDispenses => {
                    conflict("completed is reached by dispensing, not set by hand".to_owned())
                }
                R::Final(s) => conflict(format!("the prescription is {} (final)", s.as_str())),
            });
        }
    }
    let prescription = state
        .store
        .prescription(&id)
        .await?
        .ok_or_else(|| GatewayError::ResourceNotFound(format!("MedicationRequest/{id}")))?;
    let mut response = information(
        StatusCode::OK,
        &format!("the prescription is {}", prescription.status.as_str()),
    );
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{}; remaining={}",
        prescription.status.as_str(),
        prescription.quantity_remaining_milli
    )) {
        response.headers_mut().insert("x-prescription-state", value);
    }
    Ok(response)
}
