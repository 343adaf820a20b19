//! The national FHIR API (axum): routes, handlers and the per-request
//! middleware (request id, tracing span, metrics).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use ehds_fhir::ReceivedResource;
use ehds_store::{DocumentIdentifier, NewDocument, PutOutcome, Store, StoredDocument};
use ehds_transport::{NationalClientKind, PeerIdentity, VerifiedPeer};
use http_body_util::{BodyExt, Limited};
use tracing::Instrument;

use crate::GatewayError;
use crate::metrics::Metrics;

/// The FHIR JSON media type every FHIR response carries.
pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

/// The CapabilityStatement served at `/fhir/metadata`, kept in `conformance/`.
pub const CAPABILITY_STATEMENT: &str =
    include_str!("../../../conformance/CapabilityStatement-ehds-gateway-national.json");

/// RFC 9110 IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT` (times are UTC).
const HTTP_DATE: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

/// Limits applied to every request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest body, in bytes.
    pub max_body_bytes: usize,
    /// Time allowed to receive the body.
    pub body_timeout: Duration,
}

/// Shared state of the national API.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// The validator, shared.
    pub validator: Arc<ehds_validation::Validator>,
    /// Profiles every pushed document must meet.
    pub document_profiles: Arc<[String]>,
    /// Peer answers that validated against `validator` and
    /// `document_profiles` (both fixed for the state's life), by SHA-256.
    pub validated_answers: Arc<crate::answer_memo::ValidatedAnswers>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Request limits.
    pub limits: Limits,
    /// This gateway's country (`[ncp] country`): national clients must be
    /// of it.
    pub country: Option<Arc<str>>,
    /// Cross-border exchange, when `[federation]` is configured.
    pub federation: Option<Arc<crate::federation::Federation>>,
}

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled, if called while handling one.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// The national API router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/fhir/Bundle", post(push_bundle))
        .route("/fhir/Bundle/{id}", get(read_bundle))
        .route(
            "/fhir/Patient",
            get(crate::federation::national_patient_search),
        )
        .route(
            "/fhir/DocumentReference",
            get(crate::federation::national_document_search),
        )
        .route("/fhir/metadata", get(capability_statement))
        .route("/fhir/$validate", post(validate_operation))
        .route(
            "/fhir/$cross-border-opt-out",
            post(crate::patient_rights::opt_out).get(crate::patient_rights::current_opt_outs),
        )
        .route(
            "/fhir/$cross-border-restriction",
            post(crate::patient_rights::restriction).get(crate::patient_rights::restrictions),
        )
        .route("/fhir/AuditEvent", get(crate::patient_rights::access_log))
        .route(
            "/fhir/MedicationRequest",
            post(crate::prescriptions::push_prescription)
                .get(crate::federation::national_prescription_search),
        )
        .route(
            "/fhir/MedicationDispense",
            post(crate::federation::national_dispense),
        )
        .route(
            "/fhir/MedicationRequest/{id}",
            get(crate::prescriptions::read_prescription),
        )
        .route(
            "/fhir/MedicationRequest/{id}/$cross-border-status",
            post(crate::prescriptions::set_cross_border_status),
        )
        .route("/fhir/Bundle/$validate", post(validate_bundle_operation))
        .route("/fhir/{type}/$validate", post(validate_typed_operation))
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// One span per request with a fresh request id, echoed in `X-Request-Id`;
/// counts the request by route and status. Logs carry the route template,
/// never the path or query (which may hold patient identifiers).
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
    let mut response = REQUEST_ID
        .scope(request_id.clone(), next.run(request))
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
    response
}

/// The national system calling, from its verified client certificate (the
/// transport puts it on every request of a mutual-TLS connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NationalCaller {
    /// The organisation (certificate O).
    pub organisation: String,
    /// What kind of system it is (certificate OU).
    pub kind: NationalClientKind,
    /// The client id (certificate CN).
    pub client_id: String,
}

impl NationalCaller {
    /// The caller of `extensions`' connection, if it is a national client
    /// of this gateway's country (`country`: `None` accepts any, for a
    /// gateway configured without `[ncp]`).
    pub fn of(peer: Option<&VerifiedPeer>, country: Option<&str>) -> Result<Self, GatewayError> {
        let Some(peer) = peer else {
            return Err(GatewayError::Unauthenticated(
                "the national API requires a client certificate of this country's national CA"
                    .into(),
            ));
        };
        match &peer.identity {
            PeerIdentity::NationalClient {
                country: peer_country,
                organisation,
                kind,
                client_id,
            } if country.is_none_or(|c| c == peer_country) => Ok(Self {
                organisation: organisation.clone(),
                kind: *kind,
                client_id: client_id.clone(),
            }),
            _ => Err(GatewayError::Forbidden(
                "this certificate does not identify a national system of this country".into(),
            )),
        }
    }

    /// Refuses callers whose kind is not among `allowed`.
    pub fn require(&self, allowed: &[NationalClientKind], what: &str) -> Result<(), GatewayError> {
        if allowed.contains(&self.kind) {
            Ok(())
        } else {
            Err(GatewayError::Forbidden(format!(
                "a {} system may not {what}",
                self.kind.as_str()
            )))
        }
    }

    /// How the store records the sender: `kind:organisation/client`.
    pub fn sender(&self) -> String {
        format!(
            "{}:{}/{}",
            self.kind.as_str(),
            self.organisation,
            self.client_id
        )
    }
}

/// `POST /fhir/Bundle`: push a FHIR document (hospital EHR systems).
async fn push_bundle(
    State(state): State<AppState>,
    peer: Option<Extension<VerifiedPeer>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, GatewayError> {
    let caller = NationalCaller::of(peer.as_deref(), state.country.as_deref())?;
    caller.require(
        &[
            NationalClientKind::EhrSystem,
            NationalClientKind::DoctorSystem,
        ],
        "push documents or prescriptions",
    )?;
    let resource = receive_resource(&headers, body, state.limits).await?;
    if resource.resource_type() != "Bundle" {
        return Err(GatewayError::WrongResourceType {
            expected: "Bundle",
            found: resource.resource_type().to_owned(),
        });
    }
    // A prescription Bundle (several items) goes to the prescriptions.
    if crate::prescriptions::is_prescription_bundle(resource.root()) {
        return crate::prescriptions::push_prescription_bundle(&state, &caller, &resource).await;
    }
    caller.require(&[NationalClientKind::EhrSystem], "push documents")?;
    let profiles: Vec<&str> = state.document_profiles.iter().map(String::as_str).collect();
    let report = state
        .validator
        .validate_pushed_document(&resource, &profiles);
    if !report.is_acceptable() {
        return Err(GatewayError::Invalid(report));
    }
    let header = ehds_validation::document::document_header(&resource).ok_or_else(|| {
        // validate_pushed_document refuses documents without a header.
        GatewayError::Invalid(report.clone())
    })?;
    let outcome = state
        .store
        .put_document(NewDocument {
            identifier: DocumentIdentifier {
                system: header.identifier_system.to_owned(),
                value: header.identifier_value.to_owned(),
            },
            bundle_type: header.bundle_type,
            patient_identifier: header.patient_identifier.as_deref(),
            sender: &caller.sender(),
            content: resource.bytes(),
        })
        .await?;
    let preference = ReturnPreference::from_headers(&headers);
    match outcome {
        PutOutcome::Created(doc) => {
            state.metrics.count_document_stored();
            tracing::info!(document_id = %doc.id, "document stored");
            Ok(document_response(
                StatusCode::CREATED,
                doc,
                preference,
                Some(&report),
            ))
        }
        PutOutcome::AlreadyStored(doc) => {
            tracing::info!(document_id = %doc.id, "identical document already stored");
            Ok(document_response(
                StatusCode::OK,
                doc,
                preference,
                Some(&report),
            ))
        }
        PutOutcome::Conflict { existing_id } => {
            Err(GatewayError::IdentifierConflict { existing_id })
        }
    }
}

/// `profile` query parameter of `$validate`.
#[derive(Debug, serde::Deserialize)]
struct ValidateQuery {
    profile: Option<String>,
}

/// `POST /fhir/$validate`.
async fn validate_operation(
    State(state): State<AppState>,
    Query(query): Query<ValidateQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, GatewayError> {
    validate(state, None, query, headers, body).await
}

/// `POST /fhir/Bundle/$validate` (a static route: `/fhir/Bundle/{id}` would
/// otherwise take `$validate` as an id).
async fn validate_bundle_operation(
    State(state): State<AppState>,
    Query(query): Query<ValidateQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, GatewayError> {
    validate(state, Some("Bundle".to_owned()), query, headers, body).await
}

/// `POST /fhir/{type}/$validate`.
async fn validate_typed_operation(
    State(state): State<AppState>,
    Path(resource_type): Path<String>,
    Query(query): Query<ValidateQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, GatewayError> {
    validate(state, Some(resource_type), query, headers, body).await
}

/// The `$validate` operation (<http://hl7.org/fhir/R4/resource-operation-validate.html>):
/// the resource in the body (or a Parameters with a `resource` parameter),
/// validated against R4 core, its claimed profiles and `profile`; 200 with
/// an OperationOutcome of every issue, whatever they are.
async fn validate(
    state: AppState,
    resource_type: Option<String>,
    query: ValidateQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, GatewayError> {
    let resource = receive_resource(&headers, body, state.limits).await?;
    if let Some(expected) = &resource_type
        && resource.resource_type() != expected
    {
        return Err(GatewayError::WrongResourceType {
            expected: "resource of the type named in the URL",
            found: resource.resource_type().to_owned(),
        });
    }
    let profiles: Vec<&str> = query.profile.iter().map(String::as_str).collect();
    let report = state.validator.validate(&resource, &profiles);
    let issues = if report.issues.is_empty() {
        vec![ehds_fhir::outcome::Issue::new(
            ehds_fhir::outcome::Severity::Information,
            ehds_fhir::outcome::IssueType::Informational,
            "validation found no issues",
        )]
    } else {
        report.issues
    };
    Ok(crate::error::outcome_response(StatusCode::OK, &issues))
}

/// `GET /fhir/Bundle/{id}`: the exact bytes stored (any national system).
async fn read_bundle(
    State(state): State<AppState>,
    peer: Option<Extension<VerifiedPeer>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, GatewayError> {
    NationalCaller::of(peer.as_deref(), state.country.as_deref())?;
    if let Some((country, remote_id)) = crate::federation::held_abroad(&state, &id) {
        return crate::federation::national_bundle_read(
            &state,
            peer.as_deref(),
            &headers,
            country,
            remote_id,
        )
        .await;
    }
    if !is_fhir_id(&id) {
        return Err(GatewayError::ResourceNotFound("this Bundle".into()));
    }
    match state.store.document(&id).await? {
        Some(doc) => Ok(document_response(
            StatusCode::OK,
            doc,
            ReturnPreference::Representation,
            None,
        )),
        None => Err(GatewayError::ResourceNotFound(format!("Bundle/{id}"))),
    }
}

/// FHIR `id` datatype: `[A-Za-z0-9\-\.]{1,64}`.
fn is_fhir_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// The `Prefer: return=` header of a create
/// (<http://hl7.org/fhir/R4/http.html#ops>).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReturnPreference {
    /// The stored resource (the default).
    Representation,
    /// No body.
    Minimal,
    /// An OperationOutcome of the validation warnings and information.
    OperationOutcome,
}

impl ReturnPreference {
    fn from_headers(headers: &HeaderMap) -> Self {
        let preference = headers
            .get_all("prefer")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split([',', ';']))
            .find_map(|p| p.trim().strip_prefix("return="));
        match preference {
            Some("minimal") => Self::Minimal,
            Some("OperationOutcome") => Self::OperationOutcome,
            _ => Self::Representation,
        }
    }
}

/// Header carrying how many warnings and information issues validation
/// raised on an accepted document (the issues themselves come back with
/// `Prefer: return=OperationOutcome`, or from `$validate`).
const VALIDATION_ISSUES_HEADER: &str = "x-validation-issues";

fn document_response(
    status: StatusCode,
    doc: StoredDocument,
    preference: ReturnPreference,
    report: Option<&ehds_validation::ValidationReport>,
) -> Response {
    let location = format!("/fhir/Bundle/{}", doc.id);
    let mut response = match preference {
        ReturnPreference::Representation => {
            let mut r = (status, doc.content).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
            r
        }
        ReturnPreference::Minimal => status.into_response(),
        ReturnPreference::OperationOutcome => {
            let issues = match report {
                Some(report) if !report.issues.is_empty() => report.issues.clone(),
                _ => vec![ehds_fhir::outcome::Issue::new(
                    ehds_fhir::outcome::Severity::Information,
                    ehds_fhir::outcome::IssueType::Informational,
                    "document stored; validation found no issues",
                )],
            };
            crate::error::outcome_response(status, &issues)
        }
    };
    let headers = response.headers_mut();
    if let Some(report) = report
        && let Ok(value) = HeaderValue::from_str(&report.issues.len().to_string())
    {
        headers.insert(VALIDATION_ISSUES_HEADER, value);
    }

    // Documents are never updated: every stored document is version 1.
    headers.insert(header::ETAG, HeaderValue::from_static("W/\"1\""));
    if let Ok(value) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, value.clone());
        headers.insert(header::CONTENT_LOCATION, value);
    }
    if let Ok(when) = doc.received_at.format(HTTP_DATE)
        && let Ok(value) = HeaderValue::from_str(&when)
    {
        headers.insert(header::LAST_MODIFIED, value);
    }
    response
}

/// Accepts `application/fhir+json` (the FHIR media type) and
/// `application/json`, with an optional UTF-8 charset and R4 `fhirVersion`.
fn check_fhir_json_content_type(headers: &HeaderMap) -> Result<(), GatewayError> {
    let raw = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let mut parts = raw.split(';').map(str::trim);
    let media_type = parts.next().unwrap_or_default().to_ascii_lowercase();
    let params_ok = parts.all(|param| match param.split_once('=') {
        Some((name, value)) => {
            let value = value.trim().trim_matches('"').to_ascii_lowercase();
            match name.trim().to_ascii_lowercase().as_str() {
                "charset" => value == "utf-8",
                "fhirversion" => value == "4.0",
                _ => false,
            }
        }
        None => param.is_empty(),
    });
    if matches!(
        media_type.as_str(),
        "application/fhir+json" | "application/json"
    ) && params_ok
    {
        Ok(())
    } else {
        Err(GatewayError::UnsupportedMediaType(raw))
    }
}

/// A FHIR JSON request body, received: media type checked (415), body read
/// within limits (413, 408), parsed losslessly (400).
pub(crate) async fn receive_resource(
    headers: &HeaderMap,
    body: Body,
    limits: Limits,
) -> Result<ReceivedResource, GatewayError> {
    check_fhir_json_content_type(headers)?;
    let bytes = read_body(headers, body, limits).await?;
    Ok(ReceivedResource::parse(bytes)?)
}

/// Reads the body, refusing one over the limit before reading it when
/// `Content-Length` says so, and as soon as it passes the limit otherwise.
async fn read_body(headers: &HeaderMap, body: Body, limits: Limits) -> Result<Bytes, GatewayError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limits.max_body_bytes as u64) {
        return Err(GatewayError::PayloadTooLarge {
            limit: limits.max_body_bytes,
        });
    }
    let limited = Limited::new(body, limits.max_body_bytes);
    match tokio::time::timeout(limits.body_timeout, limited.collect()).await {
        Err(_) => Err(GatewayError::BodyTimeout(limits.body_timeout.as_secs())),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) => {
            if error.is::<http_body_util::LengthLimitError>() {
                Err(GatewayError::PayloadTooLarge {
                    limit: limits.max_body_bytes,
                })
            } else {
                Err(GatewayError::BodyRead(error.to_string()))
            }
        }
    }
}

/// `GET /fhir/metadata`.
async fn capability_statement() -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON))],
        CAPABILITY_STATEMENT,
    )
        .into_response()
}

/// `GET /healthz`: 200 when the store answers.
async fn health(State(state): State<AppState>) -> Result<Response, GatewayError> {
    state.store.ping().await?;
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

/// `GET /metrics`: Prometheus text format.
async fn metrics(State(state): State<AppState>) -> Result<Response, GatewayError> {
    let stored = state.store.document_count().await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state
            .metrics
            .render(stored, state.store.group_commit_counts()),
    )
        .into_response())
}

pub(crate) async fn unknown_route(uri: Uri) -> GatewayError {
    GatewayError::UnknownRoute(uri.path().to_owned())
}

async fn method_not_allowed(method: Method) -> GatewayError {
    GatewayError::MethodNotAllowed(method.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_type(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn content_types() {
        for ok in [
            "application/fhir+json",
            "application/fhir+json; charset=utf-8",
            "Application/FHIR+JSON;charset=UTF-8",
            "application/json",
            "application/fhir+json; fhirVersion=4.0",
        ] {
            assert!(check_fhir_json_content_type(&with_type(ok)).is_ok(), "{ok}");
        }
        for bad in [
            "application/fhir+xml",
            "text/plain",
            "application/fhir+json; charset=latin1",
            "application/fhir+json; fhirVersion=5.0",
            "",
        ] {
            assert!(
                check_fhir_json_content_type(&with_type(bad)).is_err(),
                "{bad}"
            );
        }
        assert!(check_fhir_json_content_type(&HeaderMap::new()).is_err());
    }

    #[test]
    fn fhir_ids() {
        assert!(is_fhir_id("a-b.C9"));
        assert!(!is_fhir_id(""));
        assert!(!is_fhir_id("a/b"));
        assert!(!is_fhir_id(&"a".repeat(65)));
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
