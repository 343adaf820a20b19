//! The load: `clients` concurrent callers, each with a client of its own,
//! sending GETs back to back for a fixed time, one pre-signed assertion per
//! request; latency of every successful request recorded.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ehds_transport::{TlsIdentity, TrustStore};

use crate::error::BenchError;

/// How the callers use connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// One connection per caller, reused for every request (HTTP/1.1
    /// keep-alive).
    KeepAlive,
    /// A new TCP connection and a full mutual-TLS handshake for every
    /// request (no session resumption: the client offers none), closed after
    /// the answer (`Connection: close`).
    NewConnection,
}

impl Mode {
    /// Its name in the tables.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Mode::KeepAlive => "keep-alive",
            Mode::NewConnection => "new connection per request",
        }
    }
}

/// A caller's HTTPS client: the BE doctor system's certificate, the server
/// verified against the BE national CA and CRL, TLS 1.3 only, no session
/// resumption ([`ehds_transport::client_config`]).
pub(crate) fn client(
    identity: &TlsIdentity,
    trust: &TrustStore,
    mode: Mode,
) -> Result<reqwest::Client, BenchError> {
    let config = Arc::unwrap_or_clone(ehds_transport::client_config(identity, trust)?);
    let idle = match mode {
        Mode::KeepAlive => 1,
        Mode::NewConnection => 0,
    };
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .https_only(true)
        .no_proxy()
        .http1_only()
        .pool_max_idle_per_host(idle)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()?)
}

/// What one phase measured.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Latency of each 200 answer, in microseconds, sorted.
    pub latencies_us: Vec<u64>,
    /// Answers other than 200, and transport errors.
    pub failures: u64,
    /// The first failure, for the report.
    pub first_failure: Option<String>,
    /// From the start to the end of the last request.
    pub elapsed: Duration,
    /// Whether the assertion pool ran out before the time was up.
    pub pool_exhausted: bool,
}

impl Outcome {
    /// Successful requests per second.
    pub(crate) fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.latencies_us.len() as f64 / secs
        } else {
            0.0
        }
    }

    /// The `q` quantile (0..=1) of the latencies, in milliseconds
    /// (nearest rank).
    pub(crate) fn quantile_ms(&self, q: f64) -> f64 {
        let n = self.latencies_us.len();
        if n == 0 {
            return f64::NAN;
        }
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
        self.latencies_us.get(rank).copied().unwrap_or_default() as f64 / 1000.0
    }
}

/// The tokens of a phase, each handed out once.
pub(crate) struct Pool {
    tokens: Vec<String>,
    next: AtomicUsize,
}

impl Pool {
    /// A pool of pre-signed assertions (empty: requests carry none).
    pub(crate) fn new(tokens: Vec<String>) -> Arc<Self> {
        Arc::new(Self {
            tokens,
            next: AtomicUsize::new(0),
        })
    }

    /// The next unused token; `None` when the pool is spent. An empty pool
    /// gives `Some(None)` for ever (requests without an assertion).
    fn take(&self) -> Option<Option<&str>> {
        if self.tokens.is_empty() {
            return Some(None);
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.tokens.get(i).map(|t| Some(t.as_str()))
    }
}

/// Runs `clients` callers against `url` for `duration` (or until `pool` is
/// spent); with `expect_len`, a 200 answer of another length is a failure.
pub(crate) async fn run(
    clients: &[reqwest::Client],
    url: &str,
    pool: Arc<Pool>,
    mode: Mode,
    duration: Duration,
    expect_len: Option<usize>,
) -> Outcome {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for client in clients {
        let client = client.clone();
        let url = url.to_owned();
        let pool = Arc::clone(&pool);
        tasks.spawn(async move {
            let mut out = Outcome::default();
            while Instant::now() < deadline {
                let Some(token) = pool.take() else {
                    out.pool_exhausted = true;
                    break;
                };
                let mut request = client.get(&url).header("accept", "application/fhir+json");
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                if mode == Mode::NewConnection {
                    request = request.header("connection", "close");
                }
                let sent = Instant::now();
                let result = match request.send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        match response.bytes().await {
                            Ok(body) if status == 200 => match expect_len {
                                Some(n) if body.len() != n => {
                                    Err(format!("{} bytes instead of {n}", body.len()))
                                }
                                _ => Ok(()),
                            },
                            Ok(body) => Err(format!(
                                "HTTP {status}: {}",
                                String::from_utf8_lossy(body.get(..300).unwrap_or(&body))
                            )),
                            Err(e) => Err(format!("HTTP {status}, body: {e}")),
                        }
                    }
                    Err(e) => Err(format!("{e:?}")),
                };
                match result {
                    Ok(()) => out
                        .latencies_us
                        .push(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX)),
                    Err(e) => {
                        out.failures += 1;
                        out.first_failure.get_or_insert(e);
                    }
                }
            }
            out
        });
    }
    let mut total = Outcome::default();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(out) => {
                total.latencies_us.extend(out.latencies_us);
                total.failures += out.failures;
                total.pool_exhausted |= out.pool_exhausted;
                if total.first_failure.is_none() {
                    total.first_failure = out.first_failure;
                }
            }
            Err(e) => {
                total.failures += 1;
                total
                    .first_failure
                    .get_or_insert(format!("caller task: {e}"));
            }
        }
    }
    total.elapsed = started.elapsed();
    total.latencies_us.sort_unstable();
    total
}
