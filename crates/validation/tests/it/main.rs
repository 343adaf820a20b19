//! The integration tests of `ehds-validation`, one test binary (one link
//! step): one module per journey.

mod audit_event;
mod conformance;
mod document_examples;
mod fhir_test_cases;
mod invariants;
mod restricted_summaries;
