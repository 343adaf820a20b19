//! Real mutual-TLS handshakes on 127.0.0.1 against a freshly generated
//! development PKI: who is accepted, who is refused at the handshake, reload,
//! the outbound client, and time limits.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::routing::get;
use ehds_dev_pki::{self as dev_pki, Authority, DevPkiLayout, DevPkiSpec, Negative};
use ehds_test_support::ScratchDir;
use ehds_transport::{
    CertFingerprint, ClientTimeouts, FederationClient, HandshakeRefusal, IdentityFiles,
    ListenerCounts, ListenerKind, ListenerMetrics, NationalClientKind, PeerIdentity, PoolLimits,
    ReloadableServerTls, ServeOptions, ServerTlsFiles, TlsIdentity, TransportError, TrustFiles,
    TrustStore, VerifiedPeer, client_config, federation_client, serve_with_options,
};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

struct Pki {
    _dir: ScratchDir,
    layout: DevPkiLayout,
}

fn pki() -> Pki {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("ehds_transport=debug")
        .try_init();
    let dir = ScratchDir::new("transport-pki");
    let layout = dev_pki::generate(dir.path(), &DevPkiSpec::for_tests(&["BE", "LU"])).unwrap();
    Pki { _dir: dir, layout }
}

fn federation() -> Authority {
    Authority::Federation
}

fn national(cc: &str) -> Authority {
    Authority::National(cc.into())
}

/// The size of `GET /big`'s body: larger than what the loopback socket
/// buffers hold for a client that does not read (tcp_wmem's 4 MiB maximum
/// plus the client's receive buffer).
const BIG_BODY: usize = 16 << 20;

struct Server {
    addr: SocketAddr,
    tls: ReloadableServerTls,
    metrics: Arc<ListenerMetrics>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(files: ServerTlsFiles, kind: ListenerKind) -> Self {
        Self::start_with(files, kind, ServeOptions::default()).await
    }

    async fn start_with(files: ServerTlsFiles, kind: ListenerKind, options: ServeOptions) -> Self {
        let tls = ReloadableServerTls::load(files).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = options.metrics.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = axum::Router::new()
            .route("/big", get(|| async { vec![b'x'; BIG_BODY] }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "slow"
                }),
            )
            .route(
                "/whoami",
                get(
                    |Extension(peer): Extension<VerifiedPeer>,
                     Extension(identity): Extension<PeerIdentity>| async move {
                        assert_eq!(peer.identity, identity);
                        format!("{:?} {}", peer.identity, peer.fingerprint)
                    },
                ),
            );
        let task = tokio::spawn(serve_with_options(
            listener,
            tls.clone(),
            kind,
            router,
            options,
            async {
                let _ = stopped.await;
            },
        ));
        Self {
            addr,
            tls,
            metrics,
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

fn federation_listener(layout: &DevPkiLayout, cc: &str) -> ServerTlsFiles {
    ServerTlsFiles {
        identity: layout.ncp_server(cc),
        trust: layout.trust(&federation()),
        misdirected_clients: None,
    }
}

fn national_listener(layout: &DevPkiLayout, cc: &str) -> ServerTlsFiles {
    ServerTlsFiles {
        identity: layout.national_server(cc),
        trust: layout.trust(&national(cc)),
        misdirected_clients: None,
    }
}

/// A rustls client presenting `identity` and trusting `server_ca` for the
/// server.
fn connector(
    layout: &DevPkiLayout,
    identity: &IdentityFiles,
    server_ca: &Authority,
) -> TlsConnector {
    let identity = TlsIdentity::load(identity).unwrap();
    let trust = TrustStore::load(&layout.trust(server_ca)).unwrap();
    TlsConnector::from(client_config(&identity, &trust).unwrap())
}

/// A client that presents no certificate.
fn anonymous_connector(layout: &DevPkiLayout, server_ca: &Authority) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(layout.ca_cert(server_ca)).unwrap()
    {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(ehds_transport::crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

use rustls::pki_types::pem::PemObject;

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

async fn connect(connector: &TlsConnector, addr: SocketAddr) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect(addr).await?;
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// One request (raw bytes) on an open connection: the status line, the
/// content type and the body, or why not.
async fn exchange(
    stream: &mut BufReader<Tls>,
    request: &[u8],
) -> Result<(String, String, String), String> {
    let work = async {
        stream
            .get_mut()
            .write_all(request)
            .await
            .map_err(|e| e.to_string())?;
        let mut status = String::new();
        let n = stream
            .read_line(&mut status)
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".to_owned());
        }
        let mut length = 0usize;
        let mut content_type = String::new();
        loop {
            let mut line = String::new();
            stream
                .read_line(&mut line)
                .await
                .map_err(|e| e.to_string())?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                } else if name.eq_ignore_ascii_case("content-type") {
                    content_type = value.trim().to_owned();
                }
            }
        }
        let mut body = vec![0; length];
        stream
            .read_exact(&mut body)
            .await
            .map_err(|e| e.to_string())?;
        Ok((
            status.trim_end().to_owned(),
            content_type,
            String::from_utf8(body).unwrap(),
        ))
    };
    tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .map_err(|_| "timed out".to_owned())?
}

/// One keep-alive GET /whoami on an open connection: the body, or why not.
async fn get_whoami(stream: &mut BufReader<Tls>) -> Result<String, String> {
    let (status, _, body) =
        exchange(stream, b"GET /whoami HTTP/1.1\r\nHost: localhost\r\n\r\n").await?;
    if !status.contains(" 200 ") && !status.ends_with(" 200") {
        return Err(format!("status {status}"));
    }
    Ok(body)
}

/// Whether the server closes `stream` within 5 s (what it still sends
/// first is read and returned).
async fn closed_by_server(stream: &mut BufReader<Tls>) -> Option<Vec<u8>> {
    let mut rest = Vec::new();
    match tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await {
        Ok(_) => Some(rest),
        Err(_) => None,
    }
}

/// A fresh connection and one request: the body, or why not.
async fn whoami(connector: &TlsConnector, addr: SocketAddr) -> Result<String, String> {
    let stream = connect(connector, addr).await.map_err(|e| e.to_string())?;
    get_whoami(&mut BufReader::new(stream)).await
}

fn fingerprint(files: &IdentityFiles) -> CertFingerprint {
    let der = rustls::pki_types::CertificateDer::from_pem_file(&files.cert_chain).unwrap();
    CertFingerprint::of(&der)
}

#[tokio::test]
async fn a_federation_ncp_is_accepted_and_identified() {
    let pki = pki();
    let server = Server::start(
        federation_listener(&pki.layout, "BE"),
        ListenerKind::Federation,
    )
    .await;
    let client = pki.layout.ncp_client("LU");
    let body = whoami(&connector(&pki.layout, &client, &federation()), server.addr)
        .await
        .unwrap();
    let expected = PeerIdentity::FederationNcp {
        country: "LU".into(),
        ncp_id: "ncp-lu".into(),
    };
    assert_eq!(body, format!("{expected:?} {}", fingerprint(&client)));
    let counts = server.metrics.counts();
    assert_eq!((counts.handshakes_ok, counts.handshakes_failed), (1, 0));
    server.stop().await;
}

#[tokio::test]
async fn every_national_client_kind_is_accepted_and_identified() {
    let pki = pki();
    let server = Server::start(national_listener(&pki.layout, "BE"), ListenerKind::National).await;
    for kind in NationalClientKind::ALL {
        let client = pki.layout.national_client("BE", kind);
        let body = whoami(
            &connector(&pki.layout, &client, &national("BE")),
            server.addr,
        )
        .await
        .unwrap();
        let expected = PeerIdentity::NationalClient {
            country: "BE".into(),
            organisation: format!("EHDS Dev BE {kind}"),
            kind,
            client_id: format!("{kind}-1.be"),
        };
        assert_eq!(body, format!("{expected:?} {}", fingerprint(&client)));
    }
    server.stop().await;
}

/// Each case is refused at the handshake: the client sees an alert or a
/// closed connection, never a response, and the server counts a failed
/// handshake (no handler ever runs).
async fn assert_refused(
    server: &Server,
    connector: &TlsConnector,
    case: &str,
    expected: HandshakeRefusal,
) -> String {
    let before = server.metrics.counts();
    let outcome = whoami(connector, server.addr).await;
    let Err(reason) = outcome else {
        panic!("{case}: accepted: {outcome:?}");
    };
    // The server's counter is updated by its connection task.
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.metrics.counts().handshakes_failed == before.handshakes_failed {
        assert!(
            Instant::now() < deadline,
            "{case}: no failed handshake counted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let after = server.metrics.counts();
    assert_eq!(after.handshakes_ok, before.handshakes_ok, "{case}");
    assert_eq!(
        after.refused(expected),
        before.refused(expected) + 1,
        "{case}: refused for another reason than {expected:?} ({reason})"
    );
    reason
}

#[tokio::test]
async fn bad_client_certificates_are_refused_at_the_handshake() {
    let pki = pki();
    let layout = &pki.layout;
    let server = Server::start(federation_listener(layout, "BE"), ListenerKind::Federation).await;
    let cases = [
        (
            Negative::NcpClientRevoked,
            HandshakeRefusal::Revoked,
            "CertificateRevoked",
        ),
        (
            Negative::NcpClientExpired,
            HandshakeRefusal::Expired,
            "CertificateExpired",
        ),
        (
            Negative::NcpClientWrongCa,
            HandshakeRefusal::UnknownIssuer,
            "UnknownCA",
        ),
        (
            Negative::NcpClientWrongEku,
            HandshakeRefusal::WrongUsage,
            "UnsupportedCertificate",
        ),
        (
            Negative::NcpClientCaFlagged,
            HandshakeRefusal::WrongUsage,
            "CertificateUnknown",
        ),
    ];
    for (case, refusal, alert) in cases {
        let connector = connector(layout, &layout.negative("LU", case), &federation());
        let reason = assert_refused(&server, &connector, case.file_stem(), refusal).await;
        assert!(reason.contains(alert), "{case:?}: {reason}");
    }
    let reason = assert_refused(
        &server,
        &anonymous_connector(layout, &federation()),
        "no client certificate",
        HandshakeRefusal::NoCertificate,
    )
    .await;
    assert!(reason.contains("CertificateRequired"), "{reason}");
    // A national client certificate (national CA) on the federation listener.
    let national_client = layout.national_client("LU", NationalClientKind::EhrSystem);
    let reason = assert_refused(
        &server,
        &connector(layout, &national_client, &federation()),
        "national client on the federation listener",
        HandshakeRefusal::UnknownIssuer,
    )
    .await;
    assert!(reason.contains("UnknownCA"), "{reason}");
    // The good client still gets in.
    assert!(
        whoami(
            &connector(layout, &layout.ncp_client("LU"), &federation()),
            server.addr
        )
        .await
        .is_ok()
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_certificates_are_refused_on_the_national_listener() {
    let pki = pki();
    let layout = &pki.layout;
    let server = Server::start(national_listener(layout, "BE"), ListenerKind::National).await;
    let be = national("BE");
    for (files, case, refusal) in [
        (
            layout.negative("BE", Negative::NationalClientRevoked),
            "revoked",
            HandshakeRefusal::Revoked,
        ),
        (
            layout.negative("BE", Negative::NationalClientExpired),
            "expired",
            HandshakeRefusal::Expired,
        ),
        // Another country's national client.
        (
            layout.national_client("LU", NationalClientKind::Pharmacy),
            "LU national",
            HandshakeRefusal::UnknownIssuer,
        ),
        // An NCP's federation certificate.
        (
            layout.ncp_client("LU"),
            "federation NCP",
            HandshakeRefusal::UnknownIssuer,
        ),
    ] {
        assert_refused(&server, &connector(layout, &files, &be), case, refusal).await;
    }
    server.stop().await;
}

/// Issue 16: a verified national certificate without an OU (no client
/// kind) gets a 403 OperationOutcome it can read, like a misdirected client
/// on the federation listener, then the connection closes; it is counted
/// and told, never served.
#[tokio::test]
async fn a_verified_certificate_without_the_required_identity_is_answered_403() {
    let pki = pki();
    let layout = &pki.layout;
    let (on_refusal, told) = observer();
    let options = ServeOptions {
        on_refusal: Some(on_refusal),
        ..ServeOptions::default()
    };
    let server = Server::start_with(
        national_listener(layout, "BE"),
        ListenerKind::National,
        options,
    )
    .await;
    let no_kind = layout.negative("BE", Negative::NationalClientNoKind);
    let mut stream = BufReader::new(
        connect(&connector(layout, &no_kind, &national("BE")), server.addr)
            .await
            .unwrap(),
    );
    let (status, content_type, body) = exchange(
        &mut stream,
        b"GET /whoami HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await
    .unwrap();
    assert!(status.starts_with("HTTP/1.1 403"), "{status}");
    assert_eq!(content_type, "application/fhir+json");
    let outcome: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert_eq!(outcome["issue"][0]["code"], "forbidden");
    assert!(
        closed_by_server(&mut stream).await.is_some(),
        "the connection stayed open"
    );
    let counts = server.metrics.counts();
    assert_eq!(
        (counts.handshakes_ok, counts.identities_refused),
        (0, 1),
        "{counts:?}"
    );
    {
        let told = told.lock().unwrap();
        assert_eq!(told.len(), 1, "{told:?}");
        assert_eq!(told[0].reason, "identity");
        assert_eq!(told[0].fingerprint, Some(fingerprint(&no_kind)));
    }
    server.stop().await;
}

/// A certificate from `ca` with an NCP's subject (`C`, `O`, `CN=ncp-<cc>`,
/// no OU) and EKU clientAuth: what whoever runs a national CA could issue
/// to pass for the NCP.
fn ncp_lookalike(layout: &DevPkiLayout, ca: &Authority, cc: &str) -> IdentityFiles {
    let issuer = rcgen::Issuer::from_ca_cert_pem(
        &std::fs::read_to_string(layout.ca_cert(ca)).unwrap(),
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(layout.ca_key(ca)).unwrap()).unwrap(),
    )
    .unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CountryName, cc);
    params.distinguished_name.push(
        rcgen::DnType::OrganizationName,
        format!("EHDS Dev {cc} NCP"),
    );
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("ncp-{}", cc.to_lowercase()),
    );
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    let cert = params.signed_by(&key, &issuer).unwrap();
    let dir = layout.dir().join("lookalike");
    std::fs::create_dir_all(&dir).unwrap();
    let files = IdentityFiles {
        cert_chain: dir.join("ncp-lookalike.pem"),
        private_key: dir.join("ncp-lookalike.key.pem"),
    };
    std::fs::write(&files.cert_chain, cert.pem()).unwrap();
    std::fs::write(&files.private_key, key.serialize_pem()).unwrap();
    files
}

/// A federation listener that names the country's national CA as
/// `misdirected_clients`: a national system is verified in full and served
/// with its national identity (for the application to refuse with an
/// answer), reported once per connection; a national-CA certificate made to
/// look like the NCP is never read as the NCP; the NCP itself is unchanged;
/// revoked national certificates and other countries' national CAs still
/// fail the handshake.
#[tokio::test]
async fn national_clients_on_the_federation_listener_are_identified_as_national() {
    let pki = pki();
    let layout = &pki.layout;
    let told = Arc::new(std::sync::Mutex::new(Vec::new()));
    let observer = {
        let told = Arc::clone(&told);
        ehds_transport::RefusalObserver::new(move |refusal| told.lock().unwrap().push(refusal))
    };
    let mut files = federation_listener(layout, "BE");
    files.misdirected_clients = Some(layout.trust(&national("BE")));
    let server = Server::start_with(
        files,
        ListenerKind::Federation,
        ServeOptions {
            on_refusal: Some(observer),
            ..ServeOptions::default()
        },
    )
    .await;

    let ncp = layout.ncp_client("LU");
    let body = whoami(&connector(layout, &ncp, &federation()), server.addr)
        .await
        .unwrap();
    let expected = PeerIdentity::FederationNcp {
        country: "LU".into(),
        ncp_id: "ncp-lu".into(),
    };
    assert_eq!(body, format!("{expected:?} {}", fingerprint(&ncp)));

    let doctor = layout.national_client("BE", NationalClientKind::DoctorSystem);
    let body = whoami(&connector(layout, &doctor, &federation()), server.addr)
        .await
        .unwrap();
    let expected = PeerIdentity::NationalClient {
        country: "BE".into(),
        organisation: "EHDS Dev BE doctor-system".into(),
        kind: NationalClientKind::DoctorSystem,
        client_id: "doctor-system-1.be".into(),
    };
    assert_eq!(body, format!("{expected:?} {}", fingerprint(&doctor)));
    let counts = server.metrics.counts();
    assert_eq!(
        (counts.handshakes_ok, counts.misdirected_clients),
        (2, 1),
        "{counts:?}"
    );
    {
        let told = told.lock().unwrap();
        assert_eq!(told.len(), 1, "{told:?}");
        assert_eq!(told[0].reason, ehds_transport::MISDIRECTED_CLIENT);
        assert_eq!(told[0].fingerprint, Some(fingerprint(&doctor)));
    }

    // Issued by the national CA with the NCP's subject: read as a national
    // client (it has no OU, so no client kind) and closed, never the NCP.
    let lookalike = ncp_lookalike(layout, &national("BE"), "BE");
    let outcome = whoami(&connector(layout, &lookalike, &federation()), server.addr).await;
    assert!(outcome.is_err(), "{outcome:?}");
    assert_eq!(server.metrics.counts().identities_refused, 1);
    // The same subject from the federation CA is the NCP (the control).
    let genuine = ncp_lookalike(layout, &federation(), "BE");
    let body = whoami(&connector(layout, &genuine, &federation()), server.addr)
        .await
        .unwrap();
    assert!(body.starts_with("FederationNcp"), "{body}");

    let fed = federation();
    assert_refused(
        &server,
        &connector(
            layout,
            &layout.negative("BE", Negative::NationalClientRevoked),
            &fed,
        ),
        "revoked national client",
        HandshakeRefusal::Revoked,
    )
    .await;
    assert_refused(
        &server,
        &connector(
            layout,
            &layout.national_client("LU", NationalClientKind::Pharmacy),
            &fed,
        ),
        "another country's national client",
        HandshakeRefusal::UnknownIssuer,
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn a_connection_that_sends_no_request_is_closed_after_the_header_timeout() {
    let pki = pki();
    let options = ServeOptions {
        header_read_timeout: Duration::from_millis(300),
        ..ServeOptions::default()
    };
    let server = Server::start_with(
        federation_listener(&pki.layout, "BE"),
        ListenerKind::Federation,
        options,
    )
    .await;
    let started = Instant::now();
    let mut stream = connect(&connector_for(&pki.layout, "LU"), server.addr)
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the idle connection was not closed");
    assert!(started.elapsed() < Duration::from_secs(3));
    server.stop().await;
}

#[tokio::test]
async fn a_stale_crl_fails_closed() {
    let pki = pki();
    let layout = &pki.layout;
    let files = ServerTlsFiles {
        identity: layout.ncp_server("BE"),
        trust: TrustFiles {
            ca_certs: vec![layout.ca_cert(&federation())],
            crls: vec![layout.stale_crl(&federation())],
        },
        misdirected_clients: None,
    };
    let server = Server::start(files, ListenerKind::Federation).await;
    let connector = connector(layout, &layout.ncp_client("LU"), &federation());
    assert_refused(
        &server,
        &connector,
        "stale CRL",
        HandshakeRefusal::RevocationUnknown,
    )
    .await;
    server.stop().await;
}

#[test]
fn a_trust_store_without_a_crl_for_each_ca_is_refused() {
    let pki = pki();
    let layout = &pki.layout;
    let no_crl = TrustFiles {
        ca_certs: vec![layout.ca_cert(&federation())],
        crls: vec![],
    };
    assert!(matches!(
        TrustStore::load(&no_crl),
        Err(TransportError::MissingCrl { .. })
    ));
    let one_missing = TrustFiles {
        ca_certs: vec![
            layout.ca_cert(&federation()),
            layout.ca_cert(&national("BE")),
        ],
        crls: vec![layout.crl(&federation())],
    };
    assert!(matches!(
        TrustStore::load(&one_missing),
        Err(TransportError::MissingCrl { subject }) if subject.contains("BE National")
    ));
    let foreign_crl = TrustFiles {
        ca_certs: vec![layout.ca_cert(&federation())],
        crls: vec![layout.crl(&federation()), layout.crl(&national("BE"))],
    };
    assert!(matches!(
        TrustStore::load(&foreign_crl),
        Err(TransportError::CrlWithoutCa { .. })
    ));
    let leaf_as_ca = TrustFiles {
        ca_certs: vec![layout.ncp_client("BE").cert_chain],
        crls: vec![layout.crl(&federation())],
    };
    assert!(matches!(
        TrustStore::load(&leaf_as_ca),
        Err(TransportError::BadFile { .. })
    ));
    assert!(matches!(
        TrustStore::load(&TrustFiles {
            ca_certs: vec![],
            crls: vec![]
        }),
        Err(TransportError::NoTrustAnchors)
    ));
    // A DER CRL is read as well as PEM.
    let der_crl = layout.dir().join("federation.crl.der");
    let der =
        rustls::pki_types::CertificateRevocationListDer::from_pem_file(layout.crl(&federation()))
            .unwrap();
    std::fs::write(&der_crl, der.as_ref()).unwrap();
    let store = TrustStore::load(&TrustFiles {
        ca_certs: vec![layout.ca_cert(&federation())],
        crls: vec![der_crl],
    })
    .unwrap();
    assert_eq!(store.anchors().len(), 1);
    assert!(store.anchors()[0].crl_next_update.is_some());
}

#[tokio::test]
async fn of_several_crls_of_a_ca_the_newest_counts_whatever_the_order() {
    let pki = pki();
    let layout = &pki.layout;
    let old = layout.dir().join("old.crl.pem");
    std::fs::copy(layout.crl(&federation()), &old).unwrap();
    let client = layout.ncp_client("LU");
    dev_pki::revoke(
        layout,
        &federation(),
        &client.cert_chain,
        time::Duration::days(30),
    )
    .unwrap();
    for crls in [
        vec![old.clone(), layout.crl(&federation())],
        vec![layout.crl(&federation()), old.clone()],
    ] {
        let files = ServerTlsFiles {
            identity: layout.ncp_server("BE"),
            trust: TrustFiles {
                ca_certs: vec![layout.ca_cert(&federation())],
                crls,
            },
            misdirected_clients: None,
        };
        let server = Server::start(files, ListenerKind::Federation).await;
        let connector = connector(layout, &client, &federation());
        assert_refused(
            &server,
            &connector,
            "revoked in the newer CRL",
            HandshakeRefusal::Revoked,
        )
        .await;
        server.stop().await;
    }
}

#[test]
fn a_crl_not_signed_by_its_ca_is_refused_at_load() {
    let pki = pki();
    let layout = &pki.layout;
    // Same issuer name as the federation CA, another key.
    let ca_pem = std::fs::read_to_string(layout.ca_cert(&federation())).unwrap();
    let forger =
        rcgen::Issuer::from_ca_cert_pem(&ca_pem, rcgen::KeyPair::generate().unwrap()).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let forged = rcgen::CertificateRevocationListParams {
        this_update: now,
        next_update: now + time::Duration::days(1),
        crl_number: rcgen::SerialNumber::from(99u64),
        issuing_distribution_point: None,
        revoked_certs: vec![],
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(&forger)
    .unwrap();
    let path = layout.dir().join("forged.crl.pem");
    std::fs::write(&path, forged.pem().unwrap()).unwrap();
    let error = TrustStore::load(&TrustFiles {
        ca_certs: vec![layout.ca_cert(&federation())],
        crls: vec![path],
    })
    .unwrap_err();
    assert!(matches!(error, TransportError::BadFile { .. }), "{error}");
    assert!(error.to_string().contains("signature"), "{error}");
}

/// What a listener told its observer.
fn observer() -> (
    ehds_transport::RefusalObserver,
    Arc<std::sync::Mutex<Vec<ehds_transport::ConnectionRefusal>>>,
) {
    let told = Arc::new(std::sync::Mutex::new(Vec::new()));
    let observer = {
        let told = Arc::clone(&told);
        ehds_transport::RefusalObserver::new(move |refusal| told.lock().unwrap().push(refusal))
    };
    (observer, told)
}

/// Waits (at most 5 s) until `done` holds for the server's counters.
async fn wait_for_counts(server: &Server, done: impl Fn(&ListenerCounts) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done(&server.metrics.counts()) {
        assert!(
            Instant::now() < deadline,
            "counters never got there: {:?}",
            server.metrics.counts()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Issue 16, defect 1: a certificate revoked by a reloaded CRL keeps no
/// connection open. On `server`, `revoked` and `other` each hold a live
/// keep-alive connection and `revoked` a second one with a request in
/// flight; after `revoked` is added to `ca`'s CRL and the listener reloads,
/// the request in flight is answered in full, then both of `revoked`'s
/// connections close, `other`'s goes on, the observer is told, and a new
/// handshake of `revoked` is refused.
async fn revocation_reaches_live_connections(
    layout: &DevPkiLayout,
    server: &Server,
    told: &std::sync::Mutex<Vec<ehds_transport::ConnectionRefusal>>,
    revoked: (&IdentityFiles, &TlsConnector),
    other: &TlsConnector,
    ca: &Authority,
) {
    let (revoked_files, revoked) = revoked;
    let mut live = BufReader::new(connect(revoked, server.addr).await.unwrap());
    assert!(get_whoami(&mut live).await.is_ok());
    let mut unaffected = BufReader::new(connect(other, server.addr).await.unwrap());
    assert!(get_whoami(&mut unaffected).await.is_ok());
    let mut busy = BufReader::new(connect(revoked, server.addr).await.unwrap());
    busy.get_mut()
        .write_all(b"GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;

    dev_pki::revoke(
        layout,
        ca,
        &revoked_files.cert_chain,
        time::Duration::days(30),
    )
    .unwrap();
    server.tls.reload().unwrap();

    // The request in flight is answered in full, then the connection closes.
    let response = closed_by_server(&mut busy)
        .await
        .expect("the busy connection stayed open");
    let response = String::from_utf8_lossy(&response);
    assert!(
        response.starts_with("HTTP/1.1 200") && response.ends_with("slow"),
        "{response}"
    );
    // The idle one closes too.
    let rest = closed_by_server(&mut live)
        .await
        .expect("the revoked peer's idle connection stayed open");
    assert!(rest.is_empty(), "{rest:?}");
    wait_for_counts(server, |c| c.closed_on_recheck == 2).await;
    // Another peer's connection goes on.
    assert!(get_whoami(&mut unaffected).await.is_ok());
    {
        let told = told.lock().unwrap();
        let rechecks: Vec<_> = told
            .iter()
            .filter(|r| r.reason == "revoked_on_recheck")
            .collect();
        assert_eq!(rechecks.len(), 2, "{told:?}");
        assert!(
            rechecks
                .iter()
                .all(|r| r.fingerprint == Some(fingerprint(revoked_files)))
        );
    }
    // A new handshake uses the new CRL.
    let reason = assert_refused(
        server,
        revoked,
        "revoked after reload",
        HandshakeRefusal::Revoked,
    )
    .await;
    assert!(reason.contains("CertificateRevoked"), "{reason}");
}

#[tokio::test]
async fn a_reload_closes_the_live_connections_of_a_newly_revoked_ncp() {
    let pki = pki();
    let layout = &pki.layout;
    // As the gateway runs it: national clients admitted to be told off.
    let mut files = federation_listener(layout, "BE");
    files.misdirected_clients = Some(layout.trust(&national("BE")));
    let (on_refusal, told) = observer();
    let options = ServeOptions {
        on_refusal: Some(on_refusal),
        ..ServeOptions::default()
    };
    let server = Server::start_with(files, ListenerKind::Federation, options).await;
    let lu = layout.ncp_client("LU");
    revocation_reaches_live_connections(
        layout,
        &server,
        &told,
        (&lu, &connector(layout, &lu, &federation())),
        &connector_for(layout, "BE"),
        &federation(),
    )
    .await;
    assert_eq!(server.tls.reload_count(), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_reload_closes_the_live_connections_of_a_newly_revoked_national_client() {
    let pki = pki();
    let layout = &pki.layout;
    let (on_refusal, told) = observer();
    let options = ServeOptions {
        on_refusal: Some(on_refusal),
        ..ServeOptions::default()
    };
    let server = Server::start_with(
        national_listener(layout, "BE"),
        ListenerKind::National,
        options,
    )
    .await;
    let ehr = layout.national_client("BE", NationalClientKind::EhrSystem);
    let pharmacy = layout.national_client("BE", NationalClientKind::Pharmacy);
    revocation_reaches_live_connections(
        layout,
        &server,
        &told,
        (&ehr, &connector(layout, &ehr, &national("BE"))),
        &connector(layout, &pharmacy, &national("BE")),
        &national("BE"),
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn a_connection_is_closed_at_its_maximum_age() {
    let pki = pki();
    let options = ServeOptions {
        max_connection_age: Duration::from_millis(300),
        ..ServeOptions::default()
    };
    let server = Server::start_with(
        federation_listener(&pki.layout, "BE"),
        ListenerKind::Federation,
        options,
    )
    .await;
    let mut live = BufReader::new(
        connect(&connector_for(&pki.layout, "LU"), server.addr)
            .await
            .unwrap(),
    );
    assert!(get_whoami(&mut live).await.is_ok());
    assert!(
        closed_by_server(&mut live).await.is_some(),
        "the connection outlived its maximum age"
    );
    wait_for_counts(&server, |c| c.closed_at_max_age == 1).await;
    assert_eq!(server.metrics.counts().closed_on_recheck, 0);
    // A new connection is welcome.
    assert!(
        whoami(&connector_for(&pki.layout, "LU"), server.addr)
            .await
            .is_ok()
    );
    server.stop().await;
}

/// Issue 16, defect 5: a client that asks for a response and does not read
/// it (or reads a byte now and then) is disconnected once it reads slower
/// than the minimum send rate, instead of holding the connection for ever.
#[tokio::test]
async fn a_client_that_does_not_read_its_responses_is_disconnected() {
    let pki = pki();
    let options = ServeOptions {
        write_timeout: Duration::from_millis(300),
        min_send_rate: 64 * 1024,
        ..ServeOptions::default()
    };
    let server = Server::start_with(
        federation_listener(&pki.layout, "BE"),
        ListenerKind::Federation,
        options,
    )
    .await;
    let mut slow = connect(&connector_for(&pki.layout, "LU"), server.addr)
        .await
        .unwrap();
    slow.write_all(b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    // A byte every 100 ms until the server gives up (at most 10 s).
    let mut byte = [0u8; 1];
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.metrics.counts().slow_readers == 0 {
        assert!(Instant::now() < deadline, "the slow reader was never cut");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = tokio::time::timeout(Duration::from_millis(10), slow.read(&mut byte)).await;
    }
    // What the sockets held arrives, then the connection ends short of
    // the whole body.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the connection stayed open");
    assert!(rest.len() < BIG_BODY, "the whole body was sent");
    // A client that reads gets the whole body.
    let mut reader = connect(&connector_for(&pki.layout, "LU"), server.addr)
        .await
        .unwrap();
    reader
        .write_all(b"GET /big HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut whole = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut whole))
        .await
        .unwrap()
        .unwrap();
    assert!(whole.len() > BIG_BODY, "{}", whole.len());
    assert_eq!(server.metrics.counts().slow_readers, 1);
    server.stop().await;
}

/// Issue 16, defect 7: RFC 9112 §3.2 — a server MUST answer 400 to an
/// HTTP/1.1 request without a Host header, and to any request with more
/// than one Host line or an invalid Host value. The answer is an
/// OperationOutcome and the application never sees the request.
#[tokio::test]
async fn a_request_without_exactly_one_valid_host_is_answered_400() {
    let pki = pki();
    let server = Server::start(
        federation_listener(&pki.layout, "BE"),
        ListenerKind::Federation,
    )
    .await;
    let mut stream = BufReader::new(
        connect(&connector_for(&pki.layout, "LU"), server.addr)
            .await
            .unwrap(),
    );
    for (case, request) in [
        ("no Host", &b"GET /whoami HTTP/1.1\r\n\r\n"[..]),
        (
            "two Hosts",
            b"GET /whoami HTTP/1.1\r\nHost: localhost\r\nHost: ncp.lu.ehds.test\r\n\r\n",
        ),
        (
            "Host with user information",
            b"GET /whoami HTTP/1.1\r\nHost: me@localhost\r\n\r\n",
        ),
    ] {
        let (status, content_type, body) = exchange(&mut stream, request).await.unwrap();
        assert!(status.starts_with("HTTP/1.1 400"), "{case}: {status}");
        assert_eq!(content_type, "application/fhir+json", "{case}");
        let outcome: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(outcome["resourceType"], "OperationOutcome", "{case}");
        assert_eq!(outcome["issue"][0]["severity"], "error", "{case}");
        assert!(
            outcome["issue"][0]["diagnostics"]
                .as_str()
                .unwrap()
                .contains("RFC 9112"),
            "{case}: {body}"
        );
    }
    // The same connection, with one Host, reaches the application.
    assert!(get_whoami(&mut stream).await.is_ok());
    // HTTP/1.0 needs no Host (RFC 9112 §3.2 is about HTTP/1.1).
    let (status, _, _) = exchange(
        &mut stream,
        b"GET /whoami HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    )
    .await
    .unwrap();
    assert!(
        status.starts_with("HTTP/1.0 200") || status.starts_with("HTTP/1.1 200"),
        "{status}"
    );
    assert_eq!(server.metrics.counts().bad_host_requests, 3);
    server.stop().await;
}

fn connector_for(layout: &DevPkiLayout, cc: &str) -> TlsConnector {
    connector(layout, &layout.ncp_client(cc), &federation())
}

#[tokio::test]
async fn a_failed_reload_keeps_the_configuration_in_force() {
    let pki = pki();
    let layout = &pki.layout;
    let server = Server::start(federation_listener(layout, "BE"), ListenerKind::Federation).await;
    let connector = connector_for(layout, "LU");
    let before = server.tls.current();

    std::fs::write(
        layout.crl(&federation()),
        "-----BEGIN X509 CRL-----\ngarbage\n",
    )
    .unwrap();
    assert!(server.tls.reload().is_err());
    std::fs::remove_file(layout.ncp_server("BE").private_key).unwrap();
    assert!(matches!(
        server.tls.reload(),
        Err(TransportError::Read { .. })
    ));

    assert!(Arc::ptr_eq(&before, &server.tls.current()));
    assert_eq!(server.tls.reload_count(), 0);
    assert!(whoami(&connector, server.addr).await.is_ok());
    server.stop().await;
}

#[tokio::test]
async fn a_handshake_that_stalls_is_dropped_by_the_server() {
    let pki = pki();
    let options = ServeOptions {
        handshake_timeout: Duration::from_millis(300),
        ..ServeOptions::default()
    };
    let server = Server::start_with(
        federation_listener(&pki.layout, "BE"),
        ListenerKind::Federation,
        options,
    )
    .await;
    let started = Instant::now();
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    // Half a ClientHello record header, then nothing.
    tcp.write_all(&[0x16, 0x03]).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .expect("the server did not drop the stalled handshake")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(server.metrics.counts().handshakes_timed_out, 1);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_request_finish_and_closes_idle_connections() {
    let pki = pki();
    let server = Server::start(
        federation_listener(&pki.layout, "BE"),
        ListenerKind::Federation,
    )
    .await;
    let connector = connector_for(&pki.layout, "LU");
    let mut idle = BufReader::new(connect(&connector, server.addr).await.unwrap());
    assert!(get_whoami(&mut idle).await.is_ok());
    let mut busy = connect(&connector, server.addr).await.unwrap();
    busy.write_all(b"GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    let addr = server.addr;
    server.stop().await;
    assert!(started.elapsed() < Duration::from_secs(2));
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), busy.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response);
    assert!(
        response.starts_with("HTTP/1.1 200") && response.ends_with("slow"),
        "{response}"
    );
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(2), idle.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the idle connection stayed open");
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}

// ---- outbound client -------------------------------------------------------

fn outbound(layout: &DevPkiLayout, cc: &str, timeouts: ClientTimeouts) -> reqwest::ClientBuilder {
    // The public API returns a built client; tests need `resolve`, so they
    // rebuild an equivalent one from the same config where a host must be
    // resolved to 127.0.0.1. `federation_client` itself is exercised below.
    let identity = TlsIdentity::load(&layout.ncp_client(cc)).unwrap();
    let trust = TrustStore::load(&layout.trust(&federation())).unwrap();
    let _ = federation_client(&identity, &trust, timeouts).unwrap();
    let config = Arc::unwrap_or_clone(client_config(&identity, &trust).unwrap());
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .https_only(true)
        .no_proxy()
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.request)
}

#[tokio::test]
async fn the_federation_client_calls_a_peer_ncp() {
    let pki = pki();
    let layout = &pki.layout;
    let server = Server::start(federation_listener(layout, "LU"), ListenerKind::Federation).await;
    let identity = TlsIdentity::load(&layout.ncp_client("BE")).unwrap();
    let trust = TrustStore::load(&layout.trust(&federation())).unwrap();
    let client = federation_client(&identity, &trust, ClientTimeouts::default()).unwrap();
    // `localhost` is in every dev NCP certificate's SAN.
    let body = client
        .get(format!("https://localhost:{}/whoami", server.addr.port()))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.starts_with(r#"FederationNcp { country: "BE", ncp_id: "ncp-be" }"#),
        "{body}"
    );
    // By the directory's host name.
    let client = outbound(layout, "BE", ClientTimeouts::default())
        .resolve("ncp.lu.ehds.test", server.addr)
        .build()
        .unwrap();
    let response = client
        .get(format!(
            "https://ncp.lu.ehds.test:{}/whoami",
            server.addr.port()
        ))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    // Plain HTTP is refused by the client itself.
    assert!(
        client
            .get(format!("http://{}/whoami", server.addr))
            .send()
            .await
            .is_err()
    );
    server.stop().await;
}

#[tokio::test]
async fn the_federation_client_refuses_a_server_whose_name_does_not_match() {
    let pki = pki();
    let layout = &pki.layout;
    // LU's server certificate answers where the directory says BE is.
    let server = Server::start(federation_listener(layout, "LU"), ListenerKind::Federation).await;
    let client = outbound(layout, "BE", ClientTimeouts::default())
        .resolve("ncp.be.ehds.test", server.addr)
        .build()
        .unwrap();
    let error = client
        .get(format!(
            "https://ncp.be.ehds.test:{}/whoami",
            server.addr.port()
        ))
        .send()
        .await
        .unwrap_err();
    let chain = error_chain(&error);
    assert!(chain.contains("NotValidForName"), "{chain}");
    server.stop().await;
}

#[tokio::test]
async fn the_federation_client_refuses_a_revoked_server_certificate() {
    let pki = pki();
    let layout = &pki.layout;
    let files = ServerTlsFiles {
        identity: layout.negative("LU", Negative::NcpServerRevoked),
        trust: layout.trust(&federation()),
        misdirected_clients: None,
    };
    let server = Server::start(files, ListenerKind::Federation).await;
    let identity = TlsIdentity::load(&layout.ncp_client("BE")).unwrap();
    let trust = TrustStore::load(&layout.trust(&federation())).unwrap();
    let client = federation_client(&identity, &trust, ClientTimeouts::default()).unwrap();
    let error = client
        .get(format!("https://localhost:{}/whoami", server.addr.port()))
        .send()
        .await
        .unwrap_err();
    let chain = error_chain(&error);
    assert!(chain.contains("Revoked"), "{chain}");
    server.stop().await;
}

#[tokio::test]
async fn the_federation_client_times_out_on_a_peer_that_never_completes_the_handshake() {
    let pki = pki();
    // Accepts TCP, reads nothing, answers nothing.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            open.push(tcp);
        }
    });
    let identity = TlsIdentity::load(&pki.layout.ncp_client("BE")).unwrap();
    let trust = TrustStore::load(&pki.layout.trust(&federation())).unwrap();
    let timeouts = ClientTimeouts {
        connect: Duration::from_millis(500),
        request: Duration::from_secs(30),
    };
    let client = federation_client(&identity, &trust, timeouts).unwrap();
    let started = Instant::now();
    let error = client
        .get(format!("https://localhost:{}/whoami", addr.port()))
        .send()
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        error.is_timeout() || error.is_connect(),
        "{}",
        error_chain(&error)
    );
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    held.abort();
}

/// Issue 16, defect 1, outbound: a server certificate revoked by a
/// reloaded CRL is not used through a pooled connection. The pool keeps
/// one connection for successive calls; after the CRL revoking the peer's
/// server certificate is loaded, the next call makes a new handshake and is
/// refused.
#[tokio::test]
async fn the_federation_client_drops_its_pool_on_reload() {
    let pki = pki();
    let layout = &pki.layout;
    let server = Server::start(federation_listener(layout, "LU"), ListenerKind::Federation).await;
    let client = FederationClient::load(
        layout.ncp_client("BE"),
        layout.trust(&federation()),
        ClientTimeouts::default(),
        PoolLimits::default(),
    )
    .unwrap();
    let url = format!("https://localhost:{}/whoami", server.addr.port());
    for _ in 0..3 {
        let response = client
            .request(reqwest::Method::GET, &url)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        response.bytes().await.unwrap();
    }
    // One handshake for the three calls: the connection is pooled.
    assert_eq!(server.metrics.counts().handshakes_ok, 1);

    dev_pki::revoke(
        layout,
        &federation(),
        &layout.ncp_server("LU").cert_chain,
        time::Duration::days(30),
    )
    .unwrap();
    client.reload().unwrap();
    assert_eq!(client.reload_count(), 1);
    let error = client
        .request(reqwest::Method::GET, &url)
        .send()
        .await
        .unwrap_err();
    let chain = error_chain(&error);
    assert!(chain.contains("Revoked"), "{chain}");
    server.stop().await;
}

/// Following the federation listener's configuration, the client reloads
/// whenever the listener does (SIGHUP, the periodic reload).
#[tokio::test]
async fn the_federation_client_follows_its_listener_s_reloads() {
    let pki = pki();
    let layout = &pki.layout;
    let server = Server::start(federation_listener(layout, "LU"), ListenerKind::Federation).await;
    let own_listener = ReloadableServerTls::load(federation_listener(layout, "BE")).unwrap();
    let client = FederationClient::load(
        layout.ncp_client("BE"),
        layout.trust(&federation()),
        ClientTimeouts::default(),
        PoolLimits::default(),
    )
    .unwrap();
    assert!(client.follow(&own_listener));
    let url = format!("https://localhost:{}/whoami", server.addr.port());
    let response = client
        .request(reqwest::Method::GET, &url)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    response.bytes().await.unwrap();

    dev_pki::revoke(
        layout,
        &federation(),
        &layout.ncp_server("LU").cert_chain,
        time::Duration::days(30),
    )
    .unwrap();
    own_listener.reload().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while client.reload_count() == 0 {
        assert!(Instant::now() < deadline, "the client did not follow");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let error = client
        .request(reqwest::Method::GET, &url)
        .send()
        .await
        .unwrap_err();
    assert!(error_chain(&error).contains("Revoked"));
    server.stop().await;
}

/// The pool is renewed after its maximum age: a new handshake, checked
/// against the trust material in force, at least that often.
#[tokio::test]
async fn the_federation_client_renews_its_pool_at_its_maximum_age() {
    let pki = pki();
    let layout = &pki.layout;
    let server = Server::start(federation_listener(layout, "LU"), ListenerKind::Federation).await;
    let client = FederationClient::load(
        layout.ncp_client("BE"),
        layout.trust(&federation()),
        ClientTimeouts::default(),
        PoolLimits {
            max_age: Duration::from_millis(200),
            ..PoolLimits::default()
        },
    )
    .unwrap();
    let url = format!("https://localhost:{}/whoami", server.addr.port());
    let call = || async {
        let response = client
            .request(reqwest::Method::GET, &url)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        response.bytes().await.unwrap();
    };
    call().await;
    call().await;
    assert_eq!(server.metrics.counts().handshakes_ok, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    call().await;
    assert_eq!(server.metrics.counts().handshakes_ok, 2);
    server.stop().await;
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&format!("{e} / {e:?}"));
        source = e.source();
    }
    text
}
