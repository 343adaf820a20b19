//! `ehds-gateway backup` (issue 17): a consistent copy of the SQLite store
//! taken while the gateway serves, restored by serving from it: documents
//! byte-identical, the audit chain intact; for PostgreSQL the `pg_dump`
//! command.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::process::Command;

use ehds_test_support::{GatewayProcess, ScratchDir, conformance_dir};

const IPS: &str = "examples/ips/Bundle-IPS-examples-Bundle-01.json";
const FHIR_JSON: &str = "application/fhir+json";

fn gateway_command(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ehds-gateway"))
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// The shipped local BE configuration (with `[federation]`, so that reads
/// at home are audited), on free ports, its store at `store`, without the
/// patient page.
fn be_config(store: &str) -> String {
    let shipped =
        std::fs::read_to_string(ehds_test_support::repo_root().join("deploy/config/be-local.toml"))
            .unwrap();
    let without_page = shipped.split("[patient_page]").next().unwrap();
    without_page
        .replace("127.0.0.1:8081", "127.0.0.1:0")
        .replace("127.0.0.1:8443", "127.0.0.1:0")
        .replace("sqlite://data/ncp-be.db", &format!("sqlite://{store}"))
}

#[tokio::test]
async fn a_backup_taken_while_serving_restores_documents_and_an_intact_audit_chain() {
    let client = crate::common::ehr_client();
    let gateway = GatewayProcess::start(
        env!("CARGO_BIN_EXE_ehds-gateway"),
        &[],
        Some(&be_config("data/gateway.db")),
    )
    .unwrap();
    let ips = std::fs::read(conformance_dir().join(IPS)).unwrap();
    let created = client
        .post(gateway.url("/fhir/Bundle"))
        .header("content-type", FHIR_JSON)
        .body(ips.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    // Two audited reads: two records in the hash chain.
    for _ in 0..2 {
        let read = client.get(gateway.url(&location)).send().await.unwrap();
        assert_eq!(read.bytes().await.unwrap(), ips);
    }

    // Backed up while the gateway serves.
    let backups = ScratchDir::new("backup");
    let copy = backups.path().join("gateway-copy.db");
    let output = gateway_command(
        gateway.dir(),
        &["backup", "--config", "gateway.toml", copy.to_str().unwrap()],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("store backed up to"));
    // Never over an existing file.
    let again = gateway_command(
        gateway.dir(),
        &["backup", "--config", "gateway.toml", copy.to_str().unwrap()],
    );
    assert!(!again.status.success());
    drop(gateway);

    // Restored: a gateway serving the copy.
    let config = be_config(copy.to_str().unwrap());
    std::fs::write(backups.path().join("restored.toml"), &config).unwrap();
    let verified = gateway_command(
        backups.path(),
        &["audit", "verify", "--config", "restored.toml"],
    );
    let said = String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success(), "{said}");
    assert!(said.contains("audit chain intact: 2 records"), "{said}");
    let restored =
        GatewayProcess::start(env!("CARGO_BIN_EXE_ehds-gateway"), &[], Some(&config)).unwrap();
    let read = client.get(restored.url(&location)).send().await.unwrap();
    assert_eq!(read.status().as_u16(), 200);
    assert_eq!(read.bytes().await.unwrap(), ips);
}

#[test]
fn a_postgres_store_is_backed_up_with_the_pg_dump_command() {
    let dir = ScratchDir::new("backup-pg");
    std::fs::write(
        dir.path().join("pg.toml"),
        "[store]\nurl = \"postgres://ehds:secret@db.example:5432/ehds\"\nschema = \"ncp_be\"\n",
    )
    .unwrap();
    let output = gateway_command(dir.path(), &["backup", "--config", "pg.toml", "be.dump"]);
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{said}");
    assert!(
        said.contains(
            "pg_dump --format=custom --schema='ncp_be' --file='be.dump' 'postgres://ehds@db.example:5432/ehds'"
        ),
        "{said}"
    );
    assert!(!said.contains("secret"));
}
