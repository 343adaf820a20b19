//! The gateway's errors and the one table that maps each of them to an HTTP
//! status and an OperationOutcome.
//!
//! Every response that is not a success goes through [`GatewayError`], so
//! every error a client sees is an OperationOutcome with a clear message, an
//! issue code and, where the input is at fault, a location.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ehds_fhir::JsonRejection;
use ehds_fhir::outcome::{self, Issue, IssueType, Severity};
use ehds_store::StoreError;
use ehds_validation::ValidationReport;

use crate::http::FHIR_JSON;

/// Everything that can go wrong in the gateway.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The configuration is unusable (start-up only).
    #[error("configuration: {0}")]
    Config(String),
    /// The listener could not be bound (start-up only).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// `ehds-gateway validate` found errors (command line only).
    #[error("validation found errors")]
    ValidationFailed,
    /// The server stopped with an I/O error.
    #[error("server: {0}")]
    Serve(std::io::Error),
    /// The body is not FHIR JSON.
    #[error("malformed FHIR JSON: {0}")]
    MalformedJson(#[from] JsonRejection),
    /// The body is a resource of the wrong type for the endpoint.
    #[error("expected a {expected}, received a {found}")]
    WrongResourceType {
        /// What the endpoint takes.
        expected: &'static str,
        /// What was sent.
        found: String,
    },
    /// The resource breaks rules the endpoint enforces.
    #[error("the resource failed validation ({} errors)", .0.error_count())]
    Invalid(ValidationReport),
    /// `Content-Type` is not FHIR JSON.
    #[error("unsupported media type {0:?}")]
    UnsupportedMediaType(String),
    /// The body is larger than the configured limit.
    #[error("request body over the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The client did not send its body in time.
    #[error("request body not received within {0} s")]
    BodyTimeout(u64),
    /// The body could not be read from the connection.
    #[error("request body could not be read: {0}")]
    BodyRead(String),
    /// The Bundle.identifier is already stored with other content.
    #[error("Bundle.identifier already stored with different content (Bundle/{existing_id})")]
    IdentifierConflict {
        /// The document already holding the identifier.
        existing_id: String,
    },
    /// No such resource.
    #[error("{0} not found")]
    ResourceNotFound(String),
    /// No such route.
    #[error("no route for {0}")]
    UnknownRoute(String),
    /// The route exists but not for this method.
    #[error("method {0} not allowed here")]
    MethodNotAllowed(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An OperationOutcome could not be rendered.
    #[error(transparent)]
    Render(#[from] outcome::OutcomeRenderError),
    /// TLS material could not be loaded (start-up or reload).
    #[error(transparent)]
    Transport(#[from] ehds_transport::TransportError),
    /// The caller is not authenticated (no verified client certificate).
    #[error("not authenticated: {0}")]
    Unauthenticated(String),
    /// The caller is authenticated but may not do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The health-professional assertion was refused.
    #[error("assertion refused: {0}")]
    Assertion(ehds_access::AssertionRefusal),
    /// The replay ledger could not answer: refused (fail closed).
    #[error("replay ledger: {0}")]
    Ledger(String),
    /// Search parameters that cannot be served.
    #[error("{} search parameter(s) refused", .0.len())]
    Search(Vec<ehds_routing::search::SearchRefusal>),
    /// A patient identifier that cannot be routed.
    #[error("patient identifier refused")]
    Identifier(ehds_routing::IdentifierRefusal),
    /// The peer NCP could not be reached or answered unusably.
    #[error("peer: {0}")]
    PeerUnavailable(String),
    /// The peer NCP did not answer in time.
    #[error("peer timed out")]
    PeerTimeout,
    /// The peer NCP refused (its status, and its OperationOutcome if it
    /// sent one).
    #[error("peer answered {status}")]
    PeerAnswer {
        /// The peer's HTTP status.
        status: u16,
        /// The peer's OperationOutcome.
        outcome: Option<bytes::Bytes>,
    },
    /// The peer's answer failed validation.
    #[error("the peer's answer failed validation")]
    PeerInvalid(ValidationReport),
    /// A dispense the prescription's state does not allow (409) or that is
    /// malformed for it (422), with the reason.
    #[error("dispense refused: {message}")]
    DispenseRefused {
        /// 409 or 422 (404 for an unknown prescription).
        status: u16,
        /// Why, without patient data.
        message: String,
        /// The element it is about (FHIRPath-style), if one.
        at: Option<String>,
    },
    /// The patient opted out of this service towards the asking country:
    /// the caller learns no more than that there is no consent.
    #[error("no consent for cross-border access")]
    NoConsent,
    /// The variant of a summary its patient restricted could not be built
    /// as a valid document: nothing is released (fail closed).
    #[error("restricted summary not releasable: {0}")]
    ReleaseFailed(String),
    /// An AuditEvent could not be written (a bug, never the client's).
    #[error(transparent)]
    AuditEvent(#[from] ehds_fhir::audit_event::AuditEventError),
    /// The patient page could not reach this gateway's national API (the
    /// detail, without URL, goes to the log).
    #[error("the national API did not answer the patient page: {0}")]
    NationalApiUnavailable(String),
}

/// Status and issues for an error: the one mapping table.
pub fn classify(error: &GatewayError) -> (StatusCode, Vec<Issue>) {
    use GatewayError as E;
    use StatusCode as S;
    let one = |status, code, message: String| (status, vec![Issue::error(code, message)]);
    match error {
        E::MalformedJson(rejection) => (S::BAD_REQUEST, vec![Issue::from(rejection)]),
        E::WrongResourceType { expected, found } => (
            S::BAD_REQUEST,
            vec![
                Issue::error(
                    IssueType::Invalid,
                    format!("this endpoint takes a {expected}; the body is a {found}"),
                )
                .at(found.clone()),
            ],
        ),
        E::Invalid(report) => (S::UNPROCESSABLE_ENTITY, report.issues.clone()),
        E::UnsupportedMediaType(found) => one(
            S::UNSUPPORTED_MEDIA_TYPE,
            IssueType::NotSupported,
            format!("Content-Type {found:?} is not supported: send application/fhir+json (UTF-8)"),
        ),
        E::PayloadTooLarge { limit } => one(
            S::PAYLOAD_TOO_LARGE,
            IssueType::TooLong,
            format!("the request body is larger than this gateway accepts ({limit} bytes)"),
        ),
        E::BodyTimeout(secs) => one(
            S::REQUEST_TIMEOUT,
            IssueType::Timeout,
            format!("the request body was not received within {secs} seconds"),
        ),
        E::BodyRead(why) => one(
            S::BAD_REQUEST,
            IssueType::Structure,
            format!("the request body could not be read: {why}"),
        ),
        E::IdentifierConflict { existing_id } => one(
            S::CONFLICT,
            IssueType::Duplicate,
            format!(
                "a document with this Bundle.identifier is already stored (Bundle/{existing_id}) with different content; a document is never replaced, send a new identifier"
            ),
        ),
        E::ResourceNotFound(what) => one(
            S::NOT_FOUND,
            IssueType::NotFound,
            format!("{what} is not known to this gateway"),
        ),
        E::UnknownRoute(path) => one(
            S::NOT_FOUND,
            IssueType::NotSupported,
            format!("no such endpoint: {path} (see GET /fhir/metadata)"),
        ),
        E::MethodNotAllowed(method) => one(
            S::METHOD_NOT_ALLOWED,
            IssueType::NotSupported,
            format!("{method} is not supported on this endpoint (see GET /fhir/metadata)"),
        ),
        E::Unauthenticated(why) => one(S::UNAUTHORIZED, IssueType::Login, why.clone()),
        E::Assertion(refusal) => {
            let status = S::from_u16(refusal.http_status()).unwrap_or(S::FORBIDDEN);
            let code = if status == S::UNAUTHORIZED {
                IssueType::Login
            } else {
                IssueType::Forbidden
            };
            one(
                status,
                code,
                format!("the health-professional assertion is refused: {refusal}"),
            )
        }
        E::DispenseRefused {
            status,
            message,
            at,
        } => {
            let code = if *status == 404 {
                IssueType::NotFound
            } else {
                IssueType::BusinessRule
            };
            let issue = Issue::error(code, message.clone());
            (
                S::from_u16(*status).unwrap_or(S::CONFLICT),
                vec![match at {
                    Some(at) => issue.at(at.clone()),
                    None => issue,
                }],
            )
        }
        E::NoConsent => one(
            S::FORBIDDEN,
            IssueType::Forbidden,
            "no consent for cross-border access".to_owned(),
        ),
        E::ReleaseFailed(_) => (
            S::INTERNAL_SERVER_ERROR,
            vec![internal_issue(
                IssueType::Exception,
                "the patient summary could not be prepared for release",
            )],
        ),
        E::Ledger(_) => (
            S::SERVICE_UNAVAILABLE,
            vec![internal_issue(
                IssueType::Transient,
                "the assertion replay check is unavailable; try again later",
            )],
        ),
        E::Search(refusals) => (S::BAD_REQUEST, crate::federation::search_issues(refusals)),
        E::Identifier(refusal) => (
            S::BAD_REQUEST,
            vec![Issue::error(IssueType::Value, refusal.message()).at("identifier")],
        ),
        E::PeerUnavailable(why) => one(
            S::BAD_GATEWAY,
            IssueType::Transient,
            format!("the other country's NCP did not answer usably: {why}"),
        ),
        E::NationalApiUnavailable(_) => (
            S::BAD_GATEWAY,
            vec![internal_issue(
                IssueType::Transient,
                "the patient page could not reach this gateway's national API",
            )],
        ),
        E::PeerTimeout => one(
            S::GATEWAY_TIMEOUT,
            IssueType::Timeout,
            "the other country's NCP did not answer in time".into(),
        ),
        E::PeerAnswer { status, .. } => one(
            S::from_u16(*status)
                .ok()
                .filter(|s| s.is_client_error())
                .unwrap_or(S::BAD_GATEWAY),
            IssueType::Exception,
            format!("the other country's NCP refused the request ({status})"),
        ),
        E::PeerInvalid(report) => {
            let mut issues = vec![Issue::error(
                IssueType::Exception,
                "the other country's NCP answered with content that fails validation; it is not passed on",
            )];
            issues.extend(
                report
                    .issues
                    .iter()
                    .filter(|i| i.severity.is_error())
                    .cloned(),
            );
            (S::BAD_GATEWAY, issues)
        }
        E::Forbidden(why) => one(S::FORBIDDEN, IssueType::Forbidden, why.clone()),
        E::Store(StoreError::Database(sqlx_error)) if is_unavailable(sqlx_error) => (
            S::SERVICE_UNAVAILABLE,
            vec![internal_issue(
                IssueType::Transient,
                "the gateway's store is unavailable; try again later",
            )],
        ),
        E::Config(_)
        | E::ValidationFailed
        | E::Bind { .. }
        | E::Serve(_)
        | E::Store(_)
        | E::Transport(_)
        | E::AuditEvent(_)
        | E::Render(_) => (
            S::INTERNAL_SERVER_ERROR,
            vec![internal_issue(IssueType::Exception, "internal error")],
        ),
    }
}

fn is_unavailable(error: &ehds_store::SqlxError) -> bool {
    matches!(
        error,
        ehds_store::SqlxError::PoolTimedOut
            | ehds_store::SqlxError::PoolClosed
            | ehds_store::SqlxError::Io(_)
    )
}

/// An issue that names no internal detail, only the request id to quote.
fn internal_issue(code: IssueType, message: &str) -> Issue {
    let request_id = crate::http::current_request_id().unwrap_or_default();
    Issue::new(
        Severity::Error,
        code,
        format!("{message} (request id {request_id})"),
    )
}

/// An OperationOutcome response.
pub fn outcome_response(status: StatusCode, issues: &[Issue]) -> Response {
    match outcome::render(issues) {
        Ok(body) => (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON))],
            body,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "OperationOutcome rendering failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let (status, issues) = classify(&self);
        // A peer's own OperationOutcome of a refusal reaches the caller as
        // the peer wrote it (it was parsed as FHIR JSON first).
        if let Self::PeerAnswer {
            outcome: Some(body),
            ..
        } = &self
        {
            let mut response = (status, body.clone()).into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
            return response;
        }
        if status == StatusCode::UNAUTHORIZED {
            let mut response = outcome_response(status, &issues);
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"ehds-ncp\""),
            );
            return response;
        }
        if status.is_server_error() {
            // The detail goes to the operator's log, never to the client. Store
            // and render errors carry no document content.
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), "request refused");
        }
        outcome_response(status, &issues)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ehds_fhir::ReceivedResource;

    /// The mapping table, row by row: error → status, issue code.
    #[test]
    fn every_error_maps_to_a_status_and_an_issue_code() {
        let rejection =
            ReceivedResource::parse(b"{\"resourceType\":\"P\",".to_vec().into()).unwrap_err();
        let mut report = ValidationReport::default();
        report.push(Issue::error(IssueType::Invariant, "bdl-10").at("Bundle.timestamp"));
        let rows: Vec<(GatewayError, u16, &str)> = vec![
            (GatewayError::MalformedJson(rejection), 400, "structure"),
            (
                GatewayError::WrongResourceType {
                    expected: "Bundle",
                    found: "Patient".into(),
                },
                400,
                "invalid",
            ),
            (GatewayError::Invalid(report), 422, "invariant"),
            (
                GatewayError::UnsupportedMediaType("text/plain".into()),
                415,
                "not-supported",
            ),
            (GatewayError::PayloadTooLarge { limit: 1 }, 413, "too-long"),
            (GatewayError::BodyTimeout(30), 408, "timeout"),
            (GatewayError::BodyRead("reset".into()), 400, "structure"),
            (
                GatewayError::IdentifierConflict {
                    existing_id: "x".into(),
                },
                409,
                "duplicate",
            ),
            (
                GatewayError::ResourceNotFound("Bundle/x".into()),
                404,
                "not-found",
            ),
            (
                GatewayError::UnknownRoute("/x".into()),
                404,
                "not-supported",
            ),
            (
                GatewayError::MethodNotAllowed("PUT".into()),
                405,
                "not-supported",
            ),
            (
                GatewayError::Store(StoreError::Database(ehds_store::SqlxError::PoolTimedOut)),
                503,
                "transient",
            ),
            (
                GatewayError::Store(StoreError::Corrupt("x".into())),
                500,
                "exception",
            ),
            (GatewayError::Config("x".into()), 500, "exception"),
            (
                GatewayError::Unauthenticated("no certificate".into()),
                401,
                "login",
            ),
            (GatewayError::Forbidden("role".into()), 403, "forbidden"),
            (GatewayError::NoConsent, 403, "forbidden"),
            (
                GatewayError::NationalApiUnavailable("connection refused".into()),
                502,
                "transient",
            ),
            (
                GatewayError::DispenseRefused {
                    status: 409,
                    message: "only 2 remain".into(),
                    at: Some("MedicationDispense.quantity".into()),
                },
                409,
                "business-rule",
            ),
            (
                GatewayError::Serve(std::io::Error::other("x")),
                500,
                "exception",
            ),
            (
                GatewayError::ReleaseFailed("the variant has 1 validation errors".into()),
                500,
                "exception",
            ),
        ];
        for (error, status, code) in rows {
            let (got_status, issues) = classify(&error);
            assert_eq!(got_status.as_u16(), status, "{error}");
            assert!(!issues.is_empty(), "{error}");
            assert_eq!(issues[0].code.code(), code, "{error}");
            assert!(issues[0].severity.is_error(), "{error}");
        }
    }

    #[test]
    fn internal_errors_reveal_nothing() {
        let (_, issues) = classify(&GatewayError::Store(StoreError::Corrupt(
            "sha256 is not 32 bytes in table documents".into(),
        )));
        assert!(!issues[0].diagnostics.contains("sha256"));
        assert!(!issues[0].diagnostics.contains("documents"));
    }

    #[test]
    fn malformed_json_has_a_location() {
        let rejection = ReceivedResource::parse(
            br#"{"resourceType":"Bundle","entry":[{"a":1,"a":2}]}"#
                .to_vec()
                .into(),
        )
        .unwrap_err();
        let (_, issues) = classify(&GatewayError::MalformedJson(rejection));
        assert_eq!(issues[0].expression.as_deref(), Some("Bundle.entry[0].a"));
        assert_eq!(issues[0].location.as_deref(), Some("line 1, column 42"));
    }
}
