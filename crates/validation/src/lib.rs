//! Validation of received FHIR resources.
//!
//! Owns: deciding whether a received resource is acceptable, as a
//! [`ValidationReport`] of OperationOutcome issues (invalid input is a value,
//! not an error). Today: the FHIR document Bundle rules the national push API
//! needs ([`document`]). The validator issue adds profile-driven checking
//! (structure from snapshots, bindings, slicing) through [`ValidationReport`]
//! and the profile registry; FHIRPath invariants plug in after it.
//!
//! Must not know about: storage, HTTP, routing or transport. It reads the
//! lossless JSON view and never alters the received bytes.

pub mod document;

use ehds_fhir::outcome::Issue;

/// The outcome of validating one resource: every issue found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationReport {
    /// Issues in the order they were found.
    pub issues: Vec<Issue>,
}

impl ValidationReport {
    /// True when no issue is an error or fatal.
    pub fn is_acceptable(&self) -> bool {
        !self.issues.iter().any(|i| i.severity.is_error())
    }

    /// Adds an issue.
    pub fn push(&mut self, issue: Issue) {
        self.issues.push(issue);
    }

    /// How many issues are errors or fatal.
    pub fn error_count(&self) -> usize {
        self.issues.iter().filter(|i| i.severity.is_error()).count()
    }
}

/// Validates a document pushed through the national API: the one call site
/// every pushed document goes through. Today it checks the document Bundle
/// rules ([`document::check_document_bundle`]); the profile-driven validator
/// (IPS Bundle profile, bindings, slicing, invariants) plugs in here.
pub fn validate_pushed_document(resource: &ehds_fhir::ReceivedResource) -> ValidationReport {
    document::check_document_bundle(resource)
}
