//! The national FHIR client's one test binary: what it asks a national
//! server, in which order, for each configuration (chained search or the
//! patient's id first, `Bundle/{id}` or `Patient/{id}/$summary`), against a
//! canned server on loopback that records the requests. (The journeys
//! against a real FHIR server are the end-to-end tests',
//! `tests/federation/national_source.rs`.)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod requests;
