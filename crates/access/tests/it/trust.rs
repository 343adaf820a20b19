//! Loading the trust list and the issuer's keys.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::common::*;
use ehds_access::{
    AccessError, AssertionIssuer, KeyAlgorithm, TrustList, TrustListDescription, Verifier,
    VerifierSettings,
};
use ehds_test_support::ScratchDir;

#[test]
fn trust_list_loads_from_a_toml_description_with_key_files() {
    let dir = ScratchDir::new("access-trust");
    std::fs::write(dir.path().join("lu.pub.pem"), lu_issuer().public_key_pem()).unwrap();
    let fr_pem = fr_issuer().public_key_pem().to_owned();
    let toml = format!(
        r#"
        [[issuer]]
        country = "LU"
        id = "{ISS_LU}"
        [[issuer.key]]
        kid = "lu-1"
        alg = "ES256"
        pem_file = "lu.pub.pem"

        [[issuer]]
        country = "FR"
        id = "{ISS_FR}"
        [[issuer.key]]
        kid = "fr-1"
        alg = "EdDSA"
        pem = """
{fr_pem}"""
        "#
    );
    let path = dir.path().join("trust-list.toml");
    std::fs::write(&path, toml).unwrap();
    let list = TrustList::load(&path).unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list.issuer(ISS_LU).unwrap().country(), "LU");
    assert_eq!(
        list.issuer(ISS_FR)
            .unwrap()
            .key("fr-1")
            .unwrap()
            .algorithm(),
        KeyAlgorithm::EdDsa
    );

    // And it verifies what those issuers sign.
    let verifier = Verifier::new(list, VerifierSettings::default());
    let patient = patient();
    let fr = fr_issuer();
    let token = fr.sign(&claims(&fr)).unwrap();
    assert!(verifier.check(&token, &expect_from("FR", &patient)).is_ok());
}

#[test]
fn description_round_trips_through_toml() {
    let description: TrustListDescription = toml::from_str(
        r#"
        [[issuer]]
        country = "LU"
        id = "https://idp.health.lu/hp"
        [[issuer.key]]
        kid = "lu-1"
        alg = "ES256"
        pem_file = "lu.pub.pem"
        "#,
    )
    .unwrap();
    let text = toml::to_string(&description).unwrap();
    assert_eq!(
        toml::from_str::<TrustListDescription>(&text).unwrap(),
        description
    );
}

#[test]
fn a_key_of_the_wrong_kind_is_refused_at_load() {
    let mut list = TrustList::new();
    // An Ed25519 public key announced as ES256, and the reverse.
    let err = list
        .add_key(
            "FR",
            ISS_FR,
            "fr-1",
            KeyAlgorithm::Es256,
            fr_issuer().public_key_pem(),
        )
        .unwrap_err();
    assert!(matches!(err, AccessError::InvalidKey { .. }), "{err}");
    let err = list
        .add_key(
            "LU",
            ISS_LU,
            "lu-1",
            KeyAlgorithm::EdDsa,
            lu_issuer().public_key_pem(),
        )
        .unwrap_err();
    assert!(matches!(err, AccessError::InvalidKey { .. }), "{err}");
    // A private key where a public one belongs.
    let err = list
        .add_key(
            "LU",
            ISS_LU,
            "lu-1",
            KeyAlgorithm::Es256,
            &es256_private_pem(7),
        )
        .unwrap_err();
    assert!(matches!(err, AccessError::InvalidKey { .. }), "{err}");
    assert!(list.is_empty());
}

#[test]
fn inconsistent_trust_lists_are_refused() {
    let lu_pem = lu_issuer().public_key_pem().to_owned();
    let mut list = TrustList::new();
    list.add_key("LU", ISS_LU, "lu-1", KeyAlgorithm::Es256, &lu_pem)
        .unwrap();
    // Same kid twice.
    assert!(matches!(
        list.add_key("LU", ISS_LU, "lu-1", KeyAlgorithm::Es256, &lu_pem),
        Err(AccessError::TrustList(_))
    ));
    // One issuer for two countries.
    assert!(matches!(
        list.add_key("FR", ISS_LU, "lu-9", KeyAlgorithm::Es256, &lu_pem),
        Err(AccessError::TrustList(_))
    ));
    // Malformed country codes.
    for country in ["lu", "LUX", "", "L1"] {
        assert!(matches!(
            list.add_key(country, "x", "k", KeyAlgorithm::Es256, &lu_pem),
            Err(AccessError::TrustList(_))
        ));
    }
    // A key with both pem and pem_file, or neither.
    let description: TrustListDescription = toml::from_str(&format!(
        r#"
        [[issuer]]
        country = "LU"
        id = "x"
        [[issuer.key]]
        kid = "k"
        alg = "ES256"
        pem_file = "a.pem"
        pem = """
{lu_pem}"""
        "#
    ))
    .unwrap();
    assert!(matches!(
        TrustList::from_description(&description, std::path::Path::new(".")),
        Err(AccessError::TrustList(_))
    ));
    // A missing key file names the file.
    let description: TrustListDescription = toml::from_str(
        r#"
        [[issuer]]
        country = "LU"
        id = "x"
        [[issuer.key]]
        kid = "k"
        alg = "ES256"
        pem_file = "does-not-exist.pem"
        "#,
    )
    .unwrap();
    assert!(matches!(
        TrustList::from_description(&description, std::path::Path::new(".")),
        Err(AccessError::Read { .. })
    ));
    // Unknown fields are typos, not ignored.
    assert!(
        toml::from_str::<TrustListDescription>("[[issuer]]\ncountry=\"LU\"\nid=\"x\"\nkeys=[]")
            .is_err()
    );
}

#[test]
fn issuer_refuses_keys_of_the_wrong_kind() {
    assert!(matches!(
        AssertionIssuer::from_pkcs8_pem(
            ISS_LU,
            "LU",
            "lu-1",
            KeyAlgorithm::EdDsa,
            &es256_private_pem(7)
        ),
        Err(AccessError::InvalidKey { .. })
    ));
    assert!(matches!(
        AssertionIssuer::from_pkcs8_pem(
            ISS_FR,
            "FR",
            "fr-1",
            KeyAlgorithm::Es256,
            &ed25519_private_pem(9)
        ),
        Err(AccessError::InvalidKey { .. })
    ));
    assert!(matches!(
        AssertionIssuer::from_pkcs8_pem(
            ISS_LU,
            "LU",
            "lu-1",
            KeyAlgorithm::Es256,
            lu_issuer().public_key_pem()
        ),
        Err(AccessError::InvalidKey { .. })
    ));
}

#[test]
fn issued_jtis_are_unique() {
    let lu = lu_issuer();
    let jtis: std::collections::BTreeSet<String> = (0..1000).map(|_| claims(&lu).jti).collect();
    assert_eq!(jtis.len(), 1000);
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

#[test]
fn keys_made_by_openssl_sign_and_verify() {
    for (country, iss, kid, alg, private, public) in [
        (
            "LU",
            ISS_LU,
            "lu-ossl",
            KeyAlgorithm::Es256,
            "openssl-p256.key.pem",
            "openssl-p256.pub.pem",
        ),
        (
            "FR",
            ISS_FR,
            "fr-ossl",
            KeyAlgorithm::EdDsa,
            "openssl-ed25519.key.pem",
            "openssl-ed25519.pub.pem",
        ),
    ] {
        let issuer =
            AssertionIssuer::from_pkcs8_pem(iss, country, kid, alg, &fixture(private)).unwrap();
        assert_eq!(issuer.public_key_pem().trim(), fixture(public).trim());
        let mut list = TrustList::new();
        list.add_key(country, iss, kid, alg, &fixture(public))
            .unwrap();
        let verifier = Verifier::new(list, VerifierSettings::default());
        let patient = patient();
        let token = issuer.sign(&claims(&issuer)).unwrap();
        assert!(
            verifier
                .check(&token, &expect_from(country, &patient))
                .is_ok(),
            "{alg}"
        );
    }
}

#[test]
fn p384_and_rsa_keys_are_refused_for_both_algorithms() {
    // ES256 is P-256 only (RFC 7518 §3.4): a P-384 key must not load as one.
    for file in ["openssl-p384.pub.pem", "openssl-rsa.pub.pem"] {
        for alg in [KeyAlgorithm::Es256, KeyAlgorithm::EdDsa] {
            let err = TrustList::new()
                .add_key("LU", ISS_LU, "k", alg, &fixture(file))
                .unwrap_err();
            assert!(
                matches!(err, AccessError::InvalidKey { .. }),
                "{file} {alg}: {err}"
            );
        }
    }
}
