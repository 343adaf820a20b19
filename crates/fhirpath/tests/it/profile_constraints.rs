//! Every FHIRPath invariant (`ElementDefinition.constraint.expression`) of
//! every StructureDefinition in `profiles/` (R4 core, IPS, EU and IHE MPD,
//! eHDSI, BE medication) parses, except those listed with a reason in
//! `conformance/fhirpath/unparsed-constraints.txt` (a ratchet: a listed one
//! that parses fails the run until it is removed).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeMap, BTreeSet};

use ehds_fhir::Node;
use ehds_fhirpath::Expression;
use ehds_profiles::Registry;
use ehds_test_support::{conformance_dir, repo_root};

/// `key` → reason; the key is `<constraint key>@<StructureDefinition url>`.
fn listed() -> BTreeMap<String, String> {
    let path = conformance_dir().join("fhirpath/unparsed-constraints.txt");
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (key, reason) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            assert!(!reason.trim().is_empty(), "{key}: needs a reason");
            (key.to_owned(), reason.trim().to_owned())
        })
        .collect()
}

#[test]
fn every_profile_constraint_parses() {
    let registry = Registry::load_root(&repo_root().join("profiles")).unwrap();
    let known = listed();
    let mut total = 0;
    let mut distinct = BTreeSet::new();
    let mut failing = BTreeMap::new();
    for sd in registry.of_type("StructureDefinition") {
        let root = sd.resource.root();
        for part in ["snapshot", "differential"] {
            let elements = root
                .get(part)
                .and_then(|p| p.get("element"))
                .map(Node::items)
                .unwrap_or_default();
            for element in elements {
                for constraint in element
                    .get("constraint")
                    .map(Node::items)
                    .unwrap_or_default()
                {
                    let Some(expression) = constraint.get("expression").and_then(Node::as_str)
                    else {
                        continue;
                    };
                    total += 1;
                    if !distinct.insert(expression.to_owned()) {
                        continue;
                    }
                    if let Err(e) = Expression::parse(expression) {
                        let key = constraint.get("key").and_then(Node::as_str).unwrap_or("?");
                        failing.insert(format!("{key}@{}", sd.url), format!("{expression} => {e}"));
                    }
                }
            }
        }
    }
    println!(
        "profile constraints: {total} expressions ({} distinct), {} distinct do not parse",
        distinct.len(),
        failing.len()
    );
    let unexpected: Vec<_> = failing
        .iter()
        .filter(|(k, _)| !known.contains_key(*k))
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    let now_parsing: Vec<_> = known.keys().filter(|k| !failing.contains_key(*k)).collect();
    assert!(
        unexpected.is_empty(),
        "constraints that do not parse:\n{}",
        unexpected.join("\n")
    );
    assert!(
        now_parsing.is_empty(),
        "these now parse: remove them from conformance/fhirpath/unparsed-constraints.txt: {now_parsing:?}"
    );
}
