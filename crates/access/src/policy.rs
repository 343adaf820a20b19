//! The role/permission matrix, as data.
//!
//! For each requesting country (or `*`, the default) and each ISCO-08 role
//! group, the matrix lists which operations are allowed and for which
//! purposes of use. The shipped matrix is `deploy/config/access-policy.toml`;
//! its format:
//!
//! ```toml
//! [country."*".role."221"]            # requesting country, ISCO-08 group
//! ReadPatientSummary = ["TREATMENT", "EMERGENCY"]
//! ListPrescriptions = ["TREATMENT"]
//! # an operation left out, or with [], is denied
//!
//! [country.LU.role."2262"]            # LU's pharmacists: replaces "*" for them
//! ListPrescriptions = ["TREATMENT"]
//! ```
//!
//! Deciding for a requesting country `C`, a role `r`, an operation and a
//! purpose:
//!
//! 1. the rule is the one of `C`'s table whose role group contains `r` most
//!    specifically (`2211` before `221`); if `C` has no table or no rule
//!    covering `r`, the `*` table is asked the same way; a country rule thus
//!    replaces the default for that role entirely, never merges with it;
//! 2. no rule → [`DenyReason::NoRuleForRole`]; the operation absent or
//!    empty → [`DenyReason::OperationNotPermitted`]; the purpose not listed →
//!    [`DenyReason::PurposeNotAccepted`]; otherwise [`Decision::Permit`].
//!
//! Unknown operation names, unknown roles and malformed country keys are
//! refused when the file is loaded, so a typo cannot silently deny or allow.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::trust::is_country_code;
use crate::{AccessError, IscoRole, PurposeOfUse, VerifiedAssertion};

/// What a professional asks NCP-A to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Operation {
    /// Read the patient summary (IPS document).
    ReadPatientSummary,
    /// List the patient's prescriptions available for dispensing.
    ListPrescriptions,
    /// Read one prescription.
    ReadPrescription,
    /// Record a dispensation of a prescription.
    Dispense,
    /// List and read the patient's laboratory reports.
    ReadLaboratoryReport,
    /// List and read the patient's hospital discharge reports.
    ReadDischargeReport,
    /// List and read the patient's medical imaging reports.
    ReadImagingReport,
}

impl Operation {
    /// Every operation, for exhaustive tests and tables.
    pub const ALL: [Operation; 7] = [
        Operation::ReadPatientSummary,
        Operation::ListPrescriptions,
        Operation::ReadPrescription,
        Operation::Dispense,
        Operation::ReadLaboratoryReport,
        Operation::ReadDischargeReport,
        Operation::ReadImagingReport,
    ];

    /// The name used in the policy file.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::ReadPatientSummary => "ReadPatientSummary",
            Operation::ListPrescriptions => "ListPrescriptions",
            Operation::ReadPrescription => "ReadPrescription",
            Operation::Dispense => "Dispense",
            Operation::ReadLaboratoryReport => "ReadLaboratoryReport",
            Operation::ReadDischargeReport => "ReadDischargeReport",
            Operation::ReadImagingReport => "ReadImagingReport",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The answer of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Allowed.
    Permit,
    /// Refused (HTTP 403), with the reason.
    Deny(DenyReason),
}

impl Decision {
    /// Whether the operation is allowed.
    pub fn is_permit(self) -> bool {
        self == Decision::Permit
    }
}

/// Why the matrix refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyReason {
    /// No rule covers the role for the requesting country or by default.
    NoRuleForRole,
    /// The role may not perform this operation for any purpose.
    OperationNotPermitted,
    /// The role may perform it, but not for this purpose of use.
    PurposeNotAccepted,
}

impl DenyReason {
    /// A stable short code for logs and metrics.
    pub fn code(self) -> &'static str {
        match self {
            DenyReason::NoRuleForRole => "no-rule-for-role",
            DenyReason::OperationNotPermitted => "operation-not-permitted",
            DenyReason::PurposeNotAccepted => "purpose-not-accepted",
        }
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DenyReason::NoRuleForRole => {
                "the access policy has no rule for the professional's role"
            }
            DenyReason::OperationNotPermitted => {
                "the professional's role may not perform this operation"
            }
            DenyReason::PurposeNotAccepted => {
                "the professional's role may not perform this operation for this purpose of use"
            }
        })
    }
}

/// The loaded matrix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    /// By requesting country (`*` for the default).
    countries: BTreeMap<String, Vec<RoleRule>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct RoleRule {
    group: IscoRole,
    grants: BTreeMap<Operation, Vec<PurposeOfUse>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    country: BTreeMap<String, CountryFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CountryFile {
    #[serde(default)]
    role: BTreeMap<String, RoleFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleFile {
    #[serde(rename = "ReadPatientSummary", default)]
    read_patient_summary: Vec<PurposeOfUse>,
    #[serde(rename = "ListPrescriptions", default)]
    list_prescriptions: Vec<PurposeOfUse>,
    #[serde(rename = "ReadPrescription", default)]
    read_prescription: Vec<PurposeOfUse>,
    #[serde(rename = "Dispense", default)]
    dispense: Vec<PurposeOfUse>,
    #[serde(rename = "ReadLaboratoryReport", default)]
    read_laboratory_report: Vec<PurposeOfUse>,
    #[serde(rename = "ReadDischargeReport", default)]
    read_discharge_report: Vec<PurposeOfUse>,
    #[serde(rename = "ReadImagingReport", default)]
    read_imaging_report: Vec<PurposeOfUse>,
}

/// The key of the default table.
pub const DEFAULT_COUNTRY: &str = "*";

impl AccessPolicy {
    /// The matrix from its TOML text.
    pub fn from_toml_str(text: &str) -> Result<Self, AccessError> {
        let file: PolicyFile = toml::from_str(text)?;
        let mut countries = BTreeMap::new();
        for (country, table) in file.country {
            if country != DEFAULT_COUNTRY && !is_country_code(&country) {
                return Err(AccessError::Policy(format!(
                    "country {country:?} is neither \"*\" nor an ISO 3166-1 alpha-2 code in upper case"
                )));
            }
            let mut rules = Vec::new();
            for (code, role) in table.role {
                let group = IscoRole::parse(&code).ok_or_else(|| {
                    AccessError::Policy(format!(
                        "role {code:?} (country {country}) is not a known ISCO-08 code"
                    ))
                })?;
                let grants = [
                    (Operation::ReadPatientSummary, role.read_patient_summary),
                    (Operation::ListPrescriptions, role.list_prescriptions),
                    (Operation::ReadPrescription, role.read_prescription),
                    (Operation::Dispense, role.dispense),
                    (Operation::ReadLaboratoryReport, role.read_laboratory_report),
                    (Operation::ReadDischargeReport, role.read_discharge_report),
                    (Operation::ReadImagingReport, role.read_imaging_report),
                ]
                .into_iter()
                .filter(|(_, purposes)| !purposes.is_empty())
                .map(|(op, mut purposes)| {
                    purposes.sort();
                    purposes.dedup();
                    (op, purposes)
                })
                .collect();
                rules.push(RoleRule { group, grants });
            }
            countries.insert(country, rules);
        }
        Ok(Self { countries })
    }

    /// The matrix from a TOML file.
    pub fn load(path: &Path) -> Result<Self, AccessError> {
        let text = std::fs::read_to_string(path).map_err(|source| AccessError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text)
    }

    /// The decision for a professional of `role` from `requesting_country`
    /// asking for `operation` with `purpose` (see the module documentation).
    pub fn decide(
        &self,
        requesting_country: &str,
        role: IscoRole,
        operation: Operation,
        purpose: PurposeOfUse,
    ) -> Decision {
        let rule = [requesting_country, DEFAULT_COUNTRY]
            .into_iter()
            .filter_map(|country| self.countries.get(country))
            .find_map(|rules| {
                rules
                    .iter()
                    .filter(|rule| role.is_within(rule.group))
                    .max_by_key(|rule| rule.group.code().len())
            });
        let Some(rule) = rule else {
            return Decision::Deny(DenyReason::NoRuleForRole);
        };
        match rule.grants.get(&operation) {
            None => Decision::Deny(DenyReason::OperationNotPermitted),
            Some(purposes) if !purposes.contains(&purpose) => {
                Decision::Deny(DenyReason::PurposeNotAccepted)
            }
            Some(_) => Decision::Permit,
        }
    }

    /// The decision for a verified assertion: its country, role and purpose.
    pub fn authorise(&self, assertion: &VerifiedAssertion, operation: Operation) -> Decision {
        self.decide(
            assertion.country(),
            assertion.role(),
            operation,
            assertion.purpose(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(code: &str) -> IscoRole {
        IscoRole::parse(code).unwrap()
    }

    #[test]
    fn country_rule_replaces_the_default_for_its_role_only() {
        let policy = AccessPolicy::from_toml_str(
            r#"
            [country."*".role."221"]
            ReadPatientSummary = ["TREATMENT", "EMERGENCY"]
            [country."*".role."2262"]
            ListPrescriptions = ["TREATMENT"]
            [country.LU.role."221"]
            ReadPatientSummary = ["EMERGENCY"]
            "#,
        )
        .unwrap();
        let t = PurposeOfUse::Treatment;
        let read = Operation::ReadPatientSummary;
        assert_eq!(
            policy.decide("LU", role("2211"), read, t),
            Decision::Deny(DenyReason::PurposeNotAccepted)
        );
        assert_eq!(policy.decide("FR", role("2211"), read, t), Decision::Permit);
        // LU has no pharmacist rule: the default applies.
        assert_eq!(
            policy.decide("LU", role("2262"), Operation::ListPrescriptions, t),
            Decision::Permit
        );
        assert_eq!(
            policy.decide("LU", role("2221"), read, t),
            Decision::Deny(DenyReason::NoRuleForRole)
        );
    }

    #[test]
    fn most_specific_group_wins() {
        let policy = AccessPolicy::from_toml_str(
            r#"
            [country."*".role."221"]
            Dispense = ["TREATMENT"]
            [country."*".role."2212"]
            ReadPatientSummary = ["TREATMENT"]
            "#,
        )
        .unwrap();
        let t = PurposeOfUse::Treatment;
        assert!(
            policy
                .decide("FR", role("2211"), Operation::Dispense, t)
                .is_permit()
        );
        assert_eq!(
            policy.decide("FR", role("2212"), Operation::Dispense, t),
            Decision::Deny(DenyReason::OperationNotPermitted)
        );
    }

    #[test]
    fn typos_are_refused_at_load() {
        for bad in [
            "[country.\"*\".role.\"221\"]\nReadPatientSumary = [\"TREATMENT\"]",
            "[country.\"*\".role.\"221\"]\nReadPatientSummary = [\"TREAT\"]",
            "[country.\"*\".role.\"2261\"]\nReadPatientSummary = [\"TREATMENT\"]",
            "[country.lu.role.\"221\"]\nReadPatientSummary = [\"TREATMENT\"]",
            "[countries.\"*\".role.\"221\"]\nReadPatientSummary = [\"TREATMENT\"]",
        ] {
            assert!(AccessPolicy::from_toml_str(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn empty_policy_denies() {
        let policy = AccessPolicy::default();
        assert_eq!(
            policy.decide(
                "FR",
                role("221"),
                Operation::ReadPatientSummary,
                PurposeOfUse::Emergency
            ),
            Decision::Deny(DenyReason::NoRuleForRole)
        );
    }
}
