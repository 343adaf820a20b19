//! Why a professional asks for a patient's data ([`PurposeOfUse`]): the one
//! model shared by access control (the assertion's claim, the policy) and
//! the audit trail (the AuditEvent's `agent.purposeOfUse`).

use std::fmt;

/// Why the professional asks, as an HL7 v3 `ActReason` purpose of use
/// (<http://terminology.hl7.org/CodeSystem/v3-ActReason>). The claim form
/// uses the eHDSI XSPA attribute values `TREATMENT` and `EMERGENCY`
/// (`urn:oasis:names:tc:xspa:1.0:subject:purposeofuse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum PurposeOfUse {
    /// Planned care: HL7 v3 ActReason `TREAT` ("treatment").
    #[cfg_attr(feature = "serde", serde(rename = "TREATMENT"))]
    Treatment,
    /// Unplanned, urgent care ("break the glass"): HL7 v3 ActReason `ETREAT`
    /// ("Emergency Treatment").
    #[cfg_attr(feature = "serde", serde(rename = "EMERGENCY"))]
    Emergency,
}

impl PurposeOfUse {
    /// Every purpose of use, for exhaustive tests and tables.
    pub const ALL: [PurposeOfUse; 2] = [PurposeOfUse::Treatment, PurposeOfUse::Emergency];

    /// The claim value: `TREATMENT` or `EMERGENCY`.
    pub fn as_str(self) -> &'static str {
        match self {
            PurposeOfUse::Treatment => "TREATMENT",
            PurposeOfUse::Emergency => "EMERGENCY",
        }
    }

    /// The claim value read back; `None` for anything else.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == value)
    }

    /// The HL7 v3 ActReason code: `TREAT` or `ETREAT`.
    pub fn hl7_code(self) -> &'static str {
        match self {
            PurposeOfUse::Treatment => "TREAT",
            PurposeOfUse::Emergency => "ETREAT",
        }
    }

    /// The HL7 v3 ActReason display of [`Self::hl7_code`] (v3-ActReason
    /// 3.0.0: `TREAT` "treatment", `ETREAT` "Emergency Treatment").
    pub fn hl7_display(self) -> &'static str {
        match self {
            PurposeOfUse::Treatment => "treatment",
            PurposeOfUse::Emergency => "Emergency Treatment",
        }
    }
}

impl fmt::Display for PurposeOfUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_values_read_back() {
        for purpose in PurposeOfUse::ALL {
            assert_eq!(PurposeOfUse::parse(purpose.as_str()), Some(purpose));
        }
        assert_eq!(PurposeOfUse::parse("TREAT"), None);
        assert_eq!(PurposeOfUse::parse("treatment"), None);
    }

    #[test]
    fn hl7_codes() {
        assert_eq!(PurposeOfUse::Treatment.hl7_code(), "TREAT");
        assert_eq!(PurposeOfUse::Emergency.hl7_code(), "ETREAT");
    }
}
