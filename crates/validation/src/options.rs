//! Operator choices that change how findings are reported, never what is
//! checked: a per-rule downgrade list and the unknown-extensions policy;
//! and the clock that the rules relative to the current time read (tests
//! fix it).
//!
//! | option | default | source |
//! | --- | --- | --- |
//! | [`ValidationOptions::downgraded_rules`]: errors of the listed rules (constraint keys such as `bdl-7`, `txt-1`, `ips-pat-1`) become warnings | none | issue 15 §3 (national roll-out); the rule key is the text before `": "` in the finding, as every invariant and dedicated rule reports it ([`rule_of`]) |
//! | [`ValidationOptions::narrative_links`]: the severity of a narrative `#` link that names nothing | warning | Java errors (`InstanceValidator.checkReferences`, `TYPE_SPECIFIC_CHECKS_DT_XHTML_RESOLVE`); see the field for why the gateway warns |
//! | [`ValidationOptions::now`]: the current time of the bounds relative to it | the system clock | R4 ElementDefinition.minValue[x] (a Duration is "a relative time limit to the current time") |
//! | [`UnknownExtensions`]: the severity of an extension the gateway holds no definition for, except under an allowed domain | information | R4 extensibility.html ("extensions … SHALL be safe to ignore" for non-modifiers); Java reports an unresolvable extension as an error unless its URL is in the extension domains (`InstanceValidator.checkExtension`, `EXTENSION_EXT_UNKNOWN_NOTHERE`, `-extension` domains) |
//!
//! Modifier extensions the gateway cannot resolve are errors whatever the
//! policy (R4 extensibility.html#modifierExtension).
//!
//! Two ways to use them. A [`crate::Validator`] built
//! [`with_options`](crate::Validator::with_options) applies them during the
//! walk (an unknown extension then also fails slice conformance, as in
//! Java): how `tests/it/fhir_test_cases.rs` reproduces Java's verdicts. The
//! gateway instead keeps one validator with the defaults, shared by every
//! service (and by the gateways of one process), and applies its
//! operator's policy to the findings afterwards (`ehds-gateway`'s
//! `validation_policy`), with [`rule_of`], [`unknown_extension_url`] and
//! [`UnknownExtensions::severity_for`].
//!
//! Why information is the default for unknown extensions, where Java says
//! error: a gateway relays documents between countries, and each country
//! adds national extensions whose definitions the other gateways will not
//! hold. R4 makes a non-modifier extension safe to ignore, so refusing a
//! patient summary for one would stop care abroad for no clinical reason.
//! An operator who holds every extension it expects (or wants Java's
//! verdicts, as `tests/fhir_test_cases.rs` does) chooses `error`, with an
//! allow-list of the domains whose extensions stay information.

use ehds_fhir::outcome::{Issue, Severity};

/// How the validator reports findings; [`Default`] is the gateway's
/// behaviour without configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationOptions {
    /// Rule keys (`bdl-7`, `txt-1`) whose errors are reported as warnings.
    pub downgraded_rules: Vec<String>,
    /// How extensions without a definition are reported.
    pub unknown_extensions: UnknownExtensions,
    /// How a narrative link `a href="#x"` or `img src="#x"` that names no
    /// element is reported ([`crate::narrative::links`]). Warning by
    /// default, where Java says error: the IG Publisher's generated
    /// narratives link entries to anchors of its own HTML rendering ("See
    /// above (Patient/…)"), so the published IPS and EU laboratory examples
    /// carry dozens of such links, and a dead link in the human-readable
    /// text changes nothing a receiver reads from the coded data; refusing
    /// a patient summary for one would stop care abroad for no clinical
    /// reason. `Error` reproduces Java (`tests/it/fhir_test_cases.rs`).
    pub narrative_links: Severity,
    /// The current time for the rules that depend on it: a profile's
    /// `minValue[x]`/`maxValue[x]` given as a Duration, a time relative to
    /// the current clock (R4 ElementDefinition.minValue[x]). `None` (the
    /// default): the system clock, read when such a bound is checked. Tests
    /// set a fixed time so that their verdicts do not change with the date.
    pub now: Option<std::time::SystemTime>,
}

impl Default for ValidationOptions {
    fn default() -> Self {
        Self {
            downgraded_rules: Vec::new(),
            unknown_extensions: UnknownExtensions::default(),
            narrative_links: Severity::Warning,
            now: None,
        }
    }
}

/// The unknown-extensions policy: `severity` for an extension whose URL the
/// gateway holds no definition for, unless the URL's host is one of
/// `allowed_domains` (or below one), which is information.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownExtensions {
    /// Error, warning or information (fatal is treated as error).
    pub severity: Severity,
    /// Hosts (`hl7.org`, `fhir.example.eu`) whose extensions are only
    /// reported as information.
    pub allowed_domains: Vec<String>,
}

impl Default for UnknownExtensions {
    /// Information: another country's national extensions never block a
    /// document (the gateway's behaviour before the policy existed).
    fn default() -> Self {
        Self {
            severity: Severity::Information,
            allowed_domains: Vec::new(),
        }
    }
}

impl UnknownExtensions {
    /// The severity for an unknown extension with URL `url`: information
    /// for a core extension or one under an allowed domain, else the
    /// policy's. An allowed domain is a host (`hl7.eu`: that host and the
    /// hosts below it) or, written with its scheme, a URL prefix as Java's
    /// `-extension` domains are (`http://hl7.eu/fhir/`;
    /// `InstanceValidator.allowUnknownExtension`: `url.startsWith(domain)`).
    pub fn severity_for(&self, url: &str) -> Severity {
        let allowed = url.starts_with(CORE_EXTENSIONS)
            || self
                .allowed_domains
                .iter()
                .any(|domain| domain.contains("://") && url.starts_with(domain.as_str()))
            || host(url).is_some_and(|host| {
                self.allowed_domains
                    .iter()
                    .filter(|d| !d.contains("://"))
                    .any(|domain| {
                        let domain = domain.trim_start_matches('.');
                        host.eq_ignore_ascii_case(domain)
                            || host
                                .len()
                                .checked_sub(domain.len())
                                .and_then(|at| at.checked_sub(1).map(|dot| (dot, at)))
                                .is_some_and(|(dot, at)| {
                                    host.as_bytes().get(dot) == Some(&b'.')
                                        && host
                                            .get(at..)
                                            .is_some_and(|tail| tail.eq_ignore_ascii_case(domain))
                                })
                    })
            });
        match self.severity {
            _ if allowed => Severity::Information,
            Severity::Fatal => Severity::Error,
            other => other,
        }
    }
}

/// Core extensions (`http://hl7.org/fhir/StructureDefinition/…`) live in
/// the extensions pack, which the gateway does not hold: they are only
/// reported as information whatever the policy.
const CORE_EXTENSIONS: &str = "http://hl7.org/fhir/StructureDefinition/";

/// The finding the validator reports for an extension it holds no
/// definition for (one text, so [`unknown_extension_url`] finds it again).
pub fn unknown_extension_message(url: &str) -> String {
    format!("the extension {url} is not known to this gateway; its content was not checked")
}

/// The URL of an unknown-extension finding ([`unknown_extension_message`]),
/// for the caller's policy; `None` for any other finding.
pub fn unknown_extension_url(issue: &Issue) -> Option<&str> {
    issue
        .diagnostics
        .strip_prefix("the extension ")?
        .strip_suffix(" is not known to this gateway; its content was not checked")
        .filter(|url| !url.is_empty() && !url.contains(' '))
}

/// The rule a finding reports, as every invariant and dedicated rule
/// writes it: the constraint key before `": "` (`bdl-7`, `txt-1`,
/// `ips-pat-1`, `dom-6`) or the narrative parser's `xhtml`. Keys come from
/// the loaded packages' `ElementDefinition.constraint.key` and the
/// validator's own rule names, never from the document, so the set is
/// bounded by the packages. `None` for findings without a rule key
/// (cardinality, unknown elements, bindings, …).
pub fn rule_of(issue: &Issue) -> Option<&str> {
    let (key, _) = issue.diagnostics.split_once(": ")?;
    let constraint_key = (1..=64).contains(&key.len())
        && key.contains('-')
        && key.starts_with(|c: char| c.is_ascii_alphabetic())
        && !key.ends_with('-')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    (constraint_key || key == "xhtml").then_some(key)
}

/// The host of an absolute `scheme://host[:port]/…` URL.
fn host(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let host = authority.split(':').next()?;
    (!host.is_empty()).then_some(host)
}

impl ValidationOptions {
    /// Reports the errors of the downgraded rules as warnings.
    pub fn apply(&self, issues: &mut [Issue]) {
        if self.downgraded_rules.is_empty() {
            return;
        }
        for issue in issues.iter_mut().filter(|i| i.severity.is_error()) {
            if let Some(key) = rule_of(issue)
                && self.downgraded_rules.iter().any(|rule| rule == key)
            {
                issue.severity = Severity::Warning;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ehds_fhir::outcome::IssueType;

    #[test]
    fn downgraded_rules_become_warnings_and_nothing_else_changes() {
        let options = ValidationOptions {
            downgraded_rules: vec!["bdl-7".into(), "txt-1".into()],
            ..ValidationOptions::default()
        };
        let mut issues = vec![
            Issue::error(IssueType::Invariant, "bdl-7: fullUrl must be unique"),
            Issue::error(IssueType::Invariant, "bdl-70: not the same rule"),
            Issue::error(
                IssueType::Invariant,
                "txt-1: element <script> is not permitted",
            ),
            Issue::error(IssueType::Structure, "Patient.name: minimum required = 1"),
            Issue::new(
                Severity::Information,
                IssueType::Informational,
                "bdl-7: note",
            ),
        ];
        options.apply(&mut issues);
        let severities: Vec<Severity> = issues.iter().map(|i| i.severity).collect();
        assert_eq!(
            severities,
            [
                Severity::Warning,
                Severity::Error,
                Severity::Warning,
                Severity::Error,
                Severity::Information
            ]
        );
        // By default nothing is downgraded.
        let mut issues = vec![Issue::error(IssueType::Invariant, "bdl-7: x")];
        ValidationOptions::default().apply(&mut issues);
        assert_eq!(issues[0].severity, Severity::Error);
    }

    #[test]
    fn rule_keys_are_read_from_the_findings_of_rules_only() {
        let rule = |text: &str| {
            let issue = Issue::error(IssueType::Invariant, text);
            rule_of(&issue).map(str::to_owned)
        };
        assert_eq!(
            rule("bdl-7: fullUrl must be unique").as_deref(),
            Some("bdl-7")
        );
        assert_eq!(rule("ips-pat-1: x").as_deref(), Some("ips-pat-1"));
        assert_eq!(rule("xhtml: not well-formed").as_deref(), Some("xhtml"));
        assert_eq!(rule("Patient.name: minimum required = 1"), None);
        assert_eq!(rule("'a-b: c' is not a valid date"), None);
        assert_eq!(rule("minimum required = 1"), None);
        assert_eq!(rule("-x: y"), None);
    }

    #[test]
    fn unknown_extension_findings_are_found_again() {
        let url = "http://national.example.eu/fhir/StructureDefinition/insurer";
        let issue = Issue::new(
            Severity::Information,
            IssueType::Informational,
            unknown_extension_message(url),
        );
        assert_eq!(unknown_extension_url(&issue), Some(url));
        assert_eq!(rule_of(&issue), None);
        let other = Issue::error(
            IssueType::Structure,
            "the extension URL 'x|1' must not contain a version",
        );
        assert_eq!(unknown_extension_url(&other), None);
    }

    #[test]
    fn allowed_domains_as_java_url_prefixes_and_core_extensions() {
        let policy = UnknownExtensions {
            severity: Severity::Error,
            allowed_domains: vec!["http://hl7.eu/fhir/".into()],
        };
        assert_eq!(
            policy.severity_for("http://hl7.eu/fhir/StructureDefinition/ext"),
            Severity::Information
        );
        // A prefix is a prefix, not a host: another scheme or path is not under it.
        assert_eq!(
            policy.severity_for("https://hl7.eu/fhir/StructureDefinition/ext"),
            Severity::Error
        );
        assert_eq!(
            policy.severity_for("http://hl7.eu.example/fhir/x"),
            Severity::Error
        );
        // Core extensions: the extensions pack is not held; always information.
        assert_eq!(
            policy.severity_for("http://hl7.org/fhir/StructureDefinition/patient-birthPlace"),
            Severity::Information
        );
    }

    #[test]
    fn unknown_extensions_by_policy_and_domain() {
        assert_eq!(
            UnknownExtensions::default().severity_for("http://national.example/ext"),
            Severity::Information
        );
        let policy = UnknownExtensions {
            severity: Severity::Error,
            allowed_domains: vec!["hl7.org".into(), "ehealth.example.eu".into()],
        };
        assert_eq!(
            policy.severity_for("http://x.example/StructureDefinition/e"),
            Severity::Error
        );
        assert_eq!(
            policy.severity_for("http://hl7.org/fhir/StructureDefinition/e"),
            Severity::Information
        );
        assert_eq!(
            policy.severity_for("https://fhir.hl7.org:443/StructureDefinition/e"),
            Severity::Information
        );
        assert_eq!(
            policy.severity_for("https://ehealth.example.eu/fhir/e"),
            Severity::Information
        );
        // A look-alike host is not under the allowed domain.
        assert_eq!(
            policy.severity_for("https://evilhl7.org/e"),
            Severity::Error
        );
        assert_eq!(policy.severity_for("urn:oid:1.2.3"), Severity::Error);
        let warn = UnknownExtensions {
            severity: Severity::Warning,
            allowed_domains: Vec::new(),
        };
        assert_eq!(warn.severity_for("http://x.example/e"), Severity::Warning);
    }
}
