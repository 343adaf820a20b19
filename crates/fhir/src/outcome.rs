//! OperationOutcome issues (<http://hl7.org/fhir/R4/operationoutcome.html>):
//! the one shape every finding and every refusal takes.

/// `OperationOutcome.issue.severity` (required binding to IssueSeverity).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Severity {
    /// The issue stopped processing.
    Fatal,
    /// The action failed.
    Error,
    /// The action succeeded, suboptimally.
    Warning,
    /// For information only.
    Information,
}

impl Severity {
    /// The FHIR code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Fatal => "fatal",
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Information => "information",
        }
    }

    /// Fatal or error: the action cannot proceed.
    pub fn is_error(self) -> bool {
        matches!(self, Self::Fatal | Self::Error)
    }
}

/// `OperationOutcome.issue.code` (required binding to IssueType), the codes
/// the gateway uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IssueType {
    /// Structural issue in the content.
    Structure,
    /// A required element is missing.
    Required,
    /// An element or header value is invalid.
    Value,
    /// A content validation rule failed.
    Invariant,
    /// Content invalid against the specification or a profile.
    Invalid,
    /// A code not in the value set it is bound to, or not understood.
    CodeInvalid,
    /// The reference could not be resolved or is of the wrong kind.
    NotFound,
    /// Not supported (content type, operation).
    NotSupported,
    /// An extension that is not acceptable or not recognised.
    Extension,
    /// Business rule violation.
    BusinessRule,
    /// Edit conflict.
    Conflict,
    /// Duplicate record.
    Duplicate,
    /// Content too long (body over the limit).
    TooLong,
    /// Unexpected internal error.
    Exception,
    /// Processing took too long.
    Timeout,
    /// Transient failure: try again.
    Transient,
    /// Authentication needed or failed.
    Login,
    /// Not allowed.
    Forbidden,
    /// Informational note.
    Informational,
    /// Not everything that matched was returned (a search answered in
    /// part).
    Incomplete,
}

impl IssueType {
    /// The FHIR code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Structure => "structure",
            Self::Required => "required",
            Self::Value => "value",
            Self::Invariant => "invariant",
            Self::Invalid => "invalid",
            Self::CodeInvalid => "code-invalid",
            Self::NotFound => "not-found",
            Self::NotSupported => "not-supported",
            Self::Extension => "extension",
            Self::BusinessRule => "business-rule",
            Self::Conflict => "conflict",
            Self::Duplicate => "duplicate",
            Self::TooLong => "too-long",
            Self::Exception => "exception",
            Self::Timeout => "timeout",
            Self::Transient => "transient",
            Self::Login => "login",
            Self::Forbidden => "forbidden",
            Self::Informational => "informational",
            Self::Incomplete => "incomplete",
        }
    }
}

/// One OperationOutcome issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// How bad.
    pub severity: Severity,
    /// What kind.
    pub code: IssueType,
    /// Human-readable explanation (`diagnostics`).
    pub diagnostics: String,
    /// FHIRPath-style location (`expression`), e.g. `Bundle.entry[3].resource`.
    pub expression: Option<String>,
    /// Source position (`location`), e.g. `line 4, column 7`.
    pub location: Option<String>,
    /// A code a receiving system can act on (`details.coding`), e.g. the
    /// eHDSI error code of a cross-border refusal.
    pub details: Option<IssueDetail>,
}

/// `OperationOutcome.issue.details.coding`: one code of a code system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssueDetail {
    /// `coding.system`.
    pub system: &'static str,
    /// `coding.code`.
    pub code: &'static str,
    /// `coding.display`.
    pub display: &'static str,
}

impl Issue {
    /// An issue without a location.
    pub fn new(severity: Severity, code: IssueType, diagnostics: impl Into<String>) -> Self {
        Self {
            severity,
            code,
            diagnostics: diagnostics.into(),
            expression: None,
            location: None,
            details: None,
        }
    }

    /// An error issue.
    pub fn error(code: IssueType, diagnostics: impl Into<String>) -> Self {
        Self::new(Severity::Error, code, diagnostics)
    }

    /// Sets the FHIRPath-style location.
    pub fn at(mut self, expression: impl Into<String>) -> Self {
        self.expression = Some(expression.into());
        self
    }

    /// Sets `details.coding`.
    pub fn with_details(mut self, details: IssueDetail) -> Self {
        self.details = Some(details);
        self
    }

    /// Sets the source position.
    pub fn located(mut self, location: impl Into<String>) -> Self {
        self.location = Some(location.into());
        self
    }
}

impl From<&crate::JsonRejection> for Issue {
    fn from(rejection: &crate::JsonRejection) -> Self {
        let expression = rejection.expression();
        let issue =
            Issue::error(IssueType::Structure, rejection.to_string()).located(rejection.position());
        if expression.is_empty() {
            issue
        } else {
            issue.at(expression)
        }
    }
}

/// Renders issues as an OperationOutcome JSON document, written straight
/// into one buffer sized up front: byte for byte what fhir-sdk's typed R4B
/// model serialises (elements in FHIR order, strings escaped by
/// `serde_json`; a test compares the two), without building a typed
/// `OperationOutcomeIssue` per issue. A `$validate` of a 20 MiB Bundle
/// can report 150 000 issues: through the typed model the OperationOutcome
/// took three copies of every string, its growth doubling the output
/// besides, and that at the request's peak, beside the parsed body.
#[cfg(feature = "typed")]
pub fn render(issues: &[Issue]) -> Result<Vec<u8>, OutcomeRenderError> {
    // An OperationOutcome needs at least one issue (OperationOutcome.issue 1..*).
    let fallback = [Issue::new(
        Severity::Information,
        IssueType::Informational,
        "no issues",
    )];
    let issues = if issues.is_empty() {
        &fallback[..]
    } else {
        issues
    };
    // What each issue takes besides its strings' escaping: the member
    // names and punctuation, 160 bytes with `details`.
    let size = issues.iter().fold(48, |size: usize, issue| {
        size.saturating_add(160)
            .saturating_add(issue.diagnostics.len())
            .saturating_add(issue.expression.as_ref().map_or(0, String::len))
            .saturating_add(issue.location.as_ref().map_or(0, String::len))
            .saturating_add(
                issue
                    .details
                    .map_or(0, |d| d.system.len() + d.code.len() + d.display.len()),
            )
    });
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(br#"{"resourceType":"OperationOutcome","issue":["#);
    for (n, issue) in issues.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"severity":""#);
        out.extend_from_slice(issue.severity.code().as_bytes());
        out.extend_from_slice(br#"","code":""#);
        out.extend_from_slice(issue.code.code().as_bytes());
        out.push(b'"');
        if let Some(details) = &issue.details {
            out.extend_from_slice(br#","details":{"coding":[{"system":"#);
            json_string(&mut out, details.system)?;
            out.extend_from_slice(br#","code":"#);
            json_string(&mut out, details.code)?;
            out.extend_from_slice(br#","display":"#);
            json_string(&mut out, details.display)?;
            out.extend_from_slice(b"}]}");
        }
        out.extend_from_slice(br#","diagnostics":"#);
        json_string(&mut out, &issue.diagnostics)?;
        if let Some(location) = &issue.location {
            out.extend_from_slice(br#","location":["#);
            json_string(&mut out, location)?;
            out.push(b']');
        }
        if let Some(expression) = &issue.expression {
            out.extend_from_slice(br#","expression":["#);
            json_string(&mut out, expression)?;
            out.push(b']');
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

/// `text` as a JSON string, escaped as `serde_json` escapes it.
#[cfg(feature = "typed")]
fn json_string(out: &mut Vec<u8>, text: &str) -> Result<(), OutcomeRenderError> {
    serde_json::to_writer(out, text).map_err(|e| OutcomeRenderError(e.to_string()))
}

/// The reference rendering, through fhir-sdk's typed R4B model: what
/// [`render`] writes must be byte for byte what this gives.
#[cfg(all(test, feature = "typed"))]
fn render_typed(issues: &[Issue]) -> Result<Vec<u8>, OutcomeRenderError> {
    use fhir_sdk::r4b::codes;
    use fhir_sdk::r4b::resources::{OperationOutcome, OperationOutcomeIssue};
    use fhir_sdk::r4b::types::{CodeableConcept, Coding};

    fn severity(s: Severity) -> codes::IssueSeverity {
        match s {
            Severity::Fatal => codes::IssueSeverity::Fatal,
            Severity::Error => codes::IssueSeverity::Error,
            Severity::Warning => codes::IssueSeverity::Warning,
            Severity::Information => codes::IssueSeverity::Information,
        }
    }
    fn issue_type(t: IssueType) -> codes::IssueType {
        match t {
            IssueType::Structure => codes::IssueType::Structure,
            IssueType::Required => codes::IssueType::Required,
            IssueType::Value => codes::IssueType::Value,
            IssueType::Invariant => codes::IssueType::Invariant,
            IssueType::Invalid => codes::IssueType::Invalid,
            IssueType::CodeInvalid => codes::IssueType::CodeInvalid,
            IssueType::NotFound => codes::IssueType::NotFound,
            IssueType::NotSupported => codes::IssueType::NotSupported,
            IssueType::Extension => codes::IssueType::Extension,
            IssueType::BusinessRule => codes::IssueType::BusinessRule,
            IssueType::Conflict => codes::IssueType::Conflict,
            IssueType::Duplicate => codes::IssueType::Duplicate,
            IssueType::TooLong => codes::IssueType::TooLong,
            IssueType::Exception => codes::IssueType::Exception,
            IssueType::Timeout => codes::IssueType::Timeout,
            IssueType::Transient => codes::IssueType::Transient,
            IssueType::Login => codes::IssueType::Login,
            IssueType::Forbidden => codes::IssueType::Forbidden,
            IssueType::Informational => codes::IssueType::Informational,
            IssueType::Incomplete => codes::IssueType::Incomplete,
        }
    }

    let typed: Vec<Option<OperationOutcomeIssue>> = issues
        .iter()
        .map(|issue| {
            let mut builder = OperationOutcomeIssue::builder()
                .severity(severity(issue.severity))
                .code(issue_type(issue.code))
                .diagnostics(issue.diagnostics.clone());
            if let Some(expression) = &issue.expression {
                builder = builder.expression(vec![Some(expression.clone())]);
            }
            if let Some(location) = &issue.location {
                builder = builder.location(vec![Some(location.clone())]);
            }
            if let Some(details) = &issue.details {
                let coding = Coding::builder()
                    .system(details.system.to_owned())
                    .code(details.code.to_owned())
                    .display(details.display.to_owned())
                    .build()?;
                builder = builder.details(
                    CodeableConcept::builder()
                        .coding(vec![Some(coding)])
                        .build()?,
                );
            }
            builder.build().map(Some)
        })
        .collect::<Result<_, _>>()
        .map_err(|e| OutcomeRenderError(e.to_string()))?;
    let outcome = OperationOutcome::builder()
        .issue(typed)
        .build()
        .map_err(|e| OutcomeRenderError(e.to_string()))?;
    serde_json::to_vec(&outcome).map_err(|e| OutcomeRenderError(e.to_string()))
}

/// fhir-sdk refused to build or serialise an OperationOutcome (a bug in the
/// gateway, never caused by input).
#[cfg(feature = "typed")]
#[derive(Debug, thiserror::Error)]
#[error("could not render OperationOutcome: {0}")]
pub struct OutcomeRenderError(String);

#[cfg(all(test, feature = "typed"))]
mod tests {
    use super::*;

    /// [`render`] writes what fhir-sdk's typed model serialises, byte for
    /// byte: every severity and issue type, every optional element alone
    /// and together, and text that needs escaping.
    #[test]
    fn the_streamed_rendering_is_the_typed_models_byte_for_byte() {
        let severities = [
            Severity::Fatal,
            Severity::Error,
            Severity::Warning,
            Severity::Information,
        ];
        let types = [
            IssueType::Structure,
            IssueType::Required,
            IssueType::Value,
            IssueType::Invariant,
            IssueType::Invalid,
            IssueType::CodeInvalid,
            IssueType::NotFound,
            IssueType::NotSupported,
            IssueType::Extension,
            IssueType::BusinessRule,
            IssueType::Conflict,
            IssueType::Duplicate,
            IssueType::TooLong,
            IssueType::Exception,
            IssueType::Timeout,
            IssueType::Transient,
            IssueType::Login,
            IssueType::Forbidden,
            IssueType::Informational,
            IssueType::Incomplete,
        ];
        let texts = [
            "plain",
            "",
            "quote \" backslash \\ slash / tab \t newline \n nul \u{0} del \u{7f}",
            "é, ü, 中文, 😀, \u{2028}\u{2029}",
        ];
        let details = IssueDetail {
            system: "urn:oid:1.3.6.1.4.1.12559.11.10.1.3.2.2.1",
            code: "ERROR_PS_GENERIC",
            display: "a \"quoted\" display",
        };
        let mut issues = Vec::new();
        for (n, severity) in severities.iter().enumerate() {
            for (m, code) in types.iter().enumerate() {
                let text = texts
                    .get((n + m) % texts.len())
                    .copied()
                    .unwrap_or_default();
                let issue = Issue::new(*severity, *code, text);
                let issue = match (n + m) % 5 {
                    0 => issue,
                    1 => issue.at(format!("Bundle.entry[{m}].resource{text}")),
                    2 => issue.located(text),
                    3 => issue.with_details(details),
                    _ => issue
                        .at("Bundle")
                        .located("line 1, column 2")
                        .with_details(details),
                };
                issues.push(issue);
            }
        }
        assert_eq!(
            String::from_utf8(render(&issues).unwrap()).unwrap(),
            String::from_utf8(render_typed(&issues).unwrap()).unwrap()
        );
        for one in &issues {
            let one = std::slice::from_ref(one);
            assert_eq!(render(one).unwrap(), render_typed(one).unwrap());
        }
        // No issue at all: the one information issue an OperationOutcome
        // then needs (OperationOutcome.issue 1..*).
        let no_issues = Issue::new(Severity::Information, IssueType::Informational, "no issues");
        assert_eq!(render(&[]).unwrap(), render_typed(&[no_issues]).unwrap());
    }

    #[test]
    fn renders_a_valid_operation_outcome() {
        let bytes = render(&[Issue::error(IssueType::Structure, "bad")
            .at("Bundle.entry[0]")
            .located("line 1, column 2")])
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["resourceType"], "OperationOutcome");
        assert_eq!(v["issue"][0]["severity"], "error");
        assert_eq!(v["issue"][0]["code"], "structure");
        assert_eq!(v["issue"][0]["expression"][0], "Bundle.entry[0]");
        assert_eq!(v["issue"][0]["location"][0], "line 1, column 2");
        let detailed =
            render(&[
                Issue::error(IssueType::Forbidden, "no").with_details(IssueDetail {
                    system: "urn:example",
                    code: "ERROR_NO_CONSENT",
                    display: "no consent",
                }),
            ])
            .unwrap();
        let d: serde_json::Value = serde_json::from_slice(&detailed).unwrap();
        assert_eq!(
            d["issue"][0]["details"]["coding"][0]["code"],
            "ERROR_NO_CONSENT"
        );
        // What the gateway emits must pass its own ingest rules.
        crate::ReceivedResource::parse(bytes.into()).unwrap();
    }

    #[test]
    fn empty_issue_list_still_renders_one_issue() {
        let v: serde_json::Value = serde_json::from_slice(&render(&[]).unwrap()).unwrap();
        assert_eq!(v["issue"][0]["severity"], "information");
    }
}
