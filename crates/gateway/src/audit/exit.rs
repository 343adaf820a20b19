//! The one audited exit: a layer put on every audited route when its router
//! is built ([`audited`]), so that no code path of those routes can answer
//! without its AuditEvent.
//!
//! For each request it opens the [`Trail`] (the handler fills it in), runs
//! the handler, then records exactly once:
//!
//! - a refusal, when the answer carries a [`RefusalNote`] (every
//!   [`GatewayError`] response does) or is not a success: best effort (the
//!   refusal stands whatever happens to its record; a failure is logged),
//!   and, for a refusal this gateway decided about another country's
//!   patient, reported to that country's NCP ([`super::report`]);
//! - an access, when the handler answered with success: the record is
//!   appended before the answer leaves, and if it cannot be, the answer is
//!   replaced by the error (fail closed: no record, no data).

use axum::extract::{Request, State};
use axum::handler::Handler;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use ehds_fhir::audit_event::AuditOutcome;

use super::record::record_access;
use super::route::{AuditedRoute, now};
use super::trail::Trail;
use crate::edge::AppState;
use crate::error::RefusalNote;

/// `handler` behind the audited exit, as the method router of one route.
pub(crate) fn audited<H, T>(
    method: axum::routing::MethodFilter,
    handler: H,
    route: AuditedRoute,
    state: &AppState,
) -> MethodRouter<AppState>
where
    H: Handler<T, AppState>,
    T: 'static,
{
    axum::routing::on(method, handler).layer(from_fn_with_state((state.clone(), route), exit))
}

/// The layer's body.
async fn exit(
    State((state, route)): State<(AppState, AuditedRoute)>,
    mut request: Request,
    next: Next,
) -> Response {
    let trail = match &state.federation {
        Some(federation) => Trail::open(federation, &route),
        None => Trail::off(),
    };
    request.extensions_mut().insert(trail.clone());
    let response = next.run(request).await;
    let Some(draft) = trail.take() else {
        return response;
    };
    let mut record = draft.record;
    let refusal = response.extensions().get::<RefusalNote>().cloned();
    if refusal.is_some() || !response.status().is_success() {
        let (summary, serious, decided_here) = match refusal {
            Some(note) => (note.summary, note.serious, note.decided_here),
            None => (
                "failed".to_owned(),
                response.status().is_server_error(),
                false,
            ),
        };
        record.outcome = if serious {
            AuditOutcome::SeriousFailure
        } else {
            AuditOutcome::MinorFailure
        };
        record.outcome_description = Some(summary);
        record.recorded = now();
        if let Err(error) = record_access(&state, &record).await {
            tracing::error!(%error, "audit record of a refusal could not be written");
        }
        if decided_here && let Some((federation, ncp)) = draft.report_to {
            super::report::report_refusal(federation, ncp, &record);
        }
        return response;
    }
    record.recorded = now();
    match record_access(&state, &record).await {
        Ok(()) => response,
        Err(error) => error.into_response(),
    }
}
