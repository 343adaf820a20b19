//! Dispense throughput: `Store::apply_dispense` (the prescription's row
//! locked, the checks, the dispense stored byte-exact, the quantity
//! updated, one durable commit) on SQLite and PostgreSQL, beside the peer:
//! the bare durable transaction it cannot do without (lock the row,
//! insert one row, update one counter, commit) written directly in SQL on
//! the same backend, same run. PostgreSQL runs when
//! `EHDS_TEST_POSTGRES_URL` names a server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use ehds_store::{
    DispenseKind, DispenseLine, DispenseOutcome, DocumentIdentifier, NewDispense, NewPrescription,
    PutPrescriptionOutcome, Store, StoreConfig,
};
use time::OffsetDateTime;

const PRESCRIPTION: &[u8] = br#"{"resourceType":"MedicationRequest","status":"active"}"#;
const DISPENSE: &[u8] = br#"{"resourceType":"MedicationDispense","status":"completed"}"#;

fn prepare(runtime: &tokio::runtime::Runtime, store: &Store) -> String {
    let id = match runtime
        .block_on(store.put_prescription(NewPrescription {
            identifier: DocumentIdentifier {
                system: "urn:bench".into(),
                value: uuid_like(),
            },
            patient_identifier: "urn:oid:1.3.182.4.4|1998041799999",
            prescriber: None,
            sender: "bench",
            quantity_prescribed_milli: 1_000_000_000_000,
            unit: "1",
            unit_system: Some("http://unitsofmeasure.org"),
            substitution_allowed: false,
            atc_code: None,
            dose_form: None,
            not_available_abroad: None,
            content: PRESCRIPTION,
            received_at: OffsetDateTime::now_utc(),
        }))
        .unwrap()
    {
        PutPrescriptionOutcome::Created(p) => p.id,
        other => panic!("{other:?}"),
    };
    runtime
        .block_on(store.record_retrieval(&id, "BE/pharmacy", OffsetDateTime::now_utc()))
        .unwrap();
    id
}

fn uuid_like() -> String {
    ehds_test_support::unique_schema("rx")
}

fn bench_store(c: &mut Criterion, name: &str, config: StoreConfig, peer_url: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = runtime.block_on(Store::open(&config)).unwrap();
    let prescription = prepare(&runtime, &store);
    let counter = AtomicU64::new(0);
    let mut group = c.benchmark_group(format!("dispense_{name}"));
    group.sample_size(30);
    group.bench_function("apply_dispense", |b| {
        b.iter(|| {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            let outcome = runtime
                .block_on(store.apply_dispense(NewDispense {
                    identifier: DocumentIdentifier {
                        system: "urn:bench:dispense".into(),
                        value: format!("{prescription}-{n}"),
                    },
                    lines: vec![DispenseLine {
                        prescription_id: &prescription,
                        quantity_milli: 1_000,
                    }],
                    pharmacy: "BE/pharmacy",
                    kind: DispenseKind::Completed,
                    content: DISPENSE,
                    received_at: OffsetDateTime::now_utc(),
                }))
                .unwrap();
            assert!(matches!(outcome, DispenseOutcome::Applied { .. }));
        });
    });
    runtime.block_on(store.close());

    // The peer: the minimal durable transaction of the same shape.
    let is_sqlite = peer_url.starts_with("sqlite:");
    group.bench_function("peer_bare_transaction", |b| {
        if is_sqlite {
            let pool = runtime
                .block_on(
                    sqlx::sqlite::SqlitePoolOptions::new()
                        .max_connections(1)
                        .connect_with(
                            peer_url
                                .parse::<sqlx::sqlite::SqliteConnectOptions>()
                                .unwrap()
                                .create_if_missing(true)
                                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                                .synchronous(sqlx::sqlite::SqliteSynchronous::Full),
                        ),
                )
                .unwrap();
            runtime.block_on(async {
                sqlx::query(
                    "CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY, n INTEGER)",
                )
                .execute(&pool)
                .await
                .unwrap();
                sqlx::query("INSERT OR IGNORE INTO counter VALUES (1, 1000000000)")
                    .execute(&pool)
                    .await
                    .unwrap();
                sqlx::query("CREATE TABLE IF NOT EXISTS log (id TEXT PRIMARY KEY, content BLOB)")
                    .execute(&pool)
                    .await
                    .unwrap();
            });
            b.iter(|| {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                runtime.block_on(async {
                    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
                    sqlx::query("SELECT n FROM counter WHERE id = 1")
                        .fetch_one(&mut *tx)
                        .await
                        .unwrap();
                    sqlx::query("INSERT INTO log VALUES ($1, $2)")
                        .bind(format!("peer-{n}"))
                        .bind(DISPENSE)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    sqlx::query("UPDATE counter SET n = n - 1 WHERE id = 1")
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                });
            });
        } else {
            let pool = runtime
                .block_on(
                    sqlx::postgres::PgPoolOptions::new()
                        .max_connections(1)
                        .connect(peer_url),
                )
                .unwrap();
            let schema = ehds_test_support::unique_schema("peer");
            runtime.block_on(async {
                for sql in [
                    format!("CREATE SCHEMA \"{schema}\""),
                    format!("CREATE TABLE \"{schema}\".counter (id INTEGER PRIMARY KEY, n BIGINT)"),
                    format!("INSERT INTO \"{schema}\".counter VALUES (1, 1000000000)"),
                    format!("CREATE TABLE \"{schema}\".log (id TEXT PRIMARY KEY, content BYTEA)"),
                ] {
                    sqlx::query(&sql).execute(&pool).await.unwrap();
                }
            });
            b.iter(|| {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                runtime.block_on(async {
                    let mut tx = pool.begin().await.unwrap();
                    sqlx::query(&format!(
                        "SELECT n FROM \"{schema}\".counter WHERE id = 1 FOR UPDATE"
                    ))
                    .fetch_one(&mut *tx)
                    .await
                    .unwrap();
                    sqlx::query(&format!("INSERT INTO \"{schema}\".log VALUES ($1, $2)"))
                        .bind(format!("peer-{n}"))
                        .bind(DISPENSE)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    sqlx::query(&format!(
                        "UPDATE \"{schema}\".counter SET n = n - 1 WHERE id = 1"
                    ))
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                    tx.commit().await.unwrap();
                });
            });
            runtime.block_on(async {
                sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
                    .execute(&pool)
                    .await
                    .unwrap();
            });
        }
    });
    group.finish();
}

fn dispense(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(ehds_test_support::unique_schema("dispense-bench"));
    std::fs::create_dir_all(&dir).unwrap();
    bench_store(
        c,
        "sqlite",
        StoreConfig::Sqlite {
            path: dir.join("store.db"),
        },
        &format!("sqlite://{}", dir.join("peer.db").display()),
    );
    if let Ok(url) = std::env::var("EHDS_TEST_POSTGRES_URL") {
        let schema = ehds_test_support::unique_schema("dispense");
        let config = StoreConfig::from_url(&url, Some(schema.clone())).unwrap();
        bench_store(c, "postgres", config, &url);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .connect(&url)
                .await
                .unwrap();
            sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .execute(&pool)
                .await
                .unwrap();
        });
    }
    let _ = std::fs::remove_dir_all(dir);
}

criterion_group!(benches, dispense);
criterion_main!(benches);
