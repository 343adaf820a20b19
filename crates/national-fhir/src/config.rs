//! How the gateway reaches a national FHIR server (a service's
//! `[service.national_server]` in the service registry): its base URL, how
//! the gateway authenticates to it (mutual TLS, and OAuth 2.0 client
//! credentials with a private-key JWT), the time budget of an answer, how
//! many requests may be in flight, the circuit breaker, and which
//! interactions the server offers (chained search, `Patient/{id}/$summary`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// A national FHIR server, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NationalServer {
    /// The server's FHIR base URL (`https://fhir.example.be/r4`). `https`
    /// requires `[…national_server.tls]`; plain `http` is accepted only to
    /// a loopback address (a server beside the gateway on the same host,
    /// as the tests run one).
    pub base_url: String,
    /// Mutual TLS towards the server: the gateway's client certificate and
    /// the CA(s) with CRLs the server's certificate must chain to
    /// (`ehds-transport`: TLS 1.3, the URL's host checked against the
    /// certificate, revocation failing closed).
    #[serde(default)]
    pub tls: Option<NationalTls>,
    /// OAuth 2.0 client credentials with a private-key JWT (SMART App
    /// Launch 2.x Backend Services): the gateway asks the server's
    /// authorization server for an access token and sends it as
    /// `Authorization: Bearer` with every request (`crate::oauth`).
    #[serde(default)]
    pub oauth: Option<NationalOAuth>,
    /// Seconds to connect (TCP + TLS).
    #[serde(default = "default_connect_timeout_secs")]
    pub connect_timeout_secs: u64,
    /// Seconds the whole answer may take, every call to the server
    /// included (then 504).
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Requests in flight to the server at most; more wait their turn
    /// within their time budget.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: usize,
    /// Failures in a row (unreachable, too slow, 5xx) that open the
    /// circuit breaker: calls then fail at once (503) until `breaker_open_secs`
    /// have passed and one probe call succeeds.
    #[serde(default = "default_breaker_failures")]
    pub breaker_failures: u32,
    /// Seconds the breaker stays open before a probe is let through.
    #[serde(default = "default_breaker_open_secs")]
    pub breaker_open_secs: u64,
    /// Whether the server supports the chained search
    /// `DocumentReference?patient.identifier=` (FHIR R4 search.html §3.1.1.5.4.1);
    /// without it the patient's id is searched first (`Patient?identifier=`)
    /// and the documents by `patient=Patient/{id}`.
    #[serde(default = "default_true")]
    pub chained_search: bool,
    /// How a document is retrieved: `bundle` (`Bundle/{id}`, the document
    /// the DocumentReference points to) or `summary` (`Patient/{id}/$summary`,
    /// the IPS operation generating the patient summary on demand).
    #[serde(default)]
    pub retrieval: Retrieval,
    /// Results a search asks for a page (`_count`, FHIR R4
    /// search.html#count); the server may send fewer.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Pages of one search followed at most (`next` links, FHIR R4
    /// http.html#paging); a list longer than that is answered incomplete,
    /// with a warning saying so.
    #[serde(default = "default_max_pages")]
    pub max_pages: usize,
    /// The operator's cache of this server's answers (`crate::cache`):
    /// off unless this table is written; bounded in entries and bytes,
    /// each answer kept `ttl_secs` at most, never a failure or a refusal.
    #[serde(default)]
    pub cache: Option<crate::NationalCache>,
}

/// How a document is retrieved from the national server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Retrieval {
    /// `GET Bundle/{id}`: the document stored on the server.
    #[default]
    Bundle,
    /// `GET Patient/{id}/$summary` (IPS 1.1 OperationDefinition
    /// `summary`): generated on demand, one per patient.
    Summary,
}

/// `[…national_server.tls]`: TLS towards the national server: the server
/// authenticated by its CA, the gateway by its client certificate: mutual
/// TLS always, as everywhere (`[…national_server.oauth]` adds a SMART
/// Backend Services access token on top, never instead).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NationalTls {
    /// The gateway's client certificate chain (PEM), of the national PKI;
    /// required over https (`NationalServer::check`).
    #[serde(default)]
    pub client_certificate: Option<PathBuf>,
    /// Its private key (PEM); with `client_certificate` only.
    #[serde(default)]
    pub client_private_key: Option<PathBuf>,
    /// The CA certificate(s) the server's certificate must chain to.
    pub cas: Vec<PathBuf>,
    /// A current CRL for every CA above (revocation fails closed).
    pub crls: Vec<PathBuf>,
}

/// `[…national_server.oauth]`: OAuth 2.0 client credentials (RFC 6749
/// §4.4) with the client authenticated by a JWT it signs with its private
/// key (RFC 7523 §2.2, RFC 7521 §4.2), as SMART App Launch 2.x "Backend
/// Services" asks of system clients
/// (<https://hl7.org/fhir/smart-app-launch/backend-services.html>).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NationalOAuth {
    /// The authorization server's token endpoint. Without it, the
    /// `token_endpoint` of the national server's
    /// `{base_url}/.well-known/smart-configuration` (SMART App Launch 2.x
    /// §"Conformance"), read when the first token is needed. Either way it
    /// is reached with the same client as the FHIR server: `https` when the
    /// base URL is (the same CAs and CRLs, the same client certificate),
    /// plain `http` only to a loopback address when the base URL is.
    #[serde(default)]
    pub token_url: Option<String>,
    /// The client id the national authorization server registered for
    /// the gateway (the assertion's `iss` and `sub`).
    pub client_id: String,
    /// The private key the assertions are signed with: PKCS#8 PEM
    /// (`-----BEGIN PRIVATE KEY-----`), P-384 for ES384, RSA for RS384.
    pub private_key: PathBuf,
    /// The signing algorithm: SMART Backend Services requires servers to
    /// support ES384 and RS384.
    #[serde(default)]
    pub algorithm: JwtAlgorithm,
    /// The key's id in the JWK Set registered for the client (the
    /// assertion's `kid` header).
    pub kid: String,
    /// The scopes asked for, space-separated (SMART v2 system scopes, e.g.
    /// `system/Patient.rs system/DocumentReference.rs system/Bundle.rs`).
    pub scope: String,
}

/// The JWS algorithm of the client assertion (RFC 7518 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum JwtAlgorithm {
    /// ECDSA with P-384 and SHA-384.
    #[default]
    #[serde(rename = "ES384")]
    Es384,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    #[serde(rename = "RS384")]
    Rs384,
}

impl JwtAlgorithm {
    /// The `alg` header value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Es384 => "ES384",
            Self::Rs384 => "RS384",
        }
    }
}

impl NationalOAuth {
    /// The configured token endpoint (`None`: discovered), checked against
    /// the national server's checked `base` ([`check_token_url`]); client
    /// id, key id and scopes present, the scopes as RFC 6749 §3.3 writes
    /// them.
    pub fn check(&self, base: &url::Url) -> Result<Option<url::Url>, String> {
        let url = match &self.token_url {
            Some(text) => Some(check_token_url(text, base).map_err(|e| format!("oauth.{e}"))?),
            None => None,
        };
        if self.client_id.trim().is_empty() || self.kid.trim().is_empty() {
            return Err("oauth.client_id and oauth.kid must not be empty".into());
        }
        // scope = scope-token *( SP scope-token ),
        // scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
        let scope_token = |t: &str| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
        };
        if !self.scope.split(' ').all(scope_token) {
            return Err(format!(
                "oauth.scope {:?}: scope tokens separated by single spaces (RFC 6749 §3.3)",
                self.scope
            ));
        }
        Ok(url)
    }
}

/// A token endpoint (configured or discovered), checked against the
/// national server's checked `base`: the same scheme (one client reaches
/// both: `https` with its trust, or plain `http` to a loopback address), no
/// fragment or user information (RFC 6749 §3.2).
pub(crate) fn check_token_url(text: &str, base: &url::Url) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| format!("token_url {text:?}: {e}"))?;
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "token_url {text:?}: no fragment or user information"
        ));
    }
    match url.scheme() {
        "https" if base.scheme() == "https" => Ok(url),
        "http" if base.scheme() == "http" && is_loopback(&url) => Ok(url),
        "http" => Err(format!(
            "token_url {text:?}: plain http only to a loopback address, beside a national \
             server on loopback; elsewhere https with the national server's trust"
        )),
        "https" => Err(
            "token_url: https needs an https base_url with [tls] (the same client reaches both)"
                .into(),
        ),
        scheme => Err(format!("token_url: scheme {scheme:?} is not https")),
    }
}

fn default_connect_timeout_secs() -> u64 {
    5
}
fn default_timeout_secs() -> u64 {
    10
}
fn default_max_concurrent() -> usize {
    16
}
fn default_breaker_failures() -> u32 {
    5
}
fn default_breaker_open_secs() -> u64 {
    30
}
fn default_page_size() -> u32 {
    100
}
fn default_max_pages() -> usize {
    10
}
fn default_true() -> bool {
    true
}

impl NationalServer {
    /// The base URL, checked: `https` with `tls`, or `http` to a loopback
    /// address without it; no query, no fragment, no user information.
    pub fn check(&self) -> Result<url::Url, String> {
        let mut url = url::Url::parse(&self.base_url)
            .map_err(|e| format!("base_url {:?}: {e}", self.base_url))?;
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err(format!(
                "base_url {:?}: no query, fragment or user information",
                self.base_url
            ));
        }
        match (url.scheme(), &self.tls) {
            ("https", Some(tls)) => {
                if tls.cas.is_empty() || tls.crls.is_empty() {
                    return Err(
                        "tls.cas and tls.crls must name the national server's CA and its CRL"
                            .into(),
                    );
                }
                // Mutual TLS as everywhere: the gateway always presents
                // its client certificate; [oauth] adds an access token on
                // top, never replaces it.
                match (&tls.client_certificate, &tls.client_private_key) {
                    (Some(_), Some(_)) => {}
                    (None, None) => {
                        return Err("the national server is reached over mutual TLS: \
                             tls.client_certificate and tls.client_private_key are required \
                             (with [oauth] too)"
                            .into());
                    }
                    _ => {
                        return Err(
                            "tls.client_certificate and tls.client_private_key go together".into(),
                        );
                    }
                }
            }
            ("https", None) => {
                return Err(
                    "an https national server needs [tls] (the server's CA and CRL, and the \
                     gateway's client certificate unless [oauth] authenticates it)"
                        .into(),
                );
            }
            ("http", None) if is_loopback(&url) => {}
            ("http", None) => {
                return Err(format!(
                    "base_url {:?}: plain http only to a loopback address (127.0.0.1, [::1]); \
                     a national server elsewhere is reached over https with mutual TLS",
                    self.base_url
                ));
            }
            ("http", Some(_)) => return Err("[tls] needs an https base_url".into()),
            (scheme, _) => return Err(format!("base_url: scheme {scheme:?} is not https")),
        }
        if self.connect_timeout_secs == 0 || self.timeout_secs == 0 {
            return Err("timeouts must be greater than 0".into());
        }
        if self.max_concurrent == 0 {
            return Err("max_concurrent must be greater than 0".into());
        }
        if self.page_size == 0 || self.max_pages == 0 {
            return Err("page_size and max_pages must be greater than 0".into());
        }
        if self.breaker_failures == 0 || self.breaker_open_secs == 0 {
            return Err("breaker_failures and breaker_open_secs must be greater than 0".into());
        }
        if let Some(oauth) = &self.oauth {
            oauth.check(&url)?;
        }
        if let Some(cache) = &self.cache {
            cache.check()?;
        }
        // Relative references are joined onto the base: it ends with '/'.
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(url)
    }

    /// The time budget of one answer.
    pub fn budget(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        // A name may resolve anywhere: only addresses are loopback.
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn server(text: &str) -> Result<url::Url, String> {
        toml::from_str::<NationalServer>(text)
            .map_err(|e| e.to_string())?
            .check()
    }

    #[test]
    fn https_needs_mutual_tls_and_http_loopback_only() {
        let tls = "[tls]\nclient_certificate = \"c.pem\"\nclient_private_key = \"k.pem\"\n\
                   cas = [\"ca.pem\"]\ncrls = [\"ca.crl.pem\"]\n";
        let url = server(&format!("base_url = \"https://fhir.example.be/r4\"\n{tls}")).unwrap();
        assert_eq!(url.as_str(), "https://fhir.example.be/r4/");
        assert!(server("base_url = \"http://127.0.0.1:8080/\"").is_ok());
        assert!(server("base_url = \"http://[::1]:8080\"").is_ok());
        for bad in [
            "base_url = \"https://fhir.example.be/r4\"".to_owned(),
            "base_url = \"http://fhir.example.be/r4\"".to_owned(),
            "base_url = \"http://localhost:8080\"".to_owned(),
            "base_url = \"http://10.0.0.1:8080\"".to_owned(),
            format!("base_url = \"http://127.0.0.1:8080\"\n{tls}"),
            "base_url = \"ftp://127.0.0.1/\"".to_owned(),
            "base_url = \"https://fhir.example.be/?x=1\"".to_owned(),
            "base_url = \"http://127.0.0.1:1\"\ntimeout_secs = 0".to_owned(),
            "base_url = \"http://127.0.0.1:1\"\nmax_concurrent = 0".to_owned(),
            "base_url = \"http://127.0.0.1:1\"\nmax_pages = 0".to_owned(),
            "base_url = \"http://127.0.0.1:1\"\npage_size = 0".to_owned(),
            "base_url = \"http://127.0.0.1:1\"\nretrieval = \"everything\"".to_owned(),
            "base_url = \"http://127.0.0.1:1\"\ninsecure = true".to_owned(),
        ] {
            assert!(server(&bad).is_err(), "accepted: {bad}");
        }
    }

    #[test]
    fn https_is_always_mutual_tls_oauth_or_not() {
        let https = "base_url = \"https://fhir.example.be/r4\"\n";
        let server_only = "[tls]\ncas = [\"ca.pem\"]\ncrls = [\"ca.crl.pem\"]\n";
        let oauth = "[oauth]\nclient_id = \"ncp-lu\"\nprivate_key = \"jwt.pem\"\nkid = \"k1\"\n\
                     scope = \"system/*.rs\"\n";
        let refused = server(&format!("{https}{server_only}{oauth}")).unwrap_err();
        assert!(refused.contains("mutual TLS"), "{refused}");
        let refused = server(&format!("{https}{server_only}")).unwrap_err();
        assert!(refused.contains("mutual TLS"), "{refused}");
        let half = format!("{https}{server_only}client_certificate = \"c.pem\"\n{oauth}");
        assert!(server(&half).unwrap_err().contains("go together"));
        // The server is always authenticated: no [tls], no https.
        assert!(server(&format!("{https}{oauth}")).is_err());
    }

    #[test]
    fn the_token_endpoint_is_reached_as_the_server_is() {
        let tls = "[tls]\nclient_certificate = \"c.pem\"\nclient_private_key = \"k.pem\"\n\
                   cas = [\"ca.pem\"]\ncrls = [\"ca.crl.pem\"]\n";
        let oauth = |url: &str, rest: &str| {
            format!(
                "[oauth]\ntoken_url = \"{url}\"\nclient_id = \"ncp-lu\"\n\
                 private_key = \"jwt.pem\"\nkid = \"k1\"\n{rest}"
            )
        };
        let scope = "scope = \"system/Patient.rs system/*.rs\"\n";
        let https = "base_url = \"https://fhir.example.be/r4\"\n";
        let http = "base_url = \"http://127.0.0.1:8080/\"\n";
        let ok = [
            format!(
                "{https}{tls}{}",
                oauth("https://auth.example.be/token", scope)
            ),
            format!(
                "{https}{tls}{}",
                oauth("https://auth.example.be/token?realm=x", scope)
            ),
            format!("{http}{}", oauth("http://127.0.0.1:9000/token", scope)),
            format!(
                "{http}{}",
                oauth(
                    "http://[::1]:9000/token",
                    &format!("{scope}algorithm = \"RS384\"\n")
                )
            ),
            // Discovered from the server's .well-known/smart-configuration.
            format!(
                "{http}[oauth]\nclient_id = \"ncp-lu\"\nprivate_key = \"jwt.pem\"\nkid = \"k1\"\n{scope}"
            ),
        ];
        for good in &ok {
            assert!(server(good).is_ok(), "refused: {good}: {:?}", server(good));
        }
        let parsed: NationalServer = toml::from_str(&ok[0]).unwrap();
        assert_eq!(parsed.oauth.unwrap().algorithm, JwtAlgorithm::Es384);
        for bad in [
            format!(
                "{https}{tls}{}",
                oauth("http://127.0.0.1:9000/token", scope)
            ),
            format!("{http}{}", oauth("https://auth.example.be/token", scope)),
            format!("{http}{}", oauth("http://auth.example.be/token", scope)),
            format!("{http}{}", oauth("http://127.0.0.1:9000/token#x", scope)),
            format!("{http}{}", oauth("http://u:p@127.0.0.1:9000/token", scope)),
            format!(
                "{http}{}",
                oauth("http://127.0.0.1:9000/token", "scope = \"a  b\"\n")
            ),
            format!(
                "{http}{}",
                oauth("http://127.0.0.1:9000/token", "scope = \"a\\\"b\"\n")
            ),
            format!(
                "{http}{}",
                oauth("http://127.0.0.1:9000/token", "scope = \"\"\n")
            ),
            format!(
                "{http}{}",
                oauth(
                    "http://127.0.0.1:9000/token",
                    &format!("{scope}algorithm = \"HS256\"\n")
                )
            ),
            format!("{http}{}", oauth("http://127.0.0.1:9000/token", "")),
            format!(
                "{http}[oauth]\ntoken_url = \"http://127.0.0.1:9000/token\"\nclient_id = \"\"\n\
                 private_key = \"jwt.pem\"\nkid = \"k1\"\n{scope}"
            ),
        ] {
            assert!(server(&bad).is_err(), "accepted: {bad}");
        }
    }
}
