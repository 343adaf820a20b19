//! The embedded validator is the validator compiled now from the shipped
//! packages: the same compiled form byte for byte, and the same reports on
//! every example, positive and negative conformance document.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::OnceLock;

use ehds_fhir::ReceivedResource;
use ehds_profiles::Registry;
use ehds_test_support::{conformance_dir, files_with_extension};
use ehds_validation::{ValidationOptions, Validator};

/// The validator compiled now, as a gateway with operator-added packages
/// compiles it at start.
fn compiled_now() -> &'static Validator {
    static VALIDATOR: OnceLock<Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| Validator::new(&Registry::shipped().unwrap()))
}

/// The embedded validator.
fn embedded() -> &'static Validator {
    static VALIDATOR: OnceLock<Validator> = OnceLock::new();
    VALIDATOR
        .get_or_init(|| ehds_shipped_validator::validator(ValidationOptions::default()).unwrap())
}

#[test]
fn the_embedded_form_is_the_form_of_a_validator_compiled_now() {
    let now = compiled_now().compiled().unwrap();
    let embedded = ehds_shipped_validator::compiled_form().unwrap();
    assert_eq!(now.len(), embedded.len());
    assert!(
        now == embedded,
        "the embedded compiled form is stale or not deterministic"
    );
}

#[test]
fn the_embedded_validator_reads_back_to_its_own_form() {
    assert!(
        embedded().compiled().unwrap() == ehds_shipped_validator::compiled_form().unwrap(),
        "reading the compiled form loses or changes something"
    );
    assert_eq!(embedded().load_problems(), compiled_now().load_problems());
}

#[test]
fn the_embedded_validator_reports_what_a_validator_compiled_now_reports() {
    let mut files = files_with_extension(&conformance_dir().join("examples"), "json");
    files.extend(files_with_extension(
        &conformance_dir().join("positive"),
        "json",
    ));
    files.extend(files_with_extension(
        &conformance_dir().join("negative"),
        "json",
    ));
    assert!(files.len() > 900, "{} documents", files.len());
    let mut issues = 0;
    for path in &files {
        let Ok(resource) = ReceivedResource::parse(std::fs::read(path).unwrap().into()) else {
            continue;
        };
        let now = compiled_now().validate(&resource, &[]);
        let embedded = embedded().validate(&resource, &[]);
        assert_eq!(now.issues, embedded.issues, "{}", path.display());
        issues += now.issues.len();
    }
    assert!(issues > 0, "the documents raise findings to compare");
}

#[test]
fn a_damaged_form_is_refused() {
    let mut form = ehds_shipped_validator::compiled_form().unwrap();
    assert!(
        Validator::from_compiled(&form[..form.len() / 2], ValidationOptions::default()).is_err()
    );
    form[0] ^= 0xff;
    assert!(Validator::from_compiled(&form, ValidationOptions::default()).is_err());
}
