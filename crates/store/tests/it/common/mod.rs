//! The harness every store test file shares: a fresh store of each backend,
//! a raw connection to the same database (to act behind the store's back),
//! and cleanup — the SQLite folder and the PostgreSQL schema are removed when
//! the case ends, whether it passed or panicked.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::future::Future;
use std::ops::Deref;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ehds_store::{Store, StoreConfig};
use ehds_test_support::{ScratchDir, postgres_url, unique_schema};
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// A fresh store; derefs to it, so a case taking `&Store` accepts `&Fresh`.
#[derive(Clone)]
pub(crate) struct Fresh {
    pub store: Store,
    config: StoreConfig,
    _dir: Option<Arc<ScratchDir>>,
}

impl Deref for Fresh {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

/// One raw connection of either backend.
pub(crate) enum Raw {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Fresh {
    /// A new SQLite file in a scratch folder.
    pub(crate) async fn sqlite() -> Option<Self> {
        let dir = ScratchDir::new("store");
        let config = StoreConfig::Sqlite {
            path: dir.path().join("nested/folder/gateway.db"),
        };
        let store = Store::open(&config).await.unwrap();
        Some(Self {
            store,
            config,
            _dir: Some(Arc::new(dir)),
        })
    }

    /// A new schema on the test PostgreSQL server (`None`: skipped outside CI).
    pub(crate) async fn postgres() -> Option<Self> {
        let url = postgres_url()?;
        let config = StoreConfig::Postgres {
            url,
            schema: Some(unique_schema("store")),
            max_connections: 8,
        };
        Some(Self {
            store: Store::open(&config).await.unwrap(),
            config,
            _dir: None,
        })
    }

    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self.config, StoreConfig::Postgres { .. })
    }

    /// A second store (its own pool) on the same database: what another
    /// gateway process sees.
    pub(crate) async fn reopen(&self) -> Store {
        Store::open(&self.config).await.unwrap()
    }

    /// A raw connection to the same database, outside the store.
    pub(crate) async fn raw(&self) -> Raw {
        match &self.config {
            StoreConfig::Sqlite { path } => Raw::Sqlite(
                SqliteConnectOptions::new()
                    .filename(path)
                    .busy_timeout(Duration::from_secs(10))
                    .connect()
                    .await
                    .unwrap(),
            ),
            StoreConfig::Postgres { url, schema, .. } => {
                let mut options = PgConnectOptions::from_str(url).unwrap();
                if let Some(schema) = schema {
                    options = options.options([("search_path", schema.as_str())]);
                }
                Raw::Postgres(options.connect().await.unwrap())
            }
        }
    }

    /// Runs `sql` on a raw connection: rows affected, or the database's error.
    pub(crate) async fn raw_execute(&self, sql: &str) -> Result<u64, sqlx::Error> {
        match self.raw().await {
            Raw::Sqlite(mut c) => sqlx::query(sql)
                .execute(&mut c)
                .await
                .map(|r| r.rows_affected()),
            Raw::Postgres(mut c) => sqlx::query(sql)
                .execute(&mut c)
                .await
                .map(|r| r.rows_affected()),
        }
    }

    /// Runs `sql` binding one blob and one integer (`$1`, `$2`).
    pub(crate) async fn raw_execute_with(&self, sql: &str, blob: &[u8], int: i64) -> u64 {
        match self.raw().await {
            Raw::Sqlite(mut c) => sqlx::query(sql)
                .bind(blob)
                .bind(int)
                .execute(&mut c)
                .await
                .unwrap()
                .rows_affected(),
            Raw::Postgres(mut c) => sqlx::query(sql)
                .bind(blob)
                .bind(int)
                .execute(&mut c)
                .await
                .unwrap()
                .rows_affected(),
        }
    }

    /// The one integer `sql` selects.
    pub(crate) async fn raw_i64(&self, sql: &str) -> i64 {
        match self.raw().await {
            Raw::Sqlite(mut c) => sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap(),
            Raw::Postgres(mut c) => sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap(),
        }
    }

    /// Runs `case` on this store, then removes the database (the schema on
    /// PostgreSQL, the folder on SQLite) even if the case panicked, and
    /// passes the panic on.
    pub(crate) async fn run<F, Fut>(self, case: F)
    where
        F: FnOnce(Fresh) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let outcome = tokio::spawn(case(self.clone())).await;
        self.cleanup().await;
        if let Err(e) = outcome {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
            panic!("case did not finish: {e}");
        }
    }

    async fn cleanup(self) {
        self.store.close().await;
        if let StoreConfig::Postgres {
            url,
            schema: Some(schema),
            ..
        } = &self.config
        {
            let mut conn = PgConnectOptions::from_str(url)
                .unwrap()
                .connect()
                .await
                .unwrap();
            sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
        }
        // The SQLite folder goes with the last clone's ScratchDir.
    }
}

/// Declares one test per backend for each case (an `async fn(&Fresh)` or
/// `async fn(&Store)` beside the invocation).
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite_backend {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let Some(fresh) = crate::common::Fresh::sqlite().await {
                    fresh.run(|f| async move { super::$case(&f).await }).await;
                }
            })*
        }
        mod postgres_backend {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let Some(fresh) = crate::common::Fresh::postgres().await {
                    fresh.run(|f| async move { super::$case(&f).await }).await;
                }
            })*
        }
    };
}
