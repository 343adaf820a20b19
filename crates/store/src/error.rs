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
    /// The SQLite writer (module `group_commit`) could not write.
    #[error("database (SQLite writer): {0}")]
    SqliteWriter(#[from] rusqlite::Error),
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

impl StoreError {
    /// Whether the store is unavailable for a while (the caller may try
    /// again later), not at fault: its pool timed out or closed, the
    /// connection failed, or the database said it is busy, locked or full,
    /// or asked for the transaction to be retried:
    ///
    /// - SQLite result codes (<https://www.sqlite.org/rescode.html>; the
    ///   extended code's low byte is the primary one): 5 `SQLITE_BUSY`, 6
    ///   `SQLITE_LOCKED`, 13 `SQLITE_FULL`;
    /// - PostgreSQL SQLSTATEs (Appendix A, always five characters): 53100
    ///   `disk_full`, 55P03 `lock_not_available`, 40001
    ///   `serialization_failure`, 40P01 `deadlock_detected`.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_),
            ) => true,
            Self::Database(sqlx::Error::Database(database)) => database
                .code()
                .is_some_and(|code| is_unavailable_code(&code)),
            Self::SqliteWriter(rusqlite::Error::SqliteFailure(failure, _)) => {
                u32::try_from(failure.extended_code).is_ok_and(is_unavailable_sqlite_code)
            }
            _ => false,
        }
    }
}

/// [`StoreError::is_unavailable`]'s database codes: a PostgreSQL SQLSTATE
/// has five characters; an SQLite (extended) result code is a number below
/// 65536.
fn is_unavailable_code(code: &str) -> bool {
    if code.len() == 5 {
        return matches!(code, "53100" | "55P03" | "40001" | "40P01");
    }
    code.parse::<u32>().is_ok_and(is_unavailable_sqlite_code)
}

/// An SQLite extended result code whose primary code (its low byte) is 5
/// `SQLITE_BUSY`, 6 `SQLITE_LOCKED` or 13 `SQLITE_FULL`.
fn is_unavailable_sqlite_code(extended: u32) -> bool {
    matches!(extended & 0xff, 5 | 6 | 13)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The busy, locked, full and retry-me answers of both backends, and of
    /// the SQLite writer, are "unavailable" (issue 16 #6); other database
    /// codes are faults.
    #[test]
    fn busy_locked_or_full_stores_are_unavailable_not_faults() {
        for code in [
            "5", "6", "13", "517", "261", "262", "53100", "55P03", "40001", "40P01",
        ] {
            assert!(is_unavailable_code(code), "{code}");
        }
        // SQLITE_CONSTRAINT (19, 2067 unique), SQLITE_CORRUPT (11);
        // PostgreSQL unique_violation, undefined_table.
        for code in ["19", "2067", "11", "23505", "42P01", "", "x"] {
            assert!(!is_unavailable_code(code), "{code}");
        }
        assert!(StoreError::Database(sqlx::Error::PoolTimedOut).is_unavailable());
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        assert!(StoreError::SqliteWriter(busy).is_unavailable());
        let unique = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE),
            None,
        );
        assert!(!StoreError::SqliteWriter(unique).is_unavailable());
        assert!(!StoreError::Corrupt("x".into()).is_unavailable());
    }
}
