//! Issue 16, defect 9: C0 control characters (`\u0000` and the others below
//! U+0020 but tab, CR, LF) in FHIR primitive values are reported as FHIR R4
//! says (datatypes.html#string: strings SHOULD NOT contain them) and as the
//! Java validator does (`InstanceValidator.checkPrimitive`,
//! `UNICODE_XML_BAD_CHARS`): a warning on every primitive; where the type's
//! regex refuses them too (an `id`), an error as well.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::OnceLock;

use ehds_fhir::ReceivedResource;
use ehds_fhir::outcome::{Issue, IssueType, Severity};
use ehds_profiles::Registry;
use ehds_test_support::repo_root;
use ehds_validation::{ValidationReport, Validator};

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

fn at<'r>(report: &'r ValidationReport, expression: &str) -> Vec<&'r Issue> {
    report
        .issues
        .iter()
        .filter(|i| i.expression.as_deref() == Some(expression))
        .collect()
}

fn control_warning(issues: &[&Issue]) -> bool {
    issues.iter().any(|i| {
        i.severity == Severity::Warning
            && i.code == IssueType::Invalid
            && i.diagnostics.contains("U+0000")
            && i.diagnostics.contains("datatypes.html#string")
    })
}

#[test]
fn a_nul_in_a_string_is_a_warning_not_an_error() {
    let report = validate(
        r#"{"resourceType":"Patient","id":"p","name":[{"family":"Do\u0000e","given":["Ann\tMarie"]}]}"#,
    );
    let family = at(&report, "Patient.name[0].family");
    assert!(control_warning(&family), "{report:#?}");
    assert!(family.iter().all(|i| !i.severity.is_error()), "{family:#?}");
    // A tab is allowed.
    assert!(
        at(&report, "Patient.name[0].given[0]").is_empty(),
        "{report:#?}"
    );
    // The value itself is not echoed.
    assert!(family.iter().all(|i| !i.diagnostics.contains("Do")));
}

#[test]
fn other_c0_characters_are_named() {
    let report = validate(
        r#"{"resourceType":"Patient","id":"p","name":[{"text":"a\u001bb\u0007c\u001b"}]}"#,
    );
    let text = at(&report, "Patient.name[0].text");
    assert!(
        text.iter()
            .any(|i| i.severity == Severity::Warning && i.diagnostics.contains("U+001B, U+0007")),
        "{report:#?}"
    );
}

#[test]
fn a_nul_in_an_id_is_also_an_error_by_the_id_regex() {
    let report = validate(r#"{"resourceType":"Patient","id":"p\u0000"}"#);
    let id = at(&report, "Patient.id");
    assert!(control_warning(&id), "{report:#?}");
    assert!(
        id.iter()
            .any(|i| i.severity.is_error() && i.code == IssueType::Value),
        "{report:#?}"
    );
}

/// The `code` regex (`[^\s]+( [^\s]+)*`, Java's `\s` being ASCII
/// whitespace) admits a NUL, so like Java only the warning is raised.
#[test]
fn a_nul_in_a_code_is_a_warning_as_in_java() {
    let report = validate(r#"{"resourceType":"Patient","id":"p","gender":"fe\u0000male"}"#);
    let gender = at(&report, "Patient.gender");
    assert!(control_warning(&gender), "{report:#?}");
}
