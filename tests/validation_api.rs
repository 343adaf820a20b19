//! End-to-end: validation through the real binary — `$validate`, the push
//! path's profile checks, `Prefer: return=OperationOutcome`, operator-added
//! packages, and the `validate` command.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::PathBuf;
use std::process::Command;

use ehds_test_support::{GatewayProcess, conformance_dir, repo_root, unique_schema};
use serde_json::Value;

const FHIR_JSON: &str = "application/fhir+json";

fn start(config: &str) -> GatewayProcess {
    GatewayProcess::start(env!("CARGO_BIN_EXE_ehds-gateway"), &[], Some(config)).unwrap()
}

fn config(extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[store]\nurl = \"sqlite://gw.db\"\n\n[validation]\n{extra}"
    )
}

async fn post(
    gateway: &GatewayProcess,
    path: &str,
    body: Vec<u8>,
    prefer: Option<&str>,
) -> reqwest::Response {
    let mut request = crate::common::ehr_client()
        .post(gateway.url(path))
        .header("content-type", FHIR_JSON)
        .body(body);
    if let Some(prefer) = prefer {
        request = request.header("prefer", prefer);
    }
    request.send().await.unwrap()
}

fn errors_at(outcome: &Value) -> Vec<String> {
    outcome["issue"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["severity"] == "error")
        .map(|i| i["expression"][0].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
async fn validate_operation_and_push_report_profile_errors() {
    let gateway = start(&config(""));

    // $validate: 200 with the issues, whatever they are.
    let patient = br#"{"resourceType":"Patient","birthDate":"1972-13-01","gender":"female"}"#;
    let response = post(&gateway, "/fhir/Patient/$validate", patient.to_vec(), None).await;
    assert_eq!(response.status().as_u16(), 200);
    let outcome: Value = response.json().await.unwrap();
    assert_eq!(errors_at(&outcome), ["Patient.birthDate"]);

    // A valid resource: no errors (dom-6 warns that it has no narrative).
    let good = br#"{"resourceType":"Patient","birthDate":"1972-12-01"}"#;
    let outcome: Value = post(&gateway, "/fhir/$validate", good.to_vec(), None)
        .await
        .json()
        .await
        .unwrap();
    assert!(errors_at(&outcome).is_empty());
    let issues = outcome["issue"].as_array().unwrap();
    assert!(
        issues
            .iter()
            .all(|i| i["severity"] == "information" || i["severity"] == "warning"),
        "{outcome}"
    );

    // An unknown profile is reported, not ignored (canonical URLs are case-sensitive).
    let outcome: Value = post(
        &gateway,
        "/fhir/Patient/$validate?profile=http://hl7.org/fhir/uv/ips/StructureDefinition/patient-uv-ips",
        good.to_vec(),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(outcome["issue"][0]["severity"], "warning");
    assert_eq!(outcome["issue"][0]["code"], "not-found");

    // The type in the URL must match the body.
    let response = post(&gateway, "/fhir/Observation/$validate", good.to_vec(), None).await;
    assert_eq!(response.status().as_u16(), 400);

    // The IPS example validates cleanly through /fhir/Bundle/$validate.
    let ips =
        std::fs::read(conformance_dir().join("examples/ips/Bundle-IPS-examples-Bundle-01.json"))
            .unwrap();
    let outcome: Value = post(&gateway, "/fhir/Bundle/$validate", ips.clone(), None)
        .await
        .json()
        .await
        .unwrap();
    assert!(errors_at(&outcome).is_empty(), "{outcome}");

    // Pushing a document that breaks the IPS profile: 422 with every issue
    // located, and nothing stored. As the HL7 Java validator decides it, a
    // Composition that does not conform to Composition-uv-ips is in no slice
    // of the Bundle profile: the error is `entry:composition`'s minimum, and
    // the missing section is its reason, located at the section.
    let broken =
        std::fs::read(conformance_dir().join("negative/ips-problems-section-missing.json"))
            .unwrap();
    let response = post(&gateway, "/fhir/Bundle", broken, None).await;
    assert_eq!(response.status().as_u16(), 422);
    let outcome: Value = response.json().await.unwrap();
    assert!(
        errors_at(&outcome).contains(&"Bundle.entry".to_owned()),
        "{outcome}"
    );
    assert!(
        outcome["issue"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["expression"][0] == "Bundle.entry[0].resource.section"),
        "{outcome}"
    );

    // Accepted with Prefer: return=OperationOutcome: the issues instead of the body.
    let response = post(
        &gateway,
        "/fhir/Bundle",
        ips,
        Some("return=OperationOutcome"),
    )
    .await;
    assert_eq!(response.status().as_u16(), 201);
    assert!(response.headers().contains_key("location"));
    assert!(response.headers().contains_key("x-validation-issues"));
    let outcome: Value = response.json().await.unwrap();
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert!(errors_at(&outcome).is_empty());
}

/// Another country's profiles, added from a folder named in config, are
/// enforced without a rebuild.
#[tokio::test]
async fn operator_packages_are_loaded_from_config() {
    let package = std::env::temp_dir().join(unique_schema("pkg"));
    std::fs::create_dir_all(&package).unwrap();
    std::fs::write(
        package.join("package.json"),
        r#"{"name":"example.country.profiles","version":"0.0.1","fhirVersions":["4.0.1"]}"#,
    )
    .unwrap();
    // A Patient profile requiring birthDate, built from R4 core's snapshot.
    let core: Value = serde_json::from_slice(
        &std::fs::read(
            repo_root().join("profiles/hl7.fhir.r4.core-4.0.1/StructureDefinition-Patient.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut profile = core.clone();
    profile["url"] = "http://example.org/fhir/StructureDefinition/patient-with-birthdate".into();
    profile["id"] = "patient-with-birthdate".into();
    profile["name"] = "PatientWithBirthDate".into();
    profile["derivation"] = "constraint".into();
    profile["baseDefinition"] = "http://hl7.org/fhir/StructureDefinition/Patient".into();
    for element in profile["snapshot"]["element"].as_array_mut().unwrap() {
        if element["id"] == "Patient.birthDate" {
            element["min"] = 1.into();
        }
    }
    std::fs::write(
        package.join("StructureDefinition-patient-with-birthdate.json"),
        serde_json::to_vec(&profile).unwrap(),
    )
    .unwrap();

    let gateway = start(&config(&format!(
        "extra_package_dirs = [{:?}]\n",
        package.display().to_string()
    )));
    let patient = br#"{"resourceType":"Patient","gender":"male"}"#;
    let outcome: Value = post(
        &gateway,
        "/fhir/Patient/$validate?profile=http://example.org/fhir/StructureDefinition/patient-with-birthdate",
        patient.to_vec(),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(errors_at(&outcome), ["Patient.birthDate"]);
    drop(gateway);
    let _ = std::fs::remove_dir_all(package);
}

#[test]
fn validate_command_prints_outcomes_and_fails_on_errors() {
    let dir = std::env::temp_dir().join(unique_schema("cli"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("gateway.toml"), config("")).unwrap();
    let run = |files: &[PathBuf]| {
        Command::new(env!("CARGO_BIN_EXE_ehds-gateway"))
            .arg("validate")
            .args(files)
            .args(["--config", "gateway.toml"])
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let good = conformance_dir().join("examples/ips/Bundle-IPS-examples-Bundle-01.json");
    let bad = conformance_dir().join("negative/bad-date-format.json");
    let ok = run(std::slice::from_ref(&good));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let failed = run(&[good, bad]);
    assert_eq!(failed.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&failed.stdout);
    let outcomes: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(outcomes.len(), 2);
    assert!(
        errors_at(&outcomes[1])
            .iter()
            .any(|e| e.ends_with(".birthDate")),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
