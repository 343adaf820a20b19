//! Validates one document many times, for profilers (`perf record`,
//! `valgrind --tool=callgrind`) that need the hot path without criterion's
//! set-up around it:
//!
//! `cargo run --release -p ehds-benches --example validate_loop -- [FILE] [N] [--parse]`
//!
//! FILE defaults to the ~50 KB IPS of the benches; N to 2000. With
//! `--parse` every round also parses the bytes (as the push path does), so
//! `valgrind --tool=callgrind --toggle-collect='*validate_loop::round*'`
//! counts parse + validation, and `--toggle-collect='*validate_pushed_document*'`
//! validation alone. It runs with the gateway binary's allocator
//! (jemalloc), as the `validate` bench does.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use bytes::Bytes;
use ehds_fhir::ReceivedResource;
use ehds_profiles::Registry;
use ehds_validation::Validator;

/// The gateway binary's allocator (`ehds-gateway-bin`), so that the
/// profile is the shipped gateway's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const IPS_BUNDLE: &str = "http://hl7.org/fhir/uv/ips/StructureDefinition/Bundle-uv-ips";

/// One round: parse (when asked) and validate; the issue count.
#[inline(never)]
fn round(validator: &Validator, bytes: &Bytes, parsed: Option<&ReceivedResource>) -> usize {
    match parsed {
        Some(resource) => validator
            .validate_pushed_document(resource, &[IPS_BUNDLE])
            .issues
            .len(),
        None => {
            let resource = ReceivedResource::parse(bytes.clone()).unwrap();
            validator
                .validate_pushed_document(&resource, &[IPS_BUNDLE])
                .issues
                .len()
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parse = args.iter().any(|a| a == "--parse");
    let mut args = args.into_iter().filter(|a| a != "--parse");
    let bytes = match args.next() {
        Some(file) => std::fs::read(file).unwrap(),
        None => ehds_benches::conformance_file(ehds_benches::IPS_50KB).unwrap(),
    };
    let rounds: usize = args.next().map_or(2000, |n| n.parse().unwrap());
    let registry = Registry::load_root(&ehds_test_support::repo_root().join("profiles")).unwrap();
    let validator = Validator::new(&registry);
    let bytes = Bytes::from(bytes);
    let resource = ReceivedResource::parse(bytes.clone()).unwrap();
    let parsed = (!parse).then_some(&resource);
    let started = std::time::Instant::now();
    let mut issues = 0;
    for _ in 0..rounds {
        issues = round(&validator, &bytes, parsed);
    }
    let each = started.elapsed() / u32::try_from(rounds).unwrap();
    let what = if parse {
        "parses + validations"
    } else {
        "validations"
    };
    println!("{rounds} {what}, {issues} issues each, {each:?} per round");
}
