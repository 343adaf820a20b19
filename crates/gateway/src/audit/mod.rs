//! The audit trail: every access to patient data through this gateway and
//! every refusal of one, at both ends of a cross-border request, as a FHIR
//! AuditEvent in the store's append-only hash chain.
//!
//! - [`exit`]: the one audited exit. Every cross-border route (the relay at
//!   the country of treatment, the federation API at the patient's country)
//!   and every read of patient data at home is wrapped in it when its router
//!   is built: it opens the request's [`Trail`], runs the handler, and
//!   records exactly one AuditEvent — the refusal the handler's error
//!   carries, or the access before the answer leaves (fail closed: no
//!   record, no data).
//! - [`trail`]: what a handler tells the record as it proceeds (patient,
//!   peer, professional, target, notes).
//! - [`report`]: a refusal decided here about another country's patient,
//!   sent to that country's NCP for the patient's log at home.
//! - [`record`]: appending an AuditEvent to the chain.
//! - [`route`]: what an audited route records besides its handler's notes.
//! - [`alerts`]: connections the listeners refused, as Security Alerts.

pub(crate) mod alerts;
pub(crate) mod exit;
pub(crate) mod record;
pub(crate) mod report;
pub(crate) mod route;
pub(crate) mod trail;

pub(crate) use exit::audited;
pub(crate) use route::AuditedRoute;
pub(crate) use trail::Trail;
