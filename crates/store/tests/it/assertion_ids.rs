//! The replay ledger on both backends: first use wins once (also under a
//! race of eight tasks across two pools), an expired entry no longer counts,
//! and expired entries are purged.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::common::Fresh;
use ehds_store::Store;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

on_both_backends!(
    second_use_is_refused_until_forgotten,
    concurrent_first_use_is_won_once,
    expired_entries_are_purged,
);

const T0: OffsetDateTime = datetime!(2026-11-24 12:00 UTC);

async fn second_use_is_refused_until_forgotten(store: &Store) {
    let until = T0 + Duration::minutes(10);
    assert!(
        store
            .first_use_of_assertion("idp-lu", "a", until, T0)
            .await
            .unwrap()
    );
    assert!(
        !store
            .first_use_of_assertion("idp-lu", "a", until, T0 + Duration::minutes(9))
            .await
            .unwrap()
    );
    // Still held at exactly remember_until.
    assert!(
        !store
            .first_use_of_assertion("idp-lu", "a", until, until)
            .await
            .unwrap()
    );
    // The same jti from another issuer is another assertion.
    assert!(
        store
            .first_use_of_assertion("idp-fr", "a", until, T0)
            .await
            .unwrap()
    );
    // Past remember_until it is forgotten, purged or not; then held again.
    let later = until + Duration::seconds(1);
    let again = later + Duration::minutes(10);
    assert!(
        store
            .first_use_of_assertion("idp-lu", "a", again, later)
            .await
            .unwrap()
    );
    assert!(
        !store
            .first_use_of_assertion("idp-lu", "a", again, later)
            .await
            .unwrap()
    );
}

async fn concurrent_first_use_is_won_once(fresh: &Fresh) {
    let other_process = fresh.reopen().await;
    let until = T0 + Duration::minutes(5);
    for round in 0..5 {
        let jti = format!("race-{round}");
        let tasks: Vec<_> = (0..8)
            .map(|task| {
                let store = if task % 2 == 0 {
                    fresh.store.clone()
                } else {
                    other_process.clone()
                };
                let jti = jti.clone();
                tokio::spawn(async move {
                    store
                        .first_use_of_assertion("idp-lu", &jti, until, T0)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut firsts = 0;
        for task in tasks {
            firsts += usize::from(task.await.unwrap());
        }
        assert_eq!(firsts, 1, "round {round}");
    }
    other_process.close().await;
}

async fn expired_entries_are_purged(fresh: &Fresh) {
    let short = T0 + Duration::minutes(1);
    let long = T0 + Duration::hours(1);
    for i in 0..10 {
        let until = if i < 7 { short } else { long };
        let jti = format!("j{i}");
        assert!(
            fresh
                .first_use_of_assertion("idp", &jti, until, T0)
                .await
                .unwrap()
        );
    }
    assert_eq!(
        fresh.raw_i64("SELECT COUNT(*) FROM assertion_ids").await,
        10
    );

    // A new process's first call purges what expired before it.
    let later = T0 + Duration::minutes(2);
    let other_process = fresh.reopen().await;
    assert!(
        other_process
            .first_use_of_assertion("idp", "new", long, later)
            .await
            .unwrap()
    );
    assert_eq!(fresh.raw_i64("SELECT COUNT(*) FROM assertion_ids").await, 4);
    other_process.close().await;

    // Later calls of one store purge every 64th time.
    let much_later = T0 + Duration::hours(2);
    for i in 0..64 {
        let jti = format!("k{i}");
        let until = much_later + Duration::minutes(1);
        fresh
            .first_use_of_assertion("idp", &jti, until, much_later)
            .await
            .unwrap();
    }
    let expired = fresh
        .raw_i64(&format!(
            "SELECT COUNT(*) FROM assertion_ids WHERE expires_at_us < {}",
            much_later.unix_timestamp() * 1_000_000
        ))
        .await;
    assert_eq!(expired, 0);
    assert_eq!(fresh.purge_expired_assertions(much_later).await.unwrap(), 0);
    assert_eq!(
        fresh.raw_i64("SELECT COUNT(*) FROM assertion_ids").await,
        64
    );
    assert_eq!(
        fresh
            .purge_expired_assertions(much_later + Duration::minutes(2))
            .await
            .unwrap(),
        64
    );
}
