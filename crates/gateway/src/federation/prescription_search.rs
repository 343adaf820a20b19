//! `GET /fhir/MedicationRequest?patient.identifier=system|value[&status=…]`
//! on the federation API: the patient's prescriptions for a pharmacy or
//! doctor abroad, each with the list metadata (`crate::eprescription`);
//! restricted ones are left out, as if absent; listing records the asking
//! organisation's retrieval (a dispense needs one). With the ePrescription
//! service on `source = "fhir"`, answered from the national server
//! (`super::national_prescriptions`).

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use ehds_access::Operation;
use ehds_fhir::audit_event::EntityTarget;
use ehds_routing::search::MedicationRequestSearch;
use ehds_transport::VerifiedPeer;
use time::OffsetDateTime;

use crate::audit::Trail;
use crate::edge::AppState;
use crate::edge::patient::patient_key;
use crate::edge::respond::SearchSet;
use crate::error::GatewayError;

/// The route.
pub(crate) const PATH: &str = "/fhir/MedicationRequest";

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
    let search = MedicationRequestSearch::parse(&query).map_err(GatewayError::Search)?;
    let purpose = super::admit::admit(
        &state,
        federation,
        peer.as_deref(),
        &headers,
        &search.patient_identifier,
        (
            Operation::ListPrescriptions,
            state.services.eprescription_name(),
        ),
        &trail,
    )
    .await?;
    // Where the patient's country takes its prescriptions from.
    if let Some(national) = federation
        .national_sources
        .for_service(state.services.eprescription_name())
    {
        return Ok(super::national_prescriptions::list(
            &state, federation, national, &search, purpose, &trail,
        )
        .await?
        .into_response());
    }
    let patient = &search.patient_identifier;
    let key = patient_key(&patient.system, &patient.value)?;
    let statuses = crate::eprescription::store_statuses(&search.status);
    let mut prescriptions = if statuses.is_empty() {
        Vec::new()
    } else {
        state
            .store
            .prescriptions_for_patient(&key, &statuses)
            .await?
    };
    // Prescriptions the patient restricted are left out, as if absent.
    let restrictions =
        crate::release::PrescriptionRestrictions::of(&state, federation, &key, purpose).await?;
    prescriptions.retain(|p| !restrictions.withholds(&p.identifier));
    if restrictions.lifted_any() {
        trail.note(crate::release::LIFTED_FOR_EMERGENCY);
    }
    // Who retrieved them: the asking organisation, in its country.
    let pharmacy = trail.requesting_organisation();
    let now = OffsetDateTime::now_utc();
    for prescription in &prescriptions {
        state
            .store
            .record_retrieval(&prescription.id, &pharmacy, now)
            .await?;
    }
    let mut set = SearchSet::with_capacity(4096);
    for prescription in &prescriptions {
        set.raw_entry(&crate::eprescription::list_entry(prescription));
    }
    Ok(set.into_response())
}
