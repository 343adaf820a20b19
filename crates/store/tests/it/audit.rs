//! The audit trail on both backends: appends chain, concurrent appenders (in
//! one process and across two pools, as two gateway processes) leave no gap,
//! rows cannot be changed through SQL, and every kind of tampering done
//! behind the triggers' back is reported at the right `seq`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::common::Fresh;
use ehds_store::{AUDIT_GENESIS_HASH, AuditRecord, BreakKind, NewAuditRecord, Store};
use time::OffsetDateTime;
use time::macros::datetime;

on_both_backends!(
    appends_chain_from_genesis,
    concurrent_appends_are_gap_free_and_verify,
    direct_update_and_delete_are_refused,
    altered_content_is_a_hash_mismatch,
    rehashed_record_breaks_its_successor,
    removed_record_is_a_gap,
    records_cut_off_the_end_are_a_gap,
    rewritten_head_is_a_head_mismatch,
    patient_access_log_pages_newest_first,
    concurrent_requests_writes_keep_their_own_outcomes,
);

const PATIENT: &str = "urn:oid:2.16.17.710.850.1000.990.1|123";
const T0: OffsetDateTime = datetime!(2026-11-24 12:00:00.123456789 UTC);

fn event(n: u64) -> Vec<u8> {
    format!("{{\"resourceType\":\"AuditEvent\",\"id\":\"e{n}\", \"x\": 1.50}}").into_bytes()
}

async fn append(store: &Store, n: u64, patient: Option<&str>) -> AuditRecord {
    store
        .append_audit(NewAuditRecord {
            patient_identifier: patient,
            outcome: if n.is_multiple_of(3) { "8" } else { "0" },
            content: &event(n),
            recorded_at: T0 + time::Duration::seconds(n as i64),
        })
        .await
        .unwrap()
}

async fn append_n(store: &Store, n: u64) {
    for i in 1..=n {
        append(store, i, Some(PATIENT)).await;
    }
}

/// Drops the triggers that keep the trail append-only (what an attacker with
/// database rights can do) so the test can tamper with rows.
async fn drop_triggers(fresh: &Fresh) {
    let statements: &[&str] = if fresh.is_postgres() {
        &[
            "DROP TRIGGER audit_events_no_update_or_delete ON audit_events",
            "DROP TRIGGER audit_chain_head_forward_only ON audit_chain_head",
        ]
    } else {
        &[
            "DROP TRIGGER audit_events_no_update",
            "DROP TRIGGER audit_events_no_delete",
            "DROP TRIGGER audit_chain_head_forward_only",
        ]
    };
    for sql in statements {
        fresh.raw_execute(sql).await.unwrap();
    }
}

async fn appends_chain_from_genesis(store: &Store) {
    let empty = store.verify_audit_chain().await.unwrap();
    assert_eq!(
        (empty.records, empty.first_broken, empty.head_hash),
        (0, None, AUDIT_GENESIS_HASH)
    );

    let first = append(store, 1, Some(PATIENT)).await;
    let second = append(store, 2, None).await;
    let third = append(store, 3, Some(PATIENT)).await;
    assert_eq!((first.seq, second.seq, third.seq), (1, 2, 3));
    assert_eq!(first.prev_hash, AUDIT_GENESIS_HASH);
    assert_eq!(second.prev_hash, first.hash);
    assert_eq!(third.prev_hash, second.hash);
    for record in [&first, &second, &third] {
        assert_eq!(record.computed_hash().unwrap(), record.hash);
    }
    assert_eq!(first.content, event(1));
    assert_eq!(third.outcome, "8");
    assert_eq!(second.patient_identifier, None);
    // Stored to the microsecond.
    assert_eq!(first.recorded_at, datetime!(2026-11-24 12:00:01.123456 UTC));

    let report = store.verify_audit_chain().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records, 3);
    assert_eq!(report.head_hash, third.hash);

    // What is read back is what was returned, byte for byte.
    let log = store.audit_for_patient(PATIENT, 10, None).await.unwrap();
    assert_eq!(log, vec![third, first]);
}

async fn concurrent_appends_are_gap_free_and_verify(fresh: &Fresh) {
    // Two pools on one database: two gateway processes, four tasks each.
    let other_process = fresh.reopen().await;
    let tasks: Vec<_> = (0..8u64)
        .map(|task| {
            let store = if task % 2 == 0 {
                fresh.store.clone()
            } else {
                other_process.clone()
            };
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..25 {
                    seqs.push(append(&store, task * 100 + i, Some(PATIENT)).await.seq);
                }
                seqs
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.extend(task.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=200).collect::<Vec<u64>>());
    let report = fresh.verify_audit_chain().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records, 200);
    other_process.close().await;
}

/// What a relayed request writes at once with many others: its assertion id
/// in the replay ledger, then its audit record. On SQLite these go through
/// the group-commit writer; each write must still get its own outcome (one
/// first use per assertion id, one place in the chain per record), and
/// concurrent requests must share commits.
async fn concurrent_requests_writes_keep_their_own_outcomes(fresh: &Fresh) {
    const REQUESTS: u64 = 48;
    let before = fresh.group_commit_counts();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(REQUESTS as usize));
    let until = T0 + time::Duration::minutes(5);
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|request| {
            let store = fresh.store.clone();
            let start = std::sync::Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                // Two requests carry each assertion id: one of them is a replay.
                let jti = format!("jti-{}", request / 2);
                let first = store
                    .first_use_of_assertion("idp-lu", &jti, until, T0)
                    .await
                    .unwrap();
                let record = append(&store, request, Some(PATIENT)).await;
                (request / 2, first, record.seq)
            })
        })
        .collect();
    let mut firsts = std::collections::BTreeMap::new();
    let mut seqs = Vec::new();
    for task in tasks {
        let (pair, first, seq) = task.await.unwrap();
        *firsts.entry(pair).or_insert(0) += usize::from(first);
        seqs.push(seq);
    }
    assert!(firsts.values().all(|&n| n == 1), "{firsts:?}");
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=REQUESTS).collect::<Vec<u64>>());
    let report = fresh.verify_audit_chain().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    if let (Some(before), Some(after)) = (before, fresh.group_commit_counts()) {
        let writes = after.writes - before.writes;
        let commits = after.commits - before.commits;
        assert_eq!(writes, 2 * REQUESTS);
        assert!(commits < writes, "{commits} commits for {writes} writes");
    } else {
        assert!(fresh.is_postgres());
    }
}

async fn direct_update_and_delete_are_refused(fresh: &Fresh) {
    append_n(fresh, 3).await;
    for sql in [
        "UPDATE audit_events SET content = content WHERE seq = 2",
        "UPDATE audit_events SET outcome = '0'",
        "DELETE FROM audit_events WHERE seq = 3",
        "DELETE FROM audit_events",
        "UPDATE audit_chain_head SET seq = 1",
        "UPDATE audit_chain_head SET seq = seq + 2",
        "DELETE FROM audit_chain_head",
    ] {
        let refused = fresh.raw_execute(sql).await;
        assert!(refused.is_err(), "{sql}: {refused:?}");
    }
    if fresh.is_postgres() {
        for sql in ["TRUNCATE audit_events", "TRUNCATE audit_chain_head"] {
            assert!(fresh.raw_execute(sql).await.is_err(), "{sql}");
        }
    }
    let report = fresh.verify_audit_chain().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records, 3);
}

async fn altered_content_is_a_hash_mismatch(fresh: &Fresh) {
    // Past the first verification page (256 records), so paging is exercised.
    append_n(fresh, 300).await;
    assert!(fresh.verify_audit_chain().await.unwrap().is_intact());
    drop_triggers(fresh).await;
    let altered = fresh
        .raw_execute_with(
            "UPDATE audit_events SET content = $1 WHERE seq = $2",
            b"{\"resourceType\":\"AuditEvent\",\"id\":\"forged\"}",
            290,
        )
        .await;
    assert_eq!(altered, 1);
    let report = fresh.verify_audit_chain().await.unwrap();
    assert_eq!(report.first_broken, Some((290, BreakKind::HashMismatch)));
    assert_eq!(report.records, 300);
}

async fn rehashed_record_breaks_its_successor(fresh: &Fresh) {
    append_n(fresh, 4).await;
    let mut record = fresh
        .audit_for_patient(PATIENT, 1, Some(3))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(record.seq, 2);
    // A careful forger alters record 2 and stores its correct new hash.
    record.content = b"{\"forged\":true}".to_vec();
    let hash = record.computed_hash().unwrap();
    drop_triggers(fresh).await;
    fresh
        .raw_execute_with(
            "UPDATE audit_events SET content = $1 WHERE seq = $2",
            &record.content,
            2,
        )
        .await;
    fresh
        .raw_execute_with("UPDATE audit_events SET hash = $1 WHERE seq = $2", &hash, 2)
        .await;
    let report = fresh.verify_audit_chain().await.unwrap();
    assert_eq!(report.first_broken, Some((3, BreakKind::PrevHashMismatch)));
}

async fn removed_record_is_a_gap(fresh: &Fresh) {
    append_n(fresh, 5).await;
    drop_triggers(fresh).await;
    assert_eq!(
        fresh
            .raw_execute("DELETE FROM audit_events WHERE seq = 3")
            .await
            .unwrap(),
        1
    );
    let report = fresh.verify_audit_chain().await.unwrap();
    assert_eq!(report.first_broken, Some((3, BreakKind::SeqGap)));
    assert_eq!(report.records, 4);
}

async fn records_cut_off_the_end_are_a_gap(fresh: &Fresh) {
    append_n(fresh, 5).await;
    drop_triggers(fresh).await;
    fresh
        .raw_execute("DELETE FROM audit_events WHERE seq >= 4")
        .await
        .unwrap();
    let report = fresh.verify_audit_chain().await.unwrap();
    assert_eq!(report.first_broken, Some((4, BreakKind::SeqGap)));
    assert_eq!(report.records, 3);
}

async fn rewritten_head_is_a_head_mismatch(fresh: &Fresh) {
    append_n(fresh, 5).await;
    drop_triggers(fresh).await;
    fresh
        .raw_execute_with(
            "UPDATE audit_chain_head SET hash = $1 WHERE seq = $2",
            &[7u8; 32],
            5,
        )
        .await;
    let report = fresh.verify_audit_chain().await.unwrap();
    assert_eq!(report.first_broken, Some((5, BreakKind::HeadMismatch)));
}

async fn patient_access_log_pages_newest_first(store: &Store) {
    let other = "urn:oid:2.16.17.710.850.1000.990.1|456";
    for n in 1..=10 {
        let patient = match n % 3 {
            0 => None,
            1 => Some(PATIENT),
            _ => Some(other),
        };
        append(store, n, patient).await;
    }
    // PATIENT: seqs 1, 4, 7, 10.
    let seqs = |records: Vec<AuditRecord>| records.iter().map(|r| r.seq).collect::<Vec<_>>();
    let page1 = store.audit_for_patient(PATIENT, 3, None).await.unwrap();
    assert!(
        page1
            .iter()
            .all(|r| r.patient_identifier.as_deref() == Some(PATIENT))
    );
    assert_eq!(page1[0].content, event(10));
    let last = page1.last().unwrap().seq;
    assert_eq!(seqs(page1), [10, 7, 4]);
    let page2 = store
        .audit_for_patient(PATIENT, 3, Some(last))
        .await
        .unwrap();
    assert_eq!(seqs(page2), [1]);
    assert!(
        store
            .audit_for_patient(PATIENT, 3, Some(1))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        seqs(store.audit_for_patient(other, 100, None).await.unwrap()),
        [8, 5, 2]
    );
    assert!(
        store
            .audit_for_patient("urn:oid:1.2.3|nobody", 10, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .audit_for_patient(PATIENT, 0, None)
            .await
            .unwrap()
            .is_empty()
    );
}

/// SQLite (migration 0013): the database itself refuses a record that does
/// not extend the chain head, and advances the head with the one that does;
/// a process whose remembered head is stale (another process appended) still
/// extends the one chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_refuses_a_record_that_does_not_extend_the_head() {
    let fresh = crate::common::Fresh::sqlite().await.unwrap();
    append_n(&fresh, 2).await;
    for (what, sql) in [
        (
            "a wrong prev_hash",
            "INSERT INTO audit_events (seq, recorded_at_us, patient_identifier, outcome, \
             content, prev_hash, hash) VALUES (3, 0, NULL, '0', x'00', zeroblob(32), zeroblob(32))",
        ),
        (
            "a gap in seq",
            "INSERT INTO audit_events (seq, recorded_at_us, patient_identifier, outcome, \
             content, prev_hash, hash) SELECT 4, 0, NULL, '0', x'00', hash, zeroblob(32) \
             FROM audit_chain_head",
        ),
    ] {
        let refused = fresh.raw_execute(sql).await;
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.to_string().contains("must extend the chain head")),
            "{what}: {refused:?}"
        );
    }
    // Another process appends: this store's remembered head is stale, its
    // next append is refused by the database and then reads the head.
    let other_process = fresh.reopen().await;
    assert_eq!(append(&other_process, 3, None).await.seq, 3);
    let fourth = append(&fresh, 4, Some(PATIENT)).await;
    assert_eq!(fourth.seq, 4);
    let report = fresh.verify_audit_chain().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.records, report.head_hash), (4, fourth.hash));
    other_process.close().await;
}
