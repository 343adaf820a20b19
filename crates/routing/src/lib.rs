//! Cross-border routing between national contact points (NCPs).
//!
//! Will own (federation issue): the NCP directory (country code → federation
//! endpoint and expected certificate identity), per-country patient
//! identifier rules, and the decision of which NCP a request for a patient
//! identifier goes to.
//!
//! Must not know about: TLS details (the transport crate), storage, or HTTP
//! framework types.
