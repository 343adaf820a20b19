//! `GET /fhir/MedicationRequest?patient.identifier=system|value[&status=…]`
//! on the national API: a visiting patient's prescriptions at their
//! country's NCP (ePrescription list; `ehds-routing` `MedicationRequestSearch`).

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use ehds_routing::search::MedicationRequestSearch;

use crate::audit::Trail;
use crate::edge::AppState;
use crate::edge::extract::NationalCaller;
use crate::error::GatewayError;

/// The route.
pub(crate) const PATH: &str = "/fhir/MedicationRequest";

/// The handler.
pub(crate) async fn relay(
    State(state): State<AppState>,
    caller: NationalCaller,
    trail: Trail,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, GatewayError> {
    super::send::relay_search::<MedicationRequestSearch>(
        &state,
        &caller,
        query.as_deref(),
        &headers,
        &trail,
    )
    .await
}
