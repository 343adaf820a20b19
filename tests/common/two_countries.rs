//! Two real gateways, Belgium and Luxembourg, in one process over real
//! mutual TLS on 127.0.0.1 with a fresh development PKI: each with its
//! national API and federation listener, the shipped directory (with this
//! run's ports), a trust list of both identity providers and the shipped
//! access policy, all written by `ehds_loopback` (which the relay
//! bench uses too). Each test file says what it varies in a gateway's
//! configuration (timeouts, extra sections, store, CRL).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use ehds_access::AssertionIssuer;
use ehds_dev_pki::{Authority, DevPkiLayout, DevPkiSpec};
use ehds_gateway::Gateway;
use ehds_loopback::{GatewayToml, Loopback, Ports};
use ehds_test_support::{ScratchDir, repo_root};
use ehds_transport::{IdentityFiles, NationalClientKind};

/// One running gateway.
pub(crate) struct Running {
    /// Its national API.
    pub national: SocketAddr,
    /// Its federation listener.
    pub federation: SocketAddr,
    /// Its patient page, with `[patient_page]`.
    pub patient_page: Option<SocketAddr>,
    /// Its checked configuration.
    pub config: ehds_gateway::CheckedConfig,
    /// Its listeners' TLS configurations (what SIGHUP reloads).
    tls: Vec<ehds_gateway::ReloadableServerTls>,
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Running {
    /// `https://<national API><path>`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.national)
    }

    /// `https://<federation listener><path>`.
    pub(crate) fn federation_url(&self, path: &str) -> String {
        format!("https://{}{path}", self.federation)
    }

    /// Re-reads its certificates and CRLs, as on SIGHUP; returns how many
    /// reloads failed.
    pub(crate) fn reload_tls(&self) -> usize {
        ehds_gateway::reload_tls(&self.tls)
    }

    /// Its audit chain, verified.
    pub(crate) async fn audit(&self) -> ehds_gateway::AuditChainReport {
        ehds_gateway::verify_audit(&self.config).await.unwrap()
    }

    /// The AuditEvents its chain holds about `patient` (`system|value`),
    /// newest first, read from its store as an auditor would.
    pub(crate) async fn audit_events_about(&self, patient: &str) -> Vec<String> {
        let store = ehds_store::Store::open(&self.config.store).await.unwrap();
        let records = store
            .audit_for_patient(patient, 10_000, None)
            .await
            .unwrap();
        store.close().await;
        records
            .into_iter()
            .map(|r| String::from_utf8(r.content).unwrap())
            .collect()
    }

    /// Stops it and waits until it has (once: stopping it again does
    /// nothing).
    pub(crate) async fn stop(&self) {
        if let Some(stop) = self.stop.lock().unwrap().take() {
            let _ = stop.send(());
        }
        let task = self.task.lock().unwrap().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// The validator every gateway of the test binary shares: the shipped
/// packages' validator compiled at build time, read once.
fn validator() -> Arc<ehds_validation::Validator> {
    static VALIDATOR: std::sync::OnceLock<Arc<ehds_validation::Validator>> =
        std::sync::OnceLock::new();
    Arc::clone(VALIDATOR.get_or_init(|| {
        Arc::new(
            ehds_shipped_validator::validator(ehds_validation::ValidationOptions::default())
                .unwrap(),
        )
    }))
}

/// Starts a gateway with `config` in this process.
pub(crate) async fn start(config: &GatewayToml<'_>) -> Running {
    let config = ehds_gateway::GatewayConfig::from_toml(&config.text())
        .unwrap()
        .check()
        .unwrap();
    let gateway = Gateway::bind_with_validator(&config, validator())
        .await
        .unwrap();
    let national = gateway.local_addr().unwrap();
    let federation = gateway.federation_addr().unwrap();
    let patient_page = gateway.patient_page_addr();
    let tls = gateway.tls_configs();
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
        tls,
        stop: Mutex::new(Some(stop)),
        task: Mutex::new(Some(task)),
    }
}

/// Both countries' files, nothing started yet (a test may still change
/// the PKI, or start its gateways its own way).
pub(crate) struct Setup {
    /// Holds the PKI, the stores and the configuration files.
    pub dir: ScratchDir,
    /// What both gateways share, and their ports.
    pub run: Loopback,
}

impl Setup {
    /// A fresh development PKI of `spec` and both countries' files, in a
    /// scratch folder named after `label`.
    pub(crate) fn new(label: &str, spec: &DevPkiSpec) -> Self {
        let dir = ScratchDir::new(label);
        let run = Loopback::generate(&repo_root(), dir.path(), spec).unwrap();
        Self { dir, run }
    }

    /// `cc`'s configuration on the ports the directory names, changed by
    /// `configure`.
    pub(crate) fn gateway(
        &self,
        cc: &str,
        configure: impl Fn(&mut GatewayToml<'_>),
    ) -> GatewayToml<'_> {
        let ports = if cc == "BE" { self.run.be } else { self.run.lu };
        let mut config = self.run.gateway(cc, ports);
        configure(&mut config);
        config
    }

    /// Starts BE's gateway, then LU's, each configuration changed by
    /// `configure`.
    pub(crate) async fn start(self, configure: impl Fn(&mut GatewayToml<'_>)) -> TwoCountries {
        let be = start(&self.gateway("BE", &configure)).await;
        let lu = start(&self.gateway("LU", &configure)).await;
        TwoCountries {
            be_idp: self.run.identity_provider("BE").unwrap(),
            lu_idp: self.run.identity_provider("LU").unwrap(),
            pki: self.run.pki,
            dir: self.dir,
            be,
            lu,
        }
    }
}

/// Both countries' gateways and identity providers.
pub(crate) struct TwoCountries {
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
    /// Starts both with the test PKI (scratch folder named after `label`),
    /// each configuration changed by `configure` (e.g. timeouts, or a
    /// `[patient_page]` section).
    pub(crate) async fn start(label: &str, configure: impl Fn(&mut GatewayToml<'_>)) -> Self {
        Setup::new(label, &DevPkiSpec::for_tests(&["BE", "LU"]))
            .start(configure)
            .await
    }

    /// A client of `cc`'s national API with its national system of `kind`.
    pub(crate) fn national_client(&self, cc: &str, kind: NationalClientKind) -> reqwest::Client {
        national_client(&self.pki, cc, kind)
    }

    /// A client presenting `identity` to a federation listener.
    pub(crate) fn federation_client(&self, identity: IdentityFiles) -> reqwest::Client {
        super::client_with(identity, self.pki.trust(&Authority::Federation))
    }

    /// The shared files of another gateway beside these two (same PKI),
    /// in `<dir>/<name>`, the directory naming BE and LU on these ports.
    pub(crate) fn another_run(&self, name: &str, be: Ports, lu: Ports) -> Loopback {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        Loopback::with_pki(&repo_root(), &dir, self.pki.clone(), be, lu).unwrap()
    }

    /// Stops both gateways (and removes the run's folder).
    pub(crate) async fn stop(self) {
        self.be.stop().await;
        self.lu.stop().await;
    }
}

/// A client of `cc`'s national API with its national system of `kind`,
/// from `pki`.
pub(crate) fn national_client(
    pki: &DevPkiLayout,
    cc: &str,
    kind: NationalClientKind,
) -> reqwest::Client {
    super::client_with(
        pki.national_client(cc, kind),
        pki.trust(&Authority::National(cc.to_owned())),
    )
}

/// The path as the TOML configuration takes it.
pub(crate) fn slash(path: &Path) -> String {
    path.display().to_string()
}
