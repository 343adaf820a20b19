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

/// One service of `deploy/compose.yaml`, read line by line (the file keeps
/// to the block style this reader knows; no YAML crate is in the lock
/// file and Docker's CLI is not on every machine).
#[derive(Debug, Default)]
struct ComposeService {
    name: String,
    /// `(host path as written, container path)` of every bind mount.
    binds: Vec<(String, String)>,
    /// Named volumes it mounts.
    named: Vec<String>,
    /// `build.context` and `build.dockerfile`.
    context: Option<String>,
    dockerfile: Option<String>,
}

fn compose_services(text: &str) -> (Vec<ComposeService>, Vec<String>) {
    let mut services: Vec<ComposeService> = Vec::new();
    let mut declared_volumes = Vec::new();
    let mut top = "";
    let mut key = "";
    for line in text.lines() {
        let content = line.split(" #").next().unwrap_or("").trim_end();
        if content.trim().is_empty() || content.trim_start().starts_with('#') {
            continue;
        }
        let indent = content.len() - content.trim_start().len();
        let trimmed = content.trim();
        match indent {
            0 => top = trimmed.trim_end_matches(':'),
            2 if top == "services" => services.push(ComposeService {
                name: trimmed.trim_end_matches(':').to_owned(),
                ..ComposeService::default()
            }),
            2 if top == "volumes" => {
                declared_volumes.push(trimmed.trim_end_matches(':').to_owned())
            }
            4 if top == "services" => key = trimmed.split(':').next().unwrap_or(""),
            _ if top == "services" && key == "volumes" => {
                let entry = trimmed.trim_start_matches("- ").trim_matches('"');
                let mut parts = entry.split(':');
                let (host, container) = (parts.next().unwrap(), parts.next().unwrap());
                let service = services.last_mut().unwrap();
                if host.starts_with('.') || host.starts_with('/') {
                    service.binds.push((host.to_owned(), container.to_owned()));
                } else {
                    service.named.push(host.to_owned());
                }
            }
            _ if top == "services" && key == "build" => {
                let service = services.last_mut().unwrap();
                if let Some(value) = trimmed.strip_prefix("context:") {
                    service.context = Some(value.trim().to_owned());
                }
                if let Some(value) = trimmed.strip_prefix("dockerfile:") {
                    service.dockerfile = Some(value.trim().to_owned());
                }
            }
            _ => {}
        }
    }
    (services, declared_volumes)
}

/// Issue 17: every path `deploy/compose.yaml` mounts exists (relative to
/// `deploy/`, where compose resolves them), its build context and
/// Dockerfile exist, its named volumes are declared, and every file a
/// gateway's mounted configuration names under a mount resolves to an
/// existing file of the repository.
#[test]
fn every_path_the_compose_file_mounts_exists() {
    let deploy = repo_root().join("deploy");
    let text = std::fs::read_to_string(deploy.join("compose.yaml")).unwrap();
    let (services, declared) = compose_services(&text);
    let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["postgres", "ncp-be", "ncp-lu"], "{services:?}");
    let mut checked = 0;
    for service in &services {
        for volume in &service.named {
            assert!(
                declared.contains(volume),
                "{}: volume {volume} is not declared",
                service.name
            );
        }
        if let Some(context) = &service.context {
            let context = deploy.join(context);
            assert!(
                context.is_dir(),
                "{}: no context {}",
                service.name,
                context.display()
            );
            let dockerfile = context.join(service.dockerfile.as_deref().unwrap_or("Dockerfile"));
            assert!(
                dockerfile.is_file(),
                "{}: no {}",
                service.name,
                dockerfile.display()
            );
        }
        for (host, container) in &service.binds {
            let path = deploy.join(host);
            assert!(
                path.exists(),
                "{}: mounts {host}, which does not exist",
                service.name
            );
            checked += 1;
            if container != "/etc/ehds-gateway/gateway.toml" {
                continue;
            }
            // Every file the configuration names, seen through the mounts.
            let config = GatewayConfig::from_file(&path).unwrap();
            let mut named: Vec<std::path::PathBuf> = vec![
                config.server.tls.certificate.clone(),
                config.server.tls.private_key.clone(),
            ];
            named.extend(config.server.tls.client_cas.iter().cloned());
            named.extend(config.server.tls.client_crls.iter().cloned());
            if let Some(federation) = &config.federation {
                named.extend([
                    federation.certificate.clone(),
                    federation.private_key.clone(),
                    federation.client_certificate.clone(),
                    federation.client_private_key.clone(),
                    federation.directory.clone(),
                ]);
                named.extend(federation.cas.iter().cloned());
                named.extend(federation.crls.iter().cloned());
            }
            if let Some(assertions) = &config.assertions {
                named.extend([assertions.trust_list.clone(), assertions.policy.clone()]);
            }
            assert!(named.len() >= 10, "{}: {named:?}", service.name);
            for file in named {
                let file = file.to_str().unwrap().to_owned();
                let on_host = service.binds.iter().find_map(|(host, container)| {
                    let rest = file.strip_prefix(container.as_str())?;
                    rest.starts_with('/')
                        .then(|| deploy.join(host).join(rest.trim_start_matches('/')))
                });
                let on_host =
                    on_host.unwrap_or_else(|| panic!("{}: {file} is under no mount", service.name));
                assert!(
                    on_host.is_file(),
                    "{}: {file} -> {} missing",
                    service.name,
                    on_host.display()
                );
            }
            // The shipped packages, compiled into the binary (the image
            // carries no profiles/).
            assert_eq!(config.validation.packages_dir, None);
        }
    }
    assert!(checked >= 6, "{services:?}");
    let dockerfile = std::fs::read_to_string(deploy.join("Dockerfile")).unwrap();
    assert!(!dockerfile.contains("/src/profiles"));
}
