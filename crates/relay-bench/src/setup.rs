//! The two gateways of the run, set up by `ehds_loopback` as the
//! end-to-end tests set theirs up (a fresh development PKI, the BE and LU
//! configurations, here with the gateway's own relay timeouts), each gateway
//! served by a child process of this binary so that its CPU time can be read
//! from `/proc/<pid>/stat` exactly as nginx's is.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use ehds_access::{AssertionIssuer, PatientRef, PurposeOfUse};
use ehds_loopback::{self as loopback, LU_PATIENT, LU_SYSTEM};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::error::BenchError;

/// What a gateway child process prints once it is listening.
pub(crate) const READY: &str = "ready";

/// A gateway served by a child process of this binary (`serve <config>`).
/// It stops when its standard input closes (when this is dropped, or the
/// parent dies) and is killed on drop if it has not.
pub(crate) struct GatewayProcess {
    child: Child,
    /// Its process id.
    pub pid: u32,
    /// Its national API.
    pub national: SocketAddr,
}

impl GatewayProcess {
    /// Starts `serve <config>` and waits until it says it is listening.
    pub(crate) async fn start(config: &Path, national: u16) -> Result<Self, BenchError> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .arg("serve")
            .arg(config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| BenchError::Setup("the gateway process exited at once".into()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| BenchError::Setup("no stdout of the gateway process".into()))?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
            .await
            .map_err(|_| BenchError::Setup("the gateway did not start within 120 s".into()))??;
        if line.as_deref() != Some(READY) {
            return Err(BenchError::Setup(format!(
                "the gateway process said {line:?} instead of {:?}",
                READY
            )));
        }
        Ok(Self {
            child,
            pid,
            national: SocketAddr::from(([127, 0, 0, 1], national)),
        })
    }

    /// `https://<national API><path>`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.national)
    }

    /// Closes its standard input (graceful stop) and waits for it.
    pub(crate) async fn stop(mut self) {
        drop(self.child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// `count` fresh assertions of the BE doctor for the LU patient, audience
/// LU's NCP, signed on every core before the timing starts (signing is the
/// doctor's identity provider's cost, not the relay's). Each is used once:
/// both NCPs' replay ledgers refuse a second use.
pub(crate) fn assertions(idp: &AssertionIssuer, count: usize) -> Result<Vec<String>, BenchError> {
    let patient = PatientRef::new(LU_SYSTEM, LU_PATIENT);
    let professional = loopback::be_doctor();
    let threads = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1);
    let per_thread = count.div_ceil(threads);
    let now = time::OffsetDateTime::now_utc();
    let chunks: Vec<Result<Vec<String>, BenchError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let n = per_thread.min(count.saturating_sub(t * per_thread));
                let patient = &patient;
                let professional = &professional;
                scope.spawn(move || {
                    (0..n)
                        .map(|_| {
                            idp.issue(
                                professional,
                                "urn:ehds:ncp:LU",
                                patient,
                                PurposeOfUse::Treatment,
                                now,
                                time::Duration::minutes(10),
                            )
                            .map_err(BenchError::from)
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(BenchError::Setup("a signing thread failed".into())))
            })
            .collect()
    });
    let mut all = Vec::with_capacity(count);
    for chunk in chunks {
        all.extend(chunk?);
    }
    Ok(all)
}
