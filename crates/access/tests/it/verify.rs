//! Every refusal of the verifier, each produced by a token crafted to trigger
//! it, next to the valid tokens it must accept.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::common::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ehds_access::claims::REQUIRED_CLAIMS;
use ehds_access::{
    ASSERTION_TYPE, AccessError, AssertionRefusal, Audience, InMemoryReplayLedger, PatientRef,
    PurposeOfUse, ReplayLedger, VerifiedAssertion,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

/// Checks `token` as the BE gateway does for a request from `peer`.
fn check_from(peer: &str, token: &str) -> Result<(), AssertionRefusal> {
    let patient = patient();
    verifier()
        .check(token, &expect_from(peer, &patient))
        .map(|_| ())
}

fn check_lu(token: &str) -> Result<(), AssertionRefusal> {
    check_from("LU", token)
}

fn verify_lu(
    token: &str,
    ledger: &InMemoryReplayLedger,
) -> Result<VerifiedAssertion, AssertionRefusal> {
    let patient = patient();
    block_on(verifier().verify(token, &expect_from("LU", &patient), ledger)).unwrap()
}

fn lu_claims_json() -> Value {
    serde_json::to_value(claims(&lu_issuer())).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token whose parts are exactly the given header, claims and signature.
fn raw_token(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        signature
    )
}

#[test]
fn valid_es256_assertion_is_accepted_with_its_claims() {
    let ledger = InMemoryReplayLedger::default();
    let token = lu_issuer().sign(&claims(&lu_issuer())).unwrap();
    let verified = verify_lu(&token, &ledger).unwrap();
    assert_eq!(verified.issuer(), ISS_LU);
    assert_eq!(verified.country(), "LU");
    assert_eq!(verified.kid(), "lu-1");
    assert_eq!(verified.professional_id(), "LU-HP-0042");
    assert_eq!(verified.role().code(), "2211");
    assert_eq!(verified.purpose(), PurposeOfUse::Treatment);
    assert_eq!(verified.patient(), &patient());
    assert_eq!(verified.expires_at(), NOW + Duration::minutes(10));
    assert_eq!(verified.claims().organisation.id, "LU-ORG-17");
    assert_eq!(ledger.len(), 1);
}

#[test]
fn valid_eddsa_assertion_is_accepted() {
    let fr = fr_issuer();
    let token = fr.sign(&claims(&fr)).unwrap();
    assert_eq!(check_from("FR", &token), Ok(()));
}

#[test]
fn token_header_is_typed_and_names_its_key() {
    let token = lu_issuer().sign(&claims(&lu_issuer())).unwrap();
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], ASSERTION_TYPE);
    assert_eq!(header["kid"], "lu-1");
}

#[test]
fn replayed_jti_is_refused() {
    let ledger = InMemoryReplayLedger::default();
    let token = lu_issuer().sign(&claims(&lu_issuer())).unwrap();
    assert!(verify_lu(&token, &ledger).is_ok());
    assert_eq!(verify_lu(&token, &ledger), Err(AssertionRefusal::Replayed));
    // A different token reusing the jti is a replay too.
    let mut again = claims(&lu_issuer());
    again.jti = serde_json::from_str::<Value>(
        &String::from_utf8(
            URL_SAFE_NO_PAD
                .decode(token.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap(),
    )
    .unwrap()["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    again.point_of_care = "Another ward".into();
    let token2 = lu_issuer().sign(&again).unwrap();
    assert_eq!(verify_lu(&token2, &ledger), Err(AssertionRefusal::Replayed));
}

#[test]
fn expired_is_refused_and_within_skew_is_accepted() {
    let lu = lu_issuer();
    let mut c = claims(&lu);
    c.iat = (NOW - Duration::minutes(20)).unix_timestamp();
    c.nbf = Some(c.iat);
    c.exp = (NOW - Duration::seconds(61)).unix_timestamp();
    assert_eq!(
        check_lu(&lu.sign(&c).unwrap()),
        Err(AssertionRefusal::Expired)
    );
    // Exactly at exp + skew: refused (the current time must be before it).
    c.exp = (NOW - Duration::seconds(60)).unix_timestamp();
    assert_eq!(
        check_lu(&lu.sign(&c).unwrap()),
        Err(AssertionRefusal::Expired)
    );
    // Expired 30 s ago by the issuer's clock: within the 60 s skew.
    c.exp = (NOW - Duration::seconds(30)).unix_timestamp();
    assert_eq!(check_lu(&lu.sign(&c).unwrap()), Ok(()));
}

#[test]
fn future_dated_beyond_skew_is_refused_and_within_skew_is_accepted() {
    let lu = lu_issuer();
    let at = |offset: Duration| {
        lu.claims_for(
            &doctor(),
            AUDIENCE_BE,
            &patient(),
            PurposeOfUse::Treatment,
            NOW + offset,
            Duration::minutes(10),
        )
    };
    let far = at(Duration::minutes(5));
    assert_eq!(
        check_lu(&lu.sign(&far).unwrap()),
        Err(AssertionRefusal::NotYetValid)
    );
    let just = at(Duration::seconds(61));
    assert_eq!(
        check_lu(&lu.sign(&just).unwrap()),
        Err(AssertionRefusal::NotYetValid)
    );
    let near = at(Duration::seconds(30));
    assert_eq!(check_lu(&lu.sign(&near).unwrap()), Ok(()));
    // iat now, but nbf beyond the skew.
    let mut later = claims(&lu);
    later.nbf = Some((NOW + Duration::minutes(5)).unix_timestamp());
    assert_eq!(
        check_lu(&lu.sign(&later).unwrap()),
        Err(AssertionRefusal::NotYetValid)
    );
}

#[test]
fn clock_skew_is_configurable() {
    let lu = lu_issuer();
    let c = lu.claims_for(
        &doctor(),
        AUDIENCE_BE,
        &patient(),
        PurposeOfUse::Treatment,
        NOW + Duration::seconds(30),
        Duration::minutes(10),
    );
    let token = lu.sign(&c).unwrap();
    let strict = ehds_access::Verifier::new(
        trust_list(),
        ehds_access::VerifierSettings {
            clock_skew_secs: 10,
            ..Default::default()
        },
    );
    let patient = patient();
    assert_eq!(
        strict
            .check(&token, &expect_from("LU", &patient))
            .map(|_| ()),
        Err(AssertionRefusal::NotYetValid)
    );
}

#[test]
fn lifetime_too_long_is_refused_and_one_hour_is_accepted() {
    let lu = lu_issuer();
    let mut c = claims(&lu);
    c.exp = c.iat + 3601;
    assert_eq!(
        check_lu(&lu.sign(&c).unwrap()),
        Err(AssertionRefusal::LifetimeTooLong)
    );
    c.exp = c.iat + 2 * 3600;
    assert_eq!(
        check_lu(&lu.sign(&c).unwrap()),
        Err(AssertionRefusal::LifetimeTooLong)
    );
    c.exp = c.iat + 3600;
    assert_eq!(check_lu(&lu.sign(&c).unwrap()), Ok(()));
    // exp before iat is not a lifetime at all.
    c.exp = c.iat - 1;
    assert!(matches!(
        check_lu(&lu.sign(&c).unwrap()),
        Err(AssertionRefusal::Malformed(_))
    ));
}

#[test]
fn unknown_issuer_is_refused() {
    // Signed with a key nobody trusts, under an issuer nobody lists.
    let rogue = ehds_access::AssertionIssuer::from_pkcs8_pem(
        "https://idp.rogue.example",
        "LU",
        "lu-1",
        ehds_access::KeyAlgorithm::Es256,
        &es256_private_pem(99),
    )
    .unwrap();
    assert_eq!(
        check_lu(&rogue.sign(&claims(&rogue)).unwrap()),
        Err(AssertionRefusal::UnknownIssuer)
    );
}

#[test]
fn unknown_key_is_refused() {
    let rotated = ehds_access::AssertionIssuer::from_pkcs8_pem(
        ISS_LU,
        "LU",
        "lu-2",
        ehds_access::KeyAlgorithm::Es256,
        &es256_private_pem(7),
    )
    .unwrap();
    assert_eq!(
        check_lu(&rotated.sign(&claims(&rotated)).unwrap()),
        Err(AssertionRefusal::UnknownKey)
    );
}

#[test]
fn wrong_audience_is_refused_and_an_audience_list_naming_us_is_accepted() {
    let lu = lu_issuer();
    let mut c = claims(&lu);
    c.aud = Audience::One("urn:ehds:ncp:FR".into());
    assert_eq!(
        check_lu(&lu.sign(&c).unwrap()),
        Err(AssertionRefusal::WrongAudience)
    );
    c.aud = Audience::One("urn:ehds:ncp:be".into());
    assert_eq!(
        check_lu(&lu.sign(&c).unwrap()),
        Err(AssertionRefusal::WrongAudience)
    );
    c.aud = Audience::Many(vec!["urn:ehds:ncp:FR".into(), AUDIENCE_BE.into()]);
    assert_eq!(check_lu(&lu.sign(&c).unwrap()), Ok(()));
}

#[test]
fn alg_none_and_missing_signatures_are_refused_as_unsigned() {
    let claims = lu_claims_json();
    for alg in ["none", "None", "NONE"] {
        let header = json!({"alg": alg, "typ": ASSERTION_TYPE, "kid": "lu-1"});
        assert_eq!(
            check_lu(&raw_token(&header, &claims, "")),
            Err(AssertionRefusal::Unsigned),
            "{alg}"
        );
        // A "none" token with some signature bytes is still unsigned.
        assert_eq!(
            check_lu(&raw_token(&header, &claims, "AAAA")),
            Err(AssertionRefusal::Unsigned),
            "{alg}"
        );
    }
    // A genuine token with its signature stripped.
    let token = lu_issuer()
        .sign(&lu_issuer().claims_for(
            &doctor(),
            AUDIENCE_BE,
            &patient(),
            PurposeOfUse::Treatment,
            NOW,
            Duration::minutes(5),
        ))
        .unwrap();
    let stripped = format!("{}.", token.rsplit_once('.').unwrap().0);
    assert_eq!(check_lu(&stripped), Err(AssertionRefusal::Unsigned));
}

#[test]
fn hs256_keyed_with_the_public_key_is_refused() {
    // The classic key confusion: the attacker knows LU's public key (it is
    // published in the trust list) and uses its PEM bytes as an HMAC secret.
    let public_pem = lu_issuer().public_key_pem().to_owned();
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let mut header = Header::new(alg);
        header.typ = Some(ASSERTION_TYPE.into());
        header.kid = Some("lu-1".into());
        let token = jsonwebtoken::encode(
            &header,
            &lu_claims_json(),
            &EncodingKey::from_secret(public_pem.as_bytes()),
        )
        .unwrap();
        assert_eq!(
            check_lu(&token),
            Err(AssertionRefusal::DisallowedAlgorithm),
            "{alg:?}"
        );
    }
}

#[test]
fn algorithm_other_than_the_pinned_one_is_refused() {
    // FR's EdDSA key signs, but the header claims LU's kid (pinned ES256).
    let fr = fr_issuer();
    let mut c = claims(&fr);
    c.iss = ISS_LU.into();
    c.country = "LU".into();
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some(ASSERTION_TYPE.into());
    header.kid = Some("lu-1".into());
    let token = jsonwebtoken::encode(
        &header,
        &c,
        &EncodingKey::from_ed_der(&ed25519_private_der(9)),
    )
    .unwrap();
    assert_eq!(check_lu(&token), Err(AssertionRefusal::DisallowedAlgorithm));
}

#[test]
fn signature_by_another_countrys_key_is_refused() {
    // DE's ES256 key signs an assertion that claims to come from LU's IdP
    // with LU's kid: the header and claims are right, the signature is not.
    let de = de_issuer();
    let mut c = claims(&de);
    c.iss = ISS_LU.into();
    c.country = "LU".into();
    let forged = ehds_access::AssertionIssuer::from_pkcs8_pem(
        ISS_LU,
        "LU",
        "lu-1",
        ehds_access::KeyAlgorithm::Es256,
        &es256_private_pem(11),
    )
    .unwrap();
    assert_eq!(
        check_lu(&forged.sign(&c).unwrap()),
        Err(AssertionRefusal::BadSignature)
    );
}

#[test]
fn tampered_claims_are_refused() {
    let token = lu_issuer().sign(&claims(&lu_issuer())).unwrap();
    let (header, rest) = token.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let mut c = lu_claims_json();
    c["role"] = json!("2212");
    let tampered = format!("{header}.{}.{signature}", b64(c.to_string().as_bytes()));
    assert_eq!(check_lu(&tampered), Err(AssertionRefusal::BadSignature));
    // A signature that is not base64url, or of the wrong length.
    assert_eq!(
        check_lu(&format!("{header}.{}.!!!", rest.split_once('.').unwrap().0)),
        Err(AssertionRefusal::BadSignature)
    );
    assert_eq!(
        check_lu(&format!(
            "{header}.{}.AAAA",
            rest.split_once('.').unwrap().0
        )),
        Err(AssertionRefusal::BadSignature)
    );
}

#[test]
fn wrong_patient_is_refused() {
    let lu = lu_issuer();
    let token = lu.sign(&claims(&lu)).unwrap();
    for other in [
        PatientRef::new(PATIENT_SYSTEM, "BE-PATIENT-0002"),
        PatientRef::new("urn:oid:1.2.3", PATIENT_VALUE),
        PatientRef::new(PATIENT_SYSTEM, PATIENT_VALUE.to_lowercase()),
    ] {
        assert_eq!(
            verifier()
                .check(&token, &expect_from("LU", &other))
                .map(|_| ()),
            Err(AssertionRefusal::PatientMismatch)
        );
    }
}

#[test]
fn unknown_role_is_refused() {
    let lu = lu_issuer();
    for role in ["2261", "22", "", "medical doctor", "22111"] {
        let mut c = lu_claims_json();
        c["role"] = json!(role);
        let expected = if role.is_empty() {
            AssertionRefusal::MissingClaim("role")
        } else {
            AssertionRefusal::UnknownRole
        };
        assert_eq!(
            check_lu(&lu.sign_json(&c).unwrap()),
            Err(expected),
            "{role:?}"
        );
    }
}

#[test]
fn unknown_purpose_is_refused() {
    let lu = lu_issuer();
    for purpose in [
        json!("RESEARCH"),
        json!("TREAT"),
        json!("treatment"),
        json!(1),
    ] {
        let mut c = lu_claims_json();
        c["purpose_of_use"] = purpose.clone();
        assert_eq!(
            check_lu(&lu.sign_json(&c).unwrap()),
            Err(AssertionRefusal::UnknownPurpose),
            "{purpose}"
        );
    }
    let mut c = lu_claims_json();
    c["purpose_of_use"] = json!("EMERGENCY");
    assert_eq!(check_lu(&lu.sign_json(&c).unwrap()), Ok(()));
}

#[test]
fn issuer_of_another_country_than_the_peer_is_refused() {
    // A genuine LU assertion arriving from the FR gateway.
    let lu = lu_issuer();
    let token = lu.sign(&claims(&lu)).unwrap();
    assert_eq!(
        check_from("FR", &token),
        Err(AssertionRefusal::WrongCountry)
    );
    // LU's IdP vouching for a professional of another country.
    let mut c = claims(&lu);
    c.country = "FR".into();
    assert_eq!(
        check_lu(&lu.sign(&c).unwrap()),
        Err(AssertionRefusal::WrongCountry)
    );
}

#[test]
fn each_missing_claim_is_named() {
    let lu = lu_issuer();
    for name in REQUIRED_CLAIMS {
        for replacement in [None, Some(Value::Null)] {
            let mut c = lu_claims_json();
            let mut path: Vec<&str> = name.split('.').collect();
            let last = path.pop().unwrap();
            let mut parent = &mut c;
            for part in path {
                parent = parent.get_mut(part).unwrap();
            }
            let parent = parent.as_object_mut().unwrap();
            match &replacement {
                None => {
                    parent.remove(last);
                }
                Some(value) => {
                    parent.insert(last.to_owned(), value.clone());
                }
            }
            assert_eq!(
                check_lu(&lu.sign_json(&c).unwrap()),
                Err(AssertionRefusal::MissingClaim(name)),
                "{name} {replacement:?}"
            );
        }
    }
    // Empty strings count as missing.
    let mut c = lu_claims_json();
    c["jti"] = json!("");
    assert_eq!(
        check_lu(&lu.sign_json(&c).unwrap()),
        Err(AssertionRefusal::MissingClaim("jti"))
    );
    // iss and kid are needed before the signature can be checked.
    let mut c = lu_claims_json();
    c.as_object_mut().unwrap().remove("iss");
    assert_eq!(
        check_lu(&lu.sign_json(&c).unwrap()),
        Err(AssertionRefusal::MissingClaim("iss"))
    );
    let header = json!({"alg": "ES256", "typ": ASSERTION_TYPE});
    assert_eq!(
        check_lu(&raw_token(&header, &lu_claims_json(), "AAAA")),
        Err(AssertionRefusal::MissingClaim("kid"))
    );
}

#[test]
fn wrong_claim_types_are_malformed() {
    let lu = lu_issuer();
    for (name, value) in [
        ("exp", json!("tomorrow")),
        ("iat", json!(1.5)),
        ("organisation", json!({"id": 1, "name": "x"})),
        ("aud", json!(42)),
    ] {
        let mut c = lu_claims_json();
        c[name] = value;
        assert!(
            matches!(
                check_lu(&lu.sign_json(&c).unwrap()),
                Err(AssertionRefusal::Malformed(_))
            ),
            "{name}"
        );
    }
}

#[test]
fn untyped_or_otherwise_typed_tokens_are_refused() {
    let claims = lu_claims_json();
    for typ in [json!("JWT"), json!("at+jwt"), json!(null), json!(5)] {
        let header = json!({"alg": "ES256", "typ": typ, "kid": "lu-1"});
        assert_eq!(
            check_lu(&raw_token(&header, &claims, "AAAA")),
            Err(AssertionRefusal::WrongTokenType),
            "{typ}"
        );
    }
    let header = json!({"alg": "ES256", "kid": "lu-1"});
    assert_eq!(
        check_lu(&raw_token(&header, &claims, "AAAA")),
        Err(AssertionRefusal::WrongTokenType)
    );
}

#[test]
fn media_type_form_of_typ_is_accepted() {
    // RFC 7515 §4.1.9: "application/" may be present, case-insensitively.
    let lu = lu_issuer();
    let c = claims(&lu);
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some(format!("Application/{}", ASSERTION_TYPE.to_uppercase()));
    header.kid = Some("lu-1".into());
    let token = jsonwebtoken::encode(
        &header,
        &c,
        &EncodingKey::from_ec_der(&es256_private_der(7)),
    )
    .unwrap();
    assert_eq!(check_lu(&token), Ok(()));
}

#[test]
fn critical_header_extensions_are_refused() {
    let header = json!({"alg": "ES256", "typ": ASSERTION_TYPE, "kid": "lu-1", "crit": ["exp"]});
    assert!(matches!(
        check_lu(&raw_token(&header, &lu_claims_json(), "AAAA")),
        Err(AssertionRefusal::Malformed(_))
    ));
}

#[test]
fn malformed_tokens_are_refused() {
    let good = lu_issuer().sign(&claims(&lu_issuer())).unwrap();
    let too_large = format!("{good}{}", "A".repeat(16 * 1024));
    let padded = {
        let (h, rest) = good.split_once('.').unwrap();
        format!("{h}==.{rest}")
    };
    let duplicate_alg = format!(
        "{}.{}.AAAA",
        b64(br#"{"alg":"ES256","alg":"none","typ":"ehds-hpa+jwt","kid":"lu-1"}"#),
        b64(lu_claims_json().to_string().as_bytes())
    );
    let array_payload = raw_token(
        &json!({"alg": "ES256", "typ": ASSERTION_TYPE, "kid": "lu-1"}),
        &json!([1, 2]),
        "AAAA",
    );
    let bad_payload = format!(
        "{}.%%%.AAAA",
        b64(
            json!({"alg": "ES256", "typ": ASSERTION_TYPE, "kid": "lu-1"})
                .to_string()
                .as_bytes()
        )
    );
    for token in [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        &format!("{good}.extra"),
        &too_large,
        &padded,
        &duplicate_alg,
        &array_payload,
        &bad_payload,
    ] {
        assert!(
            matches!(check_lu(token), Err(AssertionRefusal::Malformed(_))),
            "{token:.60}: {:?}",
            check_lu(token)
        );
    }
}

#[test]
fn refusals_map_to_401_or_403_and_never_show_patient_data() {
    use AssertionRefusal as R;
    let all = [
        R::Malformed("x"),
        R::Unsigned,
        R::WrongTokenType,
        R::DisallowedAlgorithm,
        R::BadSignature,
        R::UnknownIssuer,
        R::UnknownKey,
        R::MissingClaim("jti"),
        R::WrongAudience,
        R::Expired,
        R::NotYetValid,
        R::LifetimeTooLong,
        R::Replayed,
        R::WrongCountry,
        R::UnknownRole,
        R::UnknownPurpose,
        R::PatientMismatch,
    ];
    let forbidden = [
        R::WrongCountry,
        R::UnknownRole,
        R::UnknownPurpose,
        R::PatientMismatch,
    ];
    let mut codes = std::collections::BTreeSet::new();
    for refusal in all {
        // 401 at the HTTP edge when it authenticates no one, else 403.
        let expected = !forbidden.contains(&refusal);
        assert_eq!(refusal.authenticates_no_one(), expected, "{refusal:?}");
        let message = refusal.to_string();
        assert!(!message.contains(PATIENT_VALUE) && !message.contains(PATIENT_SYSTEM));
        assert!(
            codes.insert(refusal.code()),
            "duplicate code {}",
            refusal.code()
        );
    }
}

struct BrokenLedger;

impl ReplayLedger for BrokenLedger {
    async fn first_use(
        &self,
        _issuer: &str,
        _jti: &str,
        _remember_until: OffsetDateTime,
        _now: OffsetDateTime,
    ) -> Result<bool, AccessError> {
        Err(AccessError::Ledger("database unavailable".into()))
    }
}

#[test]
fn a_ledger_that_cannot_answer_fails_closed() {
    let token = lu_issuer().sign(&claims(&lu_issuer())).unwrap();
    let patient = patient();
    let outcome = block_on(verifier().verify(&token, &expect_from("LU", &patient), &BrokenLedger));
    assert!(matches!(outcome, Err(AccessError::Ledger(_))));
    // A refused assertion never reaches the ledger.
    let outcome = block_on(verifier().verify("a.b.c", &expect_from("LU", &patient), &BrokenLedger));
    assert!(matches!(outcome, Ok(Err(AssertionRefusal::Malformed(_)))));
}

#[test]
fn verify_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let ledger = InMemoryReplayLedger::default();
    let verifier = verifier();
    let patient = patient();
    let expected = expect_from("LU", &patient);
    let future = verifier.verify("a.b.c", &expected, &ledger);
    assert_send(&future);
}

#[test]
fn documented_sample_claims_parse() {
    let sample = r#"{
      "iss": "https://idp.health.lu/hp",
      "sub": "LU-HP-0042",
      "aud": "urn:ehds:ncp:BE",
      "iat": 1795000000,
      "nbf": 1795000000,
      "exp": 1795000600,
      "jti": "6b0f9a1e-1c7d-4c52-9d7e-0a6f3d1f2b11",
      "name": "Dr Anne Muller",
      "role": "2211",
      "organisation": { "id": "LU-ORG-17", "name": "Centre Hospitalier de Luxembourg" },
      "point_of_care": "Emergency department, Luxembourg City",
      "purpose_of_use": "TREATMENT",
      "country": "LU",
      "treatment_relationship": {
        "patient": { "system": "urn:oid:2.16.17.710.850.1000.990.1", "value": "BE-123" }
      }
    }"#;
    let parsed: ehds_access::HealthProfessionalAssertion = serde_json::from_str(sample).unwrap();
    assert_eq!(parsed.purpose_of_use.hl7_code(), "TREAT");
    assert_eq!(PurposeOfUse::Emergency.hl7_code(), "ETREAT");
    assert_eq!(parsed.aud, Audience::One("urn:ehds:ncp:BE".into()));
}
