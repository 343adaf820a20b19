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

/// Renders issues as an OperationOutcome JSON document through fhir-sdk's
/// typed R4B model.
#[cfg(feature = "typed")]
pub fn render(issues: &[Issue]) -> Result<Vec<u8>, OutcomeRenderError> {
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
