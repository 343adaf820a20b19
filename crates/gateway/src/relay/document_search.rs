//! `GET /fhir/DocumentReference?patient.identifier=system|value[&type=…]`
//! on the national API: a visiting patient's documents at their country's
//! NCP (NCPeH FHIR API, DocumentReference search: the patient summary list
//! and the ePrescription list; `ehds-routing` `DocumentReferenceSearch`).

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use ehds_routing::search::DocumentReferenceSearch;

use crate::audit::Trail;
use crate::edge::AppState;
use crate::edge::extract::NationalCaller;
use crate::error::GatewayError;

/// The route.
pub(crate) const PATH: &str = "/fhir/DocumentReference";

/// The handler.
pub(crate) async fn relay(
    State(state): State<AppState>,
    caller: NationalCaller,
    trail: Trail,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, GatewayError> {
    super::send::relay_search::<DocumentReferenceSearch>(
        &state,
        &caller,
        query.as_deref(),
        &headers,
        &trail,
    )
    .await
}
