//! The integration tests of `ehds-access`, one test binary (one link
//! step): one module per journey.

mod common;
mod shipped_policy;
mod trust;
mod verify;
