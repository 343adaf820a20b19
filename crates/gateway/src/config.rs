//! The gateway's configuration: one TOML file, every field known
//! (`deny_unknown_fields`), fully checked before a port is bound.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ehds_store::StoreConfig;
use serde::Deserialize;

use crate::StartError;
use crate::services::{PATIENT_SUMMARY, ServiceRegistry};

/// Default national API address when no config is given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default SQLite store when no config is given.
pub const DEFAULT_STORE_URL: &str = "sqlite://data/gateway.db";
/// Default largest request body: 20 MiB, well above a large IPS (a few MB
/// with embedded PDFs) and far below what would strain memory.
pub const DEFAULT_MAX_BODY_BYTES: usize = 20 * 1024 * 1024;
/// Default memory budget of request bodies being handled at once: 512 MiB,
/// room for two bodies of [`DEFAULT_MAX_BODY_BYTES`] at their estimated cost
/// (`crate::edge::COST_PER_BODY_BYTE` bytes per byte, 240 MiB each) and
/// small ones beside them.
pub const DEFAULT_MEMORY_BUDGET_BYTES: u64 = 512 * 1024 * 1024;
/// Default time a client has to send a request body.
pub const DEFAULT_BODY_TIMEOUT_SECS: u64 = 30;
/// Default time requests in flight get to finish once shutdown begins:
/// below the 30 s a container runtime (Docker, Kubernetes) waits after
/// SIGTERM before it kills the process.
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 20;
/// Default warning time before a loaded certificate's notAfter or a CRL's
/// nextUpdate (issue 17).
pub const DEFAULT_EXPIRY_WARNING_DAYS: u64 = 14;

/// The configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// This gateway's national contact point.
    #[serde(default)]
    pub ncp: Option<NcpSection>,
    /// The national API listener.
    #[serde(default)]
    pub server: ServerSection,
    /// Where documents are stored.
    #[serde(default)]
    pub store: StoreSection,
    /// What documents are validated against.
    #[serde(default)]
    pub validation: ValidationSection,
    /// The federation listener and outbound client (other countries' NCPs);
    /// without it the gateway serves its national API only.
    #[serde(default)]
    pub federation: Option<FederationSection>,
    /// Health-professional assertions: whose identity providers are trusted
    /// and which roles may do what. Required with `[federation]`.
    #[serde(default)]
    pub assertions: Option<AssertionsSection>,
    /// Patients' rights this country grants beyond the defaults.
    #[serde(default)]
    pub patient_rights: PatientRightsSection,
    /// The cross-border services (`crate::services`): the shipped registry,
    /// another file, and services added or replaced by name.
    #[serde(default)]
    pub services: ServicesSection,
    /// The demonstration patient page ([`crate::patient_page`]): plain HTTP
    /// on loopback only, calling this gateway's national API as the patient
    /// portal. Absent: no page.
    #[serde(default)]
    pub patient_page: Option<PatientPageSection>,
}

/// `[services]`: the service registry (`deploy/config/services.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicesSection {
    /// A registry file replacing the shipped one; relative paths are
    /// relative to the working directory. Absent: the shipped registry
    /// (built into the binary).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Services added to the registry, or replacing one of the same name
    /// (`[[services.service]]`, the registry file's format).
    #[serde(default)]
    pub service: Vec<crate::services::Service>,
}

/// `[patient_rights]`: what this country's law says about patients'
/// restrictions of parts of their data (EHDS leaves the emergency exception
/// to each Member State).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatientRightsSection {
    /// The services (`patient-summary`, `eprescription`) for which an
    /// emergency purpose of use lifts the patient's restrictions; empty (the
    /// default): restrictions hold in an emergency too. Every lifting is
    /// audited as such. Opt-outs are never lifted.
    #[serde(default)]
    pub emergency_lifts_restrictions: Vec<String>,
}

/// `[patient_page]`: a demonstration page showing one patient's access log
/// and opt-out switches ([`crate::patient_page`]). It authenticates nobody,
/// so it listens on a loopback address only; it reaches the national API
/// over mutual TLS with the patient portal's national client certificate.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatientPageSection {
    /// `host:port` on loopback (`127.0.0.1:8480`, `[::1]:8480`); port 0
    /// picks a free port.
    pub listen: String,
    /// The patient portal's national client certificate chain (PEM).
    pub client_certificate: PathBuf,
    /// Its private key (PEM).
    pub client_private_key: PathBuf,
    /// The national CA certificate(s) the national API's server
    /// certificate must chain to.
    pub national_cas: Vec<PathBuf>,
    /// A current CRL for every CA above (revocation fails closed).
    pub national_crls: Vec<PathBuf>,
}

/// Development PKI of the repository (`deploy/dev-pki`, BE), used by the
/// embedded default configuration so that a fresh clone serves mutual TLS
/// at once. Never for production: its private keys are public.
pub const DEV_PKI_DIR: &str = "deploy/dev-pki";

/// `[server.tls]`: mutual TLS of the national API. Every caller (EHR,
/// pharmacy, doctor's system, patient portal) presents a client certificate
/// of the country's national CA; there is no plaintext national API.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NationalTlsSection {
    /// The listener's certificate chain (PEM).
    pub certificate: PathBuf,
    /// Its private key (PEM).
    pub private_key: PathBuf,
    /// The national CA certificate(s) whose clients are accepted.
    pub client_cas: Vec<PathBuf>,
    /// A current CRL for every CA above (revocation fails closed).
    pub client_crls: Vec<PathBuf>,
}

impl Default for NationalTlsSection {
    fn default() -> Self {
        let dev = PathBuf::from(DEV_PKI_DIR).join("be");
        Self {
            certificate: dev.join("national-server.pem"),
            private_key: dev.join("national-server.key.pem"),
            client_cas: vec![dev.join("national-ca.pem")],
            client_crls: vec![dev.join("national-ca.crl.pem")],
        }
    }
}

/// `[federation]`: this NCP towards the other countries' NCPs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationSection {
    /// Federation listener `host:port`.
    pub listen: String,
    /// This NCP's id in the directory (the CN of its federation certificates).
    pub ncp_id: String,
    /// Federation server certificate chain (PEM).
    pub certificate: PathBuf,
    /// Its private key.
    pub private_key: PathBuf,
    /// Federation client certificate chain, presented when calling peers.
    pub client_certificate: PathBuf,
    /// Its private key.
    pub client_private_key: PathBuf,
    /// Federation CA certificate(s).
    pub cas: Vec<PathBuf>,
    /// A current CRL for every federation CA.
    pub crls: Vec<PathBuf>,
    /// The NCP directory (TOML): countries, federation URLs, identifier rules.
    pub directory: PathBuf,
    /// Seconds to connect (TCP + TLS) to a peer.
    #[serde(default = "default_connect_timeout_secs")]
    pub connect_timeout_secs: u64,
    /// Seconds a whole call to a peer may take.
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u64,
}

/// `[assertions]`: health-professional assertions.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssertionsSection {
    /// The federation trust list of identity-provider keys (TOML).
    pub trust_list: PathBuf,
    /// The role/permission matrix (TOML).
    pub policy: PathBuf,
    /// Accepted clock difference with the issuer, in seconds.
    #[serde(default = "default_clock_skew_secs")]
    pub clock_skew_secs: u64,
    /// Longest accepted assertion lifetime, in seconds.
    #[serde(default = "default_max_lifetime_secs")]
    pub max_lifetime_secs: u64,
}

pub(crate) fn default_connect_timeout_secs() -> u64 {
    5
}
pub(crate) fn default_request_timeout_secs() -> u64 {
    30
}
fn default_clock_skew_secs() -> u64 {
    60
}
fn default_max_lifetime_secs() -> u64 {
    3600
}

/// The profile an IPS patient summary pushed to `POST /fhir/Bundle` must meet.
pub const IPS_BUNDLE_PROFILE: &str = "http://hl7.org/fhir/uv/ips/StructureDefinition/Bundle-uv-ips";

/// `[validation]`: the FHIR packages and the profiles endpoints require.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationSection {
    /// Folder holding one sub-folder per FHIR package, replacing the shipped
    /// packages; relative paths are relative to the working directory.
    /// Unset (the default): the shipped packages (the repository's
    /// `profiles/`), compiled into the binary (`Registry::shipped`), so no
    /// package file is read at start; with no `extra_package_dirs` either,
    /// their validator too was compiled at build time and is read ready to
    /// use (`ehds-shipped-validator`).
    #[serde(default)]
    pub packages_dir: Option<PathBuf>,
    /// Further package folders added by the operator (another country's
    /// profiles), each with a package.json; compiled and loaded at start,
    /// after the shipped packages (or `packages_dir`).
    #[serde(default)]
    pub extra_package_dirs: Vec<PathBuf>,
    /// The patient summary's document profiles, replacing the service
    /// registry's (kept for configurations written before the registry;
    /// the registry names every service's profiles).
    #[serde(default)]
    pub document_profiles: Option<Vec<String>>,
    /// How many peer document answers that validated with no error are
    /// remembered by SHA-256, so the same bytes are passed on without being
    /// validated again (`crate::answer_memo`); 0 validates every answer.
    #[serde(default = "default_peer_answer_memo_entries")]
    pub peer_answer_memo_entries: usize,
    /// How an extension the gateway holds no definition for is reported in
    /// what this country's systems push (`crate::validation_policy`):
    /// `information` (the default), `warning` or `error`.
    #[serde(default)]
    pub unknown_extensions: UnknownExtensionLevel,
    /// Hosts (`hl7.eu`: it and the hosts below it) or URL prefixes ending
    /// in `/` (`http://hl7.eu/fhir/`, as Java's `-extension` domains) whose
    /// unknown extensions stay information whatever `unknown_extensions`.
    #[serde(default)]
    pub unknown_extension_domains: Vec<String>,
    /// Folders of a terminology server's recorded answers, in the HL7 Java
    /// validator's terminology-cache format (`*.cache` files): codes and
    /// displays of code systems the packages do not hold (SNOMED CT, LOINC,
    /// CVX, ICD-10) are then checked with the server's verdicts, offline
    /// (`ehds_validation::terminology::recorded`). None by default: such
    /// codes are not checked.
    #[serde(default)]
    pub recorded_terminology_dirs: Vec<PathBuf>,
    /// The display language the recorded answers are looked up in when a
    /// resource states none (the language the server was asked for when
    /// recording; Java asks `en-US`). Empty by default: the code system's
    /// default display.
    #[serde(default)]
    pub recorded_terminology_language: String,
}

impl Default for ValidationSection {
    fn default() -> Self {
        Self {
            packages_dir: None,
            extra_package_dirs: Vec::new(),
            document_profiles: None,
            peer_answer_memo_entries: default_peer_answer_memo_entries(),
            unknown_extensions: UnknownExtensionLevel::default(),
            unknown_extension_domains: Vec::new(),
            recorded_terminology_dirs: Vec::new(),
            recorded_terminology_language: String::new(),
        }
    }
}

/// `[validation] unknown_extensions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownExtensionLevel {
    /// Reported as an error: refused under `enforce` (Java's default,
    /// `EXTENSION_EXT_UNKNOWN_NOTHERE`).
    Error,
    /// Reported as a warning.
    Warning,
    /// Reported as information (the default: README, "Validation policy").
    #[default]
    Information,
}

impl ValidationSection {
    /// The unknown-extensions policy as the policy step takes it.
    pub fn unknown_extensions(&self) -> ehds_validation::UnknownExtensions {
        ehds_validation::UnknownExtensions {
            severity: match self.unknown_extensions {
                UnknownExtensionLevel::Error => ehds_fhir::outcome::Severity::Error,
                UnknownExtensionLevel::Warning => ehds_fhir::outcome::Severity::Warning,
                UnknownExtensionLevel::Information => ehds_fhir::outcome::Severity::Information,
            },
            allowed_domains: self.unknown_extension_domains.clone(),
        }
    }

    /// `unknown_extension_domains`: each a host, or a URL prefix with its
    /// scheme ending in `/` (so `http://hl7.eu/` does not also take
    /// `http://hl7.eu.example/`).
    fn check_unknown_extension_domains(&self) -> Result<(), String> {
        for domain in &self.unknown_extension_domains {
            let well_formed = match domain.split_once("://") {
                Some((scheme, rest)) => {
                    !scheme.is_empty()
                        && rest.len() > 1
                        && domain.ends_with('/')
                        && !domain.contains(char::is_whitespace)
                }
                None => {
                    !domain.is_empty()
                        && domain
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                }
            };
            if !well_formed {
                return Err(format!(
                    "validation.unknown_extension_domains: {domain:?} is neither a host \
                     (\"hl7.eu\") nor a URL prefix ending in / (\"http://hl7.eu/fhir/\")"
                ));
            }
        }
        Ok(())
    }
}

fn default_peer_answer_memo_entries() -> usize {
    crate::answer_memo::DEFAULT_ENTRIES
}

/// `[ncp]`: who this gateway is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NcpSection {
    /// ISO 3166-1 alpha-2 code of the country this NCP serves (`BE`, `LU`, …).
    pub country: String,
    /// Human-readable name, for logs and the CapabilityStatement.
    pub name: Option<String>,
}

/// `[server]`: the national API listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// `host:port`; port 0 picks a free port.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Largest request body accepted; larger ones get 413 before they are read.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Memory the request bodies being handled at once may take, estimated
    /// at `crate::edge::COST_PER_BODY_BYTE` bytes per body byte (parsed view,
    /// validation, answer); a body that does not fit in what is left gets
    /// 503 with `Retry-After` before it is read. At least
    /// `max_body_bytes` × that, so a body of the largest size can be served.
    #[serde(default = "default_memory_budget_bytes")]
    pub memory_budget_bytes: u64,
    /// Seconds a client has to send its request body (408 after that).
    #[serde(default = "default_body_timeout_secs")]
    pub body_timeout_secs: u64,
    /// Seconds requests in flight get to finish after SIGTERM or Ctrl-C
    /// (both listeners; `/readyz` answers 503 meanwhile); connections still
    /// open after that are dropped and the process exits.
    #[serde(default = "default_shutdown_grace_secs")]
    pub shutdown_grace_secs: u64,
    /// Days before a loaded certificate's notAfter or a CRL's nextUpdate
    /// that the log warns (at start-up, then every 6 hours); the seconds
    /// left are on `/metrics` (`ehds_tls_expiry_seconds`) anyway.
    #[serde(default = "default_expiry_warning_days")]
    pub expiry_warning_days: u64,
    /// Mutual TLS of the national API (defaults to the development PKI).
    #[serde(default)]
    pub tls: NationalTlsSection,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            max_body_bytes: default_max_body_bytes(),
            memory_budget_bytes: default_memory_budget_bytes(),
            body_timeout_secs: default_body_timeout_secs(),
            shutdown_grace_secs: default_shutdown_grace_secs(),
            expiry_warning_days: default_expiry_warning_days(),
            tls: NationalTlsSection::default(),
        }
    }
}

/// `[store]`: the database.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// `sqlite://PATH` (relative paths are relative to the working directory)
    /// or `postgres://user@host:port/database`.
    #[serde(default = "default_store_url")]
    pub url: String,
    /// PostgreSQL only: schema for the gateway's tables (created if missing).
    pub schema: Option<String>,
    /// PostgreSQL only: connection pool size.
    pub max_connections: Option<u32>,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            url: default_store_url(),
            schema: None,
            max_connections: None,
        }
    }
}

fn default_listen() -> String {
    DEFAULT_LISTEN.to_owned()
}
fn default_store_url() -> String {
    DEFAULT_STORE_URL.to_owned()
}
fn default_max_body_bytes() -> usize {
    DEFAULT_MAX_BODY_BYTES
}
fn default_memory_budget_bytes() -> u64 {
    DEFAULT_MEMORY_BUDGET_BYTES
}
fn default_body_timeout_secs() -> u64 {
    DEFAULT_BODY_TIMEOUT_SECS
}
fn default_shutdown_grace_secs() -> u64 {
    DEFAULT_SHUTDOWN_GRACE_SECS
}
fn default_expiry_warning_days() -> u64 {
    DEFAULT_EXPIRY_WARNING_DAYS
}

/// A configuration that passed every check.
#[derive(Debug, Clone)]
pub struct CheckedConfig {
    /// The file as written.
    pub raw: GatewayConfig,
    /// The national API address.
    pub listen: SocketAddr,
    /// The store.
    pub store: StoreConfig,
    /// The federation listener address, when `[federation]` is configured.
    pub federation_listen: Option<SocketAddr>,
    /// The patient page's loopback address, when `[patient_page]` is
    /// configured.
    pub patient_page_listen: Option<SocketAddr>,
    /// The service registry: the shipped one or `[services] file`, with
    /// `[[services.service]]` and `[validation] document_profiles` applied.
    pub services: ServiceRegistry,
}

impl GatewayConfig {
    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Self, StartError> {
        toml::from_str(text).map_err(|e| StartError::Config(e.to_string()))
    }

    /// Reads and parses a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, StartError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| StartError::Config(format!("cannot read {}: {e}", path.display())))?;
        Self::from_toml(&text).map_err(|e| StartError::Config(format!("{}: {e}", path.display())))
    }

    /// Checks every value; nothing is bound or opened.
    pub fn check(self) -> Result<CheckedConfig, StartError> {
        if let Some(ncp) = &self.ncp {
            // One check for every country code: ehds-routing's, the
            // officially assigned ISO 3166-1 alpha-2 codes (not `XX`, `EL`).
            if ehds_routing::CountryCode::parse(&ncp.country).is_none() {
                return Err(StartError::Config(format!(
                    "ncp.country {:?} must be an officially assigned ISO 3166-1 alpha-2 code in upper case",
                    ncp.country
                )));
            }
        }
        let listen: SocketAddr = self.server.listen.parse().map_err(|e| {
            StartError::Config(format!(
                "server.listen {:?} is not host:port: {e}",
                self.server.listen
            ))
        })?;
        if let Some(unknown) = self
            .patient_rights
            .emergency_lifts_restrictions
            .iter()
            .find(|s| !matches!(s.as_str(), "patient-summary" | "eprescription"))
        {
            return Err(StartError::Config(format!(
                "patient_rights.emergency_lifts_restrictions: {unknown:?} is not a service \
                 (patient-summary, eprescription)"
            )));
        }
        if self.server.max_body_bytes == 0 {
            return Err(StartError::Config(
                "server.max_body_bytes must be greater than 0".into(),
            ));
        }
        let largest_body_cost =
            (self.server.max_body_bytes as u64).saturating_mul(crate::edge::COST_PER_BODY_BYTE);
        if self.server.memory_budget_bytes < largest_body_cost {
            return Err(StartError::Config(format!(
                "server.memory_budget_bytes ({}) must be at least server.max_body_bytes x {} ({largest_body_cost}), \
                 the estimated memory of a body of the largest size",
                self.server.memory_budget_bytes,
                crate::edge::COST_PER_BODY_BYTE
            )));
        }
        if self.server.body_timeout_secs == 0 {
            return Err(StartError::Config(
                "server.body_timeout_secs must be greater than 0".into(),
            ));
        }
        if self.server.shutdown_grace_secs == 0 {
            return Err(StartError::Config(
                "server.shutdown_grace_secs must be greater than 0 (in-flight requests need time to finish)".into(),
            ));
        }
        if self
            .validation
            .document_profiles
            .iter()
            .flatten()
            .any(String::is_empty)
        {
            return Err(StartError::Config(
                "validation.document_profiles has an empty URL".into(),
            ));
        }
        self.validation
            .check_unknown_extension_domains()
            .map_err(StartError::Config)?;
        let services = self.service_registry()?;
        let mut store = StoreConfig::from_url(&self.store.url, self.store.schema.clone())
            .map_err(|e| StartError::Config(format!("store.url: {e}")))?;
        match (&mut store, self.store.max_connections) {
            (
                StoreConfig::Postgres {
                    max_connections, ..
                },
                Some(n),
            ) if n > 0 => {
                *max_connections = n;
            }
            (_, None) => {}
            (StoreConfig::Postgres { .. }, Some(_)) => {
                return Err(StartError::Config(
                    "store.max_connections must be greater than 0".into(),
                ));
            }
            (StoreConfig::Sqlite { .. }, Some(_)) => {
                return Err(StartError::Config(
                    "store.max_connections applies to PostgreSQL only".into(),
                ));
            }
        }
        if self.server.tls.client_cas.is_empty() {
            return Err(StartError::Config(
                "server.tls.client_cas must name the national CA".into(),
            ));
        }
        let federation_listen = match &self.federation {
            None => None,
            Some(federation) => {
                if self.ncp.is_none() {
                    return Err(StartError::Config(
                        "[federation] needs [ncp] (this gateway's country)".into(),
                    ));
                }
                if self.assertions.is_none() {
                    return Err(StartError::Config(
                        "[federation] needs [assertions] (who may ask for what)".into(),
                    ));
                }
                if federation.cas.is_empty() || federation.ncp_id.is_empty() {
                    return Err(StartError::Config(
                        "federation.cas and federation.ncp_id must be set".into(),
                    ));
                }
                if federation.connect_timeout_secs == 0 || federation.request_timeout_secs == 0 {
                    return Err(StartError::Config(
                        "federation timeouts must be greater than 0".into(),
                    ));
                }
                Some(federation.listen.parse().map_err(|e| {
                    StartError::Config(format!(
                        "federation.listen {:?} is not host:port: {e}",
                        federation.listen
                    ))
                })?)
            }
        };
        let patient_page_listen = match &self.patient_page {
            None => None,
            Some(page) => {
                let addr: SocketAddr = page.listen.parse().map_err(|e| {
                    StartError::Config(format!(
                        "patient_page.listen {:?} is not host:port: {e}",
                        page.listen
                    ))
                })?;
                if !addr.ip().is_loopback() {
                    return Err(StartError::Config(format!(
                        "patient_page.listen {addr} is not a loopback address: the patient page \
                         is a demonstration that authenticates nobody and serves plain HTTP, so \
                         it listens on 127.0.0.1 or [::1] only"
                    )));
                }
                if page.national_cas.is_empty() {
                    return Err(StartError::Config(
                        "patient_page.national_cas must name the national CA".into(),
                    ));
                }
                Some(addr)
            }
        };
        Ok(CheckedConfig {
            raw: self,
            listen,
            store,
            federation_listen,
            patient_page_listen,
            services,
        })
    }

    /// The shipped registry or `[services] file`, with the services
    /// `[[services.service]]` adds or replaces, and the patient summary's
    /// profiles from `[validation] document_profiles` when given.
    fn service_registry(&self) -> Result<ServiceRegistry, StartError> {
        let refused = |e: String| StartError::Config(format!("services: {e}"));
        let registry = match &self.services.file {
            None => ServiceRegistry::shipped().map_err(refused)?,
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    StartError::Config(format!("services.file {}: {e}", path.display()))
                })?;
                ServiceRegistry::from_toml_str(&text).map_err(|e| {
                    StartError::Config(format!("services.file {}: {e}", path.display()))
                })?
            }
        };
        let mut added = self.services.service.clone();
        if let Some(profiles) = &self.validation.document_profiles {
            let mut summary = added
                .iter()
                .find(|s| s.name == PATIENT_SUMMARY)
                .or_else(|| {
                    registry
                        .services()
                        .iter()
                        .find(|s| s.name == PATIENT_SUMMARY)
                })
                .cloned()
                .ok_or_else(|| {
                    StartError::Config(
                        "validation.document_profiles: the registry has no patient-summary".into(),
                    )
                })?;
            summary.document_profiles.clone_from(profiles);
            added.retain(|s| s.name != PATIENT_SUMMARY);
            added.push(summary);
        }
        registry.with(&added).map_err(refused)
    }
}

impl CheckedConfig {
    /// Where an SQLite store lives, for the start-up message.
    pub fn store_location(&self) -> String {
        match &self.store {
            StoreConfig::Sqlite { path } => format!("sqlite {}", PathBuf::from(path).display()),
            StoreConfig::Postgres { schema, .. } => match schema {
                Some(schema) => format!("postgres (schema {schema})"),
                None => "postgres".to_owned(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_embedded_default() {
        let checked = GatewayConfig::from_toml("").unwrap().check().unwrap();
        assert_eq!(checked.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(
            checked.store,
            StoreConfig::Sqlite {
                path: "data/gateway.db".into()
            }
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err =
            GatewayConfig::from_toml("[server]\nlisten = \"127.0.0.1:1\"\nport = 3\n").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        assert!(GatewayConfig::from_toml("[nope]\n").is_err());
    }

    #[test]
    fn values_are_checked() {
        for bad in [
            "[server]\nlisten = \"localhost\"",
            "[server]\nmax_body_bytes = 0",
            "[server]\nbody_timeout_secs = 0",
            "[server]\nmemory_budget_bytes = 1048576",
            "[server]\nshutdown_grace_secs = 0",
            "[store]\nurl = \"mysql://x\"",
            "[store]\nurl = \"sqlite://x.db\"\nmax_connections = 3",
            "[store]\nurl = \"postgres://h/db\"\nschema = \"DROP TABLE\"",
            "[ncp]\ncountry = \"be\"",
            "[ncp]\ncountry = \"XX\"",
            "[ncp]\ncountry = \"EL\"",
        ] {
            let result = GatewayConfig::from_toml(bad).and_then(GatewayConfig::check);
            assert!(result.is_err(), "accepted: {bad}");
        }
    }

    #[test]
    fn a_national_fhir_source_is_checked_with_the_configuration() {
        let service = |server: &str| {
            format!(
                "[[services.service]]\nname = \"patient-summary\"\ntitle = \"PS\"\n\
                 permission = \"ReadPatientSummary\"\nsource = \"fhir\"\n\
                 [services.service.national_server]\n{server}\n\
                 [[services.service.document_type]]\nsystem = \"http://loinc.org\"\n\
                 code = \"60591-5\"\ndisplay = \"PS\"\n"
            )
        };
        let checked =
            GatewayConfig::from_toml(&service("base_url = \"http://127.0.0.1:8090/fhir\""))
                .and_then(GatewayConfig::check)
                .unwrap();
        assert_eq!(checked.services.national().count(), 1);
        for bad in [
            "base_url = \"https://fhir.example.lu/r4\"",
            "base_url = \"http://fhir.example.lu/r4\"",
            "base_url = \"http://127.0.0.1:8090/\"\ntimeout_secs = 0",
            "base_url = \"http://127.0.0.1:8090/\"\naccept_any_certificate = true",
        ] {
            let err = GatewayConfig::from_toml(&service(bad)).and_then(GatewayConfig::check);
            assert!(err.is_err(), "accepted: {bad}");
        }
    }

    fn patient_page(listen: &str) -> String {
        format!(
            "[patient_page]\nlisten = \"{listen}\"\nclient_certificate = \"c.pem\"\n\
             client_private_key = \"k.pem\"\nnational_cas = [\"ca.pem\"]\n\
             national_crls = [\"ca.crl.pem\"]\n"
        )
    }

    #[test]
    fn the_patient_page_listens_on_loopback_only() {
        for good in ["127.0.0.1:8480", "127.0.0.1:0", "[::1]:8480"] {
            let checked = GatewayConfig::from_toml(&patient_page(good))
                .and_then(GatewayConfig::check)
                .unwrap();
            assert_eq!(checked.patient_page_listen, good.parse().ok());
        }
        for bad in [
            "0.0.0.0:8480",
            "[::]:8480",
            "192.0.2.7:8480",
            "localhost:8480",
        ] {
            let err = GatewayConfig::from_toml(&patient_page(bad))
                .and_then(GatewayConfig::check)
                .unwrap_err()
                .to_string();
            assert!(err.contains("patient_page.listen"), "{bad}: {err}");
        }
        let err = GatewayConfig::from_toml(&patient_page("0.0.0.0:8480"))
            .and_then(GatewayConfig::check)
            .unwrap_err()
            .to_string();
        assert!(err.contains("loopback"), "{err}");
        let no_ca = patient_page("127.0.0.1:8480").replace("[\"ca.pem\"]", "[]");
        assert!(
            GatewayConfig::from_toml(&no_ca)
                .and_then(GatewayConfig::check)
                .is_err()
        );
        let checked = GatewayConfig::from_toml("").unwrap().check().unwrap();
        assert_eq!(checked.patient_page_listen, None);
    }
}
