//! OCSP (RFC 6960) for certificates that name a responder in their
//! Authority Information Access extension (RFC 5280 §4.2.2.1), on top of the
//! CRL check that always applies.
//!
//! Policy (no option disables it): a certificate with an OCSP URL is
//! accepted only with a `good` response that verifies against its issuer
//! (signed by the issuer itself or by a responder certificate the issuer
//! delegated with EKU OCSPSigning, RFC 6960 §4.2.2.2) and is current
//! (thisUpdate not in the future, nextUpdate not past, with a clock-skew
//! allowance, RFC 6960 §4.2.2.1 and §3.2). `revoked`, `unknown`, an
//! unreachable responder, an error status, a bad signature or a stale
//! response all refuse (fail closed). Verdicts are cached per (issuer,
//! serial) until the response's nextUpdate; a response without nextUpdate
//! is used once and not cached.
//!
//! Requests go over HTTP POST (RFC 6960 Appendix A.1); the response is
//! signed, so HTTP is the norm. Only `http://` URLs are followed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openssl::hash::MessageDigest;
use openssl::ocsp::{
    OcspCertId, OcspCertStatus, OcspFlag, OcspRequest, OcspResponse, OcspResponseStatus,
};
use openssl::stack::Stack;
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::OID_PKIX_ACCESS_DESCRIPTOR_OCSP;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::TransportError;

/// Largest OCSP response read (a response for one certificate is ~1-2 KiB).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Limits of the OCSP checker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OcspOptions {
    /// Connect plus response time for one OCSP request (default 5 s).
    pub timeout: Duration,
    /// Allowance for clock skew on thisUpdate and nextUpdate (default 5 min).
    pub max_clock_skew: Duration,
    /// Cached verdicts kept at most; expired ones are dropped first
    /// (default 10 000).
    pub max_cache_entries: usize,
}

impl Default for OcspOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            max_clock_skew: Duration::from_secs(300),
            max_cache_entries: 10_000,
        }
    }
}

/// The OCSP verdict on one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcspVerdict {
    /// The certificate names no OCSP responder: CRLs alone decide.
    NotApplicable,
    /// The responder says `good`, valid until `next_update` (if given).
    Good {
        /// The response's nextUpdate.
        next_update: Option<OffsetDateTime>,
    },
    /// The responder says `revoked`.
    Revoked,
}

impl OcspVerdict {
    /// Whether the certificate may be used.
    pub fn is_acceptable(&self) -> bool {
        !matches!(self, Self::Revoked)
    }
}

/// Checks certificates against their OCSP responders, with a cache. Cheap
/// to clone (shared state).
#[derive(Clone)]
pub struct OcspChecker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for OcspChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OcspChecker")
            .field("options", &self.inner.options)
            .field("cached", &self.cached())
            .finish()
    }
}

struct Inner {
    options: OcspOptions,
    http: Result<reqwest::Client, String>,
    cache: Mutex<HashMap<CacheKey, Cached>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    issuer_sha256: [u8; 32],
    serial: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Cached {
    verdict: OcspVerdict,
    until: OffsetDateTime,
}

impl Default for OcspChecker {
    fn default() -> Self {
        Self::new(OcspOptions::default())
    }
}

impl OcspChecker {
    /// A checker with an empty cache.
    pub fn new(options: OcspOptions) -> Self {
        // An HTTP-only client: rustls with *ring* and no roots, so an https
        // responder cannot be reached (refused before that anyway).
        let http = rustls::ClientConfig::builder_with_provider(crate::crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())
            .and_then(|builder| {
                let config = builder
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth();
                reqwest::Client::builder()
                    .use_preconfigured_tls(config)
                    .no_proxy()
                    .redirect(reqwest::redirect::Policy::none())
                    .connect_timeout(options.timeout)
                    .timeout(options.timeout)
                    .build()
                    .map_err(|e| e.to_string())
            });
        Self {
            inner: Arc::new(Inner {
                options,
                http,
                cache: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// How many verdicts are cached.
    pub fn cached(&self) -> usize {
        self.inner.cache.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// The OCSP responder URL of a certificate (DER), if it names one.
    pub fn responder_url(cert_der: &[u8]) -> Result<Option<String>, TransportError> {
        let (_, cert) = X509Certificate::from_der(cert_der)
            .map_err(|e| TransportError::Ocsp(format!("unparsable certificate: {e}")))?;
        for ext in cert.extensions() {
            if let ParsedExtension::AuthorityInfoAccess(aia) = ext.parsed_extension() {
                for desc in &aia.accessdescs {
                    if desc.access_method == OID_PKIX_ACCESS_DESCRIPTOR_OCSP
                        && let GeneralName::URI(uri) = desc.access_location
                    {
                        return Ok(Some(uri.to_owned()));
                    }
                }
            }
        }
        Ok(None)
    }

    /// The verdict on `cert_der` issued by `issuer_der` (both DER): from the
    /// cache while its response is current, else from the responder. An
    /// `Err` means the status could not be established: refuse.
    pub async fn check(
        &self,
        cert_der: &[u8],
        issuer_der: &[u8],
    ) -> Result<OcspVerdict, TransportError> {
        let Some(url) = Self::responder_url(cert_der)? else {
            return Ok(OcspVerdict::NotApplicable);
        };
        let (_, parsed) = X509Certificate::from_der(cert_der)
            .map_err(|e| TransportError::Ocsp(format!("unparsable certificate: {e}")))?;
        let key = CacheKey {
            issuer_sha256: Sha256::digest(issuer_der).into(),
            serial: parsed.raw_serial().to_vec(),
        };
        let now = OffsetDateTime::now_utc();
        if let Some(cached) = self.lookup(&key, now) {
            return Ok(cached);
        }
        if !url.starts_with("http://") {
            return Err(TransportError::Ocsp(format!(
                "responder URL {url} is not http://"
            )));
        }
        let subject = X509::from_der(cert_der).map_err(ocsp_error)?;
        let issuer = X509::from_der(issuer_der).map_err(ocsp_error)?;
        let request = {
            let id = OcspCertId::from_cert(MessageDigest::sha1(), &subject, &issuer)
                .map_err(ocsp_error)?;
            let mut request = OcspRequest::new().map_err(ocsp_error)?;
            request.add_id(id).map_err(ocsp_error)?;
            request.to_der().map_err(ocsp_error)?
        };
        let body = self.fetch(&url, request).await?;
        let (verdict, next_update) = self.verify(&body, &subject, &issuer)?;
        if let Some(until) = next_update {
            self.store(key, Cached { verdict, until }, now);
        }
        Ok(verdict)
    }

    fn lookup(&self, key: &CacheKey, now: OffsetDateTime) -> Option<OcspVerdict> {
        let cache = self.inner.cache.lock().ok()?;
        cache.get(key).filter(|c| c.until > now).map(|c| c.verdict)
    }

    fn store(&self, key: CacheKey, value: Cached, now: OffsetDateTime) {
        if let Ok(mut cache) = self.inner.cache.lock() {
            if cache.len() >= self.inner.options.max_cache_entries {
                cache.retain(|_, c| c.until > now);
            }
            if cache.len() >= self.inner.options.max_cache_entries {
                cache.clear();
            }
            cache.insert(key, value);
        }
    }

    async fn fetch(&self, url: &str, request: Vec<u8>) -> Result<Vec<u8>, TransportError> {
        let http = self
            .inner
            .http
            .as_ref()
            .map_err(|e| TransportError::Ocsp(format!("no HTTP client: {e}")))?;
        let mut response = http
            .post(url)
            .header("content-type", "application/ocsp-request")
            .body(request)
            .send()
            .await
            .map_err(|e| TransportError::Ocsp(format!("responder {url}: {}", chain(&e))))?;
        if !response.status().is_success() {
            return Err(TransportError::Ocsp(format!(
                "responder {url} answered HTTP {}",
                response.status()
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| TransportError::Ocsp(format!("responder {url}: {e}")))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_RESPONSE_BYTES {
                return Err(TransportError::Ocsp(format!(
                    "responder {url}: response larger than {MAX_RESPONSE_BYTES} bytes"
                )));
            }
        }
        Ok(body)
    }

    fn verify(
        &self,
        body: &[u8],
        subject: &X509,
        issuer: &X509,
    ) -> Result<(OcspVerdict, Option<OffsetDateTime>), TransportError> {
        let response = OcspResponse::from_der(body).map_err(ocsp_error)?;
        if response.status() != OcspResponseStatus::SUCCESSFUL {
            return Err(TransportError::Ocsp(format!(
                "responder status {}",
                response.status().as_raw()
            )));
        }
        let basic = response.basic().map_err(ocsp_error)?;
        // The issuer is the one trust anchor: the response must be signed by
        // it or by a responder certificate it issued for OCSP signing.
        let mut store = X509StoreBuilder::new().map_err(ocsp_error)?;
        store.add_cert(issuer.clone()).map_err(ocsp_error)?;
        let store = store.build();
        let mut certs = Stack::new().map_err(ocsp_error)?;
        certs.push(issuer.clone()).map_err(ocsp_error)?;
        basic
            .verify(&certs, &store, OcspFlag::empty())
            .map_err(|e| TransportError::Ocsp(format!("response signature: {e}")))?;
        let id =
            OcspCertId::from_cert(MessageDigest::sha1(), subject, issuer).map_err(ocsp_error)?;
        let status = basic
            .find_status(&id)
            .ok_or_else(|| TransportError::Ocsp("no status for the certificate".into()))?;
        let skew = u32::try_from(self.inner.options.max_clock_skew.as_secs()).unwrap_or(300);
        status
            .check_validity(skew, None)
            .map_err(|e| TransportError::Ocsp(format!("response not current: {e}")))?;
        let next_update = match status.next_update() {
            Some(t) => Some(parse_asn1_time(&t.to_string())?),
            None => None,
        };
        let verdict = if status.status == OcspCertStatus::GOOD {
            OcspVerdict::Good { next_update }
        } else if status.status == OcspCertStatus::REVOKED {
            OcspVerdict::Revoked
        } else {
            return Err(TransportError::Ocsp("status unknown".into()));
        };
        Ok((verdict, next_update))
    }
}

/// An error and its sources, `: `-separated.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

fn ocsp_error(e: openssl::error::ErrorStack) -> TransportError {
    TransportError::Ocsp(e.to_string())
}

/// OpenSSL's printed form of an ASN.1 time, `Nov 24 19:16:41 2027 GMT`.
fn parse_asn1_time(text: &str) -> Result<OffsetDateTime, TransportError> {
    let format = time::macros::format_description!(
        "[month repr:short] [day padding:space] [hour]:[minute]:[second] [year] GMT"
    );
    time::PrimitiveDateTime::parse(text.trim(), format)
        .map(|t| t.assume_utc())
        .map_err(|e| TransportError::Ocsp(format!("nextUpdate {text:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openssl_time_text_parses() {
        let t = parse_asn1_time("Nov  4 09:06:41 2027 GMT").unwrap();
        assert_eq!(
            (t.year(), u8::from(t.month()), t.day(), t.hour()),
            (2027, 11, 4, 9)
        );
        assert!(parse_asn1_time("error").is_err());
    }
}
