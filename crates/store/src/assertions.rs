//! The replay ledger of health-professional assertions: every accepted
//! (`iss`, `jti`) pair is remembered until the assertion could no longer be
//! accepted anyway, so that a second use of one is recognised by every
//! gateway replica sharing the database (RFC 7519 §4.1.7: "The jti claim can
//! be used to prevent the JWT from being replayed").

use std::sync::atomic::Ordering;

use time::OffsetDateTime;

use crate::backend::{Backend, Store, to_micros};
use crate::error::StoreError;
use crate::group_commit::{LedgerWrite, RECORD_FIRST_USE};

/// Every how many calls of [`Store::first_use_of_assertion`] expired entries
/// are purged (the first call of each [`Store`] included).
const PURGE_EVERY: u64 = 64;

/// At most this many expired entries are deleted per purge, so that one
/// request never pays for a large backlog.
const PURGE_BATCH: i64 = 1_000;

impl Store {
    /// Records the assertion (`issuer`, `jti`) and says whether this is its
    /// first use: `true` when the pair was not held (or held only until a
    /// time before `now`), `false` when it is held until `now` or later.
    /// The pair is then held until `remember_until`.
    ///
    /// Concurrent calls for one pair, from any number of tasks or gateway
    /// processes, give `true` to exactly one of them (the primary key
    /// decides). `now` is the caller's clock, passed in so that replicas and
    /// tests agree on one time source.
    ///
    /// Every 64th call (the first of each [`Store`] included) also deletes up
    /// to a thousand expired entries. An `Err` means the ledger could not answer: the caller must
    /// refuse the assertion (fail closed).
    pub async fn first_use_of_assertion(
        &self,
        issuer: &str,
        jti: &str,
        remember_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        if self
            .assertion_calls
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(PURGE_EVERY)
        {
            self.purge_expired_assertions(now).await?;
        }
        let until_us = to_micros(remember_until)?;
        let now_us = to_micros(now)?;
        let inserted = match (&self.backend, &self.sqlite_writer) {
            // SQLite: committed with the other requests' durable writes of
            // the moment (module `group_commit`).
            (Backend::Sqlite(_), Some(writer)) => {
                return writer
                    .ledger(LedgerWrite {
                        issuer: issuer.to_owned(),
                        jti: jti.to_owned(),
                        until_us,
                        now_us,
                    })
                    .await;
            }
            (Backend::Sqlite(_), None) => {
                return Err(StoreError::Config(
                    "the SQLite writer is not running".into(),
                ));
            }
            (Backend::Postgres(pool), _) => sqlx::query(RECORD_FIRST_USE)
                .bind(issuer)
                .bind(jti)
                .bind(until_us)
                .bind(now_us)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())?,
        };
        Ok(inserted == 1)
    }

    /// Deletes up to a thousand ledger entries held only until a time before
    /// `now`, and returns how many it deleted. [`Store::first_use_of_assertion`]
    /// calls it now and then; a maintenance task may call it too.
    pub async fn purge_expired_assertions(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let now_us = to_micros(now)?;
        let sql = match self.backend {
            // ctid: a bounded DELETE without a key column; SKIP LOCKED lets
            // replicas purging at once share the work instead of waiting.
            Backend::Postgres(_) => {
                "DELETE FROM assertion_ids WHERE ctid = ANY (ARRAY( \
                 SELECT ctid FROM assertion_ids WHERE expires_at_us < $1 \
                 LIMIT $2 FOR UPDATE SKIP LOCKED)) AND expires_at_us < $1"
            }
            Backend::Sqlite(_) => {
                "DELETE FROM assertion_ids WHERE rowid IN ( \
                 SELECT rowid FROM assertion_ids WHERE expires_at_us < $1 LIMIT $2)"
            }
        };
        let deleted = on_pool!(self, |pool| {
            sqlx::query(sql)
                .bind(now_us)
                .bind(PURGE_BATCH)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(deleted)
    }
}
