//! Graceful shutdown (issue 17): on SIGTERM the real binary stops accepting,
//! lets a request already in flight finish, and exits within
//! `server.shutdown_grace_secs` even when a client never finishes its
//! request.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use ehds_test_support::{ScratchDir, conformance_dir, repo_root};
use ehds_transport::{IdentityFiles, TlsIdentity, TrustFiles, TrustStore};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const IPS: &str = "examples/ips/Bundle-IPS-examples-Bundle-01.json";

/// A BE hospital EHR's TLS connection to the national API at `addr`.
async fn connect(addr: std::net::SocketAddr) -> TlsStream<TcpStream> {
    let pki = repo_root().join("deploy/dev-pki/be");
    let identity = TlsIdentity::load(&IdentityFiles {
        cert_chain: pki.join("clients/ehr-system.pem"),
        private_key: pki.join("clients/ehr-system.key.pem"),
    })
    .unwrap();
    let trust = TrustStore::load(&TrustFiles {
        ca_certs: vec![pki.join("national-ca.pem")],
        crls: vec![pki.join("national-ca.crl.pem")],
    })
    .unwrap();
    let config = ehds_transport::client_config(&identity, &trust).unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    TlsConnector::from(Arc::clone(&config))
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
        .unwrap()
}

/// The head of a push of `length` bytes.
fn push_head(addr: std::net::SocketAddr, length: usize) -> String {
    format!(
        "POST /fhir/Bundle HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/fhir+json\r\n\
         Content-Length: {length}\r\n\r\n"
    )
}

#[tokio::test]
async fn shutdown_finishes_the_request_in_flight_and_exits_within_the_grace_time() {
    let dir = ScratchDir::new("shutdown");
    for linked in ["profiles", "deploy"] {
        std::os::unix::fs::symlink(repo_root().join(linked), dir.path().join(linked)).unwrap();
    }
    // The stuck client's body would be waited for 10 minutes: only the
    // grace time can end it.
    std::fs::write(
        dir.path().join("gateway.toml"),
        "[server]\nlisten = \"127.0.0.1:0\"\nbody_timeout_secs = 600\nshutdown_grace_secs = 10\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ehds-gateway"))
        .args(["serve", "--config", "gateway.toml"])
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr: std::net::SocketAddr = first
        .split("https://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {first:?}"));
    // The log, line by line, to see when draining begins.
    let (log_lines, log) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if log_lines.send(line).is_err() {
                break;
            }
        }
    });

    let ips = std::fs::read(conformance_dir().join(IPS)).unwrap();
    let (first_half, second_half) = ips.split_at(ips.len() / 2);
    // In flight: head and half the body sent.
    let mut in_flight = connect(addr).await;
    in_flight
        .write_all(push_head(addr, ips.len()).as_bytes())
        .await
        .unwrap();
    in_flight.write_all(first_half).await.unwrap();
    in_flight.flush().await.unwrap();
    // Stuck: head and a few bytes of a body that never comes.
    let mut stuck = connect(addr).await;
    stuck
        .write_all(push_head(addr, ips.len()).as_bytes())
        .await
        .unwrap();
    stuck.write_all(&ips[..10]).await.unwrap();
    stuck.flush().await.unwrap();
    // Both requests reached the gateway before shutdown begins.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let terminated = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());
    let draining = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        while let Ok(line) = log.recv_timeout(Duration::from_secs(60)) {
            let found = line.contains("draining");
            seen.push(line);
            if found {
                return (true, seen, log);
            }
        }
        (false, seen, log)
    })
    .await
    .unwrap();
    let (found, seen, log) = draining;
    assert!(found, "no draining line in:\n{}", seen.join("\n"));

    // The request in flight finishes and is answered.
    in_flight.write_all(second_half).await.unwrap();
    in_flight.flush().await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(60), in_flight.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");

    // The stuck client does not hold the process past the grace time: it
    // exits (well before the stuck body's 600 s time-out).
    let exited = tokio::task::spawn_blocking(move || {
        for _ in 0..600 {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        None
    })
    .await
    .unwrap();
    let rest: Vec<String> = log.try_iter().collect();
    let status =
        exited.unwrap_or_else(|| panic!("still running 60 s after SIGTERM:\n{}", rest.join("\n")));
    assert!(status.success(), "{status:?}\n{}", rest.join("\n"));
    drop(stuck);
}
