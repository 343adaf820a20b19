//! `POST /fhir/MedicationDispense` on the national API: a pharmacy hands
//! over (or refuses) a visiting patient's prescription; validated here,
//! relayed to the patient's country, which applies it to the prescription
//! exactly once (`crate::federation::dispense`).

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use ehds_routing::search::TokenParam;
use ehds_transport::NationalClientKind;

use super::send::{ExpectedAnswer, Relay};
use crate::audit::Trail;
use crate::edge::AppState;
use crate::edge::extract::{FhirBody, NationalCaller, receive_resource};
use crate::error::GatewayError;

/// The route.
pub(crate) const PATH: &str = "/fhir/MedicationDispense";

/// The handler.
pub(crate) async fn relay(
    State(state): State<AppState>,
    caller: NationalCaller,
    trail: Trail,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, GatewayError> {
    caller.require(&[NationalClientKind::Pharmacy], "dispense")?;
    let resource =
        FhirBody(receive_resource(&headers, body, &state).await?).of_type("MedicationDispense")?;
    let report = state.validator.validate(&resource, &[]).await;
    if !report.is_acceptable() {
        return Err(GatewayError::Invalid(report));
    }
    let facts = crate::eprescription::read_dispense(resource.root())?;
    let patient = TokenParam {
        system: facts.patient.0.clone(),
        value: facts.patient.1.clone(),
    };
    let federation = state.cross_border()?;
    let ncp = super::send::ncp_of(federation, &patient)?;
    Relay {
        patient,
        ncp,
        path: "MedicationDispense".to_owned(),
        body: Some(resource.bytes().clone()),
        expected: ExpectedAnswer::Dispense,
        service: Some(state.services.eprescription_name().to_owned()),
    }
    .send(&state, &caller, &headers, &trail)
    .await
}
