//! Patients' cross-border opt-outs on both backends: per service, per
//! requesting country or for every country, effective at once, withdrawn
//! once; the patient's portal reads those in force.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use ehds_store::{OptOut, Store};
use time::macros::datetime;

on_both_backends!(
    opt_outs_by_service_and_country,
    the_portal_reads_the_opt_outs_in_force,
);

const PATIENT: &str = "urn:oid:1.3.182.4.4|1998041799999";

async fn opt_outs_by_service_and_country(store: &Store) {
    let at = datetime!(2026-11-24 12:00 UTC);
    assert!(
        !store
            .is_opted_out(PATIENT, "patient-summary", "BE")
            .await
            .unwrap()
    );
    // Towards Belgium only.
    store
        .set_opt_out(PATIENT, "patient-summary", Some("BE"), at)
        .await
        .unwrap();
    store
        .set_opt_out(PATIENT, "patient-summary", Some("BE"), at)
        .await
        .unwrap();
    assert!(
        store
            .is_opted_out(PATIENT, "patient-summary", "BE")
            .await
            .unwrap()
    );
    assert!(
        !store
            .is_opted_out(PATIENT, "patient-summary", "FR")
            .await
            .unwrap()
    );
    assert!(
        !store
            .is_opted_out(PATIENT, "eprescription", "BE")
            .await
            .unwrap()
    );
    assert!(
        !store
            .is_opted_out("urn:oid:1.3.182.4.4|1", "patient-summary", "BE")
            .await
            .unwrap()
    );
    // Every country.
    store
        .set_opt_out(PATIENT, "eprescription", None, at)
        .await
        .unwrap();
    assert!(
        store
            .is_opted_out(PATIENT, "eprescription", "FR")
            .await
            .unwrap()
    );
    // Withdrawn, once.
    assert!(
        store
            .withdraw_opt_out(PATIENT, "patient-summary", Some("BE"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .withdraw_opt_out(PATIENT, "patient-summary", Some("BE"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .is_opted_out(PATIENT, "patient-summary", "BE")
            .await
            .unwrap()
    );
    assert!(
        store
            .withdraw_opt_out(PATIENT, "eprescription", None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .is_opted_out(PATIENT, "eprescription", "FR")
            .await
            .unwrap()
    );
}

async fn the_portal_reads_the_opt_outs_in_force(store: &Store) {
    let first = datetime!(2026-11-24 12:00:00.123456 UTC);
    let later = datetime!(2026-11-25 08:30 UTC);
    assert_eq!(store.opt_outs_of(PATIENT).await.unwrap(), vec![]);
    store
        .set_opt_out(PATIENT, "patient-summary", Some("LU"), first)
        .await
        .unwrap();
    store
        .set_opt_out(PATIENT, "patient-summary", None, later)
        .await
        .unwrap();
    store
        .set_opt_out(PATIENT, "eprescription", Some("BE"), later)
        .await
        .unwrap();
    store
        .set_opt_out(PATIENT, "patient-summary", Some("BE"), later)
        .await
        .unwrap();
    // Setting it again keeps the first time.
    store
        .set_opt_out(PATIENT, "patient-summary", Some("LU"), later)
        .await
        .unwrap();
    // Another patient's choices are not this patient's.
    store
        .set_opt_out("urn:oid:1.3.182.4.4|1", "eprescription", None, later)
        .await
        .unwrap();
    let of = |service: &str, country: Option<&str>, since| OptOut {
        service: service.into(),
        country: country.map(Into::into),
        since,
    };
    assert_eq!(
        store.opt_outs_of(PATIENT).await.unwrap(),
        vec![
            of("eprescription", Some("BE"), later),
            of("patient-summary", None, later),
            of("patient-summary", Some("BE"), later),
            of("patient-summary", Some("LU"), first),
        ],
        "by service, every country first, the first time kept to the microsecond"
    );
    assert!(
        store
            .withdraw_opt_out(PATIENT, "patient-summary", None)
            .await
            .unwrap()
    );
    assert_eq!(
        store.opt_outs_of(PATIENT).await.unwrap(),
        vec![
            of("eprescription", Some("BE"), later),
            of("patient-summary", Some("BE"), later),
            of("patient-summary", Some("LU"), first),
        ]
    );
}
