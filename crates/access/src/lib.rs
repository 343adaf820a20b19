//! Who may read what across a border: health-professional assertions.
//!
//! A doctor or pharmacist in country B asks, through B's gateway (NCP-B), for a
//! patient's data held by country A's gateway (NCP-A). Every such request carries
//! a [`HealthProfessionalAssertion`]: a compact JWS (RFC 7515) signed by B's
//! identity provider, naming the professional, their ISCO-08 role, their
//! organisation, the purpose of use and the one patient they are treating. NCP-B
//! forwards it unchanged; NCP-A verifies it with B's published key from the
//! federation [`TrustList`] ([`Verifier`]), refuses replays ([`ReplayLedger`]),
//! and decides from the [`AccessPolicy`] matrix whether the role may perform the
//! operation for that purpose.
//!
//! Owns: the assertion claims and their JSON form, the trust list of identity
//! providers' public keys with their pinned algorithms, verification and its
//! refusal reasons (and whether a refused assertion authenticates anyone), replay protection, purpose of use,
//! the ISCO-08 role table and the role/permission matrix, and an issuing side
//! ([`AssertionIssuer`]) for tests and the demo.
//!
//! Must not know about: TLS (the lead passes the federation peer's country, as
//! established by mutual TLS), storage (the database-backed [`ReplayLedger`]
//! lives with the store), HTTP (the gateway's error table decides statuses),
//! FHIR parsing (the patient identifier arrives as a plain [`PatientRef`]).
//!
//! # How this maps to MyHealth@EU (eHDSI)
//!
//! eHDSI carries the same facts in two SAML 2.0 assertions: the HCP identity
//! assertion issued by the country of treatment's IdP, and the treatment
//! relationship confirmation (TRC) assertion binding it to one patient
//! (eHDSI SAML profile; attribute names from OASIS XSPA, <http://docs.oasis-open.org/xspa/saml-xspa/v2.0/saml-xspa-v2.0.html>).
//! This crate carries both in one signed JSON token; each claim's doc comment in
//! [`claims`] names the SAML element or attribute it replaces.

mod claimed;
pub mod claims;
mod error;
pub mod issue;
pub mod policy;
pub mod replay;
pub mod role;
pub mod trust;
pub mod verify;

pub use claimed::claimed_patient;
pub use claims::{
    ASSERTION_TYPE, Audience, HealthProfessionalAssertion, Organisation, PatientRef, Professional,
    PurposeOfUse, TreatmentRelationship,
};
pub use error::AccessError;
pub use issue::{AssertionIssuer, Login};
pub use policy::{AccessPolicy, Decision, DenyReason, Operation};
pub use replay::{InMemoryReplayLedger, ReplayLedger};
pub use role::IscoRole;
pub use trust::{IssuerDescription, KeyAlgorithm, KeyDescription, TrustList, TrustListDescription};
pub use verify::{
    AssertionRefusal, CheckedAssertion, Expectations, VerifiedAssertion, Verifier, VerifierSettings,
};
