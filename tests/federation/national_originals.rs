//! PDF originals from the national FHIR server (issue 19; MyHealth@EU
//! Original Clinical Documents): Luxembourg's laboratory reports are on a
//! real FHIR server this project did not write (hfs, as in
//! `national_source.rs`), seeded through its REST API with the patient, a
//! PDF in a `Binary` listed by a DocumentReference, a PDF inline in a
//! DocumentReference, another patient's PDF and a PDF carrying JavaScript.
//! A doctor in Belgium finds the PDFs in the laboratory list
//! (`contentType: application/pdf`, `Binary/LU.<id>`, narrowed by the NCPeH
//! `contenttype` parameter), reads each byte for byte (as `application/pdf`
//! and as a FHIR Binary); another patient's PDF is not found, the PDF with
//! JavaScript is the national server's failure (502, nothing relayed), and
//! the patient's restriction of one PDF withholds it (not listed, not
//! found). Nothing is stored in LU's gateway.

use base64::Engine as _;

use super::national_source::{Hfs, OTHER_LU_PATIENT, patient_of, summary_for};
use super::*;

const PDF: &str = "application/pdf";
const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// LU's laboratory reports (PDF originals too) on the national server at
/// `base`.
fn laboratory_on(base: &str) -> String {
    format!(
        r#"
[[services.service]]
name = "laboratory-report"
title = "Laboratory report"
permission = "ReadLaboratoryReport"
pdf_original = true
source = "fhir"
[services.service.national_server]
base_url = "{base}"
timeout_secs = 10
chained_search = false
[[services.service.document_type]]
system = "http://loinc.org"
code = "11502-2"
display = "Laboratory report"
"#
    )
}

/// A laboratory report's DocumentReference on the national server, of
/// `Patient/<patient>`, identified by `identifier`, with `attachment`.
fn lab_reference(id: &str, patient: &str, identifier: &str, attachment: Value) -> Value {
    serde_json::json!({
        "resourceType": "DocumentReference",
        "id": id,
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": identifier},
        "status": "current",
        "type": {"coding": [{"system": "http://loinc.org", "code": "11502-2",
            "display": "Laboratory report"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "date": "2026-12-01T10:00:00Z",
        "content": [{"attachment": attachment}]
    })
}

#[tokio::test]
async fn a_doctor_abroad_reads_the_pdf_originals_the_national_fhir_server_holds() {
    let Some(hfs) = Hfs::start().await else {
        return;
    };
    let summary = summary_for("ps-lu-1", LU_PATIENT, "urn:uuid:orcd-national-ps");
    let others = summary_for("ps-other-1", OTHER_LU_PATIENT, "urn:uuid:orcd-other-ps");
    hfs.put(&patient_of(&summary, "lu-patient")).await;
    hfs.put(&patient_of(&others, "other-patient")).await;
    let in_binary = ehds_test_support::minimal_pdf("Laboratory report: haemoglobin 14.1 g/dL");
    let inline = ehds_test_support::minimal_pdf("Laboratory report: ferritin 80 ug/L");
    let others_pdf = ehds_test_support::minimal_pdf("Laboratory report of someone else");
    let with_javascript = String::from_utf8_lossy(&in_binary)
        .replace(
            "/Type /Catalog /Pages 2 0 R",
            "/Type /Catalog /Pages 2 0 R /OpenAction << /S /JavaScript /JS (app.alert(1)) >>",
        )
        .into_bytes();
    hfs.put(
        &serde_json::json!({"resourceType": "Binary", "id": "pdf-lab-1",
        "contentType": PDF, "data": BASE64.encode(&in_binary)}),
    )
    .await;
    hfs.put(&lab_reference(
        "dr-lab-1",
        "lu-patient",
        "urn:uuid:orcd-national-1",
        serde_json::json!({"contentType": PDF, "url": "Binary/pdf-lab-1",
            "size": in_binary.len()}),
    ))
    .await;
    hfs.put(&lab_reference(
        "dr-lab-2",
        "lu-patient",
        "urn:uuid:orcd-national-2",
        serde_json::json!({"contentType": PDF, "data": BASE64.encode(&inline)}),
    ))
    .await;
    hfs.put(&lab_reference(
        "dr-other",
        "other-patient",
        "urn:uuid:orcd-national-other",
        serde_json::json!({"contentType": PDF, "data": BASE64.encode(&others_pdf)}),
    ))
    .await;
    let f = TwoCountries::start("national-originals", {
        let laboratory = laboratory_on(&format!("{}/", hfs.base));
        move |config| {
            federation_settings(config);
            if config.country == "LU" {
                config.sections.push('\n');
                config.sections.push_str(&laboratory);
            }
        }
    })
    .await;
    let doctor = Caller::doctor(&f);

    // 1. Both PDFs listed, as PDF originals read by `Binary/LU.<id>`.
    let lab_list = about_lu_patient("DocumentReference", "&type=http://loinc.org|11502-2");
    let listed = json(doctor.get(&lab_list).await, 200).await;
    assert_eq!(listed["total"], 2, "{listed}");
    let mut urls: Vec<String> = listed["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let attachment = &e["resource"]["content"][0]["attachment"];
            assert_eq!(attachment["contentType"], PDF, "{listed}");
            attachment["url"].as_str().unwrap().to_owned()
        })
        .collect();
    // In the national server's order.
    urls.sort();
    assert_eq!(urls, ["Binary/LU.dr-lab-1", "Binary/LU.dr-lab-2"]);
    let in_binary_listed = listed["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"]["id"] == "dr-lab-1")
        .unwrap();
    assert_eq!(
        in_binary_listed["resource"]["content"][0]["attachment"]["size"],
        in_binary.len()
    );
    // The NCPeH `contenttype` parameter narrows the list.
    for (asked, total) in [(PDF, 2), ("application/fhir+json", 0)] {
        let narrowed = json(
            doctor
                .get(&format!(
                    "{lab_list}&contenttype={}",
                    asked.replace('+', "%2B")
                ))
                .await,
            200,
        )
        .await;
        assert_eq!(narrowed["total"], total, "{asked}: {narrowed}");
    }

    // 2. Each read byte for byte: the Binary's PDF, the inline one; as
    // `application/pdf` and as a FHIR Binary.
    for (url, pdf) in [
        ("Binary/LU.dr-lab-1", &in_binary),
        ("Binary/LU.dr-lab-2", &inline),
    ] {
        let raw = doctor.read(url, PDF).await;
        assert_eq!(raw.status().as_u16(), 200, "{url}");
        assert_eq!(raw.headers()["content-type"], PDF);
        assert_eq!(
            Sha256::digest(raw.bytes().await.unwrap()),
            Sha256::digest(pdf)
        );
        let binary = json(doctor.read(url, FHIR_JSON).await, 200).await;
        assert_eq!(binary["resourceType"], "Binary");
        assert_eq!(
            BASE64.decode(binary["data"].as_str().unwrap()).unwrap(),
            *pdf
        );
    }

    // 3. Another patient's PDF is, to this doctor, one that does not exist.
    let not_found = doctor.read("Binary/LU.dr-other", PDF).await;
    assert_eq!(not_found.status().as_u16(), 404);
    assert_eq!(
        doctor
            .read("Binary/LU.no-such", PDF)
            .await
            .status()
            .as_u16(),
        404
    );

    // 4. A PDF with active content on the national server is its failure:
    // 502, nothing relayed.
    hfs.put(&lab_reference(
        "dr-lab-js",
        "lu-patient",
        "urn:uuid:orcd-national-js",
        serde_json::json!({"contentType": PDF, "data": BASE64.encode(&with_javascript)}),
    ))
    .await;
    let refused = doctor.read("Binary/LU.dr-lab-js", PDF).await;
    assert_eq!(refused.status().as_u16(), 502);
    let refusal = refused.text().await.unwrap();
    assert!(!refusal.contains("%PDF"), "{refusal}");

    // 5. The patient restricts one PDF (its masterIdentifier): not listed,
    // not found; lifted, it crosses again.
    let this_pdf = serde_json::json!({"name": "document",
        "valueIdentifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:orcd-national-1"}});
    set_restriction(&f, this_pdf.clone(), true).await;
    let listed = json(doctor.get(&lab_list).await, 200).await;
    assert!(
        !listed.to_string().contains("Binary/LU.dr-lab-1"),
        "{listed}"
    );
    assert_eq!(
        doctor
            .read("Binary/LU.dr-lab-1", PDF)
            .await
            .status()
            .as_u16(),
        404
    );
    set_restriction(&f, this_pdf, false).await;
    assert_eq!(
        doctor
            .read("Binary/LU.dr-lab-1", PDF)
            .await
            .status()
            .as_u16(),
        200
    );

    // Nothing was stored in LU's gateway; both trails are unbroken and LU's
    // names the reads of Binary.
    let log = access_log(&f, "&_count=30").await;
    assert!(log.to_string().contains("Binary/dr-lab-1"), "{log}");
    let be_audit = f.be.audit().await;
    let lu_audit = f.lu.audit().await;
    assert!(be_audit.first_broken.is_none() && lu_audit.first_broken.is_none());
    let store = ehds_store::Store::open(&f.lu.config.store).await.unwrap();
    let key = format!("{LU_SYSTEM}|{LU_PATIENT}");
    assert!(
        store
            .documents_for_patient(&key, None)
            .await
            .unwrap()
            .is_empty()
    );
    store.close().await;
    f.stop().await;
}
