//! The integration tests of `ehds-fhir`, one test binary (one link
//! step): one module per journey.

mod json_conformance;
