//! Conformance suite: every example document must validate with 0 errors
//! against R4 core and the profiles it claims, except the cases listed in
//! `conformance/known-failures.txt`, each with its reason. The list is a
//! ratchet: a listed case that starts passing fails the run until it is
//! removed, so the list only shrinks.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use ehds_fhir::ReceivedResource;
use ehds_profiles::Registry;
use ehds_test_support::{conformance_dir, files_with_extension, repo_root};
use ehds_validation::Validator;

fn validator() -> &'static Validator {
    static VALIDATOR: OnceLock<Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let registry = Registry::load_root(&repo_root().join("profiles")).unwrap();
        let validator = Validator::new(&registry);
        // The core package ships two example StructureDefinitions without
        // snapshots (example-composition, example-section-library); nothing
        // else may fail to compile.
        let unusable: Vec<_> = validator
            .load_problems()
            .iter()
            .filter(|p| !p.problem.contains("has no snapshot"))
            .collect();
        assert!(unusable.is_empty(), "{unusable:#?}");
        validator
    })
}

/// An example folder validated in its package's context
/// (`conformance/example-packages.json`).
struct PackageFolder {
    package: ehds_profiles::PackageId,
    /// File name → the profile its ImplementationGuide names for it.
    profiles: BTreeMap<String, String>,
}

/// `examples/<folder>` → its package and the profile of each example.
fn package_folders() -> BTreeMap<String, PackageFolder> {
    let path = conformance_dir().join("example-packages.json");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    manifest["folders"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(folder, entry)| {
            let (name, version) = entry["package"].as_str().unwrap().split_once('#').unwrap();
            let profiles = entry["profiles"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(file, profile)| (file.clone(), profile.as_str().unwrap().to_owned()))
                .collect();
            let package = ehds_profiles::PackageId {
                name: name.into(),
                version: version.into(),
            };
            (folder.clone(), PackageFolder { package, profiles })
        })
        .collect()
}

/// `suite/file` → reason.
fn known_failures() -> BTreeMap<String, String> {
    let path = conformance_dir().join("known-failures.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (case, reason) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            assert!(
                !reason.trim().is_empty(),
                "{case}: a known failure needs a reason"
            );
            (case.to_owned(), reason.trim().to_owned())
        })
        .collect()
}

#[test]
fn examples_validate_with_no_errors_except_known_failures() {
    let validator = validator();
    let known = known_failures();
    let examples = conformance_dir().join("examples");
    let folders = package_folders();
    let mut accepted = 0;
    let mut unexpected = Vec::new();
    let mut now_passing = Vec::new();
    let mut total = 0;
    for path in files_with_extension(&examples, "json") {
        total += 1;
        let case = path
            .strip_prefix(conformance_dir())
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let resource = ReceivedResource::parse(std::fs::read(&path).unwrap().into()).unwrap();
        // A package's own examples: against the profile its guide names,
        // in the package's dependency scope (as its publisher validated
        // them); every other example against what it claims.
        let (folder, file) = case.rsplit_once('/').unwrap();
        let report = match folders.get(folder) {
            Some(packaged) => {
                let profiles: Vec<&str> = packaged
                    .profiles
                    .get(file)
                    .map(String::as_str)
                    .into_iter()
                    .collect();
                validator.validate_in_package(&resource, &profiles, &packaged.package)
            }
            None => validator.validate(&resource, &[]),
        };
        let errors: Vec<String> = report
            .issues
            .iter()
            .filter(|i| i.severity.is_error())
            .map(|i| {
                format!(
                    "{}: {}",
                    i.expression.as_deref().unwrap_or("?"),
                    i.diagnostics
                )
            })
            .collect();
        match (errors.is_empty(), known.contains_key(&case)) {
            (true, false) => accepted += 1,
            (true, true) => now_passing.push(case),
            (false, true) => {}
            (false, false) => unexpected.push(format!("{case}:\n    {}", errors.join("\n    "))),
        }
    }
    println!(
        "conformance examples: {accepted} accepted with 0 errors / {total}; {} known failures",
        known.len()
    );
    assert!(
        now_passing.is_empty(),
        "these known failures now pass: remove them from conformance/known-failures.txt: {now_passing:?}"
    );
    assert!(
        unexpected.is_empty(),
        "{} examples have errors:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
    for case in known.keys() {
        assert!(
            conformance_dir().join(case).exists(),
            "known failure {case} names no case"
        );
    }
    for (folder, packaged) in &folders {
        assert!(
            validator.knows_package(&packaged.package),
            "{folder}: {} is not loaded",
            packaged.package
        );
        for (file, profile) in &packaged.profiles {
            assert!(
                conformance_dir().join(folder).join(file).is_file(),
                "{folder}/{file} is not there"
            );
            assert!(validator.knows_profile(profile), "{profile}");
        }
    }
}

/// The hand-made negative cases in `conformance/negative/manifest.json`:
/// each expected issue must be found (matched by severity and expression),
/// unless the case is a known failure.
#[test]
fn negative_cases_find_the_broken_rule() {
    const IPS_BUNDLE: &str = "http://hl7.org/fhir/uv/ips/StructureDefinition/Bundle-uv-ips";
    let validator = validator();
    let known = known_failures();
    let dir = conformance_dir().join("negative");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let mut found = 0;
    let mut missed = Vec::new();
    let mut now_passing = Vec::new();
    let cases = manifest["cases"].as_array().unwrap();
    for case in cases {
        let file = case["file"].as_str().unwrap();
        assert!(
            case["source"].as_str().is_some_and(|s| !s.is_empty()),
            "{file}: no source"
        );
        let resource =
            ReceivedResource::parse(std::fs::read(dir.join(file)).unwrap().into()).unwrap();
        // Documents go through the push path (IPS Bundle required); other
        // resources through $validate.
        let report = if resource.resource_type() == "Bundle" {
            validator.validate_pushed_document(&resource, &[IPS_BUNDLE])
        } else {
            validator.validate(&resource, &[])
        };
        let all_found = case["expect"].as_array().unwrap().iter().all(|expected| {
            report.issues.iter().any(|issue| {
                issue.severity.code() == expected["severity"].as_str().unwrap()
                    && issue.expression.as_deref() == expected["expression"].as_str()
            })
        });
        let name = format!("negative/{file}");
        match (all_found, known.contains_key(&name)) {
            (true, false) => found += 1,
            (true, true) => now_passing.push(name),
            (false, true) => {}
            (false, false) => missed.push(format!("{name}: got {:#?}", report.issues)),
        }
    }
    println!("negative cases: {found} found / {}", cases.len());
    assert!(
        now_passing.is_empty(),
        "known failures now pass, remove them: {now_passing:?}"
    );
    assert!(missed.is_empty(), "{}", missed.join("\n"));
}

/// The hand-made positive cases in `conformance/positive/manifest.json`:
/// documents Java accepts must pass the push path with 0 errors; the
/// information each expects (the reason a rule did not apply) is found.
#[test]
fn positive_cases_are_accepted_on_the_push_path() {
    const IPS_BUNDLE: &str = "http://hl7.org/fhir/uv/ips/StructureDefinition/Bundle-uv-ips";
    let validator = validator();
    let dir = conformance_dir().join("positive");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let cases = manifest["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let file = case["file"].as_str().unwrap();
        assert!(
            case["source"].as_str().is_some_and(|s| !s.is_empty()),
            "{file}: no source"
        );
        let resource =
            ReceivedResource::parse(std::fs::read(dir.join(file)).unwrap().into()).unwrap();
        let report = validator.validate_pushed_document(&resource, &[IPS_BUNDLE]);
        let errors: Vec<_> = report
            .issues
            .iter()
            .filter(|i| i.severity.is_error())
            .collect();
        assert!(errors.is_empty(), "positive/{file}: {errors:#?}");
        for expected in case["expect_information"].as_array().into_iter().flatten() {
            assert!(
                report.issues.iter().any(|i| {
                    i.severity.code() == "information"
                        && i.expression.as_deref() == expected["expression"].as_str()
                }),
                "positive/{file}: no information at {expected}: {:#?}",
                report.issues
            );
        }
    }
}
