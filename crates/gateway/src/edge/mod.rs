//! The edge: what every request of every listener passes through, at the
//! bottom of the crate, knowing no service.
//!
//! - [`state`]: the application state handed to every handler.
//! - [`request_id`]: the id of the request being handled.
//! - [`observe`]: the per-request middleware (request id, tracing span with
//!   the route template, metrics).
//! - [`extract`]: typed extractors: a FHIR resource body (content type,
//!   size and time limits, lossless parse) and the national caller (from the
//!   verified client certificate).
//! - [`memory_budget`]: the memory budget of request bodies: reserved from
//!   a body's size before it is read (503 when spent), held until the
//!   response is built.
//! - [`validation`]: the shared validator, run off the async workers with
//!   a bounded number of validation slots.
//! - [`respond`]: response writers: FHIR JSON, OperationOutcome, and the
//!   `searchset` Bundle assembled from entries' raw bytes.
//!
//! Imports point down only: [`respond`] and [`request_id`] know nothing of
//! the crate, `crate::error` (the one error table) uses them, and the rest of
//! the edge uses the error. Nothing here imports a service module.

pub(crate) mod extract;
pub(crate) mod fallback;
pub(crate) mod memory_budget;
pub(crate) mod observe;
pub(crate) mod patient;
pub(crate) mod request_id;
pub(crate) mod respond;
pub(crate) mod state;
pub(crate) mod validation;

pub use memory_budget::{COST_PER_BODY_BYTE, MemoryBudget};
pub use state::{AppState, CrossBorder, Limits};
pub use validation::Validation;
