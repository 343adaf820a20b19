//! Laboratory results abroad (issue 18), a service of the registry
//! (`deploy/config/services.toml`): LU's laboratory system pushes the HL7
//! Europe Laboratory 0.1.0 and MyHealth@EU laboratory example reports for
//! the LU patient; a doctor in Belgium lists them by LOINC 11502-2 and
//! retrieves each byte for byte over mutual TLS, validated at BE against
//! the laboratory profile; the patient's opt-out of the laboratory service
//! refuses them (and is on the patient's access log), not the summary; the
//! patient's restriction of one report withholds that one (neither listed
//! nor found abroad, audited at LU as withheld).

use super::*;

/// The example folders whose document Bundles are laboratory reports
/// (Bundle-eu-lab, Bundle-lab-myhealtheu).
const LAB_EXAMPLES: &[&str] = &["eu-lab-0.1.0", "myhealtheu-lab-0.0.1"];

/// Every laboratory report document of [`LAB_EXAMPLES`], its patient given
/// the LU test patient's identifier (as `ehds_loopback::patient_summary`
/// does for the IPS) and its `Bundle.identifier` made unique (examples
/// share one): `(file name, bytes)`.
fn lu_lab_reports() -> Vec<(String, Vec<u8>)> {
    let mut reports = Vec::new();
    for folder in LAB_EXAMPLES {
        let dir = conformance_dir().join("examples").join(folder);
        for path in ehds_test_support::files_with_extension(&dir, "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            let json: Value = serde_json::from_str(&text).unwrap();
            if json["resourceType"] != "Bundle" || json["type"] != "document" {
                continue;
            }
            let patient = json["entry"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| &e["resource"])
                .find(|r| r["resourceType"] == "Patient")
                .unwrap();
            let quoted = |v: &Value| format!("\"{}\"", v.as_str().unwrap());
            let name = format!("{folder}/{}", path.file_name().unwrap().to_str().unwrap());
            let unique = format!("\"lab-{}\"", reports.len());
            let text = text
                .replace(
                    &quoted(&patient["identifier"][0]["system"]),
                    &format!("\"{LU_SYSTEM}\""),
                )
                .replace(
                    &quoted(&patient["identifier"][0]["value"]),
                    &format!("\"{LU_PATIENT}\""),
                )
                .replace(&quoted(&json["identifier"]["value"]), &unique);
            reports.push((name, text.into_bytes()));
        }
    }
    assert_eq!(reports.len(), 5 + 1, "the laboratory examples moved");
    reports
}

/// `DocumentReference?patient.identifier=<LU patient>&type=<LOINC code>`.
fn documents_of_type(code: &str) -> String {
    about_lu_patient(
        "DocumentReference",
        &format!("&type=http://loinc.org|{code}"),
    )
}

#[tokio::test]
async fn a_doctor_abroad_retrieves_laboratory_reports_byte_for_byte_and_an_opt_out_refuses_them() {
    let f = federation().await;
    let reports = lu_lab_reports();
    let mut pushed = std::collections::BTreeMap::new();
    for (name, bytes) in &reports {
        let response = post_at_lu(
            &f,
            NationalClientKind::EhrSystem,
            "/fhir/Bundle",
            bytes.clone(),
        )
        .await;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        assert_eq!(status, 201, "{name}: {}", response.text().await.unwrap());
        let id = location.unwrap().rsplit('/').next().unwrap().to_owned();
        pushed.insert(format!("Bundle/LU.{id}"), bytes.clone());
    }
    // Idempotent, like summaries: the same bytes again are the stored one.
    let (name, first) = &reports[0];
    let again = post_at_lu(
        &f,
        NationalClientKind::EhrSystem,
        "/fhir/Bundle",
        first.clone(),
    )
    .await;
    assert_eq!(again.status().as_u16(), 200, "{name}");
    assert_eq!(again.bytes().await.unwrap(), &first[..]);

    let doctor = Caller::doctor(&f);
    // The laboratory list holds the reports, with their type; the summary
    // list none of them.
    let listed = json(doctor.get(&documents_of_type("11502-2")).await, 200).await;
    assert_eq!(listed["total"], reports.len(), "{listed}");
    let mut urls = Vec::new();
    for entry in listed["entry"].as_array().unwrap() {
        let reference = &entry["resource"];
        assert_eq!(reference["type"]["coding"][0]["code"], "11502-2");
        assert_eq!(
            reference["type"]["coding"][0]["display"],
            "Laboratory report"
        );
        urls.push(
            reference["content"][0]["attachment"]["url"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let summaries = json(doctor.get(&documents_of_type("60591-5")).await, 200).await;
    assert_eq!(summaries["total"], 0, "{summaries}");

    // Each retrieved through BE (validated there against the laboratory
    // profile): the bytes LU's laboratory pushed.
    for url in &urls {
        let response = doctor.get(&format!("/fhir/{url}")).await;
        let status = response.status().as_u16();
        let received = response.bytes().await.unwrap();
        assert_eq!(status, 200, "{url}: {}", String::from_utf8_lossy(&received));
        assert_eq!(
            Sha256::digest(&received),
            Sha256::digest(&pushed[url]),
            "{url} must arrive byte for byte"
        );
    }

    // The patient opts out of the laboratory service towards Belgium: the
    // list and every report are refused with "no consent"; the summary
    // service is not touched.
    set_opt_out_of(&f, "laboratory-report", Some("BE"), true).await;
    let refused = json(doctor.get(&documents_of_type("11502-2")).await, 403).await;
    assert!(refused.to_string().contains("no consent"), "{refused}");
    let first_url = &urls[0];
    let refused = json(doctor.get(&format!("/fhir/{first_url}")).await, 403).await;
    assert!(refused.to_string().contains("no consent"), "{refused}");
    assert_eq!(
        doctor
            .get(&documents_of_type("60591-5"))
            .await
            .status()
            .as_u16(),
        200
    );
    // The patient's access log shows the refusal.
    let log = access_log(&f, "&_count=3").await;
    let outcomes: Vec<&str> = log["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["outcome"].as_str().unwrap())
        .collect();
    assert!(outcomes.contains(&"4"), "{outcomes:?}");
    // Withdrawn: access again.
    set_opt_out_of(&f, "laboratory-report", Some("BE"), false).await;
    assert_eq!(
        doctor
            .get(&format!("/fhir/{first_url}"))
            .await
            .status()
            .as_u16(),
        200
    );

    // Both ends name the service in their records (issue 18: "audit both
    // ends"): BE, the country of treatment, records the list (from the
    // type asked) and each read (from the document answered) as
    // laboratory-report, as LU does.
    let patient = format!("{LU_SYSTEM}|{LU_PATIENT}");
    let lab = r#"{"type":"service","valueString":"laboratory-report"}"#;
    for (country, gateway) in [("BE", &f.be), ("LU", &f.lu)] {
        let events = gateway.audit_events_about(&patient).await;
        let named = events.iter().filter(|e| e.contains(lab)).count();
        assert!(
            named > urls.len(),
            "{country}: {named} of {} records name the laboratory service",
            events.len()
        );
    }

    let be_audit = f.be.audit().await;
    let lu_audit = f.lu.audit().await;
    assert!(be_audit.first_broken.is_none() && lu_audit.first_broken.is_none());
    f.stop().await;
}

/// A nurse may read the summary in an emergency but not laboratory
/// reports (the shipped access policy): refused by LU's policy.
#[tokio::test]
async fn laboratory_reports_are_asked_for_by_their_own_permission() {
    let f = federation().await;
    let nurse = Caller::new(
        &f,
        NationalClientKind::DoctorSystem,
        be_professional("2221"),
    );
    let token = nurse.assertion_at(PurposeOfUse::Emergency, time::OffsetDateTime::now_utc());
    let response = nurse.get_with(&documents_of_type("11502-2"), &token).await;
    assert_eq!(response.status().as_u16(), 403);
    let token = nurse.assertion_at(PurposeOfUse::Emergency, time::OffsetDateTime::now_utc());
    let response = nurse.get_with(&documents_of_type("60591-5"), &token).await;
    assert_eq!(response.status().as_u16(), 200);
    f.stop().await;
}

/// `Bundle.identifier` of a document as `(system, value)`.
fn identifier_of(document: &[u8]) -> (String, String) {
    let json: Value = serde_json::from_slice(document).unwrap();
    let identifier = &json["identifier"];
    (
        identifier["system"].as_str().unwrap().to_owned(),
        identifier["value"].as_str().unwrap().to_owned(),
    )
}

/// The patient restricts ONE laboratory report (by its identifier, on the
/// patient portal): abroad it is neither listed nor read — answered exactly
/// as a report that does not exist, an emergency included (Luxembourg lifts
/// the summary's restrictions only) — while the other reports cross as
/// before; LU's access log records the read as withheld. Lifted, the report
/// crosses byte for byte again.
#[tokio::test]
async fn a_restricted_laboratory_report_is_neither_listed_nor_read_abroad() {
    let f = federation().await;
    let reports = lu_lab_reports();
    let (restricted, kept) = (&reports[0].1, &reports[1].1);
    for bytes in [restricted, kept] {
        let response = post_at_lu(
            &f,
            NationalClientKind::EhrSystem,
            "/fhir/Bundle",
            bytes.clone(),
        )
        .await;
        assert_eq!(response.status().as_u16(), 201);
    }
    let doctor = Caller::doctor(&f);
    let listed_urls = || async {
        let listed = json(doctor.get(&documents_of_type("11502-2")).await, 200).await;
        let mut urls: Vec<String> = listed["entry"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|e| {
                e["resource"]["content"][0]["attachment"]["url"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(listed["total"], urls.len(), "{listed}");
        // The FHIR reports (a PDF original is read as Binary/…).
        urls.retain(|u| u.starts_with("Bundle/"));
        urls.sort();
        urls
    };
    // Which listed url is which report: by the bytes each one reads.
    let mut restricted_url = None;
    for url in listed_urls().await {
        let bytes = doctor
            .get(&format!("/fhir/{url}"))
            .await
            .bytes()
            .await
            .unwrap();
        if bytes == restricted[..] {
            restricted_url = Some(url);
        }
    }
    let restricted_url = restricted_url.expect("the report to restrict is listed");

    let (system, value) = identifier_of(restricted);
    let document = serde_json::json!({"name": "document",
        "valueIdentifier": {"system": system, "value": value}});
    let set = set_restriction(&f, document.clone(), true).await;
    assert!(set.to_string().contains("in force"), "{set}");
    let in_force = json(
        get_at_lu(
            &f,
            NationalClientKind::PatientPortal,
            &about_lu_patient("$cross-border-restriction", ""),
        )
        .await,
        200,
    )
    .await;
    assert!(
        in_force
            .to_string()
            .contains(r#"{"name":"kind","valueCode":"document"}"#),
        "{in_force}"
    );

    // Identification reads the Patient of the newest FHIR document that
    // may cross: not a PDF original (the newest here), not a restricted
    // report; with every FHIR document restricted, nobody is found.
    let pdf = ehds_test_support::minimal_pdf("Laboratory report (original)");
    let orcd = serde_json::json!({
        "resourceType": "DocumentReference",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:orcd-newest"},
        "status": "current",
        "type": {"coding": [{"system": "http://loinc.org", "code": "11502-2"}]},
        "subject": {"identifier": {"system": LU_SYSTEM, "value": LU_PATIENT}},
        "content": [{"attachment": {"contentType": "application/pdf",
            "data": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &pdf)}}],
    });
    let pushed = post_at_lu(
        &f,
        NationalClientKind::EhrSystem,
        "/fhir/DocumentReference",
        serde_json::to_vec(&orcd).unwrap(),
    )
    .await;
    assert_eq!(pushed.status().as_u16(), 201);
    let identified =
        || async { json(doctor.get(&lu_patient_search()).await, 200).await["total"].clone() };
    assert_eq!(identified().await, 1);
    let (kept_system, kept_value) = identifier_of(kept);
    let kept_document = serde_json::json!({"name": "document",
        "valueIdentifier": {"system": kept_system, "value": kept_value}});
    set_restriction(&f, kept_document.clone(), true).await;
    assert_eq!(identified().await, 0);
    set_restriction(&f, kept_document, false).await;
    assert_eq!(identified().await, 1);

    // Not listed; the other report is.
    let urls = listed_urls().await;
    assert_eq!(urls.len(), 1, "{urls:?}");
    assert!(!urls.contains(&restricted_url));
    let kept_read = doctor.get(&format!("/fhir/{}", urls[0])).await;
    assert_eq!(kept_read.status().as_u16(), 200);
    assert_eq!(kept_read.bytes().await.unwrap(), &kept[..]);

    // Read by its url: the answer a report that does not exist gets (the
    // same status, issue and eHDSI code; nothing says it was restricted).
    let unknown_url = "Bundle/LU.00000000-0000-0000-0000-000000000000";
    let withheld = json(doctor.get(&format!("/fhir/{restricted_url}")).await, 404).await;
    let unknown = json(doctor.get(&format!("/fhir/{unknown_url}")).await, 404).await;
    let without_id = |outcome: &Value, url: &str| {
        outcome
            .to_string()
            .replace(url.trim_start_matches("Bundle/LU."), "<id>")
    };
    assert_eq!(
        without_id(&withheld, &restricted_url),
        without_id(&unknown, unknown_url)
    );
    assert_eq!(
        withheld["issue"][0]["details"]["coding"][0]["code"],
        "ERROR_GENERIC_DOCUMENT_MISSING"
    );
    assert!(!withheld.to_string().contains("restrict"), "{withheld}");
    // An emergency does not lift it: Luxembourg lifts the summary's only.
    let emergency = doctor.assertion_at(PurposeOfUse::Emergency, time::OffsetDateTime::now_utc());
    let response = doctor
        .get_with(&format!("/fhir/{restricted_url}"), &emergency)
        .await;
    assert_eq!(response.status().as_u16(), 404);

    // LU's access log says why: withheld at the patient's request.
    let log = access_log(&f, "&_count=5").await;
    let withheld_records = log["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["resource"]["outcomeDesc"]
                .as_str()
                .is_some_and(|d| d.contains("withheld"))
        })
        .count();
    assert!(withheld_records >= 2, "{log}");

    // Lifted: listed and read byte for byte again.
    set_restriction(&f, document, false).await;
    assert!(listed_urls().await.contains(&restricted_url));
    let read = doctor.get(&format!("/fhir/{restricted_url}")).await;
    assert_eq!(read.status().as_u16(), 200);
    assert_eq!(
        Sha256::digest(read.bytes().await.unwrap()),
        Sha256::digest(restricted)
    );
    let lu_audit = f.lu.audit().await;
    assert!(lu_audit.first_broken.is_none());
    f.stop().await;
}
