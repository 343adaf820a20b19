//! The steps every request of the federation API takes before it is
//! answered: the calling NCP (its verified certificate must be the
//! directory's NCP for its country, not this one), the patient identifier
//! (of this country), the health professional's assertion (signed by the
//! calling country's identity provider, bound to this patient, not
//! replayed), the access policy, and last the patient's own word (an
//! opt-out of the service towards the asking country).

use axum::http::HeaderMap;
use ehds_access::{AssertionRefusal, Operation, PatientRef, PurposeOfUse};
use ehds_fhir::audit_event::PeerRole;
use ehds_routing::Ncp;
use ehds_routing::search::TokenParam;
use ehds_transport::{PeerIdentity, VerifiedPeer};

use crate::audit::Trail;
use crate::edge::patient::patient_key;
use crate::edge::{AppState, CrossBorder};
use crate::error::GatewayError;

/// The calling NCP: its verified certificate must identify the NCP the
/// directory lists for its country, and that must not be this NCP.
pub(crate) fn calling_ncp<'f>(
    federation: &'f CrossBorder,
    peer: Option<&VerifiedPeer>,
) -> Result<(&'f Ncp, String), GatewayError> {
    let Some(peer) = peer else {
        return Err(GatewayError::Unauthenticated(
            "the federation API requires a federation client certificate".into(),
        ));
    };
    let PeerIdentity::FederationNcp { country, ncp_id } = &peer.identity else {
        return Err(GatewayError::Forbidden(
            "this certificate does not identify a national contact point".into(),
        ));
    };
    let ncp = federation
        .directory
        .peer_by_identity(country, ncp_id)
        .filter(|ncp| ncp.country() != federation.country)
        .ok_or_else(|| {
            GatewayError::Forbidden(
                "this certificate's NCP is not the directory's NCP for its country".into(),
            )
        })?;
    Ok((ncp, peer.fingerprint.to_hex()))
}

/// [`admit`] for the read of one resource: when the resource turns out to
/// be about another patient than the assertion's, the caller gets
/// `not_found()`, as for a resource that does not exist (a "forbidden"
/// would tell it that the id names something).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn admit_read(
    state: &AppState,
    federation: &CrossBorder,
    peer: Option<&VerifiedPeer>,
    headers: &HeaderMap,
    patient: &TokenParam,
    operation_of_service: (Operation, &str),
    trail: &Trail,
    not_found: impl FnOnce() -> GatewayError,
) -> Result<PurposeOfUse, GatewayError> {
    admit(
        state,
        federation,
        peer,
        headers,
        patient,
        operation_of_service,
        trail,
    )
    .await
    .map_err(|error| match error {
        GatewayError::Assertion(AssertionRefusal::PatientMismatch) => not_found(),
        other => other,
    })
}

/// Admits a request about `patient` for `operation` of `service` (a name
/// of the service registry: the patient's opt-out of it applies), or
/// refuses it; the purpose of use of the admitted assertion.
pub(crate) async fn admit(
    state: &AppState,
    federation: &CrossBorder,
    peer: Option<&VerifiedPeer>,
    headers: &HeaderMap,
    patient: &TokenParam,
    (operation, service): (Operation, &str),
    trail: &Trail,
) -> Result<PurposeOfUse, GatewayError> {
    trail.patient(patient);
    trail.service(service);
    let (ncp, fingerprint) = calling_ncp(federation, peer)?;
    let peer_country = ncp.country().as_str().to_owned();
    trail.peer(&peer_country, ncp.id(), fingerprint, PeerRole::Requester);
    let routed = federation
        .directory
        .check_patient_identifier(&patient.system, &patient.value)
        .map_err(GatewayError::Identifier)?;
    if routed.country.code() != federation.country {
        return Err(GatewayError::ResourceNotFound(
            "a patient of another country".into(),
        ));
    }
    let token = crate::assertion::bearer(headers)?;
    let assertion = crate::assertion::verify(
        state,
        federation,
        token,
        federation.country.as_str(),
        &peer_country,
        &PatientRef::new(&patient.system, &patient.value),
    )
    .await?;
    trail.professional(&assertion);
    crate::assertion::authorise(federation, &assertion, operation)?;
    // The patient's own word last: an opt-out of this service towards the
    // asking country refuses, saying no more than that there is no consent.
    let key = patient_key(&patient.system, &patient.value)?;
    if state
        .store
        .is_opted_out(&key, service, &peer_country)
        .await?
    {
        return Err(GatewayError::NoConsent);
    }
    Ok(assertion.purpose())
}
