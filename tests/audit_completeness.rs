//! One audited exit (ARCHITECTURE.md, "Inside ehds-gateway"): every route
//! behind it — the relay's routes and the reads of patient data on the
//! national API, and the federation API's routes — leaves exactly one
//! AuditEvent in the hash chain of the gateway that answered, for every way
//! it can be refused (malformed request, unknown patient or document, wrong
//! caller, no or bad assertion, the patient's opt-out, the peer down) and
//! for a success. A route registered without the exit cannot answer its
//! handler's result (it fails closed, 500) and leaves no record, so this
//! test fails for it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeSet;

use crate::common::two_countries::{Running, TwoCountries};
use ehds_access::{PatientRef, PurposeOfUse};
use ehds_loopback::{self as loopback, LU_PATIENT, LU_SYSTEM, be_doctor};
use ehds_test_support::repo_root;
use ehds_transport::NationalClientKind;

const FHIR_JSON: &str = "application/fhir+json";

/// Two gateways whose relays give up quickly.
async fn federation() -> TwoCountries {
    TwoCountries::start("audit-completeness", |config| {
        config.connect_timeout_secs = 2;
        config.request_timeout_secs = 3;
    })
    .await
}

/// A fresh treatment assertion of the BE doctor about the LU patient, for
/// LU's NCP.
fn assertion(f: &TwoCountries) -> String {
    f.be_idp
        .issue(
            &be_doctor(),
            "urn:ehds:ncp:LU",
            &PatientRef::new(LU_SYSTEM, LU_PATIENT),
            PurposeOfUse::Treatment,
            time::OffsetDateTime::now_utc(),
            time::Duration::minutes(5),
        )
        .unwrap()
}

/// The records in `gateway`'s chain.
async fn records(gateway: &Running) -> u64 {
    let report = gateway.audit().await;
    assert!(report.first_broken.is_none());
    report.records
}

/// One request and what it must leave: its status, and exactly one record
/// at the gateway that answered it (`at`) — and, where the request crossed
/// the border, one at the other end too (`also`).
struct Case<'a> {
    route: (&'static str, &'static str, &'static str),
    what: &'static str,
    request: reqwest::RequestBuilder,
    status: u16,
    at: &'a Running,
    also: Option<&'a Running>,
}

async fn check(f: &TwoCountries, case: Case<'_>, exercised: &mut BTreeSet<(&str, &str, &str)>) {
    let _ = f;
    let before = records(case.at).await;
    let also_before = match case.also {
        Some(other) => Some(records(other).await),
        None => None,
    };
    let response = case.request.send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    assert_eq!(status, case.status, "{}: {body}", case.what);
    let after = records(case.at).await;
    assert_eq!(
        after - before,
        1,
        "{} ({} {}): one record at the gateway that answered",
        case.what,
        case.route.1,
        case.route.2
    );
    if let (Some(other), Some(before)) = (case.also, also_before) {
        assert_eq!(
            records(other).await - before,
            1,
            "{}: one record at the other end",
            case.what
        );
    }
    exercised.insert(case.route);
}

#[tokio::test]
async fn every_audited_route_leaves_exactly_one_record_per_request_refusals_included() {
    let f = federation().await;
    let mut exercised = BTreeSet::new();
    let doctor = f.national_client("BE", NationalClientKind::DoctorSystem);
    let portal = f.national_client("BE", NationalClientKind::PatientPortal);
    let be_ncp = f.federation_client(f.pki.ncp_client("BE"));
    let lu_ehr = f.national_client("LU", NationalClientKind::EhrSystem);
    let patient = format!("{LU_SYSTEM}|{LU_PATIENT}");

    // LU holds the patient's summary.
    let summary = loopback::patient_summary(&repo_root(), LU_SYSTEM, LU_PATIENT).unwrap();
    let pushed = lu_ehr
        .post(f.lu.url("/fhir/Bundle"))
        .header("content-type", FHIR_JSON)
        .body(summary)
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status().as_u16(), 201);
    let lu_id = pushed.headers()["location"]
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();

    let national = |method, path| ("national", method, path);
    let federation = |method, path| ("federation", method, path);

    // The relay (BE's national API).
    let search = format!("/fhir/Patient?identifier={patient}");
    for (what, request, status, also) in [
        (
            "patient search: identifier failing LU's rules",
            doctor.get(f.be.url(&format!("/fhir/Patient?identifier={LU_SYSTEM}|12"))),
            400,
            None,
        ),
        (
            "patient search: the patient portal may not ask",
            portal.get(f.be.url(&search)).bearer_auth(assertion(&f)),
            403,
            None,
        ),
        (
            "patient search: no assertion",
            doctor.get(f.be.url(&search)),
            401,
            None,
        ),
        (
            "patient search: a forged assertion",
            doctor.get(f.be.url(&search)).bearer_auth("e30.e30.c2ln"),
            401,
            None,
        ),
        (
            "patient search: admitted at both ends",
            doctor.get(f.be.url(&search)).bearer_auth(assertion(&f)),
            200,
            Some(&f.lu),
        ),
    ] {
        let route = national("GET", "/fhir/Patient");
        let case = Case {
            route,
            what,
            request,
            status,
            at: &f.be,
            also,
        };
        check(&f, case, &mut exercised).await;
    }
    let documents = format!("/fhir/DocumentReference?patient.identifier={patient}");
    for (what, request, status) in [
        (
            "document search: an unknown parameter",
            doctor.get(f.be.url(&format!("{documents}&colour=red"))),
            400,
        ),
        (
            "document search: no assertion",
            doctor.get(f.be.url(&documents)),
            401,
        ),
    ] {
        let route = national("GET", "/fhir/DocumentReference");
        let case = Case {
            route,
            what,
            request,
            status,
            at: &f.be,
            also: None,
        };
        check(&f, case, &mut exercised).await;
    }
    let case = Case {
        route: national("GET", "/fhir/MedicationRequest"),
        what: "prescription search: no patient",
        request: doctor.get(f.be.url("/fhir/MedicationRequest?status=active")),
        status: 400,
        at: &f.be,
        also: None,
    };
    check(&f, case, &mut exercised).await;
    for (what, request, status) in [
        (
            "dispense: a doctor's system may not dispense",
            doctor
                .post(f.be.url("/fhir/MedicationDispense"))
                .header("content-type", FHIR_JSON)
                .bearer_auth(assertion(&f))
                .body("{}"),
            403,
        ),
        (
            "dispense: not FHIR JSON",
            f.national_client("BE", NationalClientKind::Pharmacy)
                .post(f.be.url("/fhir/MedicationDispense"))
                .header("content-type", "text/plain")
                .body("dispense 7 vials"),
            415,
        ),
    ] {
        let route = national("POST", "/fhir/MedicationDispense");
        let case = Case {
            route,
            what,
            request,
            status,
            at: &f.be,
            also: None,
        };
        check(&f, case, &mut exercised).await;
    }
    for (what, request, status, also) in [
        (
            "document read at home: unknown",
            doctor.get(f.be.url("/fhir/Bundle/no-such-document")),
            404,
            None,
        ),
        (
            "document read abroad: no assertion",
            doctor.get(f.be.url(&format!("/fhir/Bundle/LU.{lu_id}"))),
            401,
            None,
        ),
        (
            "document read abroad: admitted at both ends",
            doctor
                .get(f.be.url(&format!("/fhir/Bundle/LU.{lu_id}")))
                .bearer_auth(assertion(&f)),
            200,
            Some(&f.lu),
        ),
    ] {
        let route = national("GET", "/fhir/Bundle/{id}");
        let case = Case {
            route,
            what,
            request,
            status,
            at: &f.be,
            also,
        };
        check(&f, case, &mut exercised).await;
    }
    for (what, request, status) in [
        (
            "PDF original read at home: unknown",
            doctor.get(f.be.url("/fhir/Binary/no-such-document")),
            404,
        ),
        (
            "PDF original read abroad: no assertion",
            doctor.get(f.be.url("/fhir/Binary/LU.some-id")),
            401,
        ),
    ] {
        let route = national("GET", "/fhir/Binary/{id}");
        let case = Case {
            route,
            what,
            request,
            status,
            at: &f.be,
            also: None,
        };
        check(&f, case, &mut exercised).await;
    }
    for (what, request, status) in [
        (
            "prescription read at home: unknown",
            doctor.get(f.be.url("/fhir/MedicationRequest/no-such-prescription")),
            404,
        ),
        (
            "prescription read abroad: no assertion",
            doctor.get(f.be.url("/fhir/MedicationRequest/LU.some-id")),
            401,
        ),
    ] {
        let route = national("GET", "/fhir/MedicationRequest/{id}");
        let case = Case {
            route,
            what,
            request,
            status,
            at: &f.be,
            also: None,
        };
        check(&f, case, &mut exercised).await;
    }

    // The federation API (LU), called as BE's NCP.
    for (what, request, status) in [
        (
            "patient search: malformed",
            be_ncp.get(f.lu.federation_url("/fhir/Patient?identifier=")),
            400,
        ),
        (
            "patient search: no assertion",
            be_ncp.get(f.lu.federation_url(&search)),
            401,
        ),
    ] {
        let route = federation("GET", "/fhir/Patient");
        let case = Case {
            route,
            what,
            request,
            status,
            at: &f.lu,
            also: None,
        };
        check(&f, case, &mut exercised).await;
    }
    let case = Case {
        route: federation("GET", "/fhir/DocumentReference"),
        what: "document search: no assertion",
        request: be_ncp.get(f.lu.federation_url(&documents)),
        status: 401,
        at: &f.lu,
        also: None,
    };
    check(&f, case, &mut exercised).await;
    for (what, request, status) in [
        (
            "document read: unknown",
            be_ncp
                .get(f.lu.federation_url("/fhir/Bundle/no-such-document"))
                .bearer_auth(assertion(&f)),
            404,
        ),
        (
            "document read: no assertion",
            be_ncp.get(f.lu.federation_url(&format!("/fhir/Bundle/{lu_id}"))),
            401,
        ),
    ] {
        let route = federation("GET", "/fhir/Bundle/{id}");
        let case = Case {
            route,
            what,
            request,
            status,
            at: &f.lu,
            also: None,
        };
        check(&f, case, &mut exercised).await;
    }
    for (what, request, status) in [
        (
            "PDF original read: unknown",
            be_ncp
                .get(f.lu.federation_url("/fhir/Binary/no-such-document"))
                .bearer_auth(assertion(&f)),
            404,
        ),
        (
            "PDF original read: a FHIR document is not a Binary",
            be_ncp
                .get(f.lu.federation_url(&format!("/fhir/Binary/{lu_id}")))
                .bearer_auth(assertion(&f)),
            404,
        ),
    ] {
        let route = federation("GET", "/fhir/Binary/{id}");
        let case = Case {
            route,
            what,
            request,
            status,
            at: &f.lu,
            also: None,
        };
        check(&f, case, &mut exercised).await;
    }
    let case = Case {
        route: federation("GET", "/fhir/MedicationRequest"),
        what: "prescription search: no assertion",
        request: be_ncp.get(f.lu.federation_url(&format!(
            "/fhir/MedicationRequest?patient.identifier={patient}"
        ))),
        status: 401,
        at: &f.lu,
        also: None,
    };
    check(&f, case, &mut exercised).await;
    let case = Case {
        route: federation("GET", "/fhir/MedicationRequest/{id}"),
        what: "prescription read: unknown",
        request: be_ncp
            .get(f.lu.federation_url("/fhir/MedicationRequest/no-such-prescription"))
            .bearer_auth(assertion(&f)),
        status: 404,
        at: &f.lu,
        also: None,
    };
    check(&f, case, &mut exercised).await;
    let case = Case {
        route: federation("POST", "/fhir/MedicationDispense"),
        what: "dispense: not a MedicationDispense",
        request: be_ncp
            .post(f.lu.federation_url("/fhir/MedicationDispense"))
            .header("content-type", FHIR_JSON)
            .bearer_auth(assertion(&f))
            .body(r#"{"resourceType":"Patient"}"#),
        status: 400,
        at: &f.lu,
        also: None,
    };
    check(&f, case, &mut exercised).await;

    // The patient's opt-out: refused at LU, the refusal relayed to BE.
    let opt_out = serde_json::json!({
        "resourceType": "Parameters",
        "parameter": [
            {"name": "patient", "valueIdentifier": {"system": LU_SYSTEM, "value": LU_PATIENT}},
            {"name": "service", "valueCode": "patient-summary"},
            {"name": "optOut", "valueBoolean": true},
        ]
    });
    let set = f
        .national_client("LU", NationalClientKind::PatientPortal)
        .post(f.lu.url("/fhir/$cross-border-opt-out"))
        .header("content-type", FHIR_JSON)
        .body(opt_out.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(set.status().as_u16(), 200);
    let case = Case {
        route: national("GET", "/fhir/Patient"),
        what: "patient search: the patient opted out",
        request: doctor.get(f.be.url(&search)).bearer_auth(assertion(&f)),
        status: 403,
        at: &f.be,
        also: Some(&f.lu),
    };
    check(&f, case, &mut exercised).await;

    // The peer down: BE refuses and records.
    f.lu.stop().await;
    let case = Case {
        route: national("GET", "/fhir/DocumentReference"),
        what: "document search: the patient's country is down",
        request: doctor.get(f.be.url(&documents)).bearer_auth(assertion(&f)),
        status: 502,
        at: &f.be,
        also: None,
    };
    check(&f, case, &mut exercised).await;

    // Every audited route was exercised.
    let audited: BTreeSet<_> = ehds_gateway::audited_routes().into_iter().collect();
    let missed: Vec<_> = audited.difference(&exercised).collect();
    assert!(
        missed.is_empty(),
        "audited routes not exercised: {missed:?}"
    );
    f.stop().await;
}

/// Issue 16 #2: at home, a stored summary is read back only by the system
/// that pushed it; a pharmacy's or the patient portal's certificate is
/// refused (403, OperationOutcome); every read and refusal is in the hash
/// chain, so the patient's access log shows reads at home too.
#[tokio::test]
async fn reads_at_home_are_the_senders_alone_and_on_the_patients_record() {
    let f = federation().await;
    let lu = |kind| f.national_client("LU", kind);
    let summary = loopback::patient_summary(&repo_root(), LU_SYSTEM, LU_PATIENT).unwrap();
    let pushed = lu(NationalClientKind::EhrSystem)
        .post(f.lu.url("/fhir/Bundle"))
        .header("content-type", FHIR_JSON)
        .body(summary.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status().as_u16(), 201);
    let location = pushed.headers()["location"].to_str().unwrap().to_owned();
    let mut exercised = BTreeSet::new();
    for (what, kind, status) in [
        (
            "a pharmacy reads a summary at home",
            NationalClientKind::Pharmacy,
            403,
        ),
        (
            "the patient portal reads a summary by id",
            NationalClientKind::PatientPortal,
            403,
        ),
        (
            "a doctor's system reads another system's push",
            NationalClientKind::DoctorSystem,
            403,
        ),
        (
            "the hospital reads its push back",
            NationalClientKind::EhrSystem,
            200,
        ),
    ] {
        let case = Case {
            route: ("national", "GET", "/fhir/Bundle/{id}"),
            what,
            request: lu(kind).get(f.lu.url(&location)),
            status,
            at: &f.lu,
            also: None,
        };
        check(&f, case, &mut exercised).await;
    }
    // The bytes read back are the bytes pushed.
    let back = lu(NationalClientKind::EhrSystem)
        .get(f.lu.url(&location))
        .send()
        .await
        .unwrap();
    assert_eq!(back.bytes().await.unwrap(), summary);
    // The patient's access log names the reads at home.
    let log: serde_json::Value = lu(NationalClientKind::PatientPortal)
        .get(f.lu.url(&format!(
            "/fhir/AuditEvent?patient.identifier={LU_SYSTEM}|{LU_PATIENT}"
        )))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = log["entry"].as_array().unwrap();
    assert_eq!(
        entries.len(),
        5,
        "the three refused reads and the two reads name the patient"
    );
    f.stop().await;
}
