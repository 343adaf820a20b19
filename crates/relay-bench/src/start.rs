//! `ehds-relay-bench start`: one gateway as an operator runs it — the
//! release `ehds-gateway serve --config …` binary with every shipped package
//! (compiled into it) — measured from the outside (issue 17):
//!
//! | figure | how | reference in the same run |
//! | --- | --- | --- |
//! | start-up to listening | process spawned → first accepted TCP connection on the national API (polled every 0.5 ms), median of `--starts` | a trivial process (`true`) spawned → exited |
//! | peak RSS during start | `VmHWM` of `/proc/<pid>/status` when it first accepts | idle RSS (its ratio) |
//! | idle RSS | `VmRSS` after 2 s with nothing stored | |
//! | RSS after the first 100 pushed summaries, and its growth per 1 000 more (what grows with stored data) | `VmRSS` before the 101st push and right after the last | idle RSS (its ratio) |
//! | RSS after N pushed summaries | `VmRSS` right after `--pushes` distinct 44 KB IPS summaries, 2 s later (as idle is measured 2 s after start), and 12 s later (well past jemalloc's dirty decay, 1 s as built, beside idle read 12 s after start) | idle RSS (its ratio) |
//! | gateway CPU per pushed summary | `/proc/<pid>/stat` user + system time over the pushes, mutual TLS keep-alive on one connection (`one_connection.rs`; the gateway's own handshake counter must not move during the phase), `Prefer: return=minimal` (201 without body), validate + store | `serde_json` parsing the same bytes into a `Value`, in this process |
//! | context switches per pushed summary (a count: what the hand-offs between threads cost, which CPU time on a virtual machine hides in noise) | `/proc/<pid>/task/*/status` over each push phase | (printed below the table) |
//! | the same with `--clients` systems pushing at once | as above, over `--pushes` other distinct summaries shared among `--clients` keep-alive connections pushing concurrently (several hospital systems of one country): the durable commits and the wake-ups are shared | the same `serde_json` figure |

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ehds_dev_pki::{Authority, DevPkiSpec};
use ehds_loopback::{self as loopback, LU_PATIENT, LU_SYSTEM, Loopback};
use ehds_test_support::{ScratchDir, repo_root};
use ehds_transport::{NationalClientKind, TlsIdentity, TrustStore};

use crate::cpu;
use crate::error::BenchError;
use crate::one_connection::OneConnection;

/// Where summaries are pushed.
const PUSH_PATH: &str = "/fhir/Bundle";

/// The gateway's count of completed mutual-TLS handshakes on its national
/// API (`/metrics`).
const HANDSHAKES: &str = "ehds_tls_handshakes_total{listener=\"national\",result=\"ok\"}";

/// The push figures are "with keep-alive": a measured phase during which
/// the gateway's handshake counter moved from `before` to `after` did not
/// measure that.
fn keep_alive(before: u64, after: u64, phase: &str) -> Result<(), BenchError> {
    if after == before {
        Ok(())
    } else {
        Err(BenchError::Setup(format!(
            "the gateway's handshake count went from {before} to {after} during {phase}: not keep-alive"
        )))
    }
}

/// `count` copies of the example summary `text`, each with its own
/// `Bundle.identifier` (`tag` keeps one phase's apart from another's), so
/// that every push stores a new document.
fn distinct_summaries(text: &str, tag: &str, count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            text.replace(
                EXAMPLE_IDENTIFIER,
                &format!("175bd032-8b00-4728-{tag}-{i:012}"),
            )
            .into_bytes()
        })
        .collect()
}

/// The example summary's `Bundle.identifier.value`, replaced per push by
/// one of the same length so every push stores a new document.
const EXAMPLE_IDENTIFIER: &str = "175bd032-8b00-4728-b2dc-748bb1501aed";

/// When memory is read a second time, after start and after the pushes:
/// past jemalloc's `dirty_decay_ms` (1 s as built, `.cargo/config.toml`; 10 s
/// by jemalloc's default), whose background thread then has given freed
/// pages back (`crates/gateway-bin/src/main.rs`).
const DECAYED: Duration = Duration::from_secs(12);

/// Pushed summaries after which the gateway's one-time growth is done (its
/// code paged in, what the validator builds on first use, the store's page
/// caches filled): the RSS then is the base of what grows with stored data.
const WARM_UP_PUSHES: usize = 100;

/// What the `start` command is told.
#[derive(Debug, clap::Args)]
pub(crate) struct StartArgs {
    /// The gateway binary (default: `ehds-gateway` beside this one; build
    /// it with `cargo build --release --bin ehds-gateway`).
    #[arg(long)]
    gateway: Option<PathBuf>,
    /// Starts measured (the median is reported).
    #[arg(long, default_value_t = 7)]
    starts: usize,
    /// Summaries pushed for the CPU and memory figures.
    #[arg(long, default_value_t = 2000)]
    pushes: usize,
    /// Clients pushing at once in the second push phase, each on its own
    /// keep-alive connection (as several hospital systems of one country
    /// do); 1 skips the phase.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Also write the Markdown table to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
}

/// A gateway child process, killed on drop.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn mb(kb: Option<u64>) -> f64 {
    kb.map_or(f64::NAN, |kb| kb as f64 / 1024.0)
}

/// Spawns the gateway and waits for its national API to accept a
/// connection: the process, the time it took, its peak RSS by then (kB).
fn start_gateway(
    exe: &Path,
    config: &Path,
    dir: &Path,
    national: SocketAddr,
) -> Result<(Served, Duration, Option<u64>), BenchError> {
    let started = Instant::now();
    let child = Command::new(exe)
        .args(["serve", "--config"])
        .arg(config)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut served = Served(child);
    loop {
        if TcpStream::connect(national).is_ok() {
            let elapsed = started.elapsed();
            let peak = status_kb(served.0.id(), "VmHWM:");
            return Ok((served, elapsed, peak));
        }
        if let Some(exit) = served.0.try_wait()? {
            return Err(BenchError::Setup(format!("the gateway stopped: {exit}")));
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err(BenchError::Setup(
                "the gateway did not listen within 60 s".into(),
            ));
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

pub(crate) async fn bench(args: &StartArgs) -> Result<(), BenchError> {
    let exe = match &args.gateway {
        Some(exe) => exe.clone(),
        None => std::env::current_exe()?.with_file_name("ehds-gateway"),
    };
    if !exe.is_file() {
        return Err(BenchError::Setup(format!(
            "{} missing: cargo build --release --bin ehds-gateway",
            exe.display()
        )));
    }
    let load_before = cpu::load_average();
    let dir = ScratchDir::new("start-bench");
    let run = Loopback::generate(
        &repo_root(),
        dir.path(),
        &DevPkiSpec::for_tests(&["BE", "LU"]),
    )?;
    let config = dir.path().join("lu.toml");
    std::fs::write(&config, run.gateway("LU", run.lu).text())?;
    let national = SocketAddr::from(([127, 0, 0, 1], run.lu.national));

    // Start-up, beside a trivial process, alternating.
    let mut gateway_starts = Vec::new();
    let mut trivial_starts = Vec::new();
    let mut peaks = Vec::new();
    let mut last = None;
    for i in 0..args.starts.max(1) {
        let started = Instant::now();
        Command::new("true").status()?;
        trivial_starts.push(started.elapsed());
        drop(last.take());
        let (served, elapsed, peak) = start_gateway(&exe, &config, dir.path(), national)?;
        eprintln!(
            "  start {i}: {:.1} ms, peak RSS {:.1} MB",
            elapsed.as_secs_f64() * 1e3,
            mb(peak)
        );
        gateway_starts.push(elapsed);
        peaks.push(peak.unwrap_or_default());
        last = Some(served);
    }
    let Some(served) = last else {
        return Err(BenchError::Setup("no gateway started".into()));
    };
    let pid = served.0.id();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = status_kb(pid, "VmRSS:");
    // And once jemalloc's dirty decay (`dirty_decay_ms`) has passed:
    // what the process keeps, not what its allocator holds for reuse.
    tokio::time::sleep(DECAYED - Duration::from_secs(2)).await;
    let idle_decayed = status_kb(pid, "VmRSS:");

    // Pushes: distinct summaries, one keep-alive connection.
    let summary = loopback::patient_summary(&repo_root(), LU_SYSTEM, LU_PATIENT)?;
    let text = String::from_utf8(summary.clone())
        .map_err(|_| BenchError::Setup("the example summary is not UTF-8".into()))?;
    if !text.contains(EXAMPLE_IDENTIFIER) {
        return Err(BenchError::Setup(
            "the example summary's identifier moved".into(),
        ));
    }
    let bodies = distinct_summaries(&text, "b2dc", args.pushes);
    let config = ehds_transport::client_config(
        &TlsIdentity::load(&run.pki.national_client("LU", NationalClientKind::EhrSystem))?,
        &TrustStore::load(&run.pki.trust(&Authority::National("LU".into())))?,
    )?;
    let mut ehr = OneConnection::open(national, Arc::clone(&config)).await?;
    // One unmeasured push opens the connection.
    let warm = text.replace(EXAMPLE_IDENTIFIER, "175bd032-8b00-4728-b2dc-warmupwarmup");
    let answer = ehr.push(PUSH_PATH, warm.into_bytes()).await?;
    if answer.status != 201 {
        return Err(BenchError::Setup(format!(
            "pushing a summary: HTTP {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        )));
    }
    let handshakes_before = ehr.metric(HANDSHAKES).await?;
    let cpu_before = cpu::process(pid);
    let switches_before = cpu::context_switches(pid);
    let pushed_at = Instant::now();
    let mut after_warm_up = None;
    for (i, body) in bodies.into_iter().enumerate() {
        if i == WARM_UP_PUSHES {
            after_warm_up = status_kb(pid, "VmRSS:");
        }
        let answer = ehr.push(PUSH_PATH, body).await?;
        if answer.status != 201 || !answer.body.is_empty() {
            return Err(BenchError::Setup(format!(
                "a push answered {} (body empty: {})",
                answer.status,
                answer.body.is_empty()
            )));
        }
    }
    let push_wall = pushed_at.elapsed();
    let push_cpu = cpu::process(pid).saturating_sub(cpu_before);
    let push_switches = cpu::context_switches(pid).saturating_sub(switches_before);
    let after_pushes = status_kb(pid, "VmRSS:");
    keep_alive(
        handshakes_before,
        ehr.metric(HANDSHAKES).await?,
        "the sequential pushes",
    )?;
    // And as idle is measured: 2 s later, once the allocator has returned
    // what it keeps of freed memory for a while (jemalloc's decay).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = status_kb(pid, "VmRSS:");
    tokio::time::sleep(DECAYED - Duration::from_secs(2)).await;
    let decayed = status_kb(pid, "VmRSS:");

    // Then as many other distinct summaries from `clients` systems at once,
    // each on its own connection: concurrent pushes share the durable
    // commit (the store's group commit) and the workers' wake-ups.
    let clients = args.clients.max(1);
    let concurrent = if clients > 1 {
        let bodies = distinct_summaries(&text, "c0c0", args.pushes);
        let mut shares: Vec<Vec<Vec<u8>>> = vec![Vec::new(); clients];
        for (i, body) in bodies.into_iter().enumerate() {
            if let Some(share) = shares.get_mut(i % clients) {
                share.push(body);
            }
        }
        let mut systems = Vec::with_capacity(clients);
        for share in shares {
            // Each connection opened before the measure.
            systems.push((
                OneConnection::open(national, Arc::clone(&config)).await?,
                share,
            ));
        }
        // The handshake counter is read on pushing connections: before on
        // the last one opened, after on the last one to finish. The
        // sequential phase's connection idled past the gateway's 10 s idle
        // timeout meanwhile, and a connection left idle through this phase
        // would be closed too where the phase outlasts it.
        let handshakes_before = match systems.last_mut() {
            Some((system, _)) => system.metric(HANDSHAKES).await?,
            None => return Err(BenchError::Setup("no client to push concurrently".into())),
        };
        let cpu_before = cpu::process(pid);
        let switches_before = cpu::context_switches(pid);
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for (mut system, share) in systems {
            tasks.spawn(async move {
                for body in share {
                    let answer = system.push(PUSH_PATH, body).await?;
                    if answer.status != 201 {
                        return Err(BenchError::Setup(format!(
                            "a concurrent push answered {}",
                            answer.status
                        )));
                    }
                }
                Ok::<OneConnection, BenchError>(system)
            });
        }
        let mut used = None;
        while let Some(done) = tasks.join_next().await {
            used = Some(
                done.map_err(|e| BenchError::Setup(format!("a pushing client failed: {e}")))??,
            );
        }
        let wall = started.elapsed();
        let cpu = cpu::process(pid).saturating_sub(cpu_before);
        let switches = cpu::context_switches(pid).saturating_sub(switches_before);
        let mut used =
            used.ok_or_else(|| BenchError::Setup("no client pushed concurrently".into()))?;
        keep_alive(
            handshakes_before,
            used.metric(HANDSHAKES).await?,
            "the concurrent pushes",
        )?;
        Some((cpu, wall, switches))
    } else {
        None
    };
    drop(served);

    // The reference: serde_json parsing the same bytes, here.
    let rounds = 2000;
    let parsed_at = Instant::now();
    for _ in 0..rounds {
        let value: serde_json::Value = serde_json::from_slice(std::hint::black_box(&summary))
            .map_err(|e| BenchError::Setup(format!("serde_json: {e}")))?;
        std::hint::black_box(value);
    }
    let parse = parsed_at.elapsed() / rounds;

    let pushes = u32::try_from(args.pushes.max(1)).unwrap_or(u32::MAX);
    let per_push = push_cpu / pushes;
    let start = median(gateway_starts);
    let trivial = median(trivial_starts);
    let peak = peaks.iter().copied().max();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    // NaN when there were not more pushes than the warm-up.
    let growth_per_1000 = (mb(after_pushes) - mb(after_warm_up)) * 1000.0
        / args.pushes.saturating_sub(WARM_UP_PUSHES) as f64;
    let table = format!(
        "| figure | gateway | reference (same run) | ratio |\n\
         | --- | ---: | ---: | ---: |\n\
         | start-up to listening (median of {starts}) | {start:.1} ms | `true` spawned → exited {trivial:.2} ms | {r_start:.0}× |\n\
         | peak RSS during start (highest of {starts}) | {peak:.1} MB | idle RSS {idle:.1} MB | {r_peak:.2}× |\n\
         | RSS after the first {warm} pushed summaries (one-time: code paged in, validator structures built on first use, page caches filled) | {warmed:.1} MB | idle RSS {idle:.1} MB | {r_warmed:.2}× |\n\
         | RSS right after {n} pushed summaries | {after:.1} MB | idle RSS {idle:.1} MB | {r_after:.2}× |\n\
         | RSS growth per 1 000 stored summaries, from the {warm}th to the {n}th (what grows with stored data) | {growth:.2} MB | idle RSS {idle:.1} MB | {r_growth:.2} % |\n\
         | RSS 2 s after {n} pushed summaries (as idle: 2 s after start) | {settled:.1} MB | idle RSS {idle:.1} MB | {r_settled:.2}× |\n\
         | RSS 12 s after {n} pushed summaries (past the allocator's decay) | {decayed:.1} MB | idle RSS 12 s after start {idle_decayed:.1} MB | {r_decayed:.2}× |\n\
         | gateway CPU per pushed {kb} KB summary (mTLS keep-alive, `return=minimal`) | {per_push:.3} ms | `serde_json` parse of the same bytes {parse:.3} ms | {r_push:.1}× |\n",
        starts = args.starts.max(1),
        start = ms(start),
        trivial = ms(trivial),
        r_start = start.as_secs_f64() / trivial.as_secs_f64(),
        peak = mb(peak),
        idle = mb(idle),
        r_peak = mb(peak) / mb(idle),
        n = args.pushes,
        warm = WARM_UP_PUSHES,
        warmed = mb(after_warm_up),
        r_warmed = mb(after_warm_up) / mb(idle),
        growth = growth_per_1000,
        r_growth = 100.0 * growth_per_1000 / mb(idle),
        after = mb(after_pushes),
        r_after = mb(after_pushes) / mb(idle),
        settled = mb(settled),
        r_settled = mb(settled) / mb(idle),
        decayed = mb(decayed),
        idle_decayed = mb(idle_decayed),
        r_decayed = mb(decayed) / mb(idle_decayed),
        kb = summary.len() / 1000,
        per_push = ms(per_push),
        parse = ms(parse),
        r_push = per_push.as_secs_f64() / parse.as_secs_f64(),
    );
    let mut table = table;
    let switches_per_push = |switches: u64| switches as f64 / f64::from(pushes);
    let mut switches = format!(
        "gateway context switches per pushed summary (all its threads): {:.1} on one connection",
        switches_per_push(push_switches)
    );
    if let Some((cpu, wall, concurrent_switches)) = concurrent {
        switches.push_str(&format!(
            ", {:.1} with {clients} clients at once",
            switches_per_push(concurrent_switches)
        ));
        let per_push = cpu / pushes;
        table.push_str(&format!(
            "| gateway CPU per pushed {kb} KB summary, {clients} clients at once ({rate:.0}/s) | {per:.3} ms | `serde_json` parse of the same bytes {parse:.3} ms | {ratio:.1}× |\n",
            kb = summary.len() / 1000,
            rate = f64::from(pushes) / wall.as_secs_f64(),
            per = ms(per_push),
            parse = ms(parse),
            ratio = per_push.as_secs_f64() / parse.as_secs_f64(),
        ));
    }
    let notes = format!(
        "{switches}\n\n{} pushes in {:.1} s ({:.0}/s, one connection); load average {} before, {} after; {} cores\n",
        args.pushes,
        push_wall.as_secs_f64(),
        f64::from(pushes) / push_wall.as_secs_f64(),
        load_before,
        cpu::load_average(),
        std::thread::available_parallelism().map_or(1, usize::from),
    );
    println!("{table}\n{notes}");
    if let Some(path) = &args.markdown {
        std::fs::write(path, format!("{table}\n{notes}"))?;
    }
    Ok(())
}
