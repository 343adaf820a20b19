//! The issuing side, for tests and the demo: what a country's identity
//! provider does when a professional logs in to NCP-B's portal.
//!
//! A production IdP is a separate, hardened service; this issuer exists so
//! that the gateway's demo and end-to-end tests can mint real, verifiable
//! assertions with the development keys.

use std::fmt;

use ed25519_dalek::pkcs8::EncodePublicKey as _;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use jsonwebtoken::{EncodingKey, Header};
use time::{Duration, OffsetDateTime};

use crate::{
    ASSERTION_TYPE, AccessError, Audience, HealthProfessionalAssertion, KeyAlgorithm, PatientRef,
    Professional, PurposeOfUse, TreatmentRelationship,
};

/// A professional logged in at a point of care: the part of the claims
/// the IdP knows from the login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// Who logged in.
    pub professional: Professional,
    /// Where: the point of care (ward, practice, pharmacy), free text.
    pub point_of_care: String,
}

/// Signs assertions with one private key.
pub struct AssertionIssuer {
    issuer: String,
    country: String,
    kid: String,
    algorithm: KeyAlgorithm,
    key: EncodingKey,
    public_pem: String,
}

impl fmt::Debug for AssertionIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssertionIssuer")
            .field("issuer", &self.issuer)
            .field("country", &self.country)
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl AssertionIssuer {
    /// An issuer `issuer` for `country`, signing with the PKCS#8 PEM private
    /// key (`-----BEGIN PRIVATE KEY-----`, RFC 5208 / RFC 7468 §10) of
    /// `algorithm` (a P-256 key for ES256, an Ed25519 key for EdDSA),
    /// announcing it as `kid`.
    pub fn from_pkcs8_pem(
        issuer: &str,
        country: &str,
        kid: &str,
        algorithm: KeyAlgorithm,
        pem: &str,
    ) -> Result<Self, AccessError> {
        let invalid = |reason: String| AccessError::InvalidKey {
            kid: kid.to_owned(),
            algorithm: algorithm.jose_name(),
            reason,
        };
        let (key, public_pem) = match algorithm {
            KeyAlgorithm::Es256 => {
                use p256::pkcs8::EncodePublicKey as _;
                use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
                let secret =
                    p256::SecretKey::from_pkcs8_pem(pem).map_err(|e| invalid(e.to_string()))?;
                let der = secret.to_pkcs8_der().map_err(|e| invalid(e.to_string()))?;
                let public = secret
                    .public_key()
                    .to_public_key_pem(LineEnding::LF)
                    .map_err(|e| invalid(e.to_string()))?;
                (EncodingKey::from_ec_der(der.as_bytes()), public)
            }
            KeyAlgorithm::EdDsa => {
                let secret = ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
                    .map_err(|e| invalid(e.to_string()))?;
                let der = secret.to_pkcs8_der().map_err(|e| invalid(e.to_string()))?;
                let public = secret
                    .verifying_key()
                    .to_public_key_pem(LineEnding::LF)
                    .map_err(|e| invalid(e.to_string()))?;
                (EncodingKey::from_ed_der(der.as_bytes()), public)
            }
        };
        Ok(Self {
            issuer: issuer.to_owned(),
            country: country.to_owned(),
            kid: kid.to_owned(),
            algorithm,
            key,
            public_pem,
        })
    }

    /// The issuer id (`iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The country it speaks for.
    pub fn country(&self) -> &str {
        &self.country
    }

    /// The key id (`kid`).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The SPKI PEM of the public key, for the receiving side's trust list.
    pub fn public_key_pem(&self) -> &str {
        &self.public_pem
    }

    /// Claims for the professional of `login` asking `audience` about `patient`, issued
    /// at `now` (also `nbf`), valid for `lifetime`, with a fresh random
    /// `jti` (UUID v4).
    pub fn claims_for(
        &self,
        login: &Login,
        audience: &str,
        patient: &PatientRef,
        purpose: PurposeOfUse,
        now: OffsetDateTime,
        lifetime: Duration,
    ) -> HealthProfessionalAssertion {
        let iat = now.unix_timestamp();
        let professional = &login.professional;
        HealthProfessionalAssertion {
            iss: self.issuer.clone(),
            sub: professional.id.clone(),
            aud: Audience::One(audience.to_owned()),
            iat,
            nbf: Some(iat),
            exp: iat.saturating_add(lifetime.whole_seconds()),
            jti: uuid::Uuid::new_v4().to_string(),
            name: professional.name.clone(),
            role: professional.role.clone(),
            organisation: professional.organisation.clone(),
            point_of_care: login.point_of_care.clone(),
            purpose_of_use: purpose,
            country: self.country.clone(),
            treatment_relationship: TreatmentRelationship {
                patient: patient.clone(),
            },
        }
    }

    /// Signs `claims` exactly as given (tests use this to craft faulty
    /// assertions) with header `{"alg", "typ": ASSERTION_TYPE, "kid"}`.
    pub fn sign(&self, claims: &HealthProfessionalAssertion) -> Result<String, AccessError> {
        self.sign_json(claims)
    }

    /// Signs any serialisable claims set (for crafting assertions that lack
    /// or mistype a claim).
    pub fn sign_json<T: serde::Serialize>(&self, claims: &T) -> Result<String, AccessError> {
        let mut header = Header::new(self.algorithm.jwt_algorithm());
        header.typ = Some(ASSERTION_TYPE.to_owned());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key)
            .map_err(|e| AccessError::Signing(e.to_string()))
    }

    /// [`AssertionIssuer::claims_for`] then [`AssertionIssuer::sign`].
    pub fn issue(
        &self,
        login: &Login,
        audience: &str,
        patient: &PatientRef,
        purpose: PurposeOfUse,
        now: OffsetDateTime,
        lifetime: Duration,
    ) -> Result<String, AccessError> {
        self.sign(&self.claims_for(login, audience, patient, purpose, now, lifetime))
    }
}
