//! The outcome of validating one resource ([`ValidationReport`]): every
//! issue found, in order; acceptable when none is an error.

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
