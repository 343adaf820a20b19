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
        ..ValidationOptions::default()
    };
    assert_eq!(severities(strict), (Severity::Error, Severity::Warning));
    let allowed = ValidationOptions {
        downgraded_rules: Vec::new(),
        unknown_extensions: UnknownExtensions {
            severity: Severity::Warning,
            allowed_domains: vec!["example.eu".into()],
        },
        ..ValidationOptions::default()
    };
    assert_eq!(
        severities(allowed),
        (Severity::Information, Severity::Error)
    );
}

/// A caller that downgrades a rule (the gateway's per-service policy) gets
/// the same finding, still an error for it to downgrade, but the rule no
/// longer decides slice membership: the Patient breaking only per-1 fills
/// the IPS Bundle's `patient` slice, so no slice-cardinality error is left
/// behind the downgraded one.
#[test]
fn a_downgraded_rule_does_not_decide_slice_membership() {
    let registry = Registry::load_root(&repo_root().join("profiles")).unwrap();
    let validator = Validator::new(&registry);
    let bytes = std::fs::read(
        repo_root().join("conformance/negative/invariant-per-1-period-ends-before-start.json"),
    )
    .unwrap();
    let resource = ReceivedResource::parse(bytes.into()).unwrap();
    let ips = ["http://hl7.org/fhir/uv/ips/StructureDefinition/Bundle-uv-ips"];
    let errors = |report: ehds_validation::ValidationReport| -> Vec<(String, String)> {
        report
            .issues
            .into_iter()
            .filter(|i| i.severity.is_error())
            .map(|i| {
                let rule = ehds_validation::rule_of(&i).unwrap_or("none").to_owned();
                (rule, i.expression.unwrap_or_default())
            })
            .collect()
    };
    let period = "Bundle.entry[1].resource.name[0].period".to_owned();
    let found = errors(validator.validate_pushed_document(&resource, &ips));
    assert!(
        found.contains(&("per-1".into(), period.clone())),
        "{found:?}"
    );
    assert!(
        found.contains(&("none".into(), "Bundle.entry".into())),
        "{found:?}"
    );
    let found = errors(validator.validate_pushed_document_downgrading(
        &resource,
        &ips,
        &["per-1".to_owned()],
    ));
    assert_eq!(found, [("per-1".to_owned(), period)]);
}
