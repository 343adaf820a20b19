//! The patient summary abroad: a doctor in Belgium retrieves the Luxembourg
//! patient's summary byte for byte with both sides auditing; no audit record,
//! no data; and `ehds-gateway demo` tells the whole journey.

use super::*;

#[tokio::test]
async fn a_doctor_abroad_retrieves_the_patient_summary_byte_for_byte_and_both_sides_audit() {
    let f = federation().await;
    let (lu_id, pushed) = push_lu_summary(&f).await;
    let doctor = Caller::doctor(&f);

    // 1. Identify the patient at LU through BE.
    let found = json(doctor.get(&lu_patient_search()).await, 200).await;
    assert_eq!(found["type"], "searchset");
    assert_eq!(found["total"], 1);
    assert_eq!(found["entry"][0]["resource"]["resourceType"], "Patient");
    assert_eq!(
        found["entry"][0]["resource"]["identifier"][0]["value"],
        LU_PATIENT
    );

    // 2. List the patient's summaries.
    let summaries = about_lu_patient("DocumentReference", "&type=http://loinc.org|60591-5");
    let listed = json(doctor.get(&summaries).await, 200).await;
    assert_eq!(listed["total"], 1);
    let url = listed["entry"][0]["resource"]["content"][0]["attachment"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(url, format!("Bundle/LU.{lu_id}"));

    // 3. Retrieve it: the bytes LU's hospital pushed.
    let response = doctor.get(&format!("/fhir/{url}")).await;
    assert_eq!(response.status().as_u16(), 200);
    let received = response.bytes().await.unwrap();
    assert_eq!(
        Sha256::digest(&received),
        Sha256::digest(&pushed),
        "the summary must arrive byte for byte"
    );
    let validated_before = || async {
        let metrics = metrics(
            &f.be,
            f.national_client("BE", NationalClientKind::EhrSystem),
        )
        .await;
        counter(&metrics, "ehds_peer_answers_validated_before_total").unwrap()
    };
    assert_eq!(
        validated_before().await,
        0,
        "first retrieval: validated at BE"
    );

    // 4. Retrieve it again (a new assertion: each is used once): the same
    // bytes, which BE validated on the first retrieval, are passed on
    // without validating them again (a changed answer would be validated:
    // the unit tests of `check_answer`).
    let again = doctor.get(&format!("/fhir/{url}")).await;
    assert_eq!(again.status().as_u16(), 200);
    assert_eq!(again.bytes().await.unwrap(), received);
    assert_eq!(validated_before().await, 1, "second retrieval: remembered");

    // Both sides recorded the four accesses in intact chains.
    let be_audit = f.be.audit().await;
    let lu_audit = f.lu.audit().await;
    assert!(be_audit.first_broken.is_none() && lu_audit.first_broken.is_none());
    assert_eq!(be_audit.records, 4);
    assert_eq!(lu_audit.records, 4);
    f.stop().await;
}

/// `ehds-gateway demo` tells the whole journey from the repository root.
#[test]
fn the_demo_shows_the_journey_the_refusals_and_intact_audit_trails() {
    let log_dir = ehds_test_support::ScratchDir::new("demo-log");
    let log_file = log_dir.path().join("demo.log");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ehds-gateway"))
        .args(["demo", "--log-file"])
        .arg(&log_file)
        .current_dir(repo_root())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let story = String::from_utf8_lossy(&output.stdout);
    // Issue 17: the story is read without log lines between its lines; the
    // gateways' logs (info and up) are in the file it names.
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        story.contains(&format!("logs go to {}", log_file.display())),
        "{story}"
    );
    let log = std::fs::read_to_string(&log_file).unwrap();
    assert!(log.contains("INFO"), "{log}");
    assert!(
        !story.contains(" INFO ") && !story.contains(" WARN "),
        "{story}"
    );
    assert!(
        output.status.success(),
        "{story}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "POST /fhir/Bundle -> 201 Created",
        "1 match(es): Martha DeLarosa",
        "SHA-256 identical to what the hospital pushed",
        "the laboratory: POST /fhir/Bundle -> 201 Created",
        "-> 1 laboratory report(s): Bundle/LU.",
        "SHA-256 identical to what the laboratory pushed",
        "the same assertion a second time -> 401",
        "-> 403 Forbidden",
        "-> 400 Bad Request (never left Belgium)",
        "the patient opts out of sharing the summary with Belgium -> 200",
        "Dr Peeters asks again -> 403",
        "the patient withdraws the opt-out -> 200 OK; Dr Peeters asks again -> 200 OK",
        "the patient hides the problem list from abroad -> 200 OK; Dr Peeters retrieves the summary -> 200 OK: a new document",
        "its problem section empty (unavailable), still a valid IPS",
        "the patient lifts the restriction -> 200 OK",
        "access log at Luxembourg",
        "a Luxembourg doctor prescribes cefuroxime, 21 vials -> 201 Created (active; remaining=21000)",
        "the pharmacy dispenses 7 vials -> 201 Created (prescription at home: partially-dispensed; remaining=14000)",
        "a retry) -> 200 OK (prescription at home: partially-dispensed; remaining=14000)",
        "NCP Belgium: 14 records, chain intact",
    ] {
        assert!(
            story.contains(expected),
            "missing {expected:?} in:\n{story}"
        );
    }
    // Luxembourg's 12 records, and Belgium's report of the replayed
    // assertion it refused (sent in the background: almost always there).
    assert!(
        story.contains("NCP Luxembourg: 13 records, chain intact")
            || story.contains("NCP Luxembourg: 12 records, chain intact"),
        "{story}"
    );
}

/// Fail closed: when LU cannot write the audit record of an access, the
/// summary is not released (the doctor gets a 502 from BE, no bytes).
#[tokio::test]
async fn no_audit_record_no_data() {
    let f = federation().await;
    let (lu_id, _) = push_lu_summary(&f).await;
    // Break LU's audit trail behind the gateway's back.
    let db = f.dir.path().join("lu.db");
    let mut connection = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        db.display()
    ))
    .await
    .unwrap();
    sqlx::query("DROP TABLE audit_events")
        .execute(&mut connection)
        .await
        .unwrap();
    let response = Caller::doctor(&f)
        .get(&format!("/fhir/Bundle/LU.{lu_id}"))
        .await;
    assert_eq!(response.status().as_u16(), 502);
    let body = response.text().await.unwrap();
    assert!(body.contains("OperationOutcome"), "{body}");
    assert!(!body.contains("DeLarosa"), "the summary leaked");
    f.stop().await;
}

/// `_elements` on the identification (search.html#elements; the NCPeH
/// API's data minimisation), through both gateways: LU answers the Patient
/// with only the elements asked for and those always returned (modifiers:
/// `active`), each exactly as the hospital wrote it, tagged `SUBSETTED`;
/// BE validates and passes it on. Anything else is a 400 naming
/// `_elements`, refused at BE before anything crosses.
#[tokio::test]
async fn a_doctor_abroad_identifies_the_patient_with_only_the_elements_asked_for() {
    let f = federation().await;
    let (_, pushed) = push_lu_summary(&f).await;
    let pushed_text = String::from_utf8(pushed).unwrap();
    let doctor = Caller::doctor(&f);
    let response = doctor
        .get(&format!(
            "{}&_elements=identifier,name",
            lu_patient_search()
        ))
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let body = response.text().await.unwrap();
    let found: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(found["total"], 1, "{found}");
    let patient = &found["entry"][0]["resource"];
    let mut elements: Vec<&str> = patient
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    elements.sort_unstable();
    assert_eq!(
        elements,
        ["active", "id", "identifier", "meta", "name", "resourceType"],
        "{patient}"
    );
    assert_eq!(patient["meta"]["tag"][0]["code"], "SUBSETTED");
    // Each kept element is the hospital's bytes (a JSON text found as is
    // in what was pushed).
    let original: Value = serde_json::from_str(&pushed_text).unwrap();
    let written = original["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r["resourceType"] == "Patient")
        .unwrap();
    for element in ["identifier", "name", "active"] {
        assert_eq!(patient[element], written[element], "{element}");
    }
    let identifier_at = body.find(r#""identifier""#).unwrap();
    let name_at = body.find(r#""name""#).unwrap();
    assert!(
        identifier_at < name_at,
        "the sender's order is kept: {body}"
    );
    let kept = &body[identifier_at..name_at];
    let kept = kept.trim_end_matches(',');
    assert!(pushed_text.contains(kept), "{kept} is not as written");
    assert!(
        !body.contains("telecom") && !body.contains("birthDate") && !body.contains("address"),
        "{body}"
    );

    // Anything else: 400 naming the parameter, decided at BE.
    let refused = json(
        doctor
            .get(&format!("{}&_elements=name,diagnosis", lu_patient_search()))
            .await,
        400,
    )
    .await;
    assert_eq!(
        refused["issue"][0]["expression"][0], "http._elements",
        "{refused}"
    );
    assert_eq!(
        refused["issue"][0]["details"]["coding"][0]["code"],
        "ERROR_UNKNOWN_FILTER"
    );
    f.stop().await;
}
