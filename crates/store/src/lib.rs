//! Storage for the gateway: SQLite embedded by default, PostgreSQL for
//! production and for several stateless gateway replicas sharing one database.
//!
//! Owns: the schema and its migrations (applied at start), and the one store
//! interface, [`Store`], over both backends. Received documents are kept as
//! the exact bytes received plus the metadata the gateway indexes them by
//! (Bundle.identifier, patient identifier, type, received time, sender, SHA-256).
//! The audit trail ([`Store::append_audit`], module [`audit`]) is append-only
//! and hash-chained; the replay ledger of health-professional assertions
//! ([`Store::first_use_of_assertion`]) is shared by every replica on one
//! database. Prescriptions, the pharmacies that retrieved them and their
//! dispenses (module [`prescriptions`]) are tracked with their quantities,
//! each dispense applied in one transaction. Patients' opt-outs and
//! restrictions of parts of their data, and the variants of documents
//! released without the restricted parts, are kept too.
//!
//! Must not know about: FHIR parsing or validation (callers hand it bytes and
//! already-extracted metadata), HTTP, or transport. It does not read the
//! environment: configuration comes in as a [`StoreConfig`].

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Row};
use time::OffsetDateTime;

/// The database driver's error, named so callers can classify it (e.g. pool
/// time-outs as "unavailable") without depending on sqlx themselves.
pub use sqlx::Error as SqlxError;

/// Where the store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// An SQLite file, created (with its folder) on first use.
    Sqlite {
        /// Path of the database file.
        path: PathBuf,
    },
    /// A PostgreSQL database.
    Postgres {
        /// `postgres://user@host:port/database`.
        url: String,
        /// Schema to keep the tables in (created if missing); `None` uses the
        /// server's default search path.
        schema: Option<String>,
        /// Pool size.
        max_connections: u32,
    },
}

impl StoreConfig {
    /// Reads a store URL: `sqlite://PATH` (or `sqlite:PATH`) or
    /// `postgres://…`/`postgresql://…`.
    pub fn from_url(url: &str, schema: Option<String>) -> Result<Self, StoreError> {
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err(StoreError::Config("sqlite URL has no file path".into()));
            }
            if schema.is_some() {
                return Err(StoreError::Config(
                    "a schema applies to PostgreSQL only".into(),
                ));
            }
            return Ok(Self::Sqlite {
                path: PathBuf::from(path),
            });
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            PgConnectOptions::from_str(url)
                .map_err(|e| StoreError::Config(format!("invalid PostgreSQL URL: {e}")))?;
            if let Some(schema) = &schema {
                check_schema_name(schema)?;
            }
            return Ok(Self::Postgres {
                url: url.to_owned(),
                schema,
                max_connections: 10,
            });
        }
        Err(StoreError::Config(
            "store URL must start with sqlite:// or postgres://".into(),
        ))
    }
}

fn check_schema_name(schema: &str) -> Result<(), StoreError> {
    let mut chars = schema.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && schema.len() <= 63;
    if valid {
        Ok(())
    } else {
        Err(StoreError::Config(format!(
            "schema name {schema:?} must match [a-z_][a-z0-9_]* (at most 63 characters)"
        )))
    }
}

/// What went wrong in the store. Never caused by document content: invalid
/// documents are refused before they reach the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store configuration is unusable.
    #[error("store configuration: {0}")]
    Config(String),
    /// The database could not be reached or answered with an error.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations could not be applied.
    #[error("migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The database folder could not be created.
    #[error("creating the database folder: {0}")]
    Io(#[from] std::io::Error),
    /// A stored row does not have the shape the schema promises.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// A FHIR business identifier's `system` and `value`, both present: a
/// document's `Bundle.identifier` (bdl-9), a prescription's
/// `MedicationRequest.identifier` (or group identifier), a dispense's
/// `MedicationDispense.identifier`
/// (<https://hl7.org/fhir/R4/datatypes.html#Identifier>).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identifier {
    /// `identifier.system`.
    pub system: String,
    /// `identifier.value`.
    pub value: String,
}

/// `Bundle.identifier` of a document (bdl-9: both present).
pub type DocumentIdentifier = Identifier;

/// A document to store.
#[derive(Debug, Clone)]
pub struct NewDocument<'a> {
    /// `Bundle.identifier`.
    pub identifier: DocumentIdentifier,
    /// `Bundle.type`.
    pub bundle_type: &'a str,
    /// The subject's identifier as `system|value`, if the document names one.
    pub patient_identifier: Option<&'a str>,
    /// Who sent it (the authenticated client).
    pub sender: &'a str,
    /// The document's type as `system|code` (its Composition's `type`), by
    /// which the gateway knows the service it belongs to.
    pub document_type: Option<&'a str>,
    /// The media type of `content`: [`FHIR_JSON`] for a FHIR document,
    /// [`PDF`] for a PDF original.
    pub content_type: &'a str,
    /// The exact bytes received.
    pub content: &'a [u8],
}

/// The media type of a FHIR JSON document (`content_type`).
pub const FHIR_JSON: &str = "application/fhir+json";
/// The media type of a PDF original (`content_type`, RFC 8118).
pub const PDF: &str = "application/pdf";

/// A stored document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDocument {
    /// The gateway's id for it (`Bundle/{id}`).
    pub id: String,
    /// `Bundle.identifier`.
    pub identifier: DocumentIdentifier,
    /// `Bundle.type`.
    pub bundle_type: String,
    /// The subject's identifier as `system|value`.
    pub patient_identifier: Option<String>,
    /// When the gateway stored it.
    pub received_at: OffsetDateTime,
    /// Who sent it.
    pub sender: String,
    /// The document's type as `system|code`; `None` for documents stored
    /// before types were recorded (all patient summaries).
    pub document_type: Option<String>,
    /// The media type of the content ([`FHIR_JSON`] or [`PDF`]).
    pub content_type: String,
    /// SHA-256 of the content.
    pub sha256: [u8; 32],
    /// The exact bytes received.
    pub content: Vec<u8>,
}

/// What storing a document did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// A new document was stored.
    Created(StoredDocument),
    /// The same identifier with identical bytes was stored before: nothing
    /// new was written; this is the original.
    AlreadyStored(StoredDocument),
    /// The identifier is taken by a document with different bytes.
    Conflict {
        /// The id of the document already holding the identifier.
        existing_id: String,
    },
}

/// A stored document without its content: what a patient's document list
/// shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentSummary {
    /// The gateway's id for it (`Bundle/{id}`).
    pub id: String,
    /// `Bundle.identifier`.
    pub identifier: DocumentIdentifier,
    /// `Bundle.type`.
    pub bundle_type: String,
    /// When the gateway stored it.
    pub received_at: OffsetDateTime,
    /// The document's type as `system|code` (see [`StoredDocument`]).
    pub document_type: Option<String>,
    /// The media type of the content ([`FHIR_JSON`] or [`PDF`]).
    pub content_type: String,
    /// SHA-256 of the content.
    pub sha256: [u8; 32],
    /// Size of the content in bytes.
    pub size: u64,
}

/// The gateway's store. Clones share one connection pool.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    /// Calls of [`Store::first_use_of_assertion`], to purge now and then.
    assertion_calls: Arc<AtomicU64>,
    /// SQLite: the task that commits the audit appends and replay-ledger
    /// writes of concurrent requests together (module `group_commit`).
    sqlite_writer: Option<group_commit::SqliteWriter>,
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same sqlx code against whichever pool the store has. The SQL is
/// written once, in the dialect both backends accept (`$n` placeholders).
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.backend {
            Backend::Sqlite($pool) => $body,
            Backend::Postgres($pool) => $body,
        }
    };
}

mod assertions;
pub mod audit;
mod chain;
mod group_commit;

pub use group_commit::GroupCommitCounts;
mod opt_outs;

pub use opt_outs::{ANY_COUNTRY, OptOut};
pub mod prescriptions;
mod restrictions;

pub use restrictions::{
    NewReleasedDocument, ReleasedDocument, Restriction, RestrictionKind, restrictions_fingerprint,
};

pub use audit::{AUDIT_GENESIS_HASH, AuditRecord, BreakKind, ChainReport, NewAuditRecord};
pub use prescriptions::{
    CancelOutcome, DispenseKind, DispenseLine, DispenseOutcome, DispenseRefusal,
    InvalidPrescription, MILLI_PER_UNIT, NewDispense, NewPrescription, PrescriptionState,
    PrescriptionStatus, PutPrescriptionOutcome, RetrievalOutcome, StatusChangeOutcome,
    StatusChangeRefusal, StoredDispense, StoredDispenseLine, StoredPrescription,
};

/// How long an SQLite statement waits for a lock another connection holds
/// before failing with `SQLITE_BUSY`.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const DOCUMENT_COLUMNS: &str = "id, identifier_system, identifier_value, bundle_type, \
     patient_identifier, received_at_us, sender, document_type, content_type, sha256, content";

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
                    .foreign_keys(true);
                let pool = SqlitePoolOptions::new()
                    .max_connections(8)
                    // No ping before each use: an SQLite connection is a file
                    // handle in this process, with no peer that could have
                    // gone away; each ping is a round trip to the
                    // connection's thread. A statement on a broken connection
                    // still fails (and the caller fails closed); sqlx pings
                    // on release anyway.
                    .test_before_acquire(false)
                    .connect_with(options.clone())
                    .await?;
                sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
                sqlite_writer = Some(group_commit::SqliteWriter::start(&options).await?);
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

    /// SQLite: how many audit and replay-ledger writes were committed, in
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

    /// Stores a document unless its identifier is already taken.
    ///
    /// Idempotent: the same identifier with identical bytes returns the
    /// original ([`PutOutcome::AlreadyStored`]); with different bytes,
    /// [`PutOutcome::Conflict`]. Concurrent pushes of one identifier store it
    /// once (the unique constraint decides).
    pub async fn put_document(&self, doc: NewDocument<'_>) -> Result<PutOutcome, StoreError> {
        let sha256: [u8; 32] = Sha256::digest(doc.content).into();
        let id = uuid::Uuid::new_v4().to_string();
        let received_at_us = to_micros(OffsetDateTime::now_utc())?;
        let inserted = on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO documents (id, identifier_system, identifier_value, bundle_type, \
                 patient_identifier, received_at_us, sender, document_type, content_type, \
                 sha256, content) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (identifier_system, identifier_value) DO NOTHING",
            )
            .bind(&id)
            .bind(&doc.identifier.system)
            .bind(&doc.identifier.value)
            .bind(doc.bundle_type)
            .bind(doc.patient_identifier)
            .bind(received_at_us)
            .bind(doc.sender)
            .bind(doc.document_type)
            .bind(doc.content_type)
            .bind(&sha256[..])
            .bind(doc.content)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        if inserted == 1 {
            return Ok(PutOutcome::Created(StoredDocument {
                id,
                identifier: doc.identifier,
                bundle_type: doc.bundle_type.to_owned(),
                patient_identifier: doc.patient_identifier.map(str::to_owned),
                received_at: from_micros(received_at_us)?,
                sender: doc.sender.to_owned(),
                document_type: doc.document_type.map(str::to_owned),
                content_type: doc.content_type.to_owned(),
                sha256,
                content: doc.content.to_vec(),
            }));
        }
        let existing = self
            .document_by_identifier(&doc.identifier)
            .await?
            .ok_or_else(|| {
                StoreError::Corrupt("identifier conflict without a stored document".into())
            })?;
        if existing.sha256 == sha256 && existing.content == doc.content {
            Ok(PutOutcome::AlreadyStored(existing))
        } else {
            Ok(PutOutcome::Conflict {
                existing_id: existing.id,
            })
        }
    }

    /// The document with the gateway id `id`.
    pub async fn document(&self, id: &str) -> Result<Option<StoredDocument>, StoreError> {
        let sql = format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = $1");
        on_pool!(self, |pool| {
            sqlx::query(&sql)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .map(|row| read_document(&row))
                .transpose()
        })
    }

    /// The document holding `identifier`.
    pub async fn document_by_identifier(
        &self,
        identifier: &DocumentIdentifier,
    ) -> Result<Option<StoredDocument>, StoreError> {
        let sql = format!(
            "SELECT {DOCUMENT_COLUMNS} FROM documents \
             WHERE identifier_system = $1 AND identifier_value = $2"
        );
        on_pool!(self, |pool| {
            sqlx::query(&sql)
                .bind(&identifier.system)
                .bind(&identifier.value)
                .fetch_optional(pool)
                .await?
                .map(|row| read_document(&row))
                .transpose()
        })
    }

    /// How many documents are stored.
    pub async fn document_count(&self) -> Result<u64, StoreError> {
        let count: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM documents")
                .fetch_one(pool)
                .await
        })?;
        u64::try_from(count).map_err(|_| StoreError::Corrupt("negative count".into()))
    }

    /// The documents whose subject is `patient_identifier` (`system|value`),
    /// newest first, optionally only those of one `Bundle.type`; metadata
    /// only, no content.
    pub async fn documents_for_patient(
        &self,
        patient_identifier: &str,
        bundle_type: Option<&str>,
    ) -> Result<Vec<DocumentSummary>, StoreError> {
        const COLUMNS: &str = "id, identifier_system, identifier_value, bundle_type, \
             received_at_us, document_type, content_type, sha256, \
             CAST(length(content) AS BIGINT) AS size";
        const ORDER: &str = "ORDER BY received_at_us DESC, id DESC";
        let sql = match bundle_type {
            None => {
                format!("SELECT {COLUMNS} FROM documents WHERE patient_identifier = $1 {ORDER}")
            }
            Some(_) => format!(
                "SELECT {COLUMNS} FROM documents \
                 WHERE patient_identifier = $1 AND bundle_type = $2 {ORDER}"
            ),
        };
        on_pool!(self, |pool| {
            let mut query = sqlx::query(&sql).bind(patient_identifier);
            if let Some(bundle_type) = bundle_type {
                query = query.bind(bundle_type);
            }
            query
                .fetch_all(pool)
                .await?
                .iter()
                .map(read_summary)
                .collect()
        })
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
fn to_micros(t: OffsetDateTime) -> Result<i64, StoreError> {
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000))
        .map_err(|_| StoreError::Corrupt("time out of range".into()))
}

fn from_micros(us: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000)
        .map_err(|e| StoreError::Corrupt(format!("stored time: {e}")))
}

fn read_summary<R>(row: &R) -> Result<DocumentSummary, StoreError>
where
    R: Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let sha: Vec<u8> = row.try_get("sha256")?;
    let size: i64 = row.try_get("size")?;
    Ok(DocumentSummary {
        id: row.try_get("id")?,
        identifier: DocumentIdentifier {
            system: row.try_get("identifier_system")?,
            value: row.try_get("identifier_value")?,
        },
        bundle_type: row.try_get("bundle_type")?,
        received_at: from_micros(row.try_get("received_at_us")?)?,
        document_type: row.try_get("document_type")?,
        content_type: row.try_get("content_type")?,
        sha256: sha
            .try_into()
            .map_err(|_| StoreError::Corrupt("sha256 is not 32 bytes".into()))?,
        size: u64::try_from(size).map_err(|_| StoreError::Corrupt("negative size".into()))?,
    })
}

fn read_document<R>(row: &R) -> Result<StoredDocument, StoreError>
where
    R: Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let sha: Vec<u8> = row.try_get("sha256")?;
    Ok(StoredDocument {
        id: row.try_get("id")?,
        identifier: DocumentIdentifier {
            system: row.try_get("identifier_system")?,
            value: row.try_get("identifier_value")?,
        },
        bundle_type: row.try_get("bundle_type")?,
        patient_identifier: row.try_get("patient_identifier")?,
        received_at: from_micros(row.try_get("received_at_us")?)?,
        sender: row.try_get("sender")?,
        document_type: row.try_get("document_type")?,
        content_type: row.try_get("content_type")?,
        sha256: sha
            .try_into()
            .map_err(|_| StoreError::Corrupt("sha256 is not 32 bytes".into()))?,
        content: row.try_get("content")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls() {
        assert_eq!(
            StoreConfig::from_url("sqlite://data/gw.db", None).unwrap(),
            StoreConfig::Sqlite {
                path: "data/gw.db".into()
            }
        );
        assert!(StoreConfig::from_url("postgres://u@h:5432/db", Some("ncp_a".into())).is_ok());
        assert!(StoreConfig::from_url("postgres://u@h/db", Some("Bad-Name".into())).is_err());
        assert!(StoreConfig::from_url("sqlite://x.db", Some("s".into())).is_err());
        assert!(StoreConfig::from_url("mysql://h/db", None).is_err());
        assert!(StoreConfig::from_url("sqlite://", None).is_err());
    }
}
