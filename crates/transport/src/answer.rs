//! The answers the transport gives itself, before a request reaches the
//! application: 400 to a request whose `Host` header is missing, repeated or
//! invalid (RFC 9112 §3.2; issue 16, defect 7), and 403 to every request of
//! a verified client whose certificate lacks the identity the listener
//! requires (issue 16: a national certificate without an OU). Each is an
//! OperationOutcome (FHIR R4 operationoutcome.html) in
//! `application/fhir+json`.
//!
//! The transport must not know FHIR: the two bodies are fixed texts built
//! here by hand, in the shape the gateway's outcome renderer writes
//! (`resourceType`, one issue with `severity`, `code`, `diagnostics`). Their
//! diagnostics are constants without characters that JSON would escape.

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, HOST};
use http::{HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::Full;

/// A response made by the transport.
pub(crate) type Answer = Response<Full<Bytes>>;

/// The media type of FHIR JSON (FHIR R4 http.html#mime-type).
const FHIR_JSON: &str = "application/fhir+json";

const NO_HOST: &str = "An HTTP/1.1 request must carry a Host header (RFC 9112 section 3.2)";
const MANY_HOSTS: &str = "A request must carry exactly one Host header (RFC 9112 section 3.2)";
const BAD_HOST: &str = "The Host header is not a valid host and optional port (RFC 9112 section 3.2, RFC 9110 section 7.2)";
const NO_IDENTITY: &str = "The client certificate is valid but does not carry the identity this listener requires (subject C, O, OU naming a client kind, CN for a national client; C and CN for an NCP)";

/// The 400 answer to `request` when its `Host` header breaks RFC 9112 §3.2:
/// none on an HTTP/1.1 request, more than one, or one that is not
/// `uri-host [":" port]` (an empty value is allowed, RFC 9110 §7.2).
pub(crate) fn host_refusal<B>(request: &Request<B>) -> Option<Answer> {
    let mut hosts = request.headers().get_all(HOST).iter();
    let problem = match (hosts.next(), hosts.next()) {
        (None, _) => (request.version() == Version::HTTP_11).then_some(NO_HOST),
        (Some(_), Some(_)) => Some(MANY_HOSTS),
        (Some(host), None) => (!valid_host(host.as_bytes())).then_some(BAD_HOST),
    };
    problem.map(|diagnostics| outcome(StatusCode::BAD_REQUEST, "invalid", diagnostics))
}

/// `uri-host [":" port]` (RFC 9110 §7.2 with RFC 3986 §3.2.2 and §3.2.3):
/// an IP literal in brackets or a reg-name (unreserved, percent-encoded and
/// sub-delims characters; an IPv4 address is one), then an optional port of
/// digits. No user information, no path.
fn valid_host(value: &[u8]) -> bool {
    let (host, port) = match value.strip_prefix(b"[") {
        Some(literal) => match literal.iter().position(|&b| b == b']') {
            Some(end) => {
                let (inside, after) = literal.split_at(end);
                let ip_literal = !inside.is_empty()
                    && inside
                        .iter()
                        .all(|&b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.' | b'v' | b'V'));
                if !ip_literal {
                    return false;
                }
                // `after` starts with the `]`.
                match after.get(1..) {
                    Some([]) | None => return true,
                    Some([b':', port @ ..]) => (&b"x"[..], port),
                    Some(_) => return false,
                }
            }
            None => return false,
        },
        None => match value.iter().rposition(|&b| b == b':') {
            Some(colon) => {
                let (host, port) = value.split_at(colon);
                (host, port.get(1..).unwrap_or_default())
            }
            None => (value, &b""[..]),
        },
    };
    let reg_name = host.iter().all(|&b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            )
    });
    reg_name && port.iter().all(u8::is_ascii_digit)
}

/// The 403 answer to every request of a verified client without the
/// identity the listener requires; the connection closes after it.
pub(crate) fn identity_refusal() -> Answer {
    let mut answer = outcome(StatusCode::FORBIDDEN, "forbidden", NO_IDENTITY);
    answer
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    answer
}

/// An OperationOutcome with one error issue.
fn outcome(status: StatusCode, code: &str, diagnostics: &str) -> Answer {
    let body = format!(
        r#"{{"resourceType":"OperationOutcome","issue":[{{"severity":"error","code":"{code}","diagnostics":"{diagnostics}"}}]}}"#
    );
    let mut answer = Response::new(Full::new(Bytes::from(body)));
    *answer.status_mut() = status;
    answer
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    answer
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test")]

    use super::*;

    fn request(version: Version, hosts: &[&str]) -> Request<()> {
        let mut request = Request::builder().uri("/fhir/metadata").version(version);
        for host in hosts {
            request = request.header(HOST, *host);
        }
        request.body(()).unwrap()
    }

    #[test]
    fn host_rules_of_rfc_9112() {
        let refused = |version, hosts: &[&str]| host_refusal(&request(version, hosts)).is_some();
        assert!(refused(Version::HTTP_11, &[]));
        assert!(!refused(Version::HTTP_10, &[]));
        assert!(refused(Version::HTTP_11, &["a.test", "a.test"]));
        assert!(refused(Version::HTTP_10, &["a.test", "b.test"]));
        assert!(refused(Version::HTTP_11, &["user@a.test"]));
        assert!(refused(Version::HTTP_11, &["a.test:port"]));
        assert!(refused(Version::HTTP_11, &["a test"]));
        assert!(!refused(Version::HTTP_11, &["a.test"]));
        assert!(!refused(Version::HTTP_11, &["a.test:8443"]));
        assert!(!refused(Version::HTTP_11, &["127.0.0.1:8443"]));
        assert!(!refused(Version::HTTP_11, &["[::1]:8443"]));
        assert!(!refused(Version::HTTP_11, &[""]));
        assert!(refused(Version::HTTP_11, &["a.test/path"]));
        assert!(refused(Version::HTTP_11, &["[::1"]));
        assert!(refused(Version::HTTP_11, &["[::1]x"]));
        assert!(refused(Version::HTTP_11, &["[::1]:x"]));
    }

    #[test]
    fn answers_are_operation_outcomes() {
        for (answer, status) in [
            (host_refusal(&request(Version::HTTP_11, &[])).unwrap(), 400),
            (identity_refusal(), 403),
        ] {
            assert_eq!(answer.status().as_u16(), status);
            assert_eq!(answer.headers()[CONTENT_TYPE], FHIR_JSON);
            let body = answer.into_body();
            let bytes = futures_bytes(body);
            let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(json["resourceType"], "OperationOutcome");
            assert_eq!(json["issue"][0]["severity"], "error");
        }
    }

    fn futures_bytes(body: Full<Bytes>) -> Bytes {
        use http_body_util::BodyExt;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(body.collect()).unwrap().to_bytes()
    }
}
