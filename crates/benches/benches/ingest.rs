//! Ingest of a ~50 KB IPS document: parse + document checks + store on
//! SQLite, beside `serde_json::from_slice::<Value>` on the same bytes; and
//! the push of a ~48 KB laboratory report (validated against Bundle-eu-lab
//! 0.1.0, as the laboratory-report service of `deploy/config/services.toml`
//! asks) beside the patient summary's push, in the same run.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ehds_benches::{IPS_50KB, LAB_48KB, conformance_file};
use ehds_fhir::ReceivedResource;
use ehds_profiles::Registry;
use ehds_store::{DocumentIdentifier, NewDocument, Store, StoreConfig};
use ehds_validation::Validator;
use ehds_validation::document::document_header;

const IPS_BUNDLE: &str = "http://hl7.org/fhir/uv/ips/StructureDefinition/Bundle-uv-ips";
/// The laboratory-report service's document profile (services.toml).
const LAB_BUNDLE: &str = "http://hl7.eu/fhir/laboratory/StructureDefinition/Bundle-eu-lab|0.1.0";

/// Parse, validate against `profile` as on push, and store on SQLite with a
/// fresh identifier (every push a real insert), as `POST /fhir/Bundle` does.
fn push(
    runtime: &tokio::runtime::Runtime,
    store: &Store,
    validator: &Validator,
    bytes: &Bytes,
    profile: &str,
    counter: &AtomicU64,
) {
    let resource = ReceivedResource::parse(black_box(bytes.clone())).unwrap();
    assert!(
        validator
            .validate_pushed_document(&resource, &[profile])
            .is_acceptable()
    );
    let header = document_header(&resource).unwrap();
    let value = format!(
        "{}-{}",
        header.identifier_value,
        counter.fetch_add(1, Ordering::Relaxed)
    );
    runtime
        .block_on(store.put_document(NewDocument {
            identifier: DocumentIdentifier {
                system: header.identifier_system.to_owned(),
                value,
            },
            bundle_type: header.bundle_type,
            patient_identifier: header.patient_identifier.as_deref(),
            sender: "bench",
            document_type: None,
            content_type: ehds_store::FHIR_JSON,
            content: resource.bytes(),
        }))
        .unwrap();
}

/// A laboratory report's push beside the patient summary's (the peer), on
/// one store, in one run: validation alone, then validation and store.
fn lab_report_push(c: &mut Criterion) {
    let summary = Bytes::from(conformance_file(IPS_50KB).unwrap());
    let lab = Bytes::from(conformance_file(LAB_48KB).unwrap());
    let registry = Registry::load_root(&ehds_test_support::repo_root().join("profiles")).unwrap();
    let validator = Validator::new(&registry);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(ehds_test_support::unique_schema("bench-lab"));
    let store = runtime
        .block_on(Store::open(&StoreConfig::Sqlite {
            path: dir.join("bench.db"),
        }))
        .unwrap();
    let counter = AtomicU64::new(0);
    let mut group = c.benchmark_group("push_lab_report_beside_summary");
    for (name, bytes, profile) in [
        ("peer_summary_ips_51kb", &summary, IPS_BUNDLE),
        ("lab_report_eu_lab_48kb", &lab, LAB_BUNDLE),
    ] {
        group.bench_function(format!("{name}/parse_and_validate"), |b| {
            b.iter(|| {
                let resource = ReceivedResource::parse(black_box(bytes.clone())).unwrap();
                let report = validator.validate_pushed_document(&resource, &[profile]);
                assert!(report.is_acceptable(), "{name}: {:?}", report.issues);
            })
        });
        group.bench_function(format!("{name}/parse_validate_store_sqlite"), |b| {
            b.iter(|| push(&runtime, &store, &validator, bytes, profile, &counter))
        });
    }
    group.finish();
    runtime.block_on(store.close());
    let _ = std::fs::remove_dir_all(dir);
}

fn ingest(c: &mut Criterion) {
    let bytes = Bytes::from(conformance_file(IPS_50KB).unwrap());
    let registry = Registry::load_root(&ehds_test_support::repo_root().join("profiles")).unwrap();
    let validator = Validator::new(&registry);
    let mut group = c.benchmark_group("ingest_ips_50kb");
    group.throughput(Throughput::Bytes(bytes.len() as u64));

    group.bench_function("peer_serde_json_value", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&bytes)).unwrap())
    });
    group.bench_function("parse_lossless", |b| {
        b.iter(|| ReceivedResource::parse(black_box(bytes.clone())).unwrap())
    });
    group.bench_function("parse_and_validate", |b| {
        b.iter(|| {
            let resource = ReceivedResource::parse(black_box(bytes.clone())).unwrap();
            let report = validator.validate_pushed_document(&resource, &[IPS_BUNDLE]);
            assert!(report.is_acceptable());
            document_header(&resource).map(|h| h.patient_identifier)
        })
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(ehds_test_support::unique_schema("bench"));
    let store = runtime
        .block_on(Store::open(&StoreConfig::Sqlite {
            path: dir.join("bench.db"),
        }))
        .unwrap();
    let counter = AtomicU64::new(0);
    group.bench_function("parse_validate_store_sqlite", |b| {
        b.iter(|| {
            let resource = ReceivedResource::parse(black_box(bytes.clone())).unwrap();
            assert!(
                validator
                    .validate_pushed_document(&resource, &[IPS_BUNDLE])
                    .is_acceptable()
            );
            let header = document_header(&resource).unwrap();
            // A fresh identifier per iteration, so every push is a real insert.
            let value = format!(
                "{}-{}",
                header.identifier_value,
                counter.fetch_add(1, Ordering::Relaxed)
            );
            runtime
                .block_on(store.put_document(NewDocument {
                    identifier: DocumentIdentifier {
                        system: header.identifier_system.to_owned(),
                        value,
                    },
                    bundle_type: header.bundle_type,
                    patient_identifier: header.patient_identifier.as_deref(),
                    sender: "bench",
                    document_type: None,
                    content_type: ehds_store::FHIR_JSON,
                    content: resource.bytes(),
                }))
                .unwrap()
        })
    });
    group.finish();
    runtime.block_on(store.close());
    let _ = std::fs::remove_dir_all(dir);
}

/// Start-up: loading every package under `profiles/` and compiling every
/// StructureDefinition, beside reading the same files with serde_json.
fn startup(c: &mut Criterion) {
    let root = ehds_test_support::repo_root().join("profiles");
    let mut group = c.benchmark_group("startup_profiles");
    group.sample_size(10);
    group.bench_function("peer_serde_json_read_all", |b| {
        b.iter(|| {
            let mut count = 0usize;
            for package in std::fs::read_dir(&root).unwrap().flatten() {
                for file in std::fs::read_dir(package.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    let path = file.path();
                    if path.extension().is_some_and(|e| e == "json") {
                        let bytes = std::fs::read(&path).unwrap();
                        let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
                        if serde_json::from_slice::<serde_json::Value>(body).is_ok() {
                            count += 1;
                        }
                    }
                }
            }
            count
        })
    });
    group.bench_function("load_registry_and_compile", |b| {
        b.iter(|| {
            let registry = Registry::load_root(&root).unwrap();
            Validator::new(&registry).load_problems().len()
        })
    });
    // The packages compiled at build time and embedded (what `serve` loads).
    group.bench_function("shipped_registry", |b| {
        b.iter(|| Registry::shipped().unwrap().len())
    });
    group.bench_function("shipped_registry_and_compile", |b| {
        b.iter(|| {
            let registry = Registry::shipped().unwrap();
            Validator::new(&registry).load_problems().len()
        })
    });
    // The validator of the shipped packages compiled at build time and
    // embedded (`ehds-shipped-validator`: what `serve` loads without
    // operator-added packages), beside the two rows above.
    group.bench_function("shipped_validator_embedded", |b| {
        b.iter(|| {
            ehds_shipped_validator::validator(ehds_validation::ValidationOptions::default())
                .unwrap()
                .load_problems()
                .len()
        })
    });
    group.finish();
}

criterion_group!(benches, ingest, lab_report_push, startup);
criterion_main!(benches);
