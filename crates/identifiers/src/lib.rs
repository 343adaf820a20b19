//! The identifiers every part of the gateway shares, each checked in one
//! place.
//!
//! Owns: ISO 3166-1 alpha-2 country codes ([`CountryCode`]: the one check,
//! used by the configuration, the NCP directory, certificates' subjects, the
//! trust list, the access policy, opt-outs and ids of documents held
//! abroad), a patient's national identifier and the `system|value` key the
//! store, the audit trail and the access log index it by
//! ([`PatientIdentifier`]), and an NCP's id, which is also the audience of
//! assertions meant for it ([`NcpId`]).
//!
//! Must not know about: anything else of the gateway. It has no
//! dependencies, so every crate may use it.

mod country;
mod ncp;
mod patient;

pub use country::CountryCode;
pub use ncp::NcpId;
pub use patient::PatientIdentifier;
