//! Typed extractors of the edge:
//!
//! - [`FhirBody`]: a FHIR JSON request body, received: media type and
//!   content coding checked (415), its estimated memory reserved from the memory budget
//!   (503, `super::memory_budget`), read within the size and time limits (413, 408), parsed
//!   losslessly (400). FHIR R4 RESTful API, <http://hl7.org/fhir/R4/http.html#mime-type>.
//! - [`NationalCaller`]: the national system calling, from the verified
//!   client certificate the transport puts on every request of a
//!   mutual-TLS connection.

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use bytes::{Bytes, BytesMut};
use ehds_fhir::ReceivedResource;
use ehds_identifiers::CountryCode;
use ehds_transport::{NationalClientKind, PeerIdentity, VerifiedPeer};
use http_body_util::{BodyExt, Limited};

use super::memory_budget::MemoryBudget;
use super::state::{AppState, Limits};
use crate::error::GatewayError;

/// A FHIR JSON resource received as the request body.
#[derive(Debug)]
pub(crate) struct FhirBody(pub(crate) ReceivedResource);

impl FhirBody {
    /// The resource, refused with 400 unless it is of `expected` type.
    pub(crate) fn of_type(self, expected: &'static str) -> Result<ReceivedResource, GatewayError> {
        if self.0.resource_type() == expected {
            Ok(self.0)
        } else {
            Err(GatewayError::WrongResourceType {
                expected,
                found: self.0.resource_type().to_owned(),
            })
        }
    }
}

impl FromRequest<AppState> for FhirBody {
    type Rejection = GatewayError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        receive_resource(&parts.headers, body, state)
            .await
            .map(Self)
    }
}

/// A FHIR JSON request body, received: media type and content coding
/// checked (415), its memory reserved (503), body read within limits (413,
/// 408), parsed losslessly (400).
pub(crate) async fn receive_resource(
    headers: &HeaderMap,
    body: Body,
    state: &AppState,
) -> Result<ReceivedResource, GatewayError> {
    check_fhir_json_content_type(headers)?;
    check_identity_content_encoding(headers)?;
    let bytes = read_body(headers, body, state.limits, &state.memory_budget).await?;
    Ok(ReceivedResource::parse(bytes)?)
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

/// Accepts a body without content coding: no `Content-Encoding`, or only
/// `identity` (RFC 9110 §8.4). Any other coding (gzip, br, deflate, …) is
/// refused with 415 naming it (RFC 9110 §15.5.16) before the body is read:
/// the gateway keeps the bytes as received and never inflates a body whose
/// decompressed size the body limit would not bound.
fn check_identity_content_encoding(headers: &HeaderMap) -> Result<(), GatewayError> {
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let raw = String::from_utf8_lossy(value.as_bytes());
        let unsupported: Vec<&str> = raw
            .split(',')
            .map(str::trim)
            .filter(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case("identity"))
            .collect();
        if !unsupported.is_empty() {
            return Err(GatewayError::UnsupportedContentEncoding(
                unsupported.join(", "),
            ));
        }
    }
    Ok(())
}

/// Reads the body, refusing one over the limit before reading it when
/// `Content-Length` says so, and as soon as it passes the limit otherwise.
/// Its memory is reserved from `budget` before it is read when
/// `Content-Length` gives its size, and as its bytes arrive otherwise; the
/// bytes are gathered in one buffer of the declared size (no second copy).
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limits: Limits,
    budget: &MemoryBudget,
) -> Result<Bytes, GatewayError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limits.max_body_bytes as u64) {
        return Err(GatewayError::PayloadTooLarge {
            limit: limits.max_body_bytes,
        });
    }
    if let Some(length) = declared {
        budget.reserve(length)?;
    }
    let read = async {
        let mut limited = std::pin::pin!(Limited::new(body, limits.max_body_bytes));
        // Within the limit (checked above): the declared size is allocated once.
        let mut bytes =
            BytesMut::with_capacity(declared.and_then(|n| usize::try_from(n).ok()).unwrap_or(0));
        while let Some(frame) = limited.frame().await {
            let frame = frame.map_err(|error| body_error(&*error, limits))?;
            if let Ok(data) = frame.into_data() {
                if declared.is_none() {
                    budget.reserve(data.len() as u64)?;
                }
                bytes.extend_from_slice(&data);
            }
        }
        Ok(bytes.freeze())
    };
    tokio::time::timeout(limits.body_timeout, read)
        .await
        .unwrap_or(Err(GatewayError::BodyTimeout(
            limits.body_timeout.as_secs(),
        )))
}

/// A failure to read the body: over the limit (413), or the connection's.
fn body_error(error: &(dyn std::error::Error + 'static), limits: Limits) -> GatewayError {
    if error.is::<http_body_util::LengthLimitError>() {
        GatewayError::PayloadTooLarge {
            limit: limits.max_body_bytes,
        }
    } else {
        GatewayError::BodyRead(error.to_string())
    }
}

/// The national system calling, from its verified client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NationalCaller {
    /// The organisation (certificate O).
    pub(crate) organisation: String,
    /// What kind of system it is (certificate OU).
    pub(crate) kind: NationalClientKind,
    /// The client id (certificate CN).
    pub(crate) client_id: String,
}

impl FromRequestParts<AppState> for NationalCaller {
    type Rejection = GatewayError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Self::of(
            parts.extensions.get::<VerifiedPeer>(),
            state.country.as_ref().map(CountryCode::as_str),
        )
    }
}

impl NationalCaller {
    /// The caller of a connection whose verified peer is `peer`, if it is a
    /// national client of this gateway's country (`country`: `None` accepts
    /// any, for a gateway configured without `[ncp]`).
    pub(crate) fn of(
        peer: Option<&VerifiedPeer>,
        country: Option<&str>,
    ) -> Result<Self, GatewayError> {
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
    pub(crate) fn require(
        &self,
        allowed: &[NationalClientKind],
        what: &str,
    ) -> Result<(), GatewayError> {
        if allowed.contains(&self.kind) {
            Ok(())
        } else {
            Err(GatewayError::Forbidden(format!(
                "a {} system may not {what}",
                self.kind.as_str()
            )))
        }
    }

    /// Who reads patient data back at home: the system that sent it
    /// (`sender`, as [`Self::sender`] recorded it), and no other. The NCP
    /// is not the country's health record: a hospital reads its own push
    /// back (to check what was stored); other national systems (a pharmacy,
    /// another hospital, the patient portal) read patients' records through
    /// the national infrastructure, and the portal reaches the gateway only
    /// through the patient's own operations (opt-out, restriction, access
    /// log). Refused with 403.
    pub(crate) fn require_sender(&self, sender: &str) -> Result<(), GatewayError> {
        if self.sender() == sender {
            Ok(())
        } else {
            Err(GatewayError::Forbidden(
                "at home, only the system that sent this resource reads it back; \
                 other national systems read patients' records through the national infrastructure"
                    .into(),
            ))
        }
    }

    /// How the store records the sender: `kind:organisation/client`.
    pub(crate) fn sender(&self) -> String {
        format!(
            "{}:{}/{}",
            self.kind.as_str(),
            self.organisation,
            self.client_id
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

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
    fn content_encodings() {
        let with = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append(
                    header::CONTENT_ENCODING,
                    HeaderValue::from_str(value).unwrap(),
                );
            }
            check_identity_content_encoding(&headers)
        };
        assert!(with(&[]).is_ok());
        assert!(with(&["identity"]).is_ok());
        assert!(with(&["Identity, identity"]).is_ok());
        for (values, named) in [
            (&["gzip"][..], "gzip"),
            (&["br"][..], "br"),
            (&["identity, deflate"][..], "deflate"),
            (&["identity", "gzip, br"][..], "gzip, br"),
        ] {
            match with(values) {
                Err(GatewayError::UnsupportedContentEncoding(found)) => {
                    assert_eq!(found, named, "{values:?}");
                }
                other => panic!("{values:?}: {other:?}"),
            }
        }
    }
}
