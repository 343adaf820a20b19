//! The repository's end-to-end tests, one test binary (one link step):
//! real gateways and the real `ehds-gateway` binary (Cargo gives its path
//! as `CARGO_BIN_EXE_ehds-gateway`), one module per journey or promise.
//!
//! * [`audit_completeness`]: every route behind the audited exit leaves one
//!   record per request, refusals included;
//! * [`federation`]: two countries' gateways, one module per cross-border
//!   journey (summary, assertions, certificates, consent, restriction,
//!   ePrescription, …);
//! * [`push_and_read`], [`validation_api`]: the national API of one gateway
//!   process; [`validation_policy`]: the operator's validation policy
//!   (enforce, report, downgraded rules, unknown extensions);
//! * [`patient_page`]: the demonstration patient page in a headless browser;
//! * [`backup`]: a store backed up while serving restores intact;
//! * [`memory_budget`]: 8 largest bodies at once stay within the memory
//!   budget (503 for the rest) and the memory comes back;
//! * [`release_binary`]: the release binary alone, in an empty directory
//!   with no configuration, takes a pushed summary;
//! * [`shutdown`]: graceful shutdown drains in-flight requests within the
//!   grace time;
//! * [`deploy_configs`]: the shipped configurations load, and the compose
//!   file mounts only paths that exist;
//! * [`tidy`]: the repository keeps ARCHITECTURE.md's promises.

mod audit_completeness;
mod backup;
mod common;
mod deploy_configs;
mod federation;
mod memory_budget;
mod patient_page;
mod push_and_read;
mod release_binary;
mod shutdown;
mod tidy;
mod validation_api;
mod validation_policy;
