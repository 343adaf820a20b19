//! `GET /fhir/Patient?identifier=system|value[&name&birthdate&gender]` on
//! the federation API: identify one of this country's patients for another
//! country's NCP (NCPeH FHIR API, PatientMinimal search): the Patient
//! resource of the newest stored FHIR document of this patient (not one
//! the patient restricted), exactly as its
//! sender wrote it, when it matches the optional demographics; or, when
//! the patient summary is answered by a national FHIR server, the Patient
//! that server holds (`super::national_source`). `_elements` narrows the
//! Patient to the elements asked for (`super::patient_elements`, derived
//! from the received bytes, the national server's as the store's).

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use ehds_access::Operation;
use ehds_fhir::audit_event::EntityTarget;
use ehds_fhir::{Node, ReceivedResource};
use ehds_routing::search::PatientSearch;
use ehds_transport::VerifiedPeer;

use crate::audit::Trail;
use crate::edge::AppState;
use crate::edge::patient::patient_key;
use crate::edge::respond::SearchSet;
use crate::error::GatewayError;

/// The route.
pub(crate) const PATH: &str = "/fhir/Patient";

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
    let search = PatientSearch::parse(&query).map_err(GatewayError::Search)?;
    let purpose = super::admit::admit(
        &state,
        federation,
        peer.as_deref(),
        &headers,
        &search.identifier,
        (
            Operation::ReadPatientSummary,
            crate::services::PATIENT_SUMMARY,
        ),
        &trail,
    )
    .await?;
    if let Some(national) = federation
        .national_sources
        .for_service(crate::services::PATIENT_SUMMARY)
    {
        let matches = |patient: &Node| demographics_match(patient, &search);
        return Ok(super::national_source::patient(national, &search, matches)
            .await?
            .into_response());
    }
    Ok(search_set(&state, federation, &search, purpose)
        .await?
        .into_response())
}

/// The Patient of the newest FHIR document of the patient that may cross
/// for this `purpose`: a PDF original carries no Patient resource, and a
/// document the patient restricted is not read for anyone abroad.
async fn search_set(
    state: &AppState,
    federation: &crate::edge::CrossBorder,
    search: &PatientSearch,
    purpose: ehds_access::PurposeOfUse,
) -> Result<SearchSet, GatewayError> {
    let key = patient_key(&search.identifier.system, &search.identifier.value)?;
    let documents = state
        .store
        .documents_for_patient(&key, Some("document"))
        .await?;
    let restrictions =
        crate::release::DocumentRestrictions::of(state, federation, &key, purpose).await?;
    let newest = documents.iter().find(|d| {
        let service = state
            .services
            .for_stored_type(d.document_type.as_deref())
            .map_or(crate::services::PATIENT_SUMMARY, |s| s.name.as_str());
        d.content_type == ehds_store::FHIR_JSON && !restrictions.withholds(service, &d.identifier)
    });
    let mut set = SearchSet::with_capacity(512);
    if let Some(newest) = newest
        && let Some(doc) = state.store.document(&newest.id).await?
        && let Ok(resource) = ReceivedResource::parse(Bytes::from(doc.content))
        && let Some((full_url, patient)) = patient_entry(&resource, search)
    {
        set.entry(Some(&full_url), &patient);
    }
    Ok(set)
}

/// The document's Patient entry with this identifier (fullUrl, exact bytes),
/// if its demographics match the search.
fn patient_entry(resource: &ReceivedResource, search: &PatientSearch) -> Option<(String, Vec<u8>)> {
    let entries = resource.root().get("entry")?.as_array()?;
    entries.iter().find_map(|entry| {
        let patient = entry.get("resource")?;
        if patient.get("resourceType")?.as_str()? != "Patient" {
            return None;
        }
        let has_identifier = patient.get("identifier")?.items().iter().any(|i| {
            i.get("system").and_then(Node::as_str) == Some(search.identifier.system.as_str())
                && i.get("value").and_then(Node::as_str) == Some(search.identifier.value.as_str())
        });
        if !has_identifier || !demographics_match(patient, search) {
            return None;
        }
        let full_url = entry.get("fullUrl")?.as_str()?.to_owned();
        let bytes = match &search.elements {
            Some(asked) => super::patient_elements::subset(patient, resource.bytes(), asked)?,
            None => resource
                .bytes()
                .get(patient.span.start as usize..patient.span.end as usize)?
                .to_vec(),
        };
        Some((full_url, bytes))
    })
}

fn demographics_match(patient: &Node, search: &PatientSearch) -> bool {
    if let Some(gender) = search.gender
        && patient.get("gender").and_then(Node::as_str) != Some(gender.code())
    {
        return false;
    }
    if let Some(birthdate) = &search.birthdate {
        let wanted = birthdate.to_string();
        match patient.get("birthDate").and_then(Node::as_str) {
            Some(born) if born.starts_with(&wanted) || wanted.starts_with(born) => {}
            _ => return false,
        }
    }
    if let Some(name) = &search.name {
        let wanted = name.to_lowercase();
        let names = patient.get("name").map(Node::items).unwrap_or_default();
        let any = names.iter().any(|n| {
            let family = n.get("family").and_then(Node::as_str).into_iter();
            let given = n.get("given").map(Node::items).unwrap_or_default();
            family
                .chain(given.iter().filter_map(Node::as_str))
                .any(|part| part.to_lowercase().starts_with(&wanted))
        });
        if !any {
            return false;
        }
    }
    true
}
