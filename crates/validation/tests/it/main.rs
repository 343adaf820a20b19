//! The integration tests of `ehds-validation`, one test binary (one link
//! step): one module per journey.

mod audit_event;
mod conformance;
mod control_characters;
mod document_examples;
mod fhir_test_cases;
mod invariants;
mod package_versions;
mod primitive_length;
mod recorded_terminology;
mod restricted_summaries;
mod type_profile_choice;
