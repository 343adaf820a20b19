//! The integration tests of `ehds-store`, one test binary (one link
//! step): one module per journey.

// First: its macro (`on_both_backends!`) is used by the modules after it.
#[macro_use]
mod common;

mod assertion_ids;
mod audit;
mod documents;
mod migrations;
mod opt_outs;
mod prescriptions;
mod restrictions;
mod write_probe;
