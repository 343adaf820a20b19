//! Where the store lives ([`StoreConfig`]): an SQLite file or a PostgreSQL
//! database (and schema), read from a store URL.

use std::path::PathBuf;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;

use crate::error::StoreError;

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

pub(crate) fn check_schema_name(schema: &str) -> Result<(), StoreError> {
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
