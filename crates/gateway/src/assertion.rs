//! The health-professional assertion of a cross-border request, at both
//! ends: the bearer token (`Authorization: Bearer`), verified by
//! `ehds-access` for this audience, the sending country and one patient,
//! its id consumed in the store's replay ledger (shared by every replica on
//! one PostgreSQL database); and the access policy's decision.

use axum::http::{HeaderMap, header};
use ehds_access::{
    AssertionRefusal, Decision, Expectations, Operation, PatientRef, VerifiedAssertion,
};
use ehds_store::Store;
use time::OffsetDateTime;

use crate::edge::{AppState, CrossBorder};
use crate::error::GatewayError;

/// The `aud` an assertion for the NCP of `country` carries: the NCP's id
/// (`ehds_identifiers::NcpId`; `country` was checked with the configuration).
pub(crate) fn audience(country: &str) -> String {
    format!("{}{country}", ehds_identifiers::NcpId::PREFIX)
}

/// The bearer token of `Authorization`.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<&str, GatewayError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            GatewayError::Unauthenticated(
                "a health-professional assertion is required (Authorization: Bearer <assertion>)"
                    .into(),
            )
        })
}

/// The patient a token claims, before it is verified for that patient.
pub(crate) fn claimed_patient(token: &str) -> Result<PatientRef, GatewayError> {
    ehds_access::claimed_patient(token).ok_or(GatewayError::Assertion(AssertionRefusal::Malformed(
        "payload",
    )))
}

/// The replay ledger over the store.
struct StoreLedger<'a>(&'a Store);

impl ehds_access::ReplayLedger for StoreLedger<'_> {
    async fn first_use(
        &self,
        issuer: &str,
        jti: &str,
        remember_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, ehds_access::AccessError> {
        self.0
            .first_use_of_assertion(issuer, jti, remember_until, now)
            .await
            .map_err(|e| ehds_access::AccessError::Ledger(e.to_string()))
    }
}

/// Verifies the assertion of `token` for `patient`, as the NCP of
/// `audience_country`, coming from `peer_country`, and consumes its id.
pub(crate) async fn verify(
    state: &AppState,
    federation: &CrossBorder,
    token: &str,
    audience_country: &str,
    peer_country: &str,
    patient: &PatientRef,
) -> Result<VerifiedAssertion, GatewayError> {
    let audience = audience(audience_country);
    let expected = Expectations {
        audience: &audience,
        peer_country,
        patient,
        now: OffsetDateTime::now_utc(),
    };
    match federation
        .verifier
        .verify(token, &expected, &StoreLedger(&state.store))
        .await
    {
        Ok(Ok(verified)) => Ok(verified),
        Ok(Err(refusal)) => Err(GatewayError::Assertion(refusal)),
        Err(error) => Err(GatewayError::Ledger(error.to_string())),
    }
}

/// The access policy's decision for `operation`.
pub(crate) fn authorise(
    federation: &CrossBorder,
    assertion: &VerifiedAssertion,
    operation: Operation,
) -> Result<(), GatewayError> {
    match federation.policy.authorise(assertion, operation) {
        Decision::Permit => Ok(()),
        Decision::Deny(reason) => Err(GatewayError::Forbidden(format!(
            "the access policy does not let this role {} ({})",
            operation.as_str(),
            reason.code()
        ))),
    }
}
