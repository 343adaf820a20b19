//! Prescriptions, retrievals and dispenses, run against both backends
//! (SQLite: a fresh file; PostgreSQL: a fresh schema on the server named by
//! `EHDS_TEST_POSTGRES_URL`, required under CI). Each outcome of
//! `apply_dispense`, `cancel_dispense` and `set_prescription_status`, and the
//! races: the last package dispensed by eight pharmacies at once through two
//! pools (two gateway processes) on one database, twenty one-unit dispenses
//! against ten units, and one dispense retried eight times at once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::Arc;

use crate::common::Fresh;
use ehds_store::{
    CancelOutcome, DispenseKind, DispenseLine, DispenseOutcome, DispenseRefusal, Identifier,
    InvalidPrescription, NewDispense, NewPrescription, PrescriptionState, PrescriptionStatus,
    PutPrescriptionOutcome, RetrievalOutcome, StatusChangeOutcome, StatusChangeRefusal, Store,
    StoredDispense, StoredPrescription,
};
use time::{Duration, OffsetDateTime};
use tokio::sync::Barrier;

on_both_backends!(
    stores_and_reads_back_a_prescription,
    same_prescription_twice_is_idempotent_other_bytes_conflict,
    invalid_prescriptions_are_values,
    prescriptions_for_patient_by_status_newest_first,
    status_changes_cancel_withdraw_reinstate,
    retrievals_keep_first_time_and_need_a_prescription,
    unknown_prescription_is_refused,
    dispense_without_retrieval_is_refused,
    invalid_quantities_are_refused,
    partial_then_complete,
    over_remaining_is_refused_and_changes_nothing,
    not_dispensable_when_cancelled_or_withdrawn,
    retried_dispense_returns_the_first_result,
    same_identifier_other_bytes_or_prescription_conflicts,
    declined_dispense_keeps_the_quantity,
    cancel_restores_the_quantity_once,
    cancel_keeps_a_status_set_by_hand,
    database_refuses_status_disagreeing_with_quantity,
    last_package_across_two_pools_dispensed_once,
    twenty_unit_dispenses_against_ten_units,
    concurrent_retries_apply_once,
    dispense_covering_two_prescriptions_is_all_or_nothing,
    last_packages_of_two_prescriptions_across_two_pools_dispensed_once,
);

const PATIENT: &str = "urn:oid:1.3.6.1.4.1.48336.1|PAT-0001";
const OTHER_PATIENT: &str = "urn:oid:1.3.6.1.4.1.48336.1|PAT-0002";
const PHARMACY: &str = "BE|pharmacy-1";

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap()
}

fn identifier(value: &str) -> Identifier {
    Identifier {
        system: "urn:oid:1.3.6.1.4.1.48336.2".into(),
        value: value.into(),
    }
}

/// A prescription of `units` whole units (packages).
fn rx<'a>(value: &str, units: i64, content: &'a [u8]) -> NewPrescription<'a> {
    NewPrescription {
        identifier: identifier(value),
        patient_identifier: PATIENT,
        prescriber: Some("urn:oid:1.3.6.1.4.1.48336.3|DR-7"),
        sender: "LU|prescriber-system",
        quantity_prescribed_milli: units * 1_000,
        unit: "package",
        unit_system: Some("urn:example:units"),
        substitution_allowed: true,
        atc_code: Some("C09AA05"),
        dose_form: Some("10219000"),
        not_available_abroad: None,
        content,
        received_at: t0(),
    }
}

fn content_of(value: &str) -> Vec<u8> {
    format!("{{\"resourceType\":\"MedicationRequest\",\"id\":\"{value}\"}}").into_bytes()
}

/// Stores a prescription of `units` packages and records its retrieval by
/// [`PHARMACY`].
async fn dispensable(store: &Store, value: &str, units: i64) -> StoredPrescription {
    let content = content_of(value);
    let PutPrescriptionOutcome::Created(stored) = store
        .put_prescription(rx(value, units, &content))
        .await
        .unwrap()
    else {
        panic!("prescription not created");
    };
    retrieve(store, &stored.id, PHARMACY).await;
    stored
}

async fn retrieve(store: &Store, prescription_id: &str, pharmacy: &str) {
    assert!(matches!(
        store
            .record_retrieval(prescription_id, pharmacy, t0())
            .await
            .unwrap(),
        RetrievalOutcome::Recorded { .. }
    ));
}

fn dispense<'a>(
    value: &str,
    prescription_id: &'a str,
    quantity_milli: i64,
    content: &'a [u8],
) -> NewDispense<'a> {
    NewDispense {
        identifier: identifier(value),
        lines: vec![DispenseLine {
            prescription_id,
            quantity_milli,
        }],
        pharmacy: PHARMACY,
        kind: DispenseKind::Completed,
        content,
        received_at: t0() + Duration::minutes(5),
    }
}

async fn state(store: &Store, id: &str) -> (i64, PrescriptionStatus) {
    let p = store.prescription(id).await.unwrap().unwrap();
    (p.quantity_remaining_milli, p.status)
}

/// The dispense and its (only) prescription's state right after it.
fn applied(outcome: DispenseOutcome) -> (StoredDispense, i64, PrescriptionStatus) {
    match outcome {
        DispenseOutcome::Applied { dispense } => {
            let line = dispense.lines[0].clone();
            (dispense, line.remaining_after_milli, line.status_after)
        }
        other => panic!("not applied: {other:?}"),
    }
}

/// A cancellation's state of its (only) prescription.
fn restored(
    remaining_milli: i64,
    status: PrescriptionStatus,
    prescription_id: &str,
) -> CancelOutcome {
    CancelOutcome::Restored {
        prescriptions: vec![PrescriptionState {
            prescription_id: prescription_id.to_owned(),
            remaining_milli,
            status,
        }],
    }
}

async fn stores_and_reads_back_a_prescription(store: &Store) {
    // Bytes are the truth: odd spacing and a decimal kept as sent.
    let content = b"{\"resourceType\":\"MedicationRequest\" , \"x\": 2.50}\n";
    let PutPrescriptionOutcome::Created(created) = store
        .put_prescription(rx("rx-1", 3, content))
        .await
        .unwrap()
    else {
        panic!("not created");
    };
    assert_eq!(created.status, PrescriptionStatus::Active);
    assert_eq!(created.status_reason, None);
    assert_eq!(created.quantity_prescribed_milli, 3_000);
    assert_eq!(created.quantity_remaining_milli, 3_000);
    assert_eq!(created.received_at, t0());
    let read = store.prescription(&created.id).await.unwrap().unwrap();
    assert_eq!(read, created);
    assert_eq!(read.content, content);
    assert_eq!(read.patient_identifier, PATIENT);
    assert_eq!(read.atc_code.as_deref(), Some("C09AA05"));
    assert_eq!(read.dose_form.as_deref(), Some("10219000"));
    assert!(read.substitution_allowed);
    assert_eq!(read.unit, "package");
    let by_identifier = store
        .prescription_by_identifier(&identifier("rx-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_identifier, created);
    assert!(store.prescription("no-such-id").await.unwrap().is_none());
    assert!(
        store
            .prescription_by_identifier(&identifier("rx-none"))
            .await
            .unwrap()
            .is_none()
    );
    // Debug output carries no patient identifier and no content.
    let debug = format!("{read:?}");
    assert!(!debug.contains("PAT-0001") && !debug.contains("MedicationRequest"));
}

async fn same_prescription_twice_is_idempotent_other_bytes_conflict(store: &Store) {
    let content = content_of("rx-2");
    let PutPrescriptionOutcome::Created(first) = store
        .put_prescription(rx("rx-2", 2, &content))
        .await
        .unwrap()
    else {
        panic!("not created");
    };
    let again = store
        .put_prescription(rx("rx-2", 2, &content))
        .await
        .unwrap();
    assert_eq!(again, PutPrescriptionOutcome::AlreadyStored(first.clone()));
    let other = store
        .put_prescription(rx("rx-2", 2, b"{\"resourceType\":\"MedicationRequest\"}"))
        .await
        .unwrap();
    assert_eq!(
        other,
        PutPrescriptionOutcome::Conflict {
            existing_id: first.id.clone()
        }
    );
    assert_eq!(
        store.prescriptions_for_patient(PATIENT, &[]).await.unwrap(),
        vec![first]
    );
}

async fn invalid_prescriptions_are_values(store: &Store) {
    let content = content_of("rx-bad");
    let mut zero = rx("rx-bad", 0, &content);
    assert_eq!(
        store.put_prescription(zero.clone()).await.unwrap(),
        PutPrescriptionOutcome::Invalid(InvalidPrescription::NonPositiveQuantity)
    );
    zero.quantity_prescribed_milli = -1;
    assert_eq!(
        store.put_prescription(zero).await.unwrap(),
        PutPrescriptionOutcome::Invalid(InvalidPrescription::NonPositiveQuantity)
    );
    let mut blank = rx("rx-bad", 1, &content);
    blank.not_available_abroad = Some("  ");
    assert_eq!(
        store.put_prescription(blank).await.unwrap(),
        PutPrescriptionOutcome::Invalid(InvalidPrescription::BlankReason)
    );
    // Withdrawn from the start, with a reason.
    let mut withdrawn = rx("rx-bad", 1, &content);
    withdrawn.not_available_abroad = Some("narcotic: not dispensable abroad");
    let PutPrescriptionOutcome::Created(stored) = store.put_prescription(withdrawn).await.unwrap()
    else {
        panic!("not created");
    };
    assert_eq!(stored.status, PrescriptionStatus::NotAvailableAbroad);
    assert_eq!(
        stored.status_reason.as_deref(),
        Some("narcotic: not dispensable abroad")
    );
}

async fn prescriptions_for_patient_by_status_newest_first(store: &Store) {
    let mut ids = Vec::new();
    for (i, value) in ["rx-a", "rx-b", "rx-c"].iter().enumerate() {
        let content = content_of(value);
        let mut new = rx(value, 2, &content);
        new.received_at = t0() + Duration::hours(i as i64);
        let PutPrescriptionOutcome::Created(p) = store.put_prescription(new).await.unwrap() else {
            panic!("not created");
        };
        ids.push(p.id);
    }
    let content = content_of("rx-other");
    let mut other = rx("rx-other", 1, &content);
    other.patient_identifier = OTHER_PATIENT;
    store.put_prescription(other).await.unwrap();
    // rx-b partially dispensed, rx-c cancelled.
    retrieve(store, &ids[1], PHARMACY).await;
    applied(
        store
            .apply_dispense(dispense("md-b", &ids[1], 1_000, b"{}"))
            .await
            .unwrap(),
    );
    store
        .set_prescription_status(&ids[2], PrescriptionStatus::Cancelled, Some("replaced"))
        .await
        .unwrap();

    let listed = |statuses: &'static [PrescriptionStatus]| async move {
        store
            .prescriptions_for_patient(PATIENT, statuses)
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.id)
            .collect::<Vec<_>>()
    };
    let all = listed(&[]).await;
    assert_eq!(all, vec![ids[2].clone(), ids[1].clone(), ids[0].clone()]);
    let dispensable = listed(&[
        PrescriptionStatus::Active,
        PrescriptionStatus::PartiallyDispensed,
    ])
    .await;
    assert_eq!(dispensable, vec![ids[1].clone(), ids[0].clone()]);
    // Repeated statuses are harmless.
    assert_eq!(
        listed(&[PrescriptionStatus::Active, PrescriptionStatus::Active]).await,
        vec![ids[0].clone()]
    );
    assert!(listed(&[PrescriptionStatus::Completed]).await.is_empty());
    let with_content = store
        .prescriptions_for_patient(PATIENT, &[PrescriptionStatus::Cancelled])
        .await
        .unwrap();
    assert_eq!(with_content[0].content, content_of("rx-c"));
    assert_eq!(with_content[0].status_reason.as_deref(), Some("replaced"));
    assert!(
        store
            .prescriptions_for_patient("urn:x|nobody", &[])
            .await
            .unwrap()
            .is_empty()
    );
}

async fn status_changes_cancel_withdraw_reinstate(store: &Store) {
    use PrescriptionStatus as S;
    use StatusChangeOutcome as O;
    let p = dispensable(store, "rx-st", 4).await;
    let set = |status, reason| store.set_prescription_status(&p.id, status, reason);
    assert_eq!(
        set(S::Cancelled, None).await.unwrap(),
        O::Refused(StatusChangeRefusal::ReasonRequired)
    );
    assert_eq!(
        set(S::NotAvailableAbroad, Some(" ")).await.unwrap(),
        O::Refused(StatusChangeRefusal::ReasonRequired)
    );
    assert_eq!(
        set(S::Completed, None).await.unwrap(),
        O::Refused(StatusChangeRefusal::SetByDispenses)
    );
    assert_eq!(
        store
            .set_prescription_status("no-such-id", S::Cancelled, Some("x"))
            .await
            .unwrap(),
        O::Refused(StatusChangeRefusal::UnknownPrescription)
    );
    assert_eq!(set(S::Active, None).await.unwrap(), O::Unchanged(S::Active));

    // Withdraw, then reinstate after a dispense happened before withdrawal.
    applied(
        store
            .apply_dispense(dispense("md-st", &p.id, 1_500, b"{}"))
            .await
            .unwrap(),
    );
    assert_eq!(
        set(S::NotAvailableAbroad, Some("patient objection"))
            .await
            .unwrap(),
        O::Changed {
            from: S::PartiallyDispensed,
            to: S::NotAvailableAbroad
        }
    );
    assert_eq!(
        set(S::NotAvailableAbroad, Some("other words"))
            .await
            .unwrap(),
        O::Unchanged(S::NotAvailableAbroad)
    );
    let withdrawn = store.prescription(&p.id).await.unwrap().unwrap();
    assert_eq!(
        withdrawn.status_reason.as_deref(),
        Some("patient objection")
    );
    // Asking for `active` reinstates it as what the quantities say.
    assert_eq!(
        set(S::Active, Some("ignored")).await.unwrap(),
        O::Changed {
            from: S::NotAvailableAbroad,
            to: S::PartiallyDispensed
        }
    );
    let reinstated = store.prescription(&p.id).await.unwrap().unwrap();
    assert_eq!(reinstated.status_reason, None);
    assert_eq!(reinstated.quantity_remaining_milli, 2_500);

    // Cancelled is final.
    assert_eq!(
        set(S::Cancelled, Some("therapy changed")).await.unwrap(),
        O::Changed {
            from: S::PartiallyDispensed,
            to: S::Cancelled
        }
    );
    assert_eq!(
        set(S::Cancelled, Some("again")).await.unwrap(),
        O::Unchanged(S::Cancelled)
    );
    assert_eq!(
        set(S::Active, None).await.unwrap(),
        O::Refused(StatusChangeRefusal::Final(S::Cancelled))
    );
    assert_eq!(
        set(S::NotAvailableAbroad, Some("x")).await.unwrap(),
        O::Refused(StatusChangeRefusal::Final(S::Cancelled))
    );

    // Completed is final too.
    let q = dispensable(store, "rx-st2", 1).await;
    applied(
        store
            .apply_dispense(dispense("md-st2", &q.id, 1_000, b"{}"))
            .await
            .unwrap(),
    );
    assert_eq!(
        store
            .set_prescription_status(&q.id, S::Cancelled, Some("late"))
            .await
            .unwrap(),
        O::Refused(StatusChangeRefusal::Final(S::Completed))
    );
}

async fn retrievals_keep_first_time_and_need_a_prescription(store: &Store) {
    assert_eq!(
        store
            .record_retrieval("no-such-id", PHARMACY, t0())
            .await
            .unwrap(),
        RetrievalOutcome::UnknownPrescription
    );
    let content = content_of("rx-r");
    let PutPrescriptionOutcome::Created(p) = store
        .put_prescription(rx("rx-r", 1, &content))
        .await
        .unwrap()
    else {
        panic!("not created");
    };
    let later = t0() + Duration::hours(1);
    assert_eq!(
        store
            .record_retrieval(&p.id, PHARMACY, later)
            .await
            .unwrap(),
        RetrievalOutcome::Recorded { first_at: later }
    );
    assert_eq!(
        store
            .record_retrieval(&p.id, PHARMACY, later + Duration::hours(1))
            .await
            .unwrap(),
        RetrievalOutcome::Recorded { first_at: later }
    );
    assert_eq!(
        store.record_retrieval(&p.id, PHARMACY, t0()).await.unwrap(),
        RetrievalOutcome::Recorded { first_at: t0() }
    );
}

async fn unknown_prescription_is_refused(store: &Store) {
    assert_eq!(
        store
            .apply_dispense(dispense("md-u", "no-such-id", 1_000, b"{}"))
            .await
            .unwrap(),
        DispenseOutcome::Refused(DispenseRefusal::UnknownPrescription { line: 0 })
    );
}

async fn dispense_without_retrieval_is_refused(store: &Store) {
    let content = content_of("rx-nr");
    let PutPrescriptionOutcome::Created(p) = store
        .put_prescription(rx("rx-nr", 2, &content))
        .await
        .unwrap()
    else {
        panic!("not created");
    };
    // Another pharmacy's retrieval does not count.
    retrieve(store, &p.id, "BE|pharmacy-2").await;
    assert_eq!(
        store
            .apply_dispense(dispense("md-nr", &p.id, 1_000, b"{}"))
            .await
            .unwrap(),
        DispenseOutcome::Refused(DispenseRefusal::NotRetrieved { line: 0 })
    );
    let mut declined = dispense("md-nr-d", &p.id, 0, b"{}");
    declined.kind = DispenseKind::Declined;
    assert_eq!(
        store.apply_dispense(declined).await.unwrap(),
        DispenseOutcome::Refused(DispenseRefusal::NotRetrieved { line: 0 })
    );
    assert_eq!(
        state(store, &p.id).await,
        (2_000, PrescriptionStatus::Active)
    );
    assert!(
        store
            .dispenses_for_prescription(&p.id)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn invalid_quantities_are_refused(store: &Store) {
    let p = dispensable(store, "rx-q", 2).await;
    for quantity in [0, -1_000] {
        assert_eq!(
            store
                .apply_dispense(dispense("md-q", &p.id, quantity, b"{}"))
                .await
                .unwrap(),
            DispenseOutcome::Refused(DispenseRefusal::InvalidQuantity { line: 0 })
        );
    }
    let mut declined = dispense("md-q-d", &p.id, -1, b"{}");
    declined.kind = DispenseKind::Declined;
    assert_eq!(
        store.apply_dispense(declined.clone()).await.unwrap(),
        DispenseOutcome::Refused(DispenseRefusal::InvalidQuantity { line: 0 })
    );
    // A declined dispense may name no quantity at all.
    declined.lines[0].quantity_milli = 0;
    let (_, remaining, status) = applied(store.apply_dispense(declined).await.unwrap());
    assert_eq!((remaining, status), (2_000, PrescriptionStatus::Active));
}

async fn partial_then_complete(store: &Store) {
    let p = dispensable(store, "rx-p", 10).await;
    let (first, remaining, status) = applied(
        store
            .apply_dispense(dispense("md-p1", &p.id, 4_000, b"{\"n\":1}"))
            .await
            .unwrap(),
    );
    assert_eq!(
        (remaining, status),
        (6_000, PrescriptionStatus::PartiallyDispensed)
    );
    assert_eq!(first.kind, DispenseKind::Completed);
    assert_eq!(first.content, b"{\"n\":1}");
    assert_eq!(first.cancelled_at, None);
    // Fractions of a unit: 2.5 packages, then the rest.
    let (_, remaining, status) = applied(
        store
            .apply_dispense(dispense("md-p2", &p.id, 2_500, b"{\"n\":2}"))
            .await
            .unwrap(),
    );
    assert_eq!(
        (remaining, status),
        (3_500, PrescriptionStatus::PartiallyDispensed)
    );
    let (_, remaining, status) = applied(
        store
            .apply_dispense(dispense("md-p3", &p.id, 3_500, b"{\"n\":3}"))
            .await
            .unwrap(),
    );
    assert_eq!((remaining, status), (0, PrescriptionStatus::Completed));
    assert_eq!(
        state(store, &p.id).await,
        (0, PrescriptionStatus::Completed)
    );
    assert_eq!(
        store
            .apply_dispense(dispense("md-p4", &p.id, 1_000, b"{\"n\":4}"))
            .await
            .unwrap(),
        DispenseOutcome::Refused(DispenseRefusal::NotDispensable {
            line: 0,
            status: PrescriptionStatus::Completed
        })
    );
    let history = store.dispenses_for_prescription(&p.id).await.unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[0], first);
    assert_eq!(
        store
            .dispense_by_identifier(&identifier("md-p1"))
            .await
            .unwrap(),
        Some(first)
    );
}

async fn over_remaining_is_refused_and_changes_nothing(store: &Store) {
    let p = dispensable(store, "rx-o", 2).await;
    applied(
        store
            .apply_dispense(dispense("md-o1", &p.id, 1_500, b"{}"))
            .await
            .unwrap(),
    );
    assert_eq!(
        store
            .apply_dispense(dispense("md-o2", &p.id, 501, b"{}"))
            .await
            .unwrap(),
        DispenseOutcome::Refused(DispenseRefusal::OverRemaining {
            line: 0,
            remaining_milli: 500
        })
    );
    assert_eq!(
        state(store, &p.id).await,
        (500, PrescriptionStatus::PartiallyDispensed)
    );
    assert_eq!(
        store.dispenses_for_prescription(&p.id).await.unwrap().len(),
        1
    );
    // A refused dispense was not stored: the identifier is still free.
    let (_, remaining, _) = applied(
        store
            .apply_dispense(dispense("md-o2", &p.id, 500, b"{}"))
            .await
            .unwrap(),
    );
    assert_eq!(remaining, 0);
}

async fn not_dispensable_when_cancelled_or_withdrawn(store: &Store) {
    use PrescriptionStatus as S;
    let p = dispensable(store, "rx-c", 2).await;
    store
        .set_prescription_status(&p.id, S::NotAvailableAbroad, Some("withdrawn"))
        .await
        .unwrap();
    assert_eq!(
        store
            .apply_dispense(dispense("md-c1", &p.id, 1_000, b"{}"))
            .await
            .unwrap(),
        DispenseOutcome::Refused(DispenseRefusal::NotDispensable {
            line: 0,
            status: S::NotAvailableAbroad
        })
    );
    store
        .set_prescription_status(&p.id, S::Cancelled, Some("cancelled"))
        .await
        .unwrap();
    assert_eq!(
        store
            .apply_dispense(dispense("md-c1", &p.id, 1_000, b"{}"))
            .await
            .unwrap(),
        DispenseOutcome::Refused(DispenseRefusal::NotDispensable {
            line: 0,
            status: S::Cancelled
        })
    );
    assert_eq!(state(store, &p.id).await, (2_000, S::Cancelled));
}

async fn retried_dispense_returns_the_first_result(store: &Store) {
    let p = dispensable(store, "rx-i", 3).await;
    let content = b"{\"resourceType\":\"MedicationDispense\",\"id\":\"md-i\"}";
    let (first, remaining, status) = applied(
        store
            .apply_dispense(dispense("md-i", &p.id, 1_000, content))
            .await
            .unwrap(),
    );
    // A later dispense moves the prescription on ...
    applied(
        store
            .apply_dispense(dispense("md-i2", &p.id, 1_000, b"{}"))
            .await
            .unwrap(),
    );
    // ... the retry still gets the first answer and changes nothing.
    let mut retry = dispense("md-i", &p.id, 1_000, content);
    retry.received_at += Duration::minutes(1);
    assert_eq!(
        store.apply_dispense(retry.clone()).await.unwrap(),
        DispenseOutcome::AlreadyApplied {
            dispense: first.clone(),
        }
    );
    assert_eq!(
        (remaining, status),
        (2_000, PrescriptionStatus::PartiallyDispensed)
    );
    assert_eq!(
        state(store, &p.id).await,
        (1_000, PrescriptionStatus::PartiallyDispensed)
    );
    // Also once the prescription is no longer dispensable.
    applied(
        store
            .apply_dispense(dispense("md-i3", &p.id, 1_000, b"{}"))
            .await
            .unwrap(),
    );
    assert!(matches!(
        store.apply_dispense(retry).await.unwrap(),
        DispenseOutcome::AlreadyApplied { dispense, .. } if dispense == first
    ));
    assert_eq!(
        store.dispenses_for_prescription(&p.id).await.unwrap().len(),
        3
    );
}

async fn same_identifier_other_bytes_or_prescription_conflicts(store: &Store) {
    let p = dispensable(store, "rx-x", 3).await;
    let q = dispensable(store, "rx-y", 3).await;
    let (first, _, _) = applied(
        store
            .apply_dispense(dispense("md-x", &p.id, 1_000, b"{\"a\":1}"))
            .await
            .unwrap(),
    );
    let conflict = DispenseOutcome::Refused(DispenseRefusal::IdentifierConflict {
        existing_id: first.id.clone(),
    });
    // Same JSON value, other bytes.
    assert_eq!(
        store
            .apply_dispense(dispense("md-x", &p.id, 1_000, b"{ \"a\":1}"))
            .await
            .unwrap(),
        conflict
    );
    // Same bytes against another prescription.
    assert_eq!(
        store
            .apply_dispense(dispense("md-x", &q.id, 1_000, b"{\"a\":1}"))
            .await
            .unwrap(),
        conflict
    );
    // Also when the checks would refuse it anyway.
    assert_eq!(
        store
            .apply_dispense(dispense("md-x", &p.id, 9_000, b"{\"b\":2}"))
            .await
            .unwrap(),
        conflict
    );
    assert_eq!(
        state(store, &p.id).await,
        (2_000, PrescriptionStatus::PartiallyDispensed)
    );
    assert_eq!(
        state(store, &q.id).await,
        (3_000, PrescriptionStatus::Active)
    );
}

async fn declined_dispense_keeps_the_quantity(store: &Store) {
    let p = dispensable(store, "rx-d", 2).await;
    let mut declined = dispense("md-d", &p.id, 2_000, b"{\"status\":\"declined\"}");
    declined.kind = DispenseKind::Declined;
    let (stored, remaining, status) =
        applied(store.apply_dispense(declined.clone()).await.unwrap());
    assert_eq!(stored.kind, DispenseKind::Declined);
    assert_eq!(stored.lines[0].quantity_milli, 2_000);
    assert_eq!((remaining, status), (2_000, PrescriptionStatus::Active));
    assert_eq!(
        state(store, &p.id).await,
        (2_000, PrescriptionStatus::Active)
    );
    assert!(matches!(
        store.apply_dispense(declined).await.unwrap(),
        DispenseOutcome::AlreadyApplied { .. }
    ));
    // Declining is recorded even when nothing could be dispensed.
    applied(
        store
            .apply_dispense(dispense("md-d2", &p.id, 2_000, b"{}"))
            .await
            .unwrap(),
    );
    let mut late = dispense("md-d3", &p.id, 0, b"{\"status\":\"declined\"}");
    late.kind = DispenseKind::Declined;
    let (_, remaining, status) = applied(store.apply_dispense(late).await.unwrap());
    assert_eq!((remaining, status), (0, PrescriptionStatus::Completed));
    // Cancelling a declined dispense gives nothing back.
    assert_eq!(
        store
            .cancel_dispense(&identifier("md-d"), t0() + Duration::hours(1))
            .await
            .unwrap(),
        restored(0, PrescriptionStatus::Completed, &p.id)
    );
    assert_eq!(
        store.dispenses_for_prescription(&p.id).await.unwrap().len(),
        3
    );
}

async fn cancel_restores_the_quantity_once(store: &Store) {
    let p = dispensable(store, "rx-k", 2).await;
    let content = b"{\"n\":1}";
    applied(
        store
            .apply_dispense(dispense("md-k1", &p.id, 1_000, content))
            .await
            .unwrap(),
    );
    applied(
        store
            .apply_dispense(dispense("md-k2", &p.id, 1_000, b"{\"n\":2}"))
            .await
            .unwrap(),
    );
    assert_eq!(
        state(store, &p.id).await,
        (0, PrescriptionStatus::Completed)
    );
    let at = t0() + Duration::hours(2);
    assert_eq!(
        store
            .cancel_dispense(&identifier("md-k2"), at)
            .await
            .unwrap(),
        restored(1_000, PrescriptionStatus::PartiallyDispensed, &p.id)
    );
    assert_eq!(
        store
            .cancel_dispense(&identifier("md-k2"), at + Duration::hours(1))
            .await
            .unwrap(),
        CancelOutcome::AlreadyCancelled
    );
    assert_eq!(
        store
            .cancel_dispense(&identifier("md-k1"), at)
            .await
            .unwrap(),
        restored(2_000, PrescriptionStatus::Active, &p.id)
    );
    assert_eq!(
        store
            .cancel_dispense(&identifier("md-none"), at)
            .await
            .unwrap(),
        CancelOutcome::Unknown
    );
    assert_eq!(
        state(store, &p.id).await,
        (2_000, PrescriptionStatus::Active)
    );
    // The rows stay, marked; a retry of a cancelled dispense is not applied
    // again.
    let history = store.dispenses_for_prescription(&p.id).await.unwrap();
    assert_eq!(history.len(), 2);
    assert!(history.iter().all(|d| d.cancelled_at == Some(at)));
    let DispenseOutcome::AlreadyApplied { dispense: d, .. } = store
        .apply_dispense(dispense("md-k1", &p.id, 1_000, content))
        .await
        .unwrap()
    else {
        panic!("a cancelled dispense's retry must not apply again");
    };
    assert_eq!(d.cancelled_at, Some(at));
    assert_eq!(
        state(store, &p.id).await,
        (2_000, PrescriptionStatus::Active)
    );
}

async fn cancel_keeps_a_status_set_by_hand(store: &Store) {
    use PrescriptionStatus as S;
    let p = dispensable(store, "rx-h", 2).await;
    applied(
        store
            .apply_dispense(dispense("md-h", &p.id, 1_000, b"{}"))
            .await
            .unwrap(),
    );
    store
        .set_prescription_status(&p.id, S::Cancelled, Some("stopped"))
        .await
        .unwrap();
    assert_eq!(
        store
            .cancel_dispense(&identifier("md-h"), t0())
            .await
            .unwrap(),
        restored(2_000, S::Cancelled, &p.id)
    );
    let stored = store.prescription(&p.id).await.unwrap().unwrap();
    assert_eq!(stored.status_reason.as_deref(), Some("stopped"));
}

async fn database_refuses_status_disagreeing_with_quantity(fresh: &Fresh) {
    let p = dispensable(fresh, "rx-db", 2).await;
    for sql in [
        "UPDATE prescriptions SET status = 'completed'",
        "UPDATE prescriptions SET quantity_remaining_milli = 1000",
        "UPDATE prescriptions SET quantity_remaining_milli = 3000",
        "UPDATE prescriptions SET status = 'cancelled'",
        "UPDATE prescriptions SET status = 'on-hold'",
    ] {
        assert!(fresh.raw_execute(sql).await.is_err(), "{sql}");
    }
    assert_eq!(
        state(fresh, &p.id).await,
        (2_000, PrescriptionStatus::Active)
    );
}

/// Eight pharmacies, four on each of two pools (two gateway processes on one
/// database), dispense the last package at the same moment.
async fn last_package_across_two_pools_dispensed_once(fresh: &Fresh) {
    let second = fresh.reopen().await;
    let p = dispensable(fresh, "rx-last", 2).await;
    applied(
        fresh
            .apply_dispense(dispense("md-first", &p.id, 1_000, b"{}"))
            .await
            .unwrap(),
    );
    let barrier = Arc::new(Barrier::new(8));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = if i % 2 == 0 {
            fresh.store.clone()
        } else {
            second.clone()
        };
        let pharmacy = format!("BE|pharmacy-{i}");
        retrieve(&store, &p.id, &pharmacy).await;
        let id = p.id.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let content = format!("{{\"pharmacy\":{i}}}").into_bytes();
            let mut new = dispense(&format!("md-last-{i}"), &id, 1_000, &content);
            new.pharmacy = &pharmacy;
            barrier.wait().await;
            store.apply_dispense(new).await.unwrap()
        }));
    }
    let mut applied_count = 0;
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap() {
            DispenseOutcome::Applied { dispense } => {
                let line = &dispense.lines[0];
                assert_eq!(
                    (line.remaining_after_milli, line.status_after),
                    (0, PrescriptionStatus::Completed)
                );
                applied_count += 1;
            }
            DispenseOutcome::Refused(
                DispenseRefusal::OverRemaining { .. }
                | DispenseRefusal::NotDispensable {
                    status: PrescriptionStatus::Completed,
                    ..
                },
            ) => refused += 1,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!((applied_count, refused), (1, 7));
    assert_eq!(
        state(fresh, &p.id).await,
        (0, PrescriptionStatus::Completed)
    );
    assert_eq!(
        fresh.dispenses_for_prescription(&p.id).await.unwrap().len(),
        2
    );
    second.close().await;
}

/// Twenty one-unit dispenses at once, over two pools, against ten units.
async fn twenty_unit_dispenses_against_ten_units(fresh: &Fresh) {
    let second = fresh.reopen().await;
    let p = dispensable(fresh, "rx-20", 10).await;
    let barrier = Arc::new(Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = if i % 2 == 0 {
                fresh.store.clone()
            } else {
                second.clone()
            };
            let id = p.id.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let content = format!("{{\"n\":{i}}}").into_bytes();
                barrier.wait().await;
                store
                    .apply_dispense(dispense(&format!("md-20-{i}"), &id, 1_000, &content))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut remainders = Vec::new();
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap() {
            DispenseOutcome::Applied { dispense } => {
                remainders.push(dispense.lines[0].remaining_after_milli)
            }
            DispenseOutcome::Refused(
                DispenseRefusal::OverRemaining { .. }
                | DispenseRefusal::NotDispensable {
                    status: PrescriptionStatus::Completed,
                    ..
                },
            ) => refused += 1,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    // Exactly ten applied, each seeing a different remainder: 9, 8, ..., 0.
    remainders.sort_unstable();
    assert_eq!(remainders, (0..10).map(|n| n * 1_000).collect::<Vec<_>>());
    assert_eq!(refused, 10);
    assert_eq!(
        state(fresh, &p.id).await,
        (0, PrescriptionStatus::Completed)
    );
    assert_eq!(
        fresh.dispenses_for_prescription(&p.id).await.unwrap().len(),
        10
    );
    second.close().await;
}

/// One dispense sent eight times at once (a client retrying, through two
/// gateway processes): applied once, every other answer is the first one.
async fn concurrent_retries_apply_once(fresh: &Fresh) {
    let second = fresh.reopen().await;
    let p = dispensable(fresh, "rx-retry", 5).await;
    let barrier = Arc::new(Barrier::new(8));
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = if i % 2 == 0 {
                fresh.store.clone()
            } else {
                second.clone()
            };
            let id = p.id.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .apply_dispense(dispense("md-retry", &id, 2_000, b"{\"same\":true}"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut first = None;
    let mut again = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            DispenseOutcome::Applied { dispense } => {
                assert!(first.is_none(), "applied twice");
                first = Some(dispense);
            }
            DispenseOutcome::AlreadyApplied { dispense } => again.push(dispense),
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    let first = first.expect("applied once");
    assert_eq!(again.len(), 7);
    assert!(again.iter().all(|a| *a == first));
    assert_eq!(
        state(fresh, &p.id).await,
        (3_000, PrescriptionStatus::PartiallyDispensed)
    );
    second.close().await;
}

/// A dispense naming `ids` (one line each, `quantity` of each's unit).
fn dispense_of<'a>(
    value: &str,
    ids: &[&'a str],
    quantity_milli: i64,
    content: &'a [u8],
) -> NewDispense<'a> {
    let mut new = dispense(value, "", quantity_milli, content);
    new.lines = ids
        .iter()
        .map(|prescription_id| DispenseLine {
            prescription_id,
            quantity_milli,
        })
        .collect();
    new
}

/// HL7 Europe MPD example 300D: one dispense fulfilling two requests. Each
/// line is checked by the rules of a single dispense, and either every line
/// is applied or none; a retry returns the first answer; a cancel restores
/// both prescriptions once.
async fn dispense_covering_two_prescriptions_is_all_or_nothing(store: &Store) {
    let cream = dispensable(store, "rx-300-2", 2).await;
    let pessaries = dispensable(store, "rx-300-1", 1).await;
    let both = [cream.id.as_str(), pessaries.id.as_str()];
    // One prescription twice, or none, is not a dispense.
    assert_eq!(
        store
            .apply_dispense(dispense_of(
                "md-dup",
                &[cream.id.as_str(), cream.id.as_str()],
                1_000,
                b"{}"
            ))
            .await
            .unwrap(),
        DispenseOutcome::Refused(DispenseRefusal::InvalidLines)
    );
    assert_eq!(
        store
            .apply_dispense(dispense_of("md-none", &[], 1_000, b"{}"))
            .await
            .unwrap(),
        DispenseOutcome::Refused(DispenseRefusal::InvalidLines)
    );
    // Two over what the second line's prescription has left: refused at
    // line 1, and line 0 is not applied either.
    assert_eq!(
        store
            .apply_dispense(dispense_of("md-over", &both, 2_000, b"{\"n\":1}"))
            .await
            .unwrap(),
        DispenseOutcome::Refused(DispenseRefusal::OverRemaining {
            line: 1,
            remaining_milli: 1_000
        })
    );
    assert_eq!(
        state(store, &cream.id).await,
        (2_000, PrescriptionStatus::Active)
    );
    // A prescription another pharmacy retrieved: refused at its line.
    let content = content_of("rx-300-3");
    let PutPrescriptionOutcome::Created(other) = store
        .put_prescription(rx("rx-300-3", 5, &content))
        .await
        .unwrap()
    else {
        panic!("not created");
    };
    retrieve(store, &other.id, "BE|pharmacy-2").await;
    assert_eq!(
        store
            .apply_dispense(dispense_of(
                "md-nr2",
                &[cream.id.as_str(), other.id.as_str()],
                1_000,
                b"{}"
            ))
            .await
            .unwrap(),
        DispenseOutcome::Refused(DispenseRefusal::NotRetrieved { line: 1 })
    );
    assert_eq!(
        state(store, &cream.id).await,
        (2_000, PrescriptionStatus::Active)
    );
    // One of each: both taken, in one dispense.
    let content = b"{\"resourceType\":\"MedicationDispense\",\"id\":\"300D\"}";
    let DispenseOutcome::Applied { dispense: first } = store
        .apply_dispense(dispense_of("md-300D", &both, 1_000, content))
        .await
        .unwrap()
    else {
        panic!("not applied");
    };
    assert!(first.covers(&both));
    assert_eq!(
        first
            .lines
            .iter()
            .map(|l| (l.remaining_after_milli, l.status_after))
            .collect::<Vec<_>>(),
        [
            (1_000, PrescriptionStatus::PartiallyDispensed),
            (0, PrescriptionStatus::Completed)
        ]
    );
    assert_eq!(
        state(store, &cream.id).await,
        (1_000, PrescriptionStatus::PartiallyDispensed)
    );
    assert_eq!(
        state(store, &pessaries.id).await,
        (0, PrescriptionStatus::Completed)
    );
    // Retried: the first answer, nothing applied again.
    assert_eq!(
        store
            .apply_dispense(dispense_of("md-300D", &both, 1_000, content))
            .await
            .unwrap(),
        DispenseOutcome::AlreadyApplied {
            dispense: first.clone()
        }
    );
    // The same identifier naming only one of them is another dispense.
    assert!(matches!(
        store
            .apply_dispense(dispense_of("md-300D", &both[..1], 1_000, content))
            .await
            .unwrap(),
        DispenseOutcome::Refused(DispenseRefusal::IdentifierConflict { .. })
    ));
    assert_eq!(
        state(store, &cream.id).await,
        (1_000, PrescriptionStatus::PartiallyDispensed)
    );
    // Each prescription's history shows it.
    for id in both {
        let history = store.dispenses_for_prescription(id).await.unwrap();
        assert_eq!(history, std::slice::from_ref(&first));
    }
    // Cancelled: both come back, once.
    let expected = CancelOutcome::Restored {
        prescriptions: vec![
            PrescriptionState {
                prescription_id: cream.id.clone(),
                remaining_milli: 2_000,
                status: PrescriptionStatus::Active,
            },
            PrescriptionState {
                prescription_id: pessaries.id.clone(),
                remaining_milli: 1_000,
                status: PrescriptionStatus::Active,
            },
        ],
    };
    assert_eq!(
        store
            .cancel_dispense(&identifier("md-300D"), t0())
            .await
            .unwrap(),
        expected
    );
    assert_eq!(
        store
            .cancel_dispense(&identifier("md-300D"), t0())
            .await
            .unwrap(),
        CancelOutcome::AlreadyCancelled
    );
    assert_eq!(
        state(store, &cream.id).await,
        (2_000, PrescriptionStatus::Active)
    );
    assert_eq!(
        state(store, &pessaries.id).await,
        (1_000, PrescriptionStatus::Active)
    );
}

/// Two prescriptions with one package left each; eight pharmacies'
/// dispenses, half naming them in one order and half in the other, sent
/// at once through two pools: exactly one applies (locks taken in id
/// order, so no deadlock either).
async fn last_packages_of_two_prescriptions_across_two_pools_dispensed_once(fresh: &Fresh) {
    let second = fresh.reopen().await;
    let a = dispensable(fresh, "rx-pair-a", 1).await;
    let b = dispensable(fresh, "rx-pair-b", 1).await;
    let barrier = Arc::new(Barrier::new(8));
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = if i % 2 == 0 {
                fresh.store.clone()
            } else {
                second.clone()
            };
            let (first, then) = if i % 4 < 2 {
                (a.id.clone(), b.id.clone())
            } else {
                (b.id.clone(), a.id.clone())
            };
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let content = format!("{{\"n\":{i}}}");
                let new = dispense_of(
                    &format!("md-pair-{i}"),
                    &[first.as_str(), then.as_str()],
                    1_000,
                    content.as_bytes(),
                );
                barrier.wait().await;
                store.apply_dispense(new).await.unwrap()
            })
        })
        .collect();
    let mut applied_count = 0;
    for task in tasks {
        match task.await.unwrap() {
            DispenseOutcome::Applied { .. } => applied_count += 1,
            DispenseOutcome::Refused(DispenseRefusal::NotDispensable {
                status: PrescriptionStatus::Completed,
                ..
            }) => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(applied_count, 1);
    assert_eq!(
        state(fresh, &a.id).await,
        (0, PrescriptionStatus::Completed)
    );
    assert_eq!(
        state(fresh, &b.id).await,
        (0, PrescriptionStatus::Completed)
    );
    second.close().await;
}
