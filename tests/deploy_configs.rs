//! Every configuration shipped under `deploy/` parses and passes the same
//! checks the gateway runs before binding a port.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use ehds_gateway::GatewayConfig;
use ehds_test_support::{files_with_extension, repo_root};

#[test]
fn every_deploy_config_is_valid() {
    // Data files the gateway configs point at, parsed by their own crates'
    // tests (ehds-access: the policy; ehds-routing: the directory;
    // ehds-gateway: the service registry; ...).
    const DATA_FILES: &[&str] = &[
        "access-policy.toml",
        "services.toml",
        "directory.toml",
        "directory-local.toml",
        "trust-list.toml",
    ];
    let files: Vec<_> = files_with_extension(&repo_root().join("deploy"), "toml")
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_none_or(|n| !DATA_FILES.contains(&n))
        })
        .collect();
    assert!(
        files.len() >= 2,
        "configs for two countries expected, found {files:?}"
    );
    let mut countries = std::collections::BTreeSet::new();
    for path in files {
        let config = GatewayConfig::from_file(&path)
            .and_then(GatewayConfig::check)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Some(ncp) = &config.raw.ncp {
            countries.insert(ncp.country.clone());
        }
    }
    assert!(
        countries.len() >= 2,
        "two countries expected: {countries:?}"
    );
}

/// The one-machine configurations load everything they name (the
/// development PKI, the directory, the trust list and the policy), as
/// `serve` does before binding.
#[test]
fn local_configs_load_their_federation_material() {
    std::env::set_current_dir(repo_root()).unwrap();
    for name in ["be-local.toml", "lu-local.toml"] {
        let checked = GatewayConfig::from_file(&repo_root().join("deploy/config").join(name))
            .and_then(GatewayConfig::check)
            .unwrap();
        let loaded =
            ehds_gateway::load_federation(&checked).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(loaded.is_some(), "{name} has no federation");
        // The demonstration patient page's portal certificate and national CA.
        if let Some(page) = &checked.raw.patient_page {
            ehds_transport::TlsIdentity::load(&ehds_transport::IdentityFiles {
                cert_chain: page.client_certificate.clone(),
                private_key: page.client_private_key.clone(),
            })
            .unwrap_or_else(|e| panic!("{name}: patient page certificate: {e}"));
            ehds_transport::TrustStore::load(&ehds_transport::TrustFiles {
                ca_certs: page.national_cas.clone(),
                crls: page.national_crls.clone(),
            })
            .unwrap_or_else(|e| panic!("{name}: patient page national CA: {e}"));
        }
    }
    let be = GatewayConfig::from_file(&repo_root().join("deploy/config/be-local.toml"))
        .and_then(GatewayConfig::check)
        .unwrap();
    assert!(
        be.patient_page_listen.is_some_and(|a| a.ip().is_loopback()),
        "the local Belgian gateway serves the demonstration patient page on loopback"
    );
}

/// `ehds-gateway check-config FILE` loads everything `serve` would (TLS
/// files, directory, trust list, policy, the patient page's certificate,
/// the FHIR packages) without binding a port: the shipped local config
/// passes, and one naming a missing CRL fails before anything listens.
#[test]
fn check_config_loads_everything_serve_would() {
    let run = |config: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ehds-gateway"))
            .arg("check-config")
            .arg(config)
            .current_dir(repo_root())
            .env("RUST_LOG", "error")
            .output()
            .unwrap()
    };
    let shipped = repo_root().join("deploy/config/lu-local.toml");
    let ok = run(&shipped);
    let said = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(said.contains("federation loaded"), "{said}");
    let dir = ehds_test_support::ScratchDir::new("check-config");
    let broken = dir.path().join("broken.toml");
    let text = std::fs::read_to_string(&shipped).unwrap();
    let text = text.replacen("national-ca.crl.pem", "no-such.crl.pem", 1);
    assert!(text.contains("no-such.crl.pem"), "the config names a CRL");
    std::fs::write(&broken, text).unwrap();
    let refused = run(&broken);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no-such.crl.pem"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
