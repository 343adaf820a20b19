//! Patients' cross-border opt-outs on both backends: per service, per
//! requesting country or for every country, effective at once, withdrawn
//! once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[macro_use]
mod common;

use ehds_store::Store;
use time::macros::datetime;

on_both_backends!(opt_outs_by_service_and_country,);

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
