//! `GET /fhir/DocumentReference?patient.identifier=system|value[&type=…]` on
//! the federation API: the list of one of this country's patients'
//! documents for another country's NCP (NCPeH FHIR API, DocumentReference
//! search). `type` names the service (`crate::services`: the registry's
//! document types); no `type` is the patient summary. A document service
//! lists the patient's stored documents of its types (patient summaries as
//! they may be released: a summary the patient restricted is listed as its
//! variant, own id, identifier and size); the ePrescription service (LOINC
//! 57833-6) lists the dispensable prescriptions (one DocumentReference
//! each, its `content.attachment.url` the `MedicationRequest/<country>.<id>`
//! to read it by), restricted ones absent (from the national server when
//! the service is on `source = "fhir"`: `super::national_prescriptions`). Each service is asked for by its
//! own permission of the access policy. A PDF original (OrCD) of a service
//! is listed beside its FHIR documents, `contentType: application/pdf` and
//! read as `Binary/<country>.<id>` (MyHealth@EU's L1 beside the L3). A
//! document the patient restricted as a whole is not listed
//! (`crate::release::DocumentRestrictions`).

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use ehds_access::{Operation, PurposeOfUse};
use ehds_fhir::audit_event::EntityTarget;
use ehds_routing::search::DocumentReferenceSearch;
use ehds_transport::VerifiedPeer;
use time::format_description::well_known::Rfc3339;

use crate::audit::Trail;
use crate::edge::patient::patient_key;
use crate::edge::respond::{FHIR_JSON, SearchSet};
use crate::edge::{AppState, CrossBorder};
use crate::error::GatewayError;
use crate::services::{PATIENT_SUMMARY, Service, ServiceKind};

/// The route.
pub(crate) const PATH: &str = "/fhir/DocumentReference";

/// The handler.
pub(crate) async fn answer(
    State(state): State<AppState>,
    peer: Option<Extension<VerifiedPeer>>,
    trail: Trail,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, GatewayError> {
    let federation = state.cross_border()?;
    let query = query.unwrap_or_default();
    trail.target(EntityTarget::Query(query.clone()));
    let search = DocumentReferenceSearch::parse(&query).map_err(GatewayError::Search)?;
    // The asked type names the service (no type: the patient summary); a
    // type no service answers to lists nothing, asked for as a summary.
    let asked = match &search.type_ {
        None => state.services.named(PATIENT_SUMMARY),
        Some(t) => state.services.for_type(&t.system, &t.value),
    };
    let operation = asked.map_or((Operation::ReadPatientSummary, PATIENT_SUMMARY), |s| {
        (s.permission, s.name.as_str())
    });
    let purpose = super::admit::admit(
        &state,
        federation,
        peer.as_deref(),
        &headers,
        &search.patient_identifier,
        operation,
        &trail,
    )
    .await?;
    let Some(service) = asked else {
        return Ok(SearchSet::with_capacity(64).into_response());
    };
    if service.kind == ServiceKind::Eprescription {
        if let Some(national) = federation.national_sources.for_service(&service.name) {
            // The national server's prescriptions carry no time of
            // receipt: listed without `date`, so a `date` search (or any
            // other the list cannot meet) finds none.
            if !super::listed::listed_matches(&search, service, None, FHIR_JSON) {
                return Ok(SearchSet::with_capacity(64).into_response());
            }
            return Ok(super::national_prescriptions::documents(
                &state, federation, service, national, &search, purpose, &trail,
            )
            .await?
            .into_response());
        }
        return Ok(
            prescription_documents(&state, federation, service, &search, purpose, &trail)
                .await?
                .into_response(),
        );
    }
    // Where the patient's country takes this service's documents from.
    if let Some(national) = federation.national_sources.for_service(&service.name) {
        return Ok(super::national_source::document_list(
            &state, federation, service, national, &search, purpose, &trail,
        )
        .await?
        .into_response());
    }
    let patient = &search.patient_identifier;
    let key = patient_key(&patient.system, &patient.value)?;
    let mut documents = state
        .store
        .documents_for_patient(&key, Some("document"))
        .await?;
    documents.retain(|d| {
        state
            .services
            .for_stored_type(d.document_type.as_deref())
            .is_some_and(|s| s.name == service.name)
    });
    // A document the patient restricted is not listed (crate::release),
    // unless an emergency lifts the service's restrictions here.
    let restrictions =
        crate::release::DocumentRestrictions::of(&state, federation, &key, purpose).await?;
    let mut lifted = false;
    documents.retain(|d| {
        lifted |= restrictions.lifted_for(&service.name, &d.identifier);
        !restrictions.withholds(&service.name, &d.identifier)
    });
    if lifted {
        trail.note(crate::release::LIFTED_FOR_EMERGENCY);
    }
    // Listed as they may be released: a summary the patient restricted is
    // listed as its variant (its own id, identifier and size).
    let documents = if service.name == PATIENT_SUMMARY {
        let (documents, lifted) =
            listed_as_released(&state, federation, &key, documents, purpose).await?;
        if lifted {
            trail.note(crate::release::LIFTED_FOR_EMERGENCY);
        }
        documents
    } else {
        documents
    };
    let documents: Vec<_> = documents
        .into_iter()
        .filter(|d| {
            let content_type = if d.content_type == ehds_store::PDF {
                ehds_store::PDF
            } else {
                FHIR_JSON
            };
            super::listed::listed_matches(&search, service, Some(d.received_at), content_type)
        })
        .collect();
    let mut set = SearchSet::with_capacity(1024 * (documents.len() + 1));
    for doc in &documents {
        // The document's own type when the service answers to it, else
        // the one the service lists.
        let type_ = doc
            .document_type
            .as_deref()
            .and_then(|t| t.split_once('|'))
            .and_then(|(system, code)| {
                service
                    .document_types
                    .iter()
                    .find(|t| t.system == system && t.code == code)
            })
            .or_else(|| service.listed_type());
        // A PDF original (OrCD) is read as `Binary/…`, a FHIR document as
        // `Bundle/…`.
        let (content_type, read_as) = if doc.content_type == ehds_store::PDF {
            (ehds_store::PDF, "Binary")
        } else {
            (FHIR_JSON, "Bundle")
        };
        let mut reference = serde_json::json!({
            "resourceType": "DocumentReference",
            "id": doc.id,
            "masterIdentifier": {
                "system": doc.identifier.system,
                "value": doc.identifier.value,
            },
            "status": "current",
            "type": super::listed::type_json(type_),
            "subject": {"identifier": {
                "system": patient.system,
                "value": patient.value,
            }},
            "date": doc.received_at.format(&Rfc3339).unwrap_or_default(),
            "content": [{"attachment": {
                "contentType": content_type,
                "url": format!("{read_as}/{}.{}", federation.country, doc.id),
                "size": doc.size,
            }}],
        });
        // FHIR JSON has no empty arrays: a service without categories
        // lists none.
        if !service.categories.is_empty()
            && let Some(fields) = reference.as_object_mut()
        {
            fields.insert(
                "category".to_owned(),
                super::listed::categories_json(service),
            );
        }
        set.entry(None, reference.to_string().as_bytes());
    }
    Ok(set.into_response())
}

/// The patient's dispensable prescriptions as a DocumentReference list
/// (the NCPeH ePrescription list); restricted ones are absent.
async fn prescription_documents(
    state: &AppState,
    federation: &CrossBorder,
    service: &Service,
    search: &DocumentReferenceSearch,
    purpose: PurposeOfUse,
    trail: &Trail,
) -> Result<SearchSet, GatewayError> {
    let patient = &search.patient_identifier;
    let key = patient_key(&patient.system, &patient.value)?;
    let mut prescriptions = state
        .store
        .prescriptions_for_patient(&key, &crate::eprescription::store_statuses(&[]))
        .await?;
    let restrictions =
        crate::release::PrescriptionRestrictions::of(state, federation, &key, purpose).await?;
    prescriptions.retain(|p| {
        p.status.is_dispensable()
            && !restrictions.withholds(&p.identifier)
            && super::listed::listed_matches(search, service, Some(p.received_at), FHIR_JSON)
    });
    if restrictions.lifted_any() {
        trail.note(crate::release::LIFTED_FOR_EMERGENCY);
    }
    let mut set = SearchSet::with_capacity(1024 * (prescriptions.len() + 1));
    for p in &prescriptions {
        let reference = serde_json::json!({
            "resourceType": "DocumentReference",
            "id": p.id,
            "masterIdentifier": {"system": p.identifier.system, "value": p.identifier.value},
            "status": "current",
            "type": super::listed::type_json(service.listed_type()),
            "subject": {"identifier": {"system": patient.system, "value": patient.value}},
            "date": p.received_at.format(&Rfc3339).unwrap_or_default(),
            "content": [{"attachment": {
                "contentType": FHIR_JSON,
                "url": format!("MedicationRequest/{}.{}", federation.country, p.id),
                "size": p.content.len(),
            }}],
        });
        set.entry(None, reference.to_string().as_bytes());
    }
    Ok(set)
}

/// `documents` of the patient `key` as they may be released for `purpose`,
/// and whether an emergency lifted the patient's restrictions.
async fn listed_as_released(
    state: &AppState,
    federation: &CrossBorder,
    key: &str,
    documents: Vec<ehds_store::DocumentSummary>,
    purpose: PurposeOfUse,
) -> Result<(Vec<ehds_store::DocumentSummary>, bool), GatewayError> {
    let restrictions = crate::release::summary_restrictions(state, key).await?;
    if restrictions.is_empty() {
        return Ok((documents, false));
    }
    let mut listed = Vec::with_capacity(documents.len());
    let mut lifted = false;
    for summary in documents {
        // Restrictions of parts are of FHIR summaries; a PDF original is
        // listed as stored.
        if summary.content_type != ehds_store::FHIR_JSON {
            listed.push(summary);
            continue;
        }
        let Some(original) = state.store.document(&summary.id).await? else {
            continue;
        };
        let released =
            crate::release::summary_under(state, federation, original, &restrictions, purpose)
                .await?;
        lifted |= released.lifted;
        listed.push(ehds_store::DocumentSummary {
            size: u64::try_from(released.content.len()).unwrap_or(u64::MAX),
            sha256: <sha2::Sha256 as sha2::Digest>::digest(&released.content).into(),
            id: released.id,
            identifier: released.identifier,
            ..summary
        });
    }
    Ok((listed, lifted))
}
