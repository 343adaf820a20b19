//! ePrescriptions at home (the country of affiliation): prescriber systems
//! push MedicationRequests through the national API; the gateway validates
//! them (R4 core, the profiles they claim, and the HL7 Europe MPD
//! MedicationRequest profile), stores the bytes exactly as sent and tracks
//! their state (quantity remaining, dispensable abroad or not) in the store.
//!
//! What the gateway reads from a pushed MedicationRequest (and refuses to
//! store without, since a pharmacy abroad could not use it):
//!
//! | what | element | |
//! | --- | --- | --- |
//! | identifier | `identifier[0]` (system and value) | the prescription's business identifier, unique |
//! | patient | `subject.identifier` (system and value) | how a country of treatment finds it; a bare `subject.reference` is not enough across borders |
//! | quantity | `dispenseRequest.quantity`, else the IHE MPD `prescribedQuantity` extension on `dispenseRequest` | value (at most 3 decimals) and unit (`code`, else `unit`) |
//! | substitution | `substitution.allowedBoolean` | absent: not allowed |
//! | ATC | `medicationCodeableConcept.coding` of `http://www.whocc.no/atc` | optional list metadata |
//!
//! Cross-border listing and dispensing are the next steps of the issue.

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ehds_fhir::Node;
use ehds_fhir::outcome::{Issue, IssueType};
use ehds_store::DocumentIdentifier as Identifier;
use ehds_store::{NewPrescription, PutPrescriptionOutcome};
use ehds_transport::{NationalClientKind, VerifiedPeer};

use crate::error::GatewayError;
use crate::http::{AppState, FHIR_JSON, NationalCaller};

/// The HL7 Europe MPD MedicationRequest profile every pushed prescription
/// must meet (when the loaded packages hold it).
pub const MPD_MEDICATION_REQUEST: &str =
    "http://hl7.eu/fhir/mpd/StructureDefinition/MedicationRequest-eu-mpd";

/// IHE MPD extension carrying the prescribed quantity on `dispenseRequest`.
const PRESCRIBED_QUANTITY: &str = "https://profiles.ihe.net/PHARM/MPD/StructureDefinition/ihe-ext-medicationrequest-prescribedQuantity";

const ATC: &str = "http://www.whocc.no/atc";

/// An exact FHIR decimal as thousandths (`"2.5"` → 2 500); `None` for
/// negative values, more than three decimals, exponents or overflow.
pub fn decimal_to_milli(text: &str) -> Option<i64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || (text.contains('.') && fraction.is_empty())
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || fraction.len() > 3
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let mut milli: i64 = 0;
    for (i, digit) in fraction.bytes().enumerate() {
        let weight = 10_i64.pow(2 - u32::try_from(i).ok()?);
        milli += i64::from(digit - b'0') * weight;
    }
    whole.checked_mul(1000)?.checked_add(milli)
}

fn refuse(message: &str, at: &str) -> GatewayError {
    let mut report = ehds_validation::ValidationReport::default();
    report.push(Issue::error(IssueType::Required, message).at(at));
    GatewayError::Invalid(report)
}

fn text<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.get(key).and_then(Node::as_str)
}

/// `POST /fhir/MedicationRequest`: a prescriber system pushes a prescription.
pub async fn push_prescription(
    State(state): State<AppState>,
    peer: Option<Extension<VerifiedPeer>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, GatewayError> {
    let caller = NationalCaller::of(peer.as_deref(), state.country.as_deref())?;
    caller.require(
        &[
            NationalClientKind::EhrSystem,
            NationalClientKind::DoctorSystem,
        ],
        "push prescriptions",
    )?;
    let resource = crate::http::receive_resource(&headers, body, state.limits).await?;
    if resource.resource_type() != "MedicationRequest" {
        return Err(GatewayError::WrongResourceType {
            expected: "MedicationRequest",
            found: resource.resource_type().to_owned(),
        });
    }
    let profiles: &[&str] = if state.validator.knows_profile(MPD_MEDICATION_REQUEST) {
        &[MPD_MEDICATION_REQUEST]
    } else {
        &[]
    };
    let report = state.validator.validate(&resource, profiles);
    if !report.is_acceptable() {
        return Err(GatewayError::Invalid(report));
    }
    let root = resource.root();
    let identifier = root
        .get("identifier")
        .and_then(|i| i.items().first())
        .and_then(|i| Some((text(i, "system")?, text(i, "value")?)))
        .ok_or_else(|| {
            refuse(
                "a prescription crossing borders needs identifier[0] with a system and a value",
                "MedicationRequest.identifier",
            )
        })?;
    let patient = root
        .get("subject")
        .and_then(|s| s.get("identifier"))
        .and_then(|i| Some(format!("{}|{}", text(i, "system")?, text(i, "value")?)))
        .ok_or_else(|| {
            refuse(
                "subject.identifier (system and value) is required: a country of treatment finds prescriptions by the patient's identifier",
                "MedicationRequest.subject.identifier",
            )
        })?;
    let dispense_request = root.get("dispenseRequest");
    let quantity = dispense_request
        .and_then(|d| d.get("quantity"))
        .or_else(|| {
            dispense_request
                .and_then(|d| d.get("extension"))
                .map(Node::items)
                .unwrap_or_default()
                .iter()
                .find(|e| text(e, "url") == Some(PRESCRIBED_QUANTITY))
                .and_then(|e| e.get("valueQuantity"))
        })
        .ok_or_else(|| {
            refuse(
                "the prescribed quantity is required (dispenseRequest.quantity or the IHE MPD prescribedQuantity extension)",
                "MedicationRequest.dispenseRequest",
            )
        })?;
    let milli = quantity
        .get("value")
        .and_then(Node::as_number_text)
        .and_then(decimal_to_milli)
        .filter(|m| *m > 0)
        .ok_or_else(|| {
            refuse(
                "the prescribed quantity must be a positive number with at most three decimals",
                "MedicationRequest.dispenseRequest.quantity.value",
            )
        })?;
    let unit = text(quantity, "code")
        .or_else(|| text(quantity, "unit"))
        .unwrap_or("1");
    let substitution_allowed = matches!(
        root.get("substitution")
            .and_then(|s| s.get("allowedBoolean"))
            .map(|b| &b.value),
        Some(ehds_fhir::json::Json::Bool(true))
    );
    let atc = root
        .get("medicationCodeableConcept")
        .and_then(|m| m.get("coding"))
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .find(|c| text(c, "system") == Some(ATC))
        .and_then(|c| text(c, "code"));
    let outcome = state
        .store
        .put_prescription(NewPrescription {
            identifier: Identifier {
                system: identifier.0.to_owned(),
                value: identifier.1.to_owned(),
            },
            patient_identifier: &patient,
            prescriber: None,
            sender: &caller.sender(),
            quantity_prescribed_milli: milli,
            unit,
            substitution_allowed,
            atc_code: atc,
            dose_form: None,
            not_available_abroad: None,
            content: resource.bytes(),
            received_at: time::OffsetDateTime::now_utc(),
        })
        .await?;
    let (status, stored) = match outcome {
        PutPrescriptionOutcome::Created(p) => (StatusCode::CREATED, p),
        PutPrescriptionOutcome::AlreadyStored(p) => (StatusCode::OK, p),
        PutPrescriptionOutcome::Conflict { existing_id } => {
            return Err(GatewayError::IdentifierConflict { existing_id });
        }
        PutPrescriptionOutcome::Invalid(why) => {
            return Err(refuse(
                &format!("the prescription cannot be tracked: {why:?}"),
                "MedicationRequest",
            ));
        }
    };
    let mut response = (status, stored.content).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    if let Ok(location) = HeaderValue::from_str(&format!("/fhir/MedicationRequest/{}", stored.id)) {
        headers.insert(header::LOCATION, location);
    }
    if let Ok(state_header) = HeaderValue::from_str(&format!(
        "{}; remaining={}",
        stored.status.as_str(),
        stored.quantity_remaining_milli
    )) {
        headers.insert("x-prescription-state", state_header);
    }
    Ok(response)
}

/// `GET /fhir/MedicationRequest/{id}`: the exact bytes stored.
pub async fn read_prescription(
    State(state): State<AppState>,
    peer: Option<Extension<VerifiedPeer>>,
    Path(id): Path<String>,
) -> Result<Response, GatewayError> {
    NationalCaller::of(peer.as_deref(), state.country.as_deref())?;
    match state.store.prescription(&id).await? {
        Some(prescription) => {
            let mut response = (StatusCode::OK, prescription.content).into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
            Ok(response)
        }
        None => Err(GatewayError::ResourceNotFound(format!(
            "MedicationRequest/{id}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_become_exact_thousandths() {
        assert_eq!(decimal_to_milli("21"), Some(21_000));
        assert_eq!(decimal_to_milli("2.5"), Some(2_500));
        assert_eq!(decimal_to_milli("0.125"), Some(125));
        assert_eq!(decimal_to_milli("1.050"), Some(1_050));
        for bad in [
            "",
            "-1",
            "1.2345",
            "1e3",
            ".5",
            "1.",
            "x",
            "99999999999999999999",
        ] {
            assert_eq!(decimal_to_milli(bad), None, "{bad}");
        }
    }
}
