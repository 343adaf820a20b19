//! Restriction: the parts of the summary (and the prescription) a patient
//! hides are not released abroad, unless an emergency lifts them where the
//! country allows it.

use super::*;

/// A patient restricts one condition and the results section of their
/// summary, and one prescription. Abroad, the summary arrives as a new,
/// valid IPS document with its own id and identifier, without the condition,
/// the results and their observations, its narrative not naming them; the
/// same variant on every read; the original at home byte-exact. An
/// emergency lifts the summary restrictions where the country says so
/// (Luxembourg here), audited as such, but not the prescription one.
/// Lifting the restrictions restores the original.
#[tokio::test]
async fn a_patient_restriction_hides_parts_of_the_summary_abroad_unless_an_emergency_lifts_it() {
    let f = federation().await;
    let (lu_id, pushed) = push_lu_summary(&f).await;
    const CONDITION: &str = "urn:uuid:c64139e7-f02d-409c-bf34-75e8bf23bc80";
    let original: Value = serde_json::from_slice(&pushed).unwrap();
    let condition_display = original["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["fullUrl"] == CONDITION)
        .unwrap()["resource"]["code"]["coding"][0]["display"]
        .as_str()
        .unwrap()
        .to_owned();
    let condition =
        serde_json::json!({"name": "entry", "valueReference": {"reference": CONDITION}});
    let results = serde_json::json!({"name": "section", "valueCoding": {"system": "http://loinc.org", "code": "30954-2"}});
    set_restriction(&f, condition.clone(), true).await;
    set_restriction(&f, results.clone(), true).await;
    // The portal reads them back; nobody else may set or read them.
    let listed = json(
        get_at_lu(
            &f,
            NationalClientKind::PatientPortal,
            &about_lu_patient("$cross-border-restriction", ""),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(listed["parameter"].as_array().unwrap().len(), 2, "{listed}");
    let refused = post_at_lu(
        &f,
        NationalClientKind::EhrSystem,
        "/fhir/$cross-border-restriction",
        r#"{"resourceType":"Parameters"}"#,
    )
    .await;
    assert_eq!(refused.status().as_u16(), 403);
    // Two targets at once are refused with the reason.
    let both = post_at_lu(
        &f,
        NationalClientKind::PatientPortal,
        "/fhir/$cross-border-restriction",
        serde_json::to_vec(&serde_json::json!({"resourceType": "Parameters", "parameter": [
            {"name": "patient", "valueIdentifier": {"system": LU_SYSTEM, "value": LU_PATIENT}},
            {"name": "entry", "valueReference": {"reference": CONDITION}},
            {"name": "section", "valueCoding": {"system": "http://loinc.org", "code": "11450-4"}},
            {"name": "restrict", "valueBoolean": true},
        ]}))
        .unwrap(),
    )
    .await;
    let outcome = json(both, 422).await;
    assert!(outcome.to_string().contains("exactly one of"), "{outcome}");

    let doctor = &Caller::doctor(&f);
    let treatment = || doctor.assertion();
    let emergency =
        || doctor.assertion_at(PurposeOfUse::Emergency, time::OffsetDateTime::now_utc());
    let documents = about_lu_patient("DocumentReference", "");
    let list = || async { json(doctor.get(&documents).await, 200).await };
    let read = |url: String, token: String| async move {
        let response = doctor.get_with(&format!("/fhir/{url}"), &token).await;
        assert_eq!(response.status().as_u16(), 200);
        response.bytes().await.unwrap().to_vec()
    };
    let listed = list().await;
    assert_eq!(listed["total"], 1);
    let reference = &listed["entry"][0]["resource"];
    let url = reference["content"][0]["attachment"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(url, format!("Bundle/LU.{lu_id}"), "listed as the variant");
    let variant_bytes = read(url.clone(), treatment()).await;
    assert_eq!(
        reference["content"][0]["attachment"]["size"],
        variant_bytes.len()
    );
    let variant: Value = serde_json::from_slice(&variant_bytes).unwrap();
    assert_eq!(
        format!("Bundle/LU.{}", variant["id"].as_str().unwrap()),
        url
    );
    assert_eq!(
        reference["masterIdentifier"]["value"],
        variant["identifier"]["value"]
    );
    assert_ne!(variant["identifier"], original["identifier"]);
    let text = String::from_utf8(variant_bytes.clone()).unwrap();
    assert!(!text.contains("c64139e7"), "the condition is withheld");
    assert!(
        !text.contains(&condition_display),
        "the narrative does not name it"
    );
    assert_eq!(
        variant["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["resource"]["resourceType"] == "Observation")
            .count(),
        0,
        "the results section's observations are withheld"
    );
    // A valid IPS document: BE validates what LU answers against the IPS
    // Bundle profile before passing it on (a 502 otherwise).
    // Reading it again, or by the original's id, releases the same variant.
    assert_eq!(read(url.clone(), treatment()).await, variant_bytes);
    assert_eq!(
        read(format!("Bundle/LU.{lu_id}"), treatment()).await,
        variant_bytes
    );
    // The original at home is untouched.
    let at_home = get_at_lu(
        &f,
        NationalClientKind::EhrSystem,
        &format!("/fhir/Bundle/{lu_id}"),
    )
    .await;
    assert_eq!(at_home.status().as_u16(), 200);
    assert_eq!(
        Sha256::digest(at_home.bytes().await.unwrap()),
        Sha256::digest(&pushed)
    );

    // An emergency lifts the summary restrictions in Luxembourg: the
    // original, and the lifting on the patient's access log.
    assert_eq!(read(url.clone(), emergency()).await, pushed);
    let log = access_log(&f, "&_count=1").await;
    let newest = &log["entry"][0]["resource"];
    assert_eq!(newest["outcome"], "0");
    assert!(
        newest["outcomeDesc"]
            .as_str()
            .unwrap_or_default()
            .contains("restrictions lifted"),
        "{newest}"
    );

    // A restricted prescription is not listed abroad, even in an emergency
    // (Luxembourg lifts summary restrictions only).
    push_prescription(&f, lu_prescription(), 201).await;
    let prescription = lu_prescription_part();
    let pharmacy = Caller::pharmacy(&f, be_professional("2262"));
    let active = about_lu_patient("MedicationRequest", "&status=active");
    let pharmacy_lists = || async { json(pharmacy.get(&active).await, 200).await };
    // Retrieved once before the patient restricts it; then neither listed
    // nor dispensable: to the pharmacy it does not exist.
    assert_eq!(pharmacy_lists().await["total"], 1);
    set_restriction(&f, prescription.clone(), true).await;
    assert_eq!(pharmacy_lists().await["total"], 0);
    let mut dispense = vials_dispense("D-R1", 1);
    let refused = pharmacy
        .post(
            "/fhir/MedicationDispense",
            serde_json::to_vec(&dispense).unwrap(),
        )
        .await;
    let outcome = json(refused, 404).await;
    assert!(
        outcome.to_string().contains("no such prescription"),
        "{outcome}"
    );
    // A doctor in an emergency (the policy lets doctors list prescriptions
    // then) does not see it either.
    let listed = json(doctor.get_with(&active, &emergency()).await, 200).await;
    assert_eq!(listed["total"], 0);
    set_restriction(&f, prescription, false).await;
    assert_eq!(pharmacy_lists().await["total"], 1);
    // An opt-out of ePrescription towards Belgium refuses the list and the
    // dispense ("no consent"), not the summary; withdrawn, both work again.
    set_opt_out_of(&f, "eprescription", Some("BE"), true).await;
    let outcome = json(pharmacy.get(&active).await, 403).await;
    assert!(outcome.to_string().contains("no consent"), "{outcome}");
    dispense["identifier"] = serde_json::json!([{"system": "urn:oid:2.999.1", "value": "D-R2"}]);
    let refused = pharmacy
        .post(
            "/fhir/MedicationDispense",
            serde_json::to_vec(&dispense).unwrap(),
        )
        .await;
    assert_eq!(refused.status().as_u16(), 403);
    assert_eq!(list().await["total"], 1, "the summary is another service");
    set_opt_out_of(&f, "eprescription", Some("BE"), false).await;
    assert_eq!(pharmacy_lists().await["total"], 1);

    // Lifting the summary restrictions releases the original again.
    set_restriction(&f, condition, false).await;
    set_restriction(&f, results, false).await;
    let listed = list().await;
    assert_eq!(
        listed["entry"][0]["resource"]["content"][0]["attachment"]["url"],
        format!("Bundle/LU.{lu_id}")
    );
    assert_eq!(
        read(format!("Bundle/LU.{lu_id}"), treatment()).await,
        pushed
    );
    let lu_audit = f.lu.audit().await;
    assert!(lu_audit.first_broken.is_none());
    f.stop().await;
}
