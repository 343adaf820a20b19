//! `GET /fhir/Bundle/<country>.<id>` on the national API: a document held
//! by another country (the id its DocumentReference list gave in
//! `content.attachment.url`), retrieved from that country's NCP for the
//! patient the assertion names, validated here against the document
//! profiles and passed on byte for byte (NCPeH FHIR API, document
//! retrieve). `crate::national::documents` routes such ids here.

use axum::http::HeaderMap;
use axum::response::Response;

use super::send::ExpectedAnswer;
use crate::audit::Trail;
use crate::edge::AppState;
use crate::edge::extract::NationalCaller;
use crate::error::GatewayError;

/// Relays the read of `Bundle/<remote_id>` to `country`.
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
        "Bundle",
        ExpectedAnswer::Document,
    )
    .await
}
