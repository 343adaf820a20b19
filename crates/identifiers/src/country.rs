//! ISO 3166-1 alpha-2 country codes ([`CountryCode`]): the one check of a
//! country code in the gateway.

use std::fmt;

/// The officially assigned ISO 3166-1 alpha-2 codes (249), sorted.
///
/// Source: ISO 3166-1:2020 as published on the ISO Online Browsing Platform
/// (<https://www.iso.org/obp/ui/#search/code/>), "officially assigned" codes
/// only: exceptionally reserved codes such as `EL` or `UK` (used by some EU
/// bodies for Greece and the United Kingdom) are not ISO country codes, and
/// federation certificates carry the ISO code.
const ISO_3166_ALPHA_2: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// An officially assigned ISO 3166-1 alpha-2 country code, upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CountryCode(&'static str);

impl CountryCode {
    /// The code for `text` when it is an officially assigned ISO 3166-1
    /// alpha-2 code written in upper case (`"BE"`); `None` otherwise
    /// (`"be"`, `"BEL"`, `"EL"`, `"XX"`).
    pub fn parse(text: &str) -> Option<Self> {
        ISO_3166_ALPHA_2
            .binary_search(&text)
            .ok()
            .and_then(|i| ISO_3166_ALPHA_2.get(i))
            .map(|code| Self(code))
    }

    /// The two letters.
    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_sorted_unique_and_upper_case() {
        assert!(ISO_3166_ALPHA_2.windows(2).all(|w| w[0] < w[1]));
        assert!(
            ISO_3166_ALPHA_2
                .iter()
                .all(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()))
        );
    }

    #[test]
    fn parses_only_assigned_upper_case_codes() {
        for (text, ok) in [
            ("BE", true),
            ("LU", true),
            ("DE", true),
            ("GR", true),
            ("be", false),
            ("Be", false),
            ("BEL", false),
            ("B", false),
            ("", false),
            ("EL", false),
            ("UK", false),
            ("XX", false),
            ("ZZ", false),
            ("B\u{0}", false),
        ] {
            assert_eq!(CountryCode::parse(text).is_some(), ok, "{text:?}");
        }
        assert_eq!(CountryCode::parse("BE").map(|c| c.as_str()), Some("BE"));
    }
}
