//! The federation trust list: which identity provider speaks for which
//! country, and the public keys it signs assertions with.
//!
//! Each key is pinned to one algorithm when it is loaded; verification never
//! takes the algorithm from the token header on trust (RFC 8725 §3.1, §2.1:
//! `alg: none` and key confusion such as HS256 keyed with a public key are
//! refused because the header must name the pinned algorithm exactly).
//!
//! The description, as the lead may embed it in a TOML configuration:
//!
//! ```toml
//! [[issuer]]
//! country = "LU"                        # ISO 3166-1 alpha-2, upper case
//! id = "https://idp.health.lu/hp"       # the `iss` claim of its assertions
//!
//! [[issuer.key]]
//! kid = "lu-idp-2026"                   # the JOSE `kid` header
//! alg = "ES256"                         # or "EdDSA" (Ed25519)
//! pem_file = "lu-idp-es256.pub.pem"     # SPKI PEM, relative to the base folder
//! # pem = "-----BEGIN PUBLIC KEY-----\n..."   (inline instead of pem_file)
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::DecodePublicKey as _;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use ring::signature::{ECDSA_P256_SHA256_FIXED, ED25519, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use crate::AccessError;

/// The signature algorithms a key may be pinned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    /// ECDSA on P-256 with SHA-256 (RFC 7518 §3.4).
    #[serde(rename = "ES256")]
    Es256,
    /// EdDSA with Ed25519 (RFC 8037 §3.1).
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl KeyAlgorithm {
    /// The JOSE `alg` header value: `ES256` or `EdDSA`.
    pub fn jose_name(self) -> &'static str {
        match self {
            KeyAlgorithm::Es256 => "ES256",
            KeyAlgorithm::EdDsa => "EdDSA",
        }
    }

    pub(crate) fn jwt_algorithm(self) -> jsonwebtoken::Algorithm {
        match self {
            KeyAlgorithm::Es256 => jsonwebtoken::Algorithm::ES256,
            KeyAlgorithm::EdDsa => jsonwebtoken::Algorithm::EdDSA,
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.jose_name())
    }
}

/// One public key with the one algorithm it verifies.
///
/// Signatures are checked with *ring* (already in the build for rustls):
/// its P-256 arithmetic is assembly and several times faster than the pure
/// Rust `p256` this crate still uses to read PEM keys and that
/// `jsonwebtoken` signs with on the issuing side.
#[derive(Clone)]
pub struct TrustedKey {
    algorithm: KeyAlgorithm,
    /// ES256: the uncompressed SEC1 point (`04 || x || y`, SEC 1 §2.3.3);
    /// EdDSA: the 32-byte Ed25519 public key (RFC 8032 §5.1.5).
    key: UnparsedPublicKey<Vec<u8>>,
}

impl fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl TrustedKey {
    /// A key from its SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`,
    /// RFC 7468 §13), checked to be a key of `algorithm`: a P-256 point for
    /// ES256, an Ed25519 key for EdDSA. `kid` only names the key in errors.
    pub fn from_pem(kid: &str, algorithm: KeyAlgorithm, pem: &str) -> Result<Self, AccessError> {
        let invalid = |reason: String| AccessError::InvalidKey {
            kid: kid.to_owned(),
            algorithm: algorithm.jose_name(),
            reason,
        };
        let key = match algorithm {
            KeyAlgorithm::Es256 => {
                use p256::pkcs8::DecodePublicKey as _;
                let public = p256::PublicKey::from_public_key_pem(pem)
                    .map_err(|e| invalid(e.to_string()))?;
                UnparsedPublicKey::new(
                    &ECDSA_P256_SHA256_FIXED,
                    public.to_encoded_point(false).as_bytes().to_vec(),
                )
            }
            KeyAlgorithm::EdDsa => {
                let public = ed25519_dalek::VerifyingKey::from_public_key_pem(pem)
                    .map_err(|e| invalid(e.to_string()))?;
                UnparsedPublicKey::new(&ED25519, public.as_bytes().to_vec())
            }
        };
        Ok(Self { algorithm, key })
    }

    /// Whether `signature` is this key's signature of `message` in the JWS
    /// form of its algorithm: for ES256 the 64 bytes `r || s`, each a
    /// big-endian 32-byte integer (RFC 7518 §3.4, *ring*'s `FIXED` form, not
    /// DER); for EdDSA the 64-byte Ed25519 signature (RFC 8037 §3.1).
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify(message, signature).is_ok()
    }

    /// The algorithm this key is pinned to.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }
}

/// One identity provider: its country and its keys by `kid`.
#[derive(Debug, Clone)]
pub struct TrustedIssuer {
    country: String,
    keys: BTreeMap<String, TrustedKey>,
}

impl TrustedIssuer {
    /// ISO 3166-1 alpha-2 code of the country the issuer speaks for.
    pub fn country(&self) -> &str {
        &self.country
    }

    /// The key with this `kid`.
    pub fn key(&self, kid: &str) -> Option<&TrustedKey> {
        self.keys.get(kid)
    }
}

/// The identity providers NCP-A trusts, by issuer id (`iss`).
#[derive(Debug, Clone, Default)]
pub struct TrustList {
    issuers: BTreeMap<String, TrustedIssuer>,
}

impl TrustList {
    /// An empty trust list (every assertion is refused as
    /// [`crate::AssertionRefusal::UnknownIssuer`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the key `kid` of `issuer`, which speaks for `country`, from its
    /// SPKI PEM. Refused: a malformed country, an issuer already listed for
    /// another country, a `kid` already listed for the issuer, a key that is
    /// not of `algorithm`.
    pub fn add_key(
        &mut self,
        country: &str,
        issuer: &str,
        kid: &str,
        algorithm: KeyAlgorithm,
        pem: &str,
    ) -> Result<(), AccessError> {
        if !is_country_code(country) {
            return Err(AccessError::TrustList(format!(
                "country {country:?} of issuer {issuer:?} is not an ISO 3166-1 alpha-2 code in upper case"
            )));
        }
        if issuer.is_empty() || kid.is_empty() {
            return Err(AccessError::TrustList(
                "issuer ids and key ids must not be empty".to_owned(),
            ));
        }
        let key = TrustedKey::from_pem(kid, algorithm, pem)?;
        let entry = self
            .issuers
            .entry(issuer.to_owned())
            .or_insert_with(|| TrustedIssuer {
                country: country.to_owned(),
                keys: BTreeMap::new(),
            });
        if entry.country != country {
            return Err(AccessError::TrustList(format!(
                "issuer {issuer:?} is listed for {} and {country}",
                entry.country
            )));
        }
        if entry.keys.insert(kid.to_owned(), key).is_some() {
            return Err(AccessError::TrustList(format!(
                "issuer {issuer:?} lists key {kid:?} twice"
            )));
        }
        Ok(())
    }

    /// The trust list a description names; `pem_file` paths are relative to
    /// `base_dir` (the folder of the configuration file).
    pub fn from_description(
        description: &TrustListDescription,
        base_dir: &Path,
    ) -> Result<Self, AccessError> {
        let mut list = Self::new();
        for issuer in &description.issuer {
            if issuer.key.is_empty() {
                return Err(AccessError::TrustList(format!(
                    "issuer {:?} has no key",
                    issuer.id
                )));
            }
            for key in &issuer.key {
                let pem = match (&key.pem, &key.pem_file) {
                    (Some(pem), None) => pem.clone(),
                    (None, Some(file)) => {
                        let path = base_dir.join(file);
                        std::fs::read_to_string(&path)
                            .map_err(|source| AccessError::Read { path, source })?
                    }
                    _ => {
                        return Err(AccessError::TrustList(format!(
                            "key {:?} of issuer {:?} needs exactly one of pem and pem_file",
                            key.kid, issuer.id
                        )));
                    }
                };
                list.add_key(&issuer.country, &issuer.id, &key.kid, key.alg, &pem)?;
            }
        }
        Ok(list)
    }

    /// Reads a TOML trust list description file; `pem_file` paths are
    /// relative to the file's folder.
    pub fn load(path: &Path) -> Result<Self, AccessError> {
        let text = std::fs::read_to_string(path).map_err(|source| AccessError::Read {
            path: path.to_owned(),
            source,
        })?;
        let description: TrustListDescription = toml::from_str(&text)
            .map_err(|e| AccessError::TrustList(format!("{}: {e}", path.display())))?;
        Self::from_description(&description, path.parent().unwrap_or(Path::new(".")))
    }

    /// The issuer with this id (`iss`).
    pub fn issuer(&self, issuer: &str) -> Option<&TrustedIssuer> {
        self.issuers.get(issuer)
    }

    /// How many issuers are listed.
    pub fn len(&self) -> usize {
        self.issuers.len()
    }

    /// Whether no issuer is listed.
    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }
}

/// The serde form of a trust list (see the module documentation).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustListDescription {
    /// The identity providers, as `[[issuer]]` tables.
    #[serde(default)]
    pub issuer: Vec<IssuerDescription>,
}

/// One identity provider in a [`TrustListDescription`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerDescription {
    /// ISO 3166-1 alpha-2 code (upper case) of the country it speaks for.
    pub country: String,
    /// Its issuer id, the `iss` claim of its assertions.
    pub id: String,
    /// Its keys, as `[[issuer.key]]` tables.
    pub key: Vec<KeyDescription>,
}

/// One key of an identity provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyDescription {
    /// The JOSE `kid` its assertions carry in the header.
    pub kid: String,
    /// The one algorithm it verifies.
    pub alg: KeyAlgorithm,
    /// The SPKI PEM inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pem: Option<String>,
    /// Or a file holding it, relative to the description's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pem_file: Option<PathBuf>,
}

/// An officially assigned ISO 3166-1 alpha-2 code (the gateway's one check).
pub(crate) fn is_country_code(code: &str) -> bool {
    ehds_identifiers::CountryCode::parse(code).is_some()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

    use super::*;

    fn b64url(text: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(text).unwrap()
    }

    /// An SPKI PEM from a DER prefix (the AlgorithmIdentifier and BIT STRING
    /// header of RFC 5480 §2 / RFC 8410 §4) and the raw public key.
    fn spki_pem(prefix_hex: &str, key: &[u8]) -> String {
        let mut der: Vec<u8> = (0..prefix_hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&prefix_hex[i..i + 2], 16).unwrap())
            .collect();
        der.extend_from_slice(key);
        let base64 = STANDARD.encode(der);
        // RFC 7468 §2: lines of 64 characters.
        let lines: Vec<&str> = base64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    /// `(signing input, signature)` of a compact JWS.
    fn split(jws: &str) -> (&str, Vec<u8>) {
        let (input, signature) = jws.rsplit_once('.').unwrap();
        (input, b64url(signature))
    }

    fn tampered(input: &str) -> String {
        // One character of the payload changed.
        let mut chars: Vec<char> = input.chars().collect();
        let last = chars.len() - 1;
        chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
        chars.into_iter().collect()
    }

    /// RFC 7515 Appendix A.3: the ES256 example (JWK x, y; the JWS).
    #[test]
    fn es256_verifies_rfc7515_a3_and_refuses_it_tampered() {
        let mut point = vec![4];
        point.extend(b64url("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"));
        point.extend(b64url("x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"));
        let pem = spki_pem(
            "3059301306072a8648ce3d020106082a8648ce3d030107034200",
            &point,
        );
        let key = TrustedKey::from_pem("a3", KeyAlgorithm::Es256, &pem).unwrap();
        let (input, signature) = split(
            "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q",
        );
        assert_eq!(signature.len(), 64, "JWS ES256 is r || s, not DER");
        assert!(key.verifies(input.as_bytes(), &signature));
        assert!(!key.verifies(tampered(input).as_bytes(), &signature));
        let mut flipped = signature.clone();
        flipped[10] ^= 1;
        assert!(!key.verifies(input.as_bytes(), &flipped));
        // A signature that is not exactly 64 bytes is refused.
        assert!(!key.verifies(input.as_bytes(), &signature[..63]));
    }

    /// RFC 8037 Appendix A.4: the Ed25519 example (JWK x; the JWS).
    #[test]
    fn eddsa_verifies_rfc8037_a4_and_refuses_it_tampered() {
        let pem = spki_pem(
            "302a300506032b6570032100",
            &b64url("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"),
        );
        let key = TrustedKey::from_pem("a4", KeyAlgorithm::EdDsa, &pem).unwrap();
        let (input, signature) = split(
            "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg",
        );
        assert!(key.verifies(input.as_bytes(), &signature));
        assert!(!key.verifies(tampered(input).as_bytes(), &signature));
        let mut flipped = signature.clone();
        flipped[0] ^= 1;
        assert!(!key.verifies(input.as_bytes(), &flipped));
    }

    #[test]
    fn a_key_of_the_other_algorithm_is_refused_at_load() {
        let ed = spki_pem(
            "302a300506032b6570032100",
            &b64url("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"),
        );
        assert!(TrustedKey::from_pem("x", KeyAlgorithm::Es256, &ed).is_err());
    }
}
