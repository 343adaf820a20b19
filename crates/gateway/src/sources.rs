//! Where the patient's country takes a service's documents from when
//! another country asks (issue 19): the gateway's store (the default) or a
//! national FHIR server reached on demand. This is the seam: the federation
//! handlers ask [`NationalSources::for_service`] and, when a service is
//! answered by a national server, hand over to
//! `crate::federation::national_source`; the national servers' clients
//! (`ehds-national-fhir`) are built once at start-up from the service
//! registry and shared.

use std::sync::Arc;

use ehds_national_fhir::{BreakerState, CacheCounts, NationalError, NationalFhir};

use crate::services::ServiceRegistry;

/// A metric family of the operator's cache: name, type, help, value.
type CacheFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&CacheCounts) -> u64,
);

/// The national FHIR servers of the services with `source = "fhir"`.
#[derive(Debug, Default)]
pub struct NationalSources {
    servers: Vec<(String, Arc<NationalFhir>)>,
}

impl NationalSources {
    /// A client for each service of `registry` answered by a national
    /// server (certificates loaded now).
    pub fn connect(registry: &ServiceRegistry) -> Result<Self, NationalError> {
        let mut servers = Vec::new();
        for service in registry.national() {
            if let Some(server) = &service.national_server {
                servers.push((
                    service.name.clone(),
                    Arc::new(NationalFhir::connect(server)?),
                ));
            }
        }
        Ok(Self { servers })
    }

    /// The national server answering for the service `name`; `None`: the
    /// store answers.
    pub(crate) fn for_service(&self, name: &str) -> Option<&Arc<NationalFhir>> {
        self.servers
            .iter()
            .find(|(service, _)| service == name)
            .map(|(_, server)| server)
    }

    /// Every service answered by a national server, with its client.
    pub(crate) fn all(&self) -> impl Iterator<Item = (&str, &Arc<NationalFhir>)> {
        self.servers
            .iter()
            .map(|(name, server)| (name.as_str(), server))
    }

    /// Each national server's circuit breaker state, by service.
    pub fn breaker_states(&self) -> Vec<(String, BreakerState)> {
        self.servers
            .iter()
            .map(|(name, server)| (name.clone(), server.breaker_state()))
            .collect()
    }

    /// The breakers' states in Prometheus text format (`/metrics`):
    /// `ehds_national_server_breaker_state{service}` 0 closed, 1 open, 2
    /// half-open; and, for the services whose operator turned the cache
    /// on, what it holds (`ehds_national_cache_entries`, `_bytes`) and how
    /// it served (`_hits_total`, `_misses_total`, `_evictions_total`).
    pub(crate) fn render_metrics(&self) -> String {
        use std::fmt::Write;
        if self.servers.is_empty() {
            return String::new();
        }
        let mut out = String::from(
            "# HELP ehds_national_server_breaker_state The circuit breaker in front of a service's national FHIR server: 0 closed, 1 open (calls fail at once), 2 half-open (one probe call).\n\
             # TYPE ehds_national_server_breaker_state gauge\n",
        );
        for (name, state) in self.breaker_states() {
            let _ = writeln!(
                out,
                "ehds_national_server_breaker_state{{service=\"{}\"}} {}",
                crate::metrics::escape_label(&name),
                state.gauge()
            );
        }
        let cached: Vec<(String, CacheCounts)> = self
            .servers
            .iter()
            .filter_map(|(name, server)| Some((name.clone(), server.cache_counts()?)))
            .collect();
        if cached.is_empty() {
            return out;
        }
        let families: [CacheFamily; 5] = [
            (
                "ehds_national_cache_entries",
                "gauge",
                "Answers of a service's national FHIR server the operator's cache holds now.",
                |c| c.entries as u64,
            ),
            (
                "ehds_national_cache_bytes",
                "gauge",
                "Bytes the operator's cache holds now for a service (answers and their URLs).",
                |c| c.bytes as u64,
            ),
            (
                "ehds_national_cache_hits_total",
                "counter",
                "Requests to a service's national FHIR server answered from the operator's cache.",
                |c| c.hits,
            ),
            (
                "ehds_national_cache_misses_total",
                "counter",
                "Requests to a service's national FHIR server the operator's cache could not answer.",
                |c| c.misses,
            ),
            (
                "ehds_national_cache_evictions_total",
                "counter",
                "Answers dropped from the operator's cache to stay within its bounds or after a refused answer.",
                |c| c.evictions,
            ),
        ];
        for (family, kind, help, value) in families {
            let _ = writeln!(out, "# HELP {family} {help}\n# TYPE {family} {kind}");
            for (name, counts) in &cached {
                let _ = writeln!(
                    out,
                    "{family}{{service=\"{}\"}} {}",
                    crate::metrics::escape_label(name),
                    value(counts)
                );
            }
        }
        out
    }
}
