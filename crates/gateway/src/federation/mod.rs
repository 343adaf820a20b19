//! The patient's country (NCP-A): the federation listener's API, answering
//! other countries' NCPs about this country's patients (MyHealth@EU NCPeH
//! FHIR API, see `conformance/ncpeh-api-coverage.md`).
//!
//! Every request is admitted first ([`admit`]: the calling NCP by its
//! verified certificate and the directory, the patient, the assertion, the
//! policy, the patient's opt-out), then answered from the store, or from the
//! national FHIR server of a service with `source = "fhir"`
//! ([`national_source`], [`national_prescriptions`], `crate::sources`), with the patient's restrictions
//! applied (`crate::release`). One file per
//! endpoint: [`patient_search`] (with [`patient_elements`], its
//! `_elements` subset), [`document_search`], [`document_read`],
//! [`binary_read`], //! [`prescription_search`], [`prescription_read`], [`dispense`],
//! [`audit_report`]. Every route is behind the audited exit
//! (`crate::audit::exit`): one record per request, refusals included, and
//! data is released only after its record is in the hash chain.

pub(crate) mod admit;
pub(crate) mod audit_report;
pub(crate) mod binary_read;
pub(crate) mod dispense;
pub(crate) mod document_read;
pub(crate) mod document_search;
pub(crate) mod listed;
pub(crate) mod national_originals;
pub(crate) mod national_prescriptions;
pub(crate) mod national_source;
pub(crate) mod patient_elements;
pub(crate) mod patient_search;
pub(crate) mod prescription_read;
pub(crate) mod prescription_search;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, get};
use ehds_fhir::audit_event::EntityTarget;
use ehds_transport::{PeerIdentity, VerifiedPeer};

use crate::audit::{AuditedRoute, audited};
use crate::edge::AppState;
use crate::error::GatewayError;

/// The federation listener's router.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route(
            patient_search::PATH,
            audited(
                MethodFilter::GET,
                patient_search::answer,
                AuditedRoute::search("Patient"),
                &state,
            ),
        )
        .route(
            document_search::PATH,
            audited(
                MethodFilter::GET,
                document_search::answer,
                AuditedRoute::search("DocumentReference"),
                &state,
            ),
        )
        .route(
            document_read::PATH,
            audited(
                MethodFilter::GET,
                document_read::answer,
                AuditedRoute::read("Bundle"),
                &state,
            ),
        )
        .route(
            binary_read::PATH,
            audited(
                MethodFilter::GET,
                binary_read::answer,
                AuditedRoute::read("Binary"),
                &state,
            ),
        )
        .route(
            prescription_search::PATH,
            audited(
                MethodFilter::GET,
                prescription_search::answer,
                AuditedRoute::search("MedicationRequest"),
                &state,
            ),
        )
        .route(
            prescription_read::PATH,
            audited(
                MethodFilter::GET,
                prescription_read::answer,
                AuditedRoute::read("MedicationRequest"),
                &state,
            ),
        )
        .route(
            dispense::PATH,
            audited(
                MethodFilter::POST,
                dispense::answer,
                AuditedRoute::create("MedicationDispense", EntityTarget::Id(String::new())),
                &state,
            ),
        )
        // A report of another NCP's refusal is itself an AuditEvent that
        // this route appends to the chain as sent: not audited again.
        .route(
            audit_report::PATH,
            axum::routing::post(audit_report::receive),
        )
        .route("/healthz", get(|| async { "ok" }))
        .fallback(crate::edge::fallback::unknown_route)
        .layer(from_fn(refuse_national_clients))
        .layer(from_fn_with_state(
            state.clone(),
            crate::edge::observe::observe,
        ))
        .with_state(state)
}

/// The audited routes of the federation API (for the audit-completeness
/// test).
pub(crate) const PATHS: &[(&str, &str)] = &[
    ("GET", patient_search::PATH),
    ("GET", document_search::PATH),
    ("GET", document_read::PATH),
    ("GET", binary_read::PATH),
    ("GET", prescription_search::PATH),
    ("GET", prescription_read::PATH),
    ("POST", dispense::PATH),
];

/// A national system of this country that calls the federation listener
/// (its certificate verified against the national CA, which the listener
/// admits for this only: `ServerTlsFiles::misdirected_clients`) gets a 403
/// on every request, whatever the route, saying where it belongs. Its
/// connection is on record as a Security Alert AuditEvent (reason
/// `misdirected_client`, the certificate's fingerprint), written by the
/// listener's refusal observer (`crate::audit::alerts`).
async fn refuse_national_clients(request: Request, next: Next) -> Response {
    let national = request
        .extensions()
        .get::<VerifiedPeer>()
        .is_some_and(|peer| matches!(peer.identity, PeerIdentity::NationalClient { .. }));
    if national {
        return GatewayError::Forbidden(
            "this is the federation API, for other countries' national contact points; \
             national systems call the national API"
                .into(),
        )
        .into_response();
    }
    next.run(request).await
}
