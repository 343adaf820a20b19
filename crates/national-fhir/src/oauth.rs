//! OAuth 2.0 client credentials with a private-key JWT towards a national
//! FHIR server's authorization server, as SMART App Launch 2.x "Backend
//! Services" asks of system clients
//! (<https://hl7.org/fhir/smart-app-launch/backend-services.html>): the
//! gateway signs a fresh client assertion for each token request (RFC 7523
//! §2.2 and §3, RFC 7521 §4.2; SMART: `iss` = `sub` = the client id, `aud`
//! = the token endpoint, `exp` at most five minutes ahead, a unique `jti`,
//! the key's `kid` in the header), posts the client credentials grant (RFC
//! 6749 §4.4.2) to the token endpoint, keeps the access token (§5.1) until
//! shortly before its `expires_in`, sends it as `Authorization: Bearer`
//! (RFC 6750 §2.1) and, when the FHIR server answers 401 (RFC 6750 §3.1,
//! the token expired or was revoked early), asks for a new one once. The
//! token endpoint is configured, or read from the national server's
//! `.well-known/smart-configuration` (SMART App Launch 2.x, "Conformance").
//!
//! The access token and the assertion never reach a log: their `Debug` is
//! redacted, the header is marked sensitive, and a refusal is told by its
//! OAuth error code only.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{
    ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA384, RsaKeyPair,
};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use tokio::sync::{Mutex, OnceCell};
use tokio::time::Instant;

use crate::NationalError;
use crate::config::{JwtAlgorithm, NationalOAuth, check_token_url};
use crate::http::{Answer, Http, Request};

/// How far ahead a client assertion's `exp` is: SMART Backend Services
/// asks for no more than five minutes.
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(300);

/// How long before its `expires_in` an access token is replaced (at most;
/// half its lifetime for a short-lived one), so that it does not expire on
/// its way to the server.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30);

/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The largest token response read (a token response is a few kilobytes).
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;

/// The client of one national server's authorization server, with the
/// access token it holds.
pub(crate) struct OAuthClient {
    /// The national server's base URL (its SMART configuration is there).
    base: url::Url,
    /// The token endpoint configured, or found in the SMART configuration
    /// when the first token was needed.
    endpoint: OnceCell<Endpoint>,
    client_id: String,
    scope: String,
    kid: String,
    key: SigningKey,
    rng: SystemRandom,
    cache: Mutex<Option<Cached>>,
}

/// A token endpoint: where to post, and its URL as written (configured or
/// in the SMART configuration), the assertion's `aud`.
#[derive(Debug, Clone)]
struct Endpoint {
    url: url::Url,
    audience: String,
}

enum SigningKey {
    Es384(EcdsaKeyPair),
    Rs384(RsaKeyPair),
}

/// An access token (RFC 6749 §1.4): a secret, never shown.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct AccessToken(Arc<str>);

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

/// The token held, and when it is to be replaced.
struct Cached {
    token: AccessToken,
    renew_at: Instant,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("token_url", &self.endpoint.get().map(|e| e.url.as_str()))
            .field("client_id", &self.client_id)
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm().name())
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl OAuthClient {
    /// The client of `oauth` beside the national server at `base` (checked;
    /// the private key loaded now and checked to be of the algorithm's
    /// kind).
    pub(crate) fn load(oauth: &NationalOAuth, base: &url::Url) -> Result<Self, NationalError> {
        let configured = oauth.check(base).map_err(NationalError::Credentials)?;
        let key_error = |what: String| {
            NationalError::Credentials(format!(
                "private key {}: {what}",
                oauth.private_key.display()
            ))
        };
        let der = PrivatePkcs8KeyDer::from_pem_file(&oauth.private_key)
            .map_err(|e| key_error(format!("not a PKCS#8 PEM private key ({e:?})")))?;
        let rng = SystemRandom::new();
        let key = match oauth.algorithm {
            JwtAlgorithm::Es384 => SigningKey::Es384(
                EcdsaKeyPair::from_pkcs8(
                    &ECDSA_P384_SHA384_FIXED_SIGNING,
                    der.secret_pkcs8_der(),
                    &rng,
                )
                .map_err(|e| key_error(format!("not a P-384 key for ES384 ({e})")))?,
            ),
            JwtAlgorithm::Rs384 => SigningKey::Rs384(
                RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
                    .map_err(|e| key_error(format!("not an RSA key for RS384 ({e})")))?,
            ),
        };
        let endpoint = match (configured, &oauth.token_url) {
            (Some(url), Some(audience)) => OnceCell::new_with(Some(Endpoint {
                url,
                audience: audience.clone(),
            })),
            _ => OnceCell::new(),
        };
        Ok(Self {
            base: base.clone(),
            endpoint,
            client_id: oauth.client_id.clone(),
            scope: oauth.scope.clone(),
            kid: oauth.kid.clone(),
            key,
            rng,
            cache: Mutex::new(None),
        })
    }

    fn algorithm(&self) -> JwtAlgorithm {
        match self.key {
            SigningKey::Es384(_) => JwtAlgorithm::Es384,
            SigningKey::Rs384(_) => JwtAlgorithm::Rs384,
        }
    }

    /// Sends `request` to `url` with the access token; if the server
    /// answers 401, forgets that token and sends it once more with a new
    /// one (timeouts are `http`'s, within its budget).
    pub(crate) async fn send(
        &self,
        http: &Http,
        url: url::Url,
        request: Request,
    ) -> Result<Answer, NationalError> {
        let token = self.token(http).await?;
        let answer = http
            .send(url.clone(), request.clone(), Some(&token.0))
            .await?;
        if answer.status != 401 {
            return Ok(answer);
        }
        self.forget(&token).await;
        tracing::info!("national server refused the access token (401): asking for a new one");
        let token = self.token(http).await?;
        let answer = http.send(url, request, Some(&token.0)).await?;
        if answer.status == 401 {
            self.forget(&token).await;
        }
        Ok(answer)
    }

    /// The access token held, or a new one from the token endpoint.
    pub(crate) async fn token(&self, http: &Http) -> Result<AccessToken, NationalError> {
        self.held_or(|| async {
            let endpoint = self
                .endpoint
                .get_or_try_init(|| self.discover(http))
                .await?;
            self.fetch(http, endpoint).await
        })
        .await
    }

    /// The token endpoint of the national server's SMART configuration
    /// (`GET {base}/.well-known/smart-configuration`, SMART App Launch 2.x
    /// "Conformance"): its `token_endpoint`, checked as a configured one
    /// is, where `private_key_jwt` is offered (when the document says).
    async fn discover(&self, http: &Http) -> Result<Endpoint, NationalError> {
        let url = self
            .base
            .join(".well-known/smart-configuration")
            .map_err(|e| NationalError::Credentials(e.to_string()))?;
        let answer = http.send(url, Request::GetJson, None).await?;
        let status = answer.status;
        if status >= 500 {
            return Err(NationalError::Status(status));
        }
        let body = answer.body;
        let unusable = |why: &str| {
            NationalError::Credentials(format!(
                "no token endpoint in the national server's SMART configuration: {why}"
            ))
        };
        if !(200..300).contains(&status) {
            return Err(unusable(&format!("HTTP {status}")));
        }
        let document: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| unusable("not JSON"))?;
        let text = document
            .get("token_endpoint")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| unusable("no token_endpoint"))?;
        if let Some(methods) = document
            .get("token_endpoint_auth_methods_supported")
            .and_then(serde_json::Value::as_array)
            && !methods.iter().any(|m| m == "private_key_jwt")
        {
            return Err(unusable("private_key_jwt is not offered"));
        }
        let url = check_token_url(text, &self.base).map_err(|e| unusable(&e))?;
        tracing::info!(token_endpoint = %url, "national server: token endpoint discovered");
        Ok(Endpoint {
            url,
            audience: text.to_owned(),
        })
    }

    /// The token held while it is fresh, else the one `fetch` gets (kept
    /// until [`RENEW_BEFORE`] its lifetime ends, counted from before it was
    /// asked for; one without `expires_in` is used once). Callers wait for
    /// one another: one token request at a time.
    async fn held_or<F, Fut>(&self, fetch: F) -> Result<AccessToken, NationalError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(AccessToken, Option<Duration>), NationalError>>,
    {
        let mut held = self.cache.lock().await;
        if let Some(cached) = held.as_ref()
            && Instant::now() < cached.renew_at
        {
            return Ok(cached.token.clone());
        }
        *held = None;
        let asked = Instant::now();
        let (token, lifetime) = fetch().await?;
        if let Some(lifetime) = lifetime {
            let early = RENEW_BEFORE.min(lifetime / 2);
            *held = Some(Cached {
                token: token.clone(),
                renew_at: asked + (lifetime - early),
            });
        }
        Ok(token)
    }

    /// Forgets `token` if it is the one held (a newer one is kept).
    async fn forget(&self, token: &AccessToken) {
        let mut held = self.cache.lock().await;
        if held.as_ref().is_some_and(|cached| cached.token == *token) {
            *held = None;
        }
    }

    /// A new access token and its lifetime: the client credentials grant
    /// (RFC 6749 §4.4.2) authenticated by a fresh client assertion (RFC
    /// 7523 §2.2). Unreachable or too slow: the national server's failure
    /// (503, 504); 5xx: an error status (502, counted by the breaker); a
    /// refusal (§5.2) or an answer that is not a token: [`NationalError::Credentials`] (502).
    async fn fetch(
        &self,
        http: &Http,
        endpoint: &Endpoint,
    ) -> Result<(AccessToken, Option<Duration>), NationalError> {
        let assertion = self.assertion(SystemTime::now(), endpoint)?;
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("scope", &self.scope)
            .append_pair("client_assertion_type", JWT_BEARER)
            .append_pair("client_assertion", &assertion)
            .finish();
        let answer = http
            .send(endpoint.url.clone(), Request::Form(form), None)
            .await?;
        let status = answer.status;
        if status >= 500 {
            return Err(NationalError::Status(status));
        }
        let body = answer.body;
        if !(200..300).contains(&status) {
            let code = error_code(&body);
            tracing::warn!(
                status,
                error = code.as_deref().unwrap_or("-"),
                "national server's token endpoint refused the gateway's client credentials"
            );
            return Err(NationalError::Credentials(format!(
                "the token endpoint refused them: HTTP {}, {}",
                status,
                code.as_deref().unwrap_or("no OAuth error code")
            )));
        }
        token_response(&body).map_err(|why| {
            NationalError::Credentials(format!(
                "the token endpoint answered something that is not a token response: {why}"
            ))
        })
    }

    /// A client assertion (RFC 7523 §3, SMART Backend Services "Protocol
    /// details"), signed now, valid for [`ASSERTION_LIFETIME`].
    fn assertion(&self, now: SystemTime, endpoint: &Endpoint) -> Result<String, NationalError> {
        let issued = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| NationalError::Credentials("the clock is before 1970".into()))?
            .as_secs();
        let mut jti = [0u8; 16];
        self.rng
            .fill(&mut jti)
            .map_err(|_| NationalError::Credentials("no randomness for a jti".into()))?;
        let jti: String = jti.iter().map(|b| format!("{b:02x}")).collect();
        let header = serde_json::json!({
            "alg": self.algorithm().name(),
            "typ": "JWT",
            "kid": self.kid,
        });
        let claims = serde_json::json!({
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": endpoint.audience,
            "iat": issued,
            "exp": issued + ASSERTION_LIFETIME.as_secs(),
            "jti": jti,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let unsigned = |_| NationalError::Credentials("the assertion could not be signed".into());
        let signature = match &self.key {
            SigningKey::Es384(key) => key
                .sign(&self.rng, signing_input.as_bytes())
                .map_err(unsigned)?
                .as_ref()
                .to_vec(),
            SigningKey::Rs384(key) => {
                let mut signature = vec![0; key.public().modulus_len()];
                key.sign(
                    &RSA_PKCS1_SHA384,
                    &self.rng,
                    signing_input.as_bytes(),
                    &mut signature,
                )
                .map_err(unsigned)?;
                signature
            }
        };
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

/// A successful token response (RFC 6749 §5.1): `access_token` of the
/// `b64token` characters an `Authorization: Bearer` header carries (RFC
/// 6750 §2.1), `token_type` `Bearer` (compared case-insensitively, §7.1),
/// `expires_in` in seconds (SMART requires it; a number, or the digits some
/// servers send as a string; without it the token is used once).
fn token_response(body: &[u8]) -> Result<(AccessToken, Option<Duration>), String> {
    if body.len() > MAX_TOKEN_RESPONSE {
        return Err(format!("more than {MAX_TOKEN_RESPONSE} bytes"));
    }
    let answer: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| "not JSON".to_owned())?;
    let answer = answer.as_object().ok_or("not a JSON object")?;
    let token = answer
        .get("access_token")
        .and_then(serde_json::Value::as_str)
        .ok_or("no access_token")?;
    if !is_b64token(token) {
        return Err("an access_token that a Bearer header cannot carry".into());
    }
    let token_type = answer
        .get("token_type")
        .and_then(serde_json::Value::as_str)
        .ok_or("no token_type")?;
    if !token_type.eq_ignore_ascii_case("bearer") {
        return Err(format!(
            "token_type {:?}, not Bearer",
            printable(token_type)
        ));
    }
    let lifetime = match answer.get("expires_in") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(n)) => {
            Some(n.as_u64().ok_or("a negative or fractional expires_in")?)
        }
        Some(serde_json::Value::String(s)) => Some(
            s.parse::<u64>()
                .map_err(|_| "an expires_in that is not a number")?,
        ),
        Some(_) => return Err("an expires_in that is not a number".into()),
    };
    Ok((
        AccessToken(Arc::from(token)),
        lifetime.filter(|s| *s > 0).map(Duration::from_secs),
    ))
}

/// RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" /
/// "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// The `error` code of an error response (RFC 6749 §5.2), if it is one.
fn error_code(body: &[u8]) -> Option<String> {
    let answer: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(printable(answer.get("error")?.as_str()?))
}

/// At most 64 characters of `text`, of the characters an OAuth error code
/// may hold (RFC 6749 §5.2: %x20-21 / %x23-5B / %x5D-7E), others replaced.
fn printable(text: &str) -> String {
    text.chars()
        .take(64)
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '?',
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A fresh P-384 key as PKCS#8 PEM in a file of its own, with its
    /// public key (SEC1 uncompressed point).
    fn p384_key() -> (std::path::PathBuf, Vec<u8>) {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let public = ring::signature::KeyPair::public_key(&pair)
            .as_ref()
            .to_vec();
        let text = base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref());
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in text.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap());
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        let path = std::env::temp_dir().join(format!(
            "ehds-national-oauth-{}-{}.pem",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&path, pem).unwrap();
        (path, public)
    }

    fn oauth(key: &std::path::Path, token_url: &str) -> NationalOAuth {
        NationalOAuth {
            token_url: Some(token_url.to_owned()),
            client_id: "ncp-lu".into(),
            private_key: key.to_owned(),
            algorithm: JwtAlgorithm::Es384,
            kid: "gateway-2026".into(),
            scope: "system/*.rs".into(),
        }
    }

    fn base() -> url::Url {
        url::Url::parse("http://127.0.0.1:1/fhir/").unwrap()
    }

    fn decoded(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn an_assertion_is_signed_for_the_token_endpoint_and_used_once() {
        let (key, public) = p384_key();
        let client = OAuthClient::load(&oauth(&key, "http://127.0.0.1:9/token"), &base()).unwrap();
        let now = SystemTime::now();
        let endpoint = client.endpoint.get().unwrap().clone();
        let first = client.assertion(now, &endpoint).unwrap();
        let parts: Vec<&str> = first.split('.').collect();
        assert_eq!(parts.len(), 3);
        let signed = format!("{}.{}", parts[0], parts[1]);
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P384_SHA384_FIXED, &public)
            .verify(
                signed.as_bytes(),
                &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
            )
            .unwrap();
        let header = decoded(parts[0]);
        assert_eq!(header["alg"], "ES384");
        assert_eq!(header["kid"], "gateway-2026");
        assert_eq!(header["typ"], "JWT");
        let claims = decoded(parts[1]);
        assert_eq!(claims["iss"], "ncp-lu");
        assert_eq!(claims["sub"], "ncp-lu");
        assert_eq!(claims["aud"], "http://127.0.0.1:9/token");
        let issued = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(claims["iat"], issued);
        let exp = claims["exp"].as_u64().unwrap();
        assert!(
            exp > issued && exp <= issued + 300,
            "exp within five minutes"
        );
        // A fresh jti each time (a replayed assertion is refused).
        let jtis: std::collections::HashSet<String> = (0..50)
            .map(|_| {
                let assertion = client.assertion(now, &endpoint).unwrap();
                let claims = decoded(assertion.split('.').nth(1).unwrap());
                claims["jti"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(jtis.len(), 50);
        assert!(jtis.iter().all(|j| j.len() == 32));
        // The debug form shows neither key nor token.
        let shown = format!("{client:?}");
        assert!(shown.contains("ncp-lu") && !shown.contains("PRIVATE"));
        std::fs::remove_file(key).unwrap();
    }

    #[test]
    fn a_key_of_another_kind_is_refused_at_start_up() {
        let (key, _) = p384_key();
        let mut rsa = oauth(&key, "http://127.0.0.1:9/token");
        rsa.algorithm = JwtAlgorithm::Rs384;
        let refused = OAuthClient::load(&rsa, &base()).unwrap_err().to_string();
        assert!(refused.contains("not an RSA key"), "{refused}");
        std::fs::write(
            &key,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let refused = OAuthClient::load(&oauth(&key, "http://127.0.0.1:9/token"), &base())
            .unwrap_err()
            .to_string();
        assert!(refused.contains("PKCS#8"), "{refused}");
        std::fs::remove_file(key).unwrap();
    }

    #[test]
    fn token_responses_are_read_as_rfc_6749_writes_them() {
        let (token, lifetime) =
            token_response(br#"{"access_token":"eyJ.a-b_c~+/==","token_type":"bearer","expires_in":300,"scope":"system/*.rs"}"#)
                .unwrap();
        assert_eq!(&*token.0, "eyJ.a-b_c~+/==");
        assert_eq!(lifetime, Some(Duration::from_secs(300)));
        assert_eq!(format!("{token:?}"), "AccessToken([redacted])");
        let (_, lifetime) =
            token_response(br#"{"access_token":"t","token_type":"Bearer","expires_in":"60"}"#)
                .unwrap();
        assert_eq!(lifetime, Some(Duration::from_secs(60)));
        let (_, lifetime) =
            token_response(br#"{"access_token":"t","token_type":"Bearer"}"#).unwrap();
        assert_eq!(lifetime, None);
        for garbage in [
            &b"<html>login</html>"[..],
            br#"["t"]"#,
            br#"{"token_type":"Bearer"}"#,
            br#"{"access_token":"t"}"#,
            br#"{"access_token":"t","token_type":"DPoP"}"#,
            br#"{"access_token":"a b","token_type":"Bearer"}"#,
            br#"{"access_token":"t\r\nX-Evil: 1","token_type":"Bearer"}"#,
            br#"{"access_token":"","token_type":"Bearer"}"#,
            br#"{"access_token":"t","token_type":"Bearer","expires_in":-5}"#,
        ] {
            assert!(
                token_response(garbage).is_err(),
                "{}",
                String::from_utf8_lossy(garbage)
            );
        }
        assert_eq!(
            error_code(br#"{"error":"invalid_client","error_description":"x"}"#).as_deref(),
            Some("invalid_client")
        );
        assert_eq!(printable("a\"b\n"), "a?b?");
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_is_kept_until_shortly_before_it_expires() {
        let (key, _) = p384_key();
        let client = OAuthClient::load(&oauth(&key, "http://127.0.0.1:9/token"), &base()).unwrap();
        std::fs::remove_file(key).unwrap();
        let fetched = AtomicUsize::new(0);
        let fetch = |lifetime: Option<u64>| {
            let n = fetched.fetch_add(1, Ordering::SeqCst);
            async move {
                Ok((
                    AccessToken(Arc::from(format!("t{n}"))),
                    lifetime.map(Duration::from_secs),
                ))
            }
        };
        let first = client.held_or(|| fetch(Some(300))).await.unwrap();
        let again = client.held_or(|| fetch(Some(300))).await.unwrap();
        assert_eq!(first, again);
        assert_eq!(fetched.load(Ordering::SeqCst), 1, "reused");
        tokio::time::advance(Duration::from_secs(269)).await;
        assert_eq!(client.held_or(|| fetch(Some(300))).await.unwrap(), first);
        assert_eq!(
            fetched.load(Ordering::SeqCst),
            1,
            "still fresh 31 s before expiry"
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        let renewed = client.held_or(|| fetch(Some(300))).await.unwrap();
        assert_ne!(renewed, first);
        assert_eq!(
            fetched.load(Ordering::SeqCst),
            2,
            "renewed 29 s before expiry"
        );

        // Forgetting a token no longer held keeps the one held.
        client.forget(&first).await;
        assert_eq!(client.held_or(|| fetch(Some(300))).await.unwrap(), renewed);
        client.forget(&renewed).await;
        assert_ne!(client.held_or(|| fetch(Some(300))).await.unwrap(), renewed);
        assert_eq!(
            fetched.load(Ordering::SeqCst),
            3,
            "refetched once forgotten"
        );

        // A short-lived token is renewed at half its life; one without
        // expires_in is used once.
        client
            .forget(&client.held_or(|| fetch(Some(300))).await.unwrap())
            .await;
        let short = client.held_or(|| fetch(Some(20))).await.unwrap();
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(client.held_or(|| fetch(Some(20))).await.unwrap(), short);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_ne!(client.held_or(|| fetch(Some(20))).await.unwrap(), short);
        client
            .forget(&client.held_or(|| fetch(Some(20))).await.unwrap())
            .await;
        let before = fetched.load(Ordering::SeqCst);
        client.held_or(|| fetch(None)).await.unwrap();
        client.held_or(|| fetch(None)).await.unwrap();
        assert_eq!(fetched.load(Ordering::SeqCst), before + 2);
    }

    /// A loopback server answering `POST /token` with `t1`, `t2`, … (or,
    /// when `refused` holds `client`, refusing the client: 401
    /// `invalid_client`) and FHIR searches with an empty search set, except
    /// 401 for the tokens in `refused` (hand-written HTTP/1.1, one request per connection: it
    /// stands for a national server whose token was revoked early; the
    /// end-to-end test runs a real authorization server and FHIR server).
    struct Loopback {
        port: u16,
        tokens: Arc<AtomicUsize>,
        seen: Arc<std::sync::Mutex<Vec<String>>>,
        task: tokio::task::JoinHandle<()>,
    }

    /// What one connection of [`Loopback`] is answered with.
    struct Served {
        port: u16,
        refused: &'static [&'static str],
        issued: Arc<AtomicUsize>,
        log: Arc<std::sync::Mutex<Vec<String>>>,
    }

    impl Served {
        async fn answer<S>(self, mut stream: S, scheme: &str)
        where
            S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
        {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let Self {
                port,
                refused,
                issued,
                log,
            } = self;
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            let head_end = loop {
                if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                    break end + 4;
                }
                let n = stream.read(&mut buffer).await.unwrap();
                assert!(n > 0);
                request.extend_from_slice(&buffer[..n]);
            };
            let head = String::from_utf8_lossy(&request[..head_end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            while request.len() < head_end + length {
                let n = stream.read(&mut buffer).await.unwrap();
                request.extend_from_slice(&buffer[..n]);
            }
            let body = String::from_utf8_lossy(&request[head_end..]).into_owned();
            let (status, answer) = if head.starts_with("get /fhir/.well-known/smart-configuration ")
            {
                let document = serde_json::json!({
                    "token_endpoint": format!("{scheme}://127.0.0.1:{port}/token"),
                    "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                });
                ("200 OK", document.to_string())
            } else if head.starts_with("post /token ") && refused.contains(&"client") {
                // The authorization server does not know this
                // client (RFC 6749 §5.2).
                (
                    "401 Unauthorized",
                    r#"{"error":"invalid_client"}"#.to_owned(),
                )
            } else if head.starts_with("post /token ") {
                assert!(body.contains("grant_type=client_credentials"), "{body}");
                assert!(body.contains(
                "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
            ));
                assert!(body.contains("scope=system%2F*.rs"), "{body}");
                let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
                let token =
                    format!(r#"{{"access_token":"t{n}","token_type":"Bearer","expires_in":300}}"#);
                ("200 OK", token)
            } else {
                let bearer = head
                    .lines()
                    .find_map(|l| l.strip_prefix("authorization: bearer "))
                    .unwrap_or("-")
                    .trim()
                    .to_owned();
                let refuse = refused.contains(&bearer.as_str());
                log.lock().unwrap().push(bearer);
                if refuse {
                    ("401 Unauthorized", String::new())
                } else {
                    (
                        "200 OK",
                        r#"{"resourceType":"Bundle","type":"searchset","total":0}"#.to_owned(),
                    )
                }
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/fhir+json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
            stream.write_all(response.as_bytes()).await.unwrap();
            let _ = stream.shutdown().await;
        }
    }

    impl Loopback {
        async fn start(refused: &'static [&'static str]) -> Self {
            Self::start_with(refused, None).await
        }

        /// [`Self::start`] over TLS with `acceptor` (`Some`), without asking
        /// the client for a certificate.
        async fn start_with(
            refused: &'static [&'static str],
            acceptor: Option<tokio_rustls::TlsAcceptor>,
        ) -> Self {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let tokens = Arc::new(AtomicUsize::new(0));
            let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
            let (issued, log) = (Arc::clone(&tokens), Arc::clone(&seen));
            let task = tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let served = Served {
                        port,
                        refused,
                        issued: Arc::clone(&issued),
                        log: Arc::clone(&log),
                    };
                    match &acceptor {
                        None => served.answer(stream, "http").await,
                        Some(acceptor) => {
                            // A handshake the client refused (it does not
                            // trust this server) ends the connection.
                            if let Ok(stream) = acceptor.accept(stream).await {
                                served.answer(stream, "https").await;
                            }
                        }
                    }
                }
            });
            Self {
                port,
                tokens,
                seen,
                task,
            }
        }

        /// A client of this server, its token endpoint configured or
        /// (`discover`) read from its SMART configuration.
        fn national(&self, key: &std::path::Path, discover: bool) -> crate::NationalFhir {
            self.national_with(key, discover, "")
        }

        /// [`Self::national`] with more of the server's settings (`more`).
        fn national_with(
            &self,
            key: &std::path::Path,
            discover: bool,
            more: &str,
        ) -> crate::NationalFhir {
            let token_url = if discover {
                String::new()
            } else {
                format!("token_url = \"http://127.0.0.1:{}/token\"\n", self.port)
            };
            let server: crate::NationalServer = toml::from_str(&format!(
                "base_url = \"http://127.0.0.1:{port}/fhir\"\n{more}[oauth]\n{token_url}\
                 client_id = \"ncp-lu\"\nprivate_key = {key:?}\nkid = \"k1\"\n\
                 scope = \"system/*.rs\"\n",
                port = self.port,
            ))
            .unwrap();
            crate::NationalFhir::connect(&server).unwrap()
        }

        fn seen(&self) -> Vec<String> {
            self.seen.lock().unwrap().clone()
        }
    }

    impl Drop for Loopback {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    #[tokio::test]
    async fn a_refused_token_is_replaced_once() {
        let (key, _) = p384_key();
        let patient = ehds_identifiers::PatientIdentifier::new("urn:oid:1.2", "42").unwrap();

        // t1 is refused: t2 is fetched, the search sent again with it, and
        // kept for the next search.
        let server = Loopback::start(&["t1"]).await;
        let national = server.national(&key, false);
        let (ids, _) = national.patients(&patient).await.unwrap();
        assert!(ids.is_empty());
        assert_eq!(server.seen(), ["t1", "t2"]);
        national.patients(&patient).await.unwrap();
        assert_eq!(server.seen(), ["t1", "t2", "t2"]);
        assert_eq!(server.tokens.load(Ordering::SeqCst), 2);

        // Every token refused: one retry, then the server's 401 (502 at
        // the edge); the next search starts with a new token.
        let server = Loopback::start(&["t1", "t2", "t3", "t4"]).await;
        let national = server.national(&key, false);
        let refused = national.patients(&patient).await.unwrap_err();
        assert!(matches!(refused, NationalError::Status(401)), "{refused:?}");
        assert_eq!(server.seen(), ["t1", "t2"]);
        let refused = national.patients(&patient).await.unwrap_err();
        assert!(matches!(refused, NationalError::Status(401)), "{refused:?}");
        assert_eq!(server.seen(), ["t1", "t2", "t3", "t4"]);

        // The token endpoint found in the server's SMART configuration.
        let server = Loopback::start(&[]).await;
        let national = server.national(&key, true);
        national.patients(&patient).await.unwrap();
        national.patients(&patient).await.unwrap();
        assert_eq!(server.seen(), ["t1", "t1"]);
        assert_eq!(server.tokens.load(Ordering::SeqCst), 1);

        // No authorization server listening: unreachable (503 at the edge).
        let dead = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let server: crate::NationalServer = toml::from_str(&format!(
            "base_url = \"http://127.0.0.1:{}/fhir\"\n[oauth]\n\
             token_url = \"http://127.0.0.1:{dead}/token\"\nclient_id = \"ncp-lu\"\n\
             private_key = {key:?}\nkid = \"k1\"\nscope = \"system/*.rs\"\n",
            server.port
        ))
        .unwrap();
        let national = crate::NationalFhir::connect(&server).unwrap();
        let failure = national.patients(&patient).await.unwrap_err();
        assert!(
            matches!(failure, NationalError::Unreachable(_)),
            "{failure:?}"
        );
        std::fs::remove_file(key).unwrap();
    }

    /// A national server over mutual TLS (the development PKI's national
    /// API server of LU: SAN IP 127.0.0.1; clients of LU's national CA, with
    /// its CRL), its token endpoint beside it.
    async fn tls_server(pki: &ehds_dev_pki::DevPkiLayout) -> Loopback {
        let config = ehds_transport::ServerTls::load(&ehds_transport::ServerTlsFiles {
            identity: pki.national_server("LU"),
            trust: pki.trust(&ehds_dev_pki::Authority::National("LU".into())),
            misdirected_clients: None,
        })
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        Loopback::start_with(&[], Some(acceptor)).await
    }

    #[tokio::test]
    async fn over_mutual_tls_the_gateway_presents_its_certificate_and_its_token() {
        let dir = ehds_test_support::ScratchDir::new("national-oauth-tls");
        let pki = ehds_dev_pki::generate(dir.path(), &ehds_dev_pki::DevPkiSpec::for_tests(&["LU"]))
            .unwrap();
        let server = tls_server(&pki).await;
        let (key, _) = p384_key();
        let config = |trusted: &ehds_dev_pki::Authority| -> crate::NationalServer {
            let trust = pki.trust(trusted);
            let client = pki.national_client("LU", ehds_transport::NationalClientKind::EhrSystem);
            toml::from_str(&format!(
                "base_url = \"https://127.0.0.1:{}/fhir\"\nbreaker_failures = 1\n\
                 [tls]\ncas = {:?}\ncrls = {:?}\nclient_certificate = {:?}\n\
                 client_private_key = {:?}\n\
                 [oauth]\nclient_id = \"ncp-lu\"\nprivate_key = {key:?}\nkid = \"k1\"\n\
                 scope = \"system/*.rs\"\n",
                server.port, trust.ca_certs, trust.crls, client.cert_chain, client.private_key
            ))
            .unwrap()
        };
        let patient = ehds_identifiers::PatientIdentifier::new("urn:oid:1.2", "42").unwrap();

        // The gateway's certificate presented, the server's chaining to LU's
        // national CA: the SMART configuration, the token and the search all
        // over mutual TLS.
        let national =
            crate::NationalFhir::connect(&config(&ehds_dev_pki::Authority::National("LU".into())))
                .unwrap();
        let (ids, _) = national.patients(&patient).await.unwrap();
        assert!(ids.is_empty());
        national.patients(&patient).await.unwrap();
        assert_eq!(server.seen(), ["t1", "t1"], "the token sent over TLS");
        assert_eq!(server.tokens.load(Ordering::SeqCst), 1);

        // A server whose certificate does not chain to the configured CA
        // is not talked to: no token asked for, nothing sent.
        let national =
            crate::NationalFhir::connect(&config(&ehds_dev_pki::Authority::Federation)).unwrap();
        let refused = national.patients(&patient).await.unwrap_err();
        assert!(
            matches!(refused, NationalError::Unreachable(_)),
            "{refused:?}"
        );
        assert_eq!(server.tokens.load(Ordering::SeqCst), 1);
        assert_eq!(server.seen().len(), 2);
        std::fs::remove_file(key).unwrap();
    }

    #[tokio::test]
    async fn the_operators_cache_keeps_usable_answers_per_request_and_never_a_refusal() {
        let (key, _) = p384_key();
        let patient = ehds_identifiers::PatientIdentifier::new("urn:oid:1.2", "42").unwrap();
        let other = ehds_identifiers::PatientIdentifier::new("urn:oid:1.2", "43").unwrap();
        let cache = "[cache]\nttl_secs = 60\nmax_entries = 10\n";

        // Off by default: every search asks the server.
        let server = Loopback::start(&[]).await;
        let national = server.national(&key, false);
        assert_eq!(national.cache_counts(), None);
        national.patients(&patient).await.unwrap();
        national.patients(&patient).await.unwrap();
        assert_eq!(server.seen().len(), 2);

        // On: the same search is answered from memory; another patient's
        // is another request.
        let national = server.national_with(&key, false, cache);
        national.patients(&patient).await.unwrap();
        national.patients(&patient).await.unwrap();
        assert_eq!(server.seen().len(), 3, "the second from the cache");
        national.patients(&other).await.unwrap();
        assert_eq!(server.seen().len(), 4, "another patient: asked");
        let counts = national.cache_counts().unwrap();
        assert_eq!((counts.entries, counts.hits, counts.misses), (2, 1, 2));
        assert!(counts.bytes > 0);
        national.forget_answers();
        assert_eq!(national.cache_counts().unwrap().entries, 0);
        national.patients(&patient).await.unwrap();
        assert_eq!(server.seen().len(), 5, "forgotten: asked again");

        // A refusal (401 twice: the server's answer is the failure) is not
        // kept: the next search asks again.
        let server = Loopback::start(&["t1", "t2"]).await;
        let national = server.national_with(&key, false, cache);
        let refused = national.patients(&patient).await.unwrap_err();
        assert!(matches!(refused, NationalError::Status(401)), "{refused:?}");
        assert_eq!(national.cache_counts().unwrap().entries, 0);
        national.patients(&patient).await.unwrap();
        national.patients(&patient).await.unwrap();
        assert_eq!(server.seen(), ["t1", "t2", "t3"]);
        std::fs::remove_file(key).unwrap();
    }

    #[tokio::test]
    async fn a_refused_client_does_not_open_the_circuit_but_a_dead_token_endpoint_does() {
        let (key, _) = p384_key();
        let patient = ehds_identifiers::PatientIdentifier::new("urn:oid:1.2", "42").unwrap();

        // The token endpoint refuses the gateway (invalid_client): each
        // call says so (502 at the edge, a credentials problem), however
        // many; the circuit stays closed and the FHIR server is never
        // asked.
        let server = Loopback::start(&["client"]).await;
        let national = server.national_with(&key, false, "breaker_failures = 1\n");
        for _ in 0..5 {
            let refused = national.patients(&patient).await.unwrap_err();
            assert!(
                matches!(&refused, NationalError::Credentials(why) if why.contains("invalid_client")),
                "{refused:?}"
            );
            assert_eq!(national.breaker_state(), crate::BreakerState::Closed);
        }
        assert!(server.seen().is_empty(), "{:?}", server.seen());
        // Discovered endpoints alike.
        let national = server.national_with(&key, true, "breaker_failures = 1\n");
        for _ in 0..3 {
            let refused = national.patients(&patient).await.unwrap_err();
            assert!(
                matches!(refused, NationalError::Credentials(_)),
                "{refused:?}"
            );
        }
        assert_eq!(national.breaker_state(), crate::BreakerState::Closed);

        // The token endpoint down: the server cannot be asked, that is a
        // failure, and the circuit opens after `breaker_failures`.
        let dead = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let config: crate::NationalServer = toml::from_str(&format!(
            "base_url = \"http://127.0.0.1:{}/fhir\"\nbreaker_failures = 1\n[oauth]\n\
             token_url = \"http://127.0.0.1:{dead}/token\"\nclient_id = \"ncp-lu\"\n\
             private_key = {key:?}\nkid = \"k1\"\nscope = \"system/*.rs\"\n",
            server.port
        ))
        .unwrap();
        let national = crate::NationalFhir::connect(&config).unwrap();
        let failure = national.patients(&patient).await.unwrap_err();
        assert!(
            matches!(failure, NationalError::Unreachable(_)),
            "{failure:?}"
        );
        assert_eq!(national.breaker_state(), crate::BreakerState::Open);
        let failure = national.patients(&patient).await.unwrap_err();
        assert!(matches!(failure, NationalError::CircuitOpen), "{failure:?}");
        std::fs::remove_file(key).unwrap();
    }
}
