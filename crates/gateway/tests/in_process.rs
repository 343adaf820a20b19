//! The national API in-process (router + real SQLite store): a store that
//! fails mid-flight or is locked, a body that never arrives or is
//! compressed, a byte-order mark.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use ehds_gateway::national_router as router;
use ehds_gateway::{AppState, Limits, Metrics};
use ehds_store::{Store, StoreConfig};
use ehds_test_support::{conformance_dir, unique_schema};
use ehds_transport::{CertFingerprint, NationalClientKind, PeerIdentity, VerifiedPeer};
use http_body_util::BodyExt;
use sqlx::Connection;
use tower::ServiceExt;

const IPS: &str = "examples/ips/Bundle-IPS-examples-Bundle-01.json";

/// The validator of the shipped packages (compiled at build time), loaded
/// once per test binary.
fn validator() -> Arc<ehds_validation::Validator> {
    static VALIDATOR: std::sync::OnceLock<Arc<ehds_validation::Validator>> =
        std::sync::OnceLock::new();
    Arc::clone(VALIDATOR.get_or_init(|| {
        Arc::new(
            ehds_shipped_validator::validator(ehds_validation::ValidationOptions::default())
                .unwrap(),
        )
    }))
}

fn state(
    dir: &std::path::Path,
    body_timeout: Duration,
) -> impl std::future::Future<Output = AppState> {
    let path = dir.join("gw.db");
    async move {
        AppState {
            store: Store::open(&StoreConfig::Sqlite { path }).await.unwrap(),
            validator: ehds_gateway::Validation::new(validator(), 2),
            services: std::sync::Arc::new(ehds_gateway::ServiceRegistry::shipped().unwrap()),
            unknown_extensions: Arc::default(),
            validated_answers: ehds_gateway::validated_answers(
                ehds_gateway::DEFAULT_PEER_ANSWER_MEMO_ENTRIES,
            ),
            metrics: Arc::new(Metrics::default()),
            operations: Arc::default(),
            limits: Limits {
                max_body_bytes: 1 << 20,
                body_timeout,
            },
            memory_budget: Arc::new(ehds_gateway::MemoryBudget::new(64 << 20)),
            country: ehds_identifiers::CountryCode::parse("BE"),
            federation: None,
        }
    }
}

/// What the mutual-TLS listener attaches to every request of a BE hospital
/// EHR system's connection.
fn ehr_peer() -> VerifiedPeer {
    VerifiedPeer {
        identity: PeerIdentity::NationalClient {
            country: "BE".into(),
            organisation: "Hospital".into(),
            kind: NationalClientKind::EhrSystem,
            client_id: "ehr-1".into(),
        },
        fingerprint: CertFingerprint([0; 32]),
        serial_hex: "01".into(),
        not_after: time::OffsetDateTime::now_utc(),
    }
}

async fn call(state: &AppState, mut request: Request<Body>) -> (StatusCode, String, Vec<u8>) {
    if request.extensions().get::<VerifiedPeer>().is_none() {
        request.extensions_mut().insert(ehr_peer());
    }
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, request_id, body)
}

fn push(bytes: Vec<u8>) -> Request<Body> {
    Request::post("/fhir/Bundle")
        .header("content-type", "application/fhir+json")
        .body(Body::from(bytes))
        .unwrap()
}

#[tokio::test]
async fn store_failure_is_a_500_with_the_request_id_and_no_internals() {
    let dir = std::env::temp_dir().join(unique_schema("fail"));
    let path = dir.join("gw.db");
    let state = state(&dir, Duration::from_secs(5)).await;
    let ips = std::fs::read(conformance_dir().join(IPS)).unwrap();
    let (status, _, _) = call(&state, push(ips.clone())).await;
    assert_eq!(status, StatusCode::CREATED);

    // Break the store behind the gateway's back: the table disappears.
    let saboteur = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("ALTER TABLE documents RENAME TO documents_gone")
        .execute(&saboteur)
        .await
        .unwrap();

    let mut other = ips.clone();
    other.push(b'\n');
    let (status, request_id, body) = call(&state, push(other)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let outcome: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert_eq!(outcome["issue"][0]["code"], "exception");
    let diagnostics = outcome["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(diagnostics.contains(&request_id), "{diagnostics}");
    for internal in ["documents", "sqlite", "table", "SQL"] {
        assert!(
            !diagnostics.contains(internal),
            "{diagnostics} reveals {internal}"
        );
    }

    // Repaired, the first document is there, byte-identical.
    sqlx::query("ALTER TABLE documents_gone RENAME TO documents")
        .execute(&saboteur)
        .await
        .unwrap();
    assert_eq!(state.store.document_count().await.unwrap(), 1);
    let _ = std::fs::remove_dir_all(dir);
}

/// A store that answers reads but cannot be written (another process holds
/// its write lock) is not healthy: `/healthz` answers 503 with
/// `Retry-After`, and so does a push, instead of 200 and 500; once the lock
/// is released both succeed (issue 16 #6).
#[tokio::test]
async fn a_locked_store_is_unhealthy_and_pushes_are_503_with_retry_after() {
    let dir = std::env::temp_dir().join(unique_schema("locked"));
    let path = dir.join("gw.db");
    let state = state(&dir, Duration::from_secs(5)).await;
    let health = || Request::get("/healthz").body(Body::empty()).unwrap();
    let (status, _, _) = call(&state, health()).await;
    assert_eq!(status, StatusCode::OK);

    // Another process takes the write lock and keeps it.
    let mut holder = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .unwrap();

    let unavailable = |response: axum::response::Response| async move {
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["retry-after"], "5");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let outcome: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(outcome["issue"][0]["code"], "transient");
    };
    let with_peer = |mut request: Request<Body>| {
        request.extensions_mut().insert(ehr_peer());
        request
    };
    let response = router(state.clone())
        .oneshot(with_peer(health()))
        .await
        .unwrap();
    unavailable(response).await;
    // A push waits the store's busy timeout (10 s), then is told to retry.
    let ips = std::fs::read(conformance_dir().join(IPS)).unwrap();
    let response = tokio::time::timeout(
        Duration::from_secs(60),
        router(state.clone()).oneshot(with_peer(push(ips.clone()))),
    )
    .await
    .expect("the push gives up on the lock on its own")
    .unwrap();
    unavailable(response).await;

    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    let (status, _, _) = call(&state, health()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = call(&state, push(ips)).await;
    assert_eq!(status, StatusCode::CREATED);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_body_that_never_arrives_times_out_with_408() {
    let dir = std::env::temp_dir().join(unique_schema("slow"));
    let state = state(&dir, Duration::from_millis(200)).await;
    // A body stream that sends one chunk and then stalls forever.
    let stalled = futures_stall();
    let request = Request::post("/fhir/Bundle")
        .header("content-type", "application/fhir+json")
        .body(Body::from_stream(stalled))
        .unwrap();
    let (status, _, body) = call(&state, request).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    let outcome: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(outcome["issue"][0]["code"], "timeout");
    let _ = std::fs::remove_dir_all(dir);
}

/// A Content-Length over the limit is refused with 413 before the body is
/// read.
#[tokio::test]
async fn a_content_length_over_the_limit_is_refused_with_413() {
    let dir = std::env::temp_dir().join(unique_schema("length"));
    let state = state(&dir, Duration::from_secs(5)).await;
    let request = Request::post("/fhir/Bundle")
        .header("content-type", "application/fhir+json")
        .header("content-length", (2u64 << 20).to_string())
        .body(Body::from_stream(futures_stall()))
        .unwrap();
    let (status, _, body) = call(&state, request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let outcome: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(outcome["issue"][0]["code"], "too-long");
    let _ = std::fs::remove_dir_all(dir);
}

/// A chunked body (no Content-Length) is refused with 413 as soon as it
/// passes the limit, without reading the rest.
#[tokio::test]
async fn a_chunked_body_over_the_limit_is_refused_with_413() {
    let dir = std::env::temp_dir().join(unique_schema("chunked"));
    let state = state(&dir, Duration::from_secs(5)).await;
    let chunks = (0..200).map(|_| Ok::<_, std::io::Error>(vec![b' '; 8192]));
    let request = Request::post("/fhir/Bundle")
        .header("content-type", "application/fhir+json")
        .body(Body::from_stream(Chunks(chunks.collect())))
        .unwrap();
    let (status, _, body) = call(&state, request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let outcome: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(outcome["issue"][0]["code"], "too-long");
    let _ = std::fs::remove_dir_all(dir);
}

/// A body in a content coding (gzip, br) is refused with 415 naming the
/// coding and `Accept-Encoding: identity`, not read as (invalid) UTF-8 JSON
/// (issue 16 #8; RFC 9110 §15.5.16).
#[tokio::test]
async fn a_compressed_body_is_refused_with_415_naming_its_encoding() {
    let dir = std::env::temp_dir().join(unique_schema("encoding"));
    let state = state(&dir, Duration::from_secs(5)).await;
    for coding in ["gzip", "br"] {
        // Bytes that are not UTF-8, as a compressed body would be.
        let request = Request::post("/fhir/Bundle")
            .header("content-type", "application/fhir+json")
            .header("content-encoding", coding)
            .body(Body::from(vec![0x1f, 0x8b, 0x08, 0x00, 0xff, 0xfe]))
            .unwrap();
        let mut request = request;
        request.extensions_mut().insert(ehr_peer());
        let response = router(state.clone()).oneshot(request).await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{coding}"
        );
        assert_eq!(response.headers()["accept-encoding"], "identity");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let outcome: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(outcome["issue"][0]["code"], "not-supported");
        let diagnostics = outcome["issue"][0]["diagnostics"].as_str().unwrap();
        assert!(diagnostics.contains(coding), "{diagnostics}");
    }
    // `identity` is no coding: the body is read as sent.
    let ips = std::fs::read(conformance_dir().join(IPS)).unwrap();
    let mut request = push(ips);
    request
        .headers_mut()
        .insert("content-encoding", "identity".parse().unwrap());
    let (status, _, _) = call(&state, request).await;
    assert_eq!(status, StatusCode::CREATED);
    let _ = std::fs::remove_dir_all(dir);
}

/// Without a verified client certificate nothing is served: 401; a
/// certificate of another kind of national system may not push: 403.
#[tokio::test]
async fn callers_without_a_national_certificate_or_the_right_kind_are_refused() {
    let dir = std::env::temp_dir().join(unique_schema("authn"));
    let state = state(&dir, Duration::from_secs(5)).await;
    let bytes = std::fs::read(conformance_dir().join(IPS)).unwrap();
    let response = router(state.clone())
        .oneshot(push(bytes.clone()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let mut pharmacy = ehr_peer();
    pharmacy.identity = PeerIdentity::NationalClient {
        country: "BE".into(),
        organisation: "Pharmacy".into(),
        kind: NationalClientKind::Pharmacy,
        client_id: "ph-1".into(),
    };
    let mut request = push(bytes.clone());
    request.extensions_mut().insert(pharmacy);
    let (status, _, _) = call(&state, request).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let mut foreign = ehr_peer();
    foreign.identity = PeerIdentity::NationalClient {
        country: "LU".into(),
        organisation: "Hospital".into(),
        kind: NationalClientKind::EhrSystem,
        client_id: "ehr-lu".into(),
    };
    let mut request = push(bytes);
    request.extensions_mut().insert(foreign);
    let (status, _, _) = call(&state, request).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(state.store.document_count().await.unwrap(), 0);
    let _ = std::fs::remove_dir_all(dir);
}

/// A finite stream of chunks.
struct Chunks(std::collections::VecDeque<Result<Vec<u8>, std::io::Error>>);

impl futures_core::Stream for Chunks {
    type Item = Result<Vec<u8>, std::io::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::task::Poll::Ready(self.0.pop_front())
    }
}

fn futures_stall() -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send {
    struct Stall(bool);
    impl futures_core::Stream for Stall {
        type Item = Result<Vec<u8>, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            if self.0 {
                std::task::Poll::Pending
            } else {
                self.0 = true;
                std::task::Poll::Ready(Some(Ok(b"{\"resourceType\":".to_vec())))
            }
        }
    }
    Stall(false)
}

/// A UTF-8 byte-order mark before the JSON is accepted (RFC 8259 §8.1; the
/// HL7 Java validator accepts it) and kept: the bytes served back are the
/// bytes received, BOM included.
#[tokio::test]
async fn a_leading_byte_order_mark_is_accepted_and_kept() {
    let dir = std::env::temp_dir().join(unique_schema("bom"));
    let state = state(&dir, Duration::from_secs(5)).await;
    let mut with_bom = b"\xEF\xBB\xBF".to_vec();
    with_bom.extend(std::fs::read(conformance_dir().join(IPS)).unwrap());
    let (status, _, body) = call(&state, push(with_bom.clone())).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body, with_bom);
    // A BOM after the value is trailing content.
    let mut trailing = std::fs::read(conformance_dir().join(IPS)).unwrap();
    trailing.extend_from_slice(b"\xEF\xBB\xBF");
    let (status, _, _) = call(&state, push(trailing)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 17: `/readyz` is separate from `/healthz`: ready while serving,
/// 503 (an OperationOutcome saying why) once shutdown has begun, while
/// `/healthz` (liveness) still answers 200 so that nothing restarts a
/// draining gateway.
#[tokio::test]
async fn readyz_answers_503_once_draining_begins_and_healthz_stays_live() {
    let dir = std::env::temp_dir().join(unique_schema("ready"));
    let state = state(&dir, Duration::from_secs(5)).await;
    let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
    let (status, _, body) = call(&state, get("/readyz")).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let metrics = String::from_utf8(call(&state, get("/metrics")).await.2).unwrap();
    assert!(metrics.contains("ehds_draining 0\n"), "{metrics}");

    state.operations.start_draining();
    let (status, _, body) = call(&state, get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let outcome: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert_eq!(outcome["issue"][0]["code"], "transient");
    let diagnostics = outcome["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(diagnostics.contains("shutting down"), "{diagnostics}");
    let (status, _, _) = call(&state, get("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    let metrics = String::from_utf8(call(&state, get("/metrics")).await.2).unwrap();
    assert!(metrics.contains("ehds_draining 1\n"), "{metrics}");
    state.store.close().await;
    let _ = std::fs::remove_dir_all(dir);
}
