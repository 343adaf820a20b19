//! End-to-end: the operator's validation policy (issue 15 §3 and §2
//! "unknown extensions") through the real binary — `enforce` refuses a
//! document with an error (422), `report` stores it (201, the errors in the
//! OperationOutcome with `Prefer: return=OperationOutcome`, counted on
//! `/metrics`), a downgraded rule's error comes back as a marked warning,
//! the unknown-extensions policy with its allowed domains, and the
//! CapabilityStatement naming each service's policy.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use ehds_test_support::{GatewayProcess, conformance_dir};
use serde_json::Value;

const FHIR_JSON: &str = "application/fhir+json";

/// A gateway whose patient-summary service has `validation` (TOML lines of
/// `[services.service.validation]`) and whose `[validation]` has `global`.
fn start(validation: &str, global: &str) -> GatewayProcess {
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[store]\nurl = \"sqlite://gw.db\"\n\n\
         [validation]\n{global}\n\n\
         [[services.service]]\nname = \"patient-summary\"\ntitle = \"Patient summary\"\n\
         permission = \"ReadPatientSummary\"\n\
         document_profiles = [\"http://hl7.org/fhir/uv/ips/StructureDefinition/Bundle-uv-ips\"]\n\
         [services.service.validation]\n{validation}\n\
         [[services.service.document_type]]\nsystem = \"http://loinc.org\"\n\
         code = \"60591-5\"\ndisplay = \"Patient summary Document\"\n"
    );
    GatewayProcess::start(env!("CARGO_BIN_EXE_ehds-gateway"), &[], Some(&config)).unwrap()
}

/// A conformance fixture (derived from the IPS minimal example) with its
/// own `Bundle.identifier` value, so that several can be stored.
fn document(path: &str, identifier: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut bundle: Value =
        serde_json::from_slice(&std::fs::read(conformance_dir().join(path)).unwrap()).unwrap();
    bundle["identifier"]["value"] = format!("urn:uuid:{identifier}").into();
    edit(&mut bundle);
    serde_json::to_vec_pretty(&bundle).unwrap()
}

const MINIMAL: &str = "examples/ips/Bundle-bundle-minimal.json";
const BAD_DATE: &str = "negative/bad-date-format.json";
const PER_1: &str = "negative/invariant-per-1-period-ends-before-start.json";

async fn push(gateway: &GatewayProcess, path: &str, body: Vec<u8>) -> reqwest::Response {
    crate::common::ehr_client()
        .post(gateway.url(path))
        .header("content-type", FHIR_JSON)
        .header("prefer", "return=OperationOutcome")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn get(gateway: &GatewayProcess, path: &str) -> reqwest::Response {
    crate::common::ehr_client()
        .get(gateway.url(path))
        .send()
        .await
        .unwrap()
}

fn issues(outcome: &Value) -> Vec<Value> {
    outcome["issue"].as_array().unwrap().clone()
}

fn at<'a>(issues: &'a [Value], expression: &str) -> &'a Value {
    issues
        .iter()
        .find(|i| i["expression"][0] == expression)
        .unwrap_or_else(|| panic!("no issue at {expression}: {issues:#?}"))
}

fn errors(issues: &[Value]) -> usize {
    issues.iter().filter(|i| i["severity"] == "error").count()
}

/// The Bundle resource's documentation in the CapabilityStatement.
async fn bundle_documentation(gateway: &GatewayProcess) -> String {
    let statement: Value = get(gateway, "/fhir/metadata").await.json().await.unwrap();
    statement["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Bundle")
        .unwrap()["documentation"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn enforce_refuses_and_a_downgraded_rule_warns() {
    let gateway = start(
        "policy = \"enforce\"\ndowngraded_rules = [\"per-1\"]",
        "unknown_extensions = \"error\"\nunknown_extension_domains = [\"hl7.eu\"]",
    );

    // An error without a downgraded rule: 422, nothing stored.
    let response = push(&gateway, "/fhir/Bundle", document(BAD_DATE, "e1", |_| {})).await;
    assert_eq!(response.status().as_u16(), 422);
    let outcome: Value = response.json().await.unwrap();
    let found = issues(&outcome);
    assert_eq!(
        at(&found, "Bundle.entry[1].resource.birthDate")["severity"],
        "error"
    );

    // per-1 downgraded: 201, the finding a warning that says why.
    let response = push(&gateway, "/fhir/Bundle", document(PER_1, "e2", |_| {})).await;
    assert_eq!(response.status().as_u16(), 201);
    assert_eq!(response.headers()["x-validation-errors"], "0");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let outcome: Value = response.json().await.unwrap();
    let found = issues(&outcome);
    assert_eq!(errors(&found), 0, "{outcome:#}");
    let per_1 = at(&found, "Bundle.entry[1].resource.name[0].period");
    assert_eq!(per_1["severity"], "warning");
    let text = per_1["diagnostics"].as_str().unwrap();
    assert!(text.starts_with("per-1: "), "{text}");
    assert!(
        text.contains("operator downgraded per-1 for the service patient-summary"),
        "{text}"
    );
    assert_eq!(get(&gateway, &location).await.status().as_u16(), 200);
    // $validate says what a push is told.
    let outcome: Value = push(
        &gateway,
        "/fhir/Bundle/$validate",
        document(PER_1, "e3", |_| {}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        at(&issues(&outcome), "Bundle.entry[1].resource.name[0].period")["severity"],
        "warning"
    );

    // Unknown extensions under "error": refused, unless under an allowed domain.
    let with_extension = |identifier: &str, url: &str| {
        let url = url.to_owned();
        document(MINIMAL, identifier, move |bundle| {
            bundle["entry"][1]["resource"]["extension"] =
                serde_json::json!([{"url": url, "valueString": "x"}]);
        })
    };
    let national = "http://fhir.example.lu/StructureDefinition/insurer";
    let response = push(&gateway, "/fhir/Bundle", with_extension("e4", national)).await;
    assert_eq!(response.status().as_u16(), 422);
    let outcome: Value = response.json().await.unwrap();
    let found = issues(&outcome);
    let extension = at(&found, "Bundle.entry[1].resource.extension[0]");
    assert_eq!(extension["severity"], "error");
    assert_eq!(extension["code"], "extension");
    let allowed = "http://hl7.eu/fhir/StructureDefinition/not-held";
    let response = push(&gateway, "/fhir/Bundle", with_extension("e5", allowed)).await;
    assert_eq!(response.status().as_u16(), 201);
    let outcome: Value = response.json().await.unwrap();
    assert_eq!(
        at(&issues(&outcome), "Bundle.entry[1].resource.extension[0]")["severity"],
        "information"
    );

    let documentation = bundle_documentation(&gateway).await;
    assert!(
        documentation.contains(
            "patient-summary: enforce (errors refuse the document with 422); errors of per-1 \
             downgraded to warnings"
        ),
        "{documentation}"
    );
    assert!(
        documentation.contains("reported as error (information under hl7.eu)"),
        "{documentation}"
    );

    let metrics = get(&gateway, "/metrics").await.text().await.unwrap();
    for line in [
        "ehds_validation_verdicts_total{service=\"patient-summary\",policy=\"enforce\",verdict=\"refused\"} 2\n",
        "ehds_validation_verdicts_total{service=\"patient-summary\",policy=\"enforce\",verdict=\"accepted\"} 2\n",
        "ehds_validation_downgraded_total{service=\"patient-summary\",rule=\"per-1\"} 1\n",
        "ehds_validation_issues_total{service=\"patient-summary\",severity=\"error\",rule=\"unknown-extension\"} 1\n",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
}

#[tokio::test]
async fn report_stores_a_document_with_errors_and_counts_them() {
    let gateway = start("policy = \"report\"", "");

    let sent = document(BAD_DATE, "r1", |_| {});
    let response = push(&gateway, "/fhir/Bundle", sent.clone()).await;
    assert_eq!(response.status().as_u16(), 201);
    // The wrong date, and the IPS Bundle's patient slice that the Patient
    // then fails to fill.
    assert_eq!(response.headers()["x-validation-errors"], "2");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let outcome: Value = response.json().await.unwrap();
    let found = issues(&outcome);
    // The errors stay errors, then a note says the document was stored.
    assert_eq!(
        at(&found, "Bundle.entry[1].resource.birthDate")["severity"],
        "error"
    );
    let note = found.last().unwrap();
    assert_eq!(note["severity"], "information");
    assert!(
        note["diagnostics"]
            .as_str()
            .unwrap()
            .starts_with("stored despite 2 error(s)"),
        "{note}"
    );
    // Stored byte for byte.
    let read = get(&gateway, &location).await;
    assert_eq!(read.status().as_u16(), 200);
    assert_eq!(read.bytes().await.unwrap(), sent);

    // Without Prefer: the stored bytes (FHIR R4 http.html#ops), the count in
    // the header.
    let response = crate::common::ehr_client()
        .post(gateway.url("/fhir/Bundle"))
        .header("content-type", FHIR_JSON)
        .body(document(BAD_DATE, "r2", |_| {}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    assert_eq!(response.headers()["x-validation-errors"], "2");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["resourceType"], "Bundle");

    // A document that cannot be stored is refused whatever the policy.
    let response = push(
        &gateway,
        "/fhir/Bundle",
        document(MINIMAL, "r3", |bundle| {
            bundle.as_object_mut().unwrap().remove("identifier");
        }),
    )
    .await;
    assert_eq!(response.status().as_u16(), 422);

    let documentation = bundle_documentation(&gateway).await;
    assert!(
        documentation.contains("patient-summary: report (errors are reported, not enforced"),
        "{documentation}"
    );
    assert!(
        documentation.contains("reported as information;"),
        "{documentation}"
    );

    let metrics = get(&gateway, "/metrics").await.text().await.unwrap();
    for line in [
        "ehds_validation_verdicts_total{service=\"patient-summary\",policy=\"report\",verdict=\"accepted-with-errors\"} 2\n",
        "ehds_validation_verdicts_total{service=\"patient-summary\",policy=\"report\",verdict=\"refused\"} 1\n",
        // Two documents with a wrong date and the empty patient slice it
        // causes; the document without identifier: the IPS Bundle's
        // identifier minimum and the refusal whatever the policy (and
        // bdl-9, for its system and its value).
        "ehds_validation_issues_total{service=\"patient-summary\",severity=\"error\",rule=\"none\"} 6\n",
        "ehds_validation_issues_total{service=\"patient-summary\",severity=\"error\",rule=\"bdl-9\"} 2\n",
        "ehds_documents_stored 2\n",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
}

/// `check-config` refuses a policy it does not know and a downgraded rule
/// that is not a rule key, and warns about a well-formed rule no loaded
/// package has (rules come from packages).
#[test]
fn check_config_refuses_unknown_policies_and_warns_of_unknown_rules() {
    let dir = ehds_test_support::ScratchDir::new("policy-config");
    let run = |validation: &str, global: &str| {
        let path = dir.path().join("gateway.toml");
        let text = format!(
            "[validation]\n{global}\n\n\
             [[services.service]]\nname = \"patient-summary\"\ntitle = \"Patient summary\"\n\
             permission = \"ReadPatientSummary\"\n\
             [services.service.validation]\n{validation}\n\
             [[services.service.document_type]]\nsystem = \"http://loinc.org\"\n\
             code = \"60591-5\"\ndisplay = \"Patient summary Document\"\n"
        );
        std::fs::write(&path, text).unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_ehds-gateway"))
            .arg("check-config")
            .arg(&path)
            .current_dir(ehds_test_support::repo_root())
            .env("RUST_LOG", "error")
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr),
        )
    };
    let (ok, said) = run(
        "policy = \"report\"\ndowngraded_rules = [\"bdl-7\", \"zz-99\"]",
        "",
    );
    assert!(ok, "{said}");
    assert!(
        said.contains(
            "warning: service patient-summary: downgraded rule zz-99 is not a rule of the loaded packages"
        ),
        "{said}"
    );
    assert!(!said.contains("bdl-7 is not"), "{said}");
    let (ok, said) = run("policy = \"lenient\"", "");
    assert!(!ok);
    assert!(said.contains("lenient"), "{said}");
    let (ok, said) = run("downgraded_rules = [\"Bundle.entry\"]", "");
    assert!(!ok);
    assert!(said.contains("is not a rule key"), "{said}");
    let (ok, said) = run("", "unknown_extensions = \"fatal\"");
    assert!(!ok);
    assert!(said.contains("fatal"), "{said}");
    let (ok, said) = run("", "unknown_extension_domains = [\"http://hl7.eu\"]");
    assert!(!ok);
    assert!(said.contains("unknown_extension_domains"), "{said}");
}

/// The `validate` command tells what a push would be told: a document of a
/// service under that service's policy (`report` accepts it with its
/// errors, `enforce` refuses it, a downgraded rule's error is a warning).
#[test]
fn validate_command_follows_the_service_policy() {
    let dir = std::env::temp_dir().join(format!("ehds-validate-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |validation: &str, file: &str| {
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[store]\nurl = \"sqlite://gw.db\"\n\n\
             [[services.service]]\nname = \"patient-summary\"\ntitle = \"Patient summary\"\n\
             permission = \"ReadPatientSummary\"\n\
             document_profiles = [\"http://hl7.org/fhir/uv/ips/StructureDefinition/Bundle-uv-ips\"]\n\
             [services.service.validation]\n{validation}\n\
             [[services.service.document_type]]\nsystem = \"http://loinc.org\"\n\
             code = \"60591-5\"\ndisplay = \"Patient summary Document\"\n"
        );
        std::fs::write(dir.join("gateway.toml"), config).unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_ehds-gateway"))
            .arg("validate")
            .arg(conformance_dir().join(file))
            .args(["--config", "gateway.toml"])
            .current_dir(&dir)
            .output()
            .unwrap();
        let outcome: Value = serde_json::from_slice(&output.stdout).unwrap();
        (output.status.code(), issues(&outcome))
    };
    let (status, found) = run("policy = \"enforce\"", BAD_DATE);
    assert_eq!(status, Some(1));
    assert_eq!(
        at(&found, "Bundle.entry[1].resource.birthDate")["severity"],
        "error"
    );
    let (status, found) = run("policy = \"report\"", BAD_DATE);
    assert_eq!(status, Some(0));
    assert_eq!(
        at(&found, "Bundle.entry[1].resource.birthDate")["severity"],
        "error"
    );
    assert!(
        found.iter().any(|i| i["diagnostics"]
            .as_str()
            .is_some_and(|d| d.contains("policy \"report\""))),
        "{found:#?}"
    );
    let (status, found) = run("downgraded_rules = [\"per-1\"]", PER_1);
    assert_eq!(status, Some(0));
    assert_eq!(
        at(&found, "Bundle.entry[1].resource.name[0].period")["severity"],
        "warning"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// `[validation] recorded_terminology_dirs`: with the terminology server's
/// recorded answers (Java's cache entries the validator suite runs with),
/// the `validate` command reports the server's wrong display of a CVX code
/// (issue 15 §2); without them the code is not checked. A folder that
/// cannot be read stops the command.
#[test]
fn recorded_terminology_answers_check_codes_of_systems_not_held() {
    let dir = std::env::temp_dir().join(format!("ehds-validate-recorded-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let immunization = r#"{"resourceType":"Immunization","status":"completed",
        "vaccineCode":{"coding":[{"system":"http://hl7.org/fhir/sid/cvx","code":"207",
          "display":"SARS-COV-2 (COVID-19) vaccine, mRNA, spike protein, LNP, preservative free, 100 mcg/0.5mL dose"}]},
        "patient":{"reference":"Patient/p1"},"occurrenceDateTime":"2021-05-01"}"#;
    std::fs::write(dir.join("immunization.json"), immunization).unwrap();
    let run = |validation: &str| {
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[store]\nurl = \"sqlite://gw.db\"\n\n\
             [validation]\n{validation}\n"
        );
        std::fs::write(dir.join("gateway.toml"), config).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_ehds-gateway"))
            .args(["validate", "immunization.json", "--config", "gateway.toml"])
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let recorded = ehds_test_support::repo_root()
        .join("conformance")
        .join("fhir-test-cases")
        .join("tx-cache");
    let output = run(&format!(
        "recorded_terminology_dirs = [{:?}]",
        recorded.display().to_string()
    ));
    let outcome: Value = serde_json::from_slice(&output.stdout).unwrap();
    let found = issues(&outcome);
    let display = at(&found, "Immunization.vaccineCode.coding[0].display");
    assert_eq!(display["severity"], "error", "{found:#?}");
    assert!(
        display["diagnostics"]
            .as_str()
            .is_some_and(|d| d.starts_with("Wrong Display Name")),
        "{display:#?}"
    );
    assert_eq!(output.status.code(), Some(1));

    let output = run("");
    let outcome: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(errors(&issues(&outcome)), 0, "{outcome:#}");
    assert_eq!(output.status.code(), Some(0));

    let output = run("recorded_terminology_dirs = [\"no-such-folder\"]");
    assert_ne!(output.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("recorded_terminology_dirs"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A PDF original's metadata follows its service's policy as a document
/// does (`POST /fhir/DocumentReference`): under `enforce` an R4 error in the
/// DocumentReference refuses it (422, located, nothing stored); under
/// `report` it is stored, 201, the counts in `X-Validation-Errors`, the
/// error in the OperationOutcome asked for with `Prefer:
/// return=OperationOutcome`. The PDF's own checks refuse whatever the
/// policy.
#[tokio::test]
async fn a_pdf_originals_metadata_follows_the_service_policy() {
    use base64::Engine as _;
    let start_with = |policy: &str| {
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[store]\nurl = \"sqlite://gw.db\"\n\n\
             [[services.service]]\nname = \"patient-summary\"\ntitle = \"Patient summary\"\n\
             permission = \"ReadPatientSummary\"\npdf_original = true\n\
             document_profiles = [\"http://hl7.org/fhir/uv/ips/StructureDefinition/Bundle-uv-ips\"]\n\
             [services.service.validation]\npolicy = \"{policy}\"\n\
             [[services.service.document_type]]\nsystem = \"http://loinc.org\"\n\
             code = \"60591-5\"\ndisplay = \"Patient summary Document\"\n"
        );
        GatewayProcess::start(env!("CARGO_BIN_EXE_ehds-gateway"), &[], Some(&config)).unwrap()
    };
    let pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";
    let reference = |identifier: &str, date: &str, pdf: &[u8]| {
        serde_json::to_vec(&serde_json::json!({
            "resourceType": "DocumentReference",
            "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": identifier},
            "status": "current",
            "type": {"coding": [{"system": "http://loinc.org", "code": "60591-5"}]},
            "subject": {"identifier": {"system": "urn:oid:1.2.3", "value": "P-1"}},
            "date": date,
            "content": [{"attachment": {
                "contentType": "application/pdf",
                "data": base64::engine::general_purpose::STANDARD.encode(pdf),
            }}],
        }))
        .unwrap()
    };
    let bad_date = "2026-13-45T10:00:00+01:00";

    let enforcing = start_with("enforce");
    let response = push(
        &enforcing,
        "/fhir/DocumentReference",
        reference(
            "urn:uuid:0b6e8d36-8a1e-4f7e-9d55-1a2b3c4d5e01",
            bad_date,
            pdf,
        ),
    )
    .await;
    assert_eq!(response.status(), 422);
    let outcome: Value = response.json().await.unwrap();
    assert_eq!(
        at(&issues(&outcome), "DocumentReference.date")["severity"],
        "error"
    );
    let good = push(
        &enforcing,
        "/fhir/DocumentReference",
        reference(
            "urn:uuid:0b6e8d36-8a1e-4f7e-9d55-1a2b3c4d5e02",
            "2026-12-01T10:00:00+01:00",
            pdf,
        ),
    )
    .await;
    assert_eq!(good.status(), 201);
    assert_eq!(good.headers()["x-validation-errors"], "0");

    let reporting = start_with("report");
    let response = push(
        &reporting,
        "/fhir/DocumentReference",
        reference(
            "urn:uuid:0b6e8d36-8a1e-4f7e-9d55-1a2b3c4d5e03",
            bad_date,
            pdf,
        ),
    )
    .await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["x-validation-errors"], "1");
    assert!(response.headers().contains_key("location"));
    let outcome: Value = response.json().await.unwrap();
    let found = issues(&outcome);
    assert_eq!(at(&found, "DocumentReference.date")["severity"], "error");
    assert!(
        found.iter().any(|i| i["diagnostics"]
            .as_str()
            .is_some_and(|d| d.contains("policy \"report\""))),
        "{found:#?}"
    );
    // Not a PDF: refused whatever the policy.
    let response = push(
        &reporting,
        "/fhir/DocumentReference",
        reference(
            "urn:uuid:0b6e8d36-8a1e-4f7e-9d55-1a2b3c4d5e04",
            "2026-12-01T10:00:00+01:00",
            b"<html>not a pdf</html>",
        ),
    )
    .await;
    assert_eq!(response.status(), 422);
}
