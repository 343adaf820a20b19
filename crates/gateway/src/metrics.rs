//! Counters for `GET /metrics`, in the Prometheus text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

use ehds_transport::{HandshakeRefusal, ListenerMetrics};
use std::sync::atomic::{AtomicU64, Ordering};

/// Request and document counters of this gateway process.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    documents_stored: AtomicU64,
    peer_answers_validated_before: AtomicU64,
    /// Security alerts the rate limit left unrecorded, by listener and
    /// reason (both `&'static str`: the map stays small).
    security_alerts_suppressed: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// TLS counters of the national listener.
    pub national_tls: Arc<ListenerMetrics>,
    /// TLS counters of the federation listener.
    pub federation_tls: Arc<ListenerMetrics>,
}

impl Metrics {
    /// Counts one request by method, route template and status.
    pub fn count_request(&self, method: &str, route: &str, status: u16) {
        if let Ok(mut requests) = self.requests.lock() {
            *requests
                .entry((method.to_owned(), route.to_owned(), status))
                .or_default() += 1;
        }
    }

    /// Counts one document newly stored by this process.
    pub fn count_document_stored(&self) {
        self.documents_stored.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one peer answer passed on without validating it again: its
    /// bytes had validated before ([`crate::answer_memo`]).
    pub fn count_peer_answer_validated_before(&self) {
        self.peer_answers_validated_before
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one security alert of `listener` the rate limit left
    /// unrecorded (`crate::audit::alerts`).
    pub(crate) fn count_security_alert_suppressed(
        &self,
        listener: &'static str,
        reason: &'static str,
    ) {
        if let Ok(mut suppressed) = self.security_alerts_suppressed.lock() {
            *suppressed.entry((listener, reason)).or_default() += 1;
        }
    }

    /// The exposition text; `stored_total` is the count in the store (shared
    /// by all replicas), `group_commit` what this process's SQLite writer
    /// committed (`None` on PostgreSQL).
    pub fn render(
        &self,
        stored_total: u64,
        group_commit: Option<ehds_store::GroupCommitCounts>,
    ) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP ehds_http_requests_total HTTP requests handled, by method, route and status.\n",
        );
        out.push_str("# TYPE ehds_http_requests_total counter\n");
        if let Ok(requests) = self.requests.lock() {
            for ((method, route, status), count) in requests.iter() {
                let _ = writeln!(
                    out,
                    "ehds_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {count}",
                    escape_label(route)
                );
            }
        }
        out.push_str(
            "# HELP ehds_documents_stored_total Documents newly stored by this gateway process.\n",
        );
        out.push_str("# TYPE ehds_documents_stored_total counter\n");
        let _ = writeln!(
            out,
            "ehds_documents_stored_total {}",
            self.documents_stored.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP ehds_peer_answers_validated_before_total Peer answers passed on without validating them again (the same bytes had validated).\n",
        );
        out.push_str("# TYPE ehds_peer_answers_validated_before_total counter\n");
        let _ = writeln!(
            out,
            "ehds_peer_answers_validated_before_total {}",
            self.peer_answers_validated_before.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP ehds_security_alerts_suppressed_total Refused connections not recorded as Security Alerts: over the rate limit of their source and reason (the next record of that source and reason states how many).\n",
        );
        out.push_str("# TYPE ehds_security_alerts_suppressed_total counter\n");
        if let Ok(suppressed) = self.security_alerts_suppressed.lock() {
            for ((listener, reason), count) in suppressed.iter() {
                let _ = writeln!(
                    out,
                    "ehds_security_alerts_suppressed_total{{listener=\"{listener}\",reason=\"{reason}\"}} {count}"
                );
            }
        }
        out.push_str("# HELP ehds_documents_stored Documents held in the store.\n");
        out.push_str("# TYPE ehds_documents_stored gauge\n");
        let _ = writeln!(out, "ehds_documents_stored {stored_total}");
        if let Some(counts) = group_commit {
            out.push_str(
                "# HELP ehds_store_durable_writes_total Audit records and replay-ledger entries committed by this process (SQLite).\n",
            );
            out.push_str("# TYPE ehds_store_durable_writes_total counter\n");
            let _ = writeln!(out, "ehds_store_durable_writes_total {}", counts.writes);
            out.push_str(
                "# HELP ehds_store_durable_commits_total Commits that carried them: fewer than the writes when concurrent requests shared one (group commit).\n",
            );
            out.push_str("# TYPE ehds_store_durable_commits_total counter\n");
            let _ = writeln!(out, "ehds_store_durable_commits_total {}", counts.commits);
        }
        out.push_str(
            "# HELP ehds_tls_handshakes_total TLS handshakes by listener and result (refused: by reason).\n",
        );
        out.push_str("# TYPE ehds_tls_handshakes_total counter\n");
        for (listener, metrics) in [
            ("national", &self.national_tls),
            ("federation", &self.federation_tls),
        ] {
            let counts = metrics.counts();
            let _ = writeln!(
                out,
                "ehds_tls_handshakes_total{{listener=\"{listener}\",result=\"ok\"}} {}",
                counts.handshakes_ok
            );
            let _ = writeln!(
                out,
                "ehds_tls_handshakes_total{{listener=\"{listener}\",result=\"timed-out\"}} {}",
                counts.handshakes_timed_out
            );
            let _ = writeln!(
                out,
                "ehds_tls_handshakes_total{{listener=\"{listener}\",result=\"identity-refused\"}} {}",
                counts.identities_refused
            );
            let _ = writeln!(
                out,
                "ehds_tls_handshakes_total{{listener=\"{listener}\",result=\"ocsp-refused\"}} {}",
                counts.ocsp_refused
            );
            // Counted in "ok" too: served only to be refused request by request.
            let _ = writeln!(
                out,
                "ehds_tls_handshakes_total{{listener=\"{listener}\",result=\"misdirected-client\"}} {}",
                counts.misdirected_clients
            );
            for reason in HandshakeRefusal::ALL {
                let _ = writeln!(
                    out,
                    "ehds_tls_handshakes_total{{listener=\"{listener}\",result=\"refused\",reason=\"{}\"}} {}",
                    reason.as_str(),
                    counts.refused(reason)
                );
            }
        }
        // Issue 16: open connections the transport closed on its own, and
        // requests it answered itself.
        out.push_str(
            "# HELP ehds_tls_connections_closed_total Open connections closed by the listener: peer no longer trusted after a reload or OCSP answer (recheck), maximum age, client reading slower than the minimum send rate.\n",
        );
        out.push_str("# TYPE ehds_tls_connections_closed_total counter\n");
        let listeners = [
            ("national", &self.national_tls),
            ("federation", &self.federation_tls),
        ];
        for (listener, metrics) in listeners {
            let counts = metrics.counts();
            for (reason, count) in [
                ("recheck", counts.closed_on_recheck),
                ("max-age", counts.closed_at_max_age),
                ("slow-reader", counts.slow_readers),
            ] {
                let _ = writeln!(
                    out,
                    "ehds_tls_connections_closed_total{{listener=\"{listener}\",reason=\"{reason}\"}} {count}"
                );
            }
        }
        out.push_str(
            "# HELP ehds_http_bad_host_requests_total Requests answered 400 for a missing, repeated or invalid Host header (RFC 9112 section 3.2).\n",
        );
        out.push_str("# TYPE ehds_http_bad_host_requests_total counter\n");
        for (listener, metrics) in listeners {
            let _ = writeln!(
                out,
                "ehds_http_bad_host_requests_total{{listener=\"{listener}\"}} {}",
                metrics.counts().bad_host_requests
            );
        }
        out
    }
}

pub(crate) fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let metrics = Metrics::default();
        metrics.count_request("POST", "/fhir/Bundle", 201);
        metrics.count_request("POST", "/fhir/Bundle", 201);
        metrics.count_request("GET", "unmatched", 404);
        metrics.count_document_stored();
        let text = metrics.render(
            7,
            Some(ehds_store::GroupCommitCounts {
                writes: 10,
                commits: 4,
            }),
        );
        assert!(text.contains(
            "ehds_http_requests_total{method=\"POST\",route=\"/fhir/Bundle\",status=\"201\"} 2\n"
        ));
        assert!(text.contains(
            "ehds_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1\n"
        ));
        assert!(text.contains("ehds_documents_stored_total 1\n"));
        assert!(text.contains("ehds_documents_stored 7\n"));
        assert!(text.contains("ehds_store_durable_writes_total 10\n"));
        assert!(text.contains("ehds_store_durable_commits_total 4\n"));
        assert!(
            text.contains("ehds_tls_handshakes_total{listener=\"national\",result=\"ok\"} 0\n")
        );
    }
}
