//! An NCP's id ([`NcpId`]): `urn:ehds:ncp:<country>`, the audience (`aud`,
//! RFC 7519 §4.1.3) of the health-professional assertions meant for it and
//! the id its AuditEvents and Provenance name.

use std::fmt;

use crate::country::CountryCode;

/// The id of the national contact point of one country.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NcpId(CountryCode);

impl NcpId {
    /// The prefix before the country code.
    pub const PREFIX: &'static str = "urn:ehds:ncp:";

    /// The NCP of `country`.
    pub fn of(country: CountryCode) -> Self {
        Self(country)
    }

    /// Reads `urn:ehds:ncp:BE`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        text.strip_prefix(Self::PREFIX)
            .and_then(CountryCode::parse)
            .map(Self)
    }

    /// Its country.
    pub fn country(&self) -> CountryCode {
        self.0
    }
}

impl fmt::Display for NcpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ncp_id_is_the_prefix_and_an_assigned_country_code() {
        let be = CountryCode::parse("BE").unwrap();
        assert_eq!(NcpId::of(be).to_string(), "urn:ehds:ncp:BE");
        assert_eq!(NcpId::parse("urn:ehds:ncp:BE"), Some(NcpId::of(be)));
        for text in ["urn:ehds:ncp:XX", "urn:ehds:ncp:be", "urn:ehds:ncp:", "BE"] {
            assert_eq!(NcpId::parse(text), None, "{text}");
        }
    }
}
