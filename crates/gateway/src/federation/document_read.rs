//! `GET /fhir/Bundle/{id}` on the federation API: one of this country's
//! patients' documents for another country's NCP (NCPeH FHIR API, document
//! retrieve): the stored bytes, or — for a patient summary whose patient
//! restricted parts of it — its released variant (`crate::release`). The
//! document's service (`crate::services`, by its stored type) names the
//! permission asked for and the opt-out that applies. The id may be a released
//! variant's: what is released is decided from its original, against the
//! restrictions in force now. A document the patient restricted as a whole
//! is answered as not found (`crate::release::check_document_read`). A document the store does not hold is asked
//! of the national FHIR servers (`super::national_source`).

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use ehds_fhir::audit_event::EntityTarget;
use ehds_routing::search::{BundleRead, TokenParam};
use ehds_transport::VerifiedPeer;

use crate::audit::Trail;
use crate::edge::AppState;
use crate::edge::respond::fhir_json;
use crate::error::GatewayError;
use crate::services::{PATIENT_SUMMARY, ServiceKind};

/// The route.
pub(crate) const PATH: &str = "/fhir/Bundle/{id}";

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
    let not_found = || GatewayError::ResourceNotFound(format!("Bundle/{id}"));
    // Found before the assertion is checked (the assertion must name the
    // document's patient), released only after.
    // A PDF original is read as `Binary/{id}` (`super::binary_read`).
    let stored = original_document(&state, &id).await?;
    if stored
        .as_ref()
        .is_some_and(|d| d.content_type != ehds_store::FHIR_JSON)
    {
        return Err(not_found());
    }
    let Some(document) = stored else {
        // Not in the store: the national servers of the services answered
        // from one (`crate::sources`).
        return super::national_source::document_read(
            &state,
            federation,
            peer.as_deref(),
            &headers,
            &id,
            &trail,
        )
        .await?
        .ok_or_else(not_found);
    };
    let patient = document
        .patient_identifier
        .as_deref()
        .and_then(|p| p.split_once('|'))
        .map(|(system, value)| TokenParam {
            system: system.to_owned(),
            value: value.to_owned(),
        })
        .ok_or_else(not_found)?;
    // The document's service (by its stored type) names the permission
    // asked for and the opt-out that applies.
    let service = state
        .services
        .for_stored_type(document.document_type.as_deref())
        .filter(|s| s.kind == ServiceKind::Document)
        .ok_or_else(not_found)?;
    let is_summary = service.name == PATIENT_SUMMARY;
    let purpose = super::admit::admit_read(
        &state,
        federation,
        peer.as_deref(),
        &headers,
        &patient,
        (service.permission, &service.name),
        &trail,
        not_found,
    )
    .await?;
    // A document the patient restricted as a whole is "not found" to the
    // caller (audited here as withheld), unless an emergency lifts it.
    if crate::release::check_document_read(
        &state,
        federation,
        &document,
        &service.name,
        purpose,
        format!("Bundle/{id}"),
    )
    .await?
    {
        trail.note(crate::release::LIFTED_FOR_EMERGENCY);
    }
    if !is_summary {
        // Restrictions of parts are the patient summary's; another
        // service's document crosses as stored.
        return Ok(fhir_json(StatusCode::OK, document.content));
    }
    let released =
        crate::release::summary_for_release(&state, federation, document, purpose).await?;
    if released.lifted {
        trail.note(crate::release::LIFTED_FOR_EMERGENCY);
    }
    Ok(fhir_json(StatusCode::OK, released.content))
}

/// The stored document `id`, or the original of the released variant `id`.
async fn original_document(
    state: &AppState,
    id: &str,
) -> Result<Option<ehds_store::StoredDocument>, GatewayError> {
    if let Some(document) = state.store.document(id).await? {
        return Ok(Some(document));
    }
    match state.store.released_document(id).await? {
        Some(variant) => Ok(state.store.document(&variant.original_id).await?),
        None => Ok(None),
    }
}
