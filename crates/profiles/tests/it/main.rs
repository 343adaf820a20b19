//! The integration tests of `ehds-profiles`, one test binary (one link
//! step): one module per journey.

mod registry;
