//! Every error our validator reports over every example in the repository,
//! each with its rule, against the reviewed listing
//! `conformance/example-errors.txt`.
//!
//! The HL7 Java validator accepts the published examples (their IG builds
//! validate them), so every error listed there is either an example that is
//! invalid as published (the reason is in `conformance/known-failures.txt`)
//! or a disagreement with Java to fix. Documents of the IPS and connectathon
//! folders, and the hand-made positive cases, go through the push path (IPS
//! Bundle profile required), as the gateway validates them; everything else
//! through `$validate` (R4 core and claimed profiles). Example folders
//! inside `profiles/` packages (`example/`, `examples/`), when a package
//! ships them, are included.
//!
//! A listing line is `<file> | <severity> | <rule> | <expression>`, where
//! the rule is the key before `": "` in the finding (`txt-2`, `ips-pat-1`),
//! or `structure` for the structural checks, which name no key.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};

use ehds_fhir::ReceivedResource;
use ehds_fhir::outcome::Issue;
use ehds_profiles::Registry;
use ehds_test_support::{conformance_dir, files_with_extension, repo_root};
use ehds_validation::Validator;

const IPS_BUNDLE: &str = "http://hl7.org/fhir/uv/ips/StructureDefinition/Bundle-uv-ips";

/// The rule of a finding: the key before `": "` when it looks like one
/// (`bdl-7`, `txt-1`, `ips-pat-1`, `xhtml`), else `structure`.
fn rule(issue: &Issue) -> &str {
    match issue.diagnostics.split_once(": ") {
        Some((key, _))
            if !key.is_empty()
                && key.len() <= 24
                && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && key.bytes().any(|b| b == b'-' || b.is_ascii_lowercase())
                && !key.starts_with(|c: char| c.is_ascii_uppercase()) =>
        {
            key
        }
        _ => "structure",
    }
}

fn example_files() -> Vec<(PathBuf, bool)> {
    let mut files = Vec::new();
    let conformance = conformance_dir();
    for path in files_with_extension(&conformance.join("examples"), "json") {
        let push = path.starts_with(conformance.join("examples/ips"))
            || path.starts_with(conformance.join("examples/ihe-connectathon"));
        files.push((path, push));
    }
    for path in files_with_extension(&conformance.join("positive"), "json") {
        if path.file_name().is_some_and(|n| n != "manifest.json") {
            files.push((path, true));
        }
    }
    let profiles = repo_root().join("profiles");
    for package in std::fs::read_dir(&profiles).unwrap() {
        let package = package.unwrap().path();
        for folder in ["example", "examples", "package/example", "package/examples"] {
            let dir = package.join(folder);
            if dir.is_dir() {
                for path in files_with_extension(&dir, "json") {
                    files.push((path, false));
                }
            }
        }
    }
    files.sort();
    files
}

fn is_document(resource: &ReceivedResource) -> bool {
    resource.resource_type() == "Bundle"
        && resource
            .root()
            .get("type")
            .and_then(ehds_fhir::Node::as_str)
            == Some("document")
}

fn listing(validator: &Validator) -> (Vec<String>, usize, usize) {
    let root = repo_root();
    let mut lines = Vec::new();
    let mut files = 0;
    let mut clean = 0;
    for (path, push) in example_files() {
        let Ok(resource) = ReceivedResource::parse(std::fs::read(&path).unwrap().into()) else {
            continue; // not a resource (a package's index, …)
        };
        files += 1;
        let report = if push && is_document(&resource) {
            validator.validate_pushed_document(&resource, &[IPS_BUNDLE])
        } else {
            validator.validate(&resource, &[])
        };
        let name = relative(&path, &root);
        let before = lines.len();
        for issue in report.issues.iter().filter(|i| i.severity.is_error()) {
            lines.push(format!(
                "{name} | {} | {} | {}",
                issue.severity.code(),
                rule(issue),
                issue.expression.as_deref().unwrap_or("?")
            ));
        }
        if lines.len() == before {
            clean += 1;
        }
    }
    (lines, files, clean)
}

fn relative(path: &Path, root: &Path) -> String {
    path.strip_prefix(root)
        .unwrap()
        .to_string_lossy()
        .replace('\\', "/")
}

#[test]
fn every_error_over_the_examples_is_listed_with_its_rule() {
    let registry = Registry::load_root(&repo_root().join("profiles")).unwrap();
    let validator = Validator::new(&registry);
    let (found, files, clean) = listing(&validator);
    println!("example documents: {clean} with 0 errors / {files}");
    for line in &found {
        println!("  {line}");
    }
    let path = conformance_dir().join("example-errors.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let expected: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let missing: Vec<&&str> = expected
        .iter()
        .filter(|l| !found.iter().any(|f| f == *l))
        .collect();
    let new: Vec<&String> = found
        .iter()
        .filter(|f| !expected.contains(&f.as_str()))
        .collect();
    assert!(
        missing.is_empty() && new.is_empty(),
        "the errors over the examples changed: review them against the Java validator and update {}\n  no longer reported: {missing:#?}\n  newly reported: {new:#?}",
        path.display()
    );
}
