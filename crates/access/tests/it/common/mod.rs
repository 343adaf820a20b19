//! Shared fixtures: deterministic test keys, a small federation (LU signs
//! with ES256, FR with EdDSA, DE with ES256), and a receiving NCP in BE.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ehds_access::{
    AssertionIssuer, Expectations, HealthProfessionalAssertion, KeyAlgorithm, Organisation,
    PatientRef, PurposeOfUse, TrustList, Verifier, VerifierSettings,
};
use ehds_access::{Login, Professional};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// The receiving NCP's audience id.
pub(crate) const AUDIENCE_BE: &str = "urn:ehds:ncp:BE";
pub(crate) const ISS_LU: &str = "https://idp.health.lu/hp";
pub(crate) const ISS_FR: &str = "https://idp.sante.fr/ps";
pub(crate) const ISS_DE: &str = "https://idp.gesundheit.de/hba";
pub(crate) const PATIENT_SYSTEM: &str = "urn:oid:2.16.17.710.850.1000.990.1";
pub(crate) const PATIENT_VALUE: &str = "BE-PATIENT-0001";

/// The verifier's clock in every test.
pub(crate) const NOW: OffsetDateTime = datetime!(2026-11-24 12:00 UTC);

/// A P-256 private key in PKCS#8 PEM, derived from a seed (tests only).
pub(crate) fn es256_private_pem(seed: u8) -> String {
    use p256::pkcs8::EncodePrivateKey as _;
    let secret = p256::SecretKey::from_slice(&[seed; 32]).unwrap();
    secret.to_pkcs8_pem(LineEnding::LF).unwrap().to_string()
}

/// An Ed25519 private key in PKCS#8 PEM, derived from a seed (tests only).
pub(crate) fn ed25519_private_pem(seed: u8) -> String {
    let secret = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    secret.to_pkcs8_pem(LineEnding::LF).unwrap().to_string()
}

pub(crate) fn lu_issuer() -> AssertionIssuer {
    AssertionIssuer::from_pkcs8_pem(
        ISS_LU,
        "LU",
        "lu-1",
        KeyAlgorithm::Es256,
        &es256_private_pem(7),
    )
    .unwrap()
}

pub(crate) fn fr_issuer() -> AssertionIssuer {
    AssertionIssuer::from_pkcs8_pem(
        ISS_FR,
        "FR",
        "fr-1",
        KeyAlgorithm::EdDsa,
        &ed25519_private_pem(9),
    )
    .unwrap()
}

pub(crate) fn de_issuer() -> AssertionIssuer {
    AssertionIssuer::from_pkcs8_pem(
        ISS_DE,
        "DE",
        "de-1",
        KeyAlgorithm::Es256,
        &es256_private_pem(11),
    )
    .unwrap()
}

/// The trust list of the BE gateway: LU, FR and DE identity providers.
pub(crate) fn trust_list() -> TrustList {
    let mut list = TrustList::new();
    for issuer in [lu_issuer(), fr_issuer(), de_issuer()] {
        list.add_key(
            issuer.country(),
            issuer.issuer(),
            issuer.kid(),
            issuer.algorithm(),
            issuer.public_key_pem(),
        )
        .unwrap();
    }
    list
}

pub(crate) fn verifier() -> Verifier {
    Verifier::new(trust_list(), VerifierSettings::default())
}

pub(crate) fn patient() -> PatientRef {
    PatientRef::new(PATIENT_SYSTEM, PATIENT_VALUE)
}

pub(crate) fn doctor() -> Login {
    Login {
        professional: Professional {
            id: "LU-HP-0042".into(),
            name: "Dr Anne Muller".into(),
            role: "2211".into(),
            organisation: Organisation {
                id: "LU-ORG-17".into(),
                name: "Centre Hospitalier de Luxembourg".into(),
            },
        },
        point_of_care: "Emergency department, Luxembourg City".into(),
    }
}

/// Valid claims from `issuer` for the BE NCP, issued at NOW for 10 minutes.
pub(crate) fn claims(issuer: &AssertionIssuer) -> HealthProfessionalAssertion {
    issuer.claims_for(
        &doctor(),
        AUDIENCE_BE,
        &patient(),
        PurposeOfUse::Treatment,
        NOW,
        Duration::minutes(10),
    )
}

/// What the BE gateway expects of a request sent by `peer_country`'s NCP.
pub(crate) fn expect_from<'a>(peer_country: &'a str, patient: &'a PatientRef) -> Expectations<'a> {
    Expectations {
        audience: AUDIENCE_BE,
        peer_country,
        patient,
        now: NOW,
    }
}

/// Polls a future to completion on this thread (the ledgers in these tests
/// answer at once; no runtime is needed).
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
    }
}

/// [`es256_private_pem`] as PKCS#8 DER.
pub(crate) fn es256_private_der(seed: u8) -> Vec<u8> {
    use p256::pkcs8::EncodePrivateKey as _;
    let secret = p256::SecretKey::from_slice(&[seed; 32]).unwrap();
    secret.to_pkcs8_der().unwrap().as_bytes().to_vec()
}

/// [`ed25519_private_pem`] as PKCS#8 DER.
pub(crate) fn ed25519_private_der(seed: u8) -> Vec<u8> {
    let secret = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    secret.to_pkcs8_der().unwrap().as_bytes().to_vec()
}
