//! The EHDS NCP gateway, assembled.
//!
//! Owns: the HTTP APIs of both listeners (axum), the cross-border relay and
//! answers, the audit trail of every access, patients' rights at home,
//! ePrescriptions at home, the one error table, configuration, metrics, the
//! demonstration patient page, and start-up.
//!
//! Must not know about: how JSON is parsed, how documents are validated, how
//! rows are written, how certificates are checked: it calls the FHIR,
//! validation, store and transport crates for that. It does not read the
//! environment: the binary hands it a configuration.
//!
//! # Layers (imports point down only; `tests/tidy.rs` checks)
//!
//! | layer | modules | |
//! | --- | --- | --- |
//! | 7 start-up | [`startup`], [`config`], `patient_page` | assembles the rest; the binary calls it |
//! | 6 services at home | `national` | the national API: documents, `$validate`, metadata, patient rights, prescriptions |
//! | 5 cross-border | `relay`, `federation` | the country of treatment's relay; the patient's country's federation API |
//! | 4 shared by the services | `audit`, `assertion`, `release`, `eprescription` | the audited exit and trail; assertions; what may be released; ePrescription rules |
//! | 3 edge | `edge` (state, extract, observe, fallback), `services`, `sources` | what every request passes through; where each service's documents come from (store or national FHIR server) |
//! | 2 error | [`error`] | the one table: error → status, OperationOutcome, audit summary |
//! | 1 ground | `edge::respond`, `edge::request_id`, `metrics`, `operations`, `answer_memo`, `validation_policy`, [`start_error`] | know nothing of the crate |

mod answer_memo;
mod assertion;
mod audit;
pub mod config;
mod edge;
mod eprescription;
pub mod error;
mod federation;
mod metrics;
mod national;
mod operations;
mod patient_page;
mod relay;
mod release;
mod services;
mod sources;
pub mod start_error;
pub mod startup;
mod validation_policy;

pub use answer_memo::DEFAULT_ENTRIES as DEFAULT_PEER_ANSWER_MEMO_ENTRIES;
pub use config::{CheckedConfig, GatewayConfig};
pub use edge::respond::FHIR_JSON;
pub use edge::{AppState, COST_PER_BODY_BYTE, CrossBorder, Limits, MemoryBudget, Validation};
/// The reloadable listener TLS configuration (re-exported for the binary).
pub use ehds_transport::ReloadableServerTls;
pub use error::GatewayError;
pub use metrics::Metrics;
pub use national::router as national_router;
pub use operations::Operations;
pub use services::{DocumentType, SHIPPED_SERVICES, Service, ServiceKind, ServiceRegistry, Source};
pub use sources::NationalSources;
pub use start_error::StartError;
pub use startup::{
    AuditChainReport, Backup, BreakKind, ConfigCheck, FileValidation, Gateway, TLS_RELOAD_PERIOD,
    backup, check_config, load_federation, load_validator, reload_tls, validate_file, verify_audit,
};

/// A fresh memo of validated peer answers (for an [`AppState`] built by
/// hand, as the in-process tests do).
pub fn validated_answers(entries: usize) -> std::sync::Arc<answer_memo::ValidatedAnswers> {
    std::sync::Arc::new(answer_memo::ValidatedAnswers::new(entries))
}

/// Every route behind the audited exit, as `(listener, method, path)`:
/// the national API's reads of patient data and relay routes, and the
/// federation API's routes. The audit-completeness test enumerates them.
pub fn audited_routes() -> Vec<(&'static str, &'static str, &'static str)> {
    let national = national::AUDITED_PATHS.iter().chain(relay::PATHS);
    national
        .map(|(method, path)| ("national", *method, *path))
        .chain(
            federation::PATHS
                .iter()
                .map(|(method, path)| ("federation", *method, *path)),
        )
        .collect()
}
