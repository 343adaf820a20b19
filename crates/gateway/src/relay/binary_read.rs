//! `GET /fhir/Binary/<country>.<id>` on the national API: a PDF original
//! held by another country (MyHealth@EU Original Clinical Documents; the id
//! its DocumentReference list gave in `content.attachment.url`), retrieved
//! from that country's NCP for the patient the assertion names, checked
//! here as a PDF (`ehds_validation::pdf`) and passed on byte for byte:
//! `Accept: application/pdf` gets the bytes, otherwise a FHIR Binary
//! (binary.html#rest). `crate::national::pdf_originals` routes such ids
//! here.

use axum::http::HeaderMap;
use axum::response::Response;

use super::send::ExpectedAnswer;
use crate::audit::Trail;
use crate::edge::AppState;
use crate::edge::extract::NationalCaller;
use crate::error::GatewayError;

/// Relays the read of `Binary/<remote_id>` to `country`.
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
        "Binary",
        ExpectedAnswer::PdfOriginal,
    )
    .await
}
