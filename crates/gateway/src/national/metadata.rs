//! What the national API says about itself:
//!
//! - `GET /fhir/metadata`: the CapabilityStatement
//!   (<http://hl7.org/fhir/R4/http.html#capabilities>), kept in
//!   `conformance/`;
//! - `GET /healthz`: 200 when the store can be written (a write probe);
//!   503 with `Retry-After` when it is locked or full (issue 16 #6);
//! - `GET /readyz`: 200 when the gateway should take traffic (not while
//!   shutting down);
//! - `GET /metrics`: Prometheus text format.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::edge::AppState;
use crate::edge::respond::FHIR_JSON;
use crate::error::GatewayError;

/// The CapabilityStatement served at `/fhir/metadata`, kept in `conformance/`.
pub(crate) const CAPABILITY_STATEMENT: &str =
    include_str!("../../../../conformance/CapabilityStatement-ehds-gateway-national.json");

/// `GET /fhir/metadata`.
pub(crate) async fn capability_statement() -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON))],
        CAPABILITY_STATEMENT,
    )
        .into_response()
}

/// How long the health check's write probe waits for a lock held elsewhere
/// before the store is reported unavailable.
const WRITE_PROBE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// `GET /healthz`: 200 when the store can be written: one row rewritten in
/// a transaction ([`ehds_store::Store::write_probe`]), so a store that
/// answers reads but is locked or full is not reported healthy. Its
/// failures are the error table's: locked or full, 503 with `Retry-After`.
pub(crate) async fn health(State(state): State<AppState>) -> Result<Response, GatewayError> {
    state.store.write_probe(WRITE_PROBE_WAIT).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        format!(
            "{{\"status\":\"ok\",\"store\":\"{}\"}}",
            state.store.backend_name()
        ),
    )
        .into_response())
}

/// `GET /readyz`: 200 when this gateway should take traffic: its packages,
/// store and trust material are loaded (they are before the listener
/// accepts), the store answers, no loaded certificate or CRL is past its
/// date, and shutdown has not begun; else 503 with the reasons, so that a
/// load balancer sends its requests elsewhere. `/healthz` is liveness.
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    let mut reasons = state
        .operations
        .unready_reasons(time::OffsetDateTime::now_utc());
    if state.store.ping().await.is_err() {
        reasons.push("the store does not answer".to_owned());
    }
    if reasons.is_empty() {
        return (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            "{\"status\":\"ready\"}",
        )
            .into_response();
    }
    let issues: Vec<ehds_fhir::outcome::Issue> = reasons
        .into_iter()
        .map(|reason| {
            ehds_fhir::outcome::Issue::error(
                ehds_fhir::outcome::IssueType::Transient,
                format!("not ready: {reason}"),
            )
        })
        .collect();
    crate::edge::respond::outcome_response(axum::http::StatusCode::SERVICE_UNAVAILABLE, &issues)
}

/// `GET /metrics`: Prometheus text format.
pub(crate) async fn metrics(State(state): State<AppState>) -> Result<Response, GatewayError> {
    let stored = state.store.document_count().await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state
            .metrics
            .render(stored, state.store.group_commit_counts())
            + &state.operations.render(time::OffsetDateTime::now_utc())
            + &state.memory_budget.render()
            + &state
                .federation
                .as_ref()
                .map(|f| f.national_sources.render_metrics())
                .unwrap_or_default(),
    )
        .into_response())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use ehds_fhir::ReceivedResource;

    #[test]
    fn capability_statement_is_fhir_r4() {
        let resource =
            ReceivedResource::parse(Bytes::from_static(CAPABILITY_STATEMENT.as_bytes())).unwrap();
        assert_eq!(resource.resource_type(), "CapabilityStatement");
        assert_eq!(
            resource
                .root()
                .get("fhirVersion")
                .and_then(ehds_fhir::Node::as_str),
            Some("4.0.1")
        );
    }
}
