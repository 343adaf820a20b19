//! The identifiers every part of the gateway shares, each checked in one
//! place.
//!
//! Owns: ISO 3166-1 alpha-2 country codes ([`CountryCode`]: the one check,
//! used by the configuration, the NCP directory, certificates' subjects, the
//! trust list, the access policy, opt-outs and ids of documents held
//! abroad), a patient's national identifier and the `system|value` key the
//! store, the audit trail and the access log index it by
//! ([`PatientIdentifier`]), and an NCP's id, which is also the audience of
//! assertions meant for it ([`NcpId`]); and the parties of an access: who
//! asks ([`Professional`] of an [`Organisation`]) and why
//! ([`PurposeOfUse`]), one model for access control and the audit trail;
//! and a resource's logical id ([`is_logical_id`]).
//!
//! Must not know about: anything else of the gateway. It has no
//! dependencies (serde only behind the `serde` feature, for the assertion's
//! claims), so every crate may use it.

mod country;
mod logical_id;
mod ncp;
mod patient;
mod professional;
mod purpose;

pub use country::CountryCode;
pub use logical_id::is_logical_id;
pub use ncp::NcpId;
pub use patient::PatientIdentifier;
pub use professional::{Organisation, Professional};
pub use purpose::PurposeOfUse;
