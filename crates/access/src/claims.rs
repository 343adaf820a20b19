//! The claims of a health-professional assertion and their JSON form.
//!
//! The token is a JWT (RFC 7519) in JWS compact serialisation (RFC 7515 §7.1).
//! Registered claims keep their RFC 7519 §4.1 meaning; the others replace the
//! attributes of the eHDSI HCP identity assertion and TRC assertion (SAML 2.0
//! with OASIS XSPA attribute names). Claims this crate does not understand are
//! ignored, as RFC 7519 §4 requires.
//!
//! A decoded example:
//!
//! ```json
//! {
//!   "iss": "https://idp.health.lu/hp",
//!   "sub": "LU-HP-0042",
//!   "aud": "urn:ehds:ncp:BE",
//!   "iat": 1795000000,
//!   "nbf": 1795000000,
//!   "exp": 1795000600,
//!   "jti": "6b0f9a1e-1c7d-4c52-9d7e-0a6f3d1f2b11",
//!   "name": "Dr Anne Muller",
//!   "role": "2211",
//!   "organisation": { "id": "LU-ORG-17", "name": "Centre Hospitalier de Luxembourg" },
//!   "point_of_care": "Emergency department, Luxembourg City",
//!   "purpose_of_use": "TREATMENT",
//!   "country": "LU",
//!   "treatment_relationship": {
//!     "patient": { "system": "urn:oid:2.16.17.710.850.1000.990.1", "value": "BE-123" }
//!   }
//! }
//! ```

use serde::{Deserialize, Serialize};

pub use ehds_identifiers::{Organisation, Professional, PurposeOfUse};
use time::OffsetDateTime;

/// The JOSE `typ` header value every assertion carries (RFC 8725 §3.11,
/// explicit typing: a token minted for another purpose by the same key cannot
/// pass as a health-professional assertion).
pub const ASSERTION_TYPE: &str = "ehds-hpa+jwt";

/// The claims of one health-professional assertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthProfessionalAssertion {
    /// Issuer: the identity provider of the professional's country, as listed
    /// in the [`crate::TrustList`] (RFC 7519 §4.1.1). eHDSI: the SAML
    /// `Assertion/Issuer` of the HCP identity assertion.
    pub iss: String,
    /// Subject: the professional's identifier at that identity provider
    /// (RFC 7519 §4.1.2). eHDSI: `Assertion/Subject/NameID`.
    pub sub: String,
    /// Audience: the NCP the assertion is meant for, e.g. `urn:ehds:ncp:BE`
    /// (RFC 7519 §4.1.3). eHDSI: `Conditions/AudienceRestriction/Audience`.
    pub aud: Audience,
    /// Issued at, seconds since the epoch (RFC 7519 §4.1.6, NumericDate).
    /// eHDSI: `Assertion/@IssueInstant`.
    pub iat: i64,
    /// Not before, seconds since the epoch (RFC 7519 §4.1.5); optional.
    /// eHDSI: `Conditions/@NotBefore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Expiry, seconds since the epoch (RFC 7519 §4.1.4): the assertion is
    /// refused at or after this instant (plus the clock skew). eHDSI:
    /// `Conditions/@NotOnOrAfter`.
    pub exp: i64,
    /// Unique token id (RFC 7519 §4.1.7), the key of replay protection
    /// together with `iss`. eHDSI: `Assertion/@ID`.
    pub jti: String,
    /// The professional's name, for the audit trail. eHDSI/XSPA:
    /// `urn:oasis:names:tc:xspa:1.0:subject:subject-id` (XSPA v2 and newer
    /// eHDSI profiles: `urn:oasis:names:tc:xacml:1.0:subject:subject-id`).
    pub name: String,
    /// The professional's occupation as an ISCO-08 code (e.g. `2211`
    /// generalist medical practitioner, `2262` pharmacist); must be one of
    /// [`crate::IscoRole`]'s table. eHDSI/XSPA:
    /// `urn:oasis:names:tc:xspa:1.0:subject:functional-role`, coded in ISCO-08
    /// (the structural role `urn:oasis:names:tc:xacml:2.0:subject:role`,
    /// "Licensed Health Care Providers", is implied: only licensed
    /// professionals get an assertion).
    pub role: String,
    /// The organisation the professional acts for.
    pub organisation: Organisation,
    /// Where the professional is: the point of care (ward, practice,
    /// pharmacy), free text. eHDSI/XSPA:
    /// `urn:oasis:names:tc:xspa:1.0:environment:locality`.
    pub point_of_care: String,
    /// Why the data is asked for: treatment or emergency treatment. eHDSI/XSPA:
    /// `urn:oasis:names:tc:xspa:1.0:subject:purposeofuse` (values `TREATMENT`,
    /// `EMERGENCY`).
    pub purpose_of_use: PurposeOfUse,
    /// ISO 3166-1 alpha-2 code of the professional's country; must be the
    /// issuer's country in the trust list. eHDSI takes it from the country
    /// (`C`) of the signing certificate of the requesting NCP.
    pub country: String,
    /// The one patient this assertion lets the professional see.
    pub treatment_relationship: TreatmentRelationship,
}

impl HealthProfessionalAssertion {
    /// Expiry as a date-time, `None` when `exp` is out of range.
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        OffsetDateTime::from_unix_timestamp(self.exp).ok()
    }

    /// The professional the claims describe (`sub`, `name`, `role`,
    /// `organisation`).
    pub fn professional(&self) -> Professional {
        Professional {
            id: self.sub.clone(),
            name: self.name.clone(),
            role: self.role.clone(),
            organisation: self.organisation.clone(),
        }
    }
}

/// Claims that must be present, in the order they are checked; a missing one
/// is refused with [`crate::AssertionRefusal::MissingClaim`] naming it.
/// Nested names use a dot.
pub const REQUIRED_CLAIMS: &[&str] = &[
    "sub",
    "aud",
    "iat",
    "exp",
    "jti",
    "name",
    "role",
    "organisation",
    "organisation.id",
    "organisation.name",
    "point_of_care",
    "purpose_of_use",
    "country",
    "treatment_relationship",
    "treatment_relationship.patient",
    "treatment_relationship.patient.system",
    "treatment_relationship.patient.value",
];

/// The `aud` claim: one string, or an array of strings (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience (what [`crate::AssertionIssuer`] writes).
    One(String),
    /// Several audiences; the receiving NCP must be one of them.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `audience` is named (exact, case-sensitive comparison as
    /// RFC 7519 §4.1.3 requires for StringOrURI values).
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Audience::One(one) => one == audience,
            Audience::Many(many) => many.iter().any(|a| a == audience),
        }
    }
}

/// A patient identifier: the namespace and the value, compared exactly.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PatientRef {
    /// The identifier's namespace (a URI, e.g. `urn:oid:...`), as FHIR
    /// `Identifier.system`.
    pub system: String,
    /// The identifier itself, as FHIR `Identifier.value`.
    pub value: String,
}

impl PatientRef {
    /// A patient reference from its system and value.
    pub fn new(system: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            system: system.into(),
            value: value.into(),
        }
    }
}

/// The treatment relationship: binds the assertion to one patient, so a
/// stolen or forwarded assertion cannot open another patient's record.
/// eHDSI: the TRC (treatment relationship confirmation) assertion, whose
/// `urn:oasis:names:tc:xacml:2.0:resource:resource-id` attribute names the
/// patient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreatmentRelationship {
    /// The patient the professional is treating.
    pub patient: PatientRef,
}
