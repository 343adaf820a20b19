//! FHIR R4 resource modelling for the EHDS NCP gateway.
//!
//! Owns: the lossless view of a received resource ([`ReceivedResource`]: the
//! exact bytes plus a parsed [`json::Node`] tree that keeps every value as
//! written), the FHIR JSON representation rules enforced at ingest, the
//! Bundle reference index ([`bundle::BundleIndex`]) that resolves `urn:uuid`,
//! absolute and relative references, and the OperationOutcome issue model
//! ([`outcome`]) with, behind the `typed` feature, its rendering (streamed,
//! checked byte for byte against fhir-sdk's typed R4B model in a test), and
//! the AuditEvent records of cross-border
//! access ([`audit_event`], IHE BALP patterns).
//!
//! Must not know about: profiles or validation rules (the validation crate),
//! storage, HTTP, routing between countries, or transport.
//!
//! The bytes are the source of truth. The typed fhir-sdk models drop unknown
//! elements and turn decimals into `f64`, so they are used only to build
//! resources the gateway itself emits, never to store or relay received ones.

pub mod audit_event;
pub mod bundle;
pub mod json;
pub mod outcome;
pub mod restriction;

use bytes::Bytes;

pub use json::{JsonRejection, Node, RejectionKind};

/// A resource as received: its exact bytes and a lossless parsed view.
#[derive(Debug, Clone)]
pub struct ReceivedResource {
    bytes: Bytes,
    root: Node,
}

impl ReceivedResource {
    /// Parses received bytes; refuses anything that is not FHIR JSON (see
    /// [`json`] for the rules).
    pub fn parse(bytes: Bytes) -> Result<Self, JsonRejection> {
        let root = json::parse(&bytes)?;
        Ok(Self { bytes, root })
    }

    /// The bytes exactly as received.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The parsed view.
    pub fn root(&self) -> &Node {
        &self.root
    }

    /// `resourceType` (always present: parsing requires it).
    pub fn resource_type(&self) -> &str {
        self.root
            .get("resourceType")
            .and_then(Node::as_str)
            .unwrap_or_default()
    }
}
