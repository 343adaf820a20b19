//! The demonstration patient page, end to end: two real gateways (BE and LU)
//! over real mutual TLS; a doctor in Luxembourg identifies a Belgian
//! visitor, lists and retrieves their patient summary through both NCPs;
//! the patient then opens BE's patient page in headless Chromium (Debian's
//! `chromium`, driven through `chromedriver` with the `fantoccini` WebDriver
//! client), sees those accesses in their log, opts out of sharing the
//! summary with one click, and LU's next request is refused; switched back,
//! access is restored. Without chromium and chromedriver the browser test
//! prints that it skips, and fails under CI.
//!
//! The portal's read of the opt-outs in force, and what the page's loopback
//! listener refuses, are checked over HTTP without a browser.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::two_countries::{TwoCountries, slash};
use ehds_access::{Login, Organisation, PatientRef, Professional, PurposeOfUse};
use ehds_dev_pki::{Authority, DevPkiLayout};
use ehds_loopback::{self as loopback, GatewayToml};
use ehds_test_support::repo_root;
use ehds_transport::NationalClientKind;
use fantoccini::Locator;
use serde_json::Value;

/// The Belgian national register number system (directory.toml).
const BE_SYSTEM: &str = "https://www.ehealth.fgov.be/standards/fhir/core/NamingSystem/ssin";
const BE_PATIENT: &str = "85073003328";
const LU_ORGANISATION: &str = "Centre Hospitalier de Luxembourg";
const FHIR_JSON: &str = "application/fhir+json";

fn be_patient() -> String {
    format!("{BE_SYSTEM}|{BE_PATIENT}")
}

/// Both gateways as these tests run them: relays that connect within 2 s
/// and answer within 10 s, and BE with its patient page.
fn with_patient_page(config: &mut GatewayToml<'_>) {
    config.connect_timeout_secs = 2;
    config.request_timeout_secs = 10;
    if config.country == "BE" {
        config.sections = patient_page_section(&config.loopback().pki);
    }
}

/// BE's `[patient_page]`: any free loopback port, the BE patient portal's
/// certificate, BE's national CA to verify the national API.
fn patient_page_section(pki: &DevPkiLayout) -> String {
    let portal = pki.national_client("BE", NationalClientKind::PatientPortal);
    let national = Authority::National("BE".into());
    format!(
        "\n[patient_page]\nlisten = \"127.0.0.1:0\"\nclient_certificate = \"{}\"\n\
         client_private_key = \"{}\"\nnational_cas = [\"{}\"]\nnational_crls = [\"{}\"]\n",
        slash(&portal.cert_chain),
        slash(&portal.private_key),
        slash(&pki.ca_cert(&national)),
        slash(&pki.crl(&national)),
    )
}

fn lu_doctor() -> Login {
    Login {
        professional: Professional {
            id: "LU-HP-0007".into(),
            name: "Dr Luc Weber".into(),
            role: "2211".into(),
            organisation: Organisation {
                id: "LU-ORG-3".into(),
                name: LU_ORGANISATION.into(),
            },
        },
        point_of_care: "Urgences".into(),
    }
}

/// The LU doctor's system asks LU's national API for `path` about the BE
/// patient, with a fresh assertion for BE's NCP.
async fn lu_doctor_asks(f: &TwoCountries, path: &str) -> reqwest::Response {
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
    f.national_client("LU", NationalClientKind::DoctorSystem)
        .get(f.lu.url(path))
        .bearer_auth(assertion)
        .send()
        .await
        .unwrap()
}

async fn json(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let body = response.text().await.unwrap();
    assert_eq!(got, status, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// BE's hospital pushes the summary; the LU doctor identifies the patient,
/// lists and retrieves it. Returns the retrieval path (`Bundle/BE.<id>`)
/// and the pushed bytes.
async fn push_and_access_from_lu(f: &TwoCountries) -> (String, Vec<u8>) {
    let pushed = loopback::patient_summary(&repo_root(), BE_SYSTEM, BE_PATIENT).unwrap();
    let response = f
        .national_client("BE", NationalClientKind::EhrSystem)
        .post(f.be.url("/fhir/Bundle"))
        .header("content-type", FHIR_JSON)
        .body(pushed.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let found = json(
        lu_doctor_asks(f, &format!("/fhir/Patient?identifier={}", be_patient())).await,
        200,
    )
    .await;
    assert_eq!(found["total"], 1);
    let listed = json(
        lu_doctor_asks(
            f,
            &format!(
                "/fhir/DocumentReference?patient.identifier={}&type=http://loinc.org|60591-5",
                be_patient()
            ),
        )
        .await,
        200,
    )
    .await;
    let url = listed["entry"][0]["resource"]["content"][0]["attachment"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(url.starts_with("Bundle/BE."), "{url}");
    let retrieved = lu_doctor_asks(f, &format!("/fhir/{url}")).await;
    assert_eq!(retrieved.status().as_u16(), 200);
    assert_eq!(retrieved.bytes().await.unwrap(), pushed);
    (format!("/fhir/{url}"), pushed)
}

/// `value` percent-encoded for a URL query.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A plain HTTP client for the page's loopback listener (as a browser is).
fn page_client() -> reqwest::Client {
    // reqwest is built with rustls and no default crypto provider; this
    // client speaks plain HTTP but reqwest sets TLS up all the same.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// The portal reads the opt-outs in force, and no other system may; the
/// page's listener serves the page with its strict policy, relays the
/// portal's calls over mutual TLS, and refuses other host names, other
/// origins and bodies that are not FHIR JSON.
#[tokio::test]
async fn the_portal_reads_the_opt_outs_in_force_and_the_page_relays_only_its_own_calls() {
    let f = TwoCountries::start("two-countries", with_patient_page).await;
    let portal = f.national_client("BE", NationalClientKind::PatientPortal);
    let read = f.be.url(&format!(
        "/fhir/$cross-border-opt-out?patient.identifier={}",
        encode(&be_patient())
    ));
    let none = json(portal.get(&read).send().await.unwrap(), 200).await;
    // No opt-out in force; the services of the registry, to choose from.
    let parameters = none["parameter"].as_array().unwrap();
    assert!(parameters.iter().all(|p| p["name"] == "service"), "{none}");
    let services: Vec<&str> = parameters
        .iter()
        .map(|p| p["part"][0]["valueCode"].as_str().unwrap())
        .collect();
    assert_eq!(
        services,
        [
            "patient-summary",
            "eprescription",
            "laboratory-report",
            "discharge-report",
            "imaging-report"
        ]
    );
    assert_eq!(
        parameters[2]["part"][1]["valueString"],
        "Laboratory results"
    );

    let set = |service: &str, country: Option<&str>, opt_out: bool| {
        let mut parameter = vec![
            serde_json::json!({"name": "patient", "valueIdentifier": {"system": BE_SYSTEM, "value": BE_PATIENT}}),
            serde_json::json!({"name": "service", "valueCode": service}),
            serde_json::json!({"name": "optOut", "valueBoolean": opt_out}),
        ];
        if let Some(country) = country {
            parameter.push(serde_json::json!({"name": "country", "valueCode": country}));
        }
        serde_json::to_vec(
            &serde_json::json!({"resourceType": "Parameters", "parameter": parameter}),
        )
        .unwrap()
    };
    for body in [
        set("patient-summary", None, true),
        set("eprescription", Some("LU"), true),
    ] {
        let response = portal
            .post(f.be.url("/fhir/$cross-border-opt-out"))
            .header("content-type", FHIR_JSON)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
    }
    let choices = json(portal.get(&read).send().await.unwrap(), 200).await;
    let parameters: Vec<Value> = choices["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "optOut")
        .cloned()
        .collect();
    assert_eq!(parameters.len(), 2, "{choices}");
    let parts = |p: &Value| -> Vec<(String, String)> {
        p["part"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|part| part["name"] != "since")
            .map(|part| {
                (
                    part["name"].as_str().unwrap().to_owned(),
                    part["valueCode"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(
        parts(&parameters[0]),
        vec![pair("service", "eprescription"), pair("country", "LU")]
    );
    assert_eq!(
        parts(&parameters[1]),
        vec![pair("service", "patient-summary")]
    );
    let since = parameters[1]["part"][1]["valueInstant"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(since, &time::format_description::well_known::Rfc3339).is_ok(),
        "{since}"
    );

    // Only the portal, only for this country's patients, strictly.
    let doctor = f.national_client("BE", NationalClientKind::DoctorSystem);
    assert_eq!(doctor.get(&read).send().await.unwrap().status(), 403);
    // A malformed query is 400, located at its parameter, as the relay's
    // searches answer (one parser, ehds-routing); a well-formed one about
    // another country's patient is 422.
    for (query, status, location) in [
        (
            "patient.identifier=urn:oid:1.3.182.4.4%7C1998041799999",
            422,
            "http.patient.identifier",
        ),
        ("patient.identifier=nobar", 400, "http.patient.identifier"),
        ("patient.identifier=x%7Cy&x=1", 400, "http.x"),
        ("", 400, "http.patient.identifier"),
    ] {
        for operation in [
            "$cross-border-opt-out",
            "$cross-border-restriction",
            "AuditEvent",
        ] {
            let response = portal
                .get(f.be.url(&format!("/fhir/{operation}?{query}")))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), status, "{operation}?{query}");
            let outcome: serde_json::Value = response.json().await.unwrap();
            assert_eq!(
                outcome["issue"][0]["expression"][0], location,
                "{operation}?{query}: {outcome}"
            );
        }
    }

    // The page, over plain HTTP on loopback.
    let page: SocketAddr = f.be.patient_page.unwrap();
    assert!(page.ip().is_loopback());
    let http = page_client();
    let response = http.get(format!("http://{page}/")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.starts_with("default-src 'none'; script-src 'sha256-"),
        "{csp}"
    );
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Demonstration only")
    );

    // Its calls reach the national API as the portal's: the same answer.
    let relayed = json(
        http.get(format!(
            "http://{page}/api/opt-outs?patient={}",
            encode(&be_patient())
        ))
        .send()
        .await
        .unwrap(),
        200,
    )
    .await;
    assert_eq!(relayed, choices);
    let log = json(
        http.get(format!(
            "http://{page}/api/access-log?patient={}&count=5",
            encode(&be_patient())
        ))
        .send()
        .await
        .unwrap(),
        200,
    )
    .await;
    assert_eq!(log["resourceType"], "Bundle");

    // A withdrawal through the page, as the page sends it.
    let withdraw = set("eprescription", Some("LU"), false);
    let post = |origin: Option<&str>, content_type: &str, host: Option<&str>| {
        let mut request = http
            .post(format!("http://{page}/api/opt-outs"))
            .header("content-type", content_type)
            .body(withdraw.clone());
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(host) = host {
            request = request.header("host", host);
        }
        request.send()
    };
    let own_origin = format!("http://{page}");
    let refused = [
        (
            post(Some("http://evil.example"), FHIR_JSON, None).await,
            403,
        ),
        (post(Some(&own_origin), "text/plain", None).await, 415),
        (post(None, FHIR_JSON, Some("evil.example:8480")).await, 403),
    ];
    for (response, status) in refused {
        assert_eq!(response.unwrap().status().as_u16(), status);
    }
    let unchanged = json(portal.get(&read).send().await.unwrap(), 200).await;
    assert_eq!(unchanged, choices, "nothing refused took effect");
    assert_eq!(
        post(Some(&own_origin), FHIR_JSON, None)
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let after = json(portal.get(&read).send().await.unwrap(), 200).await;
    let opt_outs = |p: &Value| {
        p["parameter"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["name"] == "optOut")
            .count()
    };
    assert_eq!(opt_outs(&after), 1, "{after}");
    assert_eq!(
        http.get(format!("http://{page}/fhir/metadata"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        404,
        "the page relays its own three calls, nothing else"
    );
    f.stop().await;
}

/// `chromedriver` on a free loopback port, killed on drop.
struct Chromedriver {
    child: std::process::Child,
    port: u16,
}

impl Chromedriver {
    fn start(program: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Its own process group, so that the browser it starts goes with it
        // even when the test fails before closing the session.
        let child = std::process::Command::new(program)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // A bounded wait: up to 20 s for chromedriver to listen.
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // The whole group this test started: chromedriver and the browser.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium session with a fresh profile in `profile`.
async fn headless_chromium(
    browser: &ehds_test_support::Browser,
    driver: &Chromedriver,
    profile: &Path,
) -> fantoccini::Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": slash(&browser.chromium),
            "args": [
                "--headless=new",
                // As root (CI, containers) Chromium runs only without its sandbox.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--window-size=1280,1024",
                format!("--user-data-dir={}", slash(profile)),
            ],
        }),
    );
    // chromedriver speaks plain HTTP on loopback: a plain connector, no TLS.
    fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .unwrap()
}

/// What the page shows: its state, the status line, the log's rows (one
/// map of cell class to text each), whether "More" shows, and the two
/// switches.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shown {
    state: String,
    status: String,
    notice: String,
    rows: Vec<std::collections::BTreeMap<String, String>>,
    more: bool,
    summary_opted_out: bool,
    prescriptions_opted_out: bool,
}

const READ_PAGE: &str = r##"
const byId = (id) => document.getElementById(id);
return {
  state: document.body.dataset.state || "",
  status: byId("status").textContent,
  notice: byId("demo-notice").textContent,
  rows: Array.from(document.querySelectorAll("#access-log tbody tr")).map((tr) =>
    Object.fromEntries(Array.from(tr.children).map((td) => [td.className, td.textContent]))),
  more: !byId("more").hidden,
  summaryOptedOut: byId("opt-out-patient-summary").checked,
  prescriptionsOptedOut: byId("opt-out-eprescription").checked
};
"##;

async fn shown(client: &fantoccini::Client) -> Shown {
    let seen = client.execute(READ_PAGE, vec![]).await.unwrap();
    let text = |name: &str| seen[name].as_str().unwrap_or_default().to_owned();
    let flag = |name: &str| seen[name].as_bool().unwrap();
    Shown {
        state: text("state"),
        status: text("status"),
        notice: text("notice"),
        rows: seen["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                row.as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .collect(),
        more: flag("more"),
        summary_opted_out: flag("summaryOptedOut"),
        prescriptions_opted_out: flag("prescriptionsOptedOut"),
    }
}

/// Polls the page until `ready` holds of what it shows (at most 20 s).
async fn until(client: &fantoccini::Client, what: &str, ready: impl Fn(&Shown) -> bool) -> Shown {
    // A bounded wait: up to 20 s for the page to show it.
    let mut last = None;
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let now = shown(client).await;
            if now.state == "ready" && ready(&now) {
                return now;
            }
            last = Some(now);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    waited
        .unwrap_or_else(|_| panic!("the page did not show {what} within 20 s; it shows {last:#?}"))
}

fn cell<'a>(row: &'a std::collections::BTreeMap<String, String>, name: &str) -> &'a str {
    row.get(name).map_or("", String::as_str)
}

#[tokio::test]
async fn the_patient_page_shows_the_access_log_and_its_switch_refuses_lu_at_once() {
    let Some(browser) = ehds_test_support::browser() else {
        return;
    };
    let f = TwoCountries::start("two-countries", with_patient_page).await;
    let (retrieve, pushed) = push_and_access_from_lu(&f).await;
    let page = f.be.patient_page.unwrap();
    let driver = Chromedriver::start(&browser.chromedriver);
    let profile = f.dir.path().join("chromium-profile");
    let client = headless_chromium(&browser, &driver, &profile).await;

    // Two rows a page, to see "More" work.
    client
        .goto(&format!(
            "http://{page}/?patient={}&count=2",
            encode(&be_patient())
        ))
        .await
        .unwrap();
    let first = until(&client, "two rows of the log", |s| s.rows.len() == 2).await;
    assert!(first.notice.contains("Demonstration only"), "{first:#?}");
    assert!(!first.summary_opted_out && !first.prescriptions_opted_out);
    assert!(first.more, "a full page offers more");
    let newest = &first.rows[0];
    assert_eq!(cell(newest, "what"), "patient summary", "{newest:#?}");
    assert_eq!(cell(newest, "who"), "Dr Luc Weber");
    assert_eq!(
        cell(newest, "role"),
        "Generalist medical practitioner (ISCO-08 2211)"
    );
    assert_eq!(cell(newest, "organisation"), LU_ORGANISATION);
    assert_eq!(cell(newest, "country"), "LU");
    assert_eq!(cell(newest, "purpose"), "treatment");
    assert_eq!(cell(newest, "outcome"), "allowed");
    assert!(cell(newest, "when") >= cell(&first.rows[1], "when"));
    assert_eq!(cell(&first.rows[1], "what"), "list of patient summaries");

    client
        .find(Locator::Id("more"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let all = until(&client, "the third row", |s| s.rows.len() == 3 && !s.more).await;
    assert_eq!(cell(&all.rows[2], "what"), "identification");
    assert_eq!(cell(&all.rows[2], "organisation"), LU_ORGANISATION);

    // The registry's other services have their switch too (built from
    // GET $cross-border-opt-out, not written in the page).
    let lab = client
        .find(Locator::Id("opt-out-laboratory-report"))
        .await
        .unwrap();
    assert!(!lab.is_selected().await.unwrap());
    assert!(
        lab.find(Locator::XPath(".."))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .contains("Laboratory results")
    );

    // One click opts out of sharing the summary; LU is refused at once.
    client
        .find(Locator::Id("opt-out-patient-summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let opted_out = until(&client, "the opt-out in force", |s| {
        s.summary_opted_out && s.status.starts_with("Opted out")
    })
    .await;
    assert!(!opted_out.prescriptions_opted_out);
    let refused = lu_doctor_asks(&f, &retrieve).await;
    assert_eq!(refused.status().as_u16(), 403);
    assert!(refused.text().await.unwrap().contains("no consent"));

    // The page, opened again, shows the choice and the refusal.
    client.refresh().await.unwrap();
    let after = until(&client, "the refusal in the log", |s| {
        s.rows
            .first()
            .is_some_and(|r| cell(r, "outcome").starts_with("refused"))
    })
    .await;
    assert!(
        after.summary_opted_out,
        "the switch shows the stored choice"
    );
    let newest = &after.rows[0];
    assert_eq!(cell(newest, "what"), "patient summary", "{newest:#?}");
    assert_eq!(cell(newest, "organisation"), LU_ORGANISATION);
    assert_eq!(cell(newest, "purpose"), "treatment");

    // Switched back: access is restored.
    client
        .find(Locator::Id("opt-out-patient-summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(&client, "the opt-out withdrawn", |s| {
        !s.summary_opted_out && s.status.starts_with("Sharing again")
    })
    .await;
    let restored = lu_doctor_asks(&f, &retrieve).await;
    assert_eq!(restored.status().as_u16(), 200);
    assert_eq!(restored.bytes().await.unwrap(), pushed);
    client.refresh().await.unwrap();
    let last = until(&client, "the restored access in the log", |s| {
        s.rows
            .first()
            .is_some_and(|r| cell(r, "outcome") == "allowed")
    })
    .await;
    assert!(!last.summary_opted_out);
    assert!(
        last.rows
            .iter()
            .any(|r| cell(r, "outcome").starts_with("refused")),
        "{last:#?}"
    );

    // Towards one country only: a switch of its own, withdrawn by a click.
    client
        .find(Locator::Id("country-service"))
        .await
        .unwrap()
        .select_by_value("eprescription")
        .await
        .unwrap();
    client
        .find(Locator::Id("country-code"))
        .await
        .unwrap()
        .send_keys("lu")
        .await
        .unwrap();
    client
        .find(Locator::Css("#country-form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let towards_lu = "opt-out-eprescription-LU";
    until(&client, "the opt-out towards LU", |s| {
        s.status == "Opted out of sharing your ePrescriptions towards LU, from now on."
    })
    .await;
    let switch = client.find(Locator::Id(towards_lu)).await.unwrap();
    assert!(switch.is_selected().await.unwrap());
    let stored = json(
        f.national_client("BE", NationalClientKind::PatientPortal)
            .get(f.be.url(&format!(
                "/fhir/$cross-border-opt-out?patient.identifier={}",
                encode(&be_patient())
            )))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(
        stored["parameter"][0]["part"][0]["valueCode"],
        "eprescription"
    );
    assert_eq!(stored["parameter"][0]["part"][1]["valueCode"], "LU");
    switch.click().await.unwrap();
    let withdrawn = until(&client, "the opt-out towards LU withdrawn", |s| {
        s.status
            .starts_with("Sharing again your ePrescriptions towards LU")
    })
    .await;
    assert!(!withdrawn.prescriptions_opted_out && !withdrawn.summary_opted_out);
    assert!(client.find(Locator::Id(towards_lu)).await.is_err());

    client.close().await.unwrap();
    drop(driver);
    let be_audit = f.be.audit().await;
    assert!(be_audit.first_broken.is_none());
    f.stop().await;
}
