//! How long the loaded trust material stays usable: each certificate's
//! `notAfter` (RFC 5280 §4.1.2.5) and each CRL's `nextUpdate` (RFC 5280
//! §5.1.2.5), read from what a listener or the outbound client has loaded,
//! for the operator's gauges and warnings. Nothing here decides a
//! handshake: webpki checks the same dates on every connection.

use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

/// What an [`Expiry`] is the end of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExpiryKind {
    /// The gateway's own certificate (a listener's server certificate, the
    /// outbound client's certificate): its `notAfter`.
    Certificate,
    /// A CA certificate: a trust anchor, or an intermediate of the gateway's
    /// own chain: its `notAfter`.
    CaCertificate,
    /// A CRL of a trusted CA: its `nextUpdate`, after which every handshake
    /// it covers fails until a fresh CRL is loaded.
    Crl,
}

impl ExpiryKind {
    /// `certificate`, `ca` or `crl`, for metrics labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Certificate => "certificate",
            Self::CaCertificate => "ca",
            Self::Crl => "crl",
        }
    }
}

/// One date after which a loaded certificate or CRL no longer serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    /// What ends.
    pub kind: ExpiryKind,
    /// The certificate's subject, or the CRL's issuer (RFC 4514 form).
    pub subject: String,
    /// `notAfter`, or `nextUpdate`.
    pub at: OffsetDateTime,
}

/// The `notAfter` of every certificate of a chain: the first is the end
/// entity ([`ExpiryKind::Certificate`]), the rest its CAs. Unparsable
/// certificates are skipped (loading would have refused them).
pub(crate) fn of_chain(chain: &[CertificateDer<'_>]) -> Vec<Expiry> {
    chain
        .iter()
        .enumerate()
        .filter_map(|(index, der)| {
            let kind = if index == 0 {
                ExpiryKind::Certificate
            } else {
                ExpiryKind::CaCertificate
            };
            of_certificate(der, kind)
        })
        .collect()
}

/// The `notAfter` of one certificate.
pub(crate) fn of_certificate(der: &CertificateDer<'_>, kind: ExpiryKind) -> Option<Expiry> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some(Expiry {
        kind,
        subject: cert.subject().to_string(),
        at: cert.validity().not_after.to_datetime(),
    })
}

/// The `nextUpdate` of a CRL (none when it has none).
pub(crate) fn of_crl(der: &CertificateRevocationListDer<'_>) -> Option<Expiry> {
    let (_, crl) = CertificateRevocationList::from_der(der).ok()?;
    Some(Expiry {
        kind: ExpiryKind::Crl,
        subject: crl.issuer().to_string(),
        at: crl.next_update()?.to_datetime(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::{IdentityFiles, TlsIdentity, TrustFiles, TrustStore};

    /// The repository's development PKI: its national CA, CRL and server
    /// certificate, each with its date.
    #[test]
    fn a_trust_store_and_an_identity_tell_their_dates() {
        let be = ehds_test_support::repo_root().join("deploy/dev-pki/be");
        let trust = TrustStore::load(&TrustFiles {
            ca_certs: vec![be.join("national-ca.pem")],
            crls: vec![be.join("national-ca.crl.pem")],
        })
        .unwrap();
        let expiries = trust.expiries();
        assert_eq!(expiries.len(), 2, "{expiries:?}");
        assert_eq!(expiries[0].kind, ExpiryKind::CaCertificate);
        assert!(expiries[0].subject.contains("CN=EHDS Dev BE National CA"));
        assert_eq!(expiries[1].kind, ExpiryKind::Crl);
        assert_eq!(expiries[1].subject, expiries[0].subject);
        // Generated 2026-11-24: CRLs for 365 days, certificates for 3653.
        assert!(expiries[1].at < expiries[0].at);
        let identity = TlsIdentity::load(&IdentityFiles {
            cert_chain: be.join("national-server.pem"),
            private_key: be.join("national-server.key.pem"),
        })
        .unwrap();
        let own = identity.expiries();
        assert_eq!(own[0].kind, ExpiryKind::Certificate);
        assert!(own[0].subject.contains("CN=national-api-be"), "{own:?}");
        assert!(own[0].at.year() >= 2036);
    }
}
