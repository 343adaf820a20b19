//! What the national API says about itself:
//!
//! - `GET /fhir/metadata`: the CapabilityStatement
//!   (<http://hl7.org/fhir/R4/http.html#capabilities>), kept in
//!   `conformance/`, its Bundle documentation completed with this gateway's
//!   validation policy (`crate::validation_policy`, issue 15 §3);
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
pub(crate) async fn capability_statement(State(state): State<AppState>) -> Response {
    let policy = crate::validation_policy::describe(
        state
            .services
            .services()
            .iter()
            .map(|s| (s.name.as_str(), &s.validation)),
        &state.unknown_extensions,
    );
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON))],
        with_bundle_documentation(CAPABILITY_STATEMENT, &policy),
    )
        .into_response()
}

/// `statement` with `text` appended to the documentation of its `Bundle`
/// resource (`rest.resource.documentation`), the rest of its bytes as
/// kept; `statement` unchanged when it has no such documentation.
fn with_bundle_documentation(statement: &str, text: &str) -> String {
    const KEY: &str = "\"documentation\": \"";
    let end = statement
        .find("\"type\": \"Bundle\"")
        .and_then(|at| Some(at + statement.get(at..)?.find(KEY)? + KEY.len()))
        .and_then(|start| {
            // The closing quote: the first one no backslash escapes.
            let mut escaped = false;
            statement.get(start..)?.char_indices().find_map(|(i, c)| {
                match (c, escaped) {
                    ('"', false) => return Some(start + i),
                    ('\\', false) => escaped = true,
                    _ => escaped = false,
                }
                None
            })
        });
    let escaped = serde_json::Value::from(text).to_string();
    match (end, escaped.get(1..escaped.len().saturating_sub(1))) {
        (Some(end), Some(escaped)) => format!(
            "{} {escaped}{}",
            statement.get(..end).unwrap_or_default(),
            statement.get(end..).unwrap_or_default()
        ),
        _ => statement.to_owned(),
    }
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
    fn the_bundle_documentation_names_the_validation_policy() {
        let text = with_bundle_documentation(CAPABILITY_STATEMENT, "Policy: \"report\" \\ x.");
        let resource = ReceivedResource::parse(Bytes::from(text.clone().into_bytes())).unwrap();
        let bundle = resource
            .root()
            .get("rest")
            .and_then(|r| r.items().first())
            .and_then(|r| r.get("resource"))
            .map(ehds_fhir::Node::items)
            .unwrap_or_default()
            .iter()
            .find(|r| r.get("type").and_then(ehds_fhir::Node::as_str) == Some("Bundle"))
            .and_then(|r| r.get("documentation"))
            .and_then(ehds_fhir::Node::as_str)
            .unwrap()
            .to_owned();
        assert!(bundle.starts_with("FHIR document Bundles"), "{bundle}");
        assert!(bundle.ends_with(" Policy: \"report\" \\ x."), "{bundle}");
        // Nothing else changed.
        assert_eq!(
            text.len(),
            CAPABILITY_STATEMENT.len() + " Policy: \\\"report\\\" \\\\ x.".len()
        );
    }

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
