//! What went wrong in the store ([`StoreError`]).

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
