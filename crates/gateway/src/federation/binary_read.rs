//! `GET /fhir/Binary/{id}` on the federation API: one of this country's
//! patients' PDF originals for another country's NCP (MyHealth@EU Original
//! Clinical Documents; the `content.attachment.url` of its DocumentReference
//! in the list): the stored bytes, as `application/pdf` when asked for
//! (`Accept`), else a FHIR Binary (binary.html#rest). The document's service
//! (`crate::services`, by its stored type) names the permission asked for
//! and the opt-out that applies, as for `Bundle/{id}`; a PDF original
//! crosses as stored (restrictions of parts are the patient summary's), or
//! not at all when the patient restricted it (answered as not found). One
//! the store does not hold may be held by a national server
//! (`super::national_originals`).

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use ehds_fhir::audit_event::EntityTarget;
use ehds_routing::search::{BundleRead, TokenParam};
use ehds_transport::VerifiedPeer;

use crate::audit::Trail;
use crate::edge::AppState;
use crate::edge::respond::pdf_original;
use crate::error::GatewayError;
use crate::services::ServiceKind;

/// The route.
pub(crate) const PATH: &str = "/fhir/Binary/{id}";

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
    let not_found = || GatewayError::ResourceNotFound(format!("Binary/{id}"));
    // Found before the assertion is checked (the assertion must name the
    // document's patient), released only after.
    let Some(document) = state
        .store
        .document(&id)
        .await?
        .filter(|d| d.content_type == ehds_store::PDF)
    else {
        // Not stored: a national server may hold it.
        return super::national_originals::binary_read(
            &state,
            federation,
            (peer.as_deref(), &headers),
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
    let service = state
        .services
        .for_stored_type(document.document_type.as_deref())
        .filter(|s| s.kind == ServiceKind::Document)
        .ok_or_else(not_found)?;
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
    // A PDF original the patient restricted is "not found" to the caller
    // (audited here as withheld), unless an emergency lifts it.
    if crate::release::check_document_read(
        &state,
        federation,
        &document,
        &service.name,
        purpose,
        format!("Binary/{id}"),
    )
    .await?
    {
        trail.note(crate::release::LIFTED_FOR_EMERGENCY);
    }
    Ok(pdf_original(
        headers.get(header::ACCEPT),
        &id,
        document.content,
    ))
}
