//! The patient a request is about, as the `system|value` key the store and
//! the audit trail index patients by (`ehds_identifiers::PatientIdentifier`,
//! the one place that writes the key).

use ehds_fhir::outcome::{Issue, IssueType};
use ehds_identifiers::PatientIdentifier;

use crate::error::GatewayError;

/// The store's key of the patient `system|value`; a refusal located at
/// `patient.identifier` when either part is empty or the system holds a `|`
/// (no URI does), as then no key could name the patient alone.
pub(crate) fn patient_key(system: &str, value: &str) -> Result<String, GatewayError> {
    patient_identifier(system, value).map(|patient| patient.key())
}

/// The patient `system|value`, refused as [`patient_key`] says.
pub(crate) fn patient_identifier(
    system: &str,
    value: &str,
) -> Result<PatientIdentifier, GatewayError> {
    PatientIdentifier::new(system, value).ok_or_else(|| {
        let mut report = ehds_validation::ValidationReport::default();
        report.push(
            Issue::error(
                IssueType::Value,
                "a patient identifier needs a system (a URI, without '|') and a value",
            )
            .at("patient.identifier"),
        );
        GatewayError::Invalid(report)
    })
}
