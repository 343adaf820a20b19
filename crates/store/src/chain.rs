//! One link of the audit trail's hash chain: the hash of a record over the
//! canonical layout (`crate::audit`'s documentation), the chain head, the
//! row to append and its INSERT. Shared by the audit trail's own appends
//! (PostgreSQL) and the SQLite group-commit writer, below both.

use sha2::{Digest, Sha256};

use crate::error::StoreError;

/// SHA-256 over the canonical layout (module documentation).
pub(crate) fn chain_hash(
    prev_hash: &[u8; 32],
    seq: u64,
    recorded_at_us: i64,
    patient_identifier: Option<&str>,
    outcome: &str,
    content_sha256: &[u8; 32],
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev_hash);
    h.update(seq.to_be_bytes());
    h.update(recorded_at_us.to_be_bytes());
    match patient_identifier {
        None => h.update([0x00]),
        Some(patient) => {
            h.update([0x01]);
            h.update((patient.len() as u64).to_be_bytes());
            h.update(patient.as_bytes());
        }
    }
    h.update((outcome.len() as u64).to_be_bytes());
    h.update(outcome.as_bytes());
    h.update(content_sha256);
    h.finalize().into()
}

/// The chain head `(seq, hash)`.
pub(crate) type ChainHead = (u64, [u8; 32]);

/// `(seq, prev_hash, hash)` of an appended record.
pub(crate) type Link = (u64, [u8; 32], [u8; 32]);

/// Appends a record (`seq`, `recorded_at_us`, `patient_identifier`,
/// `outcome`, `content`, `prev_hash`, `hash`); the triggers (SQLite) or the
/// locked head (PostgreSQL) make it extend the chain.
pub(crate) const INSERT_AUDIT_EVENT: &str = "INSERT INTO audit_events (seq, recorded_at_us, patient_identifier, outcome, \
     content, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// A record to append, with what its hash needs.
pub(crate) struct AuditRow<'a> {
    pub(crate) patient_identifier: Option<&'a str>,
    pub(crate) outcome: &'a str,
    pub(crate) content: &'a [u8],
    pub(crate) recorded_at_us: i64,
    pub(crate) content_sha256: [u8; 32],
}

impl AuditRow<'_> {
    /// The link after the head `(seq, hash)`.
    pub(crate) fn link(&self, (head_seq, head_hash): ChainHead) -> Result<Link, StoreError> {
        let seq = head_seq
            .checked_add(1)
            .ok_or_else(|| StoreError::Corrupt("audit seq overflow".into()))?;
        i64::try_from(seq).map_err(|_| StoreError::Corrupt("audit seq overflow".into()))?;
        let hash = chain_hash(
            &head_hash,
            seq,
            self.recorded_at_us,
            self.patient_identifier,
            self.outcome,
            &self.content_sha256,
        );
        Ok((seq, head_hash, hash))
    }

    /// The INSERT of the record at `link` (`seq` fits an i64: checked by
    /// [`AuditRow::link`]).
    pub(crate) fn insert<'q, DB>(
        &'q self,
        link: &'q Link,
    ) -> sqlx::query::Query<'q, DB, DB::Arguments<'q>>
    where
        DB: sqlx::Database,
        i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        &'q [u8]: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        sqlx::query(INSERT_AUDIT_EVENT)
            .bind(i64::try_from(link.0).unwrap_or(i64::MAX))
            .bind(self.recorded_at_us)
            .bind(self.patient_identifier)
            .bind(self.outcome)
            .bind(self.content)
            .bind(&link.1[..])
            .bind(&link.2[..])
    }
}

pub(crate) fn to_seq(seq: i64) -> Result<u64, StoreError> {
    u64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("negative audit seq {seq}")))
}

pub(crate) fn to_hash(bytes: Vec<u8>, what: &str) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("audit {what} is not 32 bytes")))
}
