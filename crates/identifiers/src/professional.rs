//! Who asks: a health professional and the organisation they act for
//! ([`Professional`], [`Organisation`]), the one model shared by the
//! assertion's claims, the identity provider that issues them and the
//! audit trail's requesting agent.

/// The organisation a health professional acts for (hospital, practice,
/// pharmacy).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Organisation {
    /// National identifier of the organisation. eHDSI/XSPA:
    /// `urn:oasis:names:tc:xspa:1.0:subject:organization-id`.
    pub id: String,
    /// Name of the organisation. eHDSI/XSPA:
    /// `urn:oasis:names:tc:xspa:1.0:subject:organization`.
    pub name: String,
}

/// A health professional, as their country's identity provider knows them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Professional {
    /// Identifier at the identity provider (the assertion's `sub`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Occupation as an ISCO-08 code (`2211` generalist medical
    /// practitioner, `2262` pharmacist). eHDSI/XSPA:
    /// `urn:oasis:names:tc:xspa:1.0:subject:functional-role`.
    pub role: String,
    /// The organisation acted for.
    pub organisation: Organisation,
}
