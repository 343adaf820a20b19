//! Parts of their data patients restricted from cross-border exchange
//! (EHDS: the patient's right to restrict access to parts of their
//! electronic health data), and the variants of documents released abroad
//! without them.
//!
//! A restriction names its target in the caller's words (a section code, an
//! entry, a business identifier, a prescription identifier); the store keeps
//! and lists them. A released variant is kept once per original document and
//! set of restrictions in force (their fingerprint): every replica that
//! builds the same variant at the same moment ends up releasing the one that
//! was stored first.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::backend::{Backend, Store, from_micros, to_micros};
use crate::documents::DocumentIdentifier;
use crate::error::StoreError;

/// What a restriction names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RestrictionKind {
    /// A section of the patient summary: target `system|code`.
    Section,
    /// An entry of the patient summary: target its `fullUrl` or `Type/id`.
    Entry,
    /// An entry of the patient summary by its business identifier: target
    /// `system|value`.
    Identifier,
    /// A prescription: target its identifier `system|value`.
    Prescription,
    /// A whole document of any document service (a laboratory report, a
    /// PDF original, a patient summary): target its identifier
    /// `system|value` (`Bundle.identifier`, or the `masterIdentifier` of a
    /// PDF original). Abroad it is neither listed nor read.
    Document,
}

impl RestrictionKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Section => "section",
            Self::Entry => "entry",
            Self::Identifier => "identifier",
            Self::Prescription => "prescription",
            Self::Document => "document",
        }
    }

    /// The kind stored as `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "section" => Some(Self::Section),
            "entry" => Some(Self::Entry),
            "identifier" => Some(Self::Identifier),
            "prescription" => Some(Self::Prescription),
            "document" => Some(Self::Document),
            _ => None,
        }
    }

    /// Whether it restricts a part of the patient summary (rather than a
    /// prescription or a whole document).
    pub fn is_summary_part(self) -> bool {
        !matches!(self, Self::Prescription | Self::Document)
    }
}

/// A restriction in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restriction {
    /// What it names.
    pub kind: RestrictionKind,
    /// The target, in the form its kind says.
    pub target: String,
    /// When the patient set it.
    pub restricted_at: OffsetDateTime,
}

/// SHA-256 over the summary restrictions in force (kind and target, in a
/// fixed order): which set of restrictions a released variant honours.
pub fn restrictions_fingerprint(restrictions: &[Restriction]) -> [u8; 32] {
    let mut parts: Vec<(&str, &str)> = restrictions
        .iter()
        .filter(|r| r.kind.is_summary_part())
        .map(|r| (r.kind.as_str(), r.target.as_str()))
        .collect();
    parts.sort_unstable();
    parts.dedup();
    let mut hasher = Sha256::new();
    for (kind, target) in parts {
        hasher.update(kind.as_bytes());
        hasher.update([0]);
        hasher.update(target.as_bytes());
        hasher.update([0]);
    }
    hasher.finalize().into()
}

/// A variant to keep.
#[derive(Debug, Clone)]
pub struct NewReleasedDocument<'a> {
    /// Its id (the variant's `Bundle.id`).
    pub id: &'a str,
    /// The stored original it derives from.
    pub original_id: &'a str,
    /// [`restrictions_fingerprint`] of the restrictions it honours.
    pub restrictions_sha256: [u8; 32],
    /// The variant's `Bundle.identifier`.
    pub identifier: &'a DocumentIdentifier,
    /// When it was built.
    pub released_at: OffsetDateTime,
    /// The variant's bytes.
    pub content: &'a [u8],
    /// The Provenance resource linking it to the original (JSON bytes).
    pub provenance: &'a [u8],
}

/// A kept variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasedDocument {
    /// Its id.
    pub id: String,
    /// The original it derives from.
    pub original_id: String,
    /// The restrictions it honours.
    pub restrictions_sha256: [u8; 32],
    /// Its `Bundle.identifier`.
    pub identifier: DocumentIdentifier,
    /// When it was built.
    pub released_at: OffsetDateTime,
    /// SHA-256 of the content.
    pub sha256: [u8; 32],
    /// The variant's bytes.
    pub content: Vec<u8>,
    /// The Provenance linking it to the original.
    pub provenance: Vec<u8>,
}

const RELEASED_COLUMNS: &str = "id, original_id, restrictions_sha256, identifier_system, \
     identifier_value, released_at_us, sha256, content, provenance";

impl Store {
    /// Records a restriction of `patient_identifier` (`system|value`).
    /// Setting it again keeps the first time.
    pub async fn set_restriction(
        &self,
        patient_identifier: &str,
        kind: RestrictionKind,
        target: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let at_us = to_micros(at)?;
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO cross_border_restrictions \
                 (patient_identifier, kind, target, restricted_at_us) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (patient_identifier, kind, target) DO NOTHING",
            )
            .bind(patient_identifier)
            .bind(kind.as_str())
            .bind(target)
            .bind(at_us)
            .execute(pool)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Lifts a restriction; true when one was in force.
    pub async fn lift_restriction(
        &self,
        patient_identifier: &str,
        kind: RestrictionKind,
        target: &str,
    ) -> Result<bool, StoreError> {
        let deleted = on_pool!(self, |pool| {
            sqlx::query(
                "DELETE FROM cross_border_restrictions \
                 WHERE patient_identifier = $1 AND kind = $2 AND target = $3",
            )
            .bind(patient_identifier)
            .bind(kind.as_str())
            .bind(target)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(deleted > 0)
    }

    /// The restrictions in force for a patient, by kind and target.
    pub async fn restrictions_for_patient(
        &self,
        patient_identifier: &str,
    ) -> Result<Vec<Restriction>, StoreError> {
        let rows: Vec<(String, String, i64)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT kind, target, restricted_at_us FROM cross_border_restrictions \
                 WHERE patient_identifier = $1 ORDER BY kind, target",
            )
            .bind(patient_identifier)
            .fetch_all(pool)
            .await
        })?;
        rows.into_iter()
            .map(|(kind, target, at)| {
                Ok(Restriction {
                    kind: RestrictionKind::from_name(&kind).ok_or_else(|| {
                        StoreError::Corrupt(format!("unknown restriction kind {kind:?}"))
                    })?,
                    target,
                    restricted_at: from_micros(at)?,
                })
            })
            .collect()
    }

    /// Keeps a variant, unless one of the same original and restrictions is
    /// kept already (another replica was first): returns the one kept.
    pub async fn put_released_document(
        &self,
        doc: NewReleasedDocument<'_>,
    ) -> Result<ReleasedDocument, StoreError> {
        let at_us = to_micros(doc.released_at)?;
        let sha: [u8; 32] = Sha256::digest(doc.content).into();
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO released_documents (id, original_id, restrictions_sha256, \
                 identifier_system, identifier_value, released_at_us, sha256, content, provenance) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (original_id, restrictions_sha256) DO NOTHING",
            )
            .bind(doc.id)
            .bind(doc.original_id)
            .bind(&doc.restrictions_sha256[..])
            .bind(&doc.identifier.system)
            .bind(&doc.identifier.value)
            .bind(at_us)
            .bind(&sha[..])
            .bind(doc.content)
            .bind(doc.provenance)
            .execute(pool)
            .await
            .map(|_| ())
        })?;
        self.released_variant(doc.original_id, &doc.restrictions_sha256)
            .await?
            .ok_or_else(|| StoreError::Corrupt("a released variant vanished".into()))
    }

    /// The variant of `original_id` honouring the restrictions with this
    /// fingerprint, if one was built.
    pub async fn released_variant(
        &self,
        original_id: &str,
        restrictions_sha256: &[u8; 32],
    ) -> Result<Option<ReleasedDocument>, StoreError> {
        let sql = format!(
            "SELECT {RELEASED_COLUMNS} FROM released_documents \
             WHERE original_id = $1 AND restrictions_sha256 = $2"
        );
        on_pool!(self, |pool| {
            sqlx::query(&sql)
                .bind(original_id)
                .bind(&restrictions_sha256[..])
                .fetch_optional(pool)
                .await?
                .map(|row| read_released(&row))
                .transpose()
        })
    }

    /// The variant with id `id`.
    pub async fn released_document(
        &self,
        id: &str,
    ) -> Result<Option<ReleasedDocument>, StoreError> {
        let sql = format!("SELECT {RELEASED_COLUMNS} FROM released_documents WHERE id = $1");
        on_pool!(self, |pool| {
            sqlx::query(&sql)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .map(|row| read_released(&row))
                .transpose()
        })
    }
}

fn read_released<R>(row: &R) -> Result<ReleasedDocument, StoreError>
where
    R: sqlx::Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let hash = |column: &str| -> Result<[u8; 32], StoreError> {
        let bytes: Vec<u8> = row.try_get(column)?;
        bytes
            .try_into()
            .map_err(|_| StoreError::Corrupt(format!("{column} is not 32 bytes")))
    };
    Ok(ReleasedDocument {
        id: row.try_get("id")?,
        original_id: row.try_get("original_id")?,
        restrictions_sha256: hash("restrictions_sha256")?,
        identifier: DocumentIdentifier {
            system: row.try_get("identifier_system")?,
            value: row.try_get("identifier_value")?,
        },
        released_at: from_micros(row.try_get("released_at_us")?)?,
        sha256: hash("sha256")?,
        content: row.try_get("content")?,
        provenance: row.try_get("provenance")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restriction(kind: RestrictionKind, target: &str) -> Restriction {
        Restriction {
            kind,
            target: target.into(),
            restricted_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn fingerprint_ignores_order_and_prescriptions() {
        let a = [
            restriction(RestrictionKind::Section, "http://loinc.org|11450-4"),
            restriction(RestrictionKind::Entry, "Condition/1"),
        ];
        let b = [
            restriction(RestrictionKind::Entry, "Condition/1"),
            restriction(RestrictionKind::Prescription, "urn:x|1"),
            restriction(RestrictionKind::Section, "http://loinc.org|11450-4"),
        ];
        assert_eq!(restrictions_fingerprint(&a), restrictions_fingerprint(&b));
        assert_ne!(
            restrictions_fingerprint(&a),
            restrictions_fingerprint(&a[..1])
        );
        // Kind and target are kept apart.
        assert_ne!(
            restrictions_fingerprint(&[restriction(RestrictionKind::Entry, "a")]),
            restrictions_fingerprint(&[restriction(RestrictionKind::Identifier, "a")])
        );
    }
}
