//! The national API: this country's systems (hospital EHRs, doctors' and
//! pharmacies' systems, the patient portal) on the national listener,
//! mutual TLS with the national CA.
//!
//! One file per service: [`documents`] (push and read), [`pdf_originals`]
//! (PDF originals: push and read), [`validate`]
//! (`$validate`), [`metadata`] (CapabilityStatement, health, metrics),
//! [`patient_rights`] (opt-out, restriction, access log), [`prescriptions`]
//! (ePrescriptions at home); the cross-border requests of visiting
//! patients are `crate::relay`'s routes, merged here. Reads of patient data
//! (`Bundle/{id}`, `Binary/{id}`, `MedicationRequest/{id}`) are behind the
//! audited exit.

pub(crate) mod documents;
pub(crate) mod metadata;
pub(crate) mod patient_rights;
pub(crate) mod pdf_originals;
pub(crate) mod prescriptions;
pub(crate) mod validate;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodFilter, get, post};

use crate::audit::{AuditedRoute, audited};
use crate::edge::AppState;
use crate::edge::fallback::{method_not_allowed, unknown_route};
use crate::edge::observe::observe;

/// The national API router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/fhir/Bundle", post(documents::push))
        .route(
            "/fhir/Bundle/{id}",
            audited(
                MethodFilter::GET,
                documents::read,
                AuditedRoute::read("Bundle"),
                &state,
            ),
        )
        .route("/fhir/DocumentReference", post(pdf_originals::push))
        .route("/fhir", post(pdf_originals::push_at_base))
        .route(
            "/fhir/Binary/{id}",
            audited(
                MethodFilter::GET,
                pdf_originals::read,
                AuditedRoute::read("Binary"),
                &state,
            ),
        )
        .route("/fhir/metadata", get(metadata::capability_statement))
        .route("/fhir/$validate", post(validate::on_any))
        .route(
            "/fhir/$cross-border-opt-out",
            post(patient_rights::opt_out).get(patient_rights::current_opt_outs),
        )
        .route(
            "/fhir/$cross-border-restriction",
            post(patient_rights::restriction).get(patient_rights::restrictions),
        )
        .route("/fhir/AuditEvent", get(patient_rights::access_log))
        .route("/fhir/MedicationRequest", post(prescriptions::push))
        .route(
            "/fhir/MedicationRequest/{id}",
            audited(
                MethodFilter::GET,
                prescriptions::read,
                AuditedRoute::read("MedicationRequest"),
                &state,
            ),
        )
        .route(
            "/fhir/MedicationRequest/{id}/$cross-border-status",
            post(prescriptions::set_cross_border_status),
        )
        .route("/fhir/Bundle/$validate", post(validate::on_bundle))
        .route("/fhir/{type}/$validate", post(validate::on_type))
        .route("/healthz", get(metadata::health))
        .route("/metrics", get(metadata::metrics))
        .route("/readyz", get(metadata::ready))
        .merge(crate::relay::routes(&state))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// The audited reads of the national API (for the audit-completeness test).
pub(crate) const AUDITED_PATHS: &[(&str, &str)] = &[
    ("GET", "/fhir/Bundle/{id}"),
    ("GET", "/fhir/Binary/{id}"),
    ("GET", "/fhir/MedicationRequest/{id}"),
];
