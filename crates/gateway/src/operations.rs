//! What an operator's tooling asks of a running gateway beside its APIs:
//! whether it takes traffic (`/readyz`: not while draining at shutdown, nor
//! with trust material past its dates), and how long each loaded
//! certificate and CRL stays usable (gauges on `/metrics`, and a log
//! warning when one ends within `server.expiry_warning_days`).
//!
//! Knows nothing of the crate: the listeners' TLS configurations and the
//! federation client are handed to it at start-up.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use ehds_transport::{Expiry, FederationClient, ReloadableServerTls};
use time::OffsetDateTime;

/// Readiness and the trust material whose dates are watched. Built once at
/// start-up; [`Operations::start_draining`] is the one change.
#[derive(Debug, Default)]
pub struct Operations {
    draining: AtomicBool,
    listeners: Vec<(&'static str, ReloadableServerTls)>,
    client: Option<FederationClient>,
}

/// One watched date, with the listener (or `federation-client`) that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Watched {
    /// `national`, `federation` or `federation-client`.
    pub(crate) holder: &'static str,
    /// What ends, and when.
    pub(crate) expiry: Expiry,
}

impl Operations {
    /// Watches the listeners' TLS configurations (by listener name) and the
    /// outbound federation client's material.
    pub fn watching(
        listeners: Vec<(&'static str, ReloadableServerTls)>,
        client: Option<FederationClient>,
    ) -> Self {
        Self {
            draining: AtomicBool::new(false),
            listeners,
            client,
        }
    }

    /// Shutdown has begun: `/readyz` answers 503 from now on, so a load
    /// balancer stops sending new requests while those in flight finish.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Every watched date now in force, one per (holder, kind, subject):
    /// the earliest when the same certificate or CRL is loaded twice.
    pub(crate) fn watched(&self) -> Vec<Watched> {
        let mut all: Vec<Watched> = Vec::new();
        let listeners = self
            .listeners
            .iter()
            .map(|(holder, tls)| (*holder, tls.expiries()));
        let client = self
            .client
            .iter()
            .map(|client| ("federation-client", client.expiries()));
        for (holder, expiries) in listeners.chain(client) {
            for expiry in expiries {
                let same = all.iter_mut().find(|w| {
                    w.holder == holder
                        && w.expiry.kind == expiry.kind
                        && w.expiry.subject == expiry.subject
                });
                match same {
                    Some(seen) if seen.expiry.at <= expiry.at => {}
                    Some(seen) => seen.expiry.at = expiry.at,
                    None => all.push(Watched { holder, expiry }),
                }
            }
        }
        all
    }

    /// Why the gateway should not take traffic now (empty: ready): shutdown
    /// has begun, or a loaded certificate is past its `notAfter` or a CRL
    /// past its `nextUpdate` (the handshakes it covers fail).
    pub(crate) fn unready_reasons(&self, now: OffsetDateTime) -> Vec<String> {
        let mut reasons = Vec::new();
        if self.is_draining() {
            reasons.push("shutting down: draining in-flight requests".to_owned());
        }
        for watched in self.watched() {
            if watched.expiry.at <= now {
                reasons.push(format!(
                    "{} {} of {} ended at {}",
                    watched.holder,
                    watched.expiry.kind.as_str(),
                    watched.expiry.subject,
                    watched.expiry.at
                ));
            }
        }
        reasons
    }

    /// Logs a warning for every watched date within `within` of `now` (or
    /// past); returns how many.
    pub fn warn_of_expiries(&self, now: OffsetDateTime, within: time::Duration) -> usize {
        let mut warned = 0;
        for watched in self.watched() {
            let left = watched.expiry.at - now;
            if left <= within {
                warned += 1;
                tracing::warn!(
                    holder = watched.holder,
                    what = watched.expiry.kind.as_str(),
                    subject = %watched.expiry.subject,
                    at = %watched.expiry.at,
                    days_left = left.whole_days(),
                    "trust material ends soon: replace it before then"
                );
            }
        }
        warned
    }

    /// The gauges, Prometheus text format: seconds until each watched date
    /// (negative once past).
    pub(crate) fn render(&self, now: OffsetDateTime) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP ehds_tls_expiry_seconds Seconds until a loaded certificate's notAfter (what=certificate|ca) or a CRL's nextUpdate (what=crl), by holder (national, federation, federation-client); negative once past.\n",
        );
        out.push_str("# TYPE ehds_tls_expiry_seconds gauge\n");
        for watched in self.watched() {
            let _ = writeln!(
                out,
                "ehds_tls_expiry_seconds{{listener=\"{}\",what=\"{}\",subject=\"{}\"}} {}",
                watched.holder,
                watched.expiry.kind.as_str(),
                crate::metrics::escape_label(&watched.expiry.subject),
                (watched.expiry.at - now).whole_seconds()
            );
        }
        out.push_str(
            "# HELP ehds_draining Whether shutdown has begun (1: in-flight requests are draining; /readyz answers 503).\n",
        );
        out.push_str("# TYPE ehds_draining gauge\n");
        let _ = writeln!(out, "ehds_draining {}", u8::from(self.is_draining()));
        out
    }
}
