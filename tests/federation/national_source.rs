//! The national connector (issue 19): Luxembourg, the patient's country,
//! answers from its national FHIR infrastructure on demand instead of its
//! store. Its patient summary service is on a real FHIR server this
//! project did not write — the Helios FHIR Server (`hfs`, crates.io
//! `helios-hfs`, R4 with SQLite), started on loopback with a fresh
//! database and seeded through its own REST API with the IPS conformance
//! example — and a doctor in Belgium identifies the patient, lists and
//! reads the summaries through both gateways over mutual TLS: byte for byte
//! as the national server sent them, the patient's opt-out and restrictions
//! applied, another patient's document refused. Other services are on
//! national servers that fail (down, too slow, answering HTML, answering
//! about another patient): each failure is the national server's (503, 504,
//! 502), audited, and the circuit breaker stops asking a server that is
//! down.
//!
//! hfs speaks plain HTTP only, so Luxembourg's gateway reaches it over
//! HTTP on loopback (the configuration allows `http` to a loopback address
//! only; a national server elsewhere is reached over https with mutual
//! TLS). Without `EHDS_TEST_HFS_BIN` the test with hfs is skipped (under
//! `CI` it fails); the failure cases run without it.

use super::*;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Another Luxembourg patient (13 digits, as LU's directory wants).
pub(super) const OTHER_LU_PATIENT: &str = "1987010199999";

/// A running hfs with its own SQLite database in a scratch folder; killed
/// when dropped.
pub(super) struct Hfs {
    child: Child,
    pub(super) base: String,
    client: PlainHttp,
    _dir: ehds_test_support::ScratchDir,
}

impl Hfs {
    /// Starts hfs on a free loopback port; `None` (skipped) without the
    /// binary outside CI.
    pub(super) async fn start() -> Option<Self> {
        Self::start_with(loopback::free_port().unwrap(), &[], None).await
    }

    /// [`Hfs::start`] on `port`, with more of hfs's environment (`env`) and
    /// the bearer token its REST API is seeded with (`seeder`), for a
    /// server with authentication on (`national_oauth.rs`).
    pub(super) async fn start_with(
        port: u16,
        env: &[(&str, String)],
        seeder: Option<&str>,
    ) -> Option<Self> {
        let binary = ehds_test_support::hfs_binary()?;
        let dir = ehds_test_support::ScratchDir::new("hfs");
        let base = format!("http://127.0.0.1:{port}");
        let log = std::fs::File::create(dir.path().join("hfs.log")).unwrap();
        let child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--database-url")
            .arg(dir.path().join("national.db"))
            .args(["--log-level", "warn"])
            .env("HFS_BASE_URL", &base)
            .env("HFS_UI_ENABLED", "false")
            .envs(env.iter().map(|(name, value)| (name, value)))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let hfs = Self {
            child,
            base,
            client: PlainHttp::new(seeder),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, _)) = hfs
                .client
                .send("GET", &format!("{}/metadata", hfs.base), None)
                .await
            {
                break;
            }
            assert!(Instant::now() < deadline, "hfs did not start within 60 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // hfs reads its default search parameters from
        // `search-parameters-r4.json` in its data folder, which `cargo
        // install` does not bring (unknown parameters are then ignored,
        // with an outcome entry, and every patient matches: the gateway
        // refuses such an answer as about another patient). The searches a
        // national connector makes are registered through hfs's own REST
        // API before anything is seeded, as the R4 specification defines
        // them (http://hl7.org/fhir/R4/searchparameter-registry.html).
        for parameter in [
            serde_json::json!({"resourceType": "SearchParameter",
                "url": "http://hl7.org/fhir/SearchParameter/Patient-identifier",
                "name": "identifier", "status": "active", "code": "identifier",
                "base": ["Patient"], "type": "token", "expression": "Patient.identifier"}),
            serde_json::json!({"resourceType": "SearchParameter",
                "url": "http://hl7.org/fhir/SearchParameter/clinical-patient",
                "name": "patient", "status": "active", "code": "patient",
                "base": ["DocumentReference", "MedicationRequest"], "type": "reference",
                "expression": "DocumentReference.subject.where(resolve() is Patient) | MedicationRequest.subject.where(resolve() is Patient)",
                "target": ["Patient"]}),
            serde_json::json!({"resourceType": "SearchParameter",
                "url": "http://hl7.org/fhir/SearchParameter/clinical-type",
                "name": "type", "status": "active", "code": "type",
                "base": ["DocumentReference"], "type": "token",
                "expression": "DocumentReference.type"}),
            serde_json::json!({"resourceType": "SearchParameter",
                "url": "http://hl7.org/fhir/SearchParameter/clinical-identifier",
                "name": "identifier", "status": "active", "code": "identifier",
                "base": ["MedicationRequest", "MedicationDispense"], "type": "token",
                "expression": "MedicationRequest.identifier | MedicationDispense.identifier"}),
            serde_json::json!({"resourceType": "SearchParameter",
                "url": "http://hl7.org/fhir/SearchParameter/medications-status",
                "name": "status", "status": "active", "code": "status",
                "base": ["MedicationRequest"], "type": "token",
                "expression": "MedicationRequest.status"}),
        ] {
            let (status, body) = hfs
                .client
                .send(
                    "POST",
                    &format!("{}/SearchParameter", hfs.base),
                    Some(serde_json::to_vec(&parameter).unwrap()),
                )
                .await
                .unwrap();
            assert!(
                (200..300).contains(&status),
                "{status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Some(hfs)
    }

    /// `PUT <type>/<id>` of `resource` through hfs's REST API.
    pub(super) async fn put(&self, resource: &Value) {
        let path = format!(
            "{}/{}/{}",
            self.base,
            resource["resourceType"].as_str().unwrap(),
            resource["id"].as_str().unwrap()
        );
        let (status, body) = self
            .client
            .send("PUT", &path, Some(serde_json::to_vec(resource).unwrap()))
            .await
            .unwrap();
        assert!(
            status == 200 || status == 201,
            "{status}: {}",
            String::from_utf8_lossy(&body)
        );
    }

    /// The bytes hfs answers to `GET <path>`.
    pub(super) async fn get(&self, path: &str) -> Vec<u8> {
        let (status, body) = self
            .client
            .send("GET", &format!("{}/{path}", self.base), None)
            .await
            .unwrap();
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        body
    }
}

/// A plain-HTTP/1.1 client for hfs on loopback: hyper-util's client over
/// TCP, with no TLS at all (hfs speaks plain HTTP only).
pub(super) struct PlainHttp {
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
    /// `Authorization: Bearer` for every request, when hfs checks tokens.
    bearer: Option<String>,
}

impl PlainHttp {
    pub(super) fn new(bearer: Option<&str>) -> Self {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        Self {
            bearer: bearer.map(str::to_owned),
            client: hyper_util::client::legacy::Client::builder(
                hyper_util::rt::TokioExecutor::new(),
            )
            .build(connector),
        }
    }

    /// `method url` with a FHIR JSON `body`: the status and the body.
    pub(super) async fn send(
        &self,
        method: &str,
        url: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<u8>), String> {
        let mut request = http::Request::builder()
            .method(method)
            .uri(url)
            .header("accept", FHIR_JSON);
        if body.is_some() {
            request = request.header("content-type", FHIR_JSON);
        }
        if let Some(token) = &self.bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.unwrap_or_default(),
            )))
            .map_err(|e| e.to_string())?;
        self.exchange(request).await
    }

    /// `request` as it is: the status and the body.
    pub(super) async fn exchange(
        &self,
        request: http::Request<http_body_util::Full<bytes::Bytes>>,
    ) -> Result<(u16, Vec<u8>), String> {
        use http_body_util::BodyExt;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, body.to_vec()))
    }
}

impl Drop for Hfs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The LU patient's IPS summary with its own id on the national server and
/// its own identifier; `patient` names the subject.
pub(super) fn summary_for(id: &str, patient: &str, identifier: &str) -> Value {
    let bytes = loopback::patient_summary(&repo_root(), LU_SYSTEM, patient).unwrap();
    let mut json: Value = serde_json::from_slice(&bytes).unwrap();
    json["id"] = id.into();
    json["identifier"]["value"] = identifier.into();
    json
}

/// The Patient of a summary, with `id` on the national server.
pub(super) fn patient_of(summary: &Value, id: &str) -> Value {
    let mut patient = summary["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"]["resourceType"] == "Patient")
        .unwrap()["resource"]
        .clone();
    patient["id"] = id.into();
    patient
}

/// A DocumentReference of the national server listing the summary
/// `Bundle/<bundle>` of `Patient/<patient>`.
pub(super) fn reference_to(id: &str, bundle: &str, patient: &str) -> Value {
    serde_json::json!({
        "resourceType": "DocumentReference",
        "id": id,
        "status": "current",
        "type": {"coding": [{"system": "http://loinc.org", "code": "60591-5",
            "display": "Patient summary Document"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "date": "2026-12-01T10:00:00Z",
        "content": [{"attachment": {"contentType": FHIR_JSON, "url": format!("Bundle/{bundle}")}}]
    })
}

/// A service of LU's registry answered by the national server at `base`.
pub(super) fn national_service(
    name: &str,
    permission: &str,
    profiles: &str,
    (code, display): (&str, &str),
    base: &str,
    server: &str,
) -> String {
    format!(
        r#"
[[services.service]]
name = "{name}"
title = "{name}"
permission = "{permission}"
document_profiles = [{profiles}]
source = "fhir"
[services.service.national_server]
base_url = "{base}"
{server}
[[services.service.document_type]]
system = "http://loinc.org"
code = "{code}"
display = "{display}"
"#
    )
}

/// Both gateways, LU's patient summary on the national server at
/// `summary_base`, its laboratory reports on the fake one, and (with
/// `dead_discharge`) its discharge reports on a server nobody runs.
async fn with_national_servers(
    summary_base: &str,
    fake: &FakeNational,
    dead_discharge: bool,
) -> TwoCountries {
    let summary = national_service(
        "patient-summary",
        "ReadPatientSummary",
        "\"http://hl7.org/fhir/uv/ips/StructureDefinition/Bundle-uv-ips\"",
        ("60591-5", "Patient summary Document"),
        summary_base,
        "timeout_secs = 10",
    );
    let fake_base = format!("http://127.0.0.1:{}/fhir", fake.port);
    let laboratory = national_service(
        "laboratory-report",
        "ReadLaboratoryReport",
        "",
        ("11502-2", "Laboratory report"),
        &fake_base,
        // Slow answers are cut at 1 s; its failures do not open the circuit.
        "timeout_secs = 1\nbreaker_failures = 100",
    );
    // Nobody listens there: the circuit opens after two failures.
    let dead = format!("http://127.0.0.1:{}/", loopback::free_port().unwrap());
    let discharge = national_service(
        "discharge-report",
        "ReadDischargeReport",
        "",
        ("34105-7", "Hospital Discharge summary"),
        &dead,
        "breaker_failures = 2\nbreaker_open_secs = 600",
    );
    let sections = if dead_discharge {
        format!("{summary}{laboratory}{discharge}")
    } else {
        format!("{summary}{laboratory}")
    };
    TwoCountries::start("national-source", move |config| {
        federation_settings(config);
        if config.country == "LU" {
            config.sections.push('\n');
            config.sections.push_str(&sections);
        }
    })
    .await
}

/// How a fake national server misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Misbehaviour {
    /// A web page instead of FHIR.
    Html = 0,
    /// No answer for a minute.
    Slow = 1,
    /// A DocumentReference search set about another patient.
    OtherPatient = 2,
    /// Healthy, holding nothing: 404 with an OperationOutcome.
    HoldsNothing = 3,
    /// Healthy, finding nothing: an empty search set.
    FindsNothing = 4,
}

/// A national server on loopback that misbehaves as told (plain HTTP/1.1,
/// one request per connection).
pub(super) struct FakeNational {
    pub(super) port: u16,
    mode: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeNational {
    pub(super) async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(Misbehaviour::Html as u8));
        let shared = Arc::clone(&mode);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let mode = shared.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let (status, content_type, body) = match mode {
                        0 => (
                            "200 OK",
                            "text/html",
                            "<html><body>Maintenance</body></html>".to_owned(),
                        ),
                        1 => {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                            return;
                        }
                        3 => (
                            "404 Not Found",
                            FHIR_JSON,
                            serde_json::json!({"resourceType": "OperationOutcome", "issue": [
                                {"severity": "error", "code": "not-found"}]})
                            .to_string(),
                        ),
                        4 => (
                            "200 OK",
                            FHIR_JSON,
                            serde_json::json!({"resourceType": "Bundle", "type": "searchset", "total": 0})
                                .to_string(),
                        ),
                        _ => (
                            "200 OK",
                            FHIR_JSON,
                            serde_json::json!({
                                "resourceType": "Bundle", "type": "searchset", "total": 1,
                                "entry": [{"resource": {
                                    "resourceType": "DocumentReference", "id": "lab-1",
                                    "status": "current",
                                    "subject": {"identifier": {"system": LU_SYSTEM, "value": OTHER_LU_PATIENT}},
                                    "content": [{"attachment": {"url": "Bundle/lab-1"}}]
                                }, "search": {"mode": "match"}}]
                            })
                            .to_string(),
                        ),
                    };
                    let answer = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self { port, mode, task }
    }

    pub(super) fn misbehave(&self, how: Misbehaviour) {
        self.mode.store(how as u8, Ordering::SeqCst);
    }
}

impl Drop for FakeNational {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `GET <LU federation API><path>` as BE's NCP with a fresh assertion of
/// the doctor about the LU patient.
pub(super) async fn at_lu_as_be_ncp(f: &TwoCountries, path: &str) -> reqwest::Response {
    f.federation_client(f.pki.ncp_client("BE"))
        .get(f.lu.federation_url(path))
        .bearer_auth(Caller::doctor(f).assertion())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_doctor_abroad_reads_the_summaries_the_national_fhir_server_holds() {
    let Some(hfs) = Hfs::start().await else {
        return;
    };
    // Seeded through hfs's own REST API: the LU patient with two
    // summaries, another LU patient with one, each listed by a
    // DocumentReference; one of the LU patient's references points to the
    // other patient's summary (a national server's mistake).
    let first = summary_for(
        "ps-lu-1",
        LU_PATIENT,
        "urn:uuid:0c8b2f1e-5b7e-4b35-9d39-6f0e2c7a1a01",
    );
    let second = summary_for(
        "ps-lu-2",
        LU_PATIENT,
        "urn:uuid:0c8b2f1e-5b7e-4b35-9d39-6f0e2c7a1a02",
    );
    let others = summary_for(
        "ps-other-1",
        OTHER_LU_PATIENT,
        "urn:uuid:0c8b2f1e-5b7e-4b35-9d39-6f0e2c7a1a03",
    );
    hfs.put(&patient_of(&first, "lu-patient")).await;
    hfs.put(&patient_of(&others, "other-patient")).await;
    for document in [&first, &second, &others] {
        hfs.put(document).await;
    }
    hfs.put(&reference_to("dr-lu-1", "ps-lu-1", "lu-patient"))
        .await;
    hfs.put(&reference_to("dr-other-1", "ps-other-1", "other-patient"))
        .await;

    let fake = FakeNational::start().await;
    // The laboratory's national server is healthy and holds nothing.
    fake.misbehave(Misbehaviour::HoldsNothing);
    let f = with_national_servers(&format!("{}/", hfs.base), &fake, false).await;
    let doctor = Caller::doctor(&f);

    // 1. The patient, as the national server holds them.
    let found = json(doctor.get(&lu_patient_search()).await, 200).await;
    assert_eq!(
        found["entry"][0]["resource"]["resourceType"], "Patient",
        "{found}"
    );
    assert_eq!(
        found["entry"][0]["resource"]["identifier"][0]["value"],
        LU_PATIENT
    );
    // 1b. Only the elements asked for (search.html#elements), derived from
    // the national server's bytes: nothing wider crosses.
    let narrowed = json(
        doctor
            .get(&format!("{}&_elements=name", lu_patient_search()))
            .await,
        200,
    )
    .await;
    let patient = &narrowed["entry"][0]["resource"];
    assert_eq!(patient["meta"]["tag"][0]["code"], "SUBSETTED", "{narrowed}");
    assert_eq!(patient["name"], found["entry"][0]["resource"]["name"]);
    for left_out in ["identifier", "birthDate", "gender", "telecom", "address"] {
        assert!(patient.get(left_out).is_none(), "{left_out}: {narrowed}");
    }

    // 2. One summary listed, then two.
    let summaries = about_lu_patient("DocumentReference", "&type=http://loinc.org|60591-5");
    let listed = json(doctor.get(&summaries).await, 200).await;
    assert_eq!(listed["total"], 1, "{listed}");
    let url = listed["entry"][0]["resource"]["content"][0]["attachment"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(url, "Bundle/LU.ps-lu-1");
    hfs.put(&reference_to("dr-lu-2", "ps-lu-2", "lu-patient"))
        .await;
    let listed = json(doctor.get(&summaries).await, 200).await;
    assert_eq!(listed["total"], 2, "several documents: {listed}");

    // 3. Read: the bytes the national server sent, through both gateways.
    let response = doctor.get(&format!("/fhir/{url}")).await;
    let status = response.status().as_u16();
    let received = response.bytes().await.unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&received));
    let national = hfs.get("Bundle/ps-lu-1").await;
    assert_eq!(
        Sha256::digest(&received),
        Sha256::digest(&national),
        "the summary must arrive as the national server sent it"
    );

    // 4. Not found: a document the national server does not hold, and a
    // patient it has no summary for (an empty list).
    let missing = doctor.get("/fhir/Bundle/LU.ps-nowhere").await;
    json(missing, 404).await;

    // A read by id asks every national server of a document service: one
    // failing (the laboratory's, answering HTML) hides neither a document
    // another holds nor makes a failure look like "not found".
    fake.misbehave(Misbehaviour::Html);
    let response = doctor.get(&format!("/fhir/{url}")).await;
    assert_eq!(
        response.status().as_u16(),
        200,
        "found on the summary's server"
    );
    let outcome = json(at_lu_as_be_ncp(&f, "/fhir/Bundle/ps-nowhere").await, 502).await;
    assert!(
        diagnostics(&outcome).contains("not usable FHIR"),
        "{outcome}"
    );
    fake.misbehave(Misbehaviour::HoldsNothing);

    // 5. Another patient's summary, asked for under this patient's
    // assertion: not found to this caller, audited, nothing relayed.
    let records = f.lu.audit().await.records;
    let other = doctor.get("/fhir/Bundle/LU.ps-other-1").await;
    assert_eq!(other.status().as_u16(), 404);
    assert!(
        !other.text().await.unwrap().contains(OTHER_LU_PATIENT),
        "nothing of the other patient"
    );
    assert_eq!(
        f.lu.audit().await.records,
        records + 1,
        "the refusal is on record"
    );

    // 6. Restriction: the results section is hidden abroad; the variant is
    // made from the national server's bytes, which stay as they are there.
    let results = serde_json::json!({"name": "section", "valueCoding": {"system": "http://loinc.org", "code": "30954-2"}});
    set_restriction(&f, results.clone(), true).await;
    let restricted = doctor.get(&format!("/fhir/{url}")).await;
    assert_eq!(restricted.status().as_u16(), 200);
    let restricted: Value = serde_json::from_slice(&restricted.bytes().await.unwrap()).unwrap();
    assert_ne!(
        restricted["identifier"], first["identifier"],
        "a new document"
    );
    // As from the store (`restriction.rs`): the section's observations are
    // withheld (the section itself stays, its entries gone).
    assert_eq!(
        restricted["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["resource"]["resourceType"] == "Observation")
            .count(),
        0,
        "the results section's observations are withheld"
    );
    assert_eq!(
        hfs.get("Bundle/ps-lu-1").await,
        national,
        "the original is untouched"
    );
    set_restriction(&f, results, false).await;

    // 6b. Restriction of the whole document (by its identifier, which the
    // national server's DocumentReference carries as masterIdentifier):
    // neither listed nor read abroad, as from the store (`laboratory.rs`).
    let mut reference = reference_to("dr-lu-1", "ps-lu-1", "lu-patient");
    reference["masterIdentifier"] = first["identifier"].clone();
    hfs.put(&reference).await;
    let document = serde_json::json!({"name": "document",
        "valueIdentifier": first["identifier"].clone()});
    set_restriction(&f, document.clone(), true).await;
    let listed = json(doctor.get(&summaries).await, 200).await;
    assert_eq!(
        listed["total"], 1,
        "the restricted summary is not listed: {listed}"
    );
    assert!(!listed.to_string().contains(&url), "{listed}");
    json(doctor.get(&format!("/fhir/{url}")).await, 404).await;
    set_restriction(&f, document, false).await;
    json(doctor.get(&format!("/fhir/{url}")).await, 200).await;

    // 7. Opt-out: refused before the national server is asked.
    set_opt_out_of(&f, "patient-summary", Some("BE"), true).await;
    let refused = json(doctor.get(&summaries).await, 403).await;
    assert!(refused.to_string().contains("no consent"), "{refused}");
    let refused = json(doctor.get(&format!("/fhir/{url}")).await, 403).await;
    assert!(refused.to_string().contains("no consent"), "{refused}");

    let lu_audit = f.lu.audit().await;
    assert!(lu_audit.first_broken.is_none());
    f.stop().await;
}

#[tokio::test]
async fn a_failing_national_server_is_answered_as_its_failure_and_audited() {
    let fake = FakeNational::start().await;
    // The patient summary on a server nobody reads in this test.
    let unused = format!("http://127.0.0.1:{}/", loopback::free_port().unwrap());
    let f = with_national_servers(&unused, &fake, true).await;
    let laboratory = about_lu_patient("DocumentReference", "&type=http://loinc.org|11502-2");
    let discharge = about_lu_patient("DocumentReference", "&type=http://loinc.org|34105-7");
    let audited = || async { f.lu.audit().await.records };

    // Answering HTML: not FHIR, 502.
    fake.misbehave(Misbehaviour::Html);
    let before = audited().await;
    let outcome = json(at_lu_as_be_ncp(&f, &laboratory).await, 502).await;
    assert!(
        diagnostics(&outcome).contains("not usable FHIR"),
        "{outcome}"
    );
    assert_eq!(audited().await, before + 1);

    // About another patient: refused whole, nothing of it relayed.
    fake.misbehave(Misbehaviour::OtherPatient);
    let response = at_lu_as_be_ncp(&f, &laboratory).await;
    assert_eq!(response.status().as_u16(), 502);
    let body = response.text().await.unwrap();
    assert!(body.contains("another patient"), "{body}");
    assert!(!body.contains(OTHER_LU_PATIENT) && !body.contains("lab-1"));
    assert_eq!(audited().await, before + 2);

    // Too slow: 504 within the 1 s budget (the fake answers after 60 s).
    fake.misbehave(Misbehaviour::Slow);
    let outcome = json(at_lu_as_be_ncp(&f, &laboratory).await, 504).await;
    assert!(
        diagnostics(&outcome).contains("did not answer in time"),
        "{outcome}"
    );
    assert_eq!(audited().await, before + 3);

    // Down: 503 with Retry-After; after two failures the circuit opens and
    // the server is not asked (still 503), which /metrics shows.
    for _ in 0..3 {
        let response = at_lu_as_be_ncp(&f, &discharge).await;
        assert_eq!(response.status().as_u16(), 503);
        assert!(response.headers().contains_key("retry-after"));
        let outcome: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        assert!(diagnostics(&outcome).contains("unavailable"), "{outcome}");
    }
    assert_eq!(audited().await, before + 6);
    let metrics = metrics(
        &f.lu,
        f.national_client("LU", NationalClientKind::EhrSystem),
    )
    .await;
    assert_eq!(
        counter(
            &metrics,
            "ehds_national_server_breaker_state{service=\"discharge-report\"}"
        ),
        Some(1),
        "{metrics}"
    );
    assert_eq!(
        counter(
            &metrics,
            "ehds_national_server_breaker_state{service=\"laboratory-report\"}"
        ),
        Some(0)
    );

    // Through BE, the doctor gets a refusal carrying LU's OperationOutcome.
    let doctor = Caller::doctor(&f);
    let response = doctor.get(&discharge).await;
    assert_eq!(response.status().as_u16(), 502);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("national FHIR server")
    );
    f.stop().await;
}

#[tokio::test]
async fn a_read_by_id_is_not_found_only_when_every_national_server_answered() {
    // The patient summary and the laboratory reports each on a national
    // server of their own, both healthy and holding nothing.
    let summary = FakeNational::start().await;
    let laboratory = FakeNational::start().await;
    summary.misbehave(Misbehaviour::HoldsNothing);
    laboratory.misbehave(Misbehaviour::HoldsNothing);
    let f = with_national_servers(
        &format!("http://127.0.0.1:{}/fhir", summary.port),
        &laboratory,
        false,
    )
    .await;
    let read = "/fhir/Bundle/ps-nowhere";

    // Every server answered that it holds no such document: not found.
    json(at_lu_as_be_ncp(&f, read).await, 404).await;

    // One of them failing: the document may exist there, so the read is
    // that server's failure (504 too slow, 502 not FHIR), not "not found".
    laboratory.misbehave(Misbehaviour::Slow);
    let outcome = json(at_lu_as_be_ncp(&f, read).await, 504).await;
    assert!(
        diagnostics(&outcome).contains("did not answer in time"),
        "{outcome}"
    );
    laboratory.misbehave(Misbehaviour::Html);
    json(at_lu_as_be_ncp(&f, read).await, 502).await;
    laboratory.misbehave(Misbehaviour::HoldsNothing);
    json(at_lu_as_be_ncp(&f, read).await, 404).await;

    // A server nobody runs (the discharge reports'): unavailable, 503.
    f.stop().await;
    let f = with_national_servers(
        &format!("http://127.0.0.1:{}/fhir", summary.port),
        &laboratory,
        true,
    )
    .await;
    let response = at_lu_as_be_ncp(&f, read).await;
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().contains_key("retry-after"));
    f.stop().await;
}

#[tokio::test]
async fn the_operators_cache_answers_after_every_check_and_shows_on_metrics() {
    // LU's laboratory reports on a national server whose answers the
    // operator keeps for ten minutes; it finds no report for the patient.
    let fake = FakeNational::start().await;
    fake.misbehave(Misbehaviour::FindsNothing);
    let laboratory = national_service(
        "laboratory-report",
        "ReadLaboratoryReport",
        "",
        ("11502-2", "Laboratory report"),
        &format!("http://127.0.0.1:{}/fhir", fake.port),
        "timeout_secs = 1\n[services.service.national_server.cache]\nttl_secs = 600\nmax_entries = 10\n",
    );
    let f = TwoCountries::start("national-cache", move |config| {
        federation_settings(config);
        if config.country == "LU" {
            config.sections.push('\n');
            config.sections.push_str(&laboratory);
        }
    })
    .await;
    let list = about_lu_patient("DocumentReference", "&type=http://loinc.org|11502-2");
    let listed = json(at_lu_as_be_ncp(&f, &list).await, 200).await;
    assert_eq!(listed["total"], 0, "{listed}");

    // The server now answers HTML: the list kept is answered, not asked.
    fake.misbehave(Misbehaviour::Html);
    let listed = json(at_lu_as_be_ncp(&f, &list).await, 200).await;
    assert_eq!(listed["total"], 0, "from the cache: {listed}");
    let metrics = metrics(
        &f.lu,
        f.national_client("LU", NationalClientKind::EhrSystem),
    )
    .await;
    let series = |name: &str| {
        counter(
            &metrics,
            &format!("{name}{{service=\"laboratory-report\"}}"),
        )
    };
    assert_eq!(series("ehds_national_cache_entries"), Some(1), "{metrics}");
    assert!(series("ehds_national_cache_bytes").unwrap() > 0);
    assert_eq!(series("ehds_national_cache_hits_total"), Some(1));
    assert_eq!(series("ehds_national_cache_misses_total"), Some(1));
    assert_eq!(
        counter(
            &metrics,
            "ehds_national_cache_entries{service=\"patient-summary\"}"
        ),
        None,
        "no cache where the operator turned none on"
    );

    // The patient opts out: refused, cache or not (every check runs on
    // each use).
    set_opt_out_of(&f, "laboratory-report", Some("BE"), true).await;
    json(at_lu_as_be_ncp(&f, &list).await, 403).await;
    set_opt_out_of(&f, "laboratory-report", Some("BE"), false).await;

    // Another patient's list is another request: asked, and the HTML
    // answer is the server's failure, never kept.
    let other = format!(
        "/fhir/DocumentReference?patient.identifier={LU_SYSTEM}|{OTHER_LU_PATIENT}&type=http://loinc.org|11502-2"
    );
    let response = f
        .federation_client(f.pki.ncp_client("BE"))
        .get(f.lu.federation_url(&other))
        .bearer_auth(assertion(
            &f.be_idp,
            &be_doctor(),
            &PatientRef::new(LU_SYSTEM, OTHER_LU_PATIENT),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 502);
    f.stop().await;
}

/// The Belgian national register number system (`deploy/config/directory.toml`).
const BE_SYSTEM: &str = "https://www.ehealth.fgov.be/standards/fhir/core/NamingSystem/ssin";
/// A Belgian patient (a valid national register number).
const BE_PATIENT: &str = "85073003328";

/// A doctor in Luxembourg treating the visitor from Belgium.
fn lu_doctor() -> Login {
    Login {
        professional: ehds_access::Professional {
            id: "LU-HP-0007".into(),
            name: "Dr Luc Weber".into(),
            role: "2211".into(),
            organisation: Organisation {
                id: "LU-ORG-3".into(),
                name: "Centre Hospitalier de Luxembourg".into(),
            },
        },
        point_of_care: "Urgences".into(),
    }
}

#[tokio::test]
async fn belgium_on_its_national_fhir_server_answers_a_doctor_in_luxembourg_as_from_its_store() {
    let Some(hfs) = Hfs::start().await else {
        return;
    };
    // Belgium's national FHIR server holds the Belgian patient's summary,
    // listed by a DocumentReference.
    let pushed = loopback::patient_summary(&repo_root(), BE_SYSTEM, BE_PATIENT).unwrap();
    let mut summary: Value = serde_json::from_slice(&pushed).unwrap();
    summary["id"] = "ps-be-1".into();
    hfs.put(&patient_of(&summary, "be-patient")).await;
    hfs.put(&summary).await;
    hfs.put(&reference_to("dr-be-1", "ps-be-1", "be-patient"))
        .await;
    // The harness puts BE's shipped patient summary service on it; LU
    // stays on its store.
    let base = format!("{}/", hfs.base);
    let f = TwoCountries::start("national-be", move |config| {
        federation_settings(config);
        if config.country == "BE" {
            config
                .answer_from_national_server("patient-summary", &base, "")
                .unwrap();
        }
    })
    .await;
    let ask = |path: String| {
        let assertion = f
            .lu_idp
            .issue(
                &lu_doctor(),
                "urn:ehds:ncp:BE",
                &PatientRef::new(BE_SYSTEM, BE_PATIENT),
                PurposeOfUse::Treatment,
                time::OffsetDateTime::now_utc(),
                time::Duration::minutes(5),
            )
            .unwrap();
        let client = f.national_client("LU", NationalClientKind::DoctorSystem);
        let url = f.lu.url(&path);
        async move { client.get(url).bearer_auth(assertion).send().await.unwrap() }
    };

    // The journey of a summary pushed to BE's store (`patient_page.rs`):
    // the patient identified, one summary listed, read byte for byte.
    let found = json(
        ask(format!("/fhir/Patient?identifier={BE_SYSTEM}|{BE_PATIENT}")).await,
        200,
    )
    .await;
    assert_eq!(found["total"], 1, "{found}");
    assert_eq!(
        found["entry"][0]["resource"]["identifier"][0]["value"],
        BE_PATIENT
    );
    let listed = json(
        ask(format!(
            "/fhir/DocumentReference?patient.identifier={BE_SYSTEM}|{BE_PATIENT}&type=http://loinc.org|60591-5"
        ))
        .await,
        200,
    )
    .await;
    assert_eq!(listed["total"], 1, "{listed}");
    let url = listed["entry"][0]["resource"]["content"][0]["attachment"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(url, "Bundle/BE.ps-be-1");
    let retrieved = ask(format!("/fhir/{url}")).await;
    assert_eq!(retrieved.status().as_u16(), 200);
    assert_eq!(
        Sha256::digest(retrieved.bytes().await.unwrap()),
        Sha256::digest(hfs.get("Bundle/ps-be-1").await),
        "the summary as Belgium's national server holds it"
    );
    assert!(f.be.audit().await.first_broken.is_none());
    f.stop().await;
}

/// The national server is this country's own infrastructure: its answers
/// are judged under the service's validation policy as a push would be
/// (`validation_policy`, issue 15 §3). A summary with an error (a
/// Composition without its required `title`, R4 Composition.title 1..1) is
/// a 502 under `enforce`; under `report` it is relayed byte for byte and
/// counted on `/metrics` as accepted with errors.
#[tokio::test]
async fn a_national_summary_with_errors_is_refused_under_enforce_and_relayed_under_report() {
    let Some(hfs) = Hfs::start().await else {
        return;
    };
    let mut summary = summary_for(
        "ps-lu-untitled",
        LU_PATIENT,
        "urn:uuid:0c8b2f1e-5b7e-4b35-9d39-6f0e2c7a1a09",
    );
    let composition = summary["entry"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|e| e["resource"]["resourceType"] == "Composition")
        .unwrap();
    composition["resource"]
        .as_object_mut()
        .unwrap()
        .remove("title")
        .unwrap();
    hfs.put(&summary).await;
    let base = format!("{}/", hfs.base);
    for policy in ["enforce", "report"] {
        let base = base.clone();
        let f = TwoCountries::start("national-policy", move |config| {
            federation_settings(config);
            if config.country == "LU" {
                config.sections.push_str(&national_service(
                    "patient-summary",
                    "ReadPatientSummary",
                    "\"http://hl7.org/fhir/uv/ips/StructureDefinition/Bundle-uv-ips\"",
                    ("60591-5", "Patient summary Document"),
                    &base,
                    &format!(
                        "timeout_secs = 10\n[services.service.validation]\npolicy = \"{policy}\""
                    ),
                ));
            }
        })
        .await;
        let response = at_lu_as_be_ncp(&f, "/fhir/Bundle/ps-lu-untitled").await;
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap();
        let metrics = metrics(
            &f.lu,
            f.national_client("LU", NationalClientKind::EhrSystem),
        )
        .await;
        if policy == "enforce" {
            assert_eq!(status, 502, "{}", String::from_utf8_lossy(&body));
            let outcome: Value = serde_json::from_slice(&body).unwrap();
            assert!(
                diagnostics(&outcome).contains("fails validation"),
                "{outcome}"
            );
            assert_eq!(
                counter(
                    &metrics,
                    "ehds_validation_verdicts_total{service=\"patient-summary\",policy=\"enforce\",verdict=\"refused\"}"
                ),
                Some(1),
                "{metrics}"
            );
        } else {
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            assert_eq!(
                Sha256::digest(&body),
                Sha256::digest(hfs.get("Bundle/ps-lu-untitled").await),
                "relayed as the national server sent it"
            );
            assert_eq!(
                counter(
                    &metrics,
                    "ehds_validation_verdicts_total{service=\"patient-summary\",policy=\"report\",verdict=\"accepted-with-errors\"}"
                ),
                Some(1),
                "{metrics}"
            );
        }
        f.stop().await;
    }
}

/// `ehds-gateway demo --national-fhir URL` (issue 19): Luxembourg answers
/// patient summaries from a national FHIR server (hfs here), written there
/// through its REST API, and the journey reads the same as from the store:
/// the patient identified, the summary read byte for byte as the national
/// server holds it, the patient's restriction applied, intact trails.
#[tokio::test]
async fn the_demo_runs_luxembourg_on_its_national_fhir_server() {
    let Some(hfs) = Hfs::start().await else {
        return;
    };
    let log_dir = ehds_test_support::ScratchDir::new("demo-national-log");
    let log_file = log_dir.path().join("demo.log");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_ehds-gateway"))
        .args(["demo", "--national-fhir", &hfs.base, "--log-file"])
        .arg(&log_file)
        .current_dir(repo_root())
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap();
    let story = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{story}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "Luxembourg answers patient summaries from its national FHIR server",
        "PUT Patient, Bundle (",
        "1 match(es): Martha DeLarosa",
        "-> 1 summary: Bundle/LU.demo-lu-summary",
        "SHA-256 identical to what the national FHIR server holds",
        "-> 400 Bad Request (never left Belgium)",
        "Dr Peeters asks again -> 403",
        "Dr Peeters retrieves the summary -> 200 OK: a new document",
        "its problem section empty (unavailable), still a valid IPS",
        "NCP Belgium: ",
    ] {
        assert!(
            story.contains(expected),
            "missing {expected:?} in:\n{story}"
        );
    }
    assert_eq!(
        story.matches("chain intact").count(),
        2,
        "both trails intact:\n{story}"
    );
    assert!(
        hfs.get("Bundle/demo-lu-summary").await.len() > 1000,
        "the summary is on the national server"
    );
}
