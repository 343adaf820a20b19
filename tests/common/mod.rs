//! Shared by the end-to-end tests: HTTPS clients with the development PKI's
//! client certificates (deploy/dev-pki), as the real callers of a gateway.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub(crate) mod two_countries;

use std::path::PathBuf;
use std::time::Duration;

use ehds_transport::{ClientTimeouts, IdentityFiles, TlsIdentity, TrustFiles, TrustStore};

/// `deploy/dev-pki` of the repository.
pub(crate) fn dev_pki() -> PathBuf {
    ehds_test_support::repo_root().join("deploy/dev-pki")
}

/// A client of `country`'s national API presenting the development
/// certificate of a national system of `kind` (`ehr-system`, `pharmacy`,
/// `doctor-system`, `patient-portal`), trusting the national CA.
pub(crate) fn national_client(country: &str, kind: &str) -> reqwest::Client {
    let dir = dev_pki().join(country);
    client_with(
        IdentityFiles {
            cert_chain: dir.join(format!("clients/{kind}.pem")),
            private_key: dir.join(format!("clients/{kind}.key.pem")),
        },
        TrustFiles {
            ca_certs: vec![dir.join("national-ca.pem")],
            crls: vec![dir.join("national-ca.crl.pem")],
        },
    )
}

/// A BE hospital EHR system: the caller that pushes patient summaries.
pub(crate) fn ehr_client() -> reqwest::Client {
    national_client("be", "ehr-system")
}

/// A client with the given certificate and trust.
pub(crate) fn client_with(identity: IdentityFiles, trust: TrustFiles) -> reqwest::Client {
    let identity = TlsIdentity::load(&identity).unwrap();
    let trust = TrustStore::load(&trust).unwrap();
    ehds_transport::federation_client(
        &identity,
        &trust,
        ClientTimeouts {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(60),
        },
    )
    .unwrap()
}
