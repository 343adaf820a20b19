//! Migration 0012 (a dispense covers one or more prescriptions) moves the
//! prescription-specific columns of `dispenses` to `dispense_lines`: a
//! database holding dispenses from before it is migrated with each of them
//! as line 0 of itself, unchanged, on SQLite and on PostgreSQL (a fresh
//! schema on the server named by `EHDS_TEST_POSTGRES_URL`, required under
//! CI).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::borrow::Cow;
use std::str::FromStr;

use ehds_store::{Identifier, PrescriptionStatus, Store, StoreConfig};
use ehds_test_support::{ScratchDir, postgres_url, unique_schema};
use sqlx::ConnectOptions;
use sqlx::migrate::Migrator;

/// A prescription of 10 units with 3 remaining after a 7-unit dispense,
/// written as the schema before 0012 held them.
const PRESCRIPTION: &str = "INSERT INTO prescriptions (id, identifier_system, identifier_value, \
     patient_identifier, prescriber, sender, status, status_reason, quantity_prescribed_milli, \
     quantity_remaining_milli, unit, substitution_allowed, atc_code, dose_form, received_at_us, \
     sha256, content) VALUES ('rx-1', 'urn:rx', 'RX-1', 'urn:p|1', NULL, 'LU|prescriber', \
     'partially-dispensed', NULL, 10000, 3000, 'package', TRUE, NULL, NULL, 1, $1, $2)";
const DISPENSE: &str = "INSERT INTO dispenses (id, identifier_system, identifier_value, \
     prescription_id, pharmacy, kind, quantity_milli, remaining_after_milli, status_after, \
     received_at_us, cancelled_at_us, sha256, content) VALUES ('md-1', 'urn:md', 'MD-1', \
     'rx-1', 'BE|pharmacy', 'completed', 7000, 3000, 'partially-dispensed', 2, NULL, $1, $2)";

fn before_0012(migrator: Migrator) -> Migrator {
    let mut migrator = migrator;
    migrator.migrations = Cow::Owned(
        migrator
            .migrations
            .iter()
            .filter(|m| m.version < 12)
            .cloned()
            .collect(),
    );
    migrator
}

async fn check(store: &Store) {
    let dispense = store
        .dispense_by_identifier(&Identifier {
            system: "urn:md".into(),
            value: "MD-1".into(),
        })
        .await
        .unwrap()
        .expect("the dispense survives the migration");
    assert_eq!(dispense.lines.len(), 1);
    let line = &dispense.lines[0];
    assert_eq!(line.prescription_id, "rx-1");
    assert_eq!(line.quantity_milli, 7_000);
    assert_eq!(line.remaining_after_milli, 3_000);
    assert_eq!(line.status_after, PrescriptionStatus::PartiallyDispensed);
    assert_eq!(dispense.content, b"{\"d\":1}");
    assert_eq!(
        store.dispenses_for_prescription("rx-1").await.unwrap(),
        [dispense]
    );
    let prescription = store.prescription("rx-1").await.unwrap().unwrap();
    assert_eq!(prescription.unit_system, None);
    assert_eq!(prescription.quantity_remaining_milli, 3_000);
}

#[tokio::test]
async fn dispenses_before_0012_become_line_0_on_sqlite() {
    let dir = ScratchDir::new("migration-0012");
    let path = dir.path().join("gateway.db");
    let mut connection = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .foreign_keys(true)
        .connect()
        .await
        .unwrap();
    before_0012(sqlx::migrate!("./migrations/sqlite"))
        .run(&mut connection)
        .await
        .unwrap();
    for (sql, content) in [(PRESCRIPTION, &b"{\"p\":1}"[..]), (DISPENSE, b"{\"d\":1}")] {
        sqlx::query(sql)
            .bind(&[0_u8; 32][..])
            .bind(content)
            .execute(&mut connection)
            .await
            .unwrap();
    }
    drop(connection);
    let store = Store::open(&StoreConfig::Sqlite { path }).await.unwrap();
    check(&store).await;
    store.close().await;
}

#[tokio::test]
async fn dispenses_before_0012_become_line_0_on_postgresql() {
    let Some(url) = postgres_url() else {
        return;
    };
    let schema = unique_schema("m0012");
    let mut admin = sqlx::postgres::PgConnectOptions::from_str(&url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
        .execute(&mut admin)
        .await
        .unwrap();
    let mut connection = sqlx::postgres::PgConnectOptions::from_str(&url)
        .unwrap()
        .options([("search_path", schema.as_str())])
        .connect()
        .await
        .unwrap();
    before_0012(sqlx::migrate!("./migrations/postgres"))
        .run(&mut connection)
        .await
        .unwrap();
    for (sql, content) in [(PRESCRIPTION, &b"{\"p\":1}"[..]), (DISPENSE, b"{\"d\":1}")] {
        sqlx::query(sql)
            .bind(&[0_u8; 32][..])
            .bind(content)
            .execute(&mut connection)
            .await
            .unwrap();
    }
    drop(connection);
    let store = Store::open(&StoreConfig::Postgres {
        url: url.clone(),
        schema: Some(schema.clone()),
        max_connections: 2,
    })
    .await
    .unwrap();
    check(&store).await;
    store.close().await;
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&mut admin)
        .await
        .unwrap();
}
