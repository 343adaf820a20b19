//! `ehds-gateway`: the EHDS national contact point gateway.
//!
//! A thin binary: it reads the command line and the environment (`RUST_LOG`),
//! loads and checks the configuration, and hands it to the gateway crate.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ehds_gateway::{Gateway, GatewayConfig};

/// The process's allocator: jemalloc with its background purging thread
/// (issue 16 #4). With glibc's malloc a 20 MiB body's parsed view and
/// validation left hundreds of MiB resident after the request (per-thread
/// arenas keep freed small chunks; every small allocation pays a 16-byte
/// header and a 32-byte minimum); jemalloc packs small allocations into
/// size classes without a header and its background thread gives unused
/// dirty pages back to the system after `dirty_decay_ms` (1 s, compiled in
/// by `.cargo/config.toml`; `muzzy_decay_ms` 0, so they leave the resident
/// set at once). Figures:
/// `conformance/abuse-cases.md`, case 4. Only the binary chooses the
/// allocator; the libraries do not.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(
    name = "ehds-gateway",
    version,
    about = "EHDS national contact point gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the national FHIR API (and the federation listener and the
    /// demonstration patient page when configured). Without --config: SQLite
    /// under ./data/, listening on 127.0.0.1:8080.
    Serve {
        /// TOML configuration file (see deploy/config/).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override `server.listen` (e.g. 127.0.0.1:0 for a free port).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Validate FHIR JSON files against R4 core, the profiles they claim and
    /// --profile, as `$validate` does: a document of a service under that
    /// service's `[service.validation]` policy and the global
    /// unknown-extensions policy of --config; prints an OperationOutcome per
    /// file, exits 1 when a push of any file would be refused.
    Validate {
        /// Files to validate.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// A profile every file must also meet (repeatable).
        #[arg(long)]
        profile: Vec<String>,
        /// Configuration naming the FHIR packages (default: the shipped
        /// packages compiled into the binary).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check a configuration file: load everything `serve` would (TLS
    /// files, the directory, trust list and policy, the patient page's
    /// certificate, the FHIR packages and document profiles) without binding
    /// a port, and exit.
    CheckConfig {
        /// TOML configuration file.
        config: PathBuf,
    },
    /// The cross-border journey on this machine: a Luxembourg and a Belgian
    /// gateway on loopback (development PKI, temporary SQLite stores); a
    /// hospital pushes a patient summary, a doctor abroad retrieves it, the
    /// refusals, both audit trails. Run from the repository root. The
    /// story goes to stdout; the gateways' logs to a file, so that they do
    /// not interleave with it.
    Demo {
        /// Where the gateways' logs go (default: a file named after the
        /// process in the system's temporary folder).
        #[arg(long)]
        log_file: Option<PathBuf>,
        /// Luxembourg answers patient summaries from this national FHIR
        /// server (a base URL over plain HTTP on loopback, e.g.
        /// `http://127.0.0.1:8080`) instead of its store; the demo writes
        /// the patient's summary there first (issue 19).
        #[arg(long, value_name = "URL")]
        national_fhir: Option<String>,
    },
    /// Back the store up while the gateway may be serving: SQLite, a
    /// consistent copy written to OUT (restore: stop the gateway, put the
    /// copy in place of the store's file, start it; `audit verify` checks
    /// the chain); PostgreSQL, the `pg_dump` command to run is printed.
    Backup {
        /// TOML configuration file (names the store).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The file to write (must not exist).
        out: PathBuf,
    },
    /// Audit trail commands.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Write a fresh development PKI (federation CA, national CAs, NCP and
    /// client certificates, CRLs, assertion signing keys, and the revoked,
    /// expired and wrong-CA negatives). Development and tests only.
    DevPki {
        /// Folder to write (deploy/dev-pki in the repository).
        #[arg(long, default_value = "deploy/dev-pki")]
        out: PathBuf,
        /// Countries (ISO 3166-1 alpha-2).
        #[arg(default_values_t = ["BE".to_owned(), "LU".to_owned()])]
        countries: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the audit trail's hash chain from the first record to the head:
    /// exits 1 and names the first broken record if it was tampered with.
    Verify {
        /// TOML configuration file (names the store).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    // The demo tells a story on stdout: its gateways' logs go to a file (at
    // worst, only warnings and errors to stderr), never between its lines.
    let demo_log = match &mut cli.command {
        Command::Demo { log_file, .. } => {
            let path = log_file.take().unwrap_or_else(|| {
                std::env::temp_dir().join(format!("ehds-gateway-demo-{}.log", std::process::id()))
            });
            Some((
                std::fs::File::create(&path).map(std::sync::Mutex::new),
                path,
            ))
        }
        _ => None,
    };
    let mut demo_log_path = None;
    match demo_log {
        Some((Ok(file), path)) => {
            tracing_subscriber::fmt()
                .with_env_filter(filter())
                .with_writer(file)
                .with_ansi(false)
                .init();
            demo_log_path = Some(path);
        }
        Some((Err(error), path)) => {
            eprintln!(
                "ehds-gateway: cannot write the demo's log to {}: {error}; warnings and errors only, on stderr",
                path.display()
            );
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init();
        }
        None => {
            tracing_subscriber::fmt()
                .with_env_filter(filter())
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init();
        }
    }
    if let Some(path) = &demo_log_path {
        println!("(the gateways' logs go to {})\n", path.display());
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ehds-gateway: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ehds-gateway: {error}");
            ExitCode::FAILURE
        }
    }
}

/// What stops a command: the gateway's errors, the demo's, the development
/// PKI generator's (each printed as its own message).
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Gateway(#[from] ehds_gateway::StartError),
    #[error(transparent)]
    Demo(#[from] ehds_loopback::LoopbackError),
    #[error(transparent)]
    DevPki(#[from] ehds_dev_pki::DevPkiError),
}

async fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Serve { config, listen } => {
            let mut raw = match &config {
                Some(path) => GatewayConfig::from_file(path)?,
                None => unconfigured()?,
            };
            if let Some(listen) = listen {
                raw.server.listen = listen;
            }
            let checked = raw.check()?;
            let gateway = Gateway::bind(&checked).await?;
            let addr = gateway.local_addr()?;
            println!(
                "ehds-gateway listening on https://{addr} (store: {})",
                checked.store_location()
            );
            if let Some(page) = gateway.patient_page_addr() {
                println!(
                    "patient page (demonstration, no patient authentication) on \
                     http://{page}/?patient=SYSTEM|VALUE"
                );
            }
            use std::io::Write;
            let _ = std::io::stdout().flush();
            #[cfg(unix)]
            reload_on_sighup(gateway.tls_configs());
            Ok(gateway.run(shutdown_signal()).await?)
        }
        Command::Validate {
            files,
            profile,
            config,
        } => {
            let raw = match &config {
                Some(path) => GatewayConfig::from_file(path)?,
                None => GatewayConfig::default(),
            };
            let checked = raw.check()?;
            let validator = ehds_gateway::load_validator(&checked)?;
            let profiles: Vec<&str> = profile.iter().map(String::as_str).collect();
            let mut failed = false;
            for file in &files {
                let found = ehds_gateway::validate_file(&validator, &checked, file, &profiles)?;
                println!("{}", String::from_utf8_lossy(&found.outcome));
                let verdict = if found.refused {
                    "a push would be refused"
                } else {
                    "a push would be accepted"
                };
                eprintln!("{}: {} error(s), {verdict}", file.display(), found.errors);
                failed |= found.refused;
            }
            if failed {
                return Err(ehds_gateway::StartError::ValidationFailed.into());
            }
            Ok(())
        }
        Command::Demo { national_fhir, .. } => {
            let mut out = std::io::stdout();
            Ok(ehds_loopback::demo::run(&mut out, national_fhir.as_deref()).await?)
        }
        Command::Audit {
            command: AuditCommand::Verify { config },
        } => {
            let raw = match &config {
                Some(path) => GatewayConfig::from_file(path)?,
                None => GatewayConfig::default(),
            };
            let report = ehds_gateway::verify_audit(&raw.check()?).await?;
            let head: String = report
                .head_hash
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            match report.first_broken {
                None => {
                    println!(
                        "audit chain intact: {} records, head {head}",
                        report.records
                    );
                    Ok(())
                }
                Some((seq, kind)) => {
                    eprintln!(
                        "audit chain BROKEN at record {seq} ({kind:?}); {} records",
                        report.records
                    );
                    Err(ehds_gateway::StartError::Config(
                        "the audit trail was tampered with".into(),
                    )
                    .into())
                }
            }
        }
        Command::Backup { config, out } => {
            let raw = match &config {
                Some(path) => GatewayConfig::from_file(path)?,
                None => GatewayConfig::default(),
            };
            match ehds_gateway::backup(&raw.check()?, &out).await? {
                ehds_gateway::Backup::Written(bytes) => {
                    println!("store backed up to {} ({bytes} bytes)", out.display());
                }
                ehds_gateway::Backup::PgDump(command) => {
                    println!(
                        "the store is PostgreSQL: back it up with pg_dump (password from \
                         PGPASSWORD or ~/.pgpass), restore with pg_restore:\n{command}"
                    );
                }
            }
            Ok(())
        }
        Command::DevPki { out, countries } => {
            let countries: Vec<&str> = countries.iter().map(String::as_str).collect();
            ehds_dev_pki::generate(&out, &ehds_dev_pki::DevPkiSpec::long_lived(&countries))?;
            println!("development PKI written to {}", out.display());
            Ok(())
        }
        Command::CheckConfig { config } => {
            let checked = GatewayConfig::from_file(&config)?.check()?;
            let loaded = ehds_gateway::check_config(&checked)?;
            println!(
                "{}: ok (listen {}, store {}, federation {}, {} FHIR packages)",
                config.display(),
                checked.listen,
                checked.store_location(),
                if loaded.federation { "loaded" } else { "off" },
                loaded.packages
            );
            for warning in &loaded.warnings {
                println!("warning: {warning}");
            }
            Ok(())
        }
    }
}

/// Where `serve` without `--config` keeps a development PKI it generated,
/// when it is not run from the repository root.
const GENERATED_DEV_PKI_DIR: &str = "data/dev-pki";

/// `serve` without `--config`: the embedded default configuration (SQLite
/// under `./data/`, the packages compiled into the binary), serving mutual
/// TLS with the repository's development PKI (`deploy/dev-pki`) when run
/// from the repository root, and from any other directory with a
/// development PKI generated once into `data/dev-pki` (issue 17: the binary
/// alone starts anywhere). Either way a development PKI: its keys are not
/// secret, and the start-up message says so.
fn unconfigured() -> Result<GatewayConfig, CliError> {
    let mut raw = GatewayConfig::default();
    if raw.server.tls.certificate.is_file() {
        return Ok(raw);
    }
    let dir = PathBuf::from(GENERATED_DEV_PKI_DIR);
    let layout = ehds_dev_pki::DevPkiLayout::new(&dir);
    let server = layout.national_server("BE");
    if server.cert_chain.is_file() {
        println!(
            "no --config and no deploy/dev-pki here: using the development PKI generated \
             earlier in {} (not for production)",
            dir.display()
        );
    } else {
        ehds_dev_pki::generate(&dir, &ehds_dev_pki::DevPkiSpec::long_lived(&["BE"]))?;
        println!(
            "no --config and no deploy/dev-pki here: generated a development PKI in {} \
             (not for production); national clients present a certificate from {}",
            dir.display(),
            dir.join("be").join("clients").display()
        );
    }
    let trust = layout.trust(&ehds_dev_pki::Authority::National("BE".to_owned()));
    raw.server.tls = ehds_gateway::config::NationalTlsSection {
        certificate: server.cert_chain,
        private_key: server.private_key,
        client_cas: trust.ca_certs,
        client_crls: trust.crls,
    };
    Ok(raw)
}

/// SIGHUP: re-read certificates, keys and CRLs (open connections are
/// re-checked against them and closed if their peer no longer passes).
#[cfg(unix)]
fn reload_on_sighup(configs: Vec<ehds_gateway::ReloadableServerTls>) {
    tokio::spawn(async move {
        let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hangup.recv().await.is_some() {
            ehds_gateway::reload_tls(&configs);
        }
    });
}

/// Ctrl-C or SIGTERM: stop accepting, finish in-flight requests, exit.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
