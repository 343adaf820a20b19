//! Health-professional assertions: replayed, expired, forged or for another
//! patient, each is refused.

use super::*;

#[tokio::test]
async fn assertions_that_are_replayed_expired_forged_or_for_another_patient_are_refused() {
    let f = federation().await;
    let (lu_id, _) = push_lu_summary(&f).await;
    let patient = lu_patient();
    let doctor = Caller::doctor(&f);
    let search = lu_patient_search();

    // Replayed at BE.
    let token = doctor.assertion();
    let first = doctor.get_with(&search, &token).await;
    assert_eq!(first.status().as_u16(), 200);
    let again = doctor.get_with(&search, &token).await;
    assert_eq!(again.status().as_u16(), 401);
    assert!(again.headers().contains_key("www-authenticate"));

    // Replayed at LU by a peer that skips its own check: LU's ledger refuses.
    let be_ncp = f.federation_client(f.pki.ncp_client("BE"));
    let direct = f.lu.federation_url(&search);
    let be_ncp_asks = |token: String| be_ncp.get(&direct).bearer_auth(token).send();
    let fresh = doctor.assertion();
    let ok = be_ncp_asks(fresh.clone()).await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let replay = be_ncp_asks(fresh).await.unwrap();
    assert_eq!(replay.status().as_u16(), 401);

    // Expired.
    let expired = doctor.assertion_at(
        PurposeOfUse::Treatment,
        time::OffsetDateTime::now_utc() - time::Duration::hours(2),
    );
    let response = doctor.get_with(&search, &expired).await;
    assert_eq!(response.status().as_u16(), 401);

    // Forged: signed by a key nobody trusts under BE's issuer and kid.
    let forger_dir = f.dir.path().join("forger");
    let forger_pki = dev_pki::generate(&forger_dir, &DevPkiSpec::for_tests(&["BE"])).unwrap();
    let forged = loopback::identity_provider(&forger_pki, "BE").unwrap();
    let response = doctor
        .get_with(&search, &assertion(&forged, &be_doctor(), &patient))
        .await;
    assert_eq!(response.status().as_u16(), 401);

    // No assertion at all.
    let response = doctor.get_without_assertion(&search).await;
    assert_eq!(response.status().as_u16(), 401);

    // An assertion for another patient does not open this patient's Bundle:
    // to the caller it does not exist.
    let other = PatientRef::new(LU_SYSTEM, "1990010112345");
    let response = doctor
        .get_with(
            &format!("/fhir/Bundle/LU.{lu_id}"),
            &assertion(&f.be_idp, &be_doctor(), &other),
        )
        .await;
    assert_eq!(response.status().as_u16(), 404);

    // A LU assertion sent by the BE NCP: the issuer's country is not the
    // calling NCP's country.
    let response = be_ncp_asks(assertion(&f.lu_idp, &be_doctor(), &patient))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);

    // A pharmacist may not read the patient summary (the shipped policy).
    let pharmacy = Caller::pharmacy(&f, be_professional("2262"));
    let response = pharmacy.get(&search).await;
    assert_eq!(response.status().as_u16(), 403);

    // Every refusal is in LU's audit trail too, and the chain holds.
    let lu_audit = f.lu.audit().await;
    assert!(lu_audit.first_broken.is_none());
    assert!(lu_audit.records >= 5, "{}", lu_audit.records);
    f.stop().await;
}
