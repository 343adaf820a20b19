//! Validates one document many times, for profilers (`perf record`,
//! `valgrind --tool=callgrind`) that need the hot path without criterion's
//! set-up around it:
//!
//! `cargo run --release -p ehds-benches --example validate_loop -- [FILE] [N]`
//!
//! FILE defaults to the ~50 KB IPS of the benches; N to 2000.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use bytes::Bytes;
use ehds_fhir::ReceivedResource;
use ehds_profiles::Registry;
use ehds_validation::Validator;

const IPS_BUNDLE: &str = "http://hl7.org/fhir/uv/ips/StructureDefinition/Bundle-uv-ips";

fn main() {
    let mut args = std::env::args().skip(1);
    let bytes = match args.next() {
        Some(file) => std::fs::read(file).unwrap(),
        None => ehds_benches::conformance_file(ehds_benches::IPS_50KB).unwrap(),
    };
    let rounds: usize = args.next().map_or(2000, |n| n.parse().unwrap());
    let registry = Registry::load_root(&ehds_test_support::repo_root().join("profiles")).unwrap();
    let validator = Validator::new(&registry);
    let resource = ReceivedResource::parse(Bytes::from(bytes)).unwrap();
    let started = std::time::Instant::now();
    let mut issues = 0;
    for _ in 0..rounds {
        let report = validator.validate_pushed_document(&resource, &[IPS_BUNDLE]);
        issues = report.issues.len();
    }
    let each = started.elapsed() / u32::try_from(rounds).unwrap();
    println!("{rounds} validations, {issues} issues each, {each:?} per validation");
}
