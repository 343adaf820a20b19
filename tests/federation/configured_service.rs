//! A service added by configuration alone (issue 18): both gateways'
//! configurations add a vaccination-record service (`[[services.service]]`:
//! its LOINC type, read under the ReadPatientSummary permission, no profile
//! beyond R4 core and the document Bundle rules); no code names it. LU's
//! hospital pushes such a document, a doctor in Belgium lists it by its
//! type and retrieves it byte for byte, and the patient's opt-out of that
//! service refuses it.

use super::*;

/// The service both gateways add.
const VACCINATION_RECORD: &str = r#"
[[services.service]]
name = "vaccination-record"
title = "Vaccination record"
permission = "ReadPatientSummary"
[[services.service.document_type]]
system = "http://loinc.org"
code = "11369-6"
display = "History of Immunization Narrative"
"#;

fn with_vaccination_record(config: &mut GatewayToml<'_>) {
    federation_settings(config);
    config.sections.push('\n');
    config.sections.push_str(VACCINATION_RECORD);
}

/// The LU patient's IPS example made a vaccination record: its
/// Composition's type LOINC 11369-6, its profile claims (which fix the IPS
/// type) left out, its own identifier.
fn lu_vaccination_record() -> Vec<u8> {
    let summary = loopback::patient_summary(&repo_root(), LU_SYSTEM, LU_PATIENT).unwrap();
    let mut json: Value = serde_json::from_slice(&summary).unwrap();
    json.as_object_mut().unwrap().remove("meta");
    json["identifier"]["value"] = "urn:uuid:6f7d1a52-0b8e-4d8c-9a77-3c1e5b2a9d10".into();
    for entry in json["entry"].as_array_mut().unwrap() {
        entry["resource"].as_object_mut().unwrap().remove("meta");
    }
    json["entry"][0]["resource"]["type"] = serde_json::json!({"coding": [{
        "system": "http://loinc.org", "code": "11369-6",
        "display": "History of Immunization Narrative"}]});
    json["entry"][0]["resource"]["title"] = "Vaccination record".into();
    serde_json::to_vec(&json).unwrap()
}

#[tokio::test]
async fn a_service_added_by_configuration_alone_crosses_the_border() {
    let f = TwoCountries::start("configured-service", with_vaccination_record).await;
    let record = lu_vaccination_record();
    let response = post_at_lu(
        &f,
        NationalClientKind::EhrSystem,
        "/fhir/Bundle",
        record.clone(),
    )
    .await;
    assert_eq!(
        response.status().as_u16(),
        201,
        "{}",
        response.text().await.unwrap()
    );

    let doctor = Caller::doctor(&f);
    let records = about_lu_patient("DocumentReference", "&type=http://loinc.org|11369-6");
    let listed = json(doctor.get(&records).await, 200).await;
    assert_eq!(listed["total"], 1, "{listed}");
    let reference = &listed["entry"][0]["resource"];
    assert_eq!(reference["type"]["coding"][0]["code"], "11369-6");
    let url = reference["content"][0]["attachment"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let summaries = about_lu_patient("DocumentReference", "&type=http://loinc.org|60591-5");
    assert_eq!(json(doctor.get(&summaries).await, 200).await["total"], 0);

    let response = doctor.get(&format!("/fhir/{url}")).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        Sha256::digest(response.bytes().await.unwrap()),
        Sha256::digest(&record),
        "the record must arrive byte for byte"
    );

    // The patient's opt-out names the configured service.
    set_opt_out_of(&f, "vaccination-record", Some("BE"), true).await;
    let refused = json(doctor.get(&format!("/fhir/{url}")).await, 403).await;
    assert!(refused.to_string().contains("no consent"), "{refused}");
    assert_eq!(
        doctor.get(&summaries).await.status().as_u16(),
        200,
        "another service"
    );
    f.stop().await;
}
