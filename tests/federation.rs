//! Two real gateways (BE and LU) in one process, over real mutual TLS on
//! 127.0.0.1, with a fresh development PKI: a Belgian doctor treats a visitor
//! from Luxembourg. LU's hospital pushed the patient summary; BE identifies
//! the patient at LU, lists the documents and retrieves the summary, which
//! arrives byte for byte; both gateways audit every step. Then each refusal
//! the federation must make.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::two_countries::{Running, Setup, TwoCountries, national_client, start};
use ehds_access::{AssertionIssuer, Organisation, PatientRef, Professional, PurposeOfUse};
use ehds_gateway::loopback::{self, GatewayToml, LU_PATIENT, LU_SYSTEM, Ports, be_doctor};
use ehds_test_support::{conformance_dir, repo_root};
use ehds_transport::NationalClientKind;
use ehds_transport::dev_pki::{self, Authority, DevPkiLayout, DevPkiSpec, Negative};
use rustls_pki_types::pem::PemObject;
use serde_json::Value;
use sha2::{Digest, Sha256};

mod common;

const FHIR_JSON: &str = "application/fhir+json";

/// Both gateways as these tests run them: relays that give up quickly
/// (connect 2 s, request 3 s: a stalling peer is answered within 8 s), and
/// Luxembourg's law (in these tests) lets an emergency lift a patient's
/// restrictions of the summary, not of prescriptions.
fn federation_settings(config: &mut GatewayToml<'_>) {
    config.connect_timeout_secs = 2;
    config.request_timeout_secs = 3;
    if config.country == "LU" {
        config.sections =
            "[patient_rights]\nemergency_lifts_restrictions = [\"patient-summary\"]".into();
    }
}

/// Both gateways started with the test PKI.
async fn federation() -> TwoCountries {
    TwoCountries::start("federation", federation_settings).await
}

fn lu_patient() -> PatientRef {
    PatientRef::new(LU_SYSTEM, LU_PATIENT)
}

/// `/fhir/Patient?identifier=<LU patient>`: the search that identifies the
/// LU patient.
fn lu_patient_search() -> String {
    format!("/fhir/Patient?identifier={LU_SYSTEM}|{LU_PATIENT}")
}

/// `/fhir/<resource>?patient.identifier=<LU patient><rest>`: a search
/// about the LU patient.
fn about_lu_patient(resource: &str, rest: &str) -> String {
    format!("/fhir/{resource}?patient.identifier={LU_SYSTEM}|{LU_PATIENT}{rest}")
}

/// The system of the identifiers of the LU prescriptions pushed here.
const PRESCRIPTION_SYSTEM: &str = "urn:oid:1.3.182.4.4.99";

/// A fresh treatment assertion of `professional` for `patient`, for LU's
/// NCP, signed by `idp`.
fn assertion(idp: &AssertionIssuer, professional: &Professional, patient: &PatientRef) -> String {
    assertion_at(
        idp,
        professional,
        patient,
        PurposeOfUse::Treatment,
        time::OffsetDateTime::now_utc(),
    )
}

/// An assertion of `professional` for `patient` and `purpose`, issued at
/// `issued_at` for 5 minutes, for LU's NCP, signed by `idp`.
fn assertion_at(
    idp: &AssertionIssuer,
    professional: &Professional,
    patient: &PatientRef,
    purpose: PurposeOfUse,
    issued_at: time::OffsetDateTime,
) -> String {
    idp.issue(
        professional,
        "urn:ehds:ncp:LU",
        patient,
        purpose,
        issued_at,
        time::Duration::minutes(5),
    )
    .unwrap()
}

/// The BE doctor with another ISCO-08 `role` (2262 pharmacist, 2221
/// nurse).
fn be_professional(role: &str) -> Professional {
    let mut professional = be_doctor();
    professional.role = role.into();
    professional
}

/// A national system in Belgium (a doctor's system, a pharmacy) in the
/// hands of `professional`: each request to BE's national API carries a
/// fresh assertion of theirs about the LU patient, for LU's NCP.
struct Caller<'a> {
    f: &'a TwoCountries,
    client: reqwest::Client,
    professional: Professional,
}

impl<'a> Caller<'a> {
    fn new(f: &'a TwoCountries, kind: NationalClientKind, professional: Professional) -> Self {
        Self {
            f,
            client: f.national_client("BE", kind),
            professional,
        }
    }

    /// The BE doctor at their doctor's system.
    fn doctor(f: &'a TwoCountries) -> Self {
        Self::new(f, NationalClientKind::DoctorSystem, be_doctor())
    }

    /// `pharmacist` at a Belgian pharmacy's system.
    fn pharmacy(f: &'a TwoCountries, pharmacist: Professional) -> Self {
        Self::new(f, NationalClientKind::Pharmacy, pharmacist)
    }

    /// A fresh treatment assertion.
    fn assertion(&self) -> String {
        assertion(&self.f.be_idp, &self.professional, &lu_patient())
    }

    /// An assertion for `purpose` issued at `issued_at`.
    fn assertion_at(&self, purpose: PurposeOfUse, issued_at: time::OffsetDateTime) -> String {
        assertion_at(
            &self.f.be_idp,
            &self.professional,
            &lu_patient(),
            purpose,
            issued_at,
        )
    }

    /// `GET <BE national API><path>` with a fresh treatment assertion.
    async fn get(&self, path: &str) -> reqwest::Response {
        self.get_with(path, &self.assertion()).await
    }

    /// `GET <BE national API><path>` with `token` as the assertion.
    async fn get_with(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.f.be.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// `GET <BE national API><path>` without an assertion.
    async fn get_without_assertion(&self, path: &str) -> reqwest::Response {
        self.client.get(self.f.be.url(path)).send().await.unwrap()
    }

    /// `POST <BE national API><path>` of FHIR JSON `body` with a fresh
    /// treatment assertion.
    async fn post(&self, path: &str, body: Vec<u8>) -> reqwest::Response {
        self.client
            .post(self.f.be.url(path))
            .header("content-type", FHIR_JSON)
            .bearer_auth(self.assertion())
            .body(body)
            .send()
            .await
            .unwrap()
    }
}

/// `GET <LU national API><path>` by LU's national system of `kind` (at
/// home: no assertion).
async fn get_at_lu(f: &TwoCountries, kind: NationalClientKind, path: &str) -> reqwest::Response {
    f.national_client("LU", kind)
        .get(f.lu.url(path))
        .send()
        .await
        .unwrap()
}

/// `POST <LU national API><path>` of FHIR JSON `body` by LU's national
/// system of `kind`.
async fn post_at_lu(
    f: &TwoCountries,
    kind: NationalClientKind,
    path: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    f.national_client("LU", kind)
        .post(f.lu.url(path))
        .header("content-type", FHIR_JSON)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// The LU patient's access log, as their portal reads it (`rest`: more
/// search parameters).
async fn access_log(f: &TwoCountries, rest: &str) -> Value {
    let path = about_lu_patient("AuditEvent", rest);
    json(
        get_at_lu(f, NationalClientKind::PatientPortal, &path).await,
        200,
    )
    .await
}

async fn push_lu_summary(f: &TwoCountries) -> (String, Vec<u8>) {
    let bytes = loopback::patient_summary(&repo_root(), LU_SYSTEM, LU_PATIENT).unwrap();
    let response = post_at_lu(
        f,
        NationalClientKind::EhrSystem,
        "/fhir/Bundle",
        bytes.clone(),
    )
    .await;
    assert_eq!(
        response.status().as_u16(),
        201,
        "{}",
        response.text().await.unwrap()
    );
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let id = location.rsplit('/').next().unwrap().to_owned();
    (id, bytes)
}

/// The `/metrics` text of `gateway`'s national API, read by `client`.
async fn metrics(gateway: &Running, client: reqwest::Client) -> String {
    client
        .get(gateway.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of the counter `series` (name and labels) in `metrics`.
fn counter(metrics: &str, series: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|n| n.parse().ok())
}

/// The diagnostics of an OperationOutcome's first issue.
fn diagnostics(outcome: &Value) -> &str {
    outcome["issue"][0]["diagnostics"].as_str().unwrap()
}

async fn json(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let body = response.text().await.unwrap();
    assert_eq!(got, status, "{body}");
    serde_json::from_str(&body).unwrap()
}

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

#[tokio::test]
async fn assertions_that_are_replayed_expired_forged_or_for_another_patient_are_refused() {
    let f = federation().await;
    let (lu_id, _) = push_lu_summary(&f).await;
    let patient = lu_patient();
    let doctor = Caller::doctor(&f);
    let search = lu_patient_search();

    // Replayed at BE.
    let token = doctor.assertion();
    let first = doctor.get_with(&search, &token).await;
    assert_eq!(first.status().as_u16(), 200);
    let again = doctor.get_with(&search, &token).await;
    assert_eq!(again.status().as_u16(), 401);
    assert!(again.headers().contains_key("www-authenticate"));

    // Replayed at LU by a peer that skips its own check: LU's ledger refuses.
    let be_ncp = f.federation_client(f.pki.ncp_client("BE"));
    let direct = f.lu.federation_url(&search);
    let be_ncp_asks = |token: String| be_ncp.get(&direct).bearer_auth(token).send();
    let fresh = doctor.assertion();
    let ok = be_ncp_asks(fresh.clone()).await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let replay = be_ncp_asks(fresh).await.unwrap();
    assert_eq!(replay.status().as_u16(), 401);

    // Expired.
    let expired = doctor.assertion_at(
        PurposeOfUse::Treatment,
        time::OffsetDateTime::now_utc() - time::Duration::hours(2),
    );
    let response = doctor.get_with(&search, &expired).await;
    assert_eq!(response.status().as_u16(), 401);

    // Forged: signed by a key nobody trusts under BE's issuer and kid.
    let forger_dir = f.dir.path().join("forger");
    let forger_pki = dev_pki::generate(&forger_dir, &DevPkiSpec::for_tests(&["BE"])).unwrap();
    let forged = loopback::identity_provider(&forger_pki, "BE").unwrap();
    let response = doctor
        .get_with(&search, &assertion(&forged, &be_doctor(), &patient))
        .await;
    assert_eq!(response.status().as_u16(), 401);

    // No assertion at all.
    let response = doctor.get_without_assertion(&search).await;
    assert_eq!(response.status().as_u16(), 401);

    // An assertion for another patient does not open this patient's Bundle:
    // to the caller it does not exist.
    let other = PatientRef::new(LU_SYSTEM, "1990010112345");
    let response = doctor
        .get_with(
            &format!("/fhir/Bundle/LU.{lu_id}"),
            &assertion(&f.be_idp, &be_doctor(), &other),
        )
        .await;
    assert_eq!(response.status().as_u16(), 404);

    // A LU assertion sent by the BE NCP: the issuer's country is not the
    // calling NCP's country.
    let response = be_ncp_asks(assertion(&f.lu_idp, &be_doctor(), &patient))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);

    // A pharmacist may not read the patient summary (the shipped policy).
    let pharmacy = Caller::pharmacy(&f, be_professional("2262"));
    let response = pharmacy.get(&search).await;
    assert_eq!(response.status().as_u16(), 403);

    // Every refusal is in LU's audit trail too, and the chain holds.
    let lu_audit = f.lu.audit().await;
    assert!(lu_audit.first_broken.is_none());
    assert!(lu_audit.records >= 5, "{}", lu_audit.records);
    f.stop().await;
}

#[tokio::test]
async fn certificates_that_are_revoked_expired_or_from_another_ca_never_reach_the_api() {
    let f = federation().await;
    let direct = f.lu.federation_url(&lu_patient_search());
    for negative in [
        Negative::NcpClientRevoked,
        Negative::NcpClientExpired,
        Negative::NcpClientWrongCa,
        Negative::NcpClientWrongEku,
        Negative::NcpClientCaFlagged,
    ] {
        let client = f.federation_client(f.pki.negative("BE", negative));
        let result = client.get(&direct).send().await;
        assert!(result.is_err(), "{negative:?} got through: {result:?}");
    }
    // Another country's national client certificate on the federation
    // listener: refused at the handshake (LU does not trust BE's national CA).
    let national = common::client_with(
        f.pki
            .national_client("BE", NationalClientKind::DoctorSystem),
        f.pki.trust(&Authority::Federation),
    );
    assert!(national.get(&direct).send().await.is_err());
    // LU's own national system on LU's federation listener: verified against
    // LU's national CA, then told where it belongs (403 with an
    // OperationOutcome, on every route) and recorded as a Security Alert;
    // nothing of the API runs.
    let misdirected = common::client_with(
        f.pki.national_client("LU", NationalClientKind::EhrSystem),
        f.pki.trust(&Authority::Federation),
    );
    for path in [direct.clone(), f.lu.federation_url("/healthz")] {
        let response = misdirected.get(&path).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 403);
        let outcome: serde_json::Value = response.json().await.unwrap();
        assert_eq!(outcome["resourceType"], "OperationOutcome");
        assert_eq!(outcome["issue"][0]["code"], "forbidden");
        assert!(diagnostics(&outcome).contains("national API"), "{outcome}");
    }
    // No client certificate at all (the server is verified, the client
    // shows nothing).
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        rustls_pki_types::CertificateDer::pem_file_iter(f.pki.ca_cert(&Authority::Federation))
            .unwrap()
    {
        roots.add(cert.unwrap()).unwrap();
    }
    let anonymous_tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let anonymous = reqwest::Client::builder()
        .use_preconfigured_tls(anonymous_tls)
        .build()
        .unwrap();
    assert!(anonymous.get(&direct).send().await.is_err());
    // A federation listener whose CRL is stale refuses everyone (fail closed).
    let stale_files = f.another_run("stale", Ports::free().unwrap(), Ports::free().unwrap());
    let mut stale_config = stale_files.gateway("LU", stale_files.lu);
    federation_settings(&mut stale_config);
    stale_config.federation_crl = f.pki.stale_crl(&Authority::Federation);
    let stale = start(&stale_config).await;
    let good_ncp = f.federation_client(f.pki.ncp_client("BE"));
    assert!(
        good_ncp
            .get(stale.federation_url("/healthz"))
            .send()
            .await
            .is_err()
    );
    stale.stop().await;
    // Nothing reached LU's API; each refused connection is a Security Alert
    // AuditEvent in LU's chain (written in the background: the 7 refusals
    // above and the misdirected national system's connection), and counted
    // by reason on LU's /metrics.
    let mut audit = f.lu.audit().await;
    for _ in 0..50 {
        if audit.records >= 8 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        audit = f.lu.audit().await;
    }
    assert_eq!(
        audit.records, 8,
        "one security alert per refused connection"
    );
    assert!(audit.first_broken.is_none());
    let metrics = metrics(
        &f.lu,
        f.national_client("LU", NationalClientKind::EhrSystem),
    )
    .await;
    for reason in ["revoked", "expired", "unknown_issuer", "no_certificate"] {
        let series = format!(
            "ehds_tls_handshakes_total{{listener=\"federation\",result=\"refused\",reason=\"{reason}\"}}"
        );
        let count = counter(&metrics, &series).unwrap_or(0);
        assert!(count >= 1, "no {reason} refusal counted:\n{metrics}");
    }
    assert!(
        metrics.contains(
            "ehds_tls_handshakes_total{listener=\"federation\",result=\"misdirected-client\"} 1\n"
        ),
        "{metrics}"
    );
    f.stop().await;
}

#[tokio::test]
async fn malformed_identifiers_never_cross_the_border_and_dead_or_stalling_peers_answer_promptly() {
    let f = federation().await;
    let doctor = Caller::doctor(&f);
    // 12 digits where LU's rule wants 13: refused at BE.
    let response = doctor
        .get(&format!(
            "/fhir/Patient?identifier={LU_SYSTEM}|123456789012"
        ))
        .await;
    let outcome = json(response, 400).await;
    assert_eq!(outcome["issue"][0]["expression"][0], "identifier");
    // An identifier without its system.
    let response = doctor
        .get(&format!("/fhir/Patient?identifier={LU_PATIENT}"))
        .await;
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(f.lu.audit().await.records, 0, "nothing crossed the border");

    // LU goes down: BE answers 502 at once.
    let lu_federation = f.lu.federation;
    f.lu.stop().await;
    let started = Instant::now();
    let response = doctor.get(&lu_patient_search()).await;
    assert_eq!(response.status().as_u16(), 502);
    assert!(started.elapsed() < Duration::from_secs(5));

    // Another NCP with a valid federation certificate (BE's) answers at
    // LU's address: its certificate is not the directory's NCP for LU, so
    // nothing it says is passed on.
    let impostor_files = f.another_run(
        "impostor",
        Ports::free().unwrap(),
        Ports {
            national: loopback::free_port().unwrap(),
            federation: lu_federation.port(),
        },
    );
    let mut impostor_config = impostor_files.gateway("BE", impostor_files.lu);
    federation_settings(&mut impostor_config);
    let impostor = start(&impostor_config).await;
    let response = doctor.get(&lu_patient_search()).await;
    let outcome = json(response, 502).await;
    assert!(
        diagnostics(&outcome).contains("not the directory's NCP"),
        "{outcome}"
    );
    impostor.stop().await;

    // Something at LU's address accepts connections and never answers: 504
    // within BE's timeouts (connect 2 s, request 3 s).
    let stall = tokio::net::TcpListener::bind(lu_federation).await.unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = stall.accept().await {
            held.push(socket);
        }
    });
    let started = Instant::now();
    let response = doctor.get(&lu_patient_search()).await;
    let status = response.status().as_u16();
    assert!(status == 504 || status == 502, "{status}");
    assert!(started.elapsed() < Duration::from_secs(8));
    holder.abort();
    // BE audited each failed relay, chain intact.
    let be_audit = f.be.audit().await;
    assert!(be_audit.first_broken.is_none());
    assert!(be_audit.records >= 5);
    f.be.stop().await;
}

/// `ehds-gateway demo` tells the whole journey from the repository root.
#[test]
fn the_demo_shows_the_journey_the_refusals_and_intact_audit_trails() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ehds-gateway"))
        .arg("demo")
        .current_dir(repo_root())
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let story = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{story}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "POST /fhir/Bundle -> 201 Created",
        "1 match(es): Martha DeLarosa",
        "SHA-256 identical to what the hospital pushed",
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
        "NCP Belgium: 12 records, chain intact",
    ] {
        assert!(
            story.contains(expected),
            "missing {expected:?} in:\n{story}"
        );
    }
    // Luxembourg's 10 records, and Belgium's report of the replayed
    // assertion it refused (sent in the background: almost always there).
    assert!(
        story.contains("NCP Luxembourg: 11 records, chain intact")
            || story.contains("NCP Luxembourg: 10 records, chain intact"),
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

/// An OCSP responder for the federation CA (`openssl ocsp`), killed on drop.
struct OcspResponder(std::process::Child);

impl OcspResponder {
    fn start(pki: &DevPkiLayout, port: u16) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new("openssl")
            .arg("ocsp")
            .arg("-index")
            .arg(pki.ocsp_index())
            .args(["-port", &port.to_string()])
            .arg("-rsigner")
            .arg(pki.ca_cert(&Authority::Federation))
            .arg("-rkey")
            .arg(pki.ca_key(&Authority::Federation))
            .arg("-CA")
            .arg(pki.ca_cert(&Authority::Federation))
            .args(["-ndays", "1"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the openssl command is needed");
        let (ready, started) = std::sync::mpsc::channel();
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let ready = ready.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                    if line.contains("waiting for OCSP client connections") {
                        let _ = ready.send(());
                    }
                }
            });
        }
        started
            .recv_timeout(Duration::from_secs(10))
            .expect("the OCSP responder did not start");
        Self(child)
    }
}

impl Drop for OcspResponder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Issue 16, defect 1, end to end: a CRL reload (SIGHUP, or the periodic
/// reload) reaches the connections opened before it. LU's EHR system keeps
/// a connection to LU's national API, and BE's outbound pool one to LU's
/// federation listener; then LU's national CA revokes the EHR system's
/// certificate and the federation CA LU's server certificate. After the
/// reload the EHR system is refused (its open connection was closed, a new
/// handshake fails) and BE no longer reaches LU.
#[tokio::test]
async fn a_crl_reload_reaches_open_connections_and_the_outbound_pool() {
    let f = federation().await;
    let ehr = f.national_client("LU", NationalClientKind::EhrSystem);
    let healthz = f.lu.url("/healthz");
    let response = ehr.get(&healthz).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.bytes().await.unwrap();
    let doctor = Caller::doctor(&f);
    json(doctor.get(&lu_patient_search()).await, 200).await;

    let month = time::Duration::days(30);
    let ehr_cert = f.pki.national_client("LU", NationalClientKind::EhrSystem);
    dev_pki::revoke(
        &f.pki,
        &Authority::National("LU".into()),
        &ehr_cert.cert_chain,
        month,
    )
    .unwrap();
    let lu_server = f.pki.ncp_server("LU");
    dev_pki::revoke(&f.pki, &Authority::Federation, &lu_server.cert_chain, month).unwrap();
    assert_eq!(f.lu.reload_tls(), 0);
    assert_eq!(f.be.reload_tls(), 0);

    // The EHR system's kept-alive connection is closed (the server does so
    // right after the reload), and a new handshake is refused.
    let deadline = Instant::now() + Duration::from_secs(5);
    while ehr.get(&healthz).send().await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the revoked EHR system is still served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // BE's client followed its listener's reload: no pooled connection to
    // LU is used, and the new handshake refuses LU's revoked certificate.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = doctor.get(&lu_patient_search()).await;
        let status = response.status().as_u16();
        if status != 200 {
            assert!(status >= 500, "{status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "BE still reaches LU with a revoked server certificate"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // LU counted the connection it closed.
    let metrics = metrics(
        &f.lu,
        f.national_client("LU", NationalClientKind::DoctorSystem),
    )
    .await;
    let closed = counter(
        &metrics,
        "ehds_tls_connections_closed_total{listener=\"national\",reason=\"recheck\"}",
    );
    assert!(closed >= Some(1), "{metrics}");
    f.stop().await;
}

/// Marks the certificate in `cert` revoked at the OCSP responder only (the
/// CRL still lists it as good).
fn revoke_at_responder(pki: &DevPkiLayout, cert: &Path) {
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(cert)
        .output()
        .unwrap();
    let serial = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .trim_start_matches("serial=")
        .to_ascii_uppercase();
    let index = std::fs::read_to_string(pki.ocsp_index()).unwrap();
    let mut found = false;
    let lines: Vec<String> = index
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            if fields[3].eq_ignore_ascii_case(&serial) {
                found = true;
                format!(
                    "R\t{}\t261101000000Z,keyCompromise\t{}\tunknown\t{}",
                    fields[1], fields[3], fields[5]
                )
            } else {
                line.to_owned()
            }
        })
        .collect();
    assert!(found, "serial {serial} not in the OCSP index");
    std::fs::write(pki.ocsp_index(), lines.join("\n") + "\n").unwrap();
}

/// Certificates that name an OCSP responder are checked there too: with
/// LU's server certificate revoked at the responder (not in the CRL), BE
/// passes nothing on; LU checks BE's client certificate the same way.
#[tokio::test]
async fn a_peer_revoked_by_ocsp_only_is_refused() {
    let ocsp_port = loopback::free_port().unwrap();
    let mut spec = DevPkiSpec::for_tests(&["BE", "LU"]);
    spec.ocsp_url = Some(format!("http://127.0.0.1:{ocsp_port}/"));
    let setup = Setup::new("federation-ocsp", &spec);
    let pki = &setup.run.pki;
    revoke_at_responder(pki, &pki.ncp_server("LU").cert_chain);
    let _responder = OcspResponder::start(pki, ocsp_port);
    let f = setup.start(federation_settings).await;
    let doctor = Caller::doctor(&f);
    let outcome = json(doctor.get(&lu_patient_search()).await, 502).await;
    assert!(
        diagnostics(&outcome).contains("revoked (OCSP)"),
        "{outcome}"
    );
    // A refusal BE decides on its own about LU's patient (an assertion that
    // is no JWT) is reported to LU only after the same check: not to this
    // server.
    let response = doctor.get_with(&lu_patient_search(), "not-a-jwt").await;
    assert_eq!(response.status().as_u16(), 401);
    // The report would be sent in the background: give it time to arrive.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The check came before the request: the revoked server never saw the
    // patient's identifier or the assertion (it recorded no access, and no
    // report of a refusal).
    assert_eq!(f.lu.audit().await.records, 0);
    f.stop().await;
}

/// The LU patient's portal sets (or withdraws) their opt-out of sharing
/// the patient summary towards `country` (every country: `None`).
async fn set_opt_out(f: &TwoCountries, country: Option<&str>, opt_out: bool) -> Value {
    set_opt_out_of(f, "patient-summary", country, opt_out).await
}

/// The same for `service` (`patient-summary`, `eprescription`).
async fn set_opt_out_of(
    f: &TwoCountries,
    service: &str,
    country: Option<&str>,
    opt_out: bool,
) -> Value {
    let mut parameters = serde_json::json!({
        "resourceType": "Parameters",
        "parameter": [
            {"name": "patient", "valueIdentifier": {"system": LU_SYSTEM, "value": LU_PATIENT}},
            {"name": "service", "valueCode": service},
            {"name": "optOut", "valueBoolean": opt_out},
        ]
    });
    if let Some(country) = country {
        parameters["parameter"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"name": "country", "valueCode": country}));
    }
    let body = serde_json::to_vec(&parameters).unwrap();
    let response = post_at_lu(
        f,
        NationalClientKind::PatientPortal,
        "/fhir/$cross-border-opt-out",
        body,
    )
    .await;
    json(response, 200).await
}

/// The patient's opt-out (set by their national portal) refuses at once,
/// saying only that there is no consent; one towards another country does
/// not; withdrawing it restores access. Only the portal may set it.
#[tokio::test]
async fn a_patient_opt_out_refuses_cross_border_access_until_withdrawn() {
    let f = federation().await;
    push_lu_summary(&f).await;
    let doctor = Caller::doctor(&f);
    let search = lu_patient_search();
    let ask = || doctor.get(&search);
    assert_eq!(ask().await.status().as_u16(), 200);

    set_opt_out(&f, Some("FR"), true).await;
    assert_eq!(
        ask().await.status().as_u16(),
        200,
        "an opt-out towards France only"
    );

    set_opt_out(&f, Some("BE"), true).await;
    let refused = json(ask().await, 403).await;
    let text = refused.to_string();
    assert!(text.contains("no consent"), "{text}");
    assert!(
        !text.contains("opt"),
        "the refusal says no more than 'no consent': {text}"
    );

    set_opt_out(&f, Some("BE"), false).await;
    assert_eq!(ask().await.status().as_u16(), 200, "withdrawn");

    set_opt_out(&f, None, true).await;
    assert_eq!(ask().await.status().as_u16(), 403, "every country");
    set_opt_out(&f, None, false).await;
    assert_eq!(ask().await.status().as_u16(), 200);

    // Only the patient portal may change it.
    let response = post_at_lu(
        &f,
        NationalClientKind::EhrSystem,
        "/fhir/$cross-border-opt-out",
        r#"{"resourceType":"Parameters"}"#,
    )
    .await;
    assert_eq!(response.status().as_u16(), 403);
    // The patient's access log, for the portal: every access and refusal,
    // newest first, paged.
    let page = access_log(&f, "&_count=4").await;
    let entries = page["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 4);
    assert_eq!(entries[0]["resource"]["resourceType"], "AuditEvent");
    let recorded = |e: &Value| e["resource"]["recorded"].as_str().unwrap().to_owned();
    assert!(
        recorded(&entries[0]) >= recorded(&entries[1]),
        "newest first"
    );
    let outcomes: Vec<&str> = entries
        .iter()
        .map(|e| e["resource"]["outcome"].as_str().unwrap())
        .collect();
    assert!(
        outcomes.contains(&"0") && outcomes.contains(&"4"),
        "{outcomes:?}"
    );
    // The patient reads why: their own opt-out (the doctor was told only
    // "no consent").
    assert!(
        entries
            .iter()
            .filter(|e| e["resource"]["outcome"] == "4")
            .all(|e| e["resource"]["outcomeDesc"] == "no consent: the patient's opt-out"),
        "{entries:?}"
    );
    let next = page["link"][0]["url"].as_str().unwrap();
    let rest = json(
        get_at_lu(
            &f,
            NationalClientKind::PatientPortal,
            &format!("/fhir/{next}"),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(rest["entry"].as_array().unwrap().len(), 2);
    assert!(rest.get("link").is_none());
    // Nobody but the portal reads it.
    let response = doctor
        .get_without_assertion(&about_lu_patient("AuditEvent", ""))
        .await;
    assert_eq!(response.status().as_u16(), 403);
    let lu_audit = f.lu.audit().await;
    assert!(lu_audit.first_broken.is_none());
    f.stop().await;
}

/// The LU patient's portal sets (or lifts) their restriction of `part`
/// (an `entry`, `section` or `prescription` parameter).
async fn set_restriction(f: &TwoCountries, part: Value, restrict: bool) -> Value {
    let parameters = serde_json::json!({
        "resourceType": "Parameters",
        "parameter": [
            {"name": "patient", "valueIdentifier": {"system": LU_SYSTEM, "value": LU_PATIENT}},
            part,
            {"name": "restrict", "valueBoolean": restrict},
        ]
    });
    let body = serde_json::to_vec(&parameters).unwrap();
    let response = post_at_lu(
        f,
        NationalClientKind::PatientPortal,
        "/fhir/$cross-border-restriction",
        body,
    )
    .await;
    json(response, 200).await
}

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

/// The EU MPD example prescription for the LU patient.
fn lu_prescription() -> Vec<u8> {
    let mut json = example("eu-mpd/MedicationRequest-400C-prescription-cefuroxime-singleline.json");
    json["identifier"][0]["system"] = PRESCRIPTION_SYSTEM.into();
    json["subject"]["identifier"] = serde_json::json!({"system": LU_SYSTEM, "value": LU_PATIENT});
    serde_json::to_vec(&json).unwrap()
}

/// The `prescription` part of a restriction of the LU prescription
/// 10-123EP ([`lu_prescription`]).
fn lu_prescription_part() -> Value {
    serde_json::json!({"name": "prescription", "valueIdentifier": {"system": PRESCRIPTION_SYSTEM, "value": "10-123EP"}})
}

/// The EU MPD dispense 400D-1 of `vials` vials of the LU patient's
/// prescription 10-123EP ([`lu_prescription`]), its identifier
/// `identifier`.
fn vials_dispense(identifier: &str, vials: u32) -> Value {
    let mut json = example("eu-mpd/MedicationDispense-400D-dispense-1.json");
    json["identifier"] = serde_json::json!([{"system": "urn:oid:2.999.1", "value": identifier}]);
    json["authorizingPrescription"] = serde_json::json!([{"identifier": {
        "system": PRESCRIPTION_SYSTEM, "value": "10-123EP"}}]);
    json["subject"]["identifier"] = serde_json::json!({"system": LU_SYSTEM, "value": LU_PATIENT});
    json["quantity"] = serde_json::json!({"value": vials, "unit": "Vial",
        "system": "http://standardterms.edqm.eu", "code": "15060000"});
    json
}

/// A pharmacy in Belgium lists the visitor's prescriptions held in
/// Luxembourg: each as the prescriber wrote it, with whether it is
/// dispensable abroad and what remains; a nurse may not list them.
#[tokio::test]
async fn a_pharmacy_abroad_lists_and_dispenses_the_patients_prescription_exactly_once() {
    let f = federation().await;
    let pushed = lu_prescription();
    let location = push_prescription(&f, pushed.clone(), 201).await;
    assert!(!location.is_empty(), "no Location");
    let mut pharmacist = pharmacist_of("BE-PHARM-9");
    pharmacist.organisation.name = "Apotheek onder de Toren".into();
    let pharmacy = Caller::pharmacy(&f, pharmacist.clone());
    let list = about_lu_patient("MedicationRequest", "&status=active");
    let found = json(pharmacy.get(&list).await, 200).await;
    assert_eq!(found["total"], 1);
    let entry = &found["entry"][0];
    let sent: Value = serde_json::from_slice(&pushed).unwrap();
    assert_eq!(
        entry["resource"], sent,
        "the prescription as the prescriber wrote it"
    );
    assert_eq!(listed_field(entry, "dispensable")["valueBoolean"], true);
    assert_eq!(
        listed_field(entry, "remaining")["valueQuantity"]["value"],
        21
    );
    assert_eq!(
        listed_field(entry, "substitutionAllowed")["valueBoolean"],
        true
    );
    // The prescriber withdraws it from dispensing abroad: listed with the
    // reason, not dispensable; then makes it available again.
    let withdrawn = set_cross_border_status(
        &f,
        &location,
        "not-available-abroad",
        Some("to be dispensed in Luxembourg only"),
    )
    .await;
    assert_eq!(withdrawn.status().as_u16(), 200);
    let relisted = json(pharmacy.get(&list).await, 200).await;
    let metadata = relisted["entry"][0]["search"]["extension"][0]["extension"].to_string();
    assert!(metadata.contains(r#""valueBoolean":false"#), "{metadata}");
    assert!(metadata.contains("Luxembourg only"), "{metadata}");
    let available = set_cross_border_status(&f, &location, "active", None).await;
    assert_eq!(available.status().as_u16(), 200);
    // The pharmacy dispenses 5 of the 21 vials; the prescription at home
    // is updated once, whatever the retries.
    let dispense = |identifier: &str, vials: u32| {
        serde_json::to_vec(&vials_dispense(identifier, vials)).unwrap()
    };
    let first = send_dispense(&f, &pharmacist, dispense("D-1", 5)).await;
    assert_state(&first, 201, "partially-dispensed; remaining=16000");
    let retried = send_dispense(&f, &pharmacist, dispense("D-1", 5)).await;
    assert_state(&retried, 200, "partially-dispensed; remaining=16000");
    // A refused dispense (the patient declined it) is recorded without
    // touching the quantity.
    let mut declined = vials_dispense("D-R", 0);
    declined["status"] = "declined".into();
    let response = send_dispense(&f, &pharmacist, serde_json::to_vec(&declined).unwrap()).await;
    assert_state(&response, 201, "partially-dispensed; remaining=16000");
    let over = json(
        send_dispense(&f, &pharmacist, dispense("D-2", 20)).await,
        409,
    )
    .await;
    assert!(over.to_string().contains("only 16"), "{over}");
    // Another pharmacy that never listed the prescription.
    let mut stranger = pharmacist.clone();
    stranger.organisation.id = "BE-PHARM-10".into();
    let response = send_dispense(&f, &stranger, dispense("D-3", 1)).await;
    assert_eq!(response.status().as_u16(), 409);
    // The pharmacy cancels its first dispense (sent again as
    // entered-in-error): the 5 vials come back, once; another pharmacy
    // cannot cancel it.
    let mut cancel = vials_dispense("D-1", 5);
    cancel["status"] = "entered-in-error".into();
    let cancel = serde_json::to_vec(&cancel).unwrap();
    let response = send_dispense(&f, &stranger, cancel.clone()).await;
    assert_eq!(response.status().as_u16(), 404);
    let response = send_dispense(&f, &pharmacist, cancel.clone()).await;
    assert_state(&response, 200, "active; remaining=21000");
    let response = send_dispense(&f, &pharmacist, cancel).await;
    assert_state(&response, 200, "active; remaining=21000");
    let again = send_dispense(&f, &pharmacist, dispense("D-6", 5)).await;
    assert_eq!(again.status().as_u16(), 201);
    let last = send_dispense(&f, &pharmacist, dispense("D-4", 16)).await;
    assert_state(&last, 201, "completed; remaining=0");
    let after = json(
        send_dispense(&f, &pharmacist, dispense("D-5", 1)).await,
        409,
    )
    .await;
    assert!(after.to_string().contains("completed"), "{after}");

    // ISCO-08 222 (nursing professionals) may not list prescriptions.
    let nurse = Caller::new(
        &f,
        NationalClientKind::DoctorSystem,
        be_professional("2221"),
    );
    let response = nurse.get(&list).await;
    assert_eq!(response.status().as_u16(), 403);
    f.stop().await;
}

/// A field of the search metadata of a listed prescription (`entry` of
/// the list): `dispensable`, `remaining`, `substitutionAllowed`, ….
fn listed_field<'a>(entry: &'a Value, name: &str) -> &'a Value {
    entry["search"]["extension"][0]["extension"]
        .as_array()
        .unwrap()
        .iter()
        .find(|field| field["url"] == name)
        .unwrap()
}

/// Asserts the status of a dispense's answer and the state of the
/// prescription at home it reports (`X-Prescription-State`).
fn assert_state(response: &reqwest::Response, status: u16, state: &str) {
    assert_eq!(
        response.status().as_u16(),
        status,
        "{:?}",
        response.headers()
    );
    assert_eq!(response.headers()["x-prescription-state"], state);
}

/// The prescriber at LU sets the cross-border status of the prescription
/// at `location`, with `reason` when given.
async fn set_cross_border_status(
    f: &TwoCountries,
    location: &str,
    status: &str,
    reason: Option<&str>,
) -> reqwest::Response {
    let mut parameters = serde_json::json!({"resourceType": "Parameters",
        "parameter": [{"name": "status", "valueCode": status}]});
    if let Some(reason) = reason {
        parameters["parameter"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"name": "reason", "valueString": reason}));
    }
    post_at_lu(
        f,
        NationalClientKind::DoctorSystem,
        &format!("{location}/$cross-border-status"),
        serde_json::to_vec(&parameters).unwrap(),
    )
    .await
}

/// A gateway process (`ehds-gateway serve --config FILE`), killed when
/// dropped (also when the test fails).
struct GatewayProcess {
    child: std::process::Child,
}

/// `ehds-gateway audit verify --config FILE`: the store's audit hash chain
/// is intact.
fn verify_audit(config: &Path) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ehds-gateway"))
        .args(["audit", "verify", "--config"])
        .arg(config)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl GatewayProcess {
    /// Starts the binary on `config_text` (written to `dir/name.toml`) and
    /// waits until it accepts connections on `federation_port` (bound only
    /// once configuration, packages and store are ready).
    fn start(dir: &Path, name: &str, config_text: &str, federation_port: u16) -> Self {
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, config_text).unwrap();
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_ehds-gateway"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut process = GatewayProcess { child };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", federation_port)).is_ok() {
                return process;
            }
            if let Some(status) = process.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap();
                panic!("{name} exited with {status}: {log}");
            }
            assert!(Instant::now() < deadline, "{name} did not start in 120 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two replicas of Luxembourg's gateway as two OS processes of the
/// `ehds-gateway` binary, on one PostgreSQL schema (two stateless gateways
/// behind one federation name): eight pharmacies' dispenses of the whole
/// remaining quantity, sent to both at once, are applied exactly once.
/// Under CI a missing `EHDS_TEST_POSTGRES_URL` fails the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replica_processes_on_one_postgresql_dispense_the_last_package_once() {
    let Some(pg) = ehds_test_support::postgres_url() else {
        return;
    };
    let schema = ehds_test_support::unique_schema("replicas");
    let setup = Setup::new("federation-replicas", &DevPkiSpec::for_tests(&["BE", "LU"]));
    let (dir, pki) = (setup.dir.path(), &setup.run.pki);
    // The directory names the first replica; the second has its own ports.
    let replica_ports = [setup.run.lu, Ports::free().unwrap()];
    let lu_config = |ports: Ports| {
        let mut config = setup.run.gateway("LU", ports);
        federation_settings(&mut config);
        config.store_url.clone_from(&pg);
        config.store_schema = Some(schema.clone());
        config.text()
    };
    // One after the other: the first creates and migrates the schema.
    let lu1 = GatewayProcess::start(
        dir,
        "lu1",
        &lu_config(replica_ports[0]),
        replica_ports[0].federation,
    );
    let lu2 = GatewayProcess::start(
        dir,
        "lu2",
        &lu_config(replica_ports[1]),
        replica_ports[1].federation,
    );
    let be = start(&setup.gateway("BE", federation_settings)).await;
    let be_idp = setup.run.identity_provider("BE").unwrap();

    // Prescribed at the second process, listed by the pharmacy through BE
    // (whose directory names the first).
    let response = national_client(pki, "LU", NationalClientKind::DoctorSystem)
        .post(format!(
            "https://127.0.0.1:{}/fhir/MedicationRequest",
            replica_ports[1].national
        ))
        .header("content-type", FHIR_JSON)
        .body(lu_prescription())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let pharmacist = pharmacist_of("BE-PHARM-9");
    let listed = national_client(pki, "BE", NationalClientKind::Pharmacy)
        .get(be.url(&about_lu_patient("MedicationRequest", "")))
        .bearer_auth(assertion(&be_idp, &pharmacist, &lu_patient()))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status().as_u16(), 200);

    // Eight dispenses of all 21 vials at once, to both processes.
    let be_ncp = common::client_with(pki.ncp_client("BE"), pki.trust(&Authority::Federation));
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let dispense = vials_dispense(&format!("R-{i}"), 21);
        let port = replica_ports[i % 2].federation;
        let request = be_ncp
            .post(format!("https://127.0.0.1:{port}/fhir/MedicationDispense"))
            .header("content-type", FHIR_JSON)
            .bearer_auth(assertion(&be_idp, &pharmacist, &lu_patient()))
            .body(serde_json::to_vec(&dispense).unwrap());
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            request.send().await.unwrap().status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [201, 409, 409, 409, 409, 409, 409, 409],
        "{statuses:?}"
    );
    be.stop().await;
    drop(lu1);
    drop(lu2);
    // Both processes wrote to one hash chain; it is intact.
    verify_audit(&dir.join("lu1.toml"));
    let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(&pg)
        .await
        .unwrap();
    sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .execute(&mut connection)
        .await
        .unwrap();
}

/// A pharmacist of `organisation` in Belgium.
fn pharmacist_of(organisation: &str) -> Professional {
    let mut pharmacist = be_professional("2262");
    pharmacist.organisation = Organisation {
        id: organisation.into(),
        name: format!("Pharmacy {organisation}"),
    };
    pharmacist
}

/// Sends `body` as a MedicationDispense to BE's national API as
/// `pharmacist`, for the LU patient.
async fn send_dispense(
    f: &TwoCountries,
    pharmacist: &Professional,
    body: Vec<u8>,
) -> reqwest::Response {
    Caller::pharmacy(f, pharmacist.clone())
        .post("/fhir/MedicationDispense", body)
        .await
}

/// Lists the LU patient's prescriptions at BE as `pharmacist` (which
/// records the retrievals at LU).
async fn list_prescriptions(f: &TwoCountries, pharmacist: &Professional) -> Value {
    let path = about_lu_patient("MedicationRequest", "");
    json(
        Caller::pharmacy(f, pharmacist.clone()).get(&path).await,
        200,
    )
    .await
}

/// Pushes a MedicationRequest at LU as a prescriber system; its Location.
async fn push_prescription(f: &TwoCountries, body: Vec<u8>, expect: u16) -> String {
    let response = post_at_lu(
        f,
        NationalClientKind::DoctorSystem,
        "/fhir/MedicationRequest",
        body,
    )
    .await;
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert_eq!(status, expect, "{}", response.text().await.unwrap());
    location
}

/// `conformance/dispense/manifest.json`: every hand-made case, in order,
/// gets the status, OperationOutcome issue (code and expression) and
/// prescription state the manifest gives.
#[tokio::test]
async fn dispense_conformance_cases_get_the_manifests_answers() {
    let dir = conformance_dir().join("dispense");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["patient"]["system"], LU_SYSTEM);
    assert_eq!(manifest["patient"]["value"], LU_PATIENT);
    let f = federation().await;
    let listing = pharmacist_of("BE-PHARM-LISTING");
    let other = pharmacist_of("BE-PHARM-OTHER");
    let mut locations = Vec::new();
    for prescription in manifest["prescriptions"].as_array().unwrap() {
        let body = std::fs::read(dir.join(prescription["file"].as_str().unwrap())).unwrap();
        locations.push((
            push_prescription(&f, body, 201).await,
            prescription["state"].as_str().unwrap().to_owned(),
        ));
    }
    let listed = list_prescriptions(&f, &listing).await;
    assert_eq!(listed["total"], locations.len());
    for (location, state) in &locations {
        if state == "listed" {
            continue;
        }
        let reason = Some("set by the conformance manifest");
        let response = set_cross_border_status(&f, location, state, reason).await;
        assert_eq!(response.status().as_u16(), 200, "{state}");
    }
    let cases = manifest["cases"].as_array().unwrap();
    assert!(cases.len() >= 15);
    for case in cases {
        let file = case["file"].as_str().unwrap();
        assert!(
            case["source"].as_str().is_some_and(|s| !s.is_empty()),
            "{file}: no source"
        );
        let pharmacist = match case["pharmacy"].as_str() {
            Some("other") => &other,
            _ => &listing,
        };
        let body = std::fs::read(dir.join(file)).unwrap();
        let response = send_dispense(&f, pharmacist, body).await;
        let status = response.status().as_u16();
        let state = response
            .headers()
            .get("x-prescription-state")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        let rule = case["rule"].as_str().unwrap();
        assert_eq!(status, case["status"], "{file} ({rule}): {text}");
        if let Some(expected) = case["state"].as_str() {
            assert_eq!(state.as_deref(), Some(expected), "{file} ({rule})");
        }
        if let Some(issue) = case.get("issue") {
            let outcome: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(outcome["resourceType"], "OperationOutcome", "{file}");
            let found =
                outcome["issue"].as_array().unwrap().iter().any(|i| {
                    i["code"] == issue["code"] && i["expression"][0] == issue["expression"]
                });
            assert!(found, "{file} ({rule}): expected {issue}, got {text}");
        }
    }
    // The refused cases changed nothing: what the list shows at the end.
    let remaining: Vec<Value> = list_prescriptions(&f, &listing).await["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            serde_json::json!([
                e["resource"]["identifier"][0]["value"],
                listed_field(e, "remaining")["valueQuantity"]["value"]
            ])
        })
        .collect();
    assert!(
        remaining.contains(&serde_json::json!(["CF-OPEN", 21])),
        "{remaining:?}"
    );
    assert!(
        remaining.contains(&serde_json::json!(["CF-PAIR-1", 1])),
        "{remaining:?}"
    );
    // Completed: no longer in the default list.
    assert!(
        !remaining.iter().any(|r| r[0] == "CF-PAIR-2"),
        "{remaining:?}"
    );
    assert!(f.lu.audit().await.first_broken.is_none());
    assert!(f.be.audit().await.first_broken.is_none());
    f.stop().await;
}

/// An MPD or IHE MPD example file under `conformance/examples/`, parsed.
fn example(path: &str) -> Value {
    serde_json::from_slice(&std::fs::read(conformance_dir().join("examples").join(path)).unwrap())
        .unwrap()
}

/// What cross-border exchange needs and the examples leave out, added and
/// nothing else changed: a system for the prescription's identifier (the
/// examples give values only) and the patient's national identifier
/// (`subject.identifier`; the examples reference `Patient/patient1`).
fn example_prescription(path: &str, system: &str) -> Vec<u8> {
    let mut json = example(path);
    json["identifier"][0]["system"] = system.into();
    json["subject"]["identifier"] = serde_json::json!({"system": LU_SYSTEM, "value": LU_PATIENT});
    serde_json::to_vec(&json).unwrap()
}

/// The same for a dispense: an identifier (the examples have none; a
/// retry is recognised by it), the patient's identifier, and each
/// `authorizingPrescription` as the list gives it — the identifier of the
/// pushed example it references (`MedicationRequest/<id>` in 400D-1/2 and
/// 400E), or the example's own identifier value with the system it was
/// pushed under (300D). Status and quantity are left as published.
fn example_dispense(path: &str, system: &str, ids: &[(&str, &str)]) -> Vec<u8> {
    let mut json = example(path);
    let id = json["id"].as_str().unwrap().to_owned();
    json["identifier"] = serde_json::json!([{"system": "urn:oid:2.999.1", "value": id}]);
    json["subject"]["identifier"] = serde_json::json!({"system": LU_SYSTEM, "value": LU_PATIENT});
    for item in json["authorizingPrescription"].as_array_mut().unwrap() {
        let value = match item["reference"].as_str() {
            Some(reference) => {
                let target = reference.trim_start_matches("MedicationRequest/");
                ids.iter()
                    .find(|(id, _)| *id == target)
                    .unwrap()
                    .1
                    .to_owned()
            }
            None => item["identifier"]["value"].as_str().unwrap().to_owned(),
        };
        *item = serde_json::json!({"identifier": {"system": system, "value": value}});
    }
    serde_json::to_vec(&json).unwrap()
}

/// The HL7 Europe MPD and IHE MPD examples drive a dispense journey: their
/// prescriptions are pushed at LU and listed by a pharmacy in BE, and their
/// dispenses are applied as published — the two dispenses of 400C in UCUM
/// "1" (packages of another product) are refused with both units named,
/// the declined 400E is recorded without touching the quantity, and 300D,
/// one dispense for two requests counting pessaries and grams, is refused
/// as a whole (nothing changes on either). Then 400D-1 with its quantity
/// expressed in the prescription's unit (its package holds 10 vials,
/// Medication 01C `amount`) is applied.
#[tokio::test]
async fn the_mpd_and_ihe_examples_drive_the_dispense_journey() {
    const EU: &str = "urn:oid:1.3.182.4.4.99.1";
    const IHE: &str = "urn:oid:1.3.182.4.4.99.2";
    let f = federation().await;
    let eu = [
        "eu-mpd/MedicationRequest-400C-prescription-cefuroxime-singleline.json",
        "eu-mpd/MedicationRequest-300C-2-medication-prescription-request1.json",
        "eu-mpd/MedicationRequest-300C-2-medication-prescription-request2.json",
    ];
    for path in eu {
        push_prescription(&f, example_prescription(path, EU), 201).await;
    }
    let ihe = [
        "ihe-mpd/MedicationRequest-10-prescription-cefuroxime-singleline.json",
        "ihe-mpd/MedicationRequest-100-3-medication-prescription-request1.json",
    ];
    for path in ihe {
        push_prescription(&f, example_prescription(path, IHE), 201).await;
    }
    let pharmacist = pharmacist_of("BE-PHARM-EXAMPLES");
    let listed = list_prescriptions(&f, &pharmacist).await;
    assert_eq!(listed["total"], 5);
    let ids = [
        ("400C-prescription-cefuroxime-singleline", "10-123EP"),
        ("10-prescription-cefuroxime-singleline", "10-123EP"),
    ];
    let state_of = |listed: &Value, system: &str, value: &str| -> Value {
        listed["entry"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| {
                e["resource"]["identifier"][0]["system"] == system
                    && e["resource"]["identifier"][0]["value"] == value
            })
            .map(|e| listed_field(e, "remaining")["valueQuantity"].clone())
            .unwrap()
    };
    // 400D-1 and 400D-2 (and IHE 10-dispense-1): "1" of a package, not a vial.
    for (path, system) in [
        ("eu-mpd/MedicationDispense-400D-dispense-1.json", EU),
        ("eu-mpd/MedicationDispense-400D-dispense-2.json", EU),
        ("ihe-mpd/MedicationDispense-10-dispense-1.json", IHE),
    ] {
        let response = send_dispense(&f, &pharmacist, example_dispense(path, system, &ids)).await;
        let outcome = json(response, 422).await;
        let issue = &outcome["issue"][0];
        assert_eq!(issue["code"], "business-rule", "{path}");
        assert_eq!(issue["expression"][0], "MedicationDispense.quantity.code");
        let text = issue["diagnostics"].to_string() + &issue["details"].to_string();
        assert!(
            text.contains("'1'") && text.contains("'15060000'"),
            "{path}: {outcome}"
        );
    }
    // 400E: declined, recorded, quantity untouched.
    let response = send_dispense(
        &f,
        &pharmacist,
        example_dispense(
            "eu-mpd/MedicationDispense-400E-refused-dispense.json",
            EU,
            &ids,
        ),
    )
    .await;
    assert_state(&response, 201, "active; remaining=21000");
    // 300D (and its IHE twin): one dispense, two requests in pessaries
    // and grams: refused as a whole.
    for path in [
        "eu-mpd/MedicationDispense-300D-dispense-for-2-requests.json",
        "ihe-mpd/MedicationDispense-300-dispense-for-2-requests.json",
    ] {
        let response = send_dispense(&f, &pharmacist, example_dispense(path, EU, &ids)).await;
        let outcome = json(response, 422).await;
        assert_eq!(
            outcome["issue"][0]["expression"][0],
            "MedicationDispense.quantity.code"
        );
        assert!(
            outcome.to_string().contains("authorizingPrescription[0]"),
            "{outcome}"
        );
    }
    let listed = list_prescriptions(&f, &pharmacist).await;
    assert_eq!(state_of(&listed, EU, "300-1/2")["value"], 6);
    assert_eq!(state_of(&listed, EU, "300-2/2")["value"], 20);
    assert_eq!(state_of(&listed, EU, "10-123EP")["value"], 21);
    // 400D-1 in the prescription's unit: its package holds 10 vials.
    let mut in_vials: Value = serde_json::from_slice(&example_dispense(
        "eu-mpd/MedicationDispense-400D-dispense-1.json",
        EU,
        &ids,
    ))
    .unwrap();
    in_vials["quantity"] = serde_json::json!({"value": 10, "unit": "Vial",
        "system": "http://standardterms.edqm.eu", "code": "15060000"});
    let response = send_dispense(&f, &pharmacist, serde_json::to_vec(&in_vials).unwrap()).await;
    assert_state(&response, 201, "partially-dispensed; remaining=11000");
    f.stop().await;
}

/// A prescriber pushes the HL7 Europe MPD multi-item prescription Bundle
/// (example 100A: three MedicationRequests with a RequestGroup) to
/// `POST /fhir/Bundle`: each item becomes its own prescription, its bytes
/// exactly the item's bytes in the Bundle, the patient taken from the
/// Bundle's Patient entry; the answer is a batch-response; pushing it again
/// stores nothing new; a Bundle with an item whose identifier is taken by
/// other content stores none of its items.
#[tokio::test]
async fn a_prescription_bundle_of_several_items_is_pushed_whole() {
    const SYSTEM: &str = "urn:oid:1.3.182.4.4.99.3";
    let f = federation().await;
    // The example Bundle with its items' identifiers given SYSTEM and its
    // patient the LU patient's identifier.
    let for_lu_patient = |path: &str| {
        let mut bundle = example(path);
        for entry in bundle["entry"].as_array_mut().unwrap() {
            let resource = &mut entry["resource"];
            match resource["resourceType"].as_str().unwrap() {
                "MedicationRequest" => resource["identifier"][0]["system"] = SYSTEM.into(),
                "Patient" => {
                    resource["identifier"] =
                        serde_json::json!([{"system": LU_SYSTEM, "value": LU_PATIENT}]);
                }
                _ => {}
            }
        }
        bundle
    };
    let bundle =
        for_lu_patient("eu-mpd/Bundle-100A-multiitem-prescription-with-orchestration.json");
    let body = serde_json::to_vec(&bundle).unwrap();
    let push =
        |body: Vec<u8>| post_at_lu(&f, NationalClientKind::DoctorSystem, "/fhir/Bundle", body);
    let answer = json(push(body.clone()).await, 201).await;
    assert_eq!(answer["type"], "batch-response");
    let entries = answer["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert!(entries.iter().all(|e| {
        e["response"]["status"] == "201 Created"
            && e["response"]["location"]
                .as_str()
                .unwrap()
                .starts_with("MedicationRequest/")
    }));
    // Each item as the prescriber wrote it, byte for byte.
    let text = String::from_utf8(body.clone()).unwrap();
    for entry in entries {
        let location = entry["response"]["location"].as_str().unwrap();
        let path = format!("/fhir/{location}");
        let stored = get_at_lu(&f, NationalClientKind::DoctorSystem, &path)
            .await
            .text()
            .await
            .unwrap();
        assert!(text.contains(&stored), "an item was not stored as sent");
    }
    let again = json(push(body.clone()).await, 200).await;
    assert!(
        again["entry"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["response"]["status"] == "200 OK")
    );
    let pharmacist = pharmacist_of("BE-PHARM-BUNDLE");
    assert_eq!(list_prescriptions(&f, &pharmacist).await["total"], 3);

    // Another Bundle reusing the first item's identifier with other content:
    // refused whole, its other items not stored.
    let mut clash =
        for_lu_patient("eu-mpd/Bundle-300A-multiitem-prescription-with-orchestration.json");
    clash["entry"][2]["resource"]["identifier"][0]["value"] = "100-1/3".into();
    let refused = push(serde_json::to_vec(&clash).unwrap()).await;
    assert_eq!(refused.status().as_u16(), 409);
    assert_eq!(list_prescriptions(&f, &pharmacist).await["total"], 3);

    // An item whose patient has no identifier system cannot be found abroad.
    let mut anonymous = bundle.clone();
    for entry in anonymous["entry"].as_array_mut().unwrap() {
        if entry["resource"]["resourceType"] == "Patient" {
            entry["resource"]["identifier"] = serde_json::json!([{"value": "12345"}]);
        }
        if entry["resource"]["resourceType"] == "MedicationRequest" {
            let value = entry["resource"]["identifier"][0]["value"]
                .as_str()
                .unwrap()
                .to_owned();
            entry["resource"]["identifier"][0]["value"] = format!("{value}-b").into();
        }
    }
    let outcome = json(push(serde_json::to_vec(&anonymous).unwrap()).await, 422).await;
    assert_eq!(
        outcome["issue"][0]["expression"][0],
        "Bundle.entry[1].resource.subject"
    );
    assert_eq!(list_prescriptions(&f, &pharmacist).await["total"], 3);
    f.stop().await;
}

/// The ePrescription list as documents (NCPeH: DocumentReference with type
/// LOINC 57833-6): a pharmacy abroad lists the visitor's dispensable
/// prescriptions as DocumentReferences, reads one through its own NCP
/// (`MedicationRequest/LU.<id>`, relayed, the prescriber's bytes), and may
/// then dispense it (the read counts as its retrieval); a prescription the
/// patient restricted is not listed.
#[tokio::test]
async fn a_pharmacy_abroad_lists_prescriptions_as_documents_and_reads_one() {
    let f = federation().await;
    let pushed = lu_prescription();
    push_prescription(&f, pushed.clone(), 201).await;
    let pharmacist = pharmacist_of("BE-PHARM-DOCS");
    let pharmacy = Caller::pharmacy(&f, pharmacist.clone());
    let documents = about_lu_patient("DocumentReference", "&type=http://loinc.org|57833-6");
    let list = || async { json(pharmacy.get(&documents).await, 200).await };
    let listed = list().await;
    assert_eq!(listed["total"], 1);
    let reference = &listed["entry"][0]["resource"];
    assert_eq!(reference["type"]["coding"][0]["code"], "57833-6");
    assert_eq!(reference["masterIdentifier"]["value"], "10-123EP");
    let url = reference["content"][0]["attachment"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(url.starts_with("MedicationRequest/LU."), "{url}");
    let read = pharmacy.get(&format!("/fhir/{url}")).await;
    assert_eq!(read.status().as_u16(), 200);
    assert_eq!(
        read.bytes().await.unwrap().to_vec(),
        pushed,
        "the prescriber's bytes"
    );
    // Read, so retrieved: this pharmacy may dispense it.
    let dispense = serde_json::to_vec(&vials_dispense("D-DOC-1", 3)).unwrap();
    let dispensed = send_dispense(&f, &pharmacist, dispense).await;
    assert_eq!(dispensed.status().as_u16(), 201);
    // Restricted by the patient: not listed, not readable.
    set_restriction(&f, lu_prescription_part(), true).await;
    assert_eq!(list().await["total"], 0);
    let hidden = pharmacy.get(&format!("/fhir/{url}")).await;
    assert_eq!(hidden.status().as_u16(), 404);
    let audit = f.lu.audit().await;
    assert!(audit.first_broken.is_none());
    f.stop().await;
}

/// The patient's access log covers both ends: a refusal Belgium decides on
/// its own (an expired assertion never leaves Belgium) is reported to
/// Luxembourg's NCP, which keeps it in its hash chain, so the Luxembourg
/// patient's portal shows it. An NCP reports only what it observed itself.
#[tokio::test]
async fn refusals_decided_abroad_reach_the_patients_access_log_at_home() {
    let f = federation().await;
    push_lu_summary(&f).await;
    let doctor = Caller::doctor(&f);
    let expired = doctor.assertion_at(
        PurposeOfUse::Treatment,
        time::OffsetDateTime::now_utc() - time::Duration::hours(2),
    );
    let refused = doctor.get_with(&lu_patient_search(), &expired).await;
    assert_eq!(refused.status().as_u16(), 401);
    let mut reported = None;
    for _ in 0..50 {
        let log = access_log(&f, "").await;
        reported = log["entry"]
            .as_array()
            .unwrap_or(&Vec::new())
            .iter()
            .find(|e| e["resource"]["source"]["site"] == "BE")
            .cloned();
        if reported.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let reported = reported.expect("Belgium's refusal never reached the access log in Luxembourg");
    assert_eq!(reported["resource"]["outcome"], "4");
    assert!(
        reported["resource"]["outcomeDesc"]
            .as_str()
            .unwrap()
            .starts_with("assertion refused"),
        "{reported}"
    );
    assert!(f.lu.audit().await.first_broken.is_none());

    // Belgium's NCP cannot report an event as observed by Luxembourg.
    let mut forged = reported["resource"].clone();
    forged["source"]["site"] = "LU".into();
    let response = f
        .federation_client(f.pki.ncp_client("BE"))
        .post(f.lu.federation_url("/fhir/AuditEvent"))
        .header("content-type", FHIR_JSON)
        .body(serde_json::to_vec(&forged).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    f.stop().await;
}
