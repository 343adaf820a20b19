//! Issue 15 §2: codes of code systems the gateway does not hold (CVX here)
//! checked with a terminology server's recorded answers
//! (`ehds_validation::terminology::recorded`), as Java checks every Coding
//! on its server (`InstanceValidator.checkCoding`) and its test run replays
//! the recorded answers: the server's wrong-display verdict is reported at
//! `Coding.display`, a question never recorded gets no verdict, a held
//! complete CodeSystem is decided by the gateway itself, and the display
//! language is the resource's.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::{Arc, OnceLock};

use ehds_fhir::ReceivedResource;
use ehds_fhir::outcome::Severity;
use ehds_profiles::Registry;
use ehds_test_support::repo_root;
use ehds_validation::terminology::recorded::RecordedAnswers;
use ehds_validation::{ValidationReport, Validator};

const SEP: &str =
    "-------------------------------------------------------------------------------------\n";

/// One recorded entry in Java's cache format: a request about `system`
/// `code` `display` in `langs`, answered `wrong` (an error at the display)
/// or not.
fn entry(system: &str, code: &str, display: &str, langs: &str, wrong: bool) -> String {
    let request = format!(
        r#"{{"code" : {{"system" : "{system}", "code" : "{code}", "display" : "{display}"}}, "valueSet" :null, "langs":"{langs}", "useServer":"true"}}"#
    );
    let answer = if wrong {
        format!(
            r#"{{"severity" : "error", "error" : "Wrong Display Name '{display}' for {system}#{code}", "issues" : {{"resourceType" : "OperationOutcome", "issue" : [{{"severity" : "error", "code" : "invalid", "details" : {{"text" : "Wrong Display Name '{display}' for {system}#{code}"}}, "expression" : ["CodeableConcept.coding[0].display"]}}]}}}}"#
        )
    } else {
        format!(r#"{{"display" : "{display}", "code" : "{code}", "system" : "{system}"}}"#)
    };
    format!("{SEP}{request}####\nv: {answer}\n\n")
}

const CVX: &str = "http://hl7.org/fhir/sid/cvx";
const GENDER: &str = "http://hl7.org/fhir/administrative-gender";

fn validator() -> &'static Validator {
    static VALIDATOR: OnceLock<Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let mut answers = RecordedAnswers::new();
        let text = [
            entry(CVX, "207", "Old name", "", true),
            entry(CVX, "207", "Current name", "", false),
            entry(CVX, "207", "Local name", "", true),
            entry(CVX, "207", "Local name", "en-NZ", false),
            // A held complete CodeSystem: the gateway decides, not the recording.
            entry(GENDER, "male", "Male", "", true),
        ]
        .concat();
        assert!(answers.add(&text).is_empty());
        let registry = Registry::load_root(&repo_root().join("profiles")).unwrap();
        Validator::new(&registry).with_recorded_answers(Arc::new(answers))
    })
}

fn immunization(language: Option<&str>, codings: &str) -> ValidationReport {
    let language = language.map_or(String::new(), |l| format!(r#""language":"{l}","#));
    let json = format!(
        r#"{{"resourceType":"Immunization",{language}"status":"completed",
            "vaccineCode":{{"coding":[{codings}]}},
            "patient":{{"reference":"Patient/p1"}},"occurrenceDateTime":"2021-05-01"}}"#
    );
    let resource = ReceivedResource::parse(json.into_bytes().into()).unwrap();
    validator().validate(&resource, &[])
}

fn errors_at(report: &ValidationReport, expression: &str) -> usize {
    report
        .issues
        .iter()
        .filter(|i| i.severity == Severity::Error && i.expression.as_deref() == Some(expression))
        .count()
}

fn cvx(display: &str) -> String {
    format!(r#"{{"system":"{CVX}","code":"207","display":"{display}"}}"#)
}

#[test]
fn the_servers_wrong_display_is_an_error_at_the_display() {
    let report = immunization(None, &cvx("Old name"));
    assert_eq!(
        errors_at(&report, "Immunization.vaccineCode.coding[0].display"),
        1,
        "{:?}",
        report.issues
    );
    assert_eq!(report.error_count(), 1, "{:?}", report.issues);
}

#[test]
fn a_right_or_unrecorded_display_gets_no_verdict() {
    for display in ["Current name", "Never asked"] {
        let report = immunization(None, &cvx(display));
        assert_eq!(report.error_count(), 0, "{display}: {:?}", report.issues);
    }
}

#[test]
fn the_resources_language_chooses_the_answer() {
    let wrong = immunization(None, &cvx("Local name"));
    assert_eq!(wrong.error_count(), 1, "{:?}", wrong.issues);
    let right = immunization(Some("en-NZ"), &cvx("Local name"));
    assert_eq!(right.error_count(), 0, "{:?}", right.issues);
}

#[test]
fn a_held_complete_code_system_is_not_decided_by_the_recording() {
    let codings = format!(
        r#"{},{{"system":"{GENDER}","code":"male","display":"Male"}}"#,
        cvx("Current name")
    );
    let report = immunization(None, &codings);
    assert_eq!(report.error_count(), 0, "{:?}", report.issues);
}
