//! The errors of a request and the one table that maps each of them to an
//! HTTP status and an OperationOutcome ([`classify`]), to what an audit
//! record says of it ([`GatewayError::audit_summary`]) and to whether this
//! gateway decided it ([`GatewayError::decided_here`]).
//!
//! Every response that is not a success goes through [`GatewayError`], so
//! every error a client sees is an OperationOutcome with a clear message, an
//! issue code and, where the input is at fault, a location. Start-up and
//! command-line failures are `crate::startup::StartError`, never a request's.
//!
//! Imports: only the bottom of the edge (`edge::respond`,
//! `edge::request_id`); everything else of the crate imports this.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ehds_fhir::JsonRejection;
use ehds_fhir::outcome::{self, Issue, IssueDetail, IssueType, Severity};
use ehds_store::StoreError;
use ehds_validation::ValidationReport;

use crate::edge::request_id::current_request_id;
use crate::edge::respond::{FHIR_JSON, outcome_response};

/// Everything that can refuse or fail a request.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
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
    /// The body has a `Content-Encoding` other than `identity` (gzip, br,
    /// …): this gateway reads bodies as sent, never decompressed.
    #[error("unsupported content encoding {0:?}")]
    UnsupportedContentEncoding(String),
    /// The body is larger than the configured limit.
    #[error("request body over the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The memory budget of request bodies being handled is spent: the body
    /// is refused before it is read (`crate::edge::memory_budget`).
    #[error(
        "memory budget spent: the body's estimated {estimated} bytes do not fit in the budget of {budget} bytes"
    )]
    MemoryBudgetExhausted {
        /// The body's estimated cost, in bytes.
        estimated: u64,
        /// The budget, in bytes.
        budget: u64,
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
    /// A document its patient restricted (`crate::release`): answered
    /// exactly as [`Self::ResourceNotFound`], so the caller cannot tell it
    /// exists; only the audit record says it was withheld.
    #[error("{0} withheld: restricted by the patient")]
    Withheld(String),
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
    /// A dispense the prescription's state does not allow, or that is
    /// malformed for it, or of a prescription unknown here, with the reason.
    #[error("dispense refused: {message}")]
    DispenseRefused {
        /// Why, as the table maps it to a status.
        kind: DispenseRefusal,
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
    /// A route that needs the audit trail was registered without the
    /// audited exit (a bug): refused, so nothing is answered unaudited.
    #[error("the route is not behind the audited exit")]
    Unaudited,
    /// The national FHIR server answering a service (`source = "fhir"`)
    /// could not be reached, was too slow, or answered unusably (not FHIR,
    /// not what was asked for, about another patient): its failure, never
    /// the caller's.
    #[error(transparent)]
    National(#[from] ehds_national_fhir::NationalError),
    /// The national FHIR server's document failed validation against its
    /// service's profiles: not passed on.
    #[error("the national server's document failed validation")]
    NationalInvalid(ValidationReport),
    /// The patient page could not reach this gateway's national API (the
    /// detail, without URL, goes to the log).
    #[error("the national API did not answer the patient page: {0}")]
    NationalApiUnavailable(String),
}

/// Why a dispense is refused (the status is [`classify`]'s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispenseRefusal {
    /// No such prescription for this patient (404).
    UnknownPrescription,
    /// The prescription's state does not allow it (409).
    StateConflict,
    /// The dispense does not fit the prescription (422).
    Unprocessable,
}

/// Status and issues for an error: the one mapping table, the first error
/// issue carrying the eHDSI error code of the refusal ([`ehdsi_code`]) so a
/// national client can act on it.
pub fn classify(error: &GatewayError) -> (StatusCode, Vec<Issue>) {
    let (status, mut issues) = status_and_issues(error);
    if let Some(detail) = ehdsi_code(error)
        && let Some(first) = issues.iter_mut().find(|i| i.severity.is_error())
    {
        first.details = Some(detail);
    }
    (status, issues)
}

/// The code system of the eHDSI error codes in `issue.details.coding`.
/// MyHealth@EU names the codes (eHDSI Requirements Catalogue, OpenNCP
/// `eu.europa.ec.sante.ehdsi.constant.error.OpenNCPErrorCode`) but
/// publishes no FHIR CodeSystem for them: this is the gateway's URI for
/// that list, the codes its constant names.
pub const EHDSI_ERROR_CODES: &str = "urn:ehds:ehdsi:error-code";

/// The eHDSI error code of a refusal (OpenNCP `OpenNCPErrorCode`: the
/// constant's name as the code, its description as the display); `None`
/// where no code applies (malformed bodies, routes, limits).
pub fn ehdsi_code(error: &GatewayError) -> Option<IssueDetail> {
    use GatewayError as E;
    let code = |code, display| {
        Some(IssueDetail {
            system: EHDSI_ERROR_CODES,
            code,
            display,
        })
    };
    match error {
        E::NoConsent => code(
            "ERROR_NO_CONSENT",
            "The patient has not given consent to the requested service.",
        ),
        E::ResourceNotFound(_) | E::Withheld(_) => code(
            "ERROR_GENERIC_DOCUMENT_MISSING",
            "The document requested was not found",
        ),
        E::Identifier(_) => code(
            "ERROR_PI_NO_MATCH",
            "The identification and authentication used in the Country of Treatment (Country B) \
             are not correctly provided or does not match any existing patient.",
        ),
        E::Forbidden(_) => code(
            "ERROR_INSUFFICIENT_RIGHTS",
            "Either the security policy of country A or a privacy policy of the patient (that \
             was given in country A) does not allow the requested operation to be performed by \
             the HP",
        ),
        E::Unauthenticated(_) => code(
            "ERROR_HPI_AUTHENTICATION_NOT_RECEIVED",
            "HP authentication method has not been received by the Country of Affiliation",
        ),
        E::Assertion(ehds_access::AssertionRefusal::PatientMismatch) => code(
            "ERROR_UNKNOWN_PATIENT_IDENTIFIER",
            "The patient identifier in the query differs from the patient identifier in the TRC \
             assertion",
        ),
        E::Assertion(_) => code("ERROR_NOT_VALID_ASSERTION", "Assertion is not valid."),
        E::Search(_) => code(
            "ERROR_UNKNOWN_FILTER",
            "The service provider is unable to evaluate the given argument values",
        ),
        E::PeerUnavailable(_) | E::PeerTimeout => code(
            "ERROR_GENERIC_CONNECTION_NOT_POSSIBLE",
            "The Country of Treatment (Country B) is unable to contact the Patient Country of \
             Affiliation.",
        ),
        E::PeerInvalid(_) | E::NationalInvalid(_) => {
            code("ERROR_HQI_GENERIC", "High quality information error")
        }
        E::DispenseRefused { kind, .. } => match kind {
            DispenseRefusal::UnknownPrescription => code(
                "ERROR_EP_NOT_MATCHING",
                "No matching ePrescription was found",
            ),
            DispenseRefusal::StateConflict => code(
                "ERROR_ED_NOT_DISPENSABLE_EPRESCRIPTION",
                "The selected ePrescription is not dispensable",
            ),
            DispenseRefusal::Unprocessable => {
                code("ERROR_ED_GENERIC", "Dispensation generic error")
            }
        },
        E::Ledger(_)
        | E::National(_)
        | E::MemoryBudgetExhausted { .. }
        | E::ReleaseFailed(_)
        | E::Store(_)
        | E::Render(_)
        | E::AuditEvent(_)
        | E::Unaudited => code(
            "ERROR_GENERIC",
            "Internal Server Error - Please retry or contact the server administrator and inform \
             them of the time the error occurred",
        ),
        E::MalformedJson(_)
        | E::WrongResourceType { .. }
        | E::Invalid(_)
        | E::UnsupportedMediaType(_)
        | E::UnsupportedContentEncoding(_)
        | E::PayloadTooLarge { .. }
        | E::BodyTimeout(_)
        | E::BodyRead(_)
        | E::IdentifierConflict { .. }
        | E::UnknownRoute(_)
        | E::MethodNotAllowed(_)
        | E::PeerAnswer { .. }
        | E::NationalApiUnavailable(_) => None,
    }
}

/// Status and issues for an error, before the eHDSI code.
fn status_and_issues(error: &GatewayError) -> (StatusCode, Vec<Issue>) {
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
        // RFC 9110 §8.4.1 and §15.5.16: 415 for a content coding that is
        // not acceptable, with `Accept-Encoding` saying which is.
        E::UnsupportedContentEncoding(found) => one(
            S::UNSUPPORTED_MEDIA_TYPE,
            IssueType::NotSupported,
            format!(
                "Content-Encoding {found:?} is not supported: send the body without a content coding (identity)"
            ),
        ),
        E::PayloadTooLarge { limit } => one(
            S::PAYLOAD_TOO_LARGE,
            IssueType::TooLong,
            format!("the request body is larger than this gateway accepts ({limit} bytes)"),
        ),
        // RFC 9110 §15.6.4: 503 with `Retry-After`; the client may send the
        // same body again once other large bodies are done.
        E::MemoryBudgetExhausted { .. } => one(
            S::SERVICE_UNAVAILABLE,
            IssueType::Transient,
            "the gateway is handling as many large request bodies as its memory allows; try again later".to_owned(),
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
        E::ResourceNotFound(what) | E::Withheld(what) => one(
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
            let (status, code) = if refusal.authenticates_no_one() {
                (S::UNAUTHORIZED, IssueType::Login)
            } else {
                (S::FORBIDDEN, IssueType::Forbidden)
            };
            one(
                status,
                code,
                format!("the health-professional assertion is refused: {refusal}"),
            )
        }
        E::DispenseRefused { kind, message, at } => {
            let (status, code) = match kind {
                DispenseRefusal::UnknownPrescription => (S::NOT_FOUND, IssueType::NotFound),
                DispenseRefusal::StateConflict => (S::CONFLICT, IssueType::BusinessRule),
                DispenseRefusal::Unprocessable => {
                    (S::UNPROCESSABLE_ENTITY, IssueType::BusinessRule)
                }
            };
            let issue = Issue::error(code, message.clone());
            (
                status,
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
        E::Search(refusals) => (S::BAD_REQUEST, search_issues(refusals)),
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
        E::National(failure) => national_row(failure),
        E::NationalInvalid(report) => {
            let mut issues = vec![Issue::error(
                IssueType::Exception,
                "this country's national FHIR server answered with a document that fails validation; it is not passed on",
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
        E::Store(store_error) if store_error.is_unavailable() => (
            S::SERVICE_UNAVAILABLE,
            vec![internal_issue(
                IssueType::Transient,
                "the gateway's store is unavailable; try again later",
            )],
        ),
        E::Store(_) | E::Unaudited | E::AuditEvent(_) | E::Render(_) => (
            S::INTERNAL_SERVER_ERROR,
            vec![internal_issue(IssueType::Exception, "internal error")],
        ),
    }
}

/// The national FHIR server's failures (issue 19): unreachable or not
/// asked (circuit breaker open) → 503, too slow → 504, an answer that is
/// not FHIR, not what was asked for or about another patient → 502. The
/// detail (never patient data: URLs are dropped) goes to the log only.
fn national_row(failure: &ehds_national_fhir::NationalError) -> (StatusCode, Vec<Issue>) {
    use StatusCode as S;
    use ehds_national_fhir::NationalError as N;
    let (status, code, message) = match failure {
        N::Unreachable(_) | N::CircuitOpen | N::Transport(_) => (
            S::SERVICE_UNAVAILABLE,
            IssueType::Transient,
            "this country's national FHIR server is unavailable; try again later",
        ),
        N::Timeout(_) => (
            S::GATEWAY_TIMEOUT,
            IssueType::Timeout,
            "this country's national FHIR server did not answer in time",
        ),
        N::Status(_) | N::NotFhir(_) | N::Unexpected(_) => (
            S::BAD_GATEWAY,
            IssueType::Exception,
            "this country's national FHIR server answered with something that is not usable FHIR; nothing is passed on",
        ),
        N::OtherPatient => (
            S::BAD_GATEWAY,
            IssueType::Exception,
            "this country's national FHIR server answered about another patient; nothing is passed on",
        ),
        N::Credentials(_) => (
            S::BAD_GATEWAY,
            IssueType::Exception,
            "this country's national FHIR server's authorization server refused the gateway's credentials or answered no usable token",
        ),
    };
    (status, vec![internal_issue(code, message)])
}

/// What a 503 asks the client to wait before trying again, in seconds
/// (RFC 9110 §10.2.3): long enough for a lock to be released or a
/// connection to come back.
pub(crate) const RETRY_AFTER_SECONDS: u64 = 5;

/// An issue that names no internal detail, only the request id to quote.
fn internal_issue(code: IssueType, message: &str) -> Issue {
    let request_id = current_request_id().unwrap_or_default();
    Issue::new(
        Severity::Error,
        code,
        format!("{message} (request id {request_id})"),
    )
}

/// Refusals of a search as OperationOutcome issues located at the parameter.
fn search_issues(refusals: &[ehds_routing::search::SearchRefusal]) -> Vec<Issue> {
    refusals
        .iter()
        .map(|r| Issue::error(IssueType::Invalid, r.message()).at(r.location()))
        .collect()
}

impl GatewayError {
    /// A short reason for the audit record, without patient data (for the
    /// patient's access log: why, in words).
    pub(crate) fn audit_summary(&self) -> String {
        match self {
            Self::Assertion(refusal) => format!("assertion refused: {}", refusal.code()),
            Self::NoConsent => "no consent: the patient's opt-out".to_owned(),
            Self::Forbidden(why) => format!("forbidden: {why}"),
            Self::Unauthenticated(_) => "not authenticated".to_owned(),
            Self::Search(_) | Self::Identifier(_) => "malformed request".to_owned(),
            Self::ResourceNotFound(_) => "not found".to_owned(),
            Self::Withheld(_) => {
                "not found: withheld, the patient restricted this document".to_owned()
            }
            Self::PeerUnavailable(_) => "peer unavailable".to_owned(),
            Self::PeerTimeout => "peer timed out".to_owned(),
            Self::PeerAnswer { status, .. } => format!("peer answered {status}"),
            Self::PeerInvalid(_) => "peer answer failed validation".to_owned(),
            Self::National(failure) => national_summary(failure).to_owned(),
            Self::NationalInvalid(_) => "national server's document failed validation".to_owned(),
            _ => "failed".to_owned(),
        }
    }

    /// Whether this gateway, relaying for a patient of another country,
    /// refused on its own (the other country never saw the request, or saw
    /// it and answered, but this gateway withheld the answer): only such
    /// refusals are reported there. A refusal the other country answered is
    /// in its own trail; one caused by the other country's NCP being
    /// unreachable or not who the directory says cannot be reported to it.
    pub(crate) fn decided_here(&self) -> bool {
        matches!(
            self,
            Self::Assertion(_)
                | Self::Unauthenticated(_)
                | Self::Forbidden(_)
                | Self::PeerInvalid(_)
        )
    }
}

/// [`GatewayError::audit_summary`] of a national server's failure.
fn national_summary(failure: &ehds_national_fhir::NationalError) -> &'static str {
    use ehds_national_fhir::NationalError as N;
    match failure {
        N::Unreachable(_) | N::Transport(_) => "national server unreachable",
        N::CircuitOpen => "national server not asked: circuit breaker open",
        N::Timeout(_) => "national server timed out",
        N::Status(_) => "national server answered an error",
        N::NotFhir(_) => "national server answered something that is not FHIR",
        N::Unexpected(_) => "national server answered something else than asked",
        N::OtherPatient => "national server answered about another patient: refused",
        N::Credentials(_) => "national server's authorization server gave no access token",
    }
}

/// What a refused request's response carries for the audited exit
/// (`crate::audit::exit`): the refusal as the audit record states it.
#[derive(Debug, Clone)]
pub(crate) struct RefusalNote {
    /// [`GatewayError::audit_summary`].
    pub(crate) summary: String,
    /// A server-side failure (a serious failure in the record).
    pub(crate) serious: bool,
    /// [`GatewayError::decided_here`].
    pub(crate) decided_here: bool,
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let (status, issues) = classify(&self);
        let note = RefusalNote {
            summary: self.audit_summary(),
            serious: status.is_server_error(),
            decided_here: self.decided_here(),
        };
        let mut response = self.response(status, &issues);
        response.extensions_mut().insert(note);
        response
    }
}

impl GatewayError {
    fn response(self, status: StatusCode, issues: &[Issue]) -> Response {
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
        if let Self::UnsupportedContentEncoding(_) = &self {
            let mut response = outcome_response(status, issues);
            response.headers_mut().insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_static("identity"),
            );
            return response;
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(error = %self, "request failed: unavailable for a while");
            let mut response = outcome_response(status, issues);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
            return response;
        }
        if status == StatusCode::UNAUTHORIZED {
            let mut response = outcome_response(status, issues);
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
        outcome_response(status, issues)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ehds_fhir::ReceivedResource;

    /// Every variant's name; the match has no wildcard, so a new variant
    /// does not compile until it is named here and counted in [`VARIANTS`].
    fn variant(error: &GatewayError) -> &'static str {
        use GatewayError as E;
        match error {
            E::MalformedJson(_) => "MalformedJson",
            E::WrongResourceType { .. } => "WrongResourceType",
            E::Invalid(_) => "Invalid",
            E::UnsupportedMediaType(_) => "UnsupportedMediaType",
            E::UnsupportedContentEncoding(_) => "UnsupportedContentEncoding",
            E::PayloadTooLarge { .. } => "PayloadTooLarge",
            E::MemoryBudgetExhausted { .. } => "MemoryBudgetExhausted",
            E::BodyTimeout(_) => "BodyTimeout",
            E::BodyRead(_) => "BodyRead",
            E::IdentifierConflict { .. } => "IdentifierConflict",
            E::ResourceNotFound(_) => "ResourceNotFound",
            E::Withheld(_) => "Withheld",
            E::UnknownRoute(_) => "UnknownRoute",
            E::MethodNotAllowed(_) => "MethodNotAllowed",
            E::Store(_) => "Store",
            E::Render(_) => "Render",
            E::Unauthenticated(_) => "Unauthenticated",
            E::Forbidden(_) => "Forbidden",
            E::Assertion(_) => "Assertion",
            E::Ledger(_) => "Ledger",
            E::Search(_) => "Search",
            E::Identifier(_) => "Identifier",
            E::PeerUnavailable(_) => "PeerUnavailable",
            E::PeerTimeout => "PeerTimeout",
            E::PeerAnswer { .. } => "PeerAnswer",
            E::PeerInvalid(_) => "PeerInvalid",
            E::DispenseRefused { .. } => "DispenseRefused",
            E::NoConsent => "NoConsent",
            E::ReleaseFailed(_) => "ReleaseFailed",
            E::AuditEvent(_) => "AuditEvent",
            E::Unaudited => "Unaudited",
            E::NationalApiUnavailable(_) => "NationalApiUnavailable",
            E::National(_) => "National",
            E::NationalInvalid(_) => "NationalInvalid",
        }
    }

    /// How many variants [`variant`] names.
    const VARIANTS: usize = 34;

    /// The mapping table, row by row (every variant): error → status, issue
    /// code.
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
            (
                GatewayError::UnsupportedContentEncoding("gzip".into()),
                415,
                "not-supported",
            ),
            (GatewayError::PayloadTooLarge { limit: 1 }, 413, "too-long"),
            (
                GatewayError::MemoryBudgetExhausted {
                    estimated: 200 << 20,
                    budget: 512 << 20,
                },
                503,
                "transient",
            ),
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
            (GatewayError::Withheld("Bundle/x".into()), 404, "not-found"),
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
                    kind: DispenseRefusal::StateConflict,
                    message: "only 2 remain".into(),
                    at: Some("MedicationDispense.quantity".into()),
                },
                409,
                "business-rule",
            ),
            (
                GatewayError::ReleaseFailed("the variant has 1 validation errors".into()),
                500,
                "exception",
            ),
            (
                GatewayError::Assertion(ehds_access::AssertionRefusal::Expired),
                401,
                "login",
            ),
            (
                GatewayError::Assertion(ehds_access::AssertionRefusal::PatientMismatch),
                403,
                "forbidden",
            ),
            (GatewayError::Ledger("down".into()), 503, "transient"),
            (
                GatewayError::Search(
                    ehds_routing::search::PatientSearch::parse("colour=red").unwrap_err(),
                ),
                400,
                "invalid",
            ),
            (
                GatewayError::Identifier(ehds_routing::IdentifierRefusal::Empty),
                400,
                "value",
            ),
            (
                GatewayError::PeerUnavailable("down".into()),
                502,
                "transient",
            ),
            (GatewayError::PeerTimeout, 504, "timeout"),
            (
                GatewayError::National(ehds_national_fhir::NationalError::Unreachable(
                    "connection refused".into(),
                )),
                503,
                "transient",
            ),
            (
                GatewayError::National(ehds_national_fhir::NationalError::Timeout(10)),
                504,
                "timeout",
            ),
            (
                GatewayError::National(ehds_national_fhir::NationalError::OtherPatient),
                502,
                "exception",
            ),
            (
                GatewayError::National(ehds_national_fhir::NationalError::Credentials(
                    "the token endpoint refused them: HTTP 401, invalid_client".into(),
                )),
                502,
                "exception",
            ),
            (
                GatewayError::NationalInvalid(ValidationReport::default()),
                502,
                "exception",
            ),
            (
                GatewayError::PeerAnswer {
                    status: 403,
                    outcome: None,
                },
                403,
                "exception",
            ),
            (
                GatewayError::PeerAnswer {
                    status: 500,
                    outcome: None,
                },
                502,
                "exception",
            ),
            (
                GatewayError::PeerInvalid(ValidationReport::default()),
                502,
                "exception",
            ),
            (
                GatewayError::DispenseRefused {
                    kind: DispenseRefusal::UnknownPrescription,
                    message: "no such prescription".into(),
                    at: None,
                },
                404,
                "not-found",
            ),
            (
                GatewayError::DispenseRefused {
                    kind: DispenseRefusal::Unprocessable,
                    message: "no coded unit".into(),
                    at: None,
                },
                422,
                "business-rule",
            ),
            (
                GatewayError::AuditEvent(ehds_fhir::audit_event::AuditEventError::Empty("x")),
                500,
                "exception",
            ),
            (GatewayError::Unaudited, 500, "exception"),
        ];
        let covered: std::collections::BTreeSet<&str> =
            rows.iter().map(|(error, _, _)| variant(error)).collect();
        // `Render` cannot be built outside ehds-fhir (its error is private
        // there); it is mapped with the internal errors, 500.
        assert_eq!(
            covered.len(),
            VARIANTS - 1,
            "every variant of GatewayError has a row: {covered:?}"
        );
        for (error, status, code) in rows {
            let (got_status, issues) = classify(&error);
            assert_eq!(got_status.as_u16(), status, "{error}");
            assert!(!issues.is_empty(), "{error}");
            assert_eq!(issues[0].code.code(), code, "{error}");
            assert!(issues[0].severity.is_error(), "{error}");
        }
    }

    /// The refusals a national client acts on carry their eHDSI error code
    /// (OpenNCP `OpenNCPErrorCode`) in the first issue's `details`, and the
    /// rendered OperationOutcome says it.
    #[test]
    fn refusals_carry_their_ehdsi_error_code() {
        for (error, code) in [
            (GatewayError::NoConsent, "ERROR_NO_CONSENT"),
            (
                GatewayError::ResourceNotFound("Bundle/x".into()),
                "ERROR_GENERIC_DOCUMENT_MISSING",
            ),
            (
                GatewayError::Forbidden("the access policy".into()),
                "ERROR_INSUFFICIENT_RIGHTS",
            ),
            (
                GatewayError::Search(
                    ehds_routing::search::PatientSearch::parse("colour=red").unwrap_err(),
                ),
                "ERROR_UNKNOWN_FILTER",
            ),
            (
                GatewayError::PeerTimeout,
                "ERROR_GENERIC_CONNECTION_NOT_POSSIBLE",
            ),
        ] {
            let (_, issues) = classify(&error);
            let detail = issues
                .iter()
                .find_map(|i| i.details)
                .unwrap_or_else(|| panic!("{error}: no eHDSI code"));
            assert_eq!((detail.system, detail.code), (EHDSI_ERROR_CODES, code));
        }
        let (_, issues) = classify(&GatewayError::NoConsent);
        let rendered: serde_json::Value =
            serde_json::from_slice(&outcome::render(&issues).unwrap()).unwrap();
        assert_eq!(
            rendered["issue"][0]["details"]["coding"][0]["code"],
            "ERROR_NO_CONSENT"
        );
        assert_eq!(ehdsi_code(&GatewayError::UnknownRoute("/x".into())), None);
    }

    /// What the store calls unavailable (its busy, locked, full and
    /// retry-me answers of both backends: `StoreError::is_unavailable`,
    /// tested there) is 503 with `Retry-After` (issue 16 #6); other failures
    /// stay 500.
    #[test]
    fn busy_locked_or_full_stores_are_unavailable_not_faults() {
        let response =
            GatewayError::Store(StoreError::Database(ehds_store::SqlxError::PoolTimedOut))
                .into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
    }

    /// A document its patient restricted is answered byte for byte as one
    /// that does not exist (the answer does not reveal it); only the audit
    /// record says it was withheld.
    #[test]
    fn a_withheld_document_is_answered_as_one_not_found() {
        let body = |error: GatewayError| {
            let (status, issues) = classify(&error);
            (status, outcome::render(&issues).unwrap())
        };
        assert_eq!(
            body(GatewayError::Withheld("Bundle/x".into())),
            body(GatewayError::ResourceNotFound("Bundle/x".into()))
        );
        assert_ne!(
            GatewayError::Withheld("Bundle/x".into()).audit_summary(),
            GatewayError::ResourceNotFound("Bundle/x".into()).audit_summary()
        );
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
