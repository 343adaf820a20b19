//! One measured phase of a retrieval benchmark, shared by the relay bench
//! (`main.rs`) and the national connector's (`national.rs`): the callers'
//! clients and assertions, warm-up, the measured load with the CPU time of
//! every process around it ([`Bench::phase`]), one [`Row`] per phase; and
//! what both need to set up and report (the LU summary pushed, the commit,
//! ratios).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ehds_dev_pki::{Authority, DevPkiLayout};
use ehds_loopback::{self as loopback, LU_PATIENT, LU_SYSTEM};
use ehds_test_support::repo_root;
use ehds_transport::{NationalClientKind, TlsIdentity, TrustStore};

use crate::cpu;
use crate::error::BenchError;
use crate::load::{self, Mode, Outcome, Pool};
use crate::setup::{self, GatewayProcess};

/// How much load a phase puts on (the command line's `--clients`,
/// `--duration-secs`, `--warmup-secs`, `--max-pool`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    pub(crate) clients: usize,
    pub(crate) duration_secs: u64,
    pub(crate) warmup_secs: u64,
    pub(crate) max_pool: usize,
}

/// One measured phase.
pub(crate) struct Row {
    pub(crate) relay: &'static str,
    pub(crate) what: &'static str,
    pub(crate) mode: Mode,
    pub(crate) outcome: Outcome,
    pub(crate) relay_cpu: Duration,
    pub(crate) lu_cpu: Duration,
    pub(crate) load_cpu: Duration,
    /// The national FHIR server's CPU (`national`), else zero.
    pub(crate) national_cpu: Duration,
}

impl Row {
    pub(crate) fn ok(&self) -> usize {
        self.outcome.latencies_us.len()
    }
    pub(crate) fn per_request_us(&self, cpu: Duration) -> f64 {
        if self.ok() == 0 {
            return f64::NAN;
        }
        cpu.as_secs_f64() * 1e6 / self.ok() as f64
    }
    /// Requests per second one fully busy core of the relay would serve.
    pub(crate) fn per_core(&self) -> f64 {
        1e6 / self.per_request_us(self.relay_cpu)
    }
    pub(crate) fn cores(&self, cpu: Duration) -> f64 {
        cpu.as_secs_f64() / self.outcome.elapsed.as_secs_f64()
    }
}

/// A relay under test.
pub(crate) struct Relay<'a> {
    pub(crate) name: &'static str,
    pub(crate) base: String,
    pub(crate) cpu: &'a dyn Fn() -> Duration,
}

pub(crate) struct Bench<'a> {
    pub(crate) load: Load,
    pub(crate) pki: &'a DevPkiLayout,
    pub(crate) idp: &'a ehds_access::AssertionIssuer,
    pub(crate) lu_pid: u32,
    pub(crate) bundle_len: usize,
    /// The national FHIR server's process, when LU asks one.
    pub(crate) national_pid: Option<u32>,
}

impl Bench<'_> {
    pub(crate) fn clients(&self, mode: Mode) -> Result<Vec<reqwest::Client>, BenchError> {
        let identity = TlsIdentity::load(
            &self
                .pki
                .national_client("BE", NationalClientKind::DoctorSystem),
        )?;
        let trust = TrustStore::load(&self.pki.trust(&Authority::National("BE".into())))?;
        (0..self.load.clients)
            .map(|_| load::client(&identity, &trust, mode))
            .collect()
    }

    pub(crate) fn pool(&self, count: usize) -> Result<Arc<Pool>, BenchError> {
        let started = Instant::now();
        let tokens = setup::assertions(self.idp, count)?;
        eprintln!(
            "  signed {count} assertions in {:.1} s (not timed)",
            started.elapsed().as_secs_f64()
        );
        Ok(Pool::new(tokens))
    }

    /// Warm-up, then the measured phase, with CPU times around it.
    pub(crate) async fn phase(
        &self,
        relay: &Relay<'_>,
        what: &'static str,
        path: &str,
        mode: Mode,
    ) -> Result<Row, BenchError> {
        let with_assertions = what == RETRIEVAL;
        let expect_len = with_assertions.then_some(self.bundle_len);
        eprintln!("{} — {what} — {}", relay.name, mode.label());
        let clients = self.clients(mode)?;
        let url = format!("{}{path}", relay.base);
        let duration = Duration::from_secs(self.load.duration_secs);
        let warmup = Duration::from_secs(self.load.warmup_secs);
        let warm_pool = if with_assertions {
            // Enough for the warm-up at the rates seen on the project's
            // machine; a spent pool ends the warm-up early, which is fine.
            let size =
                usize::try_from(self.load.warmup_secs.saturating_mul(800)).unwrap_or(usize::MAX);
            self.pool(self.load.max_pool.min(size))?
        } else {
            Pool::new(Vec::new())
        };
        let warm = load::run(&clients, &url, warm_pool, mode, warmup, expect_len).await;
        if warm.failures > 0 && warm.latencies_us.is_empty() {
            return Err(BenchError::Setup(format!(
                "{} {what}: every warm-up request failed: {}",
                relay.name,
                warm.first_failure.unwrap_or_default()
            )));
        }
        let pool = if with_assertions {
            let expected = warm.rate() * duration.as_secs_f64() * 1.5;
            let size = (expected as usize + 200).min(self.load.max_pool);
            self.pool(size)?
        } else {
            Pool::new(Vec::new())
        };
        let national_cpu = || self.national_pid.map(cpu::process).unwrap_or_default();
        let before = (
            (relay.cpu)(),
            cpu::process(self.lu_pid),
            cpu::process(std::process::id()),
            national_cpu(),
        );
        let outcome = load::run(&clients, &url, pool, mode, duration, expect_len).await;
        let after = (
            (relay.cpu)(),
            cpu::process(self.lu_pid),
            cpu::process(std::process::id()),
            national_cpu(),
        );
        if outcome.pool_exhausted {
            eprintln!(
                "  (the assertion pool ran out before the time was up; rate over the time used)"
            );
        }
        if let Some(failure) = &outcome.first_failure {
            eprintln!("  {} failures; first: {failure}", outcome.failures);
        }
        let row = Row {
            relay: relay.name,
            what,
            mode,
            outcome,
            relay_cpu: after.0.saturating_sub(before.0),
            lu_cpu: after.1.saturating_sub(before.1),
            load_cpu: after.2.saturating_sub(before.2),
            national_cpu: after.3.saturating_sub(before.3),
        };
        eprintln!(
            "  {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, relay CPU {:.0} µs/req",
            row.outcome.rate(),
            row.outcome.quantile_ms(0.5),
            row.outcome.quantile_ms(0.99),
            row.per_request_us(row.relay_cpu)
        );
        Ok(row)
    }
}

pub(crate) const RETRIEVAL: &str = "Bundle retrieval";
/// LU's hospital pushes the LU patient's summary to LU's gateway: its id
/// there and the bytes pushed.
pub(crate) async fn push_summary(
    pki: &DevPkiLayout,
    lu: &GatewayProcess,
) -> Result<(String, Vec<u8>), BenchError> {
    let pushed = loopback::patient_summary(&repo_root(), LU_SYSTEM, LU_PATIENT)?;
    let ehr = load::client(
        &TlsIdentity::load(&pki.national_client("LU", NationalClientKind::EhrSystem))?,
        &TrustStore::load(&pki.trust(&Authority::National("LU".into())))?,
        Mode::KeepAlive,
    )?;
    let response = ehr
        .post(lu.url("/fhir/Bundle"))
        .header("content-type", "application/fhir+json")
        .body(pushed.clone())
        .send()
        .await?;
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.text().await?;
    match (status, location) {
        (201, Some(location)) => Ok((
            location.rsplit('/').next().unwrap_or_default().to_owned(),
            pushed,
        )),
        _ => Err(BenchError::Setup(format!(
            "pushing the LU summary: HTTP {status}: {body}"
        ))),
    }
}

pub(crate) fn commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(repo_root())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let hash = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{hash} (with uncommitted changes)")
    } else {
        hash
    }
}

pub(crate) fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() && b.is_finite() {
        format!("{:.2}", a / b)
    } else {
        "–".into()
    }
}
