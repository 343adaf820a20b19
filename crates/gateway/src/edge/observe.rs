//! The per-request middleware of both listeners: a fresh request id (echoed
//! in `X-Request-Id`), the exchange's correlation id (the caller's
//! `X-Correlation-ID` when well-formed, else the request id; echoed, carried
//! to a peer NCP by the relay and written in the audit records), a tracing
//! span with the route template (never the path or query, which may hold
//! patient identifiers), what the request reserves of the memory budget held
//! until its response is built (`super::memory_budget`), and the request
//! counted by route and status on `/metrics`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::memory_budget::hold_reservations;
use super::request_id::{CORRELATION_HEADER, CORRELATION_ID, REQUEST_ID, is_correlation_id};
use super::state::AppState;

/// The middleware (`axum::middleware::from_fn_with_state`).
pub(crate) async fn observe(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().clone();
    let span = tracing::info_span!("request", request_id = %request_id, %method, route = %route);
    let started = Instant::now();
    let correlation_id = request
        .headers()
        .get(CORRELATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_correlation_id(v))
        .map_or_else(|| request_id.clone(), str::to_owned);
    let mut response = REQUEST_ID
        .scope(
            request_id.clone(),
            CORRELATION_ID.scope(correlation_id.clone(), hold_reservations(next.run(request))),
        )
        .instrument(span.clone())
        .await;
    let status = response.status();
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "request completed"
        );
    });
    state
        .metrics
        .count_request(method.as_str(), &route, status.as_u16());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    if let Ok(value) = HeaderValue::from_str(&correlation_id) {
        response.headers_mut().insert(CORRELATION_HEADER, value);
    }
    response
}
