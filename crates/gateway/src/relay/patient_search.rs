//! `GET /fhir/Patient?identifier=system|value[&name&birthdate&gender]` on
//! the national API: identify a visiting patient at their country's NCP
//! (NCPeH FHIR API, PatientMinimal search; `ehds-routing` `PatientSearch`).

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use ehds_routing::search::PatientSearch;

use crate::audit::Trail;
use crate::edge::AppState;
use crate::edge::extract::NationalCaller;
use crate::error::GatewayError;

/// The route.
pub(crate) const PATH: &str = "/fhir/Patient";

/// The handler.
pub(crate) async fn relay(
    State(state): State<AppState>,
    caller: NationalCaller,
    trail: Trail,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, GatewayError> {
    super::send::relay_search::<PatientSearch>(&state, &caller, query.as_deref(), &headers, &trail)
        .await
}
