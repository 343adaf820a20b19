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

/// The database driver's error, named so callers can classify it (e.g. pool
/// time-outs as "unavailable") without depending on sqlx themselves.
pub use sqlx::Error as SqlxError;

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
mod backend;
mod chain;
mod config;
mod documents;
mod error;
mod group_commit;
mod opt_outs;
pub mod prescriptions;
mod restrictions;

pub use audit::{AUDIT_GENESIS_HASH, AuditRecord, BreakKind, ChainReport, NewAuditRecord};
pub use backend::Store;
pub use config::StoreConfig;
pub use documents::{
    DocumentIdentifier, DocumentSummary, FHIR_JSON, Identifier, NewDocument, PDF, PutOutcome,
    StoredDocument,
};
pub use error::StoreError;
pub use group_commit::GroupCommitCounts;
pub use opt_outs::{ANY_COUNTRY, OptOut};
pub use prescriptions::{
    CancelOutcome, DispenseKind, DispenseLine, DispenseOutcome, DispenseRefusal,
    InvalidPrescription, MILLI_PER_UNIT, NewDispense, NewPrescription, PrescriptionState,
    PrescriptionStatus, PutPrescriptionOutcome, RetrievalOutcome, StatusChangeOutcome,
    StatusChangeRefusal, StoredDispense, StoredDispenseLine, StoredPrescription,
};
pub use restrictions::{
    NewReleasedDocument, ReleasedDocument, Restriction, RestrictionKind, restrictions_fingerprint,
};
