//! Mutual-TLS transport between national contact points.
//!
//! Will own (federation issue): rustls server and client configurations built
//! from the federation and national trust stores, CRL and OCSP revocation
//! checking, certificate reload, and the peer identity (country, NCP id) read
//! from a verified certificate.
//!
//! Must not know about: FHIR content, validation, storage or routing rules.
