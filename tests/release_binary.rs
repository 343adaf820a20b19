//! The release binary alone (issue 17, "Done when"): copied into an empty
//! temporary directory with no repository beside it and no configuration,
//! `ehds-gateway serve` starts (packages compiled in, SQLite under
//! `./data/`, a development PKI generated into `./data/dev-pki` because
//! there is no `deploy/dev-pki` to use), and a hospital EHR holding a
//! client certificate of that PKI pushes a patient summary: 201.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::Arc;

use ehds_test_support::{ScratchDir, conformance_dir, release_binary};
use ehds_transport::{IdentityFiles, TlsIdentity, TrustFiles, TrustStore};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const IPS: &str = "examples/ips/Bundle-IPS-examples-Bundle-01.json";

/// Kills the gateway when the test ends, however it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_release_binary_alone_in_an_empty_directory_takes_a_pushed_summary() {
    let Some(release) = release_binary() else {
        return;
    };
    let dir = ScratchDir::new("release-binary");
    // The binary alone: nothing of the repository beside it.
    let binary = dir.path().join("ehds-gateway");
    std::fs::copy(&release, &binary).unwrap();
    let mut child = Command::new(&binary)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let mut lines = std::io::BufReader::new(stdout).lines();
    let mut said = Vec::new();
    let addr: std::net::SocketAddr = loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("the gateway stopped; it said:\n{}", said.join("\n")))
            .unwrap();
        let addr = line
            .split("https://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok());
        said.push(line);
        if let Some(addr) = addr {
            break addr;
        }
    };
    let said = said.join("\n");
    assert!(
        said.contains("generated a development PKI") && said.contains("not for production"),
        "the start-up message says where the development PKI came from:\n{said}"
    );

    // The hospital EHR of the generated PKI's country pushes a summary.
    let pki = dir.path().join("data/dev-pki/be");
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
    let mut tls = TlsConnector::from(Arc::clone(&config))
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
        .unwrap();
    let ips = std::fs::read(conformance_dir().join(IPS)).unwrap();
    let head = format!(
        "POST /fhir/Bundle HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/fhir+json\r\n\
         Prefer: return=minimal\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        ips.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(&ips).await.unwrap();
    tls.flush().await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tls.read_to_end(&mut answer),
    )
    .await
    .expect("an answer within a minute")
    .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    // Stored in the embedded default store, under the directory it ran in.
    assert!(dir.path().join("data/gateway.db").is_file());
    drop(running);
}

/// The names of an ELF64 little-endian file's sections (the section header
/// table and its string table, ELF specification: `e_shoff`,
/// `e_shentsize`, `e_shnum`, `e_shstrndx`; a section header's `sh_name`,
/// `sh_offset`, `sh_size`).
fn elf_section_names(file: &[u8]) -> Vec<String> {
    let u16_at = |at: usize| u16::from_le_bytes(file[at..at + 2].try_into().unwrap()) as usize;
    let u32_at = |at: usize| u32::from_le_bytes(file[at..at + 4].try_into().unwrap()) as usize;
    let u64_at = |at: usize| u64::from_le_bytes(file[at..at + 8].try_into().unwrap()) as usize;
    assert_eq!(&file[..4], b"\x7fELF", "an ELF file");
    assert_eq!(file[4], 2, "64-bit");
    assert_eq!(file[5], 1, "little-endian");
    let (shoff, shentsize, shnum, shstrndx) =
        (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
    let header = |index: usize| shoff + index * shentsize;
    let names_at = u64_at(header(shstrndx) + 0x18);
    (0..shnum)
        .map(|index| {
            let start = names_at + u32_at(header(index));
            let end = start + file[start..].iter().position(|b| *b == 0).unwrap();
            String::from_utf8_lossy(&file[start..end]).into_owned()
        })
        .collect()
}

/// What an operator ships carries no debug info (issue 17, "Release
/// binary stripped of what an operator never needs"): no `.debug_*`
/// section; its symbols stay, so a backtrace names functions.
#[test]
fn the_release_binary_carries_no_debug_info() {
    let Some(release) = release_binary() else {
        return;
    };
    let binary = std::fs::read(&release).unwrap();
    let sections = elf_section_names(&binary);
    assert!(sections.iter().any(|s| s == ".text"), "{sections:?}");
    assert!(sections.iter().any(|s| s == ".symtab"), "{sections:?}");
    let debug: Vec<&String> = sections
        .iter()
        .filter(|s| s.starts_with(".debug_"))
        .collect();
    assert!(
        debug.is_empty(),
        "debug sections in {}: {debug:?}",
        release.display()
    );
}

/// The allocator's run-time defaults are compiled in (`.cargo/config.toml`,
/// `JEMALLOC_SYS_WITH_MALLOC_CONF`): its background thread, and freed pages
/// given back after about a second (issue 17: resident memory after pushes).
/// jemalloc keeps the string as its `config_malloc_conf`.
#[test]
fn the_release_binary_gives_freed_memory_back_within_a_second() {
    let Some(release) = release_binary() else {
        return;
    };
    let binary = std::fs::read(&release).unwrap();
    let wanted = b"background_thread:true,dirty_decay_ms:1000\0";
    assert!(
        binary.windows(wanted.len()).any(|w| w == wanted),
        "{} was built without the allocator settings of .cargo/config.toml",
        release.display()
    );
}
