//! The one store interface ([`Store`]) over its two backends: opening the
//! SQLite file or PostgreSQL schema and applying migrations, liveness and
//! write probes, online backup, closing; and how times are stored. The
//! tables' operations extend [`Store`] in their own modules.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};
use time::OffsetDateTime;

use crate::config::{StoreConfig, check_schema_name};
use crate::error::StoreError;
use crate::group_commit::{self, GroupCommitCounts};

/// The gateway's store. Clones share one connection pool.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) backend: Backend,
    /// Calls of [`Store::first_use_of_assertion`], to purge now and then.
    pub(crate) assertion_calls: Arc<AtomicU64>,
    /// SQLite: the thread that commits the audit appends, replay-ledger
    /// writes and documents of concurrent requests together (module
    /// `group_commit`).
    pub(crate) sqlite_writer: Option<group_commit::SqliteWriter>,
}

#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// How long an SQLite statement waits for a lock another connection holds
/// before failing with `SQLITE_BUSY`.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

impl Store {
    /// Opens the store, creating the SQLite file or PostgreSQL schema if
    /// needed, and applies pending migrations.
    pub async fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        let mut sqlite_writer = None;
        let backend = match config {
            StoreConfig::Sqlite { path } => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // Health data: a committed document survives power loss.
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .foreign_keys(true)
                    // Each connection's page cache at most 1 MiB (SQLite's
                    // default is 2 MiB, `PRAGMA cache_size = -2000`): nine
                    // connections (the pool's eight and the group-commit
                    // writer's) fill theirs as documents are stored: with
                    // 2 MiB the gateway held 8.5 MB more than idle after
                    // 10 000 pushed summaries, with 1 MiB 6.7–7.5 MB (issue
                    // 17, `ehds-relay-bench start`). Pages are read again
                    // from the operating system's cache. The group-commit
                    // writer's connection takes a smaller one
                    // (`group_commit::WRITER_CACHE_KIB`).
                    .pragma("cache_size", "-1024");
                let pool = SqlitePoolOptions::new()
                    .max_connections(8)
                    // No ping before each use: an SQLite connection is a file
                    // handle in this process, with no peer that could have
                    // gone away; each ping is a round trip to the
                    // connection's thread. A statement on a broken connection
                    // still fails (and the caller fails closed); sqlx pings
                    // on release anyway.
                    .test_before_acquire(false)
                    .connect_with(options)
                    .await?;
                sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
                sqlite_writer = Some(group_commit::SqliteWriter::start(
                    path,
                    SQLITE_BUSY_TIMEOUT,
                )?);
                Backend::Sqlite(pool)
            }
            StoreConfig::Postgres {
                url,
                schema,
                max_connections,
            } => {
                let mut options = PgConnectOptions::from_str(url)
                    .map_err(|e| StoreError::Config(format!("invalid PostgreSQL URL: {e}")))?;
                if let Some(schema) = schema {
                    check_schema_name(schema)?;
                    let mut conn = options.connect().await?;
                    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                        .execute(&mut conn)
                        .await?;
                    conn.close().await?;
                    options = options.options([("search_path", schema.as_str())]);
                }
                let pool = PgPoolOptions::new()
                    .max_connections(*max_connections)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await?;
                sqlx::migrate!("./migrations/postgres").run(&pool).await?;
                Backend::Postgres(pool)
            }
        };
        Ok(Self {
            backend,
            assertion_calls: Arc::new(AtomicU64::new(0)),
            sqlite_writer,
        })
    }

    /// `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// SQLite: how many audit, replay-ledger and document writes were committed, in
    /// how many commits (module `group_commit`); `None` on PostgreSQL.
    pub fn group_commit_counts(&self) -> Option<GroupCommitCounts> {
        self.sqlite_writer.as_ref().map(|w| w.counts())
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Checks the database can be written: rewrites the one row of
    /// `write_probe` in a transaction, waiting at most `wait` for a lock
    /// another connection or process holds. A store that answers reads but
    /// is locked or full fails here with the database's own error (SQLite
    /// `SQLITE_BUSY`/`SQLITE_LOCKED`/`SQLITE_FULL`, PostgreSQL
    /// `lock_not_available`/`disk_full`), as a push would.
    pub async fn write_probe(&self, wait: Duration) -> Result<(), StoreError> {
        let written_at_us = to_micros(OffsetDateTime::now_utc())?;
        let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
        match &self.backend {
            Backend::Sqlite(pool) => {
                let mut conn = pool.acquire().await?;
                // This connection's busy timeout, for the probe only.
                sqlx::query(&format!("PRAGMA busy_timeout = {wait_ms}"))
                    .execute(&mut *conn)
                    .await?;
                let probed = async {
                    let mut tx = Connection::begin(&mut *conn).await?;
                    sqlx::query("UPDATE write_probe SET written_at_us = $1 WHERE id = 1")
                        .bind(written_at_us)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await
                }
                .await;
                let restored = sqlx::query(&format!(
                    "PRAGMA busy_timeout = {}",
                    SQLITE_BUSY_TIMEOUT.as_millis()
                ))
                .execute(&mut *conn)
                .await;
                probed?;
                restored?;
            }
            Backend::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                // `SET LOCAL` takes no bind parameters; the value is a number.
                sqlx::query(&format!("SET LOCAL lock_timeout = {wait_ms}"))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE write_probe SET written_at_us = $1 WHERE id = 1")
                    .bind(written_at_us)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// SQLite: writes a consistent copy of the whole database to `out`, a
    /// file that must not exist yet, while the store keeps serving
    /// (`VACUUM INTO`, <https://sqlite.org/lang_vacuum.html#vacuuminto>: one
    /// read transaction, so the copy is the database at one instant, WAL
    /// content included; writers are not blocked). The copy opens as a
    /// store of its own. PostgreSQL: [`StoreError::Config`] (its backup is
    /// `pg_dump`'s job).
    pub async fn backup_into(&self, out: &std::path::Path) -> Result<(), StoreError> {
        let Backend::Sqlite(pool) = &self.backend else {
            return Err(StoreError::Config(
                "a PostgreSQL store is backed up with pg_dump".into(),
            ));
        };
        if out.exists() {
            return Err(StoreError::Config(format!(
                "{} exists: a backup is written to a new file",
                out.display()
            )));
        }
        let target = out
            .to_str()
            .ok_or_else(|| StoreError::Config(format!("{} is not a UTF-8 path", out.display())))?;
        sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(pool)
            .await?;
        Ok(())
    }

    /// Closes the pool, waiting for connections to finish (and, on SQLite,
    /// for the writes already queued to be committed).
    pub async fn close(&self) {
        if let Some(writer) = &self.sqlite_writer {
            writer.close().await;
        }
        on_pool!(self, |pool| pool.close().await)
    }
}

/// Microseconds since the Unix epoch (rounded down): how times are stored.
pub(crate) fn to_micros(t: OffsetDateTime) -> Result<i64, StoreError> {
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000))
        .map_err(|_| StoreError::Corrupt("time out of range".into()))
}

pub(crate) fn from_micros(us: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000)
        .map_err(|e| StoreError::Corrupt(format!("stored time: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    /// The SQLite the gateway is built with carries the options
    /// `.cargo/config.toml` gives libsqlite3-sys (`LIBSQLITE3_FLAGS`): no
    /// memory statistics (no global mutex per allocation) and page caches
    /// that grow on use.
    #[tokio::test]
    async fn sqlite_is_built_with_the_workspace_compile_options() {
        let dir = ehds_test_support::ScratchDir::new("sqlite-compile-options");
        let store = Store::open(&StoreConfig::Sqlite {
            path: dir.path().join("gw.db"),
        })
        .await
        .unwrap();
        let Backend::Sqlite(pool) = &store.backend else {
            panic!("an SQLite store");
        };
        let options: Vec<String> = sqlx::query_scalar("PRAGMA compile_options")
            .fetch_all(pool)
            .await
            .unwrap();
        for wanted in ["DEFAULT_MEMSTATUS=0", "DEFAULT_PCACHE_INITSZ=0"] {
            assert!(
                options.iter().any(|o| o == wanted),
                "{wanted} missing from {options:?}"
            );
        }
        store.close().await;
    }
}
