//! The 1 MB limit on primitive values applies to `string` elements only, as
//! in the HL7 Java validator (`InstanceValidator.checkPrimitive`: the
//! `length() <= 1048576` test, TYPE_SPECIFIC_CHECKS_DT_STRING_LENGTH, sits in
//! the branch for type `string`; R4 datatypes.html#string): an attached
//! document's `base64Binary` data of any size is no length error.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::OnceLock;

use ehds_fhir::ReceivedResource;
use ehds_fhir::outcome::IssueType;
use ehds_profiles::Registry;
use ehds_test_support::repo_root;
use ehds_validation::{ValidationReport, Validator};

/// Just over 1 MB of base64 (and of string) characters.
const OVER: usize = 1_048_576 + 4;

fn validator() -> &'static Validator {
    static VALIDATOR: OnceLock<Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let registry = Registry::load_root(&repo_root().join("profiles")).unwrap();
        Validator::new(&registry)
    })
}

fn validate(json: &str) -> ValidationReport {
    let resource = ReceivedResource::parse(json.as_bytes().to_vec().into()).unwrap();
    validator().validate(&resource, &[])
}

fn too_long_at(report: &ValidationReport) -> Vec<Option<&str>> {
    report
        .issues
        .iter()
        .filter(|i| i.code == IssueType::TooLong)
        .map(|i| i.expression.as_deref())
        .collect()
}

#[test]
fn base64_binary_over_one_megabyte_has_no_length_error() {
    let data = "A".repeat(OVER);
    let report = validate(&format!(
        r#"{{"resourceType":"Binary","id":"b","contentType":"application/pdf","data":"{data}"}}"#
    ));
    assert!(
        too_long_at(&report).is_empty(),
        "{:#?}",
        too_long_at(&report)
    );
    assert_eq!(report.error_count(), 0, "{:#?}", report.issues);
}

#[test]
fn string_over_one_megabyte_is_an_error() {
    let text = "a".repeat(OVER);
    let report = validate(&format!(
        r#"{{"resourceType":"Patient","id":"p","name":[{{"family":"{text}"}}]}}"#
    ));
    assert_eq!(
        too_long_at(&report),
        vec![Some("Patient.name[0].family")],
        "{:#?}",
        report.issues
    );
    assert!(report.error_count() > 0);
}
