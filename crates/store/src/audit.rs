//! The audit trail: an append-only, hash-chained log of every cross-border
//! access and every refusal (each a FHIR AuditEvent, kept as the exact bytes
//! the caller gives; the store does not parse them).
//!
//! # The chain
//!
//! Records are numbered `seq = 1, 2, 3, …` without gaps. Each record stores
//! the hash of its predecessor (`prev_hash`; the first record's is
//! [`AUDIT_GENESIS_HASH`], 32 zero bytes) and its own `hash`, the SHA-256
//! (FIPS 180-4) of this canonical byte layout:
//!
//! | field | bytes |
//! | --- | --- |
//! | `prev_hash` | 32 |
//! | `seq` | 8, unsigned big-endian |
//! | `recorded_at` | 8, signed big-endian (two's complement): microseconds since 1970-01-01T00:00:00Z |
//! | patient tag | 1: `0x00` no patient, `0x01` a patient follows |
//! | patient length, patient | only with tag `0x01`: 8 (unsigned big-endian byte count), then the UTF-8 bytes of `system\|value` |
//! | outcome length, outcome | 8 (unsigned big-endian byte count), then the UTF-8 bytes of the outcome code |
//! | `SHA-256(content)` | 32 |
//!
//! Every variable-length field is length-prefixed, so no two different
//! records share an input. Changing any stored field of a record breaks its
//! `hash`; recomputing that hash breaks the successor's `prev_hash`; removing
//! a record leaves a gap in `seq`; removing records at the end leaves the
//! chain head (a one-row table written with every append) ahead of the last
//! record. [`Store::verify_audit_chain`] checks all of these.
//!
//! The chain is unkeyed: it proves that the log was not altered *by someone
//! who did not rewrite every later record and the head*. Anchoring the
//! reported head hash outside the database (e.g. in the operator's own log
//! now and then) closes that gap.
//!
//! # Concurrency
//!
//! An append reads and advances the chain head inside one transaction that
//! holds the head exclusively: on PostgreSQL `SELECT … FOR UPDATE` on the
//! head row (READ COMMITTED, so the next waiter sees the new head), on SQLite
//! `BEGIN IMMEDIATE` (the database write lock). On SQLite the database itself
//! refuses a record that does not extend the head and advances the head with
//! the record (triggers of migration 0013), so a process that wrote the head
//! last appends with one INSERT, without reading it first; when the head has
//! moved, the INSERT is refused and the append reads it as above. On SQLite
//! one writer thread per store does this, and commits the appends that arrive
//! while it is busy in one transaction (module `group_commit`). Any number
//! of tasks and of gateway processes sharing one database therefore extend
//! one chain.
//!
//! # Append-only
//!
//! The store offers no update or delete, and database triggers refuse
//! `UPDATE` and `DELETE` (PostgreSQL also `TRUNCATE`) of `audit_events`, and
//! anything but a one-step advance of the head.

use std::fmt;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::backend::{Backend, Store, from_micros, to_micros};
use crate::chain::{AuditRow, Link, chain_hash, to_hash, to_seq};
use crate::error::StoreError;
use crate::group_commit::AuditWrite;

/// `prev_hash` of the first record: 32 zero bytes.
pub const AUDIT_GENESIS_HASH: [u8; 32] = [0; 32];

/// How many records [`Store::verify_audit_chain`] reads per query.
const VERIFY_PAGE: i64 = 256;

const AUDIT_COLUMNS: &str =
    "seq, recorded_at_us, patient_identifier, outcome, content, prev_hash, hash";

/// A record to append to the audit trail.
#[derive(Debug, Clone, Copy)]
pub struct NewAuditRecord<'a> {
    /// The patient the access concerned, as `system|value`, if known (a
    /// refusal before the patient is identified has none).
    pub patient_identifier: Option<&'a str>,
    /// The outcome code (`AuditEvent.outcome`: `0` success, `4` minor
    /// failure, `8` serious failure, `12` major failure —
    /// <https://hl7.org/fhir/R4/valueset-audit-event-outcome.html>).
    pub outcome: &'a str,
    /// The AuditEvent JSON, stored exactly as given.
    pub content: &'a [u8],
    /// When the event happened; stored (and hashed) to the microsecond.
    pub recorded_at: OffsetDateTime,
}

/// A record of the audit trail.
///
/// `Debug` leaves out the patient identifier and the content (they are
/// health data; they must not reach logs).
#[derive(Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Position in the chain, from 1, without gaps.
    pub seq: u64,
    /// When the event happened (microsecond precision).
    pub recorded_at: OffsetDateTime,
    /// The patient as `system|value`, if the record names one.
    pub patient_identifier: Option<String>,
    /// The outcome code.
    pub outcome: String,
    /// The AuditEvent JSON, the exact bytes appended.
    pub content: Vec<u8>,
    /// `hash` of the record before (or [`AUDIT_GENESIS_HASH`]).
    pub prev_hash: [u8; 32],
    /// SHA-256 of the canonical layout (module documentation).
    pub hash: [u8; 32],
}

impl AuditRecord {
    /// The hash this record's fields give under the canonical layout; equal
    /// to [`AuditRecord::hash`] unless the record was altered.
    pub fn computed_hash(&self) -> Result<[u8; 32], StoreError> {
        Ok(chain_hash(
            &self.prev_hash,
            self.seq,
            to_micros(self.recorded_at)?,
            self.patient_identifier.as_deref(),
            &self.outcome,
            &Sha256::digest(&self.content).into(),
        ))
    }
}

impl fmt::Debug for AuditRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditRecord")
            .field("seq", &self.seq)
            .field("recorded_at", &self.recorded_at)
            .field(
                "patient_identifier",
                &self.patient_identifier.as_ref().map(|_| "<redacted>"),
            )
            .field("outcome", &self.outcome)
            .field("content_len", &self.content.len())
            .field("prev_hash", &Hex(&self.prev_hash))
            .field("hash", &Hex(&self.hash))
            .finish()
    }
}

struct Hex<'a>(&'a [u8]);

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// How the chain is broken at the reported position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakKind {
    /// The record's fields do not hash to its stored `hash` (the record was
    /// altered).
    HashMismatch,
    /// The record's `prev_hash` is not its predecessor's `hash` (a record was
    /// altered and rehashed, replaced or inserted).
    PrevHashMismatch,
    /// The record with this `seq` is missing (removed, or cut off the end).
    SeqGap,
    /// The last record is not the one the chain head names (the head or the
    /// last record was rewritten).
    HeadMismatch,
}

/// What [`Store::verify_audit_chain`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// How many records were read (up to the chain head as it was when the
    /// verification started; later appends are not counted).
    pub records: u64,
    /// The first break, by `seq`, and its kind; `None` when the chain is
    /// intact.
    pub first_broken: Option<(u64, BreakKind)>,
    /// The chain head's hash ([`AUDIT_GENESIS_HASH`] for an empty trail):
    /// note it outside the database to anchor the chain.
    pub head_hash: [u8; 32],
}

impl ChainReport {
    /// Whether no break was found.
    pub fn is_intact(&self) -> bool {
        self.first_broken.is_none()
    }
}

/// PostgreSQL: the head row locked (`FOR UPDATE`, READ COMMITTED so the next
/// waiter sees the new head), the record inserted, the head advanced.
async fn append_audit_postgres(
    pool: &sqlx::PgPool,
    row: &AuditRow<'_>,
) -> Result<Link, StoreError> {
    let mut tx = pool
        .begin_with("BEGIN ISOLATION LEVEL READ COMMITTED")
        .await?;
    let (head_seq, head_hash): (i64, Vec<u8>) =
        sqlx::query_as("SELECT seq, hash FROM audit_chain_head WHERE id = 1 FOR UPDATE")
            .fetch_one(&mut *tx)
            .await?;
    let link = row.link((to_seq(head_seq)?, to_hash(head_hash, "chain head hash")?))?;
    row.insert(&link).execute(&mut *tx).await?;
    let seq_db =
        i64::try_from(link.0).map_err(|_| StoreError::Corrupt("audit seq overflow".into()))?;
    sqlx::query("UPDATE audit_chain_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(seq_db)
        .bind(&link.2[..])
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(link)
}

fn read_audit<R>(row: &R) -> Result<AuditRecord, StoreError>
where
    R: sqlx::Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(AuditRecord {
        seq: to_seq(row.try_get("seq")?)?,
        recorded_at: from_micros(row.try_get("recorded_at_us")?)?,
        patient_identifier: row.try_get("patient_identifier")?,
        outcome: row.try_get("outcome")?,
        content: row.try_get("content")?,
        prev_hash: to_hash(row.try_get("prev_hash")?, "prev_hash")?,
        hash: to_hash(row.try_get("hash")?, "hash")?,
    })
}

/// The verifier's running state over records in `seq` order.
struct ChainWalk {
    records: u64,
    next_seq: u64,
    prev_hash: [u8; 32],
    first_broken: Option<(u64, BreakKind)>,
}

impl ChainWalk {
    fn new() -> Self {
        Self {
            records: 0,
            next_seq: 1,
            prev_hash: AUDIT_GENESIS_HASH,
            first_broken: None,
        }
    }

    fn step(&mut self, record: &AuditRecord) -> Result<(), StoreError> {
        self.records += 1;
        if self.first_broken.is_none() {
            self.first_broken = if record.seq != self.next_seq {
                Some((self.next_seq, BreakKind::SeqGap))
            } else if record.prev_hash != self.prev_hash {
                Some((record.seq, BreakKind::PrevHashMismatch))
            } else if record.computed_hash()? != record.hash {
                Some((record.seq, BreakKind::HashMismatch))
            } else {
                None
            };
        }
        self.next_seq = record.seq.saturating_add(1);
        self.prev_hash = record.hash;
        Ok(())
    }

    /// Compares the last record read with the chain head.
    fn finish(mut self, head_seq: u64, head_hash: [u8; 32]) -> ChainReport {
        let last_seq = self.next_seq.saturating_sub(1);
        if self.first_broken.is_none() {
            if head_seq > last_seq {
                self.first_broken = Some((self.next_seq, BreakKind::SeqGap));
            } else if head_hash != self.prev_hash {
                self.first_broken = Some((last_seq, BreakKind::HeadMismatch));
            }
        }
        ChainReport {
            records: self.records,
            first_broken: self.first_broken,
            head_hash,
        }
    }
}

impl Store {
    /// Appends a record at the head of the audit trail and returns it with its
    /// `seq` and hashes.
    ///
    /// Atomic: the record and the new chain head are committed together or
    /// not at all. Safe with any number of concurrent appenders, in this
    /// process or in other gateway processes on the same database (module
    /// documentation).
    ///
    /// Fail closed: an `Err` means the record may not have been written; the
    /// caller must then not release the data the record was about.
    pub async fn append_audit(
        &self,
        record: NewAuditRecord<'_>,
    ) -> Result<AuditRecord, StoreError> {
        let recorded_at_us = to_micros(record.recorded_at)?;
        let content_sha256: [u8; 32] = Sha256::digest(record.content).into();
        let (seq, prev_hash, hash) = match (&self.backend, &self.sqlite_writer) {
            // SQLite: the writer thread, which commits the appends (and ledger
            // writes) of concurrent requests together (module
            // `group_commit`).
            (Backend::Sqlite(_), Some(writer)) => {
                writer
                    .audit(AuditWrite {
                        patient_identifier: record.patient_identifier.map(str::to_owned),
                        outcome: record.outcome.to_owned(),
                        content: record.content.to_vec(),
                        recorded_at_us,
                        content_sha256,
                    })
                    .await?
            }
            (Backend::Sqlite(_), None) => {
                return Err(StoreError::Config(
                    "the SQLite writer is not running".into(),
                ));
            }
            (Backend::Postgres(pool), _) => {
                let row = AuditRow {
                    patient_identifier: record.patient_identifier,
                    outcome: record.outcome,
                    content: record.content,
                    recorded_at_us,
                    content_sha256,
                };
                append_audit_postgres(pool, &row).await?
            }
        };
        Ok(AuditRecord {
            seq,
            recorded_at: from_micros(recorded_at_us)?,
            patient_identifier: record.patient_identifier.map(str::to_owned),
            outcome: record.outcome.to_owned(),
            content: record.content.to_vec(),
            prev_hash,
            hash,
        })
    }

    /// Checks the whole audit trail: `seq` without gaps from 1, each
    /// `prev_hash` equal to the predecessor's `hash`, each `hash` equal to
    /// the hash of the record's fields, and the last record equal to the
    /// chain head.
    ///
    /// Reads the records in `seq` order a page at a time (memory stays
    /// bounded however long the trail), up to the head as it was when the
    /// verification started, so it can run beside appending gateways. Breaks
    /// are a report, not an error; `Err` means the store could not be read.
    pub async fn verify_audit_chain(&self) -> Result<ChainReport, StoreError> {
        let (head_seq, head_hash): (i64, Vec<u8>) = on_pool!(self, |pool| {
            sqlx::query_as("SELECT seq, hash FROM audit_chain_head WHERE id = 1")
                .fetch_one(pool)
                .await
        })?;
        let head_hash = to_hash(head_hash, "chain head hash")?;
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE seq > $1 AND seq <= $2 \
             ORDER BY seq LIMIT $3"
        );
        let mut walk = ChainWalk::new();
        let mut after: i64 = 0;
        loop {
            let page: Vec<AuditRecord> = on_pool!(self, |pool| {
                sqlx::query(&sql)
                    .bind(after)
                    .bind(head_seq)
                    .bind(VERIFY_PAGE)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(read_audit)
                    .collect::<Result<_, StoreError>>()
            })?;
            for record in &page {
                walk.step(record)?;
            }
            match page.last() {
                Some(last) if page.len() as i64 == VERIFY_PAGE => {
                    after = i64::try_from(last.seq)
                        .map_err(|_| StoreError::Corrupt("audit seq overflow".into()))?;
                }
                _ => break,
            }
        }
        Ok(walk.finish(to_seq(head_seq)?, head_hash))
    }

    /// The audit records naming `patient_identifier` (`system|value`), newest
    /// first: at most `limit`, all with `seq` below `before_seq` when given
    /// (pass the last `seq` of one page to get the next).
    pub async fn audit_for_patient(
        &self,
        patient_identifier: &str,
        limit: u32,
        before_seq: Option<u64>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let before = before_seq.map_or(i64::MAX, |s| i64::try_from(s).unwrap_or(i64::MAX));
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events \
             WHERE patient_identifier = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
        );
        on_pool!(self, |pool| {
            sqlx::query(&sql)
                .bind(patient_identifier)
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
                .iter()
                .map(read_audit)
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout, spelled out byte by byte, gives the same hash.
    #[test]
    fn canonical_layout() {
        let content_sha: [u8; 32] = Sha256::digest(b"{}").into();
        let mut bytes = vec![0u8; 32];
        bytes.extend_from_slice(&7u64.to_be_bytes());
        bytes.extend_from_slice(&1_700_000_000_000_000i64.to_be_bytes());
        bytes.push(1);
        bytes.extend_from_slice(&5u64.to_be_bytes());
        bytes.extend_from_slice(b"sys|v");
        bytes.extend_from_slice(&1u64.to_be_bytes());
        bytes.extend_from_slice(b"0");
        bytes.extend_from_slice(&content_sha);
        let expected: [u8; 32] = Sha256::digest(&bytes).into();
        assert_eq!(
            chain_hash(
                &AUDIT_GENESIS_HASH,
                7,
                1_700_000_000_000_000,
                Some("sys|v"),
                "0",
                &content_sha
            ),
            expected
        );
        // No patient is a different input from an empty patient.
        assert_ne!(
            chain_hash(&AUDIT_GENESIS_HASH, 1, 0, None, "0", &content_sha),
            chain_hash(&AUDIT_GENESIS_HASH, 1, 0, Some(""), "0", &content_sha)
        );
    }

    #[test]
    fn debug_leaves_out_health_data() {
        let record = AuditRecord {
            seq: 1,
            recorded_at: OffsetDateTime::UNIX_EPOCH,
            patient_identifier: Some("urn:oid:1.2|secret-patient".into()),
            outcome: "0".into(),
            content: b"secret-content".to_vec(),
            prev_hash: AUDIT_GENESIS_HASH,
            hash: [0xab; 32],
        };
        let shown = format!("{record:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("abababab"), "{shown}");
    }
}
