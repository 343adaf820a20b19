//! Who is on the other end of a verified connection, read from its
//! certificate's subject (the identity convention of the crate doc).

use std::fmt;

use sha2::{Digest, Sha256};
use x509_parser::oid_registry::{
    OID_X509_COMMON_NAME, OID_X509_COUNTRY_NAME, OID_X509_ORGANIZATION_NAME,
    OID_X509_ORGANIZATIONAL_UNIT,
};
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

use crate::TransportError;

/// Which listener a connection came in on; decides which identity a
/// certificate must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListenerKind {
    /// The cross-border listener: peers are other countries' NCPs with
    /// certificates from the federation CA.
    Federation,
    /// The national API: hospital EHRs, pharmacies, doctors' systems and the
    /// patient portal with certificates from the national CA.
    National,
}

impl ListenerKind {
    /// The other listener: where a client of this one belongs if it called
    /// the wrong one.
    pub fn other(self) -> Self {
        match self {
            Self::Federation => Self::National,
            Self::National => Self::Federation,
        }
    }

    /// `federation` or `national`, for logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Federation => "federation",
            Self::National => "national",
        }
    }
}

/// The kind of a national client, from its certificate's OU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NationalClientKind {
    /// A hospital or practice EHR system (OU `ehr-system`).
    EhrSystem,
    /// A pharmacy system (OU `pharmacy`).
    Pharmacy,
    /// A doctor's system (OU `doctor-system`).
    DoctorSystem,
    /// The patient portal (OU `patient-portal`).
    PatientPortal,
}

impl NationalClientKind {
    /// Every kind.
    pub const ALL: [Self; 4] = [
        Self::EhrSystem,
        Self::Pharmacy,
        Self::DoctorSystem,
        Self::PatientPortal,
    ];

    /// The OU value that encodes this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EhrSystem => "ehr-system",
            Self::Pharmacy => "pharmacy",
            Self::DoctorSystem => "doctor-system",
            Self::PatientPortal => "patient-portal",
        }
    }

    /// The kind an OU value names, if any.
    pub fn from_ou(ou: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == ou)
    }
}

impl fmt::Display for NationalClientKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The authenticated peer of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PeerIdentity {
    /// Another country's national contact point (federation listener).
    FederationNcp {
        /// ISO 3166-1 alpha-2 code from the subject's C.
        country: String,
        /// The NCP id from the subject's CN.
        ncp_id: String,
    },
    /// A national system (national listener).
    NationalClient {
        /// ISO 3166-1 alpha-2 code from the subject's C.
        country: String,
        /// The organisation from the subject's O.
        organisation: String,
        /// The kind from the subject's OU.
        kind: NationalClientKind,
        /// The client id from the subject's CN.
        client_id: String,
    },
}

impl PeerIdentity {
    /// Reads the identity a listener of `kind` requires from a verified
    /// end-entity certificate (DER). A missing, repeated or malformed
    /// attribute is an error: the connection is then closed.
    pub fn from_certificate(kind: ListenerKind, der: &[u8]) -> Result<Self, TransportError> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| TransportError::Identity(format!("unparsable certificate: {e}")))?;
        Self::from_subject(kind, cert.subject())
    }

    fn from_subject(kind: ListenerKind, subject: &X509Name<'_>) -> Result<Self, TransportError> {
        let country = one(subject, &OID_X509_COUNTRY_NAME, "C")?;
        if ehds_identifiers::CountryCode::parse(&country).is_none() {
            return Err(TransportError::Identity(format!(
                "C={country:?} is not an ISO 3166-1 alpha-2 code"
            )));
        }
        let cn = one(subject, &OID_X509_COMMON_NAME, "CN")?;
        match kind {
            ListenerKind::Federation => Ok(Self::FederationNcp {
                country,
                ncp_id: cn,
            }),
            ListenerKind::National => {
                let organisation = one(subject, &OID_X509_ORGANIZATION_NAME, "O")?;
                let ou = one(subject, &OID_X509_ORGANIZATIONAL_UNIT, "OU")?;
                let kind = NationalClientKind::from_ou(&ou).ok_or_else(|| {
                    TransportError::Identity(format!("OU={ou:?} is not a known client kind"))
                })?;
                Ok(Self::NationalClient {
                    country,
                    organisation,
                    kind,
                    client_id: cn,
                })
            }
        }
    }

    /// The peer's country.
    pub fn country(&self) -> &str {
        match self {
            Self::FederationNcp { country, .. } | Self::NationalClient { country, .. } => country,
        }
    }
}

/// The value of the one attribute `oid` of a name: absent, repeated, empty,
/// not a string or with control characters is refused.
fn one(
    name: &X509Name<'_>,
    oid: &x509_parser::der_parser::Oid<'_>,
    label: &str,
) -> Result<String, TransportError> {
    let mut values = name.iter_attributes().filter(|a| a.attr_type() == oid);
    let (Some(attr), None) = (values.next(), values.next()) else {
        return Err(TransportError::Identity(format!(
            "the subject must carry exactly one {label}"
        )));
    };
    let value = attr
        .as_str()
        .map_err(|_| TransportError::Identity(format!("{label} is not a string")))?;
    if value.trim().is_empty() || value.chars().any(char::is_control) {
        return Err(TransportError::Identity(format!(
            "{label} is empty or has control characters"
        )));
    }
    Ok(value.to_owned())
}

/// SHA-256 of a certificate's DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertFingerprint(pub [u8; 32]);

impl CertFingerprint {
    /// The fingerprint of `der`.
    pub fn of(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertFingerprint({})", self.to_hex())
    }
}

/// What the serve loop knows about a verified peer; inserted into every
/// request's extensions (alongside the bare [`PeerIdentity`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPeer {
    /// Who the peer is.
    pub identity: PeerIdentity,
    /// SHA-256 of its end-entity certificate.
    pub fingerprint: CertFingerprint,
    /// Its certificate's serial number, lower-case hex.
    pub serial_hex: String,
    /// Its certificate's notAfter.
    pub not_after: time::OffsetDateTime,
}

impl VerifiedPeer {
    /// Reads identity, fingerprint, serial and notAfter from a verified
    /// end-entity certificate (DER).
    pub fn from_certificate(kind: ListenerKind, der: &[u8]) -> Result<Self, TransportError> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| TransportError::Identity(format!("unparsable certificate: {e}")))?;
        Ok(Self {
            identity: PeerIdentity::from_subject(kind, cert.subject())?,
            fingerprint: CertFingerprint::of(der),
            serial_hex: cert
                .raw_serial()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            not_after: cert.validity().not_after.to_datetime(),
        })
    }
}
