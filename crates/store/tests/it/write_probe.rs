//! The write probe of the health check (issue 16 #6) on both backends: it
//! succeeds on a writable store, fails with the database's lock error
//! within its wait while another connection holds the write lock, and
//! succeeds again once the lock is released.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::Duration;

use ehds_store::StoreError;

use crate::common::{Fresh, Raw};

on_both_backends!(the_write_probe_fails_while_the_store_is_locked);

const WAIT: Duration = Duration::from_millis(300);

async fn the_write_probe_fails_while_the_store_is_locked(fresh: &Fresh) {
    fresh.write_probe(WAIT).await.unwrap();

    // Another process takes the write lock and keeps it.
    let mut holder = fresh.raw().await;
    match &mut holder {
        Raw::Sqlite(c) => {
            sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut *c)
                .await
                .unwrap();
        }
        Raw::Postgres(c) => {
            sqlx::query("BEGIN").execute(&mut *c).await.unwrap();
            sqlx::query("SELECT id FROM write_probe FOR UPDATE")
                .execute(&mut *c)
                .await
                .unwrap();
        }
    }
    // Bounded: the probe gives up after its own wait, well within this.
    let probed = tokio::time::timeout(Duration::from_secs(30), fresh.write_probe(WAIT))
        .await
        .expect("the probe gives up on its own");
    let code = match probed {
        Err(StoreError::Database(error)) => error
            .as_database_error()
            .and_then(|e| e.code())
            .map(|c| c.into_owned()),
        other => panic!("expected the database's lock error, got {other:?}"),
    };
    // SQLite: SQLITE_BUSY (5); PostgreSQL: lock_not_available (55P03).
    let expected = if fresh.is_postgres() { "55P03" } else { "5" };
    assert_eq!(code.as_deref(), Some(expected));
    // Reads still work: only writing is blocked.
    assert_eq!(fresh.document_count().await.unwrap(), 0);

    match &mut holder {
        Raw::Sqlite(c) => {
            sqlx::query("ROLLBACK").execute(&mut *c).await.unwrap();
        }
        Raw::Postgres(c) => {
            sqlx::query("ROLLBACK").execute(&mut *c).await.unwrap();
        }
    }
    fresh.write_probe(WAIT).await.unwrap();
}
