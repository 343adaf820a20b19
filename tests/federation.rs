//! Two real gateways (BE and LU) in one process, over real mutual TLS on
//! 127.0.0.1, with a fresh development PKI: a Belgian doctor treats a visitor
//! from Luxembourg. LU's hospital pushed the patient summary; BE identifies
//! the patient at LU, lists the documents and retrieves the summary, which
//! arrives byte for byte; both gateways audit every step. Then each refusal
//! the federation must make. One module per journey; the helpers they
//! share are here.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::two_countries::{Running, Setup, TwoCountries, national_client, start};
use ehds_access::{AssertionIssuer, Login, Organisation, PatientRef, PurposeOfUse};
use ehds_dev_pki::{self as dev_pki, Authority, DevPkiLayout, DevPkiSpec, Negative};
use ehds_loopback::{self as loopback, GatewayToml, LU_PATIENT, LU_SYSTEM, Ports, be_doctor};
use ehds_test_support::{conformance_dir, repo_root};
use ehds_transport::NationalClientKind;
use rustls_pki_types::pem::PemObject;
use serde_json::Value;
use sha2::{Digest, Sha256};

mod access_log;
mod assertions;
mod certificates;
mod configured_service;
mod consent;
mod eprescription;
mod laboratory;
mod national_eprescription;
mod national_oauth;
mod national_originals;
mod national_source;
mod pdf_original;
mod peers;
mod restriction;
mod summary;

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
fn assertion(idp: &AssertionIssuer, professional: &Login, patient: &PatientRef) -> String {
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
    professional: &Login,
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
fn be_professional(role: &str) -> Login {
    let mut professional = be_doctor();
    professional.professional.role = role.into();
    professional
}

/// A national system in Belgium (a doctor's system, a pharmacy) in the
/// hands of `professional`: each request to BE's national API carries a
/// fresh assertion of theirs about the LU patient, for LU's NCP.
struct Caller<'a> {
    f: &'a TwoCountries,
    client: reqwest::Client,
    professional: Login,
}

impl<'a> Caller<'a> {
    fn new(f: &'a TwoCountries, kind: NationalClientKind, professional: Login) -> Self {
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
    fn pharmacy(f: &'a TwoCountries, pharmacist: Login) -> Self {
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

    /// `GET <BE national API>/fhir/<url>` asking for `accept` (a
    /// Binary's PDF bytes or its FHIR JSON), with a fresh treatment
    /// assertion.
    async fn read(&self, url: &str, accept: &str) -> reqwest::Response {
        self.client
            .get(self.f.be.url(&format!("/fhir/{url}")))
            .bearer_auth(self.assertion())
            .header("accept", accept)
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

/// A pharmacist of `organisation` in Belgium.
fn pharmacist_of(organisation: &str) -> Login {
    let mut pharmacist = be_professional("2262");
    pharmacist.professional.organisation = Organisation {
        id: organisation.into(),
        name: format!("Pharmacy {organisation}"),
    };
    pharmacist
}

/// Sends `body` as a MedicationDispense to BE's national API as
/// `pharmacist`, for the LU patient.
async fn send_dispense(f: &TwoCountries, pharmacist: &Login, body: Vec<u8>) -> reqwest::Response {
    Caller::pharmacy(f, pharmacist.clone())
        .post("/fhir/MedicationDispense", body)
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

/// An MPD or IHE MPD example file under `conformance/examples/`, parsed.
fn example(path: &str) -> Value {
    serde_json::from_slice(&std::fs::read(conformance_dir().join("examples").join(path)).unwrap())
        .unwrap()
}
