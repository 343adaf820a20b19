//! `GET /fhir/MedicationRequest/<country>.<id>` on the national API: a
//! prescription held by another country (the id its prescription document
//! list gave), read from that country's NCP for the patient the assertion
//! names, validated here against the MPD MedicationRequest profile and
//! passed on byte for byte (the read counts as the pharmacy's retrieval
//! there). `crate::national::prescriptions` routes such ids here.

use axum::http::HeaderMap;
use axum::response::Response;

use super::send::ExpectedAnswer;
use crate::audit::Trail;
use crate::edge::AppState;
use crate::edge::extract::NationalCaller;
use crate::error::GatewayError;

/// Relays the read of `MedicationRequest/<remote_id>` to `country`.
pub(crate) async fn relay(
    state: &AppState,
    caller: &NationalCaller,
    headers: &HeaderMap,
    trail: &Trail,
    held_by: (&str, &str),
) -> Result<Response, GatewayError> {
    super::send::relay_read(
        state,
        caller,
        headers,
        trail,
        held_by,
        "MedicationRequest",
        ExpectedAnswer::Prescription,
    )
    .await
}
