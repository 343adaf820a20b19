//! The shipped access matrix, `deploy/config/access-policy.toml`, cell by
//! cell: every known role × every operation × every purpose of use, for a
//! requesting country without its own table, against the table below.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use ehds_access::{AccessPolicy, Decision, DenyReason, IscoRole, Operation, PurposeOfUse};
use ehds_test_support::repo_root;

const T: bool = true;
const F: bool = false;

/// (role, operation, allowed for TREATMENT, allowed for EMERGENCY).
#[rustfmt::skip]
const EXPECTED: &[(&str, Operation, bool, bool)] = &[
    // 221 medical doctors and their unit groups: summary, prescriptions,
    // laboratory, discharge and imaging reports, both purposes; never
    // dispensing.
    ("221",  Operation::ReadPatientSummary, T, T),
    ("221",  Operation::ListPrescriptions,  T, T),
    ("221",  Operation::ReadPrescription,   T, T),
    ("221",  Operation::Dispense,           F, F),
    ("221",  Operation::ReadLaboratoryReport, T, T),
    ("221",  Operation::ReadDischargeReport, T, T),
    ("221",  Operation::ReadImagingReport, T, T),
    ("2211", Operation::ReadPatientSummary, T, T),
    ("2211", Operation::ListPrescriptions,  T, T),
    ("2211", Operation::ReadPrescription,   T, T),
    ("2211", Operation::Dispense,           F, F),
    ("2211", Operation::ReadLaboratoryReport, T, T),
    ("2211", Operation::ReadDischargeReport, T, T),
    ("2211", Operation::ReadImagingReport, T, T),
    ("2212", Operation::ReadPatientSummary, T, T),
    ("2212", Operation::ListPrescriptions,  T, T),
    ("2212", Operation::ReadPrescription,   T, T),
    ("2212", Operation::Dispense,           F, F),
    ("2212", Operation::ReadLaboratoryReport, T, T),
    ("2212", Operation::ReadDischargeReport, T, T),
    ("2212", Operation::ReadImagingReport, T, T),
    // 222 nurses and midwives: the summary, in an emergency only; no
    // laboratory, discharge or imaging reports.
    ("222",  Operation::ReadPatientSummary, F, T),
    ("222",  Operation::ListPrescriptions,  F, F),
    ("222",  Operation::ReadPrescription,   F, F),
    ("222",  Operation::Dispense,           F, F),
    ("222",  Operation::ReadLaboratoryReport, F, F),
    ("222",  Operation::ReadDischargeReport, F, F),
    ("222",  Operation::ReadImagingReport, F, F),
    ("2221", Operation::ReadPatientSummary, F, T),
    ("2221", Operation::ListPrescriptions,  F, F),
    ("2221", Operation::ReadPrescription,   F, F),
    ("2221", Operation::Dispense,           F, F),
    ("2221", Operation::ReadLaboratoryReport, F, F),
    ("2221", Operation::ReadDischargeReport, F, F),
    ("2221", Operation::ReadImagingReport, F, F),
    ("2222", Operation::ReadPatientSummary, F, T),
    ("2222", Operation::ListPrescriptions,  F, F),
    ("2222", Operation::ReadPrescription,   F, F),
    ("2222", Operation::Dispense,           F, F),
    ("2222", Operation::ReadLaboratoryReport, F, F),
    ("2222", Operation::ReadDischargeReport, F, F),
    ("2222", Operation::ReadImagingReport, F, F),
    // 2262 pharmacists: prescriptions for treatment; no summary, no
    // reports.
    ("2262", Operation::ReadPatientSummary, F, F),
    ("2262", Operation::ListPrescriptions,  T, F),
    ("2262", Operation::ReadPrescription,   T, F),
    ("2262", Operation::Dispense,           T, F),
    ("2262", Operation::ReadLaboratoryReport, F, F),
    ("2262", Operation::ReadDischargeReport, F, F),
    ("2262", Operation::ReadImagingReport, F, F),
];

fn shipped() -> AccessPolicy {
    AccessPolicy::load(&repo_root().join("deploy/config/access-policy.toml")).unwrap()
}

#[test]
fn every_cell_of_the_shipped_matrix_matches_the_table() {
    let policy = shipped();
    let mut checked = 0;
    for country in ["LU", "FR", "DE"] {
        for role in IscoRole::TABLE {
            for operation in Operation::ALL {
                let &(_, _, treatment, emergency) = EXPECTED
                    .iter()
                    .find(|(code, op, _, _)| *code == role.code() && *op == operation)
                    .unwrap_or_else(|| panic!("no expectation for {role} {operation}"));
                for purpose in PurposeOfUse::ALL {
                    let allowed = match purpose {
                        PurposeOfUse::Treatment => treatment,
                        PurposeOfUse::Emergency => emergency,
                    };
                    let decision = policy.decide(country, role, operation, purpose);
                    assert_eq!(
                        decision.is_permit(),
                        allowed,
                        "{country} {role} {operation} {purpose}: {decision:?}"
                    );
                    if let Decision::Deny(reason) = decision {
                        // A role permitted the operation for the other
                        // purpose is told so precisely.
                        let other = treatment || emergency;
                        let expected = if other {
                            DenyReason::PurposeNotAccepted
                        } else {
                            DenyReason::OperationNotPermitted
                        };
                        assert_eq!(reason, expected, "{role} {operation} {purpose}");
                    }
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(
        checked,
        3 * IscoRole::TABLE.len() * Operation::ALL.len() * PurposeOfUse::ALL.len()
    );
    assert_eq!(EXPECTED.len(), IscoRole::TABLE.len() * Operation::ALL.len());
}
