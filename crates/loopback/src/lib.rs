//! Two countries' gateways, Belgium's and Luxembourg's, on 127.0.0.1 over
//! the development PKI: the harness that writes the files both read and
//! each gateway's configuration ([`Loopback`], [`GatewayToml`]; one
//! country's shipped service can be put on a national FHIR server,
//! [`GatewayToml::answer_from_national_server`]), the
//! journey's patient, summary, doctor and identity provider, and the
//! `ehds-gateway demo` journey built on them ([`demo`]). The binary's
//! `demo`, the relay bench and the end-to-end tests start two countries
//! through it, so they are set up one way.
//!
//! Development and tests only: it configures the development PKI's
//! certificates and keys and signs with its identity providers' keys, so no
//! production crate depends on it. It uses only `ehds-gateway`'s public API.
//!
//! Must not know about: the gateway's insides (HTTP handlers, federation,
//! audit), how certificates are generated (`ehds-dev-pki`) or verified.

pub mod demo;
mod error;
mod harness;

pub use error::LoopbackError;
pub use harness::{
    GatewayToml, LU_PATIENT, LU_SYSTEM, Loopback, Ports, be_doctor, free_port, identity_provider,
    laboratory_report, patient_summary,
};
