//! Cross-border routing between national contact points (NCPs).
//!
//! Owns: the NCP directory ([`NcpDirectory`], `deploy/config/directory.toml`):
//! every country of the federation (the gateway's own included), its NCP's
//! federation base URL and expected certificate identity, and the patient
//! identifier systems the country issues with the form of their values; the
//! decision of which NCP answers for a patient identifier
//! ([`NcpDirectory::check_patient_identifier`]); the search parameters of
//! the cross-border NCPeH FHIR API parsed into typed requests, and the
//! canonical relative URL relayed to the patient's NCP ([`search`]); the
//! queries of the patient's own reads at home (access log, opt-outs,
//! restrictions) under the same strict rules ([`patient_rights`]).
//!
//! Must not know about: TLS details (the transport crate hands over the
//! verified peer subject as strings), storage, or HTTP framework types (it
//! takes raw query strings and returns relative URLs).
//!
//! Invalid input is a value: a refused identifier is an
//! [`IdentifierRefusal`], a refused search a list of
//! [`search::SearchRefusal`]s; [`RoutingError`] is only for a directory that
//! cannot be loaded.

mod directory;
mod error;
pub mod patient_rights;
pub mod search;

pub use directory::{
    CertificateIdentity, Country, IdentifierRefusal, IdentifierRule, MAX_IDENTIFIER_VALUE_BYTES,
    Ncp, NcpDirectory, RoutedPatient,
};
pub use ehds_identifiers::CountryCode;
pub use error::RoutingError;
