//! OCSP for certificates that name a responder: checked after the handshake
//! against `openssl ocsp` running as responder on 127.0.0.1, cached until
//! nextUpdate, and failing closed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ehds_dev_pki::{self as dev_pki, Authority, DevPkiLayout, DevPkiSpec};
use ehds_test_support::ScratchDir;
use ehds_transport::ocsp::{OcspChecker, OcspOptions, OcspVerdict};
use ehds_transport::{
    ListenerKind, ListenerMetrics, ReloadableServerTls, ServeOptions, ServerTlsFiles, TlsIdentity,
    TrustStore, client_config, serve_with_options,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

struct Setup {
    _dir: ScratchDir,
    layout: DevPkiLayout,
    port: u16,
}

/// A PKI whose federation certificates name a responder on a free port.
fn setup() -> Setup {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = ScratchDir::new("transport-ocsp");
    let mut spec = DevPkiSpec::for_tests(&["BE", "LU"]);
    spec.ocsp_url = Some(format!("http://127.0.0.1:{port}/"));
    let layout = dev_pki::generate(dir.path(), &spec).unwrap();
    Setup {
        _dir: dir,
        layout,
        port,
    }
}

/// `openssl ocsp` as responder, killed on drop.
struct Responder(Child);

impl Responder {
    fn start(setup: &Setup, signer_cert: &Path, signer_key: &Path, requests: Option<u32>) -> Self {
        Self::start_with(setup, signer_cert, signer_key, requests, Some(1))
    }

    /// With `next_update_days: None` the responses carry no nextUpdate
    /// (RFC 6960 §4.2.2.1: newer information is always available), so the
    /// checker asks again each time.
    fn start_with(
        setup: &Setup,
        signer_cert: &Path,
        signer_key: &Path,
        requests: Option<u32>,
        next_update_days: Option<u32>,
    ) -> Self {
        let layout = &setup.layout;
        let mut command = Command::new("openssl");
        command
            .arg("ocsp")
            .arg("-index")
            .arg(layout.ocsp_index())
            .args(["-port", &setup.port.to_string()])
            .arg("-rsigner")
            .arg(signer_cert)
            .arg("-rkey")
            .arg(signer_key)
            .arg("-CA")
            .arg(layout.ca_cert(&Authority::Federation))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(days) = next_update_days {
            command.args(["-ndays", &days.to_string()]);
        }
        if let Some(n) = requests {
            command.args(["-nrequest", &n.to_string()]);
        }
        let mut child = command.spawn().expect("the openssl command is needed");
        // Ready once it says so (a probe connection would hold the
        // single-threaded responder); then keep draining its output.
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
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
            let ready_tx = ready_tx.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                    if line.contains("waiting for OCSP client connections") {
                        let _ = ready_tx.send(());
                    }
                }
            });
        }
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the OCSP responder did not start");
        Self(child)
    }

    /// Waits for the responder to exit by itself (-nrequest reached).
    fn wait_exit(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.0.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signer(layout: &DevPkiLayout) -> (std::path::PathBuf, std::path::PathBuf) {
    (
        layout.ca_cert(&Authority::Federation),
        layout.ca_key(&Authority::Federation),
    )
}

struct Server {
    addr: SocketAddr,
    tls: ReloadableServerTls,
    metrics: Arc<ListenerMetrics>,
    stop: tokio::sync::oneshot::Sender<()>,
}

async fn server(layout: &DevPkiLayout, ocsp: OcspChecker) -> Server {
    let tls = ReloadableServerTls::load(ServerTlsFiles {
        identity: layout.ncp_server("BE"),
        trust: layout.trust(&Authority::Federation),
        misdirected_clients: None,
    })
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = ServeOptions {
        ocsp,
        ..ServeOptions::default()
    };
    let metrics = options.metrics.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    tokio::spawn(serve_with_options(
        listener,
        tls.clone(),
        ListenerKind::Federation,
        router,
        options,
        async {
            let _ = stopped.await;
        },
    ));
    Server {
        addr,
        tls,
        metrics,
        stop,
    }
}

/// One request from the LU NCP's client certificate: accepted or not.
async fn accepted(layout: &DevPkiLayout, addr: SocketAddr) -> bool {
    let identity = TlsIdentity::load(&layout.ncp_client("LU")).unwrap();
    let trust = TrustStore::load(&layout.trust(&Authority::Federation)).unwrap();
    let connector = TlsConnector::from(client_config(&identity, &trust).unwrap());
    let work = async {
        let tcp = TcpStream::connect(addr).await.ok()?;
        let mut tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .ok()?;
        tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut response = Vec::new();
        tls.read_to_end(&mut response).await.ok()?;
        Some(String::from_utf8_lossy(&response).starts_with("HTTP/1.1 200"))
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .unwrap()
        .unwrap_or(false)
}

fn lu_client_serial_hex(layout: &DevPkiLayout) -> String {
    let der = CertificateDer::from_pem_file(layout.ncp_client("LU").cert_chain).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    cert.raw_serial()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// Marks the LU NCP client certificate revoked in the responder's index
/// (not in the CRL).
fn revoke_lu_at_responder(layout: &DevPkiLayout) {
    let serial = lu_client_serial_hex(layout);
    let index = std::fs::read_to_string(layout.ocsp_index()).unwrap();
    let index: Vec<String> = index
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            if fields[3] == serial {
                format!(
                    "R\t{}\t261101000000Z,keyCompromise\t{}\tunknown\t{}",
                    fields[1], fields[3], fields[5]
                )
            } else {
                line.to_owned()
            }
        })
        .collect();
    std::fs::write(layout.ocsp_index(), index.join("\n") + "\n").unwrap();
}

#[tokio::test]
async fn a_good_response_admits_the_peer_and_is_cached_until_next_update() {
    let setup = setup();
    let layout = &setup.layout;
    let (cert, key) = signer(layout);
    // One OCSP request, then the responder exits.
    let mut responder = Responder::start(&setup, &cert, &key, Some(1));
    let checker = OcspChecker::new(OcspOptions::default());
    let server = server(layout, checker.clone()).await;
    assert!(accepted(layout, server.addr).await);
    assert_eq!(checker.cached(), 1);
    assert!(responder.wait_exit(), "the responder should have exited");
    // The responder is gone: the second connection is admitted from cache.
    assert!(accepted(layout, server.addr).await);
    let counts = server.metrics.counts();
    assert_eq!((counts.handshakes_ok, counts.ocsp_refused), (2, 0));
    let _ = server.stop.send(());
}

#[tokio::test]
async fn the_checker_reads_status_and_next_update() {
    let setup = setup();
    let layout = &setup.layout;
    let (cert, key) = signer(layout);
    let _responder = Responder::start(&setup, &cert, &key, None);
    let checker = OcspChecker::new(OcspOptions::default());
    let leaf = CertificateDer::from_pem_file(layout.ncp_client("LU").cert_chain).unwrap();
    let issuer = CertificateDer::from_pem_file(layout.ca_cert(&Authority::Federation)).unwrap();
    let verdict = checker.check(&leaf, &issuer).await.unwrap();
    let OcspVerdict::Good {
        next_update: Some(next),
    } = verdict
    else {
        panic!("{verdict:?}");
    };
    let in_a_day = time::OffsetDateTime::now_utc() + time::Duration::days(1);
    assert!(
        (next - in_a_day).abs() < time::Duration::minutes(5),
        "{next}"
    );
    let revoked = CertificateDer::from_pem_file(
        layout
            .negative("BE", dev_pki::Negative::NcpClientRevoked)
            .cert_chain,
    )
    .unwrap();
    assert_eq!(
        checker.check(&revoked, &issuer).await.unwrap(),
        OcspVerdict::Revoked
    );
    // A certificate without an OCSP URL: CRLs alone decide.
    let national = CertificateDer::from_pem_file(
        layout
            .national_client("BE", ehds_transport::NationalClientKind::Pharmacy)
            .cert_chain,
    )
    .unwrap();
    let national_ca =
        CertificateDer::from_pem_file(layout.ca_cert(&Authority::National("BE".into()))).unwrap();
    assert_eq!(
        checker.check(&national, &national_ca).await.unwrap(),
        OcspVerdict::NotApplicable
    );
}

#[tokio::test]
async fn a_certificate_revoked_by_ocsp_only_is_refused() {
    let setup = setup();
    let layout = &setup.layout;
    // Revoked at the responder, not (yet) in the CRL.
    revoke_lu_at_responder(layout);
    let (cert, key) = signer(layout);
    let _responder = Responder::start(&setup, &cert, &key, None);
    let checker = OcspChecker::default();
    let leaf = CertificateDer::from_pem_file(layout.ncp_client("LU").cert_chain).unwrap();
    let issuer = CertificateDer::from_pem_file(layout.ca_cert(&Authority::Federation)).unwrap();
    assert_eq!(
        checker.check(&leaf, &issuer).await.unwrap(),
        OcspVerdict::Revoked
    );
    // A fresh checker (no cache) in the server.
    let server = server(layout, OcspChecker::default()).await;
    assert!(!accepted(layout, server.addr).await);
    let counts = server.metrics.counts();
    assert_eq!((counts.handshakes_ok, counts.ocsp_refused), (0, 1));
    let _ = server.stop.send(());
}

#[tokio::test]
async fn an_unreachable_responder_fails_closed() {
    let setup = setup();
    let layout = &setup.layout;
    let server = server(layout, OcspChecker::default()).await;
    assert!(!accepted(layout, server.addr).await);
    assert_eq!(server.metrics.counts().ocsp_refused, 1);
    let _ = server.stop.send(());
}

#[tokio::test]
async fn a_response_signed_by_another_ca_is_refused() {
    let setup = setup();
    let layout = &setup.layout;
    let _responder = Responder::start(
        &setup,
        &layout.unrelated_ca_cert(),
        &layout.unrelated_ca_key(),
        None,
    );
    let checker = OcspChecker::default();
    let leaf = CertificateDer::from_pem_file(layout.ncp_client("LU").cert_chain).unwrap();
    let issuer = CertificateDer::from_pem_file(layout.ca_cert(&Authority::Federation)).unwrap();
    let error = checker.check(&leaf, &issuer).await.unwrap_err();
    assert!(error.to_string().contains("signature"), "{error}");
    let server = server(layout, checker).await;
    assert!(!accepted(layout, server.addr).await);
    assert_eq!(server.metrics.counts().ocsp_refused, 1);
    let _ = server.stop.send(());
}

/// Issue 16, defect 1: an OCSP answer reaches a live connection. The LU
/// NCP connects while its responder says `good` (with no nextUpdate, so
/// nothing is cached); the certificate is then revoked at the responder
/// only (not in any CRL). On the next reload the connection's peer is
/// asked about again and the connection is closed.
#[tokio::test]
async fn a_live_connection_is_closed_once_the_responder_says_revoked() {
    let setup = setup();
    let layout = &setup.layout;
    let (cert, key) = signer(layout);
    let responder = Responder::start_with(&setup, &cert, &key, None, None);
    let server = server(layout, OcspChecker::default()).await;
    let identity = TlsIdentity::load(&layout.ncp_client("LU")).unwrap();
    let trust = TrustStore::load(&layout.trust(&Authority::Federation)).unwrap();
    let connector = TlsConnector::from(client_config(&identity, &trust).unwrap());
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut live = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    live.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut response = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(10), live.read(&mut response))
        .await
        .unwrap()
        .unwrap();
    let response = String::from_utf8_lossy(&response[..n]);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(server.metrics.counts().handshakes_ok, 1);

    drop(responder);
    revoke_lu_at_responder(layout);
    let _responder = Responder::start_with(&setup, &cert, &key, None, None);
    server.tls.reload().unwrap();

    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), live.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the revoked peer's connection stayed open");
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.metrics.counts().closed_on_recheck == 0 {
        assert!(Instant::now() < deadline, "no re-check counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // And it cannot come back.
    assert!(!accepted(layout, server.addr).await);
    let _ = server.stop.send(());
}
