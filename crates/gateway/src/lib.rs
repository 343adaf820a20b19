//! The EHDS NCP gateway, assembled.
//!
//! Owns: the HTTP APIs (axum) and their OperationOutcome error mapping (one
//! table, [`error::classify`]), the configuration file ([`config`]), metrics,
//! the demonstration patient page ([`patient_page`]), and start-up:
//! configuration checked, store opened and migrated, listeners bound, then
//! serving until shut down.
//!
//! Must not know about: how JSON is parsed, how documents are validated, how
//! rows are written: it calls the FHIR, validation and store crates for that.
//! It does not read the environment: the binary hands it a configuration.

pub mod answer_memo;
pub mod audit;
pub mod config;
pub mod error;
pub mod federation;
pub mod http;
pub mod metrics;
pub mod patient_page;
pub mod patient_rights;
pub mod prescriptions;
pub mod release;
pub mod units;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ehds_profiles::Registry;
use ehds_store::Store;
use ehds_transport::{IdentityFiles, ListenerKind, ServerTlsFiles, TrustFiles};
use ehds_validation::Validator;
use tokio::net::TcpListener;

pub use config::{CheckedConfig, GatewayConfig};
/// The reloadable listener TLS configuration (re-exported for the binary).
pub use ehds_transport::ReloadableServerTls;
pub use error::GatewayError;

/// A gateway whose store is open and whose listener is bound.
#[derive(Debug)]
pub struct Gateway {
    listener: TcpListener,
    national_tls: ReloadableServerTls,
    /// The federation listener and its TLS, with `[federation]`.
    federation: Option<(TcpListener, ReloadableServerTls)>,
    /// The demonstration patient page, with `[patient_page]`.
    patient_page: Option<patient_page::PatientPage>,
    state: http::AppState,
}

impl Gateway {
    /// Loads the FHIR packages, opens the store (migrating it) and binds the
    /// national API listener, in that order: a broken package folder or
    /// store never leaves a port bound.
    pub async fn bind(config: &CheckedConfig) -> Result<Self, GatewayError> {
        let validator = Arc::new(load_validator(config)?);
        let store = Store::open(&config.store).await?;
        Self::bind_with(config, store, validator).await
    }

    /// Opens the store and binds the listeners with an already loaded
    /// validator (several gateways in one process share one).
    pub async fn bind_with_validator(
        config: &CheckedConfig,
        validator: Arc<Validator>,
    ) -> Result<Self, GatewayError> {
        let store = Store::open(&config.store).await?;
        Self::bind_with(config, store, validator).await
    }

    /// Binds the listener over an already opened store and loaded validator.
    pub async fn bind_with(
        config: &CheckedConfig,
        store: Store,
        validator: Arc<Validator>,
    ) -> Result<Self, GatewayError> {
        let tls = &config.raw.server.tls;
        let national_tls = ReloadableServerTls::load(ServerTlsFiles {
            identity: IdentityFiles {
                cert_chain: tls.certificate.clone(),
                private_key: tls.private_key.clone(),
            },
            trust: TrustFiles {
                ca_certs: tls.client_cas.clone(),
                crls: tls.client_crls.clone(),
            },
            // Only national systems complete a handshake here.
            misdirected_clients: None,
        })?;
        let loaded = federation::Federation::load(config)?;
        let (federation, federation_tls) = match loaded {
            Some(loaded) => (Some(Arc::new(loaded.federation)), Some(loaded.listener_tls)),
            None => (None, None),
        };
        let federation_listener = match (config.federation_listen, federation_tls) {
            (Some(addr), Some(tls)) => Some((
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| GatewayError::Bind {
                        addr: addr.to_string(),
                        source,
                    })?,
                tls,
            )),
            _ => None,
        };
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| GatewayError::Bind {
                    addr: config.listen.to_string(),
                    source,
                })?;
        let patient_page = match (&config.raw.patient_page, config.patient_page_listen) {
            (Some(section), Some(addr)) => Some(
                patient_page::PatientPage::bind(
                    section,
                    addr,
                    listener.local_addr().map_err(GatewayError::Serve)?,
                )
                .await?,
            ),
            _ => None,
        };
        let state = http::AppState {
            store,
            validator,
            document_profiles: config.raw.validation.document_profiles.clone().into(),
            validated_answers: Arc::new(answer_memo::ValidatedAnswers::new(
                config.raw.validation.peer_answer_memo_entries,
            )),
            metrics: Arc::new(metrics::Metrics::default()),
            limits: http::Limits {
                max_body_bytes: config.raw.server.max_body_bytes,
                body_timeout: Duration::from_secs(config.raw.server.body_timeout_secs),
            },
            country: config.raw.ncp.as_ref().map(|n| n.country.as_str().into()),
            federation,
        };
        Ok(Self {
            listener,
            national_tls,
            federation: federation_listener,
            patient_page,
            state,
        })
    }

    /// The listeners' TLS configurations, to reload on demand (the binary
    /// does on SIGHUP); [`Gateway::run`] also reloads them periodically so a
    /// CRL replaced on disk takes effect without a restart.
    pub fn tls_configs(&self) -> Vec<ReloadableServerTls> {
        let mut configs = vec![self.national_tls.clone()];
        if let Some((_, tls)) = &self.federation {
            configs.push(tls.clone());
        }
        configs
    }

    /// The address the federation listener listens on, with `[federation]`.
    pub fn federation_addr(&self) -> Option<SocketAddr> {
        self.federation
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// The address the demonstration patient page is served on, with
    /// `[patient_page]`.
    pub fn patient_page_addr(&self) -> Option<SocketAddr> {
        self.patient_page
            .as_ref()
            .and_then(|page| page.local_addr().ok())
    }

    /// The address the national API listens on.
    pub fn local_addr(&self) -> Result<SocketAddr, GatewayError> {
        self.listener.local_addr().map_err(GatewayError::Serve)
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), GatewayError> {
        let store = self.state.store.clone();
        let reloader = tokio::spawn(reload_periodically(self.tls_configs(), TLS_RELOAD_PERIOD));
        // One shutdown signal for both listeners.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let wait = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        let federation = self.federation.map(|(listener, tls)| {
            let app = federation::federation_router(self.state.clone());
            // Refused connections are security alerts in the audit trail.
            let on_refusal = self.state.federation.as_ref().map(|f| {
                audit::refusal_observer(
                    self.state.clone(),
                    ehds_fhir::audit_event::NcpParty {
                        country: f.country.clone(),
                        ncp_id: f.ncp_id.clone(),
                    },
                )
            });
            tokio::spawn(ehds_transport::serve_with_options(
                listener,
                tls,
                ListenerKind::Federation,
                app,
                ehds_transport::ServeOptions {
                    metrics: Arc::clone(&self.state.metrics.federation_tls),
                    on_refusal,
                    ..ehds_transport::ServeOptions::default()
                },
                wait(stopped.clone()),
            ))
        });
        let patient_page = self.patient_page.map(|page| {
            let stopped = wait(stopped.clone());
            let state = self.state.clone();
            tokio::spawn(async move {
                if let Err(error) = page.run(state, stopped).await {
                    tracing::error!(%error, "the patient page stopped");
                }
            })
        });
        let national_metrics = Arc::clone(&self.state.metrics.national_tls);
        let app = http::router(self.state);
        let national = ehds_transport::serve_with_options(
            self.listener,
            self.national_tls,
            ListenerKind::National,
            app,
            ehds_transport::ServeOptions {
                metrics: national_metrics,
                ..ehds_transport::ServeOptions::default()
            },
            wait(stopped),
        );
        tokio::pin!(national);
        let shutdown = async move {
            shutdown.await;
            let _ = stop.send(true);
        };
        tokio::join!(national, shutdown);
        if let Some(task) = federation {
            let _ = task.await;
        }
        if let Some(task) = patient_page {
            let _ = task.await;
        }
        reloader.abort();
        store.close().await;
        Ok(())
    }
}

/// How often certificates, keys and CRLs are re-read from disk: a CRL
/// published by the CA and copied in place is in force within this time
/// (and at once on SIGHUP). A failed reload keeps the previous, working
/// configuration and is logged.
pub const TLS_RELOAD_PERIOD: Duration = Duration::from_secs(300);

/// Reloads every TLS configuration now; returns how many failed (each logged).
pub fn reload_tls(configs: &[ReloadableServerTls]) -> usize {
    let mut failed = 0;
    for config in configs {
        match config.reload() {
            Ok(()) => tracing::info!("TLS certificates and CRLs reloaded"),
            Err(error) => {
                failed += 1;
                tracing::error!(%error, "TLS reload failed; the previous configuration stays in force");
            }
        }
    }
    failed
}

async fn reload_periodically(configs: Vec<ReloadableServerTls>, period: Duration) {
    let mut ticks = tokio::time::interval(period);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        reload_tls(&configs);
    }
}

/// Checks the store's audit chain end to end: the `ehds-gateway audit
/// verify` command.
pub async fn verify_audit(config: &CheckedConfig) -> Result<AuditChainReport, GatewayError> {
    let store = Store::open(&config.store).await?;
    let report = store.verify_audit_chain().await;
    store.close().await;
    Ok(report?)
}

/// What [`verify_audit`] found.
pub use ehds_store::{BreakKind, ChainReport as AuditChainReport};

/// Loads the configured FHIR packages and compiles them; every profile the
/// configuration requires must be among them.
pub fn load_validator(config: &CheckedConfig) -> Result<Validator, GatewayError> {
    let validation = &config.raw.validation;
    let mut dirs = Vec::new();
    let root = &validation.packages_dir;
    let entries = std::fs::read_dir(root).map_err(|e| {
        GatewayError::Config(format!(
            "validation.packages_dir {}: {e} (run from the repository root, or set it in the config)",
            root.display()
        ))
    })?;
    let mut packages: Vec<std::path::PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("package.json").is_file() || p.join("package/package.json").is_file())
        .collect();
    packages.sort();
    dirs.extend(packages);
    dirs.extend(validation.extra_package_dirs.iter().cloned());
    let started = std::time::Instant::now();
    let registry = Registry::load(&dirs)
        .map_err(|e| GatewayError::Config(format!("loading FHIR packages: {e}")))?;
    let validator = Validator::new(&registry);
    for problem in validator.load_problems() {
        tracing::warn!(url = %problem.url, problem = %problem.problem, "definition not usable");
    }
    for profile in &validation.document_profiles {
        if !validator.knows_profile(profile) {
            return Err(GatewayError::Config(format!(
                "validation.document_profiles: {profile} is not in the loaded packages"
            )));
        }
    }
    tracing::info!(
        packages = registry.packages().len(),
        resources = registry.len(),
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "FHIR packages loaded"
    );
    Ok(validator)
}

/// Validates one file for the `validate` command: the error count and the
/// OperationOutcome to print.
pub fn validate_file(
    validator: &Validator,
    path: &std::path::Path,
    profiles: &[&str],
) -> Result<(usize, Vec<u8>), GatewayError> {
    let bytes = std::fs::read(path)
        .map_err(|e| GatewayError::Config(format!("cannot read {}: {e}", path.display())))?;
    let issues = match ehds_fhir::ReceivedResource::parse(bytes.into()) {
        Ok(resource) => validator.validate(&resource, profiles).issues,
        Err(rejection) => vec![ehds_fhir::outcome::Issue::from(&rejection)],
    };
    let errors = issues.iter().filter(|i| i.severity.is_error()).count();
    Ok((errors, ehds_fhir::outcome::render(&issues)?))
}
