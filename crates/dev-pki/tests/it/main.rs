//! The integration tests of `ehds-dev-pki`, one test binary (one link
//! step): one module per journey.

mod generated;
