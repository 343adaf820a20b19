//! The development PKI: every file is where the layout says, listed in its
//! README, and carries what the identity convention promises.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use ehds_dev_pki::{self as dev_pki, Authority, DevPkiSpec, Negative};
use ehds_test_support::{ScratchDir, files_with_extension};
use ehds_transport::{ListenerKind, NationalClientKind, PeerIdentity, TrustStore};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

fn cert(path: &std::path::Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).unwrap()
}

#[test]
fn every_file_is_listed_in_the_readme_and_exists() {
    let dir = ScratchDir::new("dev-pki");
    let layout = dev_pki::generate(dir.path(), &DevPkiSpec::for_tests(&["BE", "LU"])).unwrap();
    let readme = std::fs::read_to_string(dir.path().join("README.md")).unwrap();
    assert!(readme.contains("for development and tests only"));
    assert!(readme.contains(dev_pki::REGENERATE_COMMAND));
    let files = files_with_extension(dir.path(), "pem");
    // federation 4 + unrelated 2; per country: NCP 4, national CA + CRLs 4,
    // national server 2, clients 8, ES256 2, negatives 18.
    assert_eq!(files.len(), 6 + 2 * 38, "{files:?}");
    for file in &files {
        let rel = file.strip_prefix(dir.path()).unwrap().display().to_string();
        assert!(
            readme.contains(&format!("`{rel}`")),
            "{rel} not in the README"
        );
    }
    for cc in ["BE", "LU"] {
        for files in [
            layout.ncp_server(cc),
            layout.ncp_client(cc),
            layout.national_server(cc),
        ] {
            assert!(files.cert_chain.is_file() && files.private_key.is_file());
        }
        for case in Negative::ALL {
            assert!(layout.negative(cc, case).cert_chain.is_file(), "{case:?}");
        }
    }
}

#[test]
fn certificates_follow_the_identity_convention() {
    let dir = ScratchDir::new("dev-pki");
    let layout = dev_pki::generate(dir.path(), &DevPkiSpec::for_tests(&["BE", "LU"])).unwrap();
    for cc in ["BE", "LU"] {
        let lower = cc.to_ascii_lowercase();
        for files in [layout.ncp_server(cc), layout.ncp_client(cc)] {
            let der = cert(&files.cert_chain);
            assert_eq!(
                PeerIdentity::from_certificate(ListenerKind::Federation, &der).unwrap(),
                PeerIdentity::FederationNcp {
                    country: cc.into(),
                    ncp_id: format!("ncp-{lower}"),
                }
            );
            let (_, parsed) = X509Certificate::from_der(&der).unwrap();
            let san = parsed.subject_alternative_name().unwrap().unwrap().value;
            let names = format!("{:?}", san.general_names);
            assert!(names.contains(&format!("ncp.{lower}.ehds.test")), "{names}");
            assert!(names.contains("localhost"), "{names}");
            // An NCP certificate has no OU: it is no national client.
            assert!(PeerIdentity::from_certificate(ListenerKind::National, &der).is_err());
        }
        for kind in NationalClientKind::ALL {
            let der = cert(&layout.national_client(cc, kind).cert_chain);
            let PeerIdentity::NationalClient {
                country,
                kind: read,
                client_id,
                ..
            } = PeerIdentity::from_certificate(ListenerKind::National, &der).unwrap()
            else {
                panic!("not a national client");
            };
            assert_eq!((country.as_str(), read), (cc, kind));
            assert_eq!(client_id, format!("{kind}-1.{lower}"));
        }
        // The ES256 key pair: PKCS#8 private key, SPKI public key, matching.
        let private = layout.hp_assertion_private_key(cc);
        assert!(matches!(
            PrivateKeyDer::from_pem_file(&private).unwrap(),
            PrivateKeyDer::Pkcs8(_)
        ));
        let key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(&private).unwrap()).unwrap();
        assert_eq!(key.algorithm(), &rcgen::PKCS_ECDSA_P256_SHA256);
        assert_eq!(
            key.public_key_pem(),
            std::fs::read_to_string(layout.hp_assertion_public_key(cc)).unwrap()
        );
        // The national CA and the federation CA load as trust stores.
        TrustStore::load(&layout.trust(&Authority::National(cc.into()))).unwrap();
    }
    TrustStore::load(&layout.trust(&Authority::Federation)).unwrap();
}

#[test]
fn negatives_are_negative_by_construction() {
    let dir = ScratchDir::new("dev-pki");
    let spec = DevPkiSpec::for_tests(&["BE"]);
    let layout = dev_pki::generate(dir.path(), &spec).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let serial = |case| {
        let der = cert(&layout.negative("BE", case).cert_chain);
        let (_, parsed) = X509Certificate::from_der(&der).unwrap();
        parsed.raw_serial().to_vec()
    };
    let revoked = |path: std::path::PathBuf| {
        let der = CertificateRevocationListDer::from_pem_file(path).unwrap();
        let (_, crl) = CertificateRevocationList::from_der(&der).unwrap();
        let serials: Vec<Vec<u8>> = crl
            .iter_revoked_certificates()
            .map(|r| r.raw_serial().to_vec())
            .collect();
        (serials, crl.next_update().unwrap().to_datetime())
    };
    let (federation, next) = revoked(layout.crl(&Authority::Federation));
    assert!(federation.contains(&serial(Negative::NcpClientRevoked)));
    assert!(federation.contains(&serial(Negative::NcpServerRevoked)));
    assert!(!federation.contains(&serial(Negative::NcpClientExpired)));
    assert!(next > now + time::Duration::days(29));
    let (_, stale_next) = revoked(layout.stale_crl(&Authority::Federation));
    assert!(stale_next < now);
    let (national, _) = revoked(layout.crl(&Authority::National("BE".into())));
    assert!(national.contains(&serial(Negative::NationalClientRevoked)));
    for case in [Negative::NcpClientExpired, Negative::NationalClientExpired] {
        let der = cert(&layout.negative("BE", case).cert_chain);
        let (_, parsed) = X509Certificate::from_der(&der).unwrap();
        assert!(parsed.validity().not_after.to_datetime() < now, "{case:?}");
    }
    let der = cert(
        &layout
            .negative("BE", Negative::NcpClientCaFlagged)
            .cert_chain,
    );
    assert!(X509Certificate::from_der(&der).unwrap().1.is_ca());

    // Revoking adds to the CRL and keeps what was there.
    let good = layout.ncp_client("BE").cert_chain;
    dev_pki::revoke(
        &layout,
        &Authority::Federation,
        &good,
        time::Duration::days(1),
    )
    .unwrap();
    let (after, _) = revoked(layout.crl(&Authority::Federation));
    assert_eq!(after.len(), federation.len() + 1);
    let good = cert(&good);
    let (_, parsed) = X509Certificate::from_der(&good).unwrap();
    assert!(after.contains(&parsed.raw_serial().to_vec()));
}
