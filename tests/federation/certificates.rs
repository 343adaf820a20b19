//! Certificates: revoked, expired or from another CA never reach the API; a
//! peer revoked at its OCSP responder only is refused too; a flood of
//! refused handshakes cannot silence the security alerts of others.

use super::*;

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
    let national = crate::common::client_with(
        f.pki
            .national_client("BE", NationalClientKind::DoctorSystem),
        f.pki.trust(&Authority::Federation),
    );
    assert!(national.get(&direct).send().await.is_err());
    // LU's own national system on LU's federation listener: verified against
    // LU's national CA, then told where it belongs (403 with an
    // OperationOutcome, on every route) and recorded as a Security Alert;
    // nothing of the API runs.
    let misdirected = crate::common::client_with(
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
    assert!(anonymous_client(&f).get(&direct).send().await.is_err());
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

/// Issue 17: every loaded certificate's notAfter and CRL's nextUpdate is a
/// gauge on `/metrics` (seconds left), by listener and subject: the national
/// and federation server certificates, the federation client certificate,
/// the CAs and their CRLs. The test PKI's end entities live a year, its CAs
/// two, its CRLs 30 days (`DevPkiSpec::for_tests`).
#[tokio::test]
async fn certificate_and_crl_expiry_are_gauges_on_metrics() {
    let f = federation().await;
    let metrics = metrics(
        &f.be,
        f.national_client("BE", NationalClientKind::EhrSystem),
    )
    .await;
    let gauges: Vec<(&str, i64)> = metrics
        .lines()
        .filter(|line| line.starts_with("ehds_tls_expiry_seconds{"))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            (series, value.parse().unwrap())
        })
        .collect();
    let day = 86_400;
    let find = |listener: &str, what: &str, subject: &str| -> i64 {
        let wanted = format!("listener=\"{listener}\",what=\"{what}\",subject=\"");
        gauges
            .iter()
            .find(|(series, _)| series.contains(&wanted) && series.contains(subject))
            .unwrap_or_else(|| panic!("no {listener} {what} {subject} gauge in:\n{metrics}"))
            .1
    };
    for (listener, subject) in [
        ("national", "CN=national-api-be"),
        ("federation", "CN=ncp-be"),
        ("federation-client", "CN=ncp-be"),
    ] {
        let left = find(listener, "certificate", subject);
        assert!(
            (360 * day..=366 * day).contains(&left),
            "{listener}: {left} s"
        );
    }
    for (listener, ca) in [
        ("national", "CN=EHDS Dev BE National CA"),
        ("federation", "CN=EHDS Dev Federation Root CA"),
        ("federation-client", "CN=EHDS Dev Federation Root CA"),
    ] {
        let left = find(listener, "ca", ca);
        assert!(
            (700 * day..=731 * day).contains(&left),
            "{listener}: {left} s"
        );
        let left = find(listener, "crl", ca);
        assert!(
            (25 * day..=31 * day).contains(&left),
            "{listener}: {left} s"
        );
    }
    // Nothing ends within the warning time: ready, not draining.
    assert!(metrics.contains("ehds_draining 0\n"), "{metrics}");
    let ready = f
        .national_client("BE", NationalClientKind::EhrSystem)
        .get(f.be.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    f.stop().await;
}

/// A client that verifies the server by the federation CA and shows no
/// certificate of its own.
fn anonymous_client(f: &TwoCountries) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        rustls_pki_types::CertificateDer::pem_file_iter(f.pki.ca_cert(&Authority::Federation))
            .unwrap()
    {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .unwrap()
}

/// The `outcomeDesc` of every Security Alert in the audit trail of the
/// SQLite store at `path`, in chain order.
async fn security_alerts(path: &Path) -> Vec<String> {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true);
    let mut conn = sqlx::ConnectOptions::connect(&options).await.unwrap();
    let contents: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT content FROM audit_events ORDER BY seq")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    contents
        .iter()
        .map(|c| serde_json::from_slice::<Value>(c).unwrap())
        .filter(|e| e["type"]["code"] == "110113")
        .map(|e| e["outcomeDesc"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Issue 16 #3: 70 no-certificate handshakes from one address in a minute
/// (more than the whole listener's budget was) do not keep a revoked NCP
/// certificate's attempt from that address, in the same minute, out of the
/// trail; the flood is counted on `/metrics` and the refusals the limit
/// left out are stated in a later record. The national listener's refused
/// handshakes are Security Alerts too.
#[tokio::test]
async fn a_flood_of_refused_handshakes_does_not_silence_the_security_alerts() {
    let f = federation().await;
    let direct = f.lu.federation_url(&lu_patient_search());
    let anonymous = anonymous_client(&f);
    const FLOOD: usize = 70;
    for _ in 0..FLOOD {
        assert!(anonymous.get(&direct).send().await.is_err());
    }
    let revoked = f.federation_client(f.pki.negative("BE", Negative::NcpClientRevoked));
    assert!(revoked.get(&direct).send().await.is_err());
    // A revoked national system on LU's national listener.
    let revoked_national = crate::common::client_with(
        f.pki.negative("LU", Negative::NationalClientRevoked),
        f.pki.trust(&Authority::National("LU".into())),
    );
    assert!(
        revoked_national
            .get(f.lu.url("/healthz"))
            .send()
            .await
            .is_err()
    );

    // Written in the background: wait (bounded) for both revoked alerts.
    let lu_store = f.dir.path().join("lu.db");
    assert!(lu_store.exists(), "LU's store is {}", lu_store.display());
    let mut alerts = security_alerts(&lu_store).await;
    for _ in 0..100 {
        if alerts.iter().filter(|a| a.contains("revoked")).count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        alerts = security_alerts(&lu_store).await;
    }
    let revoked_alerts = alerts
        .iter()
        .filter(|a| *a == "connection refused: revoked")
        .count();
    assert_eq!(
        revoked_alerts, 2,
        "the federation's and the national listener's revoked attempts: {alerts:?}"
    );
    let no_certificate = alerts
        .iter()
        .filter(|a| a.starts_with("connection refused: no_certificate"))
        .count();
    assert!(
        (1..FLOOD).contains(&no_certificate),
        "the flood is recorded up to its own limit: {no_certificate}"
    );
    assert!(f.lu.audit().await.first_broken.is_none());
    let metrics = metrics(
        &f.lu,
        f.national_client("LU", NationalClientKind::EhrSystem),
    )
    .await;
    let suppressed = counter(
        &metrics,
        "ehds_security_alerts_suppressed_total{listener=\"federation\",reason=\"no_certificate\"}",
    )
    .unwrap_or(0);
    assert_eq!(
        suppressed as usize + no_certificate,
        FLOOD,
        "every refusal is recorded or counted:\n{metrics}"
    );
    f.stop().await;
}
