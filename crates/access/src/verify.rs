//! Verifying an assertion on the receiving side (NCP-A).
//!
//! The checks, in order (the first failure is the refusal):
//!
//! 1. size (`max_token_bytes`) and shape: a JWS compact serialisation of three
//!    base64url parts without padding (RFC 7515 §7.1, §2), a JSON header;
//! 2. `alg: none` or an empty signature → [`AssertionRefusal::Unsigned`]
//!    (RFC 8725 §3.1); `typ` must be [`crate::ASSERTION_TYPE`] (RFC 8725
//!    §3.11); a `crit` header is refused (RFC 7515 §4.1.11: this verifier
//!    understands no extension); `kid` is required;
//! 3. the issuer (`iss`, read before the signature only to choose the key)
//!    and the key (`kid`) must be in the [`TrustList`];
//! 4. the header `alg` must be exactly the algorithm the key is pinned to —
//!    never taken on trust from the token (RFC 8725 §2.1, §3.1; this is what
//!    defeats HS256-with-the-public-key confusion);
//! 5. the signature (with *ring*: ES256 as the 64-byte `r || s` of
//!    RFC 7518 §3.4, EdDSA as RFC 8037 §3.1);
//! 6. only now are the claims believed: the issuer's country must be the
//!    federation peer's country; every claim of
//!    [`crate::claims::REQUIRED_CLAIMS`] present and non-empty; purpose of use
//!    known; claim types right; `aud` names this NCP; times (below); the
//!    `country` claim is the issuer's; the role is a known ISCO-08 code; the
//!    treatment relationship names the requested patient;
//! 7. replay: the (`iss`, `jti`) pair is recorded in the [`ReplayLedger`] and
//!    refused if already there.
//!
//! Times (RFC 7519 §4.1.4–4.1.6), with `skew` = [`VerifierSettings::clock_skew_secs`]
//! (default 60 s: the gateways' and identity providers' clocks are NTP-synced
//! but not equal; RFC 7519 allows "some small leeway, usually no more than a
//! few minutes"):
//!
//! * `exp` must be after `iat`, and `exp - iat` at most
//!   [`VerifierSettings::max_lifetime_secs`] (default 3600 s: an assertion
//!   covers one consultation, a long-lived bearer token is a liability);
//! * refused as issued in the future when `iat > now + skew`, and as not yet
//!   valid when `nbf > now + skew`;
//! * refused as expired when `now >= exp + skew`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};

use crate::claims::REQUIRED_CLAIMS;
use crate::{
    ASSERTION_TYPE, AccessError, HealthProfessionalAssertion, IscoRole, PatientRef, PurposeOfUse,
    ReplayLedger, TrustList,
};

/// Why an assertion was refused. No variant carries, and no message shows,
/// patient data or claim values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AssertionRefusal {
    /// Not a well-formed signed JWT (size, parts, base64url, JSON, claim
    /// types, `exp` not after `iat`, an unsupported `crit` header). The text
    /// says which, without values.
    Malformed(&'static str),
    /// `alg: none` or no signature.
    Unsigned,
    /// The header `typ` is not [`crate::ASSERTION_TYPE`].
    WrongTokenType,
    /// The header `alg` is not the algorithm the key is pinned to (HS256 key
    /// confusion, an RSA or other algorithm).
    DisallowedAlgorithm,
    /// The signature does not verify with the issuer's key.
    BadSignature,
    /// The issuer is not in the trust list.
    UnknownIssuer,
    /// The issuer has no key with this `kid`.
    UnknownKey,
    /// A required claim (or the `kid` / `iss` needed to pick the key) is
    /// absent or empty.
    MissingClaim(&'static str),
    /// `aud` does not name this NCP.
    WrongAudience,
    /// The assertion has expired.
    Expired,
    /// Issued in the future, or not valid before a later time, beyond the
    /// clock skew.
    NotYetValid,
    /// `exp - iat` exceeds the longest accepted lifetime.
    LifetimeTooLong,
    /// This (`iss`, `jti`) was already used.
    Replayed,
    /// The issuer speaks for another country than the federation peer that
    /// sent the request, or the `country` claim is not the issuer's.
    WrongCountry,
    /// The role is not a known ISCO-08 code ([`IscoRole`]).
    UnknownRole,
    /// The purpose of use is neither `TREATMENT` nor `EMERGENCY`.
    UnknownPurpose,
    /// The treatment relationship names another patient.
    PatientMismatch,
}

impl AssertionRefusal {
    /// Whether the refused assertion authenticates no one (it is not a
    /// valid, current, first-used assertion of a trusted issuer for this
    /// NCP), as against one that authenticates a professional who may not
    /// see this (wrong country, unknown role or purpose, another patient).
    /// The HTTP edge maps the first to 401 (RFC 9110 §15.5.2) and the second
    /// to 403 (§15.5.4).
    pub fn authenticates_no_one(&self) -> bool {
        match self {
            AssertionRefusal::Malformed(_)
            | AssertionRefusal::Unsigned
            | AssertionRefusal::WrongTokenType
            | AssertionRefusal::DisallowedAlgorithm
            | AssertionRefusal::BadSignature
            | AssertionRefusal::UnknownIssuer
            | AssertionRefusal::UnknownKey
            | AssertionRefusal::MissingClaim(_)
            | AssertionRefusal::WrongAudience
            | AssertionRefusal::Expired
            | AssertionRefusal::NotYetValid
            | AssertionRefusal::LifetimeTooLong
            | AssertionRefusal::Replayed => true,
            AssertionRefusal::WrongCountry
            | AssertionRefusal::UnknownRole
            | AssertionRefusal::UnknownPurpose
            | AssertionRefusal::PatientMismatch => false,
        }
    }

    /// A stable short code for logs and metrics labels, e.g. `expired`.
    pub fn code(&self) -> &'static str {
        match self {
            AssertionRefusal::Malformed(_) => "malformed",
            AssertionRefusal::Unsigned => "unsigned",
            AssertionRefusal::WrongTokenType => "wrong-token-type",
            AssertionRefusal::DisallowedAlgorithm => "disallowed-algorithm",
            AssertionRefusal::BadSignature => "bad-signature",
            AssertionRefusal::UnknownIssuer => "unknown-issuer",
            AssertionRefusal::UnknownKey => "unknown-key",
            AssertionRefusal::MissingClaim(_) => "missing-claim",
            AssertionRefusal::WrongAudience => "wrong-audience",
            AssertionRefusal::Expired => "expired",
            AssertionRefusal::NotYetValid => "not-yet-valid",
            AssertionRefusal::LifetimeTooLong => "lifetime-too-long",
            AssertionRefusal::Replayed => "replayed",
            AssertionRefusal::WrongCountry => "wrong-country",
            AssertionRefusal::UnknownRole => "unknown-role",
            AssertionRefusal::UnknownPurpose => "unknown-purpose",
            AssertionRefusal::PatientMismatch => "patient-mismatch",
        }
    }
}

impl std::fmt::Display for AssertionRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AssertionRefusal::Malformed(what) => {
                write!(f, "the health-professional assertion is malformed: {what}")
            }
            AssertionRefusal::Unsigned => {
                f.write_str("the health-professional assertion is not signed")
            }
            AssertionRefusal::WrongTokenType => write!(
                f,
                "the token is not a health-professional assertion (typ must be {ASSERTION_TYPE})"
            ),
            AssertionRefusal::DisallowedAlgorithm => f.write_str(
                "the assertion's signature algorithm is not the one its issuer's key is registered for",
            ),
            AssertionRefusal::BadSignature => {
                f.write_str("the assertion's signature does not verify with its issuer's key")
            }
            AssertionRefusal::UnknownIssuer => {
                f.write_str("the assertion's issuer is not in the federation trust list")
            }
            AssertionRefusal::UnknownKey => {
                f.write_str("the assertion's key id is not registered for its issuer")
            }
            AssertionRefusal::MissingClaim(name) => {
                write!(f, "the assertion lacks the required claim {name}")
            }
            AssertionRefusal::WrongAudience => {
                f.write_str("the assertion is not addressed to this contact point")
            }
            AssertionRefusal::Expired => f.write_str("the assertion has expired"),
            AssertionRefusal::NotYetValid => {
                f.write_str("the assertion is not valid yet (issued or valid only in the future)")
            }
            AssertionRefusal::LifetimeTooLong => {
                f.write_str("the assertion's lifetime exceeds the accepted maximum")
            }
            AssertionRefusal::Replayed => f.write_str("the assertion was already used"),
            AssertionRefusal::WrongCountry => f.write_str(
                "the assertion's issuing country is not the country of the requesting contact point",
            ),
            AssertionRefusal::UnknownRole => {
                f.write_str("the professional's role is not a recognised ISCO-08 code")
            }
            AssertionRefusal::UnknownPurpose => {
                f.write_str("the purpose of use is neither TREATMENT nor EMERGENCY")
            }
            AssertionRefusal::PatientMismatch => f.write_str(
                "the assertion's treatment relationship does not cover the requested patient",
            ),
        }
    }
}

/// Verifier limits; the serde form suits a `[access]` configuration table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerifierSettings {
    /// Accepted clock difference in seconds (default 60).
    pub clock_skew_secs: u32,
    /// Longest accepted `exp - iat` in seconds (default 3600).
    pub max_lifetime_secs: u32,
    /// Largest token accepted, in bytes (default 16 KiB; a real assertion is
    /// under 2 KiB).
    pub max_token_bytes: usize,
}

impl Default for VerifierSettings {
    fn default() -> Self {
        Self {
            clock_skew_secs: 60,
            max_lifetime_secs: 3600,
            max_token_bytes: 16 * 1024,
        }
    }
}

/// What the receiving NCP expects of an assertion on this request.
#[derive(Debug, Clone, Copy)]
pub struct Expectations<'a> {
    /// This NCP's id, which `aud` must name (e.g. `urn:ehds:ncp:BE`).
    pub audience: &'a str,
    /// ISO 3166-1 alpha-2 country of the federation peer that sent the
    /// request, as mutual TLS established it.
    pub peer_country: &'a str,
    /// The patient the request is about.
    pub patient: &'a PatientRef,
    /// The current time.
    pub now: OffsetDateTime,
}

/// Verifies assertions against a trust list.
#[derive(Debug, Clone)]
pub struct Verifier {
    trust: TrustList,
    settings: VerifierSettings,
}

/// An assertion that passed every check but replay: it becomes a
/// [`VerifiedAssertion`] only through [`CheckedAssertion::consume`], so the
/// replay check cannot be skipped by accident.
#[derive(Debug, Clone)]
#[must_use = "an assertion is verified only once consumed against the replay ledger"]
pub struct CheckedAssertion {
    verified: VerifiedAssertion,
    remember_until: OffsetDateTime,
}

/// An assertion that passed every check, replay included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAssertion {
    claims: HealthProfessionalAssertion,
    role: IscoRole,
    kid: String,
    expires_at: OffsetDateTime,
}

impl VerifiedAssertion {
    /// All claims.
    pub fn claims(&self) -> &HealthProfessionalAssertion {
        &self.claims
    }

    /// The professional's role.
    pub fn role(&self) -> IscoRole {
        self.role
    }

    /// The purpose of use.
    pub fn purpose(&self) -> PurposeOfUse {
        self.claims.purpose_of_use
    }

    /// The professional's (and issuer's) country.
    pub fn country(&self) -> &str {
        &self.claims.country
    }

    /// The issuer id.
    pub fn issuer(&self) -> &str {
        &self.claims.iss
    }

    /// The professional's id at the issuer (for the audit trail).
    pub fn professional_id(&self) -> &str {
        &self.claims.sub
    }

    /// The token id.
    pub fn jti(&self) -> &str {
        &self.claims.jti
    }

    /// The key id that signed it.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The patient the assertion covers.
    pub fn patient(&self) -> &PatientRef {
        &self.claims.treatment_relationship.patient
    }

    /// When it expires (`exp`).
    pub fn expires_at(&self) -> OffsetDateTime {
        self.expires_at
    }
}

impl CheckedAssertion {
    /// The checked assertion, before the replay check (for logging the
    /// issuer or jti of a refused replay, say).
    pub fn peek(&self) -> &VerifiedAssertion {
        &self.verified
    }

    /// Records the assertion in `ledger`: the first use yields the verified
    /// assertion, any later one [`AssertionRefusal::Replayed`]. A ledger that
    /// cannot answer is an error (fail closed, 503).
    pub async fn consume<L: ReplayLedger>(
        self,
        ledger: &L,
        now: OffsetDateTime,
    ) -> Result<Result<VerifiedAssertion, AssertionRefusal>, AccessError> {
        let first = ledger
            .first_use(
                &self.verified.claims.iss,
                &self.verified.claims.jti,
                self.remember_until,
                now,
            )
            .await?;
        Ok(if first {
            Ok(self.verified)
        } else {
            Err(AssertionRefusal::Replayed)
        })
    }
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<Value>,
    typ: Option<Value>,
    kid: Option<Value>,
    crit: Option<Value>,
}

impl Verifier {
    /// A verifier over `trust` with `settings`.
    pub fn new(trust: TrustList, settings: VerifierSettings) -> Self {
        Self { trust, settings }
    }

    /// The trust list.
    pub fn trust_list(&self) -> &TrustList {
        &self.trust
    }

    /// The settings.
    pub fn settings(&self) -> &VerifierSettings {
        &self.settings
    }

    /// Every check of the module documentation, replay excepted; no I/O.
    pub fn check(
        &self,
        token: &str,
        expected: &Expectations<'_>,
    ) -> Result<CheckedAssertion, AssertionRefusal> {
        use AssertionRefusal as R;
        if token.len() > self.settings.max_token_bytes {
            return Err(R::Malformed("the token is larger than accepted"));
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(R::Malformed(
                "not a JWS compact serialisation (three dot-separated parts)",
            ));
        };
        let header_bytes = URL_SAFE_NO_PAD
            .decode(header_b64)
            .map_err(|_| R::Malformed("the header is not unpadded base64url"))?;
        let header: RawHeader = serde_json::from_slice(&header_bytes)
            .map_err(|_| R::Malformed("the header is not a JSON object without duplicate names"))?;

        let alg = match header.alg {
            Some(Value::String(alg)) => alg,
            _ => return Err(R::Malformed("the header has no alg string")),
        };
        if alg.eq_ignore_ascii_case("none") || signature_b64.is_empty() {
            return Err(R::Unsigned);
        }
        match &header.typ {
            Some(Value::String(typ)) if is_assertion_type(typ) => {}
            _ => return Err(R::WrongTokenType),
        }
        if header.crit.is_some() {
            return Err(R::Malformed("the header has critical extensions"));
        }
        let kid = match header.kid {
            Some(Value::String(kid)) if !kid.is_empty() => kid,
            None | Some(Value::Null) | Some(Value::String(_)) => {
                return Err(R::MissingClaim("kid"));
            }
            Some(_) => return Err(R::Malformed("the header kid is not a string")),
        };

        let payload_bytes = URL_SAFE_NO_PAD
            .decode(payload_b64)
            .map_err(|_| R::Malformed("the payload is not unpadded base64url"))?;
        let payload: Map<String, Value> = serde_json::from_slice(&payload_bytes)
            .map_err(|_| R::Malformed("the payload is not a JSON object"))?;
        let iss = match payload.get("iss") {
            Some(Value::String(iss)) if !iss.is_empty() => iss.as_str(),
            None | Some(Value::Null) | Some(Value::String(_)) => {
                return Err(R::MissingClaim("iss"));
            }
            Some(_) => return Err(R::Malformed("iss is not a string")),
        };
        let issuer = self.trust.issuer(iss).ok_or(R::UnknownIssuer)?;
        let key = issuer.key(&kid).ok_or(R::UnknownKey)?;
        if alg != key.algorithm().jose_name() {
            return Err(R::DisallowedAlgorithm);
        }
        let signing_input = token
            .get(..header_b64.len() + 1 + payload_b64.len())
            .ok_or(R::Malformed("not a JWS compact serialisation"))?;
        // The JWS signing input is `header.payload` as sent (RFC 7515 §5.2);
        // a signature that is not unpadded base64url cannot verify.
        let signature = URL_SAFE_NO_PAD
            .decode(signature_b64)
            .map_err(|_| R::BadSignature)?;
        if !key.verifies(signing_input.as_bytes(), &signature) {
            return Err(R::BadSignature);
        }

        // The claims are the issuer's from here on.
        if issuer.country() != expected.peer_country {
            return Err(R::WrongCountry);
        }
        for name in REQUIRED_CLAIMS {
            if !is_present(&payload, name) {
                return Err(R::MissingClaim(name));
            }
        }
        match payload.get("purpose_of_use") {
            Some(Value::String(p)) if PurposeOfUse::parse(p).is_some() => {}
            _ => return Err(R::UnknownPurpose),
        }
        let claims: HealthProfessionalAssertion = serde_json::from_value(Value::Object(payload))
            .map_err(|_| R::Malformed("a claim does not have the expected type"))?;
        if !claims.aud.contains(expected.audience) {
            return Err(R::WrongAudience);
        }

        let now = expected.now.unix_timestamp();
        let skew = i64::from(self.settings.clock_skew_secs);
        if claims.exp <= claims.iat {
            return Err(R::Malformed("exp is not after iat"));
        }
        if claims.exp.saturating_sub(claims.iat) > i64::from(self.settings.max_lifetime_secs) {
            return Err(R::LifetimeTooLong);
        }
        if claims.iat > now.saturating_add(skew) {
            return Err(R::NotYetValid);
        }
        if claims.nbf.is_some_and(|nbf| nbf > now.saturating_add(skew)) {
            return Err(R::NotYetValid);
        }
        if now >= claims.exp.saturating_add(skew) {
            return Err(R::Expired);
        }
        let expires_at = OffsetDateTime::from_unix_timestamp(claims.exp)
            .map_err(|_| R::Malformed("exp is out of range"))?;
        let remember_until = expires_at + Duration::seconds(skew);

        if claims.country != issuer.country() {
            return Err(R::WrongCountry);
        }
        let role = IscoRole::parse(&claims.role).ok_or(R::UnknownRole)?;
        if claims.treatment_relationship.patient != *expected.patient {
            return Err(R::PatientMismatch);
        }
        Ok(CheckedAssertion {
            verified: VerifiedAssertion {
                claims,
                role,
                kid,
                expires_at,
            },
            remember_until,
        })
    }

    /// [`Verifier::check`], then the replay check in `ledger`. The outer
    /// `Result` is the ledger failing (an error: fail closed with 503); the
    /// inner one is the verdict on the assertion (a refusal is a value).
    pub async fn verify<L: ReplayLedger>(
        &self,
        token: &str,
        expected: &Expectations<'_>,
        ledger: &L,
    ) -> Result<Result<VerifiedAssertion, AssertionRefusal>, AccessError> {
        match self.check(token, expected) {
            Ok(checked) => checked.consume(ledger, expected.now).await,
            Err(refusal) => Ok(Err(refusal)),
        }
    }
}

/// `typ` is compared case-insensitively and may carry the `application/`
/// prefix (RFC 7515 §4.1.9).
fn is_assertion_type(typ: &str) -> bool {
    let typ = typ.to_ascii_lowercase();
    typ.strip_prefix("application/").unwrap_or(&typ) == ASSERTION_TYPE
}

/// Whether the dotted claim path leads to a value that is neither null nor
/// an empty string.
fn is_present(claims: &Map<String, Value>, path: &str) -> bool {
    let mut parts = path.split('.');
    let Some(first) = parts.next() else {
        return false;
    };
    let mut value = claims.get(first);
    for part in parts {
        value = value.and_then(|v| v.get(part));
    }
    match value {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}
