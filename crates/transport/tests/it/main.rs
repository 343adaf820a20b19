//! The integration tests of `ehds-transport`, one test binary (one link
//! step): one module per journey.

mod mtls;
mod ocsp;
