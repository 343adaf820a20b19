//! `ehds-relay-bench national`: a cross-border retrieval (issue 19) with the
//! patient's country answering from its store, then from a national FHIR
//! server, in the same run.
//!
//! A BE doctor system reads the LU patient's summary through BE's national
//! API (`GET /fhir/Bundle/LU.<id>`, keep-alive, one fresh assertion per
//! request, as the relay bench does), first with LU's patient summary on
//! its store (the summary pushed by LU's hospital), then with LU's patient
//! summary on the Helios FHIR Server (`hfs`, the real FHIR server the
//! end-to-end journeys run; plain HTTP on loopback, SQLite), seeded with the
//! same summary through its REST API. Each gateway is a child process of
//! this binary and hfs a child process too, so the CPU time of each is read
//! from `/proc/<pid>/stat`: the table gives LU's CPU per request on each
//! source beside hfs's own CPU per request for the same reads, and BE's.
//!
//! Must not know about: the gateway's internals (it configures LU through
//! `ehds_loopback::GatewayToml::answer_from_national_server`, as the tests
//! do, and speaks HTTP to everything).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use ehds_dev_pki::DevPkiSpec;
use ehds_loopback::{self as loopback, LU_PATIENT, LU_SYSTEM, Loopback};
use ehds_test_support::{ScratchDir, repo_root};
use sha2::{Digest, Sha256};

use crate::cpu;
use crate::error::BenchError;
use crate::load::Mode;
use crate::phase::{Bench, Load, RETRIEVAL, Relay, Row, commit, push_summary, ratio};
use crate::setup::GatewayProcess;

/// What the `national` command is told.
#[derive(Debug, clap::Args)]
pub(crate) struct NationalArgs {
    /// The Helios FHIR Server binary (`cargo install helios-hfs`, as
    /// `.ci/run` installs it).
    #[arg(long)]
    hfs: PathBuf,
    /// Also write the Markdown table to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
}

/// The id of the summary on the national server.
const NATIONAL_ID: &str = "ps-lu-1";

/// A running hfs with its own database; killed on drop.
struct Hfs {
    child: tokio::process::Child,
    pid: u32,
    base: String,
    /// `127.0.0.1:<port>`, spoken to in plain HTTP/1.1 (hfs listens on
    /// loopback without TLS; no TLS client is built to talk to it).
    addr: String,
}

/// One plain HTTP/1.1 exchange with hfs on loopback (`Connection: close`):
/// the status and the body.
async fn exchange(
    addr: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<(u16, Vec<u8>), BenchError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let head = format!(
        "{method} /{path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/fhir+json\r\n\
         Content-Type: application/fhir+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.flush().await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| BenchError::Setup(format!("hfs {method} {path}: no HTTP answer")))?;
    let (head, rest) = answer.split_at(split);
    let head = String::from_utf8_lossy(head);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| BenchError::Setup(format!("hfs {method} {path}: {head}")))?;
    let body = rest.get(4..).unwrap_or_default();
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    Ok((
        status,
        if chunked {
            dechunk(body)
        } else {
            body.to_vec()
        },
    ))
}

/// The body of a chunked answer.
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(body.get(..line_end).unwrap_or_default())
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        let Some(chunk) = body.get(start..start + size) else {
            break;
        };
        out.extend_from_slice(chunk);
        body = body.get(start + size + 2..).unwrap_or_default();
    }
    out
}

impl Hfs {
    async fn start(binary: &Path, dir: &Path) -> Result<Self, BenchError> {
        let port = loopback::free_port()?;
        let base = format!("http://127.0.0.1:{port}");
        let log = std::fs::File::create(dir.join("hfs.log"))?;
        let child = tokio::process::Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--database-url")
            .arg(dir.join("national.db"))
            .args(["--log-level", "warn"])
            .env("HFS_BASE_URL", &base)
            .env("HFS_UI_ENABLED", "false")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| BenchError::Setup("hfs exited at once".into()))?;
        let hfs = Self {
            child,
            pid,
            base,
            addr: format!("127.0.0.1:{port}"),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let up = exchange(&hfs.addr, "GET", "metadata", b"")
                .await
                .is_ok_and(|(status, _)| (200..300).contains(&status));
            if up {
                return Ok(hfs);
            }
            if std::time::Instant::now() > deadline {
                return Err(BenchError::Setup("hfs did not start within 60 s".into()));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `PUT <path>` of a FHIR JSON `body`.
    async fn put(&self, path: &str, body: Vec<u8>) -> Result<(), BenchError> {
        let (status, answer) = exchange(&self.addr, "PUT", path, &body).await?;
        if status != 200 && status != 201 {
            return Err(BenchError::Setup(format!(
                "hfs PUT {path}: {status}: {}",
                String::from_utf8_lossy(&answer)
            )));
        }
        Ok(())
    }

    /// The bytes hfs answers to `GET <path>`.
    async fn get(&self, path: &str) -> Result<Vec<u8>, BenchError> {
        let (status, body) = exchange(&self.addr, "GET", path, b"").await?;
        if !(200..300).contains(&status) {
            return Err(BenchError::Setup(format!("hfs GET {path}: {status}")));
        }
        Ok(body)
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The run: LU on its store, then LU on hfs; BE relaying both.
pub(crate) async fn bench(load: Load, national: &NationalArgs) -> Result<(), BenchError> {
    let started_at = time::OffsetDateTime::now_utc();
    let load_before = cpu::load_average();
    let dir = ScratchDir::new("national-bench");
    let run = Loopback::generate(
        &repo_root(),
        dir.path(),
        &DevPkiSpec::for_tests(&["BE", "LU"]),
    )?;
    let pki = &run.pki;
    let idp = run.identity_provider("BE")?;

    // The national server, seeded with the summary LU's hospital pushes.
    let hfs = Hfs::start(&national.hfs, dir.path()).await?;
    let summary = loopback::patient_summary(&repo_root(), LU_SYSTEM, LU_PATIENT)?;
    let mut seeded: serde_json::Value = serde_json::from_slice(&summary)
        .map_err(|e| BenchError::Setup(format!("the summary: {e}")))?;
    seeded
        .as_object_mut()
        .ok_or_else(|| BenchError::Setup("the summary is not a JSON object".into()))?
        .insert("id".into(), NATIONAL_ID.into());
    let seeded =
        serde_json::to_vec(&seeded).map_err(|e| BenchError::Setup(format!("the summary: {e}")))?;
    hfs.put(&format!("Bundle/{NATIONAL_ID}"), seeded).await?;
    let held = hfs.get(&format!("Bundle/{NATIONAL_ID}")).await?;
    eprintln!(
        "hfs pid {}, holding the summary ({} bytes)",
        hfs.pid,
        held.len()
    );

    let write = |name: &str, text: String| -> Result<PathBuf, BenchError> {
        let path = dir.path().join(name);
        std::fs::write(&path, text)?;
        Ok(path)
    };
    let be = GatewayProcess::start(
        &write("be.toml", run.gateway("BE", run.be).text())?,
        run.be.national,
    )
    .await?;
    let be_cpu = || cpu::process(be.pid);
    let relay = |name: &'static str| Relay {
        name,
        base: be.url(""),
        cpu: &be_cpu,
    };
    let mut rows = Vec::new();

    // 1. LU answers from its store.
    let lu = GatewayProcess::start(
        &write("lu-store.toml", run.gateway("LU", run.lu).text())?,
        run.lu.national,
    )
    .await?;
    let (id, pushed) = push_summary(pki, &lu).await?;
    let runner = Bench {
        load,
        pki,
        idp: &idp,
        lu_pid: lu.pid,
        bundle_len: pushed.len(),
        national_pid: Some(hfs.pid),
    };
    check(&runner, &be, &format!("/fhir/Bundle/LU.{id}"), &pushed).await?;
    rows.push(
        runner
            .phase(
                &relay("LU on its store"),
                RETRIEVAL,
                &format!("/fhir/Bundle/LU.{id}"),
                Mode::KeepAlive,
            )
            .await?,
    );
    lu.stop().await;

    // 2. LU answers from hfs (the same ports: BE's directory is unchanged).
    let mut config = run.gateway("LU", run.lu);
    config.answer_from_national_server(
        "patient-summary",
        &format!("{}/", hfs.base),
        "max_concurrent = 64",
    )?;
    let lu =
        GatewayProcess::start(&write("lu-national.toml", config.text())?, run.lu.national).await?;
    let runner = Bench {
        lu_pid: lu.pid,
        bundle_len: held.len(),
        ..runner
    };
    let path = format!("/fhir/Bundle/LU.{NATIONAL_ID}");
    check(&runner, &be, &path, &held).await?;
    rows.push(
        runner
            .phase(&relay("LU on hfs"), RETRIEVAL, &path, Mode::KeepAlive)
            .await?,
    );
    lu.stop().await;
    be.stop().await;
    hfs.stop().await;
    let load_after = cpu::load_average();

    let report = report(
        &rows,
        &format!(
            "Run of {} at commit {} (load average {load_before} at the start, {load_after} at the end); \
             {} callers, {} s after {} s warm-up, keep-alive; the LU summary {} bytes pushed to the store, \
             {} bytes as hfs holds it.\n",
            started_at
                .format(time::macros::format_description!(
                    "[year]-[month]-[day] [hour]:[minute] UTC"
                ))
                .unwrap_or_default(),
            commit(),
            load.clients,
            load.duration_secs,
            load.warmup_secs,
            pushed.len(),
            held.len(),
        ),
    );
    println!("{report}");
    if let Some(path) = &national.markdown {
        std::fs::write(path, &report)?;
    }
    drop(dir);
    Ok(())
}

/// One read through BE must hand over `expected` byte for byte.
async fn check(
    runner: &Bench<'_>,
    be: &GatewayProcess,
    path: &str,
    expected: &[u8],
) -> Result<(), BenchError> {
    let clients = runner.clients(Mode::KeepAlive)?;
    let client = clients
        .first()
        .ok_or_else(|| BenchError::Setup("--clients must be at least 1".into()))?;
    let token = crate::setup::assertions(runner.idp, 1)?;
    let response = client
        .get(be.url(path))
        .bearer_auth(token.first().map(String::as_str).unwrap_or_default())
        .send()
        .await?;
    let status = response.status().as_u16();
    let got = response.bytes().await?;
    if status != 200 || Sha256::digest(&got) != Sha256::digest(expected) {
        return Err(BenchError::Setup(format!(
            "{path}: HTTP {status}, {} bytes, not the summary byte for byte: {}",
            got.len(),
            String::from_utf8_lossy(got.get(..400).unwrap_or(&got))
        )));
    }
    Ok(())
}

/// The Markdown report: one row per source, then the ratios.
fn report(rows: &[Row], context: &str) -> String {
    let mut out = String::from(context);
    let _ = writeln!(
        out,
        "\n| LU answers from | requests/s | p50 ms | p99 ms | failures | LU CPU µs/req | hfs CPU µs/req | LU + hfs CPU µs/req | BE CPU µs/req | load generator CPU µs/req |"
    );
    let _ = writeln!(
        out,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.2} | {:.2} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
            row.relay.trim_start_matches("LU on "),
            row.outcome.rate(),
            row.outcome.quantile_ms(0.5),
            row.outcome.quantile_ms(0.99),
            row.outcome.failures,
            row.per_request_us(row.lu_cpu),
            row.per_request_us(row.national_cpu),
            row.per_request_us(row.lu_cpu + row.national_cpu),
            row.per_request_us(row.relay_cpu),
            row.per_request_us(row.load_cpu),
        );
    }
    if let [store, national] = rows {
        let _ = writeln!(
            out,
            "\nRatios in the same run: LU's CPU per request on hfs ÷ on its store {}; \
             LU + hfs ÷ LU on its store {}; hfs ÷ LU (on hfs) {}; throughput on its store ÷ on hfs {}; \
             p50 on hfs ÷ on its store {}.",
            ratio(
                national.per_request_us(national.lu_cpu),
                store.per_request_us(store.lu_cpu)
            ),
            ratio(
                national.per_request_us(national.lu_cpu + national.national_cpu),
                store.per_request_us(store.lu_cpu)
            ),
            ratio(
                national.per_request_us(national.national_cpu),
                national.per_request_us(national.lu_cpu)
            ),
            ratio(store.outcome.rate(), national.outcome.rate()),
            ratio(
                national.outcome.quantile_ms(0.5),
                store.outcome.quantile_ms(0.5)
            ),
        );
    }
    out
}
