//! The development and test PKI of the federation ([`generate`]): the
//! federation CA, per country the NCP's server and client certificates, a
//! national CA with one client certificate per national client kind, CRLs
//! (and [`revoke`] to add to them), the negative certificates the tests
//! refuse, and the ES256 key pair that signs health-professional
//! assertions; [`DevPkiLayout`] names where each file is. It wrote
//! `deploy/dev-pki` ([`REGENERATE_COMMAND`]) and every test's PKI.
//!
//! Development and tests only: every private key is written in the clear.
//! No production crate depends on it (the binary's `dev-pki` command, the
//! loopback harness, the relay bench and the tests do).
//!
//! Must not know about: how certificates are verified or served (that is
//! `ehds-transport`, whose file names — [`ehds_transport::IdentityFiles`],
//! [`ehds_transport::TrustFiles`] — the layout hands out), FHIR, storage.

mod error;
mod generate;

pub use error::DevPkiError;
pub use generate::{
    Authority, CountrySpec, DevPkiLayout, DevPkiSpec, Negative, REGENERATE_COMMAND, generate,
    revoke,
};
