//! Two real gateways, Belgium and Luxembourg, in one process over real
//! mutual TLS on 127.0.0.1 with a fresh development PKI: each with its
//! national API and federation listener, the shipped directory (with this
//! run's ports), a trust list of both identity providers and the shipped
//! access policy. The same setup as `tests/federation.rs`, for other test
//! files.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ehds_access::{AssertionIssuer, KeyAlgorithm};
use ehds_gateway::{Gateway, GatewayConfig};
use ehds_test_support::{ScratchDir, repo_root};
use ehds_transport::NationalClientKind;
use ehds_transport::dev_pki::{self, Authority, DevPkiLayout, DevPkiSpec};

/// One running gateway.
pub struct Running {
    /// Its national API.
    pub national: SocketAddr,
    /// Its federation listener.
    pub federation: SocketAddr,
    /// Its patient page, with `[patient_page]`.
    pub patient_page: Option<SocketAddr>,
    /// Its checked configuration.
    pub config: ehds_gateway::CheckedConfig,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// `https://<national API><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.national)
    }

    /// Its audit chain, verified.
    pub async fn audit(&self) -> ehds_gateway::AuditChainReport {
        ehds_gateway::verify_audit(&self.config).await.unwrap()
    }

    /// Stops it and waits until it has.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Both countries' gateways and identity providers.
pub struct TwoCountries {
    /// Holds the PKI, the stores and the configuration files.
    pub dir: ScratchDir,
    /// The development PKI of this run.
    pub pki: DevPkiLayout,
    /// Belgium's gateway.
    pub be: Running,
    /// Luxembourg's gateway.
    pub lu: Running,
    /// Belgium's identity provider of health professionals.
    pub be_idp: AssertionIssuer,
    /// Luxembourg's.
    pub lu_idp: AssertionIssuer,
}

impl TwoCountries {
    /// Starts both; `extra(country, pki)` is appended to each country's
    /// configuration (e.g. a `[patient_page]` section).
    pub async fn start(extra: impl Fn(&str, &DevPkiLayout) -> String) -> Self {
        let dir = ScratchDir::new("two-countries");
        let pki_dir = dir.path().join("pki");
        let pki = dev_pki::generate(&pki_dir, &DevPkiSpec::for_tests(&["BE", "LU"])).unwrap();
        let ports = |cc| Ports {
            national: free_port(),
            federation: free_port(),
            cc,
        };
        let (be_ports, lu_ports) = (ports("BE"), ports("LU"));
        let directory = write_directory(dir.path(), be_ports.federation, lu_ports.federation);
        let trust_list = write_trust_list(dir.path(), &pki);
        let mut started = Vec::new();
        for ports in [&be_ports, &lu_ports] {
            let text = config_text(dir.path(), &pki, ports, &directory, &trust_list)
                + &extra(ports.cc, &pki);
            started.push(start(&text).await);
        }
        let lu = started.pop().unwrap();
        let be = started.pop().unwrap();
        Self {
            be_idp: idp(&pki, "BE"),
            lu_idp: idp(&pki, "LU"),
            dir,
            pki,
            be,
            lu,
        }
    }

    /// A client of `cc`'s national API with its national system of `kind`.
    pub fn national_client(&self, cc: &str, kind: NationalClientKind) -> reqwest::Client {
        super::client_with(
            self.pki.national_client(cc, kind),
            self.pki.trust(&Authority::National(cc.to_owned())),
        )
    }

    /// Stops both gateways.
    pub async fn stop(self) {
        self.be.stop().await;
        self.lu.stop().await;
    }
}

/// The path as the TOML configuration takes it.
pub fn slash(path: &Path) -> String {
    path.display().to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn validator() -> Arc<ehds_validation::Validator> {
    static VALIDATOR: std::sync::OnceLock<Arc<ehds_validation::Validator>> =
        std::sync::OnceLock::new();
    Arc::clone(VALIDATOR.get_or_init(|| {
        let registry = ehds_profiles::Registry::load_root(&repo_root().join("profiles")).unwrap();
        Arc::new(ehds_validation::Validator::new(&registry))
    }))
}

/// The shipped directory with the federation URLs of this run.
fn write_directory(dir: &Path, be_port: u16, lu_port: u16) -> PathBuf {
    let shipped =
        std::fs::read_to_string(repo_root().join("deploy/config/directory.toml")).unwrap();
    let text = shipped
        .replace(
            "https://ncp.be.ehds.test:8443/fhir",
            &format!("https://127.0.0.1:{be_port}/fhir"),
        )
        .replace(
            "https://ncp.lu.ehds.test:9443/fhir",
            &format!("https://127.0.0.1:{lu_port}/fhir"),
        );
    let path = dir.join("directory.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn write_trust_list(dir: &Path, pki: &DevPkiLayout) -> PathBuf {
    let mut text = String::new();
    for cc in ["BE", "LU"] {
        text.push_str(&format!(
            "[[issuer]]\ncountry = \"{cc}\"\nid = \"https://idp.{lc}.ehds.test\"\n\n[[issuer.key]]\nkid = \"{lc}-hp-1\"\nalg = \"ES256\"\npem_file = \"{pem}\"\n\n",
            lc = cc.to_ascii_lowercase(),
            pem = slash(&pki.hp_assertion_public_key(cc)),
        ));
    }
    let path = dir.join("trust-list.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn idp(pki: &DevPkiLayout, cc: &str) -> AssertionIssuer {
    let pem = std::fs::read_to_string(pki.hp_assertion_private_key(cc)).unwrap();
    let lc = cc.to_ascii_lowercase();
    AssertionIssuer::from_pkcs8_pem(
        &format!("https://idp.{lc}.ehds.test"),
        cc,
        &format!("{lc}-hp-1"),
        KeyAlgorithm::Es256,
        &pem,
    )
    .unwrap()
}

struct Ports {
    national: u16,
    federation: u16,
    cc: &'static str,
}

fn config_text(
    dir: &Path,
    pki: &DevPkiLayout,
    ports: &Ports,
    directory: &Path,
    trust_list: &Path,
) -> String {
    let cc = ports.cc;
    let lc = cc.to_ascii_lowercase();
    let national = Authority::National(cc.to_owned());
    let server = pki.national_server(cc);
    let ncp_server = pki.ncp_server(cc);
    let ncp_client = pki.ncp_client(cc);
    format!(
        r#"
[ncp]
country = "{cc}"

[server]
listen = "127.0.0.1:{national_port}"

[server.tls]
certificate = "{server_cert}"
private_key = "{server_key}"
client_cas = ["{national_ca}"]
client_crls = ["{national_crl}"]

[store]
url = "sqlite://{store}"

[validation]
packages_dir = "{profiles}"

[federation]
listen = "127.0.0.1:{federation_port}"
ncp_id = "ncp-{lc}"
certificate = "{ncp_server_cert}"
private_key = "{ncp_server_key}"
client_certificate = "{ncp_client_cert}"
client_private_key = "{ncp_client_key}"
cas = ["{federation_ca}"]
crls = ["{federation_crl}"]
directory = "{directory}"
connect_timeout_secs = 2
request_timeout_secs = 10

[assertions]
trust_list = "{trust_list}"
policy = "{policy}"
"#,
        national_port = ports.national,
        federation_port = ports.federation,
        server_cert = slash(&server.cert_chain),
        server_key = slash(&server.private_key),
        national_ca = slash(&pki.ca_cert(&national)),
        national_crl = slash(&pki.crl(&national)),
        store = slash(&dir.join(format!("{lc}.db"))),
        profiles = slash(&repo_root().join("profiles")),
        ncp_server_cert = slash(&ncp_server.cert_chain),
        ncp_server_key = slash(&ncp_server.private_key),
        ncp_client_cert = slash(&ncp_client.cert_chain),
        ncp_client_key = slash(&ncp_client.private_key),
        federation_ca = slash(&pki.ca_cert(&Authority::Federation)),
        federation_crl = slash(&pki.crl(&Authority::Federation)),
        directory = slash(directory),
        trust_list = slash(trust_list),
        policy = slash(&repo_root().join("deploy/config/access-policy.toml")),
    )
}

async fn start(text: &str) -> Running {
    let config = GatewayConfig::from_toml(text).unwrap().check().unwrap();
    let gateway = Gateway::bind_with_validator(&config, validator())
        .await
        .unwrap();
    let national = gateway.local_addr().unwrap();
    let federation = gateway.federation_addr().unwrap();
    let patient_page = gateway.patient_page_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        gateway
            .run(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Running {
        national,
        federation,
        patient_page,
        config,
        stop: Some(stop),
        task: Some(task),
    }
}
