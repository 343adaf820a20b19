//! The trail of one audited request: the draft of its AuditEvent, opened by
//! the audited exit ([`super::exit`]) and filled in by the handler as it
//! learns who asks, about which patient, through which NCP. The handler
//! takes it as an extractor; it cannot record anything itself — the exit
//! records once, when the handler has answered.

use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use ehds_access::VerifiedAssertion;
use ehds_fhir::audit_event::{
    AccessRecord, AuditOutcome, AuditedEntity, EntityTarget, PatientIdentifier, PeerNcp, PeerRole,
    RequestingProfessional,
};
use ehds_routing::Ncp;
use ehds_routing::search::TokenParam;

use super::route::{AuditedRoute, now};
use crate::edge::{AppState, CrossBorder};
use crate::error::GatewayError;

/// The draft record and where to report a refusal.
#[derive(Debug)]
pub(super) struct Draft {
    pub(super) record: AccessRecord,
    /// Where to report a refusal decided here about a patient of another
    /// country: that country's NCP (its `POST AuditEvent`), so that the
    /// patient's access log at home shows it too.
    pub(super) report_to: Option<(Arc<CrossBorder>, Ncp)>,
}

/// A handle on the request's draft record (cheap to clone). A gateway
/// without `[federation]` has no NCP identity to record as observer and
/// keeps no trail: its handle records nothing.
#[derive(Debug, Clone)]
pub(crate) struct Trail(Option<Arc<Mutex<Draft>>>);

impl Trail {
    /// Opens the draft for `route` at this NCP (only the exit does).
    pub(super) fn open(federation: &CrossBorder, route: &AuditedRoute) -> Self {
        Self(Some(Arc::new(Mutex::new(Draft {
            record: AccessRecord {
                action: route.action,
                subtype: route.subtype,
                recorded: now(),
                outcome: AuditOutcome::Success,
                outcome_description: None,
                requesting_professional: None,
                purpose_of_use: None,
                source_ncp: federation.own_party(),
                peer_ncp: None,
                patient: None,
                entity: Some(AuditedEntity {
                    resource_type: route.resource_type.to_owned(),
                    target: route.target.clone(),
                    service: None,
                }),
                request_id: crate::edge::request_id::current_request_id().unwrap_or_default(),
                correlation_id: crate::edge::request_id::current_correlation_id(),
            },
            report_to: None,
        }))))
    }

    /// A handle that records nothing (a gateway without `[federation]`).
    pub(super) fn off() -> Self {
        Self(None)
    }

    fn with(&self, change: impl FnOnce(&mut Draft)) {
        if let Some(Ok(mut draft)) = self.0.as_ref().map(|d| d.lock()) {
            change(&mut draft);
        }
    }

    /// Takes the draft out (the exit, once the handler has answered).
    pub(super) fn take(&self) -> Option<Draft> {
        let mut guard = self.0.as_ref()?.lock().ok()?;
        let record = guard.record.clone();
        let report_to = guard.report_to.take();
        Some(Draft { record, report_to })
    }

    /// The patient concerned.
    pub(crate) fn patient(&self, token: &TokenParam) {
        self.with(|d| {
            d.record.patient = PatientIdentifier::new(&token.system, &token.value);
        });
    }

    /// Which resource or search (once parsed).
    pub(crate) fn target(&self, target: EntityTarget) {
        self.with(|d| {
            if let Some(entity) = &mut d.record.entity {
                entity.target = target;
            }
        });
    }

    /// The cross-border service the data belongs to (the registry's name).
    pub(crate) fn service(&self, name: &str) {
        self.with(|d| {
            if let Some(entity) = &mut d.record.entity {
                entity.service = Some(name.to_owned());
            }
        });
    }

    /// The other NCP of the call.
    pub(crate) fn peer(&self, country: &str, ncp_id: &str, fingerprint: String, role: PeerRole) {
        self.with(|d| {
            d.record.peer_ncp = Some(PeerNcp {
                country: country.to_owned(),
                ncp_id: ncp_id.to_owned(),
                cert_fingerprint: fingerprint,
                role,
            });
        });
    }

    /// The professional and purpose of use of a verified assertion.
    pub(crate) fn professional(&self, assertion: &VerifiedAssertion) {
        let claims = assertion.claims();
        let professional = RequestingProfessional {
            professional: claims.professional(),
            country: claims.country.clone(),
        };
        let purpose = assertion.purpose();
        self.with(|d| {
            d.record.requesting_professional = Some(professional);
            d.record.purpose_of_use = Some(purpose);
        });
    }

    /// A note of what happened beyond the outcome (e.g. restrictions lifted
    /// for an emergency); no patient data.
    pub(crate) fn note(&self, description: &str) {
        self.with(|d| d.record.outcome_description = Some(description.to_owned()));
    }

    /// Report a refusal decided here to `ncp`, the patient's country.
    pub(crate) fn report_refusals_to(&self, federation: &Arc<CrossBorder>, ncp: &Ncp) {
        self.with(|d| d.report_to = Some((Arc::clone(federation), ncp.clone())));
    }

    /// The asking organisation as `country/organisation id` (the pharmacy a
    /// retrieval or dispense is recorded for), once the assertion is read.
    pub(crate) fn requesting_organisation(&self) -> String {
        self.0
            .as_ref()
            .and_then(|d| d.lock().ok())
            .and_then(|d| {
                d.record
                    .requesting_professional
                    .as_ref()
                    .map(|p| format!("{}/{}", p.country, p.professional.organisation.id))
            })
            .unwrap_or_default()
    }
}

impl FromRequestParts<AppState> for Trail {
    type Rejection = GatewayError;

    /// The trail the audited exit opened; a route registered without the
    /// exit fails closed here (500), so it cannot answer unaudited.
    async fn from_request_parts(
        parts: &mut Parts,
        _state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Self>()
            .cloned()
            .ok_or(GatewayError::Unaudited)
    }
}
