//! PDF originals abroad (issue 18; MyHealth@EU Original Clinical Documents,
//! OrCD): LU's hospital pushes the PDF of a laboratory report with its
//! metadata as a DocumentReference (`POST /fhir/DocumentReference`); PDFs
//! that are not PDFs, carry JavaScript or launch actions, or are too large
//! are refused with a located OperationOutcome and nothing is stored. A
//! doctor in Belgium finds the PDF in the laboratory list
//! (`contentType: application/pdf`, `Binary/LU.<id>`) beside the FHIR
//! reports and reads it byte for byte, as `application/pdf` or as a FHIR
//! Binary; the patient's opt-out of the laboratory service refuses it, and
//! their restriction of this one PDF withholds it (not listed, not found); the
//! exchange's `X-Correlation-ID` reaches LU's audit record; the NCPeH
//! search parameters (`date`, `contenttype`, `category`, `creation`) narrow
//! the list and refusals carry their eHDSI error code. A
//! service that takes PDF originals only, added by configuration alone,
//! carries them too, with its opt-out and restriction.

use base64::Engine as _;

use super::*;

const PDF: &str = "application/pdf";
const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A DocumentReference of the LU patient carrying `pdf` as `content_type`,
/// of LOINC `type_code`, identified by `identifier`.
fn document_reference(
    identifier: &str,
    type_code: &str,
    content_type: &str,
    pdf: &[u8],
) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "resourceType": "DocumentReference",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": identifier},
        "status": "current",
        "type": {"coding": [{"system": "http://loinc.org", "code": type_code}]},
        "subject": {"identifier": {"system": LU_SYSTEM, "value": LU_PATIENT}},
        "date": "2026-12-01T10:00:00+01:00",
        "description": "Laboratory report (original PDF)",
        "content": [{"attachment": {
            "contentType": content_type,
            "data": BASE64.encode(pdf),
            "size": pdf.len(),
        }}],
    }))
    .unwrap()
}

async fn push(f: &TwoCountries, body: Vec<u8>) -> reqwest::Response {
    post_at_lu(
        f,
        NationalClientKind::EhrSystem,
        "/fhir/DocumentReference",
        body,
    )
    .await
}

/// The refusal's OperationOutcome: its status and the issues' expressions.
async fn refused(response: reqwest::Response, status: u16) -> (Vec<String>, String) {
    let outcome = json(response, status).await;
    assert_eq!(outcome["resourceType"], "OperationOutcome", "{outcome}");
    let expressions = outcome["issue"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["expression"].as_array().cloned().unwrap_or_default())
        .map(|e| e.as_str().unwrap().to_owned())
        .collect();
    (expressions, outcome.to_string())
}

#[tokio::test]
async fn a_pdf_original_crosses_byte_for_byte_and_malicious_pdfs_are_refused() {
    let f = federation().await;
    let pdf = ehds_test_support::minimal_pdf("Laboratory report: haemoglobin 14.1 g/dL");
    let reference = document_reference("urn:uuid:orcd-lab-1", "11502-2", PDF, &pdf);

    let created = push(&f, reference.clone()).await;
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let listed = json(created, 201).await;
    assert!(location.starts_with("/fhir/Binary/"), "{location}");
    assert_eq!(listed["content"][0]["attachment"]["contentType"], PDF);
    let id = location.rsplit('/').next().unwrap().to_owned();
    // Idempotent by masterIdentifier.
    assert_eq!(push(&f, reference).await.status().as_u16(), 200);
    // The hospital reads its PDF back at home.
    let home = f
        .national_client("LU", NationalClientKind::EhrSystem)
        .get(f.lu.url(&location))
        .header("accept", PDF)
        .send()
        .await
        .unwrap();
    assert_eq!(home.status().as_u16(), 200);
    assert_eq!(home.bytes().await.unwrap(), &pdf[..]);

    // Refused, located, nothing stored.
    // (The binary comment line becomes U+FFFD: still a PDF.)
    let text = String::from_utf8_lossy(&pdf);
    let with_javascript = text
        .replace(
            "/Type /Catalog /Pages 2 0 R",
            "/Type /Catalog /Pages 2 0 R /OpenAction << /S /JavaScript /JS (app.alert(1)) >>",
        )
        .into_bytes();
    let launching = text
        .replace(
            "/Type /Catalog /Pages 2 0 R",
            "/Type /Catalog /Pages 2 0 R /OpenAction << /S /L#61unch /F (cmd.exe) >>",
        )
        .into_bytes();
    let data_at = "DocumentReference.content[0].attachment.data";
    for (what, body, status, at, says) in [
        (
            "a JavaScript action",
            document_reference("urn:uuid:orcd-js", "11502-2", PDF, &with_javascript),
            422,
            data_at,
            "/JavaScript",
        ),
        (
            "a launch action, its name escaped",
            document_reference("urn:uuid:orcd-launch", "11502-2", PDF, &launching),
            422,
            data_at,
            "/Launch",
        ),
        (
            "not a PDF (wrong magic)",
            document_reference(
                "urn:uuid:orcd-html",
                "11502-2",
                PDF,
                b"<html>%PDF-1.4</html>",
            ),
            422,
            data_at,
            "%PDF-1.",
        ),
        (
            "another media type",
            document_reference("urn:uuid:orcd-png", "11502-2", "image/png", &pdf),
            422,
            "DocumentReference.content[0].attachment.contentType",
            "application/pdf only",
        ),
        (
            "a service without PDF originals (the patient summary)",
            document_reference("urn:uuid:orcd-ps", "60591-5", PDF, &pdf),
            422,
            "DocumentReference.type",
            "does not accept PDF originals",
        ),
    ] {
        let (expressions, outcome) = refused(push(&f, body).await, status).await;
        assert!(expressions.iter().any(|e| e == at), "{what}: {outcome}");
        assert!(outcome.contains(says), "{what}: {outcome}");
    }
    // Over the size limit (10 MiB once decoded): 413.
    let mut oversize = pdf.clone();
    oversize.splice(
        pdf.len() - 6..pdf.len() - 6,
        std::iter::repeat_n(b' ', 10 * 1024 * 1024),
    );
    let (_, outcome) = refused(
        push(
            &f,
            document_reference("urn:uuid:orcd-big", "11502-2", PDF, &oversize),
        )
        .await,
        413,
    )
    .await;
    assert!(outcome.contains("too-long"), "{outcome}");

    // Abroad: the laboratory list shows the one PDF stored.
    let doctor = Caller::doctor(&f);
    let list = json(
        doctor
            .get(&about_lu_patient(
                "DocumentReference",
                "&type=http://loinc.org|11502-2",
            ))
            .await,
        200,
    )
    .await;
    assert_eq!(list["total"], 1, "{list}");
    let attachment = &list["entry"][0]["resource"]["content"][0]["attachment"];
    assert_eq!(attachment["contentType"], PDF);
    let url = attachment["url"].as_str().unwrap().to_owned();
    assert_eq!(url, format!("Binary/LU.{id}"));
    assert_eq!(attachment["size"], pdf.len());

    // The NCPeH search parameters narrow the list, at LU (the query is
    // relayed canonically).
    let category =
        "http://hl7.eu/fhir/health-data-api/CodeSystem/document-priority-category-eu-api";
    let today = time::OffsetDateTime::now_utc().date();
    for (rest, total) in [
        ("&contenttype=application/pdf".to_owned(), 1),
        ("&contenttype=application/fhir%2Bjson".to_owned(), 0),
        (format!("&date=ge{today}&date=le{today}"), 1),
        ("&date=lt2000".to_owned(), 0),
        (format!("&category={category}|Laboratory-Reports"), 1),
        (format!("&category={category}|Medical-Imaging"), 0),
        // The lists carry no attachment.creation.
        ("&creation=ge2000".to_owned(), 0),
    ] {
        let narrowed = json(
            doctor
                .get(&about_lu_patient(
                    "DocumentReference",
                    &format!("&type=http://loinc.org|11502-2{rest}"),
                ))
                .await,
            200,
        )
        .await;
        assert_eq!(narrowed["total"], total, "{rest}: {narrowed}");
    }
    // A malformed one is refused at BE, located, with its eHDSI code.
    let refusal = json(
        doctor
            .get(&about_lu_patient("DocumentReference", "&date=sa2025"))
            .await,
        400,
    )
    .await;
    assert_eq!(
        refusal["issue"][0]["expression"][0], "http.date",
        "{refusal}"
    );
    assert_eq!(
        refusal["issue"][0]["details"]["coding"][0]["code"],
        "ERROR_UNKNOWN_FILTER"
    );

    // Read through BE: the exact bytes as application/pdf; as a FHIR
    // Binary, the same bytes in `data`.
    let raw = doctor.read(&url, PDF).await;
    assert_eq!(raw.status().as_u16(), 200);
    assert_eq!(raw.headers()["content-type"], PDF);
    let received = raw.bytes().await.unwrap();
    assert_eq!(Sha256::digest(&received), Sha256::digest(&pdf));
    let binary = json(doctor.read(&url, FHIR_JSON).await, 200).await;
    assert_eq!(binary["resourceType"], "Binary");
    assert_eq!(binary["contentType"], PDF);
    assert_eq!(
        BASE64.decode(binary["data"].as_str().unwrap()).unwrap(),
        pdf
    );
    // A PDF original is not a Bundle.
    let not_a_bundle = doctor.get(&format!("/fhir/Bundle/LU.{id}")).await;
    assert_eq!(not_a_bundle.status().as_u16(), 404);

    // The patient's opt-out of laboratory results refuses it.
    set_opt_out_of(&f, "laboratory-report", Some("BE"), true).await;
    let refusal = json(doctor.read(&url, PDF).await, 403).await;
    assert!(refusal.to_string().contains("no consent"), "{refusal}");
    assert_eq!(
        refusal["issue"][0]["details"]["coding"][0]["code"], "ERROR_NO_CONSENT",
        "LU's refusal reaches the doctor with its eHDSI code"
    );
    set_opt_out_of(&f, "laboratory-report", Some("BE"), false).await;
    assert_eq!(doctor.read(&url, PDF).await.status().as_u16(), 200);

    // The patient restricts this one PDF (by its masterIdentifier): not
    // listed, and read as a PDF that does not exist; LU records the read as
    // withheld. Lifted, it crosses again.
    let this_pdf = serde_json::json!({"name": "document",
        "valueIdentifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:orcd-lab-1"}});
    set_restriction(&f, this_pdf.clone(), true).await;
    let lab_list = about_lu_patient("DocumentReference", "&type=http://loinc.org|11502-2");
    assert_eq!(json(doctor.get(&lab_list).await, 200).await["total"], 0);
    let withheld = json(doctor.read(&url, PDF).await, 404).await;
    assert_eq!(
        withheld["issue"][0]["details"]["coding"][0]["code"],
        "ERROR_GENERIC_DOCUMENT_MISSING"
    );
    assert!(!withheld.to_string().contains("restrict"), "{withheld}");
    let newest = access_log(&f, "&_count=1").await;
    assert!(
        newest["entry"][0]["resource"]["outcomeDesc"]
            .as_str()
            .is_some_and(|d| d.contains("withheld")),
        "{newest}"
    );
    set_restriction(&f, this_pdf, false).await;
    assert_eq!(json(doctor.get(&lab_list).await, 200).await["total"], 1);
    assert_eq!(doctor.read(&url, PDF).await.status().as_u16(), 200);

    // The doctor's system names the exchange (X-Correlation-ID): echoed,
    // carried to LU and written in LU's record of the read.
    let correlated = doctor
        .client
        .get(doctor.f.be.url(&format!("/fhir/{url}")))
        .bearer_auth(doctor.assertion())
        .header("accept", PDF)
        .header("x-correlation-id", "be-orcd-0001")
        .send()
        .await
        .unwrap();
    assert_eq!(correlated.status().as_u16(), 200);
    assert_eq!(correlated.headers()["x-correlation-id"], "be-orcd-0001");

    // Both ends audited every read, in unbroken chains; LU's record of the
    // read names Binary, and the correlated one its correlation id.
    let log = access_log(&f, "&_count=20").await;
    assert!(log.to_string().contains(&format!("Binary/{id}")), "{log}");
    assert!(log.to_string().contains("be-orcd-0001"), "{log}");
    // Each record names the service the data belongs to.
    assert!(
        log.to_string()
            .contains(r#"{"type":"service","valueString":"laboratory-report"}"#),
        "{log}"
    );
    let be_audit = f.be.audit().await;
    let lu_audit = f.lu.audit().await;
    assert!(be_audit.first_broken.is_none() && lu_audit.first_broken.is_none());
    f.stop().await;
}

/// A service for PDF originals only, added by both gateways'
/// configurations: electrocardiogram reports (LOINC 11524-6 "EKG study"),
/// read under the discharge report's permission.
const ECG_REPORT: &str = r#"
[[services.service]]
name = "orcd-ecg-report"
title = "Electrocardiogram report (PDF)"
permission = "ReadDischargeReport"
pdf_original = true
[[services.service.document_type]]
system = "http://loinc.org"
code = "11524-6"
display = "EKG study"
"#;

#[tokio::test]
async fn a_pdf_only_service_added_by_configuration_alone_crosses_the_border() {
    let f = TwoCountries::start("pdf-only-service", |config| {
        federation_settings(config);
        config.sections.push('\n');
        config.sections.push_str(ECG_REPORT);
    })
    .await;
    let pdf = ehds_test_support::minimal_pdf("ECG: sinus rhythm");
    let reference = document_reference("urn:uuid:orcd-ecg-1", "11524-6", PDF, &pdf);
    let created = push(&f, reference).await;
    assert_eq!(created.status().as_u16(), 201);
    let doctor = Caller::doctor(&f);
    let list = json(
        doctor
            .get(&about_lu_patient(
                "DocumentReference",
                "&type=http://loinc.org|11524-6",
            ))
            .await,
        200,
    )
    .await;
    assert_eq!(list["total"], 1, "{list}");
    let url = list["entry"][0]["resource"]["content"][0]["attachment"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let raw = doctor.read(&url, PDF).await;
    assert_eq!(raw.status().as_u16(), 200);
    assert_eq!(raw.bytes().await.unwrap(), &pdf[..]);
    // Restricted by the patient: neither listed nor read; lifted, read.
    let this_pdf = serde_json::json!({"name": "document",
        "valueIdentifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:orcd-ecg-1"}});
    set_restriction(&f, this_pdf.clone(), true).await;
    let ecg_list = about_lu_patient("DocumentReference", "&type=http://loinc.org|11524-6");
    assert_eq!(json(doctor.get(&ecg_list).await, 200).await["total"], 0);
    assert_eq!(doctor.read(&url, PDF).await.status().as_u16(), 404);
    set_restriction(&f, this_pdf, false).await;
    assert_eq!(doctor.read(&url, PDF).await.status().as_u16(), 200);
    // The opt-out of the configured service refuses it.
    set_opt_out_of(&f, "orcd-ecg-report", Some("BE"), true).await;
    assert_eq!(doctor.read(&url, PDF).await.status().as_u16(), 403);
    f.stop().await;
}

/// A transaction Bundle of the PDF original as a `Binary` and its
/// DocumentReference, the attachment's `url` naming the Binary's
/// `fullUrl` (http.html#transaction).
fn transaction(identifier: &str, pdf: &[u8], url: &str) -> Value {
    let mut reference: Value =
        serde_json::from_slice(&document_reference(identifier, "11502-2", PDF, pdf)).unwrap();
    let attachment = &mut reference["content"][0]["attachment"];
    attachment.as_object_mut().unwrap().remove("data");
    attachment["url"] = Value::from(url);
    serde_json::json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:5d3c0b1e-7f0a-4c1e-9e58-2b6f7c3a9d10",
                "resource": {"resourceType": "Binary", "contentType": PDF, "data": BASE64.encode(pdf)},
                "request": {"method": "POST", "url": "Binary"},
            },
            {
                "fullUrl": "urn:uuid:0b8e6f52-3a41-4d7b-8c2e-6a9f1d4e7b23",
                "resource": reference,
                "request": {"method": "POST", "url": "DocumentReference"},
            },
        ],
    })
}

/// The PDF original as a Binary in a transaction (`POST /fhir`, or `POST
/// /fhir/Bundle`) is stored as the inline form is: the PDF's bytes, read
/// abroad byte for byte; idempotent. Malicious forms — the attachment
/// naming something else than the Binary (an outside URL), the PDF in both
/// places, a Binary that is no PDF or carries JavaScript, another resource
/// slipped in, an entry that is not a create — are refused, located, and
/// nothing is stored. The size limit is the PDF's own (10 MiB decoded),
/// whatever its form: a ~5 MiB PDF fits, inline or as a Binary (R4 sets no
/// limit for base64Binary; the Java validator's 1 MB is for strings).
#[tokio::test]
async fn a_pdf_original_as_a_binary_in_a_transaction_and_a_5_mib_pdf_are_stored_as_sent() {
    let f = federation().await;
    let pdf = ehds_test_support::minimal_pdf("Laboratory report: potassium 4.1 mmol/L");
    let binary_url = "urn:uuid:5d3c0b1e-7f0a-4c1e-9e58-2b6f7c3a9d10";
    let post = |path: &'static str, body: &Value| {
        post_at_lu(
            &f,
            NationalClientKind::EhrSystem,
            path,
            serde_json::to_vec(body).unwrap(),
        )
    };
    let lab_list = about_lu_patient("DocumentReference", "&type=http://loinc.org|11502-2");
    let doctor = Caller::doctor(&f);

    // Refused, located; nothing stored.
    let with_javascript = String::from_utf8_lossy(&pdf)
        .replace(
            "/Type /Catalog /Pages 2 0 R",
            "/Type /Catalog /Pages 2 0 R /OpenAction << /S /JavaScript /JS (app.alert(1)) >>",
        )
        .into_bytes();
    let mut elsewhere = transaction("urn:uuid:tx-elsewhere", &pdf, "https://evil.example/x.pdf");
    let mut both = transaction("urn:uuid:tx-both", &pdf, binary_url);
    both["entry"][1]["resource"]["content"][0]["attachment"]["data"] =
        Value::from(BASE64.encode(&pdf));
    let mut not_a_pdf = transaction("urn:uuid:tx-html", b"<html>%PDF-1.4</html>", binary_url);
    let mut more = transaction("urn:uuid:tx-more", &pdf, binary_url);
    more["entry"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "fullUrl": "urn:uuid:9a7c4e21-5b3d-4f6a-8e1c-2d0b9f8a7c65",
            "resource": {"resourceType": "Patient", "gender": "female"},
            "request": {"method": "POST", "url": "Patient"},
        }));
    let mut deleting = transaction("urn:uuid:tx-delete", &pdf, binary_url);
    deleting["entry"][0]["request"] = serde_json::json!({"method": "DELETE", "url": "Binary/1"});
    let mut png = transaction("urn:uuid:tx-png", &pdf, binary_url);
    png["entry"][0]["resource"]["contentType"] = Value::from("image/png");
    elsewhere["entry"][1]["fullUrl"] = Value::from("urn:uuid:0b8e6f52-3a41-4d7b-8c2e-6a9f1d4e7b24");
    not_a_pdf["entry"][1]["resource"]["content"][0]["attachment"]
        .as_object_mut()
        .unwrap()
        .remove("size");
    for (what, body, at, says) in [
        (
            "an attachment naming an outside URL",
            elsewhere,
            "Bundle.entry[1].resource.content[0].attachment.url",
            "fetches nothing",
        ),
        (
            "the PDF in both places",
            both,
            "Bundle.entry[1].resource.content[0].attachment.data",
            "must be absent",
        ),
        (
            "a Binary that is not a PDF",
            not_a_pdf,
            "Bundle.entry[0].resource.data",
            "%PDF-1.",
        ),
        (
            "a JavaScript action",
            transaction("urn:uuid:tx-js", &with_javascript, binary_url),
            "Bundle.entry[0].resource.data",
            "/JavaScript",
        ),
        (
            "another resource slipped in",
            more,
            "Bundle.entry[2]",
            "nothing else",
        ),
        (
            "an entry that is not a create",
            deleting,
            "Bundle.entry[0].request.method",
            "POST",
        ),
        (
            "a Binary of another media type",
            png,
            "Bundle.entry[0].resource.contentType",
            "application/pdf",
        ),
    ] {
        let (expressions, outcome) = refused(post("/fhir", &body).await, 422).await;
        assert!(expressions.iter().any(|e| e == at), "{what}: {outcome}");
        assert!(outcome.contains(says), "{what}: {outcome}");
    }
    assert_eq!(json(doctor.get(&lab_list).await, 200).await["total"], 0);

    // Accepted: a transaction-response, 201 for each entry; the PDF read
    // abroad byte for byte; the same again is 200 (idempotent), also
    // through POST /fhir/Bundle.
    let body = transaction("urn:uuid:tx-lab-1", &pdf, binary_url);
    let answer = json(post("/fhir", &body).await, 200).await;
    assert_eq!(answer["type"], "transaction-response", "{answer}");
    assert_eq!(answer["entry"][0]["response"]["status"], "201 Created");
    assert_eq!(answer["entry"][1]["response"]["status"], "201 Created");
    let location = answer["entry"][0]["response"]["location"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        answer["entry"][1]["resource"]["content"][0]["attachment"]["url"],
        location
    );
    let again = json(post("/fhir/Bundle", &body).await, 200).await;
    assert_eq!(again["entry"][0]["response"]["status"], "200 OK");
    let list = json(doctor.get(&lab_list).await, 200).await;
    assert_eq!(list["total"], 1, "{list}");
    let url = list["entry"][0]["resource"]["content"][0]["attachment"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(url, location.replacen("Binary/", "Binary/LU.", 1));
    let raw = doctor.read(&url, PDF).await;
    assert_eq!(raw.status().as_u16(), 200);
    assert_eq!(raw.bytes().await.unwrap(), &pdf[..]);

    // ~5 MiB: accepted inline and as a Binary, read back byte for byte.
    let mut large = pdf.clone();
    large.splice(
        pdf.len() - 6..pdf.len() - 6,
        std::iter::repeat_n(b' ', 5 * 1024 * 1024),
    );
    let inline = push(
        &f,
        document_reference("urn:uuid:orcd-5mib", "11502-2", PDF, &large),
    )
    .await;
    let location = inline.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(
        inline.status().as_u16(),
        201,
        "{}",
        inline.text().await.unwrap()
    );
    let home = f
        .national_client("LU", NationalClientKind::EhrSystem)
        .get(f.lu.url(&location))
        .header("accept", PDF)
        .send()
        .await
        .unwrap();
    assert_eq!(
        Sha256::digest(home.bytes().await.unwrap()),
        Sha256::digest(&large)
    );
    let as_binary = json(
        post(
            "/fhir",
            &transaction("urn:uuid:tx-5mib", &large, binary_url),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(as_binary["entry"][0]["response"]["status"], "201 Created");
    // Over 10 MiB as a Binary: 413, nothing stored.
    let mut oversize = pdf.clone();
    oversize.splice(
        pdf.len() - 6..pdf.len() - 6,
        std::iter::repeat_n(b' ', 10 * 1024 * 1024),
    );
    let (_, outcome) = refused(
        post(
            "/fhir",
            &transaction("urn:uuid:tx-big", &oversize, binary_url),
        )
        .await,
        413,
    )
    .await;
    assert!(outcome.contains("too-long"), "{outcome}");
    assert_eq!(json(doctor.get(&lab_list).await, 200).await["total"], 3);
    f.stop().await;
}
