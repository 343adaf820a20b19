//! The integration tests of `ehds-routing`, one test binary (one link
//! step): one module per journey.

mod search;
mod shipped_directory;
