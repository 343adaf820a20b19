//! Offline terminology over the shipped packages: building it
//! (`Terminology::new` over `profiles/`, once per start-up) and checking a
//! code against a value set (`Terminology::check_code`, on every coded
//! element validated). Formerly the unit test `build_time_over_profiles` of
//! `ehds-validation`, which printed these figures and asserted nothing.
//!
//! No peer in this run: the other validators build their terminology
//! differently (FHIR.js none, medplum on demand), see BENCHMARKS.md.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ehds_profiles::Registry;
use ehds_validation::terminology::Terminology;

const GENDER_VS: &str = "http://hl7.org/fhir/ValueSet/administrative-gender";
const GENDER_CS: &str = "http://hl7.org/fhir/administrative-gender";

/// A value set of each kind the packages hold, with a code in it or not:
/// a small core one, a large v3 one, eHDSI substances (outside our packages'
/// expansions) and an IPS SNOMED CT one.
const CHECKS: [(&str, &str, &str); 4] = [
    (GENDER_VS, GENDER_CS, "female"),
    (
        "http://terminology.hl7.org/ValueSet/v3-ActEncounterCode",
        "http://terminology.hl7.org/CodeSystem/v3-ActCode",
        "ACUTE",
    ),
    (
        "http://terminology.ehdsi.eu/ValueSet/eHDSISubstance",
        "https://spor.ema.europa.eu/v2/SubstanceDefinition",
        "not-a-substance",
    ),
    (
        "http://hl7.org/fhir/uv/ips/ValueSet/allergy-intolerance-uv-ips",
        "http://snomed.info/sct",
        "762952008",
    ),
];

fn terminology(c: &mut Criterion) {
    let registry = Registry::load_root(&ehds_test_support::repo_root().join("profiles")).unwrap();
    let mut group = c.benchmark_group("terminology");
    group.sample_size(10);
    group.bench_function("build over profiles/", |b| {
        b.iter(|| Terminology::new(black_box(&registry)));
    });
    let terminology = Terminology::new(&registry);
    for (value_set, system, code) in CHECKS {
        let name = value_set.rsplit('/').next().unwrap_or(value_set);
        group.bench_function(format!("check_code {name} {code}"), |b| {
            b.iter(|| terminology.check_code(black_box(value_set), Some(system), black_box(code)));
        });
    }
    group.finish();
}

criterion_group!(benches, terminology);
criterion_main!(benches);
