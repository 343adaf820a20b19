//! A resource element with several `type.profile`s: the resource must meet
//! one of them (R4 ElementDefinition.type.profile, "If any profiles are
//! specified, then the content must conform to at least one of them"). HL7
//! Europe Laboratory's Bundle-eu-lab lets its patient entry be a
//! Patient-eu-lab (name and birthDate required) or a Patient-animal-eu-lab
//! (the patient-animal extension required, telecom prohibited).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use ehds_fhir::ReceivedResource;
use ehds_profiles::Registry;
use ehds_test_support::{conformance_dir, repo_root};
use ehds_validation::Validator;

const LAB_REPORT: &str = "examples/eu-lab-0.1.0/Bundle-SimpleChemistryResultReport.json";
const LAB_BUNDLE: &str = "http://hl7.eu/fhir/laboratory/StructureDefinition/Bundle-eu-lab|0.1.0";

fn errors_at(report: &ehds_validation::ValidationReport, prefix: &str) -> Vec<String> {
    report
        .issues
        .iter()
        .filter(|i| i.severity.is_error())
        .filter_map(|i| i.expression.clone())
        .filter(|e| e.starts_with(prefix))
        .collect()
}

#[test]
fn a_patient_meeting_one_of_two_profiles_is_accepted_and_one_meeting_none_is_not() {
    let validator = Validator::new(&Registry::load_root(&repo_root().join("profiles")).unwrap());
    let bytes = std::fs::read(conformance_dir().join(LAB_REPORT)).unwrap();
    // A human patient with telecom: Patient-eu-lab, not Patient-animal-eu-lab.
    let human = ReceivedResource::parse(bytes.clone().into()).unwrap();
    let report = validator.validate(&human, &[LAB_BUNDLE]);
    assert!(
        errors_at(&report, "Bundle.entry[1].resource").is_empty(),
        "{report:#?}"
    );

    // Without birthDate it meets neither: an error at the entry, and both
    // profiles' findings shown as its reasons (information, as Java).
    let mut json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let patient = json["entry"][1]["resource"].as_object_mut().unwrap();
    assert_eq!(patient["resourceType"], "Patient");
    patient.remove("birthDate").unwrap();
    let neither = ReceivedResource::parse(serde_json::to_vec(&json).unwrap().into()).unwrap();
    let report = validator.validate(&neither, &[LAB_BUNDLE]);
    assert!(
        !errors_at(&report, "Bundle.entry[1].resource").is_empty(),
        "{report:#?}"
    );
    let errors: Vec<String> = report
        .issues
        .iter()
        .filter_map(|i| i.expression.clone())
        .filter(|e| e.starts_with("Bundle.entry[1].resource"))
        .collect();
    assert!(
        errors.iter().any(|e| e.ends_with(".birthDate")),
        "{report:#?}"
    );
    // (A conformance probe stops at its first error, so each profile gives
    // its first finding; the refusal names both profiles.)
    assert!(
        report.issues.iter().any(|i| i.severity.is_error()
            && i.diagnostics.contains("Patient-eu-lab")
            && i.diagnostics.contains("Patient-animal-eu-lab")),
        "{report:#?}"
    );
}
