//! The requests the client makes and how it reads the answers.

use std::sync::{Arc, Mutex};

use ehds_national_fhir::{NationalError, NationalFhir, NationalServer, PatientIdentifier};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LOINC_SUMMARY: (&str, &str) = ("http://loinc.org", "60591-5");

fn patient() -> PatientIdentifier {
    PatientIdentifier::new("urn:oid:1.3.182.4.4", "1998041799999").unwrap()
}

/// A server answering each request with the first canned answer whose
/// path prefix matches, recording the request lines.
struct Canned {
    base: String,
    seen: Arc<Mutex<Vec<String>>>,
    /// Each request's head (request line and headers).
    heads: Arc<Mutex<Vec<String>>>,
}

async fn canned(answers: Vec<(&'static str, String)>) -> Canned {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/fhir/", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let heads = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let record_heads = Arc::clone(&heads);
    let answers = Arc::new(answers);
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let record = Arc::clone(&record);
            let record_heads = Arc::clone(&record_heads);
            let answers = Arc::clone(&answers);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 2048];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                // The body of a POST (Content-Length), read to its end.
                let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                let length: usize = text
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0);
                let header_end = head.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                while head.len() < header_end + length {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let target = head.split(' ').nth(1).unwrap_or_default().to_owned();
                record.lock().unwrap().push(target.clone());
                record_heads.lock().unwrap().push(head.clone());
                let body = answers
                    .iter()
                    .find(|(prefix, _)| target.starts_with(prefix))
                    .map(|(_, body)| body.clone());
                let answer = match body {
                    // A whole answer, as written.
                    Some(raw) if raw.starts_with("HTTP/1.1 ") => raw,
                    Some(body) => format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/fhir+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    ),
                    None => {
                        "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            .to_owned()
                    }
                };
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Canned { base, seen, heads }
}

fn client(base: &str, extra: &str) -> NationalFhir {
    let server: NationalServer =
        toml::from_str(&format!("base_url = \"{base}\"\n{extra}")).unwrap();
    NationalFhir::connect(&server).unwrap()
}

fn searchset(resources: &[serde_json::Value]) -> String {
    let entries: Vec<_> = resources
        .iter()
        .map(|r| serde_json::json!({"resource": r, "search": {"mode": "match"}}))
        .collect();
    serde_json::json!({"resourceType": "Bundle", "type": "searchset", "entry": entries}).to_string()
}

fn the_patient(id: &str) -> serde_json::Value {
    serde_json::json!({"resourceType": "Patient", "id": id,
        "identifier": [{"system": "urn:oid:1.3.182.4.4", "value": "1998041799999"}]})
}

fn reference(subject: serde_json::Value, bundle: &str) -> serde_json::Value {
    serde_json::json!({"resourceType": "DocumentReference", "status": "current",
        "subject": subject,
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:1"},
        "type": {"coding": [{"system": "http://loinc.org", "code": "60591-5"}]},
        "content": [{"attachment": {"url": bundle}}]})
}

#[tokio::test]
async fn a_chained_search_asks_once_and_resolves_subjects_by_the_patients_id() {
    let server = canned(vec![
        (
            "/fhir/DocumentReference?",
            searchset(&[
                reference(
                    serde_json::json!({"identifier": {"system": "urn:oid:1.3.182.4.4", "value": "1998041799999"}}),
                    "Bundle/ps-1",
                ),
                reference(serde_json::json!({"reference": "Patient/p1"}), "https://nat/fhir/Bundle/ps-2"),
            ]),
        ),
        ("/fhir/Patient?", searchset(&[the_patient("p1")])),
    ])
    .await;
    let national = client(&server.base, "");
    let listed = national
        .documents(&patient(), &[LOINC_SUMMARY])
        .await
        .unwrap();
    let ids: Vec<_> = listed.items.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["ps-1", "ps-2"]);
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen[0].starts_with(
            "/fhir/DocumentReference?patient.identifier=urn%3Aoid%3A1.3.182.4.4%7C1998041799999&type=http%3A%2F%2Floinc.org%7C60591-5&_count=100"
        ),
        "{seen:?}"
    );
    assert!(seen[1].starts_with("/fhir/Patient?identifier="), "{seen:?}");
}

#[tokio::test]
async fn without_chained_search_the_patients_id_comes_first() {
    let server = canned(vec![
        ("/fhir/Patient?", searchset(&[the_patient("p1")])),
        (
            "/fhir/DocumentReference?",
            searchset(&[reference(
                serde_json::json!({"reference": "Patient/p1"}),
                "Bundle/ps-1",
            )]),
        ),
    ])
    .await;
    let national = client(&server.base, "chained_search = false");
    let listed = national
        .documents(&patient(), &[LOINC_SUMMARY])
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let seen = server.seen.lock().unwrap().clone();
    assert!(seen[0].starts_with("/fhir/Patient?identifier="), "{seen:?}");
    assert!(
        seen[1].starts_with("/fhir/DocumentReference?patient=Patient%2Fp1&type="),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_reference_about_another_patient_refuses_the_whole_list() {
    let server = canned(vec![
        ("/fhir/Patient?", searchset(&[the_patient("p1")])),
        (
            "/fhir/DocumentReference?",
            searchset(&[
                reference(
                    serde_json::json!({"reference": "Patient/p1"}),
                    "Bundle/ps-1",
                ),
                reference(
                    serde_json::json!({"reference": "Patient/p2"}),
                    "Bundle/ps-2",
                ),
            ]),
        ),
    ])
    .await;
    let national = client(&server.base, "");
    let refused = national
        .documents(&patient(), &[LOINC_SUMMARY])
        .await
        .unwrap_err();
    assert!(matches!(refused, NationalError::OtherPatient), "{refused}");
    // A Patient search answering someone else is refused too.
    let other = serde_json::json!({"resourceType": "Patient", "id": "p2",
        "identifier": [{"system": "urn:oid:1.3.182.4.4", "value": "1987010199999"}]});
    let server = canned(vec![("/fhir/Patient?", searchset(&[other]))]).await;
    let national = client(&server.base, "");
    assert!(matches!(
        national.patients(&patient()).await.unwrap_err(),
        NationalError::OtherPatient
    ));
}

#[tokio::test]
async fn a_summary_on_demand_is_listed_per_patient_id_and_read_by_summary() {
    let document = serde_json::json!({"resourceType": "Bundle", "type": "document"}).to_string();
    let server = canned(vec![
        ("/fhir/Patient?", searchset(&[the_patient("p1")])),
        ("/fhir/Patient/p1/$summary", document.clone()),
    ])
    .await;
    let national = client(&server.base, "retrieval = \"summary\"");
    let listed = national
        .documents(&patient(), &[LOINC_SUMMARY])
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].id, "summary-p1");
    let read = national.document("summary-p1").await.unwrap().unwrap();
    assert_eq!(
        read.bytes().as_ref(),
        document.as_bytes(),
        "as the server sent it"
    );
    assert_eq!(
        national.document("summary-p9").await.unwrap().map(|_| ()),
        None
    );
    let seen = server.seen.lock().unwrap().clone();
    assert!(
        seen.contains(&"/fhir/Patient/p1/$summary".to_owned()),
        "{seen:?}"
    );
}

#[tokio::test]
async fn answers_that_are_not_what_was_asked_for_are_refused() {
    let server = canned(vec![
        (
            "/fhir/Bundle/not-a-document",
            serde_json::json!({"resourceType": "Bundle", "type": "collection"}).to_string(),
        ),
        ("/fhir/Bundle/a-patient", the_patient("p1").to_string()),
        (
            "/fhir/Patient?",
            serde_json::json!({"resourceType": "OperationOutcome"}).to_string(),
        ),
        ("/fhir/Bundle/broken", "{\"resourceType\":".to_owned()),
    ])
    .await;
    let national = client(&server.base, "");
    for id in ["not-a-document", "a-patient"] {
        assert!(
            matches!(
                national.document(id).await,
                Err(NationalError::Unexpected(_))
            ),
            "{id}"
        );
    }
    assert!(matches!(
        national.document("broken").await,
        Err(NationalError::NotFhir(_))
    ));
    assert!(matches!(
        national.patients(&patient()).await,
        Err(NationalError::Unexpected(_))
    ));
    assert_eq!(
        national.document("nowhere").await.unwrap().map(|_| ()),
        None
    );
    // An id that is not a FHIR id never reaches the server.
    assert_eq!(
        national.document("../Patient").await.unwrap().map(|_| ()),
        None
    );
}

fn prescription(id: &str, subject: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"resourceType": "MedicationRequest", "id": id, "status": "active",
        "intent": "order", "identifier": [{"system": "urn:oid:2.9", "value": id}],
        "subject": subject})
}

/// A search set page with a `next` link to `next`.
fn page(resources: &[serde_json::Value], next: &str) -> String {
    let mut set: serde_json::Value = serde_json::from_str(&searchset(resources)).unwrap();
    set["link"] = serde_json::json!([{"relation": "next", "url": next}]);
    set.to_string()
}

#[tokio::test]
async fn next_links_are_followed_up_to_max_pages_then_the_list_is_incomplete() {
    let by_id = serde_json::json!({"reference": "Patient/p1"});
    let server = canned(vec![
        (
            "/fhir/MedicationRequest?page=2",
            page(
                &[prescription("mr-2", by_id.clone())],
                "MedicationRequest?page=3",
            ),
        ),
        (
            "/fhir/MedicationRequest?page=3",
            searchset(&[prescription("mr-3", by_id.clone())]),
        ),
        (
            "/fhir/MedicationRequest?",
            page(
                &[prescription("mr-1", by_id.clone())],
                "MedicationRequest?page=2",
            ),
        ),
        ("/fhir/Patient?", searchset(&[the_patient("p1")])),
    ])
    .await;
    let national = client(&server.base, "page_size = 1");
    let listed = national
        .prescriptions(&patient(), &["active"])
        .await
        .unwrap();
    let ids: Vec<_> = listed
        .items
        .iter()
        .map(|r| {
            r.root()
                .get("id")
                .and_then(ehds_fhir::Node::as_str)
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids, ["mr-1", "mr-2", "mr-3"]);
    assert!(!listed.incomplete);
    let seen = server.seen.lock().unwrap().clone();
    assert!(
        seen[0].starts_with(
            "/fhir/MedicationRequest?patient.identifier=urn%3Aoid%3A1.3.182.4.4%7C1998041799999&status=active&_count=1"
        ),
        "{seen:?}"
    );
    // Two pages at most: the third is not asked for, the list is incomplete.
    let national = client(&server.base, "page_size = 1\nmax_pages = 2");
    let listed = national.prescriptions(&patient(), &[]).await.unwrap();
    assert_eq!(listed.items.len(), 2);
    assert!(listed.incomplete);
    let asked = server.seen.lock().unwrap().clone();
    assert_eq!(
        asked
            .iter()
            .filter(|t| t.starts_with("/fhir/MedicationRequest?page=3"))
            .count(),
        1,
        "only the first listing went to page 3: {asked:?}"
    );
}

#[tokio::test]
async fn a_next_link_to_another_server_is_refused() {
    let server = canned(vec![(
        "/fhir/MedicationRequest?",
        page(
            &[prescription(
                "mr-1",
                serde_json::json!({"identifier": {"system": "urn:oid:1.3.182.4.4", "value": "1998041799999"}}),
            )],
            "https://elsewhere.example/fhir/MedicationRequest?page=2",
        ),
    )])
    .await;
    let national = client(&server.base, "");
    let refused = national.prescriptions(&patient(), &[]).await.unwrap_err();
    assert!(matches!(refused, NationalError::Unexpected(_)), "{refused}");
    assert_eq!(server.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_prescription_of_another_patient_refuses_the_whole_list() {
    let other = serde_json::json!({"identifier": {"system": "urn:oid:1.3.182.4.4", "value": "1987010199999"}});
    let ours = serde_json::json!({"identifier": {"system": "urn:oid:1.3.182.4.4", "value": "1998041799999"}});
    let server = canned(vec![(
        "/fhir/MedicationRequest?",
        searchset(&[prescription("mr-1", ours), prescription("mr-2", other)]),
    )])
    .await;
    let national = client(&server.base, "");
    let refused = national.prescriptions(&patient(), &[]).await.unwrap_err();
    assert!(matches!(refused, NationalError::OtherPatient), "{refused}");
}

#[tokio::test]
async fn a_prescription_is_found_by_identifier_and_its_patient_by_reference() {
    let by_id = serde_json::json!({"reference": "Patient/p1"});
    let server = canned(vec![
        (
            "/fhir/MedicationRequest?identifier=",
            searchset(&[prescription("mr-1", by_id.clone())]),
        ),
        (
            "/fhir/MedicationRequest/mr-1",
            prescription("mr-1", by_id).to_string(),
        ),
        ("/fhir/Patient?", searchset(&[the_patient("p1")])),
        ("/fhir/Patient/p1", the_patient("p1").to_string()),
        (
            "/fhir/MedicationDispense?",
            searchset(&[serde_json::json!({"resourceType": "MedicationDispense",
                "identifier": [{"system": "urn:oid:2.999.1", "value": "D-1"}]})]),
        ),
    ])
    .await;
    let national = client(&server.base, "");
    assert!(
        national
            .holds("MedicationDispense", ("urn:oid:2.999.1", "D-1"))
            .await
            .unwrap()
    );
    assert!(
        !national
            .holds("MedicationDispense", ("urn:oid:2.999.1", "D-2"))
            .await
            .unwrap(),
        "a match without the identifier is no match"
    );
    let found = national
        .prescription_by_identifier(&patient(), ("urn:oid:2.9", "mr-1"))
        .await
        .unwrap()
        .unwrap();
    let subject = national.subject_identifiers(found.root()).await.unwrap();
    assert_eq!(
        subject,
        [("urn:oid:1.3.182.4.4".to_owned(), "1998041799999".to_owned())]
    );
    assert!(national.prescription("mr-1").await.unwrap().is_some());
    assert!(national.prescription("../x").await.unwrap().is_none());
    let seen = server.seen.lock().unwrap().clone();
    assert!(
        seen[2].starts_with("/fhir/MedicationRequest?identifier=urn%3Aoid%3A2.9%7Cmr-1"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_dispense_is_created_once_on_its_identifier() {
    let created = "HTTP/1.1 201 Created\r\nlocation: http://x/fhir/MedicationDispense/md-7/_history/1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
    let refused =
        "HTTP/1.1 422 Unprocessable Entity\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
    let server = canned(vec![
        ("/fhir/MedicationDispense", created.to_owned()),
        ("/fhir/Refused", refused.to_owned()),
    ])
    .await;
    let national = client(&server.base, "");
    let dispense = bytes::Bytes::from_static(br#"{"resourceType":"MedicationDispense"}"#);
    let answer = national
        .create(
            "MedicationDispense",
            dispense.clone(),
            ("urn:oid:2.999.1", "D|1"),
        )
        .await
        .unwrap();
    assert!(answer.created);
    assert_eq!(answer.id.as_deref(), Some("md-7"));
    let head = server.heads.lock().unwrap()[0].to_ascii_lowercase();
    assert!(head.starts_with("post /fhir/medicationdispense "), "{head}");
    assert!(
        head.contains("if-none-exist: identifier=urn%3aoid%3a2.999.1%7cd%5c%7c1"),
        "the identifier's separator escaped: {head}"
    );
    assert!(
        head.ends_with(r#"{"resourcetype":"medicationdispense"}"#),
        "sent as received: {head}"
    );
    let refused = national
        .create("Refused", dispense, ("urn:oid:2.999.1", "D-2"))
        .await
        .unwrap_err();
    assert!(matches!(refused, NationalError::Status(422)), "{refused}");
}

#[tokio::test]
async fn a_search_set_written_with_an_empty_entry_array_is_an_empty_search_set() {
    // As the Helios FHIR Server 0.2.7 answers a search that finds nothing.
    let server = canned(vec![(
        "/fhir/MedicationDispense?",
        r#"{"resourceType":"Bundle","type":"searchset","link":[{"relation":"self","url":"http://x/"}],"entry":[]}"#.to_owned(),
    )])
    .await;
    let national = client(&server.base, "");
    assert!(
        !national
            .holds("MedicationDispense", ("urn:oid:2.999.1", "D-1"))
            .await
            .unwrap()
    );
}
