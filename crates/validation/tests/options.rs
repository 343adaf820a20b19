//! The operator's validation options, through the public `Validator`: the
//! per-rule downgrade list and the unknown-extensions policy change how a
//! finding is reported, and the defaults keep the gateway's behaviour.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use ehds_fhir::ReceivedResource;
use ehds_fhir::outcome::Severity;
use ehds_profiles::Registry;
use ehds_test_support::repo_root;
use ehds_validation::{UnknownExtensions, ValidationOptions, Validator};

const PATIENT: &str = r##"{"resourceType":"Patient",
  "extension":[{"url":"http://national.example.eu/fhir/StructureDefinition/insurer","valueString":"x"}],
  "generalPractitioner":[{"reference":"#gone"}]}"##;

fn severities(options: ValidationOptions) -> (Severity, Severity) {
    let registry = Registry::load_root(&repo_root().join("profiles")).unwrap();
    let validator = Validator::with_options(&registry, options);
    let resource = ReceivedResource::parse(PATIENT.as_bytes().to_vec().into()).unwrap();
    let report = validator.validate(&resource, &[]);
    let at = |expression: &str| {
        report
            .issues
            .iter()
            .find(|i| i.expression.as_deref() == Some(expression))
            .unwrap_or_else(|| panic!("nothing at {expression}: {:#?}", report.issues))
            .severity
    };
    (
        at("Patient.extension[0]"),
        at("Patient.generalPractitioner[0].reference"),
    )
}

#[test]
fn defaults_keep_todays_behaviour() {
    assert_eq!(
        severities(ValidationOptions::default()),
        (Severity::Information, Severity::Error)
    );
}

#[test]
fn downgraded_rules_and_unknown_extension_policy() {
    let strict = ValidationOptions {
        downgraded_rules: vec!["ref-1".into()],
        unknown_extensions: UnknownExtensions {
            severity: Severity::Error,
            allowed_domains: Vec::new(),
        },
    };
    assert_eq!(severities(strict), (Severity::Error, Severity::Warning));
    let allowed = ValidationOptions {
        downgraded_rules: Vec::new(),
        unknown_extensions: UnknownExtensions {
            severity: Severity::Warning,
            allowed_domains: vec!["example.eu".into()],
        },
    };
    assert_eq!(
        severities(allowed),
        (Severity::Information, Severity::Error)
    );
}
