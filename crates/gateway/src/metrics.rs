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
    /// Verdicts and issues of the validation policy on pushed resources.
    validation: Mutex<ValidationCounts>,
    /// TLS counters of the national listener.
    pub national_tls: Arc<ListenerMetrics>,
    /// TLS counters of the federation listener.
    pub federation_tls: Arc<ListenerMetrics>,
}

/// At most this many distinct `rule` label values on the validation
/// counters; the others are counted under `other`. Rule keys come from the
/// loaded packages, never from a document ([`ehds_validation::rule_of`]),
/// but a package set holds hundreds of them: a bound keeps the series
/// count (services x severities x rules) predictable.
pub(crate) const MAX_RULE_LABELS: usize = 64;

/// The validation counters (`crate::validation_policy`), by service (the
/// registry's names), policy, verdict, severity and rule.
#[derive(Debug, Default)]
struct ValidationCounts {
    verdicts: BTreeMap<(String, &'static str, &'static str), u64>,
    issues: BTreeMap<(String, &'static str, String), u64>,
    downgraded: BTreeMap<(String, String), u64>,
    /// The `rule` label values given out so far (at most [`MAX_RULE_LABELS`]).
    rules: std::collections::BTreeSet<String>,
}

impl ValidationCounts {
    /// The `rule` label of `rule`: itself while the bound allows.
    fn label(&mut self, rule: &str) -> String {
        if self.rules.contains(rule) {
            return rule.to_owned();
        }
        if self.rules.len() < MAX_RULE_LABELS {
            self.rules.insert(rule.to_owned());
            return rule.to_owned();
        }
        "other".to_owned()
    }
}

/// The `rule` label of an issue: its rule key, `unknown-extension`, or
/// `none` (findings without a rule key: cardinality, unknown elements, …).
fn rule_label(issue: &ehds_fhir::outcome::Issue) -> &str {
    match ehds_validation::rule_of(issue) {
        Some(rule) => rule,
        None if ehds_validation::unknown_extension_url(issue).is_some() => "unknown-extension",
        None => "none",
    }
}

impl Metrics {
    /// Counts the validation policy's verdict on one resource pushed for
    /// `service`, its issues by severity and rule, and its downgrades.
    pub(crate) fn count_validation(
        &self,
        service: &str,
        mode: crate::validation_policy::Mode,
        judgement: &crate::validation_policy::Judgement,
    ) {
        let Ok(mut counts) = self.validation.lock() else {
            return;
        };
        *counts
            .verdicts
            .entry((service.to_owned(), mode.code(), judgement.verdict.code()))
            .or_default() += 1;
        for issue in &judgement.issues {
            let rule = counts.label(rule_label(issue));
            *counts
                .issues
                .entry((service.to_owned(), issue.severity.code(), rule))
                .or_default() += 1;
        }
        for rule in &judgement.downgraded {
            let rule = counts.label(rule);
            *counts
                .downgraded
                .entry((service.to_owned(), rule))
                .or_default() += 1;
        }
    }

    /// The validation counters' exposition text.
    fn render_validation(&self, out: &mut String) {
        let Ok(counts) = self.validation.lock() else {
            return;
        };
        out.push_str(
            "# HELP ehds_validation_verdicts_total Pushed resources and national FHIR servers' answers by service, validation policy and verdict (accepted, accepted-with-errors under report, refused under enforce).\n",
        );
        out.push_str("# TYPE ehds_validation_verdicts_total counter\n");
        for ((service, policy, verdict), count) in &counts.verdicts {
            let _ = writeln!(
                out,
                "ehds_validation_verdicts_total{{service=\"{}\",policy=\"{policy}\",verdict=\"{verdict}\"}} {count}",
                escape_label(service)
            );
        }
        out.push_str(
            "# HELP ehds_validation_issues_total Validation issues on pushed resources, as reported under the policy, by service, severity and rule (at most 64 rule values; the rest under other).\n",
        );
        out.push_str("# TYPE ehds_validation_issues_total counter\n");
        for ((service, severity, rule), count) in &counts.issues {
            let _ = writeln!(
                out,
                "ehds_validation_issues_total{{service=\"{}\",severity=\"{severity}\",rule=\"{}\"}} {count}",
                escape_label(service),
                escape_label(rule)
            );
        }
        out.push_str(
            "# HELP ehds_validation_downgraded_total Errors reported as warnings because the operator downgraded their rule, by service and rule.\n",
        );
        out.push_str("# TYPE ehds_validation_downgraded_total counter\n");
        for ((service, rule), count) in &counts.downgraded {
            let _ = writeln!(
                out,
                "ehds_validation_downgraded_total{{service=\"{}\",rule=\"{}\"}} {count}",
                escape_label(service),
                escape_label(rule)
            );
        }
    }

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
        self.render_validation(&mut out);
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

    #[test]
    fn validation_counters_by_service_severity_and_rule_are_bounded() {
        use crate::validation_policy::{Mode, ServicePolicy, judge};
        use ehds_fhir::outcome::{Issue, IssueType};
        let metrics = Metrics::default();
        let findings = vec![
            Issue::error(IssueType::Invariant, "bdl-7: fullUrl must be unique"),
            Issue::error(IssueType::Invariant, "bdl-7: fullUrl must be unique"),
            Issue::error(IssueType::Structure, "minimum required = 1"),
        ];
        let policy = ServicePolicy {
            policy: Mode::Report,
            downgraded_rules: vec!["bdl-7".into()],
        };
        let judgement = judge(findings, "patient-summary", &policy, &Default::default());
        metrics.count_validation("patient-summary", Mode::Report, &judgement);
        let text = metrics.render(0, None);
        for line in [
            "ehds_validation_verdicts_total{service=\"patient-summary\",policy=\"report\",verdict=\"accepted-with-errors\"} 1\n",
            "ehds_validation_issues_total{service=\"patient-summary\",severity=\"warning\",rule=\"bdl-7\"} 2\n",
            "ehds_validation_issues_total{service=\"patient-summary\",severity=\"error\",rule=\"none\"} 1\n",
            "ehds_validation_downgraded_total{service=\"patient-summary\",rule=\"bdl-7\"} 2\n",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
        // More distinct rules than the bound: the rest are "other".
        let many: Vec<Issue> = (0..MAX_RULE_LABELS + 5)
            .map(|n| Issue::error(IssueType::Invariant, format!("r-{n}: x")))
            .collect();
        let judgement = judge(many, "x", &ServicePolicy::default(), &Default::default());
        metrics.count_validation("x", Mode::Enforce, &judgement);
        let text = metrics.render(0, None);
        let rules: std::collections::BTreeSet<&str> = text
            .lines()
            .filter(|l| l.starts_with("ehds_validation_issues_total{"))
            .filter_map(|l| l.split("rule=\"").nth(1)?.split('"').next())
            .collect();
        assert_eq!(rules.len(), MAX_RULE_LABELS + 1, "{rules:?}");
        assert!(rules.contains("other"));
        assert!(text.contains(
            "ehds_validation_verdicts_total{service=\"x\",policy=\"enforce\",verdict=\"refused\"} 1\n"
        ));
    }
}
