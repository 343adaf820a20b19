//! `POST /fhir/MedicationDispense` on the federation API: a dispense from a
//! pharmacy abroad, validated (R4 and the HL7 Europe MPD MedicationDispense
//! profile when loaded), admitted, and applied to the prescriptions it
//! names in one store transaction under their row locks
//! (`crate::eprescription::dispense_at_home`): exactly once, whatever the
//! retries and races. A prescription the patient restricted does not exist
//! abroad.

use axum::Extension;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use ehds_access::Operation;
use ehds_fhir::audit_event::EntityTarget;
use ehds_routing::search::TokenParam;
use ehds_transport::VerifiedPeer;

use crate::audit::Trail;
use crate::edge::AppState;
use crate::edge::extract::FhirBody;
use crate::edge::patient::patient_key;
use crate::error::{DispenseRefusal, GatewayError};

/// The route.
pub(crate) const PATH: &str = "/fhir/MedicationDispense";

/// The HL7 Europe MPD MedicationDispense profile.
const MPD_DISPENSE: &str = "http://hl7.eu/fhir/mpd/StructureDefinition/MedicationDispense-eu-mpd";

/// The handler.
pub(crate) async fn answer(
    State(state): State<AppState>,
    peer: Option<Extension<VerifiedPeer>>,
    trail: Trail,
    headers: HeaderMap,
    body: FhirBody,
) -> Result<Response, GatewayError> {
    let federation = state.cross_border()?;
    let resource = body.of_type("MedicationDispense")?;
    let profiles: &[&str] = if state.validator.knows_profile(MPD_DISPENSE) {
        &[MPD_DISPENSE]
    } else {
        &[]
    };
    let report = state.validator.validate(&resource, profiles).await;
    if !report.is_acceptable() {
        return Err(GatewayError::Invalid(report));
    }
    let facts = crate::eprescription::read_dispense(resource.root())?;
    trail.target(EntityTarget::Id(facts.identifier.1.clone()));
    let patient = TokenParam {
        system: facts.patient.0.clone(),
        value: facts.patient.1.clone(),
    };
    let purpose = super::admit::admit(
        &state,
        federation,
        peer.as_deref(),
        &headers,
        &patient,
        (Operation::Dispense, state.services.eprescription_name()),
        &trail,
    )
    .await?;
    let key = patient_key(&patient.system, &patient.value)?;
    // A prescription the patient restricted does not exist abroad.
    let restrictions =
        crate::release::PrescriptionRestrictions::of(&state, federation, &key, purpose).await?;
    for (line, (system, value)) in facts.prescriptions.iter().enumerate() {
        let identifier = ehds_store::DocumentIdentifier {
            system: system.clone(),
            value: value.clone(),
        };
        if restrictions.withholds(&identifier) {
            return Err(GatewayError::DispenseRefused {
                kind: DispenseRefusal::UnknownPrescription,
                message: "no such prescription for this patient".into(),
                at: Some(format!(
                    "MedicationDispense.authorizingPrescription[{line}]"
                )),
            });
        }
        if restrictions.lifted_for(&identifier) {
            trail.note(crate::release::LIFTED_FOR_EMERGENCY);
        }
    }
    // With the ePrescription service on `source = "fhir"`, the dispense is
    // written to the national server.
    if let Some(national) = federation
        .national_sources
        .for_service(state.services.eprescription_name())
    {
        return super::national_prescriptions::dispense(
            &state,
            national,
            &facts,
            resource.bytes().clone(),
            &crate::edge::patient::patient_identifier(&patient.system, &patient.value)?,
        )
        .await;
    }
    let pharmacy = trail.requesting_organisation();
    crate::eprescription::dispense_at_home(&state, &facts, resource.bytes(), &pharmacy, &key).await
}
