//! Received documents: kept as the exact bytes received plus the metadata
//! the gateway indexes them by (Bundle.identifier, patient identifier,
//! document type, received time, sender, SHA-256).

use sha2::{Digest, Sha256};
use sqlx::Row;
use time::OffsetDateTime;

use crate::backend::{Backend, Store, from_micros, to_micros};
use crate::error::StoreError;
use crate::group_commit::DocumentWrite;

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

const DOCUMENT_COLUMNS: &str = "id, identifier_system, identifier_value, bundle_type, \
     patient_identifier, received_at_us, sender, document_type, content_type, sha256, content";

impl Store {
    /// Stores a document unless its identifier is already taken.
    ///
    /// Idempotent: the same identifier with identical bytes returns the
    /// original ([`PutOutcome::AlreadyStored`]); with different bytes,
    /// [`PutOutcome::Conflict`]. Concurrent pushes of one identifier store it
    /// once (the unique constraint decides).
    pub async fn put_document(&self, doc: NewDocument<'_>) -> Result<PutOutcome, StoreError> {
        let sha256: [u8; 32] = Sha256::digest(doc.content).into();
        let write = DocumentWrite {
            id: uuid::Uuid::new_v4().to_string(),
            identifier_system: doc.identifier.system.clone(),
            identifier_value: doc.identifier.value.clone(),
            bundle_type: doc.bundle_type.to_owned(),
            patient_identifier: doc.patient_identifier.map(str::to_owned),
            received_at_us: to_micros(OffsetDateTime::now_utc())?,
            sender: doc.sender.to_owned(),
            document_type: doc.document_type.map(str::to_owned),
            content_type: doc.content_type.to_owned(),
            sha256,
            content: doc.content.to_vec(),
        };
        let (inserted, write) = match (&self.backend, &self.sqlite_writer) {
            // SQLite: through the writer's one connection, committed with
            // the other requests' durable writes of the moment (module
            // `group_commit`).
            (Backend::Sqlite(_), Some(writer)) => writer.document(write).await?,
            (Backend::Sqlite(_), None) => {
                return Err(StoreError::Config(
                    "the SQLite writer is not running".into(),
                ));
            }
            (Backend::Postgres(pool), _) => {
                let inserted = write.query().execute(pool).await?.rows_affected();
                (inserted == 1, write)
            }
        };
        if inserted {
            return Ok(PutOutcome::Created(StoredDocument {
                id: write.id,
                identifier: doc.identifier,
                bundle_type: write.bundle_type,
                patient_identifier: write.patient_identifier,
                received_at: from_micros(write.received_at_us)?,
                sender: write.sender,
                document_type: write.document_type,
                content_type: write.content_type,
                sha256,
                content: write.content,
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
