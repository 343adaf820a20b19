//! The documents of the national API (FHIR R4 RESTful API,
//! <http://hl7.org/fhir/R4/http.html>):
//!
//! - `POST /fhir/Bundle`: a hospital EHR system pushes a FHIR document (the
//!   IPS patient summary; a prescription Bundle goes to
//!   `super::prescriptions`, a transaction holding a PDF original as a
//!   Binary and its DocumentReference to `super::pdf_originals`): validated
//!   against the document profiles,
//!   stored byte for byte, idempotent by `Bundle.identifier` (create:
//!   <http://hl7.org/fhir/R4/http.html#create>, `Prefer: return=`).
//! - `GET /fhir/Bundle/{id}`: read (<http://hl7.org/fhir/R4/http.html#read>).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ehds_fhir::audit_event::EntityTarget;
use ehds_routing::search::TokenParam;
use ehds_store::{DocumentIdentifier, NewDocument, PutOutcome, StoredDocument};
use ehds_transport::NationalClientKind;

use crate::audit::Trail;
use crate::edge::AppState;
use crate::edge::extract::{FhirBody, NationalCaller, receive_resource};
use crate::edge::respond::{FHIR_JSON, ReturnPreference, stored_outcome, validation_counts};
use crate::error::GatewayError;

/// RFC 9110 IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT` (times are UTC).
const HTTP_DATE: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

/// `POST /fhir/Bundle`: push a FHIR document (hospital EHR systems).
pub(crate) async fn push(
    State(state): State<AppState>,
    caller: NationalCaller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, GatewayError> {
    caller.require(
        &[
            NationalClientKind::EhrSystem,
            NationalClientKind::DoctorSystem,
        ],
        "push documents or prescriptions",
    )?;
    let resource = FhirBody(receive_resource(&headers, body, &state).await?).of_type("Bundle")?;
    // A prescription Bundle (several items) goes to the prescriptions.
    if super::prescriptions::is_prescription_bundle(resource.root()) {
        return super::prescriptions::push_bundle(&state, &caller, &resource).await;
    }
    // A transaction is a PDF original as a Binary and its DocumentReference.
    if super::pdf_originals::is_transaction(resource.root()) {
        return super::pdf_originals::push_transaction(&state, &caller, &resource).await;
    }
    caller.require(&[NationalClientKind::EhrSystem], "push documents")?;
    // The document's type (its Composition's) picks the service and so the
    // profiles it must meet; a document of no service's type is held to the
    // patient summary's (which fix its type, so it is refused with why).
    let (service, document_type) = match state.services.of_document(resource.root()) {
        Some((service, type_)) => (service, Some(format!("{}|{}", type_.system, type_.code))),
        None => (
            state
                .services
                .named(crate::services::PATIENT_SUMMARY)
                .ok_or_else(|| GatewayError::Invalid(not_a_service_document()))?,
            None,
        ),
    };
    if service.kind != crate::services::ServiceKind::Document {
        return Err(GatewayError::Invalid(not_a_service_document()));
    }
    // The rules the service downgrades do not decide slice membership
    // either (`Validator::validate_pushed_document_downgrading`).
    let findings = state
        .validator
        .validate_pushed_document_downgrading(
            &resource,
            &service.profiles(),
            &service.validation.downgraded_rules,
        )
        .await;
    // The operator's policy turns the findings into the verdict
    // (`crate::validation_policy`): enforce or report, downgraded rules,
    // unknown extensions. Whatever the policy, a document is stored only
    // with what storing it needs: its identifier (idempotency) and type
    // `document`.
    let header = ehds_validation::document::document_header(&resource)
        .filter(|header| header.bundle_type == "document");
    let judgement = state.judged(
        findings.issues,
        &service.name,
        &service.validation,
        header.is_none().then(not_storable),
    );
    let note = judgement.report_note(&service.name, true);
    let report = ehds_validation::ValidationReport {
        issues: judgement.issues.into_iter().chain(note).collect(),
    };
    let Some(header) = header.filter(|_| judgement.verdict.stores()) else {
        return Err(GatewayError::Invalid(report));
    };
    let outcome = state
        .store
        .put_document(NewDocument {
            identifier: DocumentIdentifier {
                system: header.identifier_system.to_owned(),
                value: header.identifier_value.to_owned(),
            },
            bundle_type: header.bundle_type,
            patient_identifier: header.patient_identifier.as_deref(),
            sender: &caller.sender(),
            document_type: document_type.as_deref(),
            content_type: ehds_store::FHIR_JSON,
            content: resource.bytes(),
        })
        .await?;
    let preference = ReturnPreference::from_headers(&headers);
    match outcome {
        PutOutcome::Created(doc) => {
            state.metrics.count_document_stored();
            tracing::info!(document_id = %doc.id, "document stored");
            Ok(document_response(
                StatusCode::CREATED,
                doc,
                preference,
                Some(&report),
            ))
        }
        PutOutcome::AlreadyStored(doc) => {
            tracing::info!(document_id = %doc.id, "identical document already stored");
            Ok(document_response(
                StatusCode::OK,
                doc,
                preference,
                Some(&report),
            ))
        }
        PutOutcome::Conflict { existing_id } => {
            Err(GatewayError::IdentifierConflict { existing_id })
        }
    }
}

/// `GET /fhir/Bundle/{id}`: the exact bytes stored, for the system that
/// pushed them (`NationalCaller::require_sender`); or, for `<country>.<id>`, a document
/// held by another country (`crate::relay::document_read`). Behind the
/// audited exit: a read of patient data at home is on the patient's record
/// too (EHDS Art. 9: every access, not only cross-border ones).
pub(crate) async fn read(
    State(state): State<AppState>,
    caller: NationalCaller,
    trail: Trail,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, GatewayError> {
    if let Some(held_by) = crate::relay::send::held_abroad(&state, &id) {
        return crate::relay::document_read::relay(&state, &caller, &headers, &trail, held_by)
            .await;
    }
    trail.target(EntityTarget::Id(id.clone()));
    if !ehds_identifiers::is_logical_id(&id) {
        return Err(GatewayError::ResourceNotFound("this Bundle".into()));
    }
    let doc = state
        .store
        .document(&id)
        .await?
        .ok_or_else(|| GatewayError::ResourceNotFound(format!("Bundle/{id}")))?;
    if let Some((system, value)) = doc
        .patient_identifier
        .as_deref()
        .and_then(|p| p.split_once('|'))
    {
        trail.patient(&TokenParam {
            system: system.to_owned(),
            value: value.to_owned(),
        });
    }
    // The patient's record shows a refused read too.
    caller.require_sender(&doc.sender)?;
    Ok(document_response(
        StatusCode::OK,
        doc,
        ReturnPreference::Representation,
        None,
    ))
}

/// The refusal of a document whose type no document service of the
/// registry answers to.
fn not_a_service_document() -> ehds_validation::ValidationReport {
    let mut report = ehds_validation::ValidationReport::default();
    report.push(
        ehds_fhir::outcome::Issue::error(
            ehds_fhir::outcome::IssueType::NotSupported,
            "the document's type (its Composition's type) is not the type of a document \
             service of this gateway",
        )
        .at("Bundle.entry[0].resource.type"),
    );
    report
}

/// Why a document is refused whatever the validation policy: without a
/// `Bundle.identifier` (system and value) and `Bundle.type` `document` it
/// cannot be stored, found again or pushed idempotently.
fn not_storable() -> ehds_fhir::outcome::Issue {
    ehds_fhir::outcome::Issue::error(
        ehds_fhir::outcome::IssueType::Required,
        "not stored whatever the validation policy: a document needs Bundle.type document and \
         Bundle.identifier with a system and a value",
    )
    .at("Bundle")
}

fn document_response(
    status: StatusCode,
    doc: StoredDocument,
    preference: ReturnPreference,
    report: Option<&ehds_validation::ValidationReport>,
) -> Response {
    let location = format!("/fhir/Bundle/{}", doc.id);
    let mut response = match preference {
        ReturnPreference::Representation => {
            let mut r = (status, doc.content).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
            r
        }
        ReturnPreference::Minimal => status.into_response(),
        ReturnPreference::OperationOutcome => stored_outcome(status, report, "document"),
    };
    let headers = response.headers_mut();
    if let Some(report) = report {
        validation_counts(headers, report);
    }

    // Documents are never updated: every stored document is version 1.
    headers.insert(header::ETAG, HeaderValue::from_static("W/\"1\""));
    if let Ok(value) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, value.clone());
        headers.insert(header::CONTENT_LOCATION, value);
    }
    if let Ok(when) = doc.received_at.format(HTTP_DATE)
        && let Ok(value) = HeaderValue::from_str(&when)
    {
        headers.insert(header::LAST_MODIFIED, value);
    }
    response
}
