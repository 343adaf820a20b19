//! ePrescription from the national FHIR server (issue 19): Luxembourg's
//! ePrescription service is on `source = "fhir"`, answered by a real FHIR
//! server this project did not write (the Helios FHIR Server, `hfs`, as in
//! `national_source`), seeded through its own REST API with the HL7 Europe
//! MPD example prescription. A pharmacy in Belgium lists the visitor's
//! prescriptions (every page of the national search followed, up to the
//! configured bound, then a warning that the list is incomplete), reads
//! one byte for byte as the national server holds it, is refused another
//! patient's, sees the patient's restriction and opt-out applied, and
//! dispenses: the MedicationDispense is written to the national server
//! (read back from hfs directly), once whatever the retries, and the
//! prescription's status as the national server then holds it is
//! answered. A national server answering another patient's prescriptions
//! is refused whole (502, audited, nothing relayed).

use super::national_source::{Hfs, OTHER_LU_PATIENT, patient_of, summary_for};
use super::*;

/// Both gateways, LU's ePrescription service on the national server at
/// `base` (`server`: more of its settings), as the harness puts a shipped
/// service there.
async fn with_national_eprescription(base: &str, server: &str) -> TwoCountries {
    let (base, server) = (base.to_owned(), server.to_owned());
    TwoCountries::start("national-eprescription", move |config| {
        federation_settings(config);
        if config.country == "LU" {
            config
                .answer_from_national_server("eprescription", &base, &server)
                .unwrap();
        }
    })
    .await
}

/// The MPD example prescription on the national server: id `id`,
/// identifier `value` (of [`PRESCRIPTION_SYSTEM`]), about `Patient/<patient>`,
/// with `status`.
fn national_prescription(id: &str, value: &str, patient: &str, status: &str) -> Value {
    let mut json: Value = serde_json::from_slice(&lu_prescription()).unwrap();
    json["id"] = id.into();
    json["identifier"][0]["value"] = value.into();
    json["subject"] = serde_json::json!({"reference": format!("Patient/{patient}")});
    json["status"] = status.into();
    json
}

/// The search set's `match` entries' resources.
fn matched(set: &Value) -> Vec<&Value> {
    set["entry"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|e| e["search"]["mode"] == "match")
                .map(|e| &e["resource"])
                .collect()
        })
        .unwrap_or_default()
}

/// The search set's `outcome` entries (warnings about the search).
fn outcomes(set: &Value) -> Vec<&Value> {
    set["entry"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|e| e["search"]["mode"] == "outcome")
                .map(|e| &e["resource"])
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_pharmacy_abroad_lists_reads_and_dispenses_prescriptions_held_by_the_national_fhir_server()
 {
    let Some(hfs) = Hfs::start().await else {
        return;
    };
    // The LU patient and another LU patient, as the national server holds
    // them; the LU patient's prescriptions 10-123EP and 10-124EP (active)
    // and 10-125EP to 10-127EP (completed), the other patient's 10-999EP.
    let summary = summary_for("ps-lu-1", LU_PATIENT, "urn:uuid:1");
    hfs.put(&patient_of(&summary, "lu-patient")).await;
    let others = summary_for("ps-other-1", OTHER_LU_PATIENT, "urn:uuid:2");
    hfs.put(&patient_of(&others, "other-patient")).await;
    for (id, value, patient, status) in [
        ("mr-1", "10-123EP", "lu-patient", "active"),
        ("mr-2", "10-124EP", "lu-patient", "active"),
        ("mr-3", "10-125EP", "lu-patient", "completed"),
        ("mr-4", "10-126EP", "lu-patient", "completed"),
        ("mr-5", "10-127EP", "lu-patient", "completed"),
        ("mr-other", "10-999EP", "other-patient", "active"),
    ] {
        hfs.put(&national_prescription(id, value, patient, status))
            .await;
    }
    // One result a page, three pages at most: the two active ones are
    // listed whole, the five of both statuses are not.
    let f = with_national_eprescription(&format!("{}/", hfs.base), "page_size = 1\nmax_pages = 3")
        .await;
    let mut pharmacist = pharmacist_of("BE-PHARM-7");
    pharmacist.professional.organisation.name = "Pharmacie du Parc".into();
    let pharmacy = Caller::pharmacy(&f, pharmacist.clone());

    // 1. The list: the two active prescriptions, page by page, each as
    // the national server holds it, with the list metadata.
    let active = about_lu_patient("MedicationRequest", "&status=active");
    let listed = json(pharmacy.get(&active).await, 200).await;
    assert_eq!(listed["total"], 2, "{listed}");
    assert!(outcomes(&listed).is_empty(), "complete: {listed}");
    let national: Value = serde_json::from_slice(&hfs.get("MedicationRequest/mr-1").await).unwrap();
    let first = matched(&listed)
        .into_iter()
        .find(|r| r["id"] == "mr-1")
        .unwrap()
        .clone();
    assert_eq!(first, national, "as the national server holds it");
    let entry = listed["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"]["id"] == "mr-1")
        .unwrap();
    let metadata = entry["search"]["extension"][0]["extension"].to_string();
    assert!(metadata.contains(r#""valueBoolean":true"#), "{metadata}");
    // As the store lists it: the quantity in the prescribed unit's code.
    assert!(metadata.contains("21 15060000 prescribed"), "{metadata}");
    assert!(!metadata.contains("10-999EP") && !listed.to_string().contains("10-999EP"));

    // The same prescriptions as the service's DocumentReference list.
    let documents = about_lu_patient("DocumentReference", "&type=http://loinc.org|57833-6");
    let listed_documents = json(pharmacy.get(&documents).await, 200).await;
    let mut urls: Vec<String> = matched(&listed_documents)
        .iter()
        .map(|r| {
            r["content"][0]["attachment"]["url"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    urls.sort();
    assert_eq!(
        urls,
        ["MedicationRequest/LU.mr-1", "MedicationRequest/LU.mr-2"],
        "{listed_documents}"
    );

    // 2. More than three pages: what was found, and a warning that the
    // list is incomplete.
    let all = about_lu_patient("MedicationRequest", "&status=active,completed");
    let listed = json(pharmacy.get(&all).await, 200).await;
    assert_eq!(matched(&listed).len(), 3, "{listed}");
    assert_eq!(listed["total"], 3, "{listed}");
    let warnings = outcomes(&listed);
    assert_eq!(warnings.len(), 1, "{listed}");
    assert_eq!(warnings[0]["issue"][0]["severity"], "warning");
    assert_eq!(warnings[0]["issue"][0]["code"], "incomplete");

    // 3. Read: the bytes the national server sent, through both gateways.
    let response = pharmacy.get("/fhir/MedicationRequest/LU.mr-1").await;
    let status = response.status().as_u16();
    let received = response.bytes().await.unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&received));
    assert_eq!(
        Sha256::digest(&received),
        Sha256::digest(hfs.get("MedicationRequest/mr-1").await),
        "the prescription must arrive as the national server sent it"
    );

    // 4. Another patient's prescription under this patient's assertion:
    // not found, audited, nothing of it relayed.
    let records = f.lu.audit().await.records;
    let other = pharmacy.get("/fhir/MedicationRequest/LU.mr-other").await;
    assert_eq!(other.status().as_u16(), 404);
    let body = other.text().await.unwrap();
    assert!(!body.contains(OTHER_LU_PATIENT) && !body.contains("10-999EP"));
    assert_eq!(f.lu.audit().await.records, records + 1);
    json(
        pharmacy.get("/fhir/MedicationRequest/LU.mr-nowhere").await,
        404,
    )
    .await;

    // 5. The patient restricts 10-123EP: absent from the list, not found.
    set_restriction(&f, lu_prescription_part(), true).await;
    let listed = json(pharmacy.get(&active).await, 200).await;
    let ids: Vec<_> = matched(&listed).iter().map(|r| r["id"].clone()).collect();
    assert_eq!(ids, vec![Value::from("mr-2")], "{listed}");
    json(pharmacy.get("/fhir/MedicationRequest/LU.mr-1").await, 404).await;
    set_restriction(&f, lu_prescription_part(), false).await;

    // 6. The dispense is written to the national server, once; the answer
    // carries the prescription's status as the national server holds it.
    let dispense = serde_json::to_vec(&vials_dispense("D-N1", 5)).unwrap();
    let written = send_dispense(&f, &pharmacist, dispense.clone()).await;
    let status = written.status().as_u16();
    let state = written
        .headers()
        .get("x-prescription-state")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = written.text().await.unwrap();
    assert_eq!(status, 201, "{body}");
    assert_eq!(state.as_deref(), Some("active"));
    let stored = |body: Vec<u8>| -> Vec<Value> {
        let set: Value = serde_json::from_slice(&body).unwrap();
        matched(&set).into_iter().cloned().collect()
    };
    let on_national = stored(
        hfs.get("MedicationDispense?identifier=urn:oid:2.999.1%7CD-N1")
            .await,
    );
    assert_eq!(on_national.len(), 1, "written to the national server");
    assert_eq!(on_national[0]["quantity"]["value"], 5);
    assert_eq!(
        on_national[0]["authorizingPrescription"][0]["identifier"]["value"],
        "10-123EP"
    );
    let retried = send_dispense(&f, &pharmacist, dispense).await;
    assert_eq!(
        retried.status().as_u16(),
        200,
        "sent again: found, not written"
    );
    assert_eq!(
        stored(
            hfs.get("MedicationDispense?identifier=urn:oid:2.999.1%7CD-N1")
                .await
        )
        .len(),
        1,
        "written once"
    );
    // The pharmacy cancels its dispense, sent again as entered-in-error
    // (as at home): the dispense on the national server is entered in
    // error, once; the national service gives the quantity back.
    let mut cancel = vials_dispense("D-N1", 5);
    cancel["status"] = "entered-in-error".into();
    let cancel = serde_json::to_vec(&cancel).unwrap();
    // Another performer's cancel is no cancel of this dispense.
    let mut elsewhere: Value = serde_json::from_slice(&cancel).unwrap();
    elsewhere["performer"][0]["actor"]["reference"] = "PractitionerRole/someone-else".into();
    json(
        send_dispense(&f, &pharmacist, serde_json::to_vec(&elsewhere).unwrap()).await,
        404,
    )
    .await;
    for _ in 0..2 {
        let cancelled = send_dispense(&f, &pharmacist, cancel.clone()).await;
        let state = cancelled.headers().get("x-prescription-state").cloned();
        let outcome = json(cancelled, 200).await;
        assert!(outcome.to_string().contains("cancelled"), "{outcome}");
        assert_eq!(state.unwrap(), "active");
        let on_national = stored(
            hfs.get("MedicationDispense?identifier=urn:oid:2.999.1%7CD-N1")
                .await,
        );
        assert_eq!(on_national.len(), 1, "the same dispense, updated");
        assert_eq!(on_national[0]["status"], "entered-in-error");
    }
    // A dispense the national server never had: not found.
    let mut unknown: Value = serde_json::from_slice(&cancel).unwrap();
    unknown["identifier"][0]["value"] = "D-NOWHERE".into();
    json(
        send_dispense(&f, &pharmacist, serde_json::to_vec(&unknown).unwrap()).await,
        404,
    )
    .await;
    // The national ePrescription service completes the prescription: the
    // dispense sent again is found (200) with the status the national
    // server now holds; a new one is refused with it.
    hfs.put(&national_prescription(
        "mr-1",
        "10-123EP",
        "lu-patient",
        "completed",
    ))
    .await;
    let again = send_dispense(
        &f,
        &pharmacist,
        serde_json::to_vec(&vials_dispense("D-N1", 5)).unwrap(),
    )
    .await;
    assert_eq!(again.status().as_u16(), 200);
    assert_eq!(again.headers()["x-prescription-state"], "completed");
    let refused = json(
        send_dispense(
            &f,
            &pharmacist,
            serde_json::to_vec(&vials_dispense("D-N2", 1)).unwrap(),
        )
        .await,
        409,
    )
    .await;
    assert!(refused.to_string().contains("completed"), "{refused}");
    // Another patient's prescription is no prescription of this one.
    let mut stranger = vials_dispense("D-N3", 1);
    stranger["authorizingPrescription"][0]["identifier"]["value"] = "10-999EP".into();
    let response = send_dispense(&f, &pharmacist, serde_json::to_vec(&stranger).unwrap()).await;
    assert_eq!(response.status().as_u16(), 404);
    assert!(
        stored(
            hfs.get("MedicationDispense?identifier=urn:oid:2.999.1%7CD-N3")
                .await
        )
        .is_empty(),
        "nothing written"
    );

    // 7. Opt-out: refused before the national server is asked.
    set_opt_out_of(&f, "eprescription", Some("BE"), true).await;
    let refused = json(pharmacy.get(&active).await, 403).await;
    assert!(refused.to_string().contains("no consent"), "{refused}");

    let lu_audit = f.lu.audit().await;
    assert!(lu_audit.first_broken.is_none());
    f.stop().await;
}

/// A national server that answers every request with a search set of
/// `prescription` (plain HTTP/1.1 on loopback, one request per
/// connection).
async fn answering_with(prescription: Value) -> (u16, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let body = serde_json::json!({"resourceType": "Bundle", "type": "searchset", "total": 1,
        "entry": [{"resource": prescription, "search": {"mode": "match"}}]})
    .to_string();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let body = body.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: {FHIR_JSON}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (port, task)
}

/// A national server answering with another patient's prescription.
async fn answering_another_patients_prescription() -> (u16, tokio::task::JoinHandle<()>) {
    let mut prescription: Value = serde_json::from_slice(&lu_prescription()).unwrap();
    prescription["id"] = "mr-other".into();
    prescription["subject"] =
        serde_json::json!({"identifier": {"system": LU_SYSTEM, "value": OTHER_LU_PATIENT}});
    answering_with(prescription).await
}

#[tokio::test]
async fn a_national_prescription_a_pharmacy_could_not_use_is_the_national_servers_fault() {
    // The patient's own prescription, without the prescribed quantity: a
    // pushed one would be refused (422); from the national server, 502.
    let mut prescription: Value = serde_json::from_slice(&lu_prescription()).unwrap();
    prescription["id"] = "mr-1".into();
    prescription
        .as_object_mut()
        .unwrap()
        .remove("dispenseRequest");
    let (port, server) = answering_with(prescription).await;
    let f = with_national_eprescription(&format!("http://127.0.0.1:{port}/"), "").await;
    let records = f.lu.audit().await.records;
    let outcome = json(
        f.federation_client(f.pki.ncp_client("BE"))
            .get(f.lu.federation_url(&about_lu_patient("MedicationRequest", "")))
            .bearer_auth(Caller::pharmacy(&f, pharmacist_of("BE-PHARM-8")).assertion())
            .send()
            .await
            .unwrap(),
        502,
    )
    .await;
    assert!(
        outcome.to_string().contains("prescribed quantity"),
        "the reason, at its element: {outcome}"
    );
    assert_eq!(f.lu.audit().await.records, records + 1, "audited once");
    server.abort();
    f.stop().await;
}

#[tokio::test]
async fn a_national_server_listing_another_patients_prescription_is_refused_whole() {
    let (port, server) = answering_another_patients_prescription().await;
    let f = with_national_eprescription(&format!("http://127.0.0.1:{port}/"), "").await;
    let pharmacy = Caller::pharmacy(&f, pharmacist_of("BE-PHARM-8"));
    let records = f.lu.audit().await.records;
    let response = pharmacy
        .get(&about_lu_patient("MedicationRequest", ""))
        .await;
    assert_eq!(response.status().as_u16(), 502);
    let body = response.text().await.unwrap();
    assert!(
        !body.contains(OTHER_LU_PATIENT) && !body.contains("mr-other"),
        "{body}"
    );
    assert_eq!(f.lu.audit().await.records, records + 1, "audited once");
    // At LU, the refusal names the national server's fault.
    let outcome = json(
        f.federation_client(f.pki.ncp_client("BE"))
            .get(f.lu.federation_url(&about_lu_patient("MedicationRequest", "")))
            .bearer_auth(Caller::pharmacy(&f, pharmacist_of("BE-PHARM-8")).assertion())
            .send()
            .await
            .unwrap(),
        502,
    )
    .await;
    assert!(
        diagnostics(&outcome).contains("another patient"),
        "{outcome}"
    );
    server.abort();
    f.stop().await;
}

#[tokio::test]
async fn a_dispense_for_a_national_server_that_is_down_is_its_failure_audited_once() {
    // Nobody listens there.
    let dead = format!("http://127.0.0.1:{}/", loopback::free_port().unwrap());
    let f = with_national_eprescription(&dead, "breaker_failures = 100").await;
    let pharmacist = pharmacist_of("BE-PHARM-9");
    let records = f.lu.audit().await.records;
    let at_lu = f
        .federation_client(f.pki.ncp_client("BE"))
        .post(f.lu.federation_url("/fhir/MedicationDispense"))
        .header("content-type", FHIR_JSON)
        .bearer_auth(Caller::pharmacy(&f, pharmacist.clone()).assertion())
        .body(serde_json::to_vec(&vials_dispense("D-X1", 1)).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(at_lu.status().as_u16(), 503);
    assert!(at_lu.headers().contains_key("retry-after"));
    let outcome: Value = serde_json::from_slice(&at_lu.bytes().await.unwrap()).unwrap();
    assert!(diagnostics(&outcome).contains("unavailable"), "{outcome}");
    assert_eq!(f.lu.audit().await.records, records + 1, "audited once");
    // Through BE, the pharmacy gets a refusal, nothing written anywhere.
    let response = send_dispense(
        &f,
        &pharmacist,
        serde_json::to_vec(&vials_dispense("D-X2", 1)).unwrap(),
    )
    .await;
    assert!(response.status().is_server_error(), "{}", response.status());
    assert_eq!(f.lu.audit().await.records, records + 2);
    f.stop().await;
}

/// A national ePrescription server on loopback holding the LU patient's
/// prescription 10-123EP (`MedicationRequest/mr-1`) and the dispense D-N1
/// written back to it earlier (`held`): it answers the searches by
/// identifier, the read, and the conditional update of the dispense, whose
/// bodies it records (plain HTTP/1.1, one request per connection).
struct HoldingDispense {
    port: u16,
    held: Arc<std::sync::Mutex<Value>>,
    updates: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl HoldingDispense {
    async fn start() -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut prescription: Value = serde_json::from_slice(&lu_prescription()).unwrap();
        prescription["id"] = "mr-1".into();
        let mut dispense = vials_dispense("D-N1", 5);
        dispense["id"] = "md-1".into();
        let held = Arc::new(std::sync::Mutex::new(dispense));
        let updates = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (shared, recorded) = (Arc::clone(&held), Arc::clone(&updates));
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                let head_end = loop {
                    if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                        break end + 4;
                    }
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => break 0,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                };
                if head_end == 0 {
                    continue;
                }
                let head = String::from_utf8_lossy(&request[..head_end]).to_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                while request.len() < head_end + length {
                    let n = stream.read(&mut buffer).await.unwrap();
                    request.extend_from_slice(&buffer[..n]);
                }
                let body = request[head_end..].to_vec();
                let line = head.lines().next().unwrap_or_default().to_owned();
                let set = |resources: Vec<Value>| {
                    serde_json::json!({"resourceType": "Bundle", "type": "searchset",
                        "total": resources.len(),
                        "entry": resources.into_iter()
                            .map(|r| serde_json::json!({"resource": r, "search": {"mode": "match"}}))
                            .collect::<Vec<_>>()})
                    .to_string()
                    .replace(",\"entry\":[]", "")
                };
                let (status, answer) = if line.starts_with("put /medicationdispense?") {
                    recorded.lock().unwrap().push(body.clone());
                    let mut updated: Value = serde_json::from_slice(&body).unwrap();
                    updated["id"] = "md-1".into();
                    *shared.lock().unwrap() = updated.clone();
                    ("200 OK", updated.to_string())
                } else if line.starts_with("get /medicationdispense?") {
                    let held = shared.lock().unwrap().clone();
                    let found = if line.contains("d-n1") {
                        vec![held]
                    } else {
                        vec![]
                    };
                    ("200 OK", set(found))
                } else if line.starts_with("get /medicationrequest?") {
                    ("200 OK", set(vec![prescription.clone()]))
                } else if line.starts_with("get /medicationrequest/mr-1 ") {
                    ("200 OK", prescription.to_string())
                } else {
                    ("404 Not Found", r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-found"}]}"#.to_owned())
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: {FHIR_JSON}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
        });
        Self {
            port,
            held,
            updates,
            task,
        }
    }
}

impl Drop for HoldingDispense {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn a_dispense_cancelled_abroad_is_entered_in_error_on_the_national_server_once() {
    let national = HoldingDispense::start().await;
    let f = with_national_eprescription(&format!("http://127.0.0.1:{}/", national.port), "").await;
    let pharmacist = pharmacist_of("BE-PHARM-7");
    let mut cancel = vials_dispense("D-N1", 5);
    cancel["status"] = "entered-in-error".into();
    let cancel = serde_json::to_vec(&cancel).unwrap();

    // Another performer's cancel, or one of a dispense the national server
    // never had: no such dispense, nothing written.
    let mut elsewhere: Value = serde_json::from_slice(&cancel).unwrap();
    elsewhere["performer"][0]["actor"]["reference"] = "PractitionerRole/someone-else".into();
    json(
        send_dispense(&f, &pharmacist, serde_json::to_vec(&elsewhere).unwrap()).await,
        404,
    )
    .await;
    let mut unknown: Value = serde_json::from_slice(&cancel).unwrap();
    unknown["identifier"][0]["value"] = "D-NOWHERE".into();
    json(
        send_dispense(&f, &pharmacist, serde_json::to_vec(&unknown).unwrap()).await,
        404,
    )
    .await;
    assert!(national.updates.lock().unwrap().is_empty());

    // The pharmacy's cancel: the dispense is updated on the national
    // server to the bytes the pharmacy sent; sent again, it is not written
    // twice. The prescription's status is read back.
    for _ in 0..2 {
        let cancelled = send_dispense(&f, &pharmacist, cancel.clone()).await;
        let state = cancelled.headers().get("x-prescription-state").cloned();
        let outcome = json(cancelled, 200).await;
        assert!(outcome.to_string().contains("cancelled"), "{outcome}");
        assert_eq!(state.unwrap(), "active");
    }
    assert_eq!(
        *national.updates.lock().unwrap(),
        vec![cancel.clone()],
        "written once, as the pharmacy sent it"
    );
    assert_eq!(national.held.lock().unwrap()["status"], "entered-in-error");
    f.stop().await;
}
