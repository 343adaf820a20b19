//! `ehds-relay-bench`: the cross-border relay (issue 6) measured beside
//! nginx in the same run.
//!
//! Owns: the benchmark of BE → LU patient-summary retrieval over mutual TLS
//! on loopback. It generates a development PKI, starts the LU and BE
//! gateways (each in a child process of this binary, `serve <config>`, so
//! its CPU time is its own), pushes the LU patient summary, then drives
//! `GET /fhir/Bundle/LU.<id>` through BE's national API, and the same load
//! through nginx (Debian's package) configured as a plain mTLS relay with
//! the same certificates, with keep-alive and with a new connection (full
//! mTLS handshake) per request, and prints requests/s, p50/p99 and CPU per
//! request of each relay, with their ratios (one phase: `phase.rs`). The
//! `start` command measures one release gateway (`start.rs`); the
//! `national` command the retrieval with LU on its store, then on a
//! national FHIR server (`national.rs`, issue 19).
//!
//! Must not know about: the gateway's internals (it uses the
//! `ehds-gateway` library as the `ehds-gateway` binary does, and speaks
//! HTTPS to it); never run by `cargo test` (a `[[bin]]` with `test = false`).

mod cpu;
mod error;
mod load;
mod national;
mod nginx;
mod one_connection;
mod phase;
mod setup;
mod start;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use ehds_dev_pki::DevPkiSpec;
use ehds_gateway::{Gateway, GatewayConfig};
use ehds_loopback::{self as loopback, Loopback};
use ehds_test_support::{ScratchDir, repo_root};
use sha2::{Digest, Sha256};

use error::BenchError;
use load::Mode;
use phase::{Bench, Load, RETRIEVAL, Relay, Row, commit, push_summary, ratio};
use setup::{GatewayProcess, READY};

#[derive(Debug, Parser)]
#[command(
    name = "ehds-relay-bench",
    about = "BE -> LU patient-summary retrieval through the gateway and through nginx, same run"
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Concurrent callers (each with its own connection in keep-alive mode).
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Measured seconds per phase.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Unmeasured warm-up seconds before each phase (also sizes the
    /// assertion pool of the phase).
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    /// At most this many assertions signed for one phase.
    #[arg(long, default_value_t = 60_000)]
    max_pool: usize,
    /// The nginx executable.
    #[arg(long, default_value = "/usr/sbin/nginx")]
    nginx: PathBuf,
    /// nginx worker processes (default: the number of cores, like the
    /// gateway's runtime threads).
    #[arg(long)]
    nginx_workers: Option<usize>,
    /// Measure the gateway only.
    #[arg(long)]
    no_nginx: bool,
    /// Also write the Markdown table to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One gateway (the release `ehds-gateway` binary): start-up to
    /// listening, idle and peak RSS, RSS and CPU per pushed summary, each
    /// beside its reference (see `start.rs`).
    Start(start::StartArgs),
    /// BE -> LU retrieval with LU answering from its store, then from a
    /// national FHIR server (the Helios FHIR Server, `hfs`): requests/s,
    /// latency and CPU per request of each gateway beside hfs's own (see
    /// `national.rs`).
    National(national::NationalArgs),
    /// (internal) Serve one gateway with this configuration until standard
    /// input closes; prints `ready` once listening.
    #[command(hide = true)]
    Serve {
        /// The gateway configuration (TOML).
        config: PathBuf,
    },
}

impl Args {
    /// The load of each phase.
    fn load(&self) -> Load {
        Load {
            clients: self.clients,
            duration_secs: self.duration_secs,
            warmup_secs: self.warmup_secs,
            max_pool: self.max_pool,
        }
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let result = match &args.command {
        Some(Command::Serve { config }) => serve(config),
        Some(Command::Start(start)) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(BenchError::from)
            .and_then(|rt| rt.block_on(start::bench(start))),
        Some(Command::National(national)) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(BenchError::from)
            .and_then(|rt| rt.block_on(national::bench(args.load(), national))),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(BenchError::from)
            .and_then(|rt| rt.block_on(bench(&args))),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ehds-relay-bench: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The child: one gateway, as `ehds-gateway serve` runs it (its own runtime
/// with a thread per core, packages loaded, store opened), until the parent
/// closes our standard input.
fn serve(config: &Path) -> Result<(), BenchError> {
    let text = std::fs::read_to_string(config)?;
    let config = GatewayConfig::from_toml(&text)?.check()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let gateway = Gateway::bind(&config).await?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
            let _ = stop.send(());
        });
        println!("{READY}");
        gateway
            .run(async move {
                let _ = stopped.await;
            })
            .await?;
        Ok(())
    })
}

const HANDSHAKE: &str = "handshake + GET /healthz";

async fn bench(args: &Args) -> Result<(), BenchError> {
    let started_at = time::OffsetDateTime::now_utc();
    let load_before = cpu::load_average();
    let dir = ScratchDir::new("relay-bench");
    let run = Loopback::generate(
        &repo_root(),
        dir.path(),
        &DevPkiSpec::for_tests(&["BE", "LU"]),
    )?;
    let pki = &run.pki;
    let mut gateways = Vec::new();
    for (cc, ports) in [("LU", run.lu), ("BE", run.be)] {
        let path = dir.path().join(format!("{}.toml", cc.to_ascii_lowercase()));
        std::fs::write(&path, run.gateway(cc, ports).text())?;
        gateways.push(GatewayProcess::start(&path, ports.national).await?);
    }
    let (Some(be), Some(lu)) = (gateways.pop(), gateways.pop()) else {
        return Err(BenchError::Setup("the gateways did not start".into()));
    };
    eprintln!("LU gateway pid {}, BE gateway pid {}", lu.pid, be.pid);

    // LU's hospital pushes the patient summary.
    let (id, pushed) = push_summary(pki, &lu).await?;
    let path = format!("/fhir/Bundle/LU.{id}");

    let idp = run.identity_provider("BE")?;
    let nginx_dir = dir.path().join("nginx");
    let workers = args.nginx_workers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1)
    });
    let nginx_setup = nginx::NginxSetup {
        binary: &args.nginx,
        dir: &nginx_dir,
        pki,
        port: loopback::free_port()?,
        lu_federation_port: run.lu.federation,
        workers,
    };
    let nginx = if args.no_nginx {
        None
    } else {
        match nginx::Nginx::start(&nginx_setup).await {
            Ok(nginx) => Some(nginx),
            Err(error) => {
                eprintln!("nginx could not be started, measuring the gateway alone: {error}");
                None
            }
        }
    };

    // Both relays hand over the bytes LU's hospital pushed.
    let runner = Bench {
        load: args.load(),
        pki,
        idp: &idp,
        lu_pid: lu.pid,
        bundle_len: pushed.len(),
        national_pid: None,
    };
    let check_clients = runner.clients(Mode::KeepAlive)?;
    let check_client = check_clients
        .first()
        .ok_or_else(|| BenchError::Setup("--clients must be at least 1".into()))?;
    let mut bases = vec![("ehds-gateway (BE)", be.url(""))];
    if let Some(nginx) = &nginx {
        bases.push(("nginx", nginx.url("")));
    }
    let check_tokens = setup::assertions(&idp, bases.len())?;
    for ((name, base), token) in bases.iter().zip(&check_tokens) {
        let response = check_client
            .get(format!("{base}{path}"))
            .bearer_auth(token)
            .send()
            .await?;
        let status = response.status().as_u16();
        let got = response.bytes().await?;
        if status != 200 || Sha256::digest(&got) != Sha256::digest(&pushed) {
            return Err(BenchError::Setup(format!(
                "{name}: HTTP {status}, {} bytes: not the pushed summary byte for byte: {}",
                got.len(),
                String::from_utf8_lossy(got.get(..400).unwrap_or(&got))
            )));
        }
    }
    eprintln!(
        "{} return the pushed summary byte for byte ({} bytes)",
        bases
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(" and "),
        pushed.len()
    );

    let be_cpu = || cpu::process(be.pid);
    let nginx_pid = nginx.as_ref().map(|n| n.pid);
    let nginx_cpu = move || nginx_pid.map(cpu::process_and_children).unwrap_or_default();
    let mut relays = vec![Relay {
        name: "ehds-gateway (BE)",
        base: be.url(""),
        cpu: &be_cpu,
    }];
    if let Some(nginx) = &nginx {
        relays.push(Relay {
            name: "nginx",
            base: nginx.url(""),
            cpu: &nginx_cpu,
        });
    }
    let mut rows = Vec::new();
    for (what, path, mode) in [
        (RETRIEVAL, path.as_str(), Mode::KeepAlive),
        (RETRIEVAL, path.as_str(), Mode::NewConnection),
        (HANDSHAKE, "/healthz", Mode::NewConnection),
    ] {
        for relay in &relays {
            rows.push(runner.phase(relay, what, path, mode).await?);
        }
    }
    let load_after = cpu::load_average();

    let report = report(
        args,
        &rows,
        &Context {
            started_at,
            load: format!("{load_before} at the start, {load_after} at the end"),
            nginx_version: nginx.as_ref().map(|n| n.version.clone()),
            nginx_workers: workers,
            bundle_len: pushed.len(),
        },
    );
    println!("{report}");
    if let Some(path) = &args.markdown {
        std::fs::write(path, &report)?;
    }
    if let Some(nginx) = nginx {
        nginx.stop(&nginx_setup).await;
    }
    be.stop().await;
    lu.stop().await;
    drop(dir);
    Ok(())
}

struct Context {
    started_at: time::OffsetDateTime,
    load: String,
    nginx_version: Option<String>,
    nginx_workers: usize,
    bundle_len: usize,
}

/// The Markdown report: one row per phase, then the ratios.
fn report(args: &Args, rows: &[Row], context: &Context) -> String {
    let mut out = String::new();
    let date = context
        .started_at
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute] UTC"
        ))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "Run of {date} at commit {} (load average {}); {} callers, {} s per phase after {} s warm-up; \
         document {} bytes; {}; nginx worker processes: {}.\n",
        commit(),
        context.load,
        args.clients,
        args.duration_secs,
        args.warmup_secs,
        context.bundle_len,
        context
            .nginx_version
            .as_deref()
            .unwrap_or("nginx not measured"),
        context.nginx_workers,
    );
    let _ = writeln!(
        out,
        "| relay | request | connections | requests/s | p50 ms | p99 ms | failures | relay CPU µs/req | relay cores busy | req/s per relay core | LU CPU µs/req | load generator CPU µs/req |"
    );
    let _ = writeln!(
        out,
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {:.0} | {:.2} | {:.0} | {:.0} | {:.0} |",
            row.relay,
            row.what,
            row.mode.label(),
            row.outcome.rate(),
            row.outcome.quantile_ms(0.5),
            row.outcome.quantile_ms(0.99),
            row.outcome.failures,
            row.per_request_us(row.relay_cpu),
            row.cores(row.relay_cpu),
            row.per_core(),
            row.per_request_us(row.lu_cpu),
            row.per_request_us(row.load_cpu),
        );
    }
    let pairs: Vec<(&Row, &Row)> = rows
        .iter()
        .filter(|r| r.relay != "nginx")
        .filter_map(|g| {
            rows.iter()
                .find(|n| n.relay == "nginx" && n.what == g.what && n.mode == g.mode)
                .map(|n| (g, n))
        })
        .collect();
    if !pairs.is_empty() {
        let _ = writeln!(
            out,
            "\nRatios, ehds-gateway ÷ nginx (above 1: the gateway is slower, or uses more CPU):\n"
        );
        let _ = writeln!(
            out,
            "| request | connections | throughput (nginx req/s ÷ gateway req/s) | p50 | p99 | relay CPU per request |"
        );
        let _ = writeln!(out, "| --- | --- | ---: | ---: | ---: | ---: |");
        for (g, n) in pairs {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                g.what,
                g.mode.label(),
                ratio(n.outcome.rate(), g.outcome.rate()),
                ratio(g.outcome.quantile_ms(0.5), n.outcome.quantile_ms(0.5)),
                ratio(g.outcome.quantile_ms(0.99), n.outcome.quantile_ms(0.99)),
                ratio(g.per_request_us(g.relay_cpu), n.per_request_us(n.relay_cpu)),
            );
        }
    }
    out
}
