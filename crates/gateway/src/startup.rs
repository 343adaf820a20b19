//! Start-up: the configuration checked, the FHIR packages loaded, the
//! federation material (directory, trust list, policy, TLS) loaded, the
//! store opened and migrated, the listeners bound, then serving until shut
//! down; and the binary's other commands (`validate`, `audit verify`,
//! `dev-pki`, `check-config`).
//!
//! The top of the crate: it assembles the layers below and nothing imports
//! it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ehds_access::{AccessPolicy, TrustList, Verifier, VerifierSettings};
use ehds_identifiers::CountryCode;
use ehds_profiles::Registry;
use ehds_routing::NcpDirectory;
use ehds_store::Store;
use ehds_transport::{
    ClientTimeouts, FederationClient, IdentityFiles, ListenerKind, PoolLimits, ReloadableServerTls,
    ServerTlsFiles, TlsIdentity, TrustFiles, TrustStore,
};
use ehds_validation::{ValidationOptions, Validator};
use tokio::net::TcpListener;

use crate::config::CheckedConfig;
use crate::edge::{AppState, CrossBorder, Limits};
use crate::start_error::StartError;

/// A gateway whose store is open and whose listener is bound.
#[derive(Debug)]
pub struct Gateway {
    listener: TcpListener,
    national_tls: ReloadableServerTls,
    /// The federation listener and its TLS, with `[federation]`.
    federation: Option<(TcpListener, ReloadableServerTls)>,
    /// The demonstration patient page, with `[patient_page]`.
    patient_page: Option<crate::patient_page::PatientPage>,
    state: AppState,
    /// `server.shutdown_grace_secs`.
    shutdown_grace: Duration,
    /// `server.expiry_warning_days`.
    expiry_warning: time::Duration,
}

impl Gateway {
    /// Loads the FHIR packages, opens the store (migrating it) and binds the
    /// national API listener, in that order: a broken package folder or
    /// store never leaves a port bound.
    pub async fn bind(config: &CheckedConfig) -> Result<Self, StartError> {
        let validator = Arc::new(load_validator(config)?);
        let store = Store::open(&config.store).await?;
        Self::bind_with(config, store, validator).await
    }

    /// Opens the store and binds the listeners with an already loaded
    /// validator (several gateways in one process share one).
    pub async fn bind_with_validator(
        config: &CheckedConfig,
        validator: Arc<Validator>,
    ) -> Result<Self, StartError> {
        let store = Store::open(&config.store).await?;
        Self::bind_with(config, store, validator).await
    }

    /// Binds the listener over an already opened store and loaded validator.
    pub async fn bind_with(
        config: &CheckedConfig,
        store: Store,
        validator: Arc<Validator>,
    ) -> Result<Self, StartError> {
        let national_tls = ReloadableServerTls::load(national_tls_files(config))?;
        let loaded = load_federation(config)?;
        let (federation, federation_tls) = match loaded {
            Some((federation, tls)) => (Some(Arc::new(federation)), Some(tls)),
            None => (None, None),
        };
        let federation_listener = match (config.federation_listen, federation_tls) {
            (Some(addr), Some(tls)) => Some((
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Bind {
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
                .map_err(|source| StartError::Bind {
                    addr: config.listen.to_string(),
                    source,
                })?;
        let patient_page = match (&config.raw.patient_page, config.patient_page_listen) {
            (Some(section), Some(addr)) => Some(
                crate::patient_page::PatientPage::bind(
                    section,
                    addr,
                    listener.local_addr().map_err(StartError::Serve)?,
                )
                .await?,
            ),
            _ => None,
        };
        // Packages, store and trust material are loaded: from here on the
        // gateway is ready (`/readyz`) until shutdown begins.
        let operations = crate::operations::Operations::watching(
            std::iter::once(("national", national_tls.clone()))
                .chain(
                    federation_listener
                        .as_ref()
                        .map(|(_, tls)| ("federation", tls.clone())),
                )
                .collect(),
            federation.as_ref().map(|f| f.client.clone()),
        );
        // One validation slot per core: validations beyond wait their turn
        // rather than oversubscribe the cores (edge::validation).
        let slots = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        let state = AppState {
            store,
            validator: crate::edge::Validation::new(validator, slots),
            services: Arc::new(config.services.clone()),
            unknown_extensions: Arc::new(config.raw.validation.unknown_extensions()),
            validated_answers: Arc::new(crate::answer_memo::ValidatedAnswers::new(
                config.raw.validation.peer_answer_memo_entries,
            )),
            metrics: Arc::new(crate::metrics::Metrics::default()),
            operations: Arc::new(operations),
            limits: Limits {
                max_body_bytes: config.raw.server.max_body_bytes,
                body_timeout: Duration::from_secs(config.raw.server.body_timeout_secs),
            },
            memory_budget: Arc::new(crate::edge::MemoryBudget::new(
                config.raw.server.memory_budget_bytes,
            )),
            country: config
                .raw
                .ncp
                .as_ref()
                .and_then(|n| CountryCode::parse(&n.country)),
            federation,
        };
        Ok(Self {
            listener,
            national_tls,
            federation: federation_listener,
            patient_page,
            state,
            shutdown_grace: Duration::from_secs(config.raw.server.shutdown_grace_secs),
            // At most a century: any longer warns of everything anyway.
            expiry_warning: time::Duration::days(
                i64::try_from(config.raw.server.expiry_warning_days.min(36_525)).unwrap_or(36_525),
            ),
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
    pub fn local_addr(&self) -> Result<SocketAddr, StartError> {
        self.listener.local_addr().map_err(StartError::Serve)
    }

    /// Readiness and the watched trust material of this gateway.
    pub fn operations(&self) -> Arc<crate::operations::Operations> {
        Arc::clone(&self.state.operations)
    }

    /// Serves until `shutdown` completes; then `/readyz` answers 503, no
    /// new connection is accepted, and requests in flight get
    /// `server.shutdown_grace_secs` to finish before their connections are
    /// dropped.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let store = self.state.store.clone();
        let reloader = tokio::spawn(reload_periodically(self.tls_configs(), TLS_RELOAD_PERIOD));
        let expiry_watch = tokio::spawn(warn_of_expiries_periodically(
            Arc::clone(&self.state.operations),
            self.expiry_warning,
        ));
        let operations = Arc::clone(&self.state.operations);
        let shutdown_grace = self.shutdown_grace;
        // One shutdown signal for both listeners.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let wait = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        let federation = self.federation.map(|(listener, tls)| {
            let app = crate::federation::router(self.state.clone());
            // Refused connections are security alerts in the audit trail.
            let on_refusal = self.state.federation.as_ref().map(|f| {
                crate::audit::alerts::refusal_observer(
                    self.state.clone(),
                    ehds_fhir::audit_event::NcpParty {
                        country: f.country.to_string(),
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
                    shutdown_grace,
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
        // The national listener's refused connections are security alerts
        // too (issue 16 #3).
        let national_on_refusal = self.state.federation.as_ref().map(|f| {
            crate::audit::alerts::refusal_observer(
                self.state.clone(),
                ehds_fhir::audit_event::NcpParty {
                    country: f.country.to_string(),
                    ncp_id: f.ncp_id.clone(),
                },
            )
        });
        let app = crate::national::router(self.state);
        let national = ehds_transport::serve_with_options(
            self.listener,
            self.national_tls,
            ListenerKind::National,
            app,
            ehds_transport::ServeOptions {
                metrics: national_metrics,
                shutdown_grace,
                on_refusal: national_on_refusal,
                ..ehds_transport::ServeOptions::default()
            },
            wait(stopped),
        );
        tokio::pin!(national);
        let shutdown = async move {
            shutdown.await;
            operations.start_draining();
            tracing::info!(
                grace_secs = shutdown_grace.as_secs(),
                "draining: no new connections; requests in flight may finish"
            );
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
        expiry_watch.abort();
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

/// How often the log is told of trust material that ends soon.
const EXPIRY_WARNING_PERIOD: Duration = Duration::from_secs(6 * 3600);

/// Warns of certificates and CRLs ending within `within`: now, then every
/// [`EXPIRY_WARNING_PERIOD`].
async fn warn_of_expiries_periodically(
    operations: Arc<crate::operations::Operations>,
    within: time::Duration,
) {
    let mut ticks = tokio::time::interval(EXPIRY_WARNING_PERIOD);
    loop {
        ticks.tick().await;
        operations.warn_of_expiries(time::OffsetDateTime::now_utc(), within);
    }
}

/// Checks the store's audit chain end to end: the `ehds-gateway audit
/// verify` command.
pub async fn verify_audit(config: &CheckedConfig) -> Result<AuditChainReport, StartError> {
    let store = Store::open(&config.store).await?;
    let report = store.verify_audit_chain().await;
    store.close().await;
    Ok(report?)
}

/// What `ehds-gateway backup` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backup {
    /// SQLite: a consistent copy written while the gateway may be serving;
    /// its size in bytes. Restore: stop the gateway, put the copy in the
    /// place of `store.url`'s file (removing its `-wal` and `-shm` files),
    /// start it; `audit verify` checks the chain.
    Written(u64),
    /// PostgreSQL: the `pg_dump` command that backs the store up (the
    /// password, if the URL has one, is left out: pg_dump reads it from
    /// `PGPASSWORD` or `~/.pgpass`).
    PgDump(String),
}

/// Backs the configured store up to `out` (a new file): the `ehds-gateway
/// backup` command.
pub async fn backup(config: &CheckedConfig, out: &std::path::Path) -> Result<Backup, StartError> {
    match &config.store {
        ehds_store::StoreConfig::Postgres { url, schema, .. } => {
            Ok(Backup::PgDump(pg_dump_command(url, schema.as_deref(), out)))
        }
        ehds_store::StoreConfig::Sqlite { path } => {
            if !path.exists() {
                return Err(StartError::Config(format!(
                    "store.url: {} does not exist: nothing to back up",
                    path.display()
                )));
            }
            let store = Store::open(&config.store).await?;
            let written = store.backup_into(out).await;
            store.close().await;
            written?;
            let bytes = std::fs::metadata(out)
                .map(|m| m.len())
                .map_err(|e| StartError::Config(format!("{}: {e}", out.display())))?;
            Ok(Backup::Written(bytes))
        }
    }
}

/// `pg_dump` of the gateway's schema (or database) in the custom format
/// (`pg_restore` reads it), without the URL's password.
fn pg_dump_command(url: &str, schema: Option<&str>, out: &std::path::Path) -> String {
    let without_password = match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let authority = match authority.rsplit_once('@') {
                Some((user_info, host)) => {
                    let user = user_info.split(':').next().unwrap_or_default();
                    format!("{user}@{host}")
                }
                None => authority.to_owned(),
            };
            format!("{scheme}://{authority}{tail}")
        }
        None => url.to_owned(),
    };
    let schema = schema
        .map(|s| format!(" --schema='{s}'"))
        .unwrap_or_default();
    format!(
        "pg_dump --format=custom{schema} --file='{}' '{without_password}'",
        out.display().to_string().replace('\'', "'\\''")
    )
}

/// What [`verify_audit`] found.
pub use ehds_store::{BreakKind, ChainReport as AuditChainReport};

/// Loads the configured FHIR packages and compiles them; every profile the
/// configuration requires must be among them. The shipped packages alone
/// (no `packages_dir`, no `extra_package_dirs`) were compiled at build time:
/// their validator is read from the binary (`ehds-shipped-validator`), with
/// no package parsed; operator-added packages are compiled here, with the
/// shipped ones, by the same compiler.
pub fn load_validator(config: &CheckedConfig) -> Result<Validator, StartError> {
    load_validator_counting(config).map(|(validator, _, _)| validator)
}

/// [`load_validator`], with the number of packages loaded and the
/// warnings about the configuration they raise (logged too).
fn load_validator_counting(
    config: &CheckedConfig,
) -> Result<(Validator, usize, Vec<String>), StartError> {
    let validation = &config.raw.validation;
    let started = std::time::Instant::now();
    let (validator, packages, resources) = if validation.packages_dir.is_none()
        && validation.extra_package_dirs.is_empty()
    {
        let validator = ehds_shipped_validator::validator(ValidationOptions::default())
            .map_err(|e| StartError::Config(format!("loading the shipped FHIR packages: {e}")))?;
        (
            validator,
            ehds_shipped_validator::PACKAGES,
            ehds_shipped_validator::RESOURCES,
        )
    } else {
        let registry = load_registry(validation)?;
        (
            Validator::new(&registry),
            registry.packages().len(),
            registry.len(),
        )
    };
    for problem in validator.load_problems() {
        tracing::warn!(url = %problem.url, problem = %problem.problem, "definition not usable");
    }
    let mut warnings = Vec::new();
    let validator = match recorded_answers(validation, &mut warnings)? {
        Some(answers) => validator.with_recorded_answers(std::sync::Arc::new(answers)),
        None => validator,
    };
    for service in config.services.services() {
        for profile in &service.document_profiles {
            if !validator.knows_profile(profile) {
                return Err(StartError::Config(format!(
                    "service {}: document profile {profile} is not in the loaded packages",
                    service.name
                )));
            }
        }
    }
    // A downgraded rule no loaded package has is a warning, not a refusal:
    // rules come from packages, and a list written for the next package
    // version must not stop the gateway.
    for service in config.services.services() {
        for rule in &service.validation.downgraded_rules {
            if !validator.knows_rule(rule) {
                tracing::warn!(service = %service.name, rule = %rule, "downgraded rule is not a rule of the loaded packages");
                warnings.push(format!(
                    "service {}: downgraded rule {rule} is not a rule of the loaded packages",
                    service.name
                ));
            }
        }
    }
    tracing::info!(
        packages,
        resources,
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "FHIR packages loaded"
    );
    Ok((validator, packages, warnings))
}

/// The terminology server's recorded answers of
/// `validation.recorded_terminology_dirs` (every `*.cache` file of each
/// folder, in name order), `None` without folders. A folder or file that
/// cannot be read stops the start; an entry that cannot be read is a
/// warning (the rest of its file is used).
fn recorded_answers(
    validation: &crate::config::ValidationSection,
    warnings: &mut Vec<String>,
) -> Result<Option<ehds_validation::terminology::recorded::RecordedAnswers>, StartError> {
    if validation.recorded_terminology_dirs.is_empty() {
        return Ok(None);
    }
    let mut answers = ehds_validation::terminology::recorded::RecordedAnswers::new()
        .with_default_language(&validation.recorded_terminology_language);
    for dir in &validation.recorded_terminology_dirs {
        let unread = answers.add_dir(dir).map_err(|e| {
            StartError::Config(format!(
                "validation.recorded_terminology_dirs {}: {e}",
                dir.display()
            ))
        })?;
        for (file, entry) in unread {
            let warning = format!(
                "{} line {}: recorded terminology answer not read: {}",
                file.display(),
                entry.line,
                entry.reason
            );
            tracing::warn!(%warning, "recorded terminology");
            warnings.push(warning);
        }
    }
    tracing::info!(
        answers = answers.len(),
        "recorded terminology answers loaded"
    );
    Ok(Some(answers))
}

/// The registry of an operator's packages: `packages_dir` (every package
/// folder in it) or the shipped packages, then `extra_package_dirs`.
fn load_registry(validation: &crate::config::ValidationSection) -> Result<Registry, StartError> {
    match &validation.packages_dir {
        None => Registry::shipped_and(&validation.extra_package_dirs),
        Some(root) => {
            let entries = std::fs::read_dir(root).map_err(|e| {
                StartError::Config(format!("validation.packages_dir {}: {e}", root.display()))
            })?;
            let mut dirs: Vec<std::path::PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.join("package.json").is_file() || p.join("package/package.json").is_file()
                })
                .collect();
            dirs.sort();
            dirs.extend(validation.extra_package_dirs.iter().cloned());
            Registry::load(&dirs)
        }
    }
    .map_err(|e| StartError::Config(format!("loading FHIR packages: {e}")))
}

/// What the `validate` command found in one file.
#[derive(Debug)]
pub struct FileValidation {
    /// Errors left after the operator's policy (downgraded rules are
    /// warnings).
    pub errors: usize,
    /// Whether a push of this file would be refused: an error under
    /// `enforce` (a file that is not FHIR JSON is always refused).
    pub refused: bool,
    /// The OperationOutcome to print.
    pub outcome: Vec<u8>,
}

/// Validates one file for the `validate` command as `$validate` does: a
/// document of a service under that service's `[service.validation]`
/// policy (downgraded rules, `report` or `enforce`), anything under the
/// global unknown-extensions policy (`crate::validation_policy::judge`).
pub fn validate_file(
    validator: &Validator,
    config: &CheckedConfig,
    path: &std::path::Path,
    profiles: &[&str],
) -> Result<FileValidation, StartError> {
    let bytes = std::fs::read(path)
        .map_err(|e| StartError::Config(format!("cannot read {}: {e}", path.display())))?;
    let (issues, refused) = match ehds_fhir::ReceivedResource::parse(bytes.into()) {
        Ok(resource) => {
            let default_policy = crate::validation_policy::ServicePolicy::default();
            let (service, policy) = match config.services.of_document(resource.root()) {
                Some((service, _)) => (service.name.as_str(), &service.validation),
                None => ("", &default_policy),
            };
            let report =
                validator.validate_downgrading(&resource, profiles, &policy.downgraded_rules);
            let judgement = crate::validation_policy::judge(
                report.issues,
                service,
                policy,
                &config.raw.validation.unknown_extensions(),
            );
            let note = judgement.report_note(service, false);
            let refused = !judgement.verdict.stores();
            (
                judgement.issues.into_iter().chain(note).collect::<Vec<_>>(),
                refused,
            )
        }
        Err(rejection) => (vec![ehds_fhir::outcome::Issue::from(&rejection)], true),
    };
    let errors = issues.iter().filter(|i| i.severity.is_error()).count();
    Ok(FileValidation {
        errors,
        refused,
        outcome: ehds_fhir::outcome::render(&issues)?,
    })
}

/// Loads the directory, the trust list, the policy and the TLS material
/// named by `[federation]` and `[assertions]`: the federation and its
/// listener's TLS configuration; `None` without them.
pub fn load_federation(
    config: &CheckedConfig,
) -> Result<Option<(CrossBorder, ReloadableServerTls)>, StartError> {
    let (Some(section), Some(assertions), Some(ncp)) = (
        &config.raw.federation,
        &config.raw.assertions,
        &config.raw.ncp,
    ) else {
        return Ok(None);
    };
    let directory = NcpDirectory::load(&section.directory)
        .map_err(|e| StartError::Config(format!("federation.directory: {e}")))?;
    let own = directory.ncp_for_country(&ncp.country).ok_or_else(|| {
        StartError::Config(format!(
            "the directory does not list this gateway's country {}",
            ncp.country
        ))
    })?;
    if own.id() != section.ncp_id {
        return Err(StartError::Config(format!(
            "federation.ncp_id {:?} is not the directory's NCP for {} ({:?})",
            section.ncp_id,
            ncp.country,
            own.id()
        )));
    }
    let trust = TrustFiles {
        ca_certs: section.cas.clone(),
        crls: section.crls.clone(),
    };
    // This country's national CA (the national listener's client CAs) is
    // admitted on the federation listener only to tell a national system
    // that calls it by mistake, with a 403 it can read and a record; it is
    // never read as an NCP.
    let national = &config.raw.server.tls;
    let listener_tls = ReloadableServerTls::load(ServerTlsFiles {
        identity: IdentityFiles {
            cert_chain: section.certificate.clone(),
            private_key: section.private_key.clone(),
        },
        trust: trust.clone(),
        misdirected_clients: Some(TrustFiles {
            ca_certs: national.client_cas.clone(),
            crls: national.client_crls.clone(),
        }),
    })?;
    // Reloads with the federation listener (issue 16 #1: no pooled
    // connection outlives a CRL that revokes its peer).
    let client = FederationClient::load(
        IdentityFiles {
            cert_chain: section.client_certificate.clone(),
            private_key: section.client_private_key.clone(),
        },
        trust.clone(),
        ClientTimeouts {
            connect: Duration::from_secs(section.connect_timeout_secs),
            request: Duration::from_secs(section.request_timeout_secs),
        },
        PoolLimits::default(),
    )?;
    client.follow(&listener_tls);
    let access = |what: &str, e: ehds_access::AccessError| {
        StartError::Config(format!("assertions.{what}: {e}"))
    };
    let trust_list =
        TrustList::load(&assertions.trust_list).map_err(|e| access("trust_list", e))?;
    let policy = AccessPolicy::load(&assertions.policy).map_err(|e| access("policy", e))?;
    let settings = VerifierSettings {
        clock_skew_secs: u32::try_from(assertions.clock_skew_secs).unwrap_or(u32::MAX),
        max_lifetime_secs: u32::try_from(assertions.max_lifetime_secs).unwrap_or(u32::MAX),
        ..VerifierSettings::default()
    };
    Ok(Some((
        CrossBorder {
            country: own.country(),
            ncp_id: section.ncp_id.clone(),
            directory,
            client,
            verifier: Verifier::new(trust_list, settings),
            policy,
            emergency_lifts_restrictions: config
                .raw
                .patient_rights
                .emergency_lifts_restrictions
                .clone(),
            national_sources: national_sources(config)?,
        },
        listener_tls,
    )))
}

/// The clients of the services' national FHIR servers (their certificates
/// and CRLs loaded).
fn national_sources(config: &CheckedConfig) -> Result<crate::sources::NationalSources, StartError> {
    crate::sources::NationalSources::connect(&config.services)
        .map_err(|e| StartError::Config(format!("services: national_server: {e}")))
}

/// What `check-config` found: everything `serve` would load, loaded, with
/// no port bound.
#[derive(Debug)]
pub struct ConfigCheck {
    /// Whether `[federation]` is configured (and loaded).
    pub federation: bool,
    /// FHIR packages loaded.
    pub packages: usize,
    /// What is accepted but probably not meant (a downgraded rule no loaded
    /// package has).
    pub warnings: Vec<String>,
}

/// Loads everything `serve` would (the national listener's TLS, the
/// federation material, the patient page's certificate and CA, the FHIR
/// packages and the document profiles), without binding a port or opening
/// the store: the `check-config` command.
pub fn check_config(config: &CheckedConfig) -> Result<ConfigCheck, StartError> {
    ReloadableServerTls::load(national_tls_files(config))?;
    let federation = load_federation(config)?.is_some();
    if let Some(page) = &config.raw.patient_page {
        TlsIdentity::load(&IdentityFiles {
            cert_chain: page.client_certificate.clone(),
            private_key: page.client_private_key.clone(),
        })?;
        TrustStore::load(&TrustFiles {
            ca_certs: page.national_cas.clone(),
            crls: page.national_crls.clone(),
        })?;
    }
    // The services' national servers: certificates and CRLs loaded (their
    // URLs and limits were checked with the configuration).
    national_sources(config)?;
    let (_, packages, warnings) = load_validator_counting(config)?;
    Ok(ConfigCheck {
        federation,
        packages,
        warnings,
    })
}

/// The national listener's TLS files.
fn national_tls_files(config: &CheckedConfig) -> ServerTlsFiles {
    let tls = &config.raw.server.tls;
    ServerTlsFiles {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pg_dump_command_names_schema_and_file_but_no_password() {
        let command = pg_dump_command(
            "postgres://ehds:secret@db.example:5432/ehds",
            Some("ncp_be"),
            std::path::Path::new("/backups/be.dump"),
        );
        assert_eq!(
            command,
            "pg_dump --format=custom --schema='ncp_be' --file='/backups/be.dump' \
             'postgres://ehds@db.example:5432/ehds'"
        );
        let command = pg_dump_command("postgres://db/ehds", None, std::path::Path::new("x"));
        assert_eq!(
            command,
            "pg_dump --format=custom --file='x' 'postgres://db/ehds'"
        );
    }
}
