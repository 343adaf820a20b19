//! The operator's validation policy (issue 15 §3 "Operator policy" and §2
//! "Unknown extensions"): what the gateway does with the validator's
//! findings on a resource pushed by one of its own country's systems. The
//! validator reports the same findings whatever the policy
//! (`ehds_validation`); [`judge`] turns findings and policy into the
//! verdict and the OperationOutcome issues the sender gets.
//!
//! | setting | where | values | default | why there |
//! | --- | --- | --- | --- | --- |
//! | `policy` | per service (`[service.validation]`) | `enforce`: any error refuses (422); `report`: stored and relayed anyway, 201, the errors in the OperationOutcome and on `/metrics` | `enforce` | a national roll-out goes service by service (laboratory reports may start in `report` while patient summaries are enforced) |
//! | `downgraded_rules` | per service | rule keys (`bdl-7`, `txt-1`, `ips-pat-1`, `xhtml`) whose errors become warnings, with a note saying the operator downgraded them; the validator is told them too, so that they do not decide slice membership by profile (`ehds_validation::Validator::validate_pushed_document_downgrading`: a Patient breaking only `per-1` still fills the IPS `patient` slice, and no slice error is left behind) | none | a rule the senders of one service cannot meet yet must not weaken another service's documents |
//! | `unknown_extensions` | global (`[validation]`) | `error`, `warning`, `information` for an extension the gateway holds no definition for | `information` | what is unknown depends on the packages the gateway loaded, which are global; and the senders of every service are the same country's systems, using the same national extensions |
//! | `unknown_extension_domains` | global | hosts (`hl7.eu`: it and the hosts below) or URL prefixes (`http://hl7.eu/fhir/`, as Java's `-extension` domains) whose unknown extensions stay information | none | as above |
//! | `recorded_terminology_dirs`, `recorded_terminology_language` | global | folders of a terminology server's recorded answers (the HL7 Java validator's cache format); codes and displays of code systems not held (SNOMED CT, LOINC, CVX) are checked with them, a recorded wrong display or unknown code is a finding like any other | none: such codes are not checked | it changes what the validator knows, not how findings are judged, so it applies to every resource it validates, another country's included (as Java with a terminology server) |
//!
//! The policy applies to what this country's systems push (`POST
//! /fhir/Bundle`; a PDF original's DocumentReference, `POST
//! /fhir/DocumentReference`, under the policy of its type's service, the
//! PDF's own checks refusing whatever the policy), to `$validate`, which answers what a push would be
//! told, and to what this country's national FHIR server answers for a
//! service with `source = "fhir"` (`crate::federation::national_source`:
//! the same country's infrastructure; under `report` an answer with errors
//! is relayed and counted, under `enforce` it is a 502). It never applies to documents from another country (relayed
//! answers): those are held to the validator's defaults, under which an
//! unknown non-modifier extension is information, so another country's
//! national extensions never block a document (R4 extensibility.html: only
//! modifier extensions may change the meaning of what carries them, so a
//! receiver may ignore the others). Unknown modifier extensions are errors
//! whatever the policy.

use ehds_fhir::outcome::{Issue, IssueType, Severity};
use ehds_validation::UnknownExtensions;
use serde::Deserialize;

/// `policy` of a service: what an error does to a pushed document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Any error refuses the document (422 with every issue).
    #[default]
    Enforce,
    /// Errors are reported, not enforced: the document is stored (and
    /// relayed when asked for), 201, the errors in the OperationOutcome
    /// (`Prefer: return=OperationOutcome`) and counted on `/metrics`.
    Report,
}

impl Mode {
    /// The configuration's spelling.
    pub fn code(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::Report => "report",
        }
    }
}

/// `[service.validation]`: a service's validation policy.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePolicy {
    /// `enforce` (the default) or `report`.
    #[serde(default)]
    pub policy: Mode,
    /// Rule keys whose errors are reported as warnings.
    #[serde(default)]
    pub downgraded_rules: Vec<String>,
}

impl ServicePolicy {
    /// The written values, checked: rule keys as findings carry them
    /// ([`ehds_validation::rule_of`]), each once. Whether a key is a rule
    /// of the loaded packages is checked when they are loaded (a warning:
    /// rules come from packages, which change).
    pub fn check(&self) -> Result<(), String> {
        for (index, rule) in self.downgraded_rules.iter().enumerate() {
            let probe = Issue::error(IssueType::Invariant, format!("{rule}: x"));
            if ehds_validation::rule_of(&probe) != Some(rule.as_str()) {
                return Err(format!(
                    "downgraded rule {rule:?} is not a rule key (a constraint key such as \
                     \"bdl-7\" or \"txt-1\", or \"xhtml\")"
                ));
            }
            if self
                .downgraded_rules
                .iter()
                .skip(index + 1)
                .any(|r| r == rule)
            {
                return Err(format!("downgraded rule {rule:?} is listed twice"));
            }
        }
        Ok(())
    }
}

/// The verdict on a pushed resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// No error: stored.
    Accepted,
    /// Errors, under `report`: stored anyway.
    AcceptedWithErrors,
    /// Errors, under `enforce`: refused.
    Refused,
}

impl Verdict {
    /// The `/metrics` label.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::AcceptedWithErrors => "accepted-with-errors",
            Self::Refused => "refused",
        }
    }

    /// Whether the resource is stored.
    pub(crate) fn stores(self) -> bool {
        self != Self::Refused
    }
}

/// What [`judge`] decided: the verdict and the issues to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Judgement {
    /// The verdict.
    pub(crate) verdict: Verdict,
    /// The findings as reported under the policy, in the validator's order.
    pub(crate) issues: Vec<Issue>,
    /// The rule of each error the operator downgraded, once per issue.
    pub(crate) downgraded: Vec<String>,
}

impl Judgement {
    /// Refuses what the policy would have stored, for `reason` (a document
    /// the gateway cannot store whatever the policy), added to the issues.
    pub(crate) fn refuse(&mut self, reason: Issue) {
        self.verdict = Verdict::Refused;
        self.issues.push(reason);
    }

    /// Under `report` with errors, the information issue the sender gets
    /// after them: `stored` (a push) or only what a push would do
    /// (`$validate`). `None` for any other verdict.
    pub(crate) fn report_note(&self, service: &str, stored: bool) -> Option<Issue> {
        if self.verdict != Verdict::AcceptedWithErrors {
            return None;
        }
        let what = if stored {
            "stored despite"
        } else {
            "a push of this document would be stored despite"
        };
        Some(Issue::new(
            Severity::Information,
            IssueType::Informational,
            format!(
                "{what} {} error(s): this gateway's operator reports validation errors of the \
                 service {service} instead of refusing the document (policy \"report\")",
                self.error_count()
            ),
        ))
    }

    /// How many issues are errors (or fatal).
    pub(crate) fn error_count(&self) -> usize {
        self.issues.iter().filter(|i| i.severity.is_error()).count()
    }
}

/// The policy step: the validator's `findings` on a resource pushed to
/// `service`, under the service's policy and the gateway's
/// unknown-extensions policy.
///
/// 1. An unknown-extension finding takes the severity `unknown_extensions`
///    gives its URL ([`UnknownExtensions::severity_for`]).
/// 2. An error whose rule the service downgrades becomes a warning; its
///    diagnostics say so (it stays visible).
/// 3. Errors left: `enforce` refuses, `report` accepts (the caller adds
///    [`Judgement::report_note`]). None: accepted.
pub(crate) fn judge(
    findings: Vec<Issue>,
    service: &str,
    policy: &ServicePolicy,
    unknown_extensions: &UnknownExtensions,
) -> Judgement {
    let mut downgraded = Vec::new();
    let issues: Vec<Issue> = findings
        .into_iter()
        .map(|mut issue| {
            if let Some(url) = ehds_validation::unknown_extension_url(&issue) {
                issue.severity = unknown_extensions.severity_for(url);
                issue.code = if issue.severity == Severity::Information {
                    IssueType::Informational
                } else {
                    IssueType::Extension
                };
            }
            if issue.severity.is_error()
                && let Some(rule) = ehds_validation::rule_of(&issue)
                && policy.downgraded_rules.iter().any(|r| r == rule)
            {
                let rule = rule.to_owned();
                issue.severity = Severity::Warning;
                issue.diagnostics.push_str(&format!(
                    " (an error under {rule}, reported as a warning: this gateway's operator \
                     downgraded {rule} for the service {service})"
                ));
                downgraded.push(rule);
            }
            issue
        })
        .collect();
    let errors = issues.iter().filter(|i| i.severity.is_error()).count();
    let verdict = match (errors, policy.policy) {
        (0, _) => Verdict::Accepted,
        (_, Mode::Report) => Verdict::AcceptedWithErrors,
        (_, Mode::Enforce) => Verdict::Refused,
    };
    Judgement {
        verdict,
        issues,
        downgraded,
    }
}

/// The policy in words, for the CapabilityStatement: e.g. `patient-summary:
/// enforce (errors refuse with 422); laboratory-report: report (…),
/// downgraded to warnings: bdl-7, txt-1`.
pub(crate) fn describe<'a>(
    services: impl Iterator<Item = (&'a str, &'a ServicePolicy)>,
    unknown_extensions: &UnknownExtensions,
) -> String {
    let services: Vec<String> = services
        .map(|(name, policy)| {
            let mode = match policy.policy {
                Mode::Enforce => "enforce (errors refuse the document with 422)",
                Mode::Report => {
                    "report (errors are reported, not enforced: stored, 201, the errors in the \
                     OperationOutcome with Prefer: return=OperationOutcome and on /metrics)"
                }
            };
            if policy.downgraded_rules.is_empty() {
                format!("{name}: {mode}")
            } else {
                format!(
                    "{name}: {mode}; errors of {} downgraded to warnings",
                    policy.downgraded_rules.join(", ")
                )
            }
        })
        .collect();
    let mut text = format!(
        "Validation policy of pushed documents, per service: {}. An extension this gateway \
         holds no definition for is reported as {}",
        services.join("; "),
        unknown_extensions.severity.code()
    );
    if !unknown_extensions.allowed_domains.is_empty() {
        text.push_str(&format!(
            " (information under {})",
            unknown_extensions.allowed_domains.join(", ")
        ));
    }
    text.push_str("; an unknown modifier extension is always an error.");
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const NATIONAL: &str = "http://fhir.example.lu/StructureDefinition/insurer";

    fn findings() -> Vec<Issue> {
        vec![
            Issue::error(IssueType::Invariant, "bdl-7: fullUrl must be unique")
                .at("Bundle.entry[2]"),
            Issue::error(
                IssueType::Invariant,
                "txt-1: element <script> is not permitted",
            ),
            Issue::new(
                Severity::Information,
                IssueType::Informational,
                ehds_validation::unknown_extension_message(NATIONAL),
            ),
            Issue::new(Severity::Warning, IssueType::Invariant, "dom-6: narrative"),
        ]
    }

    fn policy(mode: Mode, rules: &[&str]) -> ServicePolicy {
        ServicePolicy {
            policy: mode,
            downgraded_rules: rules.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    fn severities(judgement: &Judgement) -> Vec<Severity> {
        judgement.issues.iter().map(|i| i.severity).collect()
    }

    #[test]
    fn enforce_refuses_errors_and_keeps_the_findings() {
        let judgement = judge(
            findings(),
            "patient-summary",
            &ServicePolicy::default(),
            &UnknownExtensions::default(),
        );
        assert_eq!(judgement.verdict, Verdict::Refused);
        assert_eq!(judgement.issues, findings());
        assert_eq!(judgement.error_count(), 2);
        assert!(judgement.downgraded.is_empty());
    }

    #[test]
    fn report_stores_despite_errors_and_says_so() {
        let judgement = judge(
            findings(),
            "laboratory-report",
            &policy(Mode::Report, &[]),
            &UnknownExtensions::default(),
        );
        assert_eq!(judgement.verdict, Verdict::AcceptedWithErrors);
        assert!(judgement.verdict.stores());
        // The errors stay errors.
        assert_eq!(judgement.issues, findings());
        assert_eq!(judgement.error_count(), 2);
        let note = judgement.report_note("laboratory-report", true).unwrap();
        assert_eq!(note.severity, Severity::Information);
        assert!(
            note.diagnostics.starts_with("stored despite 2 error(s)"),
            "{}",
            note.diagnostics
        );
        assert!(note.diagnostics.contains("laboratory-report"));
        let note = judgement.report_note("laboratory-report", false).unwrap();
        assert!(
            note.diagnostics
                .starts_with("a push of this document would be stored")
        );
        // No note under enforce.
        let enforced = judge(
            findings(),
            "laboratory-report",
            &ServicePolicy::default(),
            &UnknownExtensions::default(),
        );
        assert_eq!(enforced.report_note("laboratory-report", true), None);
    }

    #[test]
    fn downgraded_rules_become_visible_warnings() {
        let judgement = judge(
            findings(),
            "patient-summary",
            &policy(Mode::Enforce, &["bdl-7", "txt-1"]),
            &UnknownExtensions::default(),
        );
        assert_eq!(judgement.verdict, Verdict::Accepted);
        assert_eq!(
            severities(&judgement),
            [
                Severity::Warning,
                Severity::Warning,
                Severity::Information,
                Severity::Warning
            ]
        );
        assert_eq!(judgement.downgraded, ["bdl-7", "txt-1"]);
        let note = &judgement.issues[0].diagnostics;
        assert!(note.starts_with("bdl-7: fullUrl must be unique"), "{note}");
        assert!(
            note.contains("operator downgraded bdl-7 for the service patient-summary"),
            "{note}"
        );
        assert_eq!(
            judgement.issues[0].expression.as_deref(),
            Some("Bundle.entry[2]")
        );
        // A warning of a downgraded rule is left as it was.
        assert_eq!(judgement.issues[3].diagnostics, "dom-6: narrative");
        // Only the listed rules: one of two downgraded still refuses.
        let judgement = judge(
            findings(),
            "patient-summary",
            &policy(Mode::Enforce, &["bdl-7"]),
            &UnknownExtensions::default(),
        );
        assert_eq!(judgement.verdict, Verdict::Refused);
        assert_eq!(judgement.error_count(), 1);
    }

    #[test]
    fn unknown_extensions_take_the_gateways_policy() {
        let strict = UnknownExtensions {
            severity: Severity::Error,
            allowed_domains: Vec::new(),
        };
        let judgement = judge(
            findings(),
            "patient-summary",
            &policy(Mode::Enforce, &["bdl-7", "txt-1"]),
            &strict,
        );
        assert_eq!(judgement.verdict, Verdict::Refused);
        assert_eq!(judgement.issues[2].severity, Severity::Error);
        assert_eq!(judgement.issues[2].code, IssueType::Extension);
        // Under an allowed domain: information again.
        let allowed = UnknownExtensions {
            severity: Severity::Error,
            allowed_domains: vec!["example.lu".into()],
        };
        let judgement = judge(
            findings(),
            "patient-summary",
            &policy(Mode::Enforce, &["bdl-7", "txt-1"]),
            &allowed,
        );
        assert_eq!(judgement.verdict, Verdict::Accepted);
        assert_eq!(judgement.issues[2].severity, Severity::Information);
        assert_eq!(judgement.issues[2].code, IssueType::Informational);
        // A warning policy never refuses.
        let warn = UnknownExtensions {
            severity: Severity::Warning,
            allowed_domains: Vec::new(),
        };
        let judgement = judge(
            findings(),
            "x",
            &policy(Mode::Enforce, &["bdl-7", "txt-1"]),
            &warn,
        );
        assert_eq!(judgement.verdict, Verdict::Accepted);
        assert_eq!(judgement.issues[2].severity, Severity::Warning);
    }

    #[test]
    fn what_cannot_be_stored_is_refused_under_report_too() {
        let mut judgement = judge(
            findings(),
            "laboratory-report",
            &policy(Mode::Report, &[]),
            &UnknownExtensions::default(),
        );
        let reason = Issue::error(IssueType::Required, "no identifier");
        judgement.refuse(reason.clone());
        assert_eq!(judgement.verdict, Verdict::Refused);
        let mut expected = findings();
        expected.push(reason);
        assert_eq!(judgement.issues, expected);
    }

    #[test]
    fn no_findings_no_errors() {
        let judgement = judge(
            Vec::new(),
            "x",
            &policy(Mode::Report, &[]),
            &UnknownExtensions::default(),
        );
        assert_eq!(judgement.verdict, Verdict::Accepted);
        assert!(judgement.issues.is_empty());
    }

    #[test]
    fn written_policies_are_checked() {
        assert!(
            policy(Mode::Report, &["bdl-7", "ips-pat-1", "xhtml"])
                .check()
                .is_ok()
        );
        let error = policy(Mode::Enforce, &["bdl 7"]).check().unwrap_err();
        assert!(error.contains("not a rule key"), "{error}");
        assert!(policy(Mode::Enforce, &["Patient.name"]).check().is_err());
        assert!(policy(Mode::Enforce, &[""]).check().is_err());
        let error = policy(Mode::Enforce, &["bdl-7", "bdl-7"])
            .check()
            .unwrap_err();
        assert!(error.contains("twice"), "{error}");
        // Unknown policy values are refused when the TOML is read.
        let parsed: Result<ServicePolicy, _> = toml::from_str("policy = \"warn\"");
        assert!(parsed.is_err());
        let parsed: Result<ServicePolicy, _> = toml::from_str("policy = \"report\"\nrules = []");
        assert!(parsed.is_err());
        let parsed: ServicePolicy =
            toml::from_str("policy = \"report\"\ndowngraded_rules = [\"bdl-7\"]").unwrap();
        assert_eq!(parsed, policy(Mode::Report, &["bdl-7"]));
    }

    #[test]
    fn the_description_names_each_service_and_its_downgrades() {
        let enforce = ServicePolicy::default();
        let report = policy(Mode::Report, &["bdl-7", "txt-1"]);
        let text = describe(
            [
                ("patient-summary", &enforce),
                ("laboratory-report", &report),
            ]
            .into_iter(),
            &UnknownExtensions {
                severity: Severity::Warning,
                allowed_domains: vec!["hl7.eu".into()],
            },
        );
        assert!(text.contains("patient-summary: enforce"), "{text}");
        assert!(text.contains("laboratory-report: report"), "{text}");
        assert!(
            text.contains("errors of bdl-7, txt-1 downgraded to warnings"),
            "{text}"
        );
        assert!(
            text.contains("reported as warning (information under hl7.eu)"),
            "{text}"
        );
    }
}
