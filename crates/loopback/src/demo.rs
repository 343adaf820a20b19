//! `ehds-gateway demo`: the cross-border patient-summary journey on this
//! machine, step by step.
//!
//! Starts two gateways (Luxembourg and Belgium) in this process on loopback,
//! each with its own SQLite store in a temporary folder and the development
//! PKI of `deploy/dev-pki`, then: a Luxembourg hospital pushes a patient
//! summary; a Belgian doctor, treating the visitor, identifies the patient at
//! Luxembourg's NCP through Belgium's, lists the summaries and retrieves one
//! (byte for byte); a pharmacist and a replayed assertion are refused; both
//! audit trails are shown and verified. Development only: it signs
//! assertions with the development identity provider keys.
//!
//! With a national FHIR server (`ehds-gateway demo --national-fhir URL`,
//! issue 19), Luxembourg answers patient summaries from that server on
//! demand (`source = "fhir"`) instead of its store: the demo writes the
//! patient, the summary and a DocumentReference listing it to the server
//! through its own REST API (`PUT`), and the journey then reads the same.
//! The server must be an R4 server reached over plain HTTP on loopback
//! (the gateway's configuration allows `http` there only) that searches
//! `Patient?identifier=` and `DocumentReference?patient=&type=`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ehds_access::{Login, Organisation, PatientRef, PurposeOfUse};
use ehds_dev_pki::{Authority, DevPkiLayout};
use ehds_gateway::{CheckedConfig, Gateway, GatewayConfig};
use ehds_transport::{ClientTimeouts, IdentityFiles, NationalClientKind, TlsIdentity, TrustStore};
use sha2::{Digest, Sha256};

use crate::LoopbackError;
use crate::harness::{self as loopback, LU_PATIENT, LU_SYSTEM, free_port};

/// The content type the demo's clients send (FHIR JSON, as the national
/// API requires).
const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

fn demo_error(what: impl std::fmt::Display) -> LoopbackError {
    LoopbackError::Demo(what.to_string())
}

struct Country {
    code: &'static str,
    national: u16,
    federation: u16,
}

fn config_for(country: &Country, data: &Path, directory: &Path) -> String {
    let lc = country.code.to_ascii_lowercase();
    let pki = "deploy/dev-pki";
    format!(
        r#"[ncp]
country = "{cc}"
[server]
listen = "127.0.0.1:{national}"
[server.tls]
certificate = "{pki}/{lc}/national-server.pem"
private_key = "{pki}/{lc}/national-server.key.pem"
client_cas = ["{pki}/{lc}/national-ca.pem"]
client_crls = ["{pki}/{lc}/national-ca.crl.pem"]
[store]
url = "sqlite://{store}"
[federation]
listen = "127.0.0.1:{federation}"
ncp_id = "ncp-{lc}"
certificate = "{pki}/{lc}/ncp-server.pem"
private_key = "{pki}/{lc}/ncp-server.key.pem"
client_certificate = "{pki}/{lc}/ncp-client.pem"
client_private_key = "{pki}/{lc}/ncp-client.key.pem"
cas = ["{pki}/federation/ca.pem"]
crls = ["{pki}/federation/ca.crl.pem"]
directory = "{directory}"
[assertions]
trust_list = "deploy/config/trust-list.toml"
policy = "deploy/config/access-policy.toml"
"#,
        cc = country.code,
        national = country.national,
        federation = country.federation,
        store = data.join(format!("{lc}.db")).display(),
        directory = directory.display(),
    )
}

fn client(
    identity: IdentityFiles,
    trust: &Authority,
    pki: &DevPkiLayout,
) -> Result<reqwest::Client, LoopbackError> {
    let identity = TlsIdentity::load(&identity)?;
    let trust = TrustStore::load(&pki.trust(trust))?;
    Ok(ehds_transport::federation_client(
        &identity,
        &trust,
        ClientTimeouts {
            connect: Duration::from_secs(5),
            request: Duration::from_secs(30),
        },
    )?)
}

/// Runs the demo from the repository root, writing the story to `out`;
/// with `national_fhir` (a FHIR base URL), Luxembourg's patient summaries
/// come from that national FHIR server (see the module documentation).
pub async fn run(out: &mut impl Write, national_fhir: Option<&str>) -> Result<(), LoopbackError> {
    let data = std::env::temp_dir().join(format!("ehds-demo-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&data).map_err(demo_error)?;
    let result = journey(&data, out, national_fhir).await;
    let _ = std::fs::remove_dir_all(&data);
    result
}

/// The ids the demo writes the summary under on a national FHIR server.
const NATIONAL_PATIENT_ID: &str = "demo-lu-patient";
const NATIONAL_SUMMARY_ID: &str = "demo-lu-summary";
const NATIONAL_REFERENCE_ID: &str = "demo-lu-summary-reference";

async fn journey(
    data: &Path,
    out: &mut impl Write,
    national_fhir: Option<&str>,
) -> Result<(), LoopbackError> {
    let mut say = |line: String| {
        let _ = writeln!(out, "{line}");
    };
    let lu = Country {
        code: "LU",
        national: free_port()?,
        federation: free_port()?,
    };
    let be = Country {
        code: "BE",
        national: free_port()?,
        federation: free_port()?,
    };
    let shipped = std::fs::read_to_string("deploy/config/directory.toml")
        .map_err(|e| demo_error(format!("run from the repository root ({e})")))?;
    let directory: PathBuf = data.join("directory.toml");
    std::fs::write(
        &directory,
        shipped
            .replace(
                "https://ncp.be.ehds.test:8443/fhir",
                &format!("https://127.0.0.1:{}/fhir", be.federation),
            )
            .replace(
                "https://ncp.lu.ehds.test:9443/fhir",
                &format!("https://127.0.0.1:{}/fhir", lu.federation),
            ),
    )
    .map_err(demo_error)?;

    say("== Starting two national contact points on this machine".into());
    let mut lu_toml = config_for(&lu, data, &directory);
    if let Some(base) = national_fhir {
        // Patient id first, then `DocumentReference?patient=`: no chained
        // search needed of the server.
        lu_toml.push_str(&loopback::national_service_toml(
            "patient-summary",
            base,
            "chained_search = false",
        )?);
    }
    let lu_config = GatewayConfig::from_toml(&lu_toml)?.check()?;
    let validator = Arc::new(ehds_gateway::load_validator(&lu_config)?);
    let be_config = GatewayConfig::from_toml(&config_for(&be, data, &directory))?.check()?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for (config, name) in [(&lu_config, "Luxembourg"), (&be_config, "Belgium")] {
        let gateway = Gateway::bind_with_validator(config, Arc::clone(&validator)).await?;
        say(format!(
            "   NCP {name}: national API https://{}, federation https://{}",
            gateway.local_addr()?,
            gateway
                .federation_addr()
                .map_or_else(|| "-".to_owned(), |a| a.to_string())
        ));
        let mut stopped = stopped.clone();
        tasks.push(tokio::spawn(gateway.run(async move {
            let _ = stopped.wait_for(|s| *s).await;
        })));
    }
    if let Some(base) = national_fhir {
        say(format!(
            "   Luxembourg answers patient summaries from its national FHIR server {base}"
        ));
    }
    let outcome = steps(&lu, &be, national_fhir, &mut say).await;
    let _ = stop.send(true);
    for task in tasks {
        let _ = task.await;
    }
    outcome?;
    audit_trails(&lu_config, &be_config, &mut say).await
}

async fn steps(
    lu: &Country,
    be: &Country,
    national_fhir: Option<&str>,
    say: &mut impl FnMut(String),
) -> Result<(), LoopbackError> {
    let pki = DevPkiLayout::new("deploy/dev-pki");
    // The example summary the Luxembourg hospital pushes (the IPS IG's
    // first example, its patient given a Luxembourg national identifier),
    // read from the repository root.
    let summary = loopback::patient_summary(Path::new(""), LU_SYSTEM, LU_PATIENT)?;

    let hospital = client(
        pki.national_client("LU", NationalClientKind::EhrSystem),
        &Authority::National("LU".into()),
        &pki,
    )?;
    say(String::new());
    // What the doctor abroad must receive, byte for byte, and from whom.
    let (summary, origin) = match national_fhir {
        None => {
            say("== 1. A Luxembourg hospital pushes a patient summary to its NCP".into());
            let pushed = hospital
                .post(format!("https://127.0.0.1:{}/fhir/Bundle", lu.national))
                .header("content-type", FHIR_JSON)
                .body(summary.clone())
                .send()
                .await
                .map_err(demo_error)?;
            say(format!(
                "   POST /fhir/Bundle -> {} (validated against FHIR R4 and the IPS profile, stored byte-exact; {} bytes)",
                pushed.status(),
                summary.len()
            ));
            (summary, "what the hospital pushed")
        }
        Some(base) => {
            say("== 1. Luxembourg's national FHIR server holds the patient summary; its NCP asks it on demand".into());
            let held = seed_national_server(base, &summary).await?;
            say(format!(
                "   PUT Patient, Bundle ({} bytes) and DocumentReference on the national server -> stored; nothing is pushed to the NCP",
                held.len()
            ));
            (held, "what the national FHIR server holds")
        }
    };

    say(String::new());
    say("== 2. In Belgium, Dr Peeters treats the visitor and asks through the Belgian NCP".into());
    let idp = loopback::identity_provider(&pki, "BE")?;
    let patient = PatientRef::new(LU_SYSTEM, LU_PATIENT);
    let mut doctor = loopback::be_doctor();
    let assertion = |who: &Login| {
        idp.issue(
            who,
            "urn:ehds:ncp:LU",
            &patient,
            PurposeOfUse::Treatment,
            time::OffsetDateTime::now_utc(),
            time::Duration::minutes(5),
        )
        .map_err(demo_error)
    };
    let doctor_system = client(
        pki.national_client("BE", NationalClientKind::DoctorSystem),
        &Authority::National("BE".into()),
        &pki,
    )?;
    let base = format!("https://127.0.0.1:{}/fhir", be.national);
    let identify = format!("{base}/Patient?identifier={LU_SYSTEM}|{LU_PATIENT}");
    let token = assertion(&doctor)?;
    let found: serde_json::Value = doctor_system
        .get(&identify)
        .bearer_auth(&token)
        .send()
        .await
        .map_err(demo_error)?
        .json()
        .await
        .map_err(demo_error)?;
    let name = found
        .pointer("/entry/0/resource/name/0")
        .map(|n| {
            format!(
                "{} {}",
                n.pointer("/given/0")
                    .and_then(|g| g.as_str())
                    .unwrap_or_default(),
                n.get("family").and_then(|f| f.as_str()).unwrap_or_default()
            )
        })
        .unwrap_or_default();
    say(format!(
        "   GET Patient?identifier=<LU national id> -> {} match(es): {name} (signed assertion: role 2211, purpose TREATMENT)",
        found
            .get("total")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    ));
    let listed: serde_json::Value = doctor_system
        .get(format!(
            "{base}/DocumentReference?patient.identifier={LU_SYSTEM}|{LU_PATIENT}&type=http://loinc.org|60591-5"
        ))
        .bearer_auth(assertion(&doctor)?)
        .send()
        .await
        .map_err(demo_error)?
        .json()
        .await
        .map_err(demo_error)?;
    let url = listed
        .pointer("/entry/0/resource/content/0/attachment/url")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned();
    say(format!(
        "   GET DocumentReference?patient.identifier=…&type=LOINC 60591-5 -> {} summary: {url}",
        listed
            .get("total")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    ));
    let retrieved = doctor_system
        .get(format!("{base}/{url}"))
        .bearer_auth(assertion(&doctor)?)
        .send()
        .await
        .map_err(demo_error)?;
    let status = retrieved.status();
    let bytes = retrieved.bytes().await.map_err(demo_error)?;
    let same = Sha256::digest(&bytes) == Sha256::digest(&summary);
    say(format!(
        "   GET {url} -> {status}, {} bytes, SHA-256 {} {origin}",
        bytes.len(),
        if same {
            "identical to"
        } else {
            "DIFFERENT from"
        }
    ));

    say(String::new());
    say("== 2b. A Luxembourg laboratory's report, retrieved by Dr Peeters".into());
    let report = loopback::laboratory_report(Path::new(""), LU_SYSTEM, LU_PATIENT)?;
    let pushed = hospital
        .post(format!("https://127.0.0.1:{}/fhir/Bundle", lu.national))
        .header("content-type", FHIR_JSON)
        .body(report.clone())
        .send()
        .await
        .map_err(demo_error)?;
    say(format!(
        "   the laboratory: POST /fhir/Bundle -> {} (validated against HL7 Europe Laboratory Bundle-eu-lab 0.1.0)",
        pushed.status()
    ));
    let labs: serde_json::Value = doctor_system
        .get(format!(
            "{base}/DocumentReference?patient.identifier={LU_SYSTEM}|{LU_PATIENT}&type=http://loinc.org|11502-2"
        ))
        .bearer_auth(assertion(&doctor)?)
        .send()
        .await
        .map_err(demo_error)?
        .json()
        .await
        .map_err(demo_error)?;
    let lab_url = labs
        .pointer("/entry/0/resource/content/0/attachment/url")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned();
    say(format!(
        "   GET DocumentReference?patient.identifier=…&type=LOINC 11502-2 -> {} laboratory report(s): {lab_url}",
        labs.get("total")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    ));
    let retrieved = doctor_system
        .get(format!("{base}/{lab_url}"))
        .bearer_auth(assertion(&doctor)?)
        .send()
        .await
        .map_err(demo_error)?;
    let status = retrieved.status();
    let bytes = retrieved.bytes().await.map_err(demo_error)?;
    let same = Sha256::digest(&bytes) == Sha256::digest(&report);
    say(format!(
        "   GET {lab_url} -> {status}, {} bytes, SHA-256 {} what the laboratory pushed",
        bytes.len(),
        if same {
            "identical to"
        } else {
            "DIFFERENT from"
        }
    ));

    say(String::new());
    say("== 3. What is refused".into());
    let replay = doctor_system
        .get(&identify)
        .bearer_auth(&token)
        .send()
        .await
        .map_err(demo_error)?;
    say(format!(
        "   the same assertion a second time -> {}",
        replay.status()
    ));
    doctor.professional.role = "2262".into();
    doctor.professional.name = "Pharmacist Jan Claes".into();
    let pharmacy = client(
        pki.national_client("BE", NationalClientKind::Pharmacy),
        &Authority::National("BE".into()),
        &pki,
    )?;
    let refused = pharmacy
        .get(&identify)
        .bearer_auth(assertion(&doctor)?)
        .send()
        .await
        .map_err(demo_error)?;
    say(format!(
        "   a pharmacist (ISCO-08 2262) asking for the patient summary -> {}",
        refused.status()
    ));
    let malformed = doctor_system
        .get(format!("{base}/Patient?identifier={LU_SYSTEM}|12345"))
        .bearer_auth(assertion(&doctor)?)
        .send()
        .await
        .map_err(demo_error)?;
    say(format!(
        "   an identifier that breaks Luxembourg's rules (5 digits, not 13) -> {} (never left Belgium)",
        malformed.status()
    ));

    say(String::new());
    say("== 4. An ePrescription from Luxembourg, dispensed in Belgium".into());
    let prescription_text = std::fs::read_to_string(
        "conformance/examples/eu-mpd/MedicationRequest-400C-prescription-cefuroxime-singleline.json",
    )
    .map_err(demo_error)?;
    let mut prescription: serde_json::Value =
        serde_json::from_str(&prescription_text).map_err(demo_error)?;
    if let Some(identifier) = prescription.pointer_mut("/identifier/0")
        && let Some(object) = identifier.as_object_mut()
    {
        object.insert("system".into(), "urn:oid:1.3.182.4.4.99".into());
    }
    if let Some(subject) = prescription
        .get_mut("subject")
        .and_then(|s| s.as_object_mut())
    {
        subject.insert(
            "identifier".into(),
            serde_json::json!({"system": LU_SYSTEM, "value": LU_PATIENT}),
        );
    }
    let prescriber = client(
        pki.national_client("LU", NationalClientKind::DoctorSystem),
        &Authority::National("LU".into()),
        &pki,
    )?;
    let pushed = prescriber
        .post(format!(
            "https://127.0.0.1:{}/fhir/MedicationRequest",
            lu.national
        ))
        .header("content-type", FHIR_JSON)
        .body(prescription.to_string())
        .send()
        .await
        .map_err(demo_error)?;
    say(format!(
        "   a Luxembourg doctor prescribes cefuroxime, 21 vials -> {} ({})",
        pushed.status(),
        pushed
            .headers()
            .get("x-prescription-state")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    ));
    doctor.professional.role = "2262".into();
    doctor.professional.name = "Pharmacist Jan Claes".into();
    doctor.professional.organisation = Organisation {
        id: "BE-PHARM-9".into(),
        name: "Apotheek onder de Toren".into(),
    };
    let listed: serde_json::Value = pharmacy
        .get(format!(
            "{base}/MedicationRequest?patient.identifier={LU_SYSTEM}|{LU_PATIENT}&status=active"
        ))
        .bearer_auth(assertion(&doctor)?)
        .send()
        .await
        .map_err(demo_error)?
        .json()
        .await
        .map_err(demo_error)?;
    say(format!(
        "   a Belgian pharmacy lists the visitor's prescriptions -> {} dispensable: {}",
        listed
            .get("total")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0),
        listed
            .pointer("/entry/0/search/extension/0/extension/1/valueString")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
    ));
    let dispense_text = std::fs::read_to_string(
        "conformance/examples/eu-mpd/MedicationDispense-400D-dispense-1.json",
    )
    .map_err(demo_error)?;
    let mut dispense: serde_json::Value =
        serde_json::from_str(&dispense_text).map_err(demo_error)?;
    if let Some(object) = dispense.as_object_mut() {
        object.insert(
            "identifier".into(),
            serde_json::json!([{"system": "urn:oid:2.999.1", "value": "BE-D-0001"}]),
        );
        object.insert(
            "authorizingPrescription".into(),
            serde_json::json!([{"identifier": {"system": "urn:oid:1.3.182.4.4.99", "value": "10-123EP"}}]),
        );
        object.insert(
            "quantity".into(),
            serde_json::json!({"value": 7, "unit": "Vial", "system": "http://standardterms.edqm.eu", "code": "15060000"}),
        );
    }
    if let Some(subject) = dispense.get_mut("subject").and_then(|s| s.as_object_mut()) {
        subject.insert(
            "identifier".into(),
            serde_json::json!({"system": LU_SYSTEM, "value": LU_PATIENT}),
        );
    }
    for attempt in [
        "dispenses 7 vials",
        "sends the same dispense again (a retry)",
    ] {
        let answer = pharmacy
            .post(format!("{base}/MedicationDispense"))
            .header("content-type", FHIR_JSON)
            .bearer_auth(assertion(&doctor)?)
            .body(dispense.to_string())
            .send()
            .await
            .map_err(demo_error)?;
        say(format!(
            "   the pharmacy {attempt} -> {} (prescription at home: {})",
            answer.status(),
            answer
                .headers()
                .get("x-prescription-state")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
        ));
    }

    say(String::new());
    say("== 5. The patient's rights, through Luxembourg's patient portal".into());
    let portal = client(
        pki.national_client("LU", NationalClientKind::PatientPortal),
        &Authority::National("LU".into()),
        &pki,
    )?;
    let choice = |opt_out: bool| {
        serde_json::json!({
            "resourceType": "Parameters",
            "parameter": [
                {"name": "patient", "valueIdentifier": {"system": LU_SYSTEM, "value": LU_PATIENT}},
                {"name": "service", "valueCode": "patient-summary"},
                {"name": "country", "valueCode": "BE"},
                {"name": "optOut", "valueBoolean": opt_out},
            ]
        })
        .to_string()
    };
    let opt_out_url = format!(
        "https://127.0.0.1:{}/fhir/$cross-border-opt-out",
        lu.national
    );
    let set = portal
        .post(&opt_out_url)
        .header("content-type", FHIR_JSON)
        .body(choice(true))
        .send()
        .await
        .map_err(demo_error)?;
    say(format!(
        "   the patient opts out of sharing the summary with Belgium -> {}",
        set.status()
    ));
    doctor.professional.role = "2211".into();
    doctor.professional.name = "Dr Anne Peeters".into();
    doctor.professional.organisation = Organisation {
        id: "BE-ORG-17".into(),
        name: "UZ Leuven".into(),
    };
    let refused = doctor_system
        .get(&identify)
        .bearer_auth(assertion(&doctor)?)
        .send()
        .await
        .map_err(demo_error)?;
    say(format!(
        "   Dr Peeters asks again -> {} (\"no consent\", nothing more)",
        refused.status()
    ));
    let withdrawn = portal
        .post(&opt_out_url)
        .header("content-type", FHIR_JSON)
        .body(choice(false))
        .send()
        .await
        .map_err(demo_error)?;
    let again = doctor_system
        .get(&identify)
        .bearer_auth(assertion(&doctor)?)
        .send()
        .await
        .map_err(demo_error)?;
    say(format!(
        "   the patient withdraws the opt-out -> {}; Dr Peeters asks again -> {}",
        withdrawn.status(),
        again.status()
    ));
    // Restricting a part of the summary: the problem list (LOINC 11450-4).
    let restriction = |restrict: bool| {
        serde_json::json!({
            "resourceType": "Parameters",
            "parameter": [
                {"name": "patient", "valueIdentifier": {"system": LU_SYSTEM, "value": LU_PATIENT}},
                {"name": "section", "valueCoding": {"system": "http://loinc.org", "code": "11450-4"}},
                {"name": "restrict", "valueBoolean": restrict},
            ]
        })
        .to_string()
    };
    let restriction_url = format!(
        "https://127.0.0.1:{}/fhir/$cross-border-restriction",
        lu.national
    );
    let restricted = portal
        .post(&restriction_url)
        .header("content-type", FHIR_JSON)
        .body(restriction(true))
        .send()
        .await
        .map_err(demo_error)?;
    let variant = doctor_system
        .get(format!("{base}/{url}"))
        .bearer_auth(assertion(&doctor)?)
        .send()
        .await
        .map_err(demo_error)?;
    let variant_status = variant.status();
    let variant: serde_json::Value = variant.json().await.map_err(demo_error)?;
    let problems = variant
        .pointer("/entry/0/resource/section")
        .and_then(serde_json::Value::as_array)
        .and_then(|sections| {
            sections.iter().find(|s| {
                s.pointer("/code/coding/0/code")
                    .and_then(serde_json::Value::as_str)
                    == Some("11450-4")
            })
        })
        .and_then(|s| s.pointer("/emptyReason/coding/0/code"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or("?");
    say(format!(
        "   the patient hides the problem list from abroad -> {}; Dr Peeters retrieves the summary -> {variant_status}: a new document (Bundle.id {}), its problem section empty ({problems}), still a valid IPS",
        restricted.status(),
        variant
            .get("id")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("?"),
    ));
    let lifted = portal
        .post(&restriction_url)
        .header("content-type", FHIR_JSON)
        .body(restriction(false))
        .send()
        .await
        .map_err(demo_error)?;
    say(format!(
        "   the patient lifts the restriction -> {}",
        lifted.status()
    ));
    let log: serde_json::Value = portal
        .get(format!(
            "https://127.0.0.1:{}/fhir/AuditEvent?patient.identifier={LU_SYSTEM}|{LU_PATIENT}&_count=100",
            lu.national
        ))
        .send()
        .await
        .map_err(demo_error)?
        .json()
        .await
        .map_err(demo_error)?;
    say(format!(
        "   the patient's access log at Luxembourg (GET AuditEvent?patient.identifier=…): {} entries",
        log.get("entry")
            .and_then(serde_json::Value::as_array)
            .map_or(0, Vec::len)
    ));
    Ok(())
}

async fn audit_trails(
    lu: &CheckedConfig,
    be: &CheckedConfig,
    say: &mut impl FnMut(String),
) -> Result<(), LoopbackError> {
    say(String::new());
    say(
        "== 6. The audit trails (FHIR AuditEvents in hash chains) of both NCPs for this patient"
            .into(),
    );
    for (config, name) in [(lu, "Luxembourg"), (be, "Belgium")] {
        let store = ehds_store::Store::open(&config.store).await?;
        let records = store
            .audit_for_patient(&format!("{LU_SYSTEM}|{LU_PATIENT}"), 50, None)
            .await?;
        let report = store.verify_audit_chain().await?;
        store.close().await;
        say(format!(
            "   NCP {name}: {} records, chain {}",
            report.records,
            if report.is_intact() {
                "intact"
            } else {
                "BROKEN"
            }
        ));
        for record in records.iter().rev() {
            let event: serde_json::Value =
                serde_json::from_slice(&record.content).unwrap_or_default();
            let what = event
                .pointer("/subtype/0/code")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("?");
            let entity = event
                .pointer("/entity/1/what/reference")
                .or_else(|| event.pointer("/entity/1/description"))
                .and_then(serde_json::Value::as_str)
                .unwrap_or("");
            let who = event
                .pointer("/agent/0/who/display")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("");
            let outcome = match record.outcome.as_str() {
                "0" => "success",
                "4" => "refused",
                _ => "failed",
            };
            let hash: String = record
                .hash
                .iter()
                .take(6)
                .map(|b| format!("{b:02x}"))
                .collect();
            say(format!(
                "     #{:<3} {} {what:<12} {outcome:<8} {who} {entity} [{hash}…]",
                record.seq,
                record
                    .recorded_at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
            ));
        }
    }
    Ok(())
}

/// Gives `resource` (a JSON object) the id `id`.
fn set_id(resource: &mut serde_json::Value, id: &str) -> Result<(), LoopbackError> {
    resource
        .as_object_mut()
        .ok_or_else(|| demo_error("the example summary is not a JSON object"))?
        .insert("id".to_owned(), id.into());
    Ok(())
}

/// Writes the patient, the `summary` and a DocumentReference listing it to
/// the national FHIR server at `base` through its REST API (`PUT`, so that
/// a second demo run replaces them), and answers the summary's bytes as the
/// server then holds them (a server may write its own `meta`).
async fn seed_national_server(base: &str, summary: &[u8]) -> Result<Vec<u8>, LoopbackError> {
    let base = base.trim_end_matches('/');
    let mut bundle: serde_json::Value = serde_json::from_slice(summary).map_err(demo_error)?;
    set_id(&mut bundle, NATIONAL_SUMMARY_ID)?;
    let mut patient = bundle
        .get("entry")
        .and_then(serde_json::Value::as_array)
        .and_then(|entries| {
            entries.iter().filter_map(|e| e.get("resource")).find(|r| {
                r.get("resourceType").and_then(serde_json::Value::as_str) == Some("Patient")
            })
        })
        .cloned()
        .ok_or_else(|| demo_error("the example summary has no Patient"))?;
    set_id(&mut patient, NATIONAL_PATIENT_ID)?;
    let reference = serde_json::json!({
        "resourceType": "DocumentReference",
        "id": NATIONAL_REFERENCE_ID,
        "status": "current",
        "type": {"coding": [{"system": "http://loinc.org", "code": "60591-5",
            "display": "Patient summary Document"}]},
        "subject": {"reference": format!("Patient/{NATIONAL_PATIENT_ID}")},
        "content": [{"attachment": {"contentType": "application/fhir+json",
            "url": format!("Bundle/{NATIONAL_SUMMARY_ID}")}}]
    });
    for (kind, id, resource) in [
        ("Patient", NATIONAL_PATIENT_ID, &patient),
        ("Bundle", NATIONAL_SUMMARY_ID, &bundle),
        ("DocumentReference", NATIONAL_REFERENCE_ID, &reference),
    ] {
        let url = format!("{base}/{kind}/{id}");
        let (status, _) = plain_http("PUT", &url, Some(resource.to_string().as_bytes())).await?;
        if !(200..300).contains(&status) {
            return Err(demo_error(format!(
                "the national FHIR server answered PUT {kind}/{id} with {status}"
            )));
        }
    }
    let (status, held) =
        plain_http("GET", &format!("{base}/Bundle/{NATIONAL_SUMMARY_ID}"), None).await?;
    if status != 200 {
        return Err(demo_error(format!(
            "the national FHIR server answered GET Bundle/{NATIONAL_SUMMARY_ID} with {status}"
        )));
    }
    Ok(held)
}

/// One plain HTTP/1.0 exchange with the national FHIR server (`http://`
/// on loopback, as the gateway's configuration allows it): HTTP/1.0, so
/// the answer is the bytes up to the close, never chunked (RFC 9112
/// §7.1: chunked is not sent to a 1.0 client). The status and the body.
async fn plain_http(
    method: &str,
    url: &str,
    body: Option<&[u8]>,
) -> Result<(u16, Vec<u8>), LoopbackError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let parsed = reqwest::Url::parse(url).map_err(demo_error)?;
    if parsed.scheme() != "http" {
        return Err(demo_error(format!(
            "--national-fhir {url}: the demo reaches a national FHIR server over plain http on loopback"
        )));
    }
    let host = parsed.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let target = match parsed.query() {
        Some(query) => format!("{}?{query}", parsed.path()),
        None => parsed.path().to_owned(),
    };
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
        let body = body.unwrap_or_default();
        let head = format!(
            "{method} {target} HTTP/1.0\r\nHost: {host}:{port}\r\nAccept: {FHIR_JSON}\r\n\
             Content-Type: {FHIR_JSON}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        stream.flush().await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .map_err(|_| {
            demo_error(format!(
                "the national FHIR server at {url} did not answer in 30 s"
            ))
        })?
        .map_err(|e| demo_error(format!("the national FHIR server at {url}: {e}")))?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            demo_error(format!(
                "the national FHIR server at {url} sent no HTTP answer"
            ))
        })?;
    let status = String::from_utf8_lossy(answer.get(..split).unwrap_or_default())
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| demo_error(format!("the national FHIR server at {url} sent no status")))?;
    Ok((status, answer.get(split + 4..).unwrap_or_default().to_vec()))
}
