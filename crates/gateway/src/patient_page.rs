//! The demonstration patient page (`[patient_page]`): one patient's access
//! log and cross-border opt-out switches in a browser, as a national
//! patient portal would show them (EHDS: the patient sees who accessed
//! their data and may opt out of cross-border exchange).
//!
//! A browser cannot present the patient portal's national client
//! certificate, and the national API trusts nothing else. So this listener
//! serves plain HTTP **on loopback only** (the configuration refuses any
//! other address) and acts as the portal: it serves one static HTML file
//! (`patient_page.html`, plain HTML with a small inline script, no build
//! step, no external resource, a strict Content-Security-Policy that allows
//! exactly its inline script and style by hash) and forwards the page's
//! three calls to this gateway's own national API over mutual TLS with the
//! portal's certificate, verifying the national API's server certificate
//! against the national CA and its CRLs:
//!
//! | page call | national API |
//! | --- | --- |
//! | `GET /api/access-log?patient=system\|value[&count=n][&before=seq]` | `GET /fhir/AuditEvent?patient.identifier=…&_count=n[&_before=seq]` |
//! | `GET /api/opt-outs?patient=system\|value` | `GET /fhir/$cross-border-opt-out?patient.identifier=…` |
//! | `POST /api/opt-outs` (FHIR `Parameters`) | `POST /fhir/$cross-border-opt-out` |
//!
//! The national API answers as it answers the portal (status and FHIR body
//! unchanged). Authenticating the patient is the portal's job and is not
//! done here: the page takes the patient from its address
//! (`/?patient=system|value`) and says on screen that it is a
//! demonstration.
//!
//! The loopback listener still refuses what a browser visiting another site
//! could make it do: requests whose `Host` is not a loopback name (DNS
//! rebinding), a `POST` whose `Origin` is another site, and a body that is
//! not `application/fhir+json` (which a cross-site form cannot send, and a
//! cross-site script cannot send without a CORS preflight this listener
//! never grants). Logs carry the route template and status only, never the
//! patient identifier.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use ehds_fhir::outcome::{Issue, IssueType};
use ehds_transport::{ClientTimeouts, IdentityFiles, TlsIdentity, TrustFiles, TrustStore};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

use crate::StartError;
use crate::config::PatientPageSection;
use crate::edge::AppState;
use crate::edge::respond::FHIR_JSON;
use crate::error::GatewayError;

/// The page: plain HTML, a small inline script and style.
pub(crate) const PAGE_HTML: &str = include_str!("patient_page.html");

/// Largest body the page may post (a `Parameters` of four parameters is a
/// few hundred bytes).
const MAX_POST_BYTES: usize = 16 * 1024;

/// Events per page of the access log unless the page asks for another
/// number.
const DEFAULT_LOG_PAGE: u32 = 10;

/// The patient page's listener, bound, with its client of the national API.
#[derive(Debug)]
pub(crate) struct PatientPage {
    listener: TcpListener,
    proxy: Arc<Proxy>,
}

#[derive(Debug)]
struct Proxy {
    /// Mutual TLS client with the patient portal's certificate.
    client: reqwest::Client,
    /// `https://<national listener>/fhir`.
    national_base: String,
    /// The Content-Security-Policy of the page.
    csp: HeaderValue,
}

impl PatientPage {
    /// Loads the portal's certificate and the national CA, and binds the
    /// loopback listener `addr` ([`crate::config::CheckedConfig`] checked it
    /// is loopback). `national` is the national API's bound address: an
    /// unspecified address (`0.0.0.0`, `[::]`) is called on loopback.
    pub(crate) async fn bind(
        section: &PatientPageSection,
        addr: SocketAddr,
        national: SocketAddr,
    ) -> Result<Self, StartError> {
        if !addr.ip().is_loopback() {
            return Err(StartError::Config(format!(
                "patient_page.listen {addr} is not a loopback address"
            )));
        }
        let identity = TlsIdentity::load(&IdentityFiles {
            cert_chain: section.client_certificate.clone(),
            private_key: section.client_private_key.clone(),
        })?;
        let trust = TrustStore::load(&TrustFiles {
            ca_certs: section.national_cas.clone(),
            crls: section.national_crls.clone(),
        })?;
        // The transport's outbound client: HTTPS only, TLS 1.3, no proxy,
        // no redirects, the server's name checked against its certificate.
        let client = ehds_transport::federation_client(
            &identity,
            &trust,
            ClientTimeouts {
                connect: Duration::from_secs(5),
                request: Duration::from_secs(30),
            },
        )?;
        let national_ip = match national.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let national_base = format!(
            "https://{}/fhir",
            SocketAddr::new(national_ip, national.port())
        );
        let csp = HeaderValue::from_str(&content_security_policy(PAGE_HTML))
            .map_err(|e| StartError::Config(format!("patient page CSP: {e}")))?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: addr.to_string(),
                source,
            })?;
        Ok(Self {
            listener,
            proxy: Arc::new(Proxy {
                client,
                national_base,
                csp,
            }),
        })
    }

    /// The address the page is served on.
    pub(crate) fn local_addr(&self) -> Result<SocketAddr, StartError> {
        self.listener.local_addr().map_err(StartError::Serve)
    }

    /// Serves until `shutdown` completes. `state` gives the national API's
    /// request ids, tracing spans and metrics to the page's requests too.
    pub(crate) async fn run(
        self,
        state: AppState,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let app = router(self.proxy).layer(middleware::from_fn_with_state(
            state,
            crate::edge::observe::observe,
        ));
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(StartError::Serve)
    }
}

fn router(proxy: Arc<Proxy>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/access-log", get(access_log))
        .route("/api/opt-outs", get(opt_outs).post(set_opt_out))
        .fallback(crate::edge::fallback::unknown_route)
        .layer(middleware::from_fn(loopback_only))
        .with_state(proxy)
}

/// The Content-Security-Policy of `html`: nothing but its own inline
/// scripts and styles (by SHA-256, CSP Level 3 §8.3) and calls to this
/// origin; no frames, forms, images or base URL.
fn content_security_policy(html: &str) -> String {
    format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src 'none'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        inline_hashes(html, "script").join(" "),
        inline_hashes(html, "style").join(" "),
    )
}

/// `'sha256-…'` of the content of every `<tag>…</tag>` in `html`.
fn inline_hashes(html: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut hashes = Vec::new();
    let mut rest = html;
    while let Some((_, after)) = rest.split_once(open.as_str()) {
        let Some((content, tail)) = after.split_once(close.as_str()) else {
            break;
        };
        let digest = Sha256::digest(content.as_bytes());
        hashes.push(format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        ));
        rest = tail;
    }
    hashes
}

/// Refuses a `Host` that is not a loopback name or address (a page of
/// another site reaching this listener through DNS rebinding), and a
/// `POST` from another origin.
async fn loopback_only(request: Request, next: Next) -> Result<Response, GatewayError> {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if !is_loopback_host(&host) {
        return Err(GatewayError::Forbidden(
            "the patient page answers on loopback host names only".into(),
        ));
    }
    if request.method() == axum::http::Method::POST
        && let Some(origin) = request.headers().get(header::ORIGIN)
        && origin.as_bytes() != format!("http://{host}").as_bytes()
    {
        return Err(GatewayError::Forbidden(
            "the patient page takes changes from its own page only".into(),
        ));
    }
    Ok(next.run(request).await)
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or("", |(ip, _)| ip),
        None => host.split_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `GET /`: the page.
async fn page(State(proxy): State<Arc<Proxy>>) -> Response {
    let mut response = (StatusCode::OK, PAGE_HTML).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CONTENT_SECURITY_POLICY, proxy.csp.clone());
    private(headers);
    response
}

/// Headers of every page answer: not cached (patient data), not sniffed,
/// not framed, no referrer.
fn private(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

fn bad_query(why: &str) -> GatewayError {
    let mut report = ehds_validation::ValidationReport::default();
    report.push(Issue::error(IssueType::Invalid, why).at("http.query"));
    GatewayError::Invalid(report)
}

/// The page's query of the access log.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogQuery {
    patient: String,
    count: Option<u32>,
    before: Option<u64>,
}

/// The page's query of the opt-outs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatientQuery {
    patient: String,
}

/// `patient.identifier=…` for the national API, re-encoded.
fn patient_parameter(patient: &str) -> String {
    format!(
        "patient.identifier={}",
        ehds_routing::search::percent_encode(patient)
    )
}

/// `GET /api/access-log`.
async fn access_log(
    State(proxy): State<Arc<Proxy>>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Result<Response, GatewayError> {
    let Query(query) = query.map_err(|_| bad_query("expected patient, count and before"))?;
    let mut url = format!(
        "{}/AuditEvent?{}&_count={}",
        proxy.national_base,
        patient_parameter(&query.patient),
        query.count.unwrap_or(DEFAULT_LOG_PAGE)
    );
    if let Some(before) = query.before {
        url.push_str(&format!("&_before={before}"));
    }
    forward(proxy.client.get(url)).await
}

/// `GET /api/opt-outs`.
async fn opt_outs(
    State(proxy): State<Arc<Proxy>>,
    query: Result<Query<PatientQuery>, QueryRejection>,
) -> Result<Response, GatewayError> {
    let Query(query) = query.map_err(|_| bad_query("expected patient"))?;
    let url = format!(
        "{}/$cross-border-opt-out?{}",
        proxy.national_base,
        patient_parameter(&query.patient)
    );
    forward(proxy.client.get(url)).await
}

/// `POST /api/opt-outs`: the page's `Parameters`, as the portal sends them.
async fn set_opt_out(
    State(proxy): State<Arc<Proxy>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, GatewayError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/fhir+json") {
        return Err(GatewayError::UnsupportedMediaType(content_type.to_owned()));
    }
    if body.len() > MAX_POST_BYTES {
        return Err(GatewayError::PayloadTooLarge {
            limit: MAX_POST_BYTES,
        });
    }
    let url = format!("{}/$cross-border-opt-out", proxy.national_base);
    forward(
        proxy
            .client
            .post(url)
            .header(header::CONTENT_TYPE, FHIR_JSON)
            .body(body),
    )
    .await
}

/// Sends the call to the national API and passes its answer on: status and
/// FHIR body unchanged.
async fn forward(request: reqwest::RequestBuilder) -> Result<Response, GatewayError> {
    // Errors are told without the URL: its query holds the patient
    // identifier, and server errors are logged.
    let unavailable =
        |e: reqwest::Error| GatewayError::NationalApiUnavailable(e.without_url().to_string());
    let answer = request.send().await.map_err(unavailable)?;
    let status = answer.status();
    let body = answer.bytes().await.map_err(unavailable)?;
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    private(headers);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_exactly_the_pages_inline_script_and_style() {
        let csp = content_security_policy(PAGE_HTML);
        assert_eq!(inline_hashes(PAGE_HTML, "script").len(), 1, "{csp}");
        assert_eq!(inline_hashes(PAGE_HTML, "style").len(), 1, "{csp}");
        assert!(csp.starts_with("default-src 'none'; script-src 'sha256-"));
        assert!(!csp.contains("unsafe"));
        // Known answer: the hash of a known inline script.
        assert_eq!(
            inline_hashes("<p><script>alert(1)</script></p>", "script"),
            vec!["'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='".to_owned()]
        );
        // Nothing the page loads from elsewhere.
        for external in [
            "src=", "href=", "http://", "https://", "style=\"", "onclick",
        ] {
            assert!(!PAGE_HTML.contains(external), "the page has {external}");
        }
    }

    #[test]
    fn loopback_host_names() {
        for good in [
            "127.0.0.1:8480",
            "127.0.0.1",
            "localhost:8480",
            "LOCALHOST",
            "[::1]:8480",
            "127.1.2.3:1",
        ] {
            assert!(is_loopback_host(good), "{good}");
        }
        for bad in [
            "",
            "evil.example:8480",
            "localhost.evil.example",
            "10.0.0.1:8480",
            "[::]:8480",
            "[::1",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }
}
