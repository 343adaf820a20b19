//! The integration tests of `ehds-fhirpath`, one test binary (one link
//! step): one module per journey.

mod api;
mod core_invariants;
mod fast_path;
mod official_suite;
mod profile_constraints;
