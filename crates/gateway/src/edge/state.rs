//! The application state every handler of both listeners receives: the
//! store, the validator, this country's place in the federation, limits and
//! counters. Built once at start-up (`crate::startup`), immutable after.

use std::sync::Arc;
use std::time::Duration;

use ehds_access::{AccessPolicy, Verifier};
use ehds_fhir::audit_event::NcpParty;
use ehds_identifiers::CountryCode;
use ehds_routing::NcpDirectory;
use ehds_store::Store;
use ehds_transport::FederationClient;

use super::memory_budget::MemoryBudget;
use crate::answer_memo::ValidatedAnswers;
use crate::metrics::Metrics;
use crate::operations::Operations;
use crate::services::ServiceRegistry;

/// Limits applied to every request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest body, in bytes.
    pub max_body_bytes: usize,
    /// Time allowed to receive the body.
    pub body_timeout: Duration,
}

/// Shared state of both APIs.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// The validator, shared, run off the async workers.
    pub validator: super::validation::Validation,
    /// The cross-border services: their document types, the profiles
    /// their documents must meet, their permissions, their validation
    /// policies.
    pub services: Arc<ServiceRegistry>,
    /// How unknown extensions in what this country's systems push are
    /// reported (`[validation] unknown_extensions`,
    /// `crate::validation_policy`).
    pub unknown_extensions: Arc<ehds_validation::UnknownExtensions>,
    /// Peer answers that validated against `validator` and their service's
    /// profiles (both fixed for the state's life), by SHA-256.
    pub validated_answers: Arc<ValidatedAnswers>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Readiness and the watched trust material (`/readyz`, expiry gauges).
    pub operations: Arc<Operations>,
    /// Request limits.
    pub limits: Limits,
    /// The memory budget of request bodies being handled, shared by both
    /// listeners (`[server] memory_budget_bytes`).
    pub memory_budget: Arc<MemoryBudget>,
    /// This gateway's country (`[ncp] country`): national clients must be
    /// of it.
    pub country: Option<CountryCode>,
    /// Cross-border exchange, when `[federation]` is configured.
    pub federation: Option<Arc<CrossBorder>>,
}

/// Everything the gateway needs to take part in the federation
/// (`[federation]`, `[assertions]`, `[patient_rights]`).
#[derive(Debug)]
pub struct CrossBorder {
    /// This NCP's country.
    pub country: CountryCode,
    /// This NCP's id.
    pub ncp_id: String,
    /// Countries, their NCPs and identifier rules.
    pub directory: NcpDirectory,
    /// The mutual-TLS client for calling peers, checking who answers.
    pub client: FederationClient,
    /// Verifies health-professional assertions.
    pub verifier: Verifier,
    /// Who may do what.
    pub policy: AccessPolicy,
    /// Services for which an emergency purpose of use lifts the patient's
    /// restrictions (`[patient_rights]`).
    pub emergency_lifts_restrictions: Vec<String>,
    /// The national FHIR servers of the services answered from one
    /// (`source = "fhir"`); the others answer from the store.
    pub national_sources: crate::sources::NationalSources,
}

impl CrossBorder {
    /// This NCP as a party of an audit record.
    pub(crate) fn own_party(&self) -> NcpParty {
        NcpParty {
            country: self.country.as_str().to_owned(),
            ncp_id: self.ncp_id.clone(),
        }
    }
}

impl AppState {
    /// `findings` judged under a service's `policy` and this gateway's
    /// unknown-extensions policy (`crate::validation_policy::judge`), then
    /// refused for `unstorable` (what the gateway cannot store whatever the
    /// policy) if the policy would store it, and counted on `/metrics`:
    /// every push and every national answer is judged and counted here,
    /// once (`$validate`, which stores nothing, judges without counting).
    pub(crate) fn judged(
        &self,
        findings: Vec<ehds_fhir::outcome::Issue>,
        service: &str,
        policy: &crate::validation_policy::ServicePolicy,
        unstorable: Option<ehds_fhir::outcome::Issue>,
    ) -> crate::validation_policy::Judgement {
        let mut judgement =
            crate::validation_policy::judge(findings, service, policy, &self.unknown_extensions);
        if let Some(reason) = unstorable
            && judgement.verdict.stores()
        {
            judgement.refuse(reason);
        }
        self.metrics
            .count_validation(service, policy.policy, &judgement);
        judgement
    }

    /// The federation, or the refusal a gateway without `[federation]`
    /// gives to a cross-border request.
    pub(crate) fn cross_border(&self) -> Result<&Arc<CrossBorder>, crate::error::GatewayError> {
        self.federation.as_ref().ok_or_else(|| {
            crate::error::GatewayError::UnknownRoute(
                "cross-border requests (this gateway has no [federation])".into(),
            )
        })
    }
}

/// An NCP of the directory as the federation client expects it to answer.
#[derive(Debug)]
pub(crate) struct PeerNcpTarget<'a> {
    ncp: &'a ehds_routing::Ncp,
    federation_url: String,
}

impl<'a> PeerNcpTarget<'a> {
    /// `ncp`, to be called.
    pub(crate) fn of(ncp: &'a ehds_routing::Ncp) -> Self {
        Self {
            ncp,
            federation_url: ncp.federation_url_for(""),
        }
    }

    /// What the federation client checks the answering server against.
    pub(crate) fn expected(&self) -> ehds_transport::ExpectedPeer<'_> {
        let certificate = self.ncp.certificate();
        ehds_transport::ExpectedPeer {
            ncp_id: self.ncp.id(),
            country: certificate.country.as_str(),
            common_name: &certificate.common_name,
            federation_url: &self.federation_url,
        }
    }
}
