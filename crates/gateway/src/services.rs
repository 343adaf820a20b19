//! The cross-border services this gateway carries, as the patient's choices
//! and the access policy name them: the patient summary and the
//! ePrescription, with the LOINC document types of their DocumentReference
//! lists (eHDSI document codes).

use ehds_access::Operation;

/// LOINC 60591-5 Patient summary Document: the document type of the IPS.
pub(crate) const PATIENT_SUMMARY_TYPE: (&str, &str) = ("http://loinc.org", "60591-5");

/// `DocumentReference.type` of an ePrescription (eHDSI document codes:
/// LOINC 57833-6 "Prescription for medication").
pub(crate) const PRESCRIPTION_TYPE: (&str, &str) = ("http://loinc.org", "57833-6");

/// The service names a patient opts out of or restricts.
pub(crate) const SERVICES: &[&str] = &["patient-summary", "eprescription"];

/// The service a cross-border operation belongs to.
pub(crate) fn service_of(operation: Operation) -> &'static str {
    match operation {
        Operation::ReadPatientSummary => "patient-summary",
        Operation::ListPrescriptions | Operation::ReadPrescription | Operation::Dispense => {
            "eprescription"
        }
    }
}
