//! The patient's country's national FHIR infrastructure, asked on demand
//! (issue 19): a service whose `source = "fhir"` is answered from a
//! national FHIR server instead of the gateway's store.
//!
//! Owns: the national server's configuration ([`NationalServer`]: base URL,
//! mutual TLS through `ehds-transport`, OAuth 2.0 client credentials with a
//! private-key JWT ([`NationalOAuth`], [`oauth`]), time budget, concurrency limit,
//! circuit breaker, chained search, `$summary`, page size and pages
//! followed), the HTTP exchange (`http`: mutual TLS for https, plain HTTP
//! with no TLS at all to a loopback server), the client ([`NationalFhir`]:
//! patient identification `Patient?identifier=`, the document list
//! `DocumentReference?patient.identifier=&type=` or by the patient's id,
//! retrieval `Bundle/{id}` or `Patient/{id}/$summary`, PDF originals
//! by their DocumentReference, inline or in a `Binary` (`originals`); search sets
//! followed page by page up to `max_pages`, [`Listing`]), the ePrescription
//! interactions (`prescriptions`: `MedicationRequest` list, read and
//! search by identifier, the patient a prescription is about, the
//! `MedicationDispense` conditional create), each answer parsed losslessly
//! (`ehds-fhir`) and checked to be what was asked for and about the patient
//! asked about ([`about`]), the circuit breaker ([`breaker`]) and the
//! failures ([`NationalError`]), and the operator's cache of answers
//! (`cache`: off by default, in memory, bounded, never a failure or a
//! refusal, [`NationalCache`]).
//!
//! Must not know about: who may ask (assertions, policy, opt-outs),
//! profiles and validation, patients' restrictions, HTTP status mapping
//! (all `ehds-gateway`'s), storage (nothing from the national server is
//! written anywhere; the cache, when turned on, is memory only).

pub mod about;
pub mod breaker;
mod cache;
mod client;
mod config;
mod error;
mod http;
mod listing;
pub mod oauth;
mod originals;
mod prescriptions;

pub use breaker::BreakerState;
pub use cache::{CacheCounts, NationalCache};
pub use client::{Listing, NationalFhir, SUMMARY_PREFIX, patient_identifiers};
pub use config::{JwtAlgorithm, NationalOAuth, NationalServer, NationalTls, Retrieval};
pub use ehds_identifiers::PatientIdentifier;
pub use error::NationalError;
pub use listing::{ListedContent, ListedDocument, PDF};
pub use originals::NationalOriginal;
pub use prescriptions::Created;
