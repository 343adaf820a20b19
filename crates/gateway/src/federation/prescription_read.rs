//! `GET /fhir/MedicationRequest/{id}` on the federation API: a prescription
//! read by a pharmacy or doctor abroad (the id the prescription document
//! list gave): the bytes as the prescriber sent them; reading it counts as
//! the asking organisation's retrieval (a dispense needs one). A
//! prescription of another patient, or one the patient restricted, is not
//! found. With the ePrescription service on `source = "fhir"`, answered
//! from the national server (`super::national_prescriptions`).

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use ehds_access::Operation;
use ehds_fhir::audit_event::EntityTarget;
use ehds_routing::search::{BundleRead, TokenParam};
use ehds_transport::VerifiedPeer;
use time::OffsetDateTime;

use crate::audit::Trail;
use crate::edge::AppState;
use crate::edge::respond::fhir_json;
use crate::error::GatewayError;

/// The route.
pub(crate) const PATH: &str = "/fhir/MedicationRequest/{id}";

/// The handler.
pub(crate) async fn answer(
    State(state): State<AppState>,
    peer: Option<Extension<VerifiedPeer>>,
    trail: Trail,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, GatewayError> {
    let federation = state.cross_border()?;
    trail.target(EntityTarget::Id(id.clone()));
    BundleRead::parse(&id, "").map_err(GatewayError::Search)?;
    if let Some(national) = federation
        .national_sources
        .for_service(state.services.eprescription_name())
    {
        return super::national_prescriptions::read(
            &state,
            federation,
            national,
            (peer.as_deref(), &headers),
            &id,
            &trail,
        )
        .await;
    }
    let not_found = || GatewayError::ResourceNotFound(format!("MedicationRequest/{id}"));
    let prescription = state.store.prescription(&id).await?.ok_or_else(not_found)?;
    let (system, value) = prescription
        .patient_identifier
        .split_once('|')
        .ok_or_else(not_found)?;
    let patient = TokenParam {
        system: system.to_owned(),
        value: value.to_owned(),
    };
    let purpose = super::admit::admit_read(
        &state,
        federation,
        peer.as_deref(),
        &headers,
        &patient,
        (
            Operation::ReadPrescription,
            state.services.eprescription_name(),
        ),
        &trail,
        not_found,
    )
    .await?;
    let restrictions = crate::release::PrescriptionRestrictions::of(
        &state,
        federation,
        &prescription.patient_identifier,
        purpose,
    )
    .await?;
    if restrictions.withholds(&prescription.identifier) {
        return Err(not_found());
    }
    if restrictions.lifted_for(&prescription.identifier) {
        trail.note(crate::release::LIFTED_FOR_EMERGENCY);
    }
    let pharmacy = trail.requesting_organisation();
    state
        .store
        .record_retrieval(&prescription.id, &pharmacy, OffsetDateTime::now_utc())
        .await?;
    Ok(fhir_json(StatusCode::OK, prescription.content))
}
