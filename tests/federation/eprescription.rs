//! ePrescription: a pharmacy abroad lists, reads and dispenses the
//! patient's prescriptions exactly once (also through two replica processes
//! on one PostgreSQL), the dispense conformance cases and the MPD and IHE
//! examples, prescription Bundles of several items.

use super::*;

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
    pharmacist.professional.organisation.name = "Apotheek onder de Toren".into();
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
    stranger.professional.organisation.id = "BE-PHARM-10".into();
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
    let be_ncp =
        crate::common::client_with(pki.ncp_client("BE"), pki.trust(&Authority::Federation));
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

/// Lists the LU patient's prescriptions at BE as `pharmacist` (which
/// records the retrievals at LU).
async fn list_prescriptions(f: &TwoCountries, pharmacist: &Login) -> Value {
    let path = about_lu_patient("MedicationRequest", "");
    json(
        Caller::pharmacy(f, pharmacist.clone()).get(&path).await,
        200,
    )
    .await
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
