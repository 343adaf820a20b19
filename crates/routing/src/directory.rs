//! The NCP directory: every country of the federation (the gateway's own
//! included), its national contact point and the patient identifier systems
//! it answers for.
//!
//! The shipped directory is `deploy/config/directory.toml`:
//!
//! ```toml
//! [[country]]
//! code = "BE"                       # ISO 3166-1 alpha-2, upper case
//! name = "Belgium"
//!
//! [country.ncp]
//! id = "ncp-be"                     # the NCP id
//! federation_url = "https://ncp.be.ehds.test:8443"   # https only
//!
//! [country.ncp.certificate]         # the peer certificate's subject
//! country = "BE"                    # subject C
//! common_name = "ncp-be"            # subject CN
//!
//! [[country.patient_identifier]]
//! system = "https://www.ehealth.fgov.be/standards/fhir/core/NamingSystem/ssin"
//! pattern = "^[0-9]{11}$"           # always matched against the whole value
//! description = "Belgian national register number (INSZ/NISS): 11 digits"
//! ```
//!
//! Load-time rules (a violation is a [`RoutingError`], the gateway does not
//! start): unknown keys are refused; country codes are officially assigned
//! ISO 3166-1 alpha-2 codes; a country, an NCP id and an identifier system
//! each appear once in the whole directory (an identifier system names
//! exactly one country, or routing would be ambiguous); the federation URL
//! is an absolute `https` URL with a host and no user information, query or
//! fragment; every pattern compiles and is matched against the *whole*
//! value (it is wrapped in `\A(?:…)\z`, whether or not it is written with
//! `^…$`); every country has at least one identifier system.

use std::collections::BTreeMap;
use std::path::Path;

use regex::Regex;
use serde::Deserialize;
use url::Url;

use crate::error::RoutingError;
use ehds_identifiers::CountryCode;

/// The longest patient identifier value checked against a country's
/// patterns, in bytes. National identifiers are short (BE 11 digits, LU
/// 13); the bound keeps pattern matching cheap whatever a client sends.
pub const MAX_IDENTIFIER_VALUE_BYTES: usize = 64;

/// Largest compiled size of one identifier pattern (regex crate units).
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectoryFile {
    #[serde(default)]
    country: Vec<CountryFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CountryFile {
    code: String,
    name: String,
    ncp: NcpFile,
    #[serde(default)]
    patient_identifier: Vec<IdentifierRuleFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NcpFile {
    id: String,
    federation_url: String,
    certificate: CertificateFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CertificateFile {
    country: String,
    common_name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentifierRuleFile {
    system: String,
    pattern: String,
    description: String,
}

/// The federation's countries and their NCPs, immutable once loaded.
#[derive(Debug, Clone)]
pub struct NcpDirectory {
    countries: Vec<Country>,
    /// Identifier system → (country index, rule index).
    by_system: BTreeMap<String, (usize, usize)>,
}

/// One country of the federation.
#[derive(Debug, Clone)]
pub struct Country {
    code: CountryCode,
    name: String,
    ncp: Ncp,
    identifier_rules: Vec<IdentifierRule>,
}

/// A national contact point: where to reach it and who it must be.
#[derive(Debug, Clone)]
pub struct Ncp {
    id: String,
    country: CountryCode,
    federation_base_url: Url,
    certificate: CertificateIdentity,
}

/// The subject a peer NCP's verified certificate must carry. Federation
/// NCP certificates carry `C=<country>` and `CN=<NCP id>` (see
/// `deploy/dev-pki/README.md`, "Identity convention").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateIdentity {
    /// Subject country (`C`).
    pub country: CountryCode,
    /// Subject common name (`CN`).
    pub common_name: String,
}

/// One patient identifier system of a country and the form of its values.
#[derive(Debug, Clone)]
pub struct IdentifierRule {
    system: String,
    pattern: Regex,
    pattern_text: String,
    description: String,
}

/// Where a patient identifier leads: the patient's country and its NCP.
#[derive(Debug, Clone, Copy)]
pub struct RoutedPatient<'a> {
    /// The country whose identifier system it is.
    pub country: &'a Country,
    /// That country's NCP, which answers for the patient.
    pub ncp: &'a Ncp,
}

/// Why a patient identifier cannot be routed. The messages never repeat the
/// identifier value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentifierRefusal {
    /// No country of the federation issues identifiers in this system.
    UnknownSystem,
    /// The value is empty.
    Empty,
    /// The value is longer than [`MAX_IDENTIFIER_VALUE_BYTES`].
    TooLong {
        /// The limit, in bytes.
        max: usize,
    },
    /// The value does not have the form the issuing country uses.
    Malformed {
        /// The rule's description of the expected form.
        expected: String,
    },
}

impl IdentifierRefusal {
    /// A message for an OperationOutcome issue, without the value.
    pub fn message(&self) -> String {
        match self {
            Self::UnknownSystem => {
                "the patient identifier system is not issued by any country of the federation"
                    .to_owned()
            }
            Self::Empty => "the patient identifier value is empty".to_owned(),
            Self::TooLong { max } => {
                format!("the patient identifier value is longer than {max} bytes")
            }
            Self::Malformed { expected } => {
                format!("the patient identifier value is not well-formed: expected {expected}")
            }
        }
    }
}

impl NcpDirectory {
    /// The directory from its TOML text.
    pub fn from_toml_str(text: &str) -> Result<Self, RoutingError> {
        let file: DirectoryFile = toml::from_str(text)?;
        let mut countries: Vec<Country> = Vec::with_capacity(file.country.len());
        let mut by_system = BTreeMap::new();
        for entry in file.country {
            let country = Country::from_file(entry)?;
            if countries.iter().any(|c| c.code == country.code) {
                return Err(invalid(format!("country {} is listed twice", country.code)));
            }
            if countries.iter().any(|c| c.ncp.id == country.ncp.id) {
                return Err(invalid(format!(
                    "NCP id {:?} is listed twice",
                    country.ncp.id
                )));
            }
            if countries
                .iter()
                .any(|c| c.ncp.certificate == country.ncp.certificate)
            {
                return Err(invalid(format!(
                    "two NCPs expect the same certificate identity (C={}, CN={})",
                    country.ncp.certificate.country, country.ncp.certificate.common_name
                )));
            }
            let index = countries.len();
            for (rule_index, rule) in country.identifier_rules.iter().enumerate() {
                if by_system
                    .insert(rule.system.clone(), (index, rule_index))
                    .is_some()
                {
                    return Err(invalid(format!(
                        "identifier system {:?} is listed twice: a system must name one country",
                        rule.system
                    )));
                }
            }
            countries.push(country);
        }
        Ok(Self {
            countries,
            by_system,
        })
    }

    /// The directory from a TOML file.
    pub fn load(path: &Path) -> Result<Self, RoutingError> {
        let text = std::fs::read_to_string(path).map_err(|source| RoutingError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text)
    }

    /// Every country, in file order.
    pub fn countries(&self) -> impl Iterator<Item = &Country> {
        self.countries.iter()
    }

    /// The country with this ISO 3166-1 alpha-2 code.
    pub fn country(&self, code: &str) -> Option<&Country> {
        self.countries.iter().find(|c| c.code.as_str() == code)
    }

    /// The NCP of the country with this code.
    pub fn ncp_for_country(&self, code: &str) -> Option<&Ncp> {
        self.country(code).map(|c| &c.ncp)
    }

    /// The country that issues identifiers in `system` (exact match: FHIR
    /// URIs are case-sensitive).
    pub fn country_for_identifier_system(&self, system: &str) -> Option<&Country> {
        let (country, _) = self.by_system.get(system)?;
        self.countries.get(*country)
    }

    /// Checks a patient identifier against the rules of the country that
    /// issues `system`, and says which NCP answers for the patient.
    pub fn check_patient_identifier(
        &self,
        system: &str,
        value: &str,
    ) -> Result<RoutedPatient<'_>, IdentifierRefusal> {
        let (country_index, rule_index) = self
            .by_system
            .get(system)
            .ok_or(IdentifierRefusal::UnknownSystem)?;
        let country = self
            .countries
            .get(*country_index)
            .ok_or(IdentifierRefusal::UnknownSystem)?;
        let rule = country
            .identifier_rules
            .get(*rule_index)
            .ok_or(IdentifierRefusal::UnknownSystem)?;
        if value.is_empty() {
            return Err(IdentifierRefusal::Empty);
        }
        if value.len() > MAX_IDENTIFIER_VALUE_BYTES {
            return Err(IdentifierRefusal::TooLong {
                max: MAX_IDENTIFIER_VALUE_BYTES,
            });
        }
        if !rule.pattern.is_match(value) {
            return Err(IdentifierRefusal::Malformed {
                expected: rule.description.clone(),
            });
        }
        Ok(RoutedPatient {
            country,
            ncp: &country.ncp,
        })
    }

    /// The NCP whose expected certificate identity is subject
    /// `C=country`, `CN=common_name` (exact, case-sensitive), for an
    /// inbound federation connection whose certificate has been verified.
    pub fn peer_by_identity(&self, country: &str, common_name: &str) -> Option<&Ncp> {
        self.countries.iter().map(|c| &c.ncp).find(|n| {
            n.certificate.country.as_str() == country && n.certificate.common_name == common_name
        })
    }
}

impl Country {
    fn from_file(file: CountryFile) -> Result<Self, RoutingError> {
        let code = CountryCode::parse(&file.code).ok_or_else(|| {
            invalid(format!(
                "country {:?} is not an ISO 3166-1 alpha-2 code in upper case",
                file.code
            ))
        })?;
        if file.name.trim().is_empty() {
            return Err(invalid(format!("country {code} has no name")));
        }
        let ncp = Ncp::from_file(code, file.ncp)?;
        if file.patient_identifier.is_empty() {
            return Err(invalid(format!(
                "country {code} lists no patient identifier system"
            )));
        }
        let identifier_rules = file
            .patient_identifier
            .into_iter()
            .map(|rule| IdentifierRule::from_file(code, rule))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            code,
            name: file.name,
            ncp,
            identifier_rules,
        })
    }

    /// ISO 3166-1 alpha-2 code.
    pub fn code(&self) -> CountryCode {
        self.code
    }

    /// Human-readable name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The country's NCP.
    pub fn ncp(&self) -> &Ncp {
        &self.ncp
    }

    /// The patient identifier systems the country issues.
    pub fn identifier_rules(&self) -> &[IdentifierRule] {
        &self.identifier_rules
    }
}

impl Ncp {
    fn from_file(country: CountryCode, file: NcpFile) -> Result<Self, RoutingError> {
        if !is_ncp_id(&file.id) {
            return Err(invalid(format!(
                "NCP id {:?} (country {country}) must be 1 to 64 lower-case letters, digits or '-'",
                file.id
            )));
        }
        let federation_base_url = https_base_url(&file.federation_url)
            .map_err(|why| invalid(format!("federation_url of {} ({country}): {why}", file.id)))?;
        let certificate_country = CountryCode::parse(&file.certificate.country).ok_or_else(|| {
            invalid(format!(
                "certificate country {:?} of {} is not an ISO 3166-1 alpha-2 code in upper case",
                file.certificate.country, file.id
            ))
        })?;
        let common_name = file.certificate.common_name;
        if common_name.is_empty()
            || common_name.len() > 64
            || common_name.chars().any(char::is_control)
        {
            return Err(invalid(format!(
                "certificate common_name of {} must be 1 to 64 characters without control characters",
                file.id
            )));
        }
        Ok(Self {
            id: file.id,
            country,
            federation_base_url,
            certificate: CertificateIdentity {
                country: certificate_country,
                common_name,
            },
        })
    }

    /// The NCP id (`ncp-be`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The country it serves.
    pub fn country(&self) -> CountryCode {
        self.country
    }

    /// The federation base URL, as configured (`https://host:port[/path]`).
    pub fn federation_base_url(&self) -> &str {
        self.federation_base_url.as_str()
    }

    /// The absolute URL of `relative` (a relay path such as
    /// `Patient?identifier=…`, see [`crate::search`]) under the federation
    /// base URL: exactly one `/` between them, the base path kept.
    pub fn federation_url_for(&self, relative: &str) -> String {
        let base = self.federation_base_url.as_str().trim_end_matches('/');
        format!("{base}/{}", relative.trim_start_matches('/'))
    }

    /// The subject its verified certificate must carry.
    pub fn certificate(&self) -> &CertificateIdentity {
        &self.certificate
    }
}

impl IdentifierRule {
    fn from_file(country: CountryCode, file: IdentifierRuleFile) -> Result<Self, RoutingError> {
        if !is_identifier_system(&file.system) {
            return Err(invalid(format!(
                "identifier system {:?} ({country}) is not an absolute URI (http(s)://… or urn:…)",
                file.system
            )));
        }
        if file.description.trim().is_empty() {
            return Err(invalid(format!(
                "identifier system {:?} ({country}) has no description",
                file.system
            )));
        }
        let pattern = regex::RegexBuilder::new(&format!(r"\A(?:{})\z", file.pattern))
            .size_limit(PATTERN_SIZE_LIMIT)
            .build()
            .map_err(|e| {
                invalid(format!(
                    "pattern of identifier system {:?} ({country}) does not compile: {e}",
                    file.system
                ))
            })?;
        Ok(Self {
            system: file.system,
            pattern,
            pattern_text: file.pattern,
            description: file.description,
        })
    }

    /// The identifier system (`Identifier.system`).
    pub fn system(&self) -> &str {
        &self.system
    }

    /// The pattern as written in the directory (matched against the whole
    /// value).
    pub fn pattern(&self) -> &str {
        &self.pattern_text
    }

    /// What a well-formed value looks like, for refusals.
    pub fn description(&self) -> &str {
        &self.description
    }
}

fn invalid(message: String) -> RoutingError {
    RoutingError::Invalid(message)
}

fn is_ncp_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// An absolute URI usable as `Identifier.system`: `http(s)://host…` or a
/// URN (`urn:oid:…`, `urn:uuid:…`, …), no whitespace or control characters.
/// FHIR R4 datatypes.html#uri; OIDs as `urn:oid:` (RFC 3001).
fn is_identifier_system(system: &str) -> bool {
    if system.is_empty()
        || system.len() > 256
        || system.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return false;
    }
    if let Some(oid) = system.strip_prefix("urn:oid:") {
        return is_oid(oid);
    }
    match Url::parse(system) {
        Ok(url) => match url.scheme() {
            "http" | "https" => url.host_str().is_some(),
            "urn" => true,
            _ => false,
        },
        Err(_) => false,
    }
}

/// `0`, `1` or `2`, then dot-separated arcs without leading zeros (FHIR R4
/// datatypes.html#oid: `urn:oid:[0-2](\.(0|[1-9][0-9]*))+`).
fn is_oid(oid: &str) -> bool {
    let mut arcs = oid.split('.');
    let first_ok = matches!(arcs.next(), Some("0" | "1" | "2"));
    let mut count = 0;
    let rest_ok = arcs.all(|arc| {
        count += 1;
        !arc.is_empty()
            && arc.bytes().all(|b| b.is_ascii_digit())
            && (arc == "0" || !arc.starts_with('0'))
    });
    first_ok && rest_ok && count >= 1
}

fn https_base_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("not an absolute URL ({e})"))?;
    if url.scheme() != "https" {
        return Err("must use https (federation traffic is mutual TLS only)".to_owned());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry user information".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".to_owned());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = r#"
[[country]]
code = "BE"
name = "Belgium"
[country.ncp]
id = "ncp-be"
federation_url = "https://ncp.be.ehds.test:8443"
[country.ncp.certificate]
country = "BE"
common_name = "ncp-be"
[[country.patient_identifier]]
system = "https://www.ehealth.fgov.be/standards/fhir/core/NamingSystem/ssin"
pattern = "^[0-9]{11}$"
description = "11 digits"
[[country.patient_identifier]]
system = "urn:oid:2.16.840.1.113883.3.6777.5.1"
pattern = "[0-9]{11}"
description = "11 digits (OID form)"

[[country]]
code = "LU"
name = "Luxembourg"
[country.ncp]
id = "ncp-lu"
federation_url = "https://ncp.lu.ehds.test:9443/fhir/"
[country.ncp.certificate]
country = "LU"
common_name = "ncp-lu"
[[country.patient_identifier]]
system = "urn:oid:1.3.182.4.4"
pattern = "^[0-9]{13}$"
description = "13 digits"
"#;

    fn directory() -> NcpDirectory {
        NcpDirectory::from_toml_str(TWO).unwrap()
    }

    #[test]
    fn routes_each_system_to_its_country() {
        let d = directory();
        let be = "https://www.ehealth.fgov.be/standards/fhir/core/NamingSystem/ssin";
        assert_eq!(
            d.country_for_identifier_system(be).unwrap().code().as_str(),
            "BE"
        );
        assert_eq!(
            d.country_for_identifier_system("urn:oid:2.16.840.1.113883.3.6777.5.1")
                .unwrap()
                .code()
                .as_str(),
            "BE"
        );
        assert_eq!(
            d.country_for_identifier_system("urn:oid:1.3.182.4.4")
                .unwrap()
                .name(),
            "Luxembourg"
        );
        // Exact match only: URIs are case-sensitive, no trailing slash games.
        assert!(
            d.country_for_identifier_system(&be.to_uppercase())
                .is_none()
        );
        assert!(d.country_for_identifier_system(&format!("{be}/")).is_none());
        assert!(d.country_for_identifier_system("").is_none());
    }

    #[test]
    fn checks_identifier_values_table() {
        let d = directory();
        let be = "https://www.ehealth.fgov.be/standards/fhir/core/NamingSystem/ssin";
        let lu = "urn:oid:1.3.182.4.4";
        let be_oid = "urn:oid:2.16.840.1.113883.3.6777.5.1";
        let malformed_be = Err(IdentifierRefusal::Malformed {
            expected: "11 digits".to_owned(),
        });
        let cases: Vec<(&str, String, Result<&str, IdentifierRefusal>)> = vec![
            (be, "12345678901".into(), Ok("ncp-be")),
            (be_oid, "12345678901".into(), Ok("ncp-be")),
            (lu, "1998041799999".into(), Ok("ncp-lu")),
            (be, "1234567890".into(), malformed_be.clone()),
            (be, "123456789011".into(), malformed_be.clone()),
            (be, "1234567890a".into(), malformed_be.clone()),
            (be, "12345678901\n".into(), malformed_be.clone()),
            (be, " 12345678901".into(), malformed_be.clone()),
            (be, "12345678901 12345678901".into(), malformed_be.clone()),
            // Unanchored pattern in the file is still matched whole.
            (
                be_oid,
                "x12345678901".into(),
                Err(IdentifierRefusal::Malformed {
                    expected: "11 digits (OID form)".into(),
                }),
            ),
            // Arabic-Indic digits are not ASCII digits under [0-9].
            (be, "١٢٣٤٥٦٧٨٩٠١".into(), malformed_be.clone()),
            (
                lu,
                "12345678901".into(),
                Err(IdentifierRefusal::Malformed {
                    expected: "13 digits".into(),
                }),
            ),
            (be, String::new(), Err(IdentifierRefusal::Empty)),
            (
                be,
                "1".repeat(MAX_IDENTIFIER_VALUE_BYTES + 1),
                Err(IdentifierRefusal::TooLong {
                    max: MAX_IDENTIFIER_VALUE_BYTES,
                }),
            ),
            (
                be,
                "1".repeat(1_000_000),
                Err(IdentifierRefusal::TooLong {
                    max: MAX_IDENTIFIER_VALUE_BYTES,
                }),
            ),
            (
                "urn:oid:1.2.3",
                "12345678901".into(),
                Err(IdentifierRefusal::UnknownSystem),
            ),
            (
                "",
                "12345678901".into(),
                Err(IdentifierRefusal::UnknownSystem),
            ),
        ];
        for (system, value, expected) in cases {
            let got = d
                .check_patient_identifier(system, &value)
                .map(|r| r.ncp.id());
            assert_eq!(got, expected, "{system} {:?}", value.get(..20));
            if let Err(refusal) = got {
                assert!(!refusal.message().is_empty());
                if value.len() > 3 {
                    assert!(
                        !refusal.message().contains(value.as_str()),
                        "echoes the value"
                    );
                }
            }
        }
    }

    #[test]
    fn routed_patient_names_country_and_ncp() {
        let d = directory();
        let routed = d
            .check_patient_identifier("urn:oid:1.3.182.4.4", "1998041799999")
            .unwrap();
        assert_eq!(routed.country.code().as_str(), "LU");
        assert_eq!(routed.ncp.id(), "ncp-lu");
        assert_eq!(routed.ncp.country().as_str(), "LU");
    }

    #[test]
    fn finds_peers_by_certificate_identity() {
        let d = directory();
        assert_eq!(d.peer_by_identity("BE", "ncp-be").unwrap().id(), "ncp-be");
        assert_eq!(d.peer_by_identity("LU", "ncp-lu").unwrap().id(), "ncp-lu");
        assert!(d.peer_by_identity("LU", "ncp-be").is_none());
        assert!(d.peer_by_identity("be", "ncp-be").is_none());
        assert!(d.peer_by_identity("BE", "NCP-BE").is_none());
        assert!(d.peer_by_identity("BE", "").is_none());
        assert_eq!(d.ncp_for_country("LU").unwrap().id(), "ncp-lu");
        assert!(d.ncp_for_country("DE").is_none());
        assert!(d.ncp_for_country("lu").is_none());
    }

    #[test]
    fn joins_relay_paths_under_the_base_url() {
        let d = directory();
        let be = d.ncp_for_country("BE").unwrap();
        let lu = d.ncp_for_country("LU").unwrap();
        assert_eq!(be.federation_base_url(), "https://ncp.be.ehds.test:8443/");
        assert_eq!(
            be.federation_url_for("Patient?identifier=x"),
            "https://ncp.be.ehds.test:8443/Patient?identifier=x"
        );
        assert_eq!(
            lu.federation_url_for("/Bundle/abc"),
            "https://ncp.lu.ehds.test:9443/fhir/Bundle/abc"
        );
    }

    fn with(replace: &str, by: &str) -> Result<NcpDirectory, RoutingError> {
        assert!(TWO.contains(replace), "{replace}");
        NcpDirectory::from_toml_str(&TWO.replacen(replace, by, 1))
    }

    #[test]
    fn refuses_inconsistent_directories() {
        let cases = [
            ("code = \"LU\"", "code = \"BE\"", "listed twice"),
            ("code = \"LU\"", "code = \"lu\"", "ISO 3166-1"),
            ("code = \"LU\"", "code = \"EL\"", "ISO 3166-1"),
            ("id = \"ncp-lu\"", "id = \"ncp-be\"", "listed twice"),
            ("id = \"ncp-lu\"", "id = \"NCP LU\"", "NCP id"),
            (
                "system = \"urn:oid:1.3.182.4.4\"",
                "system = \"urn:oid:2.16.840.1.113883.3.6777.5.1\"",
                "listed twice",
            ),
            (
                "system = \"urn:oid:1.3.182.4.4\"",
                "system = \"urn:oid:1.03.4\"",
                "absolute URI",
            ),
            (
                "system = \"urn:oid:1.3.182.4.4\"",
                "system = \"1.3.182.4.4\"",
                "absolute URI",
            ),
            (
                "system = \"urn:oid:1.3.182.4.4\"",
                "system = \"ftp://x/y\"",
                "absolute URI",
            ),
            (
                "system = \"urn:oid:1.3.182.4.4\"",
                "system = \"urn:oid:1.3 .4\"",
                "absolute URI",
            ),
            (
                "pattern = \"^[0-9]{13}$\"",
                "pattern = \"^[0-9{13}$\"",
                "does not compile",
            ),
            (
                "description = \"13 digits\"",
                "description = \" \"",
                "no description",
            ),
            (
                "https://ncp.lu.ehds.test:9443/fhir/",
                "http://ncp.lu.ehds.test:9443/",
                "https",
            ),
            (
                "https://ncp.lu.ehds.test:9443/fhir/",
                "https://user:pw@ncp.lu.ehds.test/",
                "user information",
            ),
            (
                "https://ncp.lu.ehds.test:9443/fhir/",
                "https://ncp.lu.ehds.test/?a=b",
                "query",
            ),
            (
                "https://ncp.lu.ehds.test:9443/fhir/",
                "https://ncp.lu.ehds.test/#f",
                "fragment",
            ),
            (
                "https://ncp.lu.ehds.test:9443/fhir/",
                "ncp.lu.ehds.test:9443",
                "https",
            ),
            (
                "https://ncp.lu.ehds.test:9443/fhir/",
                "https://:9443/",
                "host",
            ),
            (
                "country = \"LU\"\ncommon_name",
                "country = \"L\"\ncommon_name",
                "certificate country",
            ),
            (
                "common_name = \"ncp-lu\"",
                "common_name = \"\"",
                "common_name",
            ),
            (
                "common_name = \"ncp-lu\"",
                "common_name = \"ncp-be\"\n[country.ncp.x]",
                "unknown field",
            ),
            (
                "name = \"Luxembourg\"",
                "name = \"Luxembourg\"\nflag = 1",
                "unknown field",
            ),
            (
                "description = \"13 digits\"",
                "description = \"13 digits\"\nexample = \"1\"",
                "unknown field",
            ),
        ];
        for (replace, by, why) in cases {
            let err = with(replace, by).expect_err(by).to_string();
            assert!(err.contains(why), "{by}: {err}");
        }
        // Two NCPs expecting the same certificate subject.
        let twin = TWO.replacen(
            "country = \"LU\"\ncommon_name = \"ncp-lu\"",
            "country = \"BE\"\ncommon_name = \"ncp-be\"",
            1,
        );
        assert!(
            NcpDirectory::from_toml_str(&twin)
                .unwrap_err()
                .to_string()
                .contains("certificate identity")
        );
        // A country without identifier systems cannot be routed to.
        let bare = TWO
            .split("[[country.patient_identifier]]\nsystem = \"urn:oid:1.3.182.4.4\"")
            .next()
            .unwrap();
        assert!(
            NcpDirectory::from_toml_str(bare)
                .unwrap_err()
                .to_string()
                .contains("no patient identifier")
        );
    }

    #[test]
    fn oids_follow_the_fhir_rule() {
        for (oid, ok) in [
            ("1.3.182.4.4", true),
            ("2.16.840.1.113883.3.6777.5.1", true),
            ("0.0", true),
            ("1", false),
            ("3.1", false),
            ("1.", false),
            ("1..2", false),
            ("1.02", false),
            ("1.2a", false),
        ] {
            assert_eq!(is_oid(oid), ok, "{oid}");
        }
    }
}
