//! The country of treatment (NCP-B): a doctor's or pharmacy's system asks,
//! on the national API, about a visiting patient; the request is relayed to
//! the patient's country's NCP over mutual TLS and its answer is checked
//! before it is passed on byte for byte (MyHealth@EU NCPeH FHIR API, see
//! `conformance/ncpeh-api-coverage.md`).
//!
//! One file per endpoint: [`patient_search`], [`document_search`],
//! [`document_read`], [`binary_read`], [`prescription_search`], [`prescription_read`],
//! [`dispense`]. Each builds one [`send::Relay`] and sends it; what every
//! relay does is in [`send`], once:
//!
//! 1. the caller must be a doctor's or pharmacy's system of this country;
//! 2. the patient identifier names the patient's country (its rules checked
//!    before anything crosses the border: `ehds-routing`), never this one;
//! 3. the health professional's assertion is verified here too (a forged,
//!    expired or replayed one never leaves the country);
//! 4. the peer's server certificate is checked (directory identity and
//!    OCSP) with a request carrying no patient data before the patient's
//!    identifier and the assertion are sent, and again on the answer
//!    (`ehds-transport` `FederationClient`);
//! 5. the answer is untrusted input: parsed and validated
//!    ([`ExpectedAnswer`]) before it is passed on.
//!
//! Every relay route is behind the audited exit (`crate::audit::exit`): one
//! record per request, refusals included; a refusal decided here about the
//! other country's patient is reported there.

pub(crate) mod binary_read;
pub(crate) mod dispense;
pub(crate) mod document_read;
pub(crate) mod document_search;
pub(crate) mod patient_search;
pub(crate) mod prescription_read;
pub(crate) mod prescription_search;
pub(crate) mod send;

use axum::Router;
use axum::routing::MethodFilter;
use ehds_fhir::audit_event::EntityTarget;

use crate::audit::{AuditedRoute, audited};
use crate::edge::AppState;

/// The relay's routes on the national API, each behind the audited exit.
/// (The reads by id, `Bundle/<country>.<id>`, `Binary/<country>.<id>` and
/// `MedicationRequest/<country>.<id>`, share their path with the reads at
/// home: `crate::national` routes them here.)
pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route(
            patient_search::PATH,
            audited(
                MethodFilter::GET,
                patient_search::relay,
                AuditedRoute::search("Patient"),
                state,
            ),
        )
        .route(
            document_search::PATH,
            audited(
                MethodFilter::GET,
                document_search::relay,
                AuditedRoute::search("DocumentReference"),
                state,
            ),
        )
        .route(
            prescription_search::PATH,
            audited(
                MethodFilter::GET,
                prescription_search::relay,
                AuditedRoute::search("MedicationRequest"),
                state,
            ),
        )
        .route(
            dispense::PATH,
            audited(
                MethodFilter::POST,
                dispense::relay,
                AuditedRoute::create("MedicationDispense", EntityTarget::Query(String::new())),
                state,
            ),
        )
}

/// The paths of the relay's own routes (for the audit-completeness test).
pub(crate) const PATHS: &[(&str, &str)] = &[
    ("GET", patient_search::PATH),
    ("GET", document_search::PATH),
    ("GET", prescription_search::PATH),
    ("POST", dispense::PATH),
];
