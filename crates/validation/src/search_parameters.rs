//! Rules of SearchParameter and CapabilityStatement resources that need
//! the SearchParameters they name: those of FHIR R4 core, held as a small
//! table (`search_parameters/r4-core.tsv`: id, type and base of each of the
//! 1 400), read on first use only, so that a gateway that never validates a
//! conformance resource keeps no index in memory. (The profile registry
//! does not keep SearchParameters.)
//!
//! | rule | severity | location | source |
//! | --- | --- | --- | --- |
//! | SearchParameter: each top-level term of `expression` (`A.b \| C.d`) that starts with a resource type starts with one of `base` | error | `SearchParameter.expression` | Java `SearchParameterValidator.checkExpression` (`FHIRPathEngine.checkOnTypes` on the bases fails: `ED_SEARCH_EXPRESSION_ERROR`), for this one case of its type checking |
//! | SearchParameter with `derivedFrom` an R4 core SearchParameter: each `base` is a base of it (or it is on `Resource`) | error | `SearchParameter` | Java `SearchParameterValidator.validateSearchParameter` (`SEARCHPARAMETER_BASE_WRONG`) |
//! | … and `type` is its type | error | `SearchParameter` | Java `SEARCHPARAMETER_TYPE_WRONG` |
//! | … an R4 core `derivedFrom` that does not exist | warning | `SearchParameter` | Java `SEARCHPARAMETER_NOTFOUND` |
//! | SearchParameter of type `composite`: two or more `component`s | error | `SearchParameter` | Java `SEARCHPARAMETER_MISSING_COMPONENTS` |
//! | CapabilityStatement `rest.resource.searchParam` whose `definition` is an R4 core SearchParameter: its `type` is that SearchParameter's | error | the `searchParam` | Java `InstanceValidator.validateCapabilityStatement` (`CAPABALITYSTATEMENT_CS_SP_WRONGTYPE`) |
//!
//! Not checked: Java's comparison of `expression` with the `derivedFrom`'s
//! (a warning), and the rest of its FHIRPath type checking of `expression`.

use std::sync::OnceLock;

use ehds_fhir::Node;
use ehds_fhir::outcome::{Issue, IssueType, Severity};

/// The canonical URL prefix of R4 core SearchParameters.
const CORE: &str = "http://hl7.org/fhir/SearchParameter/";

/// The table, `id \t type \t bases` per line, sorted by id.
const R4_CORE: &str = include_str!("search_parameters/r4-core.tsv");

/// One R4 core SearchParameter: its type and bases.
#[derive(Debug, Clone, Copy)]
struct CoreParameter {
    id: &'static str,
    kind: &'static str,
    bases: &'static str,
}

impl CoreParameter {
    fn has_base(&self, base: &str) -> bool {
        self.bases.split(' ').any(|b| b == base)
    }
}

/// The R4 core SearchParameter named by `canonical` (`…|4.0.1` allowed).
fn core_parameter(canonical: &str) -> Option<CoreParameter> {
    static TABLE: OnceLock<Vec<CoreParameter>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        R4_CORE
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|line| {
                let mut fields = line.split('\t');
                Some(CoreParameter {
                    id: fields.next()?,
                    kind: fields.next()?,
                    bases: fields.next().unwrap_or_default(),
                })
            })
            .collect()
    });
    let id = canonical.strip_prefix(CORE)?;
    let id = match id.split_once('|') {
        Some((id, "4.0.1")) => id,
        Some(_) => return None,
        None => id,
    };
    let at = table.binary_search_by(|p| p.id.cmp(id)).ok()?;
    table.get(at).copied()
}

/// Checks a SearchParameter or CapabilityStatement `resource` (at `path`)
/// and appends issues; `is_resource_type` tells R4 resource type names.
pub fn check(
    resource: &Node,
    resource_type: &str,
    path: &str,
    is_resource_type: &dyn Fn(&str) -> bool,
    issues: &mut Vec<Issue>,
) {
    match resource_type {
        "SearchParameter" => check_search_parameter(resource, path, is_resource_type, issues),
        "CapabilityStatement" => check_capability_statement(resource, path, issues),
        _ => {}
    }
}

fn strings(node: Option<&Node>) -> Vec<&str> {
    node.map(Node::items)
        .unwrap_or_default()
        .iter()
        .filter_map(Node::as_str)
        .collect()
}

fn check_search_parameter(
    resource: &Node,
    path: &str,
    is_resource_type: &dyn Fn(&str) -> bool,
    issues: &mut Vec<Issue>,
) {
    let bases = strings(resource.get("base"));
    let kind = resource.get("type").and_then(Node::as_str);
    if let Some(expression) = resource.get("expression").and_then(Node::as_str)
        && !bases.is_empty()
        && !bases
            .iter()
            .any(|b| matches!(*b, "Resource" | "DomainResource"))
    {
        for term in top_level_terms(expression) {
            let name_end = term
                .find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(term.len());
            let name = term.get(..name_end).unwrap_or_default();
            if name.starts_with(|c: char| c.is_ascii_uppercase())
                && is_resource_type(name)
                && !matches!(name, "Resource" | "DomainResource")
                && !bases.contains(&name)
            {
                issues.push(
                    Issue::error(
                        IssueType::Invalid,
                        format!(
                            "the search expression names the resource type '{name}', which is not one of the SearchParameter's bases ({})",
                            bases.join(", ")
                        ),
                    )
                    .at(format!("{path}.expression")),
                );
                // Java's type checking stops at the first failure.
                break;
            }
        }
    }
    if let Some(master) = resource.get("derivedFrom").and_then(Node::as_str)
        && master.starts_with(CORE)
    {
        match core_parameter(master) {
            None => issues.push(
                Issue::new(
                    Severity::Warning,
                    IssueType::BusinessRule,
                    format!("the SearchParameter {master} this one is derived from is not an R4 core SearchParameter"),
                )
                .at(path),
            ),
            Some(core) => {
                if !core.has_base("Resource") {
                    for base in bases.iter().filter(|b| !core.has_base(b)) {
                        issues.push(
                            Issue::error(
                                IssueType::BusinessRule,
                                format!("the resource type {base} is not a base of the SearchParameter this one is derived from ({master})"),
                            )
                            .at(path),
                        );
                    }
                }
                if let Some(kind) = kind
                    && kind != core.kind
                {
                    issues.push(
                        Issue::error(
                            IssueType::BusinessRule,
                            format!(
                                "the type {kind} differs from the type {} of the SearchParameter this one is derived from ({master})",
                                core.kind
                            ),
                        )
                        .at(path),
                    );
                }
            }
        }
    }
    if kind == Some("composite") && resource.get("component").map_or(0, |c| c.items().len()) < 2 {
        issues.push(
            Issue::error(
                IssueType::BusinessRule,
                "a SearchParameter of type 'composite' must define two or more components",
            )
            .at(path),
        );
    }
}

/// The terms of `expression` joined by `|` outside parentheses, brackets
/// and string literals, trimmed.
fn top_level_terms(expression: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut depth = 0usize;
    let mut quoted: Option<char> = None;
    let mut start = 0usize;
    for (at, c) in expression.char_indices() {
        match (quoted, c) {
            (Some(q), c) if c == q => quoted = None,
            (Some(_), _) => {}
            (None, '\'' | '`' | '"') => quoted = Some(c),
            (None, '(' | '[' | '{') => depth = depth.saturating_add(1),
            (None, ')' | ']' | '}') => depth = depth.saturating_sub(1),
            (None, '|') if depth == 0 => {
                terms.push(expression.get(start..at).unwrap_or_default().trim());
                start = at.saturating_add(1);
            }
            _ => {}
        }
    }
    terms.push(expression.get(start..).unwrap_or_default().trim());
    terms
}

fn check_capability_statement(resource: &Node, path: &str, issues: &mut Vec<Issue>) {
    let rests = resource.get("rest").map(Node::items).unwrap_or_default();
    for (r, rest) in rests.iter().enumerate() {
        let resources = rest.get("resource").map(Node::items).unwrap_or_default();
        for (i, declared) in resources.iter().enumerate() {
            let parameters = declared
                .get("searchParam")
                .map(Node::items)
                .unwrap_or_default();
            for (p, parameter) in parameters.iter().enumerate() {
                let (Some(definition), Some(kind)) = (
                    parameter.get("definition").and_then(Node::as_str),
                    parameter.get("type").and_then(Node::as_str),
                ) else {
                    continue;
                };
                if let Some(core) = core_parameter(definition)
                    && core.kind != kind
                {
                    issues.push(
                        Issue::error(
                            IssueType::Invalid,
                            format!(
                                "type mismatch: the SearchParameter {definition} is of type {}, but the type here is {kind}",
                                core.kind
                            ),
                        )
                        .at(format!("{path}.rest[{r}].resource[{i}].searchParam[{p}]")),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_json(json: &str) -> Vec<(Severity, String)> {
        let node = ehds_fhir::json::parse(json.as_bytes()).unwrap();
        let resource_type = node.get("resourceType").and_then(Node::as_str).unwrap();
        let mut issues = Vec::new();
        let is_resource = |t: &str| matches!(t, "Patient" | "Organization");
        check(
            &node,
            resource_type,
            resource_type,
            &is_resource,
            &mut issues,
        );
        issues
            .into_iter()
            .map(|i| (i.severity, i.expression.unwrap_or_default()))
            .collect()
    }

    #[test]
    fn the_table_holds_r4_core() {
        let name = core_parameter("http://hl7.org/fhir/SearchParameter/Organization-name").unwrap();
        assert_eq!((name.kind, name.bases), ("string", "Organization"));
        assert!(
            core_parameter("http://hl7.org/fhir/SearchParameter/clinical-code|4.0.1").is_some()
        );
        assert!(
            core_parameter("http://hl7.org/fhir/SearchParameter/clinical-code|5.0.0").is_none()
        );
        assert!(core_parameter("http://hl7.org/fhir/SearchParameter/nothing").is_none());
        assert!(core_parameter("http://example.org/SearchParameter/Organization-name").is_none());
    }

    /// fhir-test-cases `sp-diff-type`, `sp-diff-base` and `sp-composite`.
    #[test]
    fn search_parameters_agree_with_what_they_derive_from() {
        let sp = |base: &str, kind: &str, expression: &str| {
            format!(
                r#"{{"resourceType":"SearchParameter","derivedFrom":"http://hl7.org/fhir/SearchParameter/Organization-name",
                   "base":["{base}"],"type":"{kind}","expression":"{expression}"}}"#
            )
        };
        let expression = "Organization.name | Organization.alias";
        assert!(check_json(&sp("Organization", "string", expression)).is_empty());
        assert_eq!(
            check_json(&sp("Organization", "token", expression)),
            [(Severity::Error, "SearchParameter".to_owned())]
        );
        assert_eq!(
            check_json(&sp("Patient", "string", expression)),
            [
                (Severity::Error, "SearchParameter.expression".to_owned()),
                (Severity::Error, "SearchParameter".to_owned()),
            ]
        );
        // Only terms starting with a resource type name are read.
        assert_eq!(
            check_json(&sp(
                "Patient",
                "string",
                "(Patient.name | Organization.x).first() | name"
            )),
            [(Severity::Error, "SearchParameter".to_owned())]
        );
        assert_eq!(
            check_json(
                r#"{"resourceType":"SearchParameter","type":"composite","component":[{"definition":"x"}]}"#
            ),
            [(Severity::Error, "SearchParameter".to_owned())]
        );
    }

    /// fhir-test-cases `capstmt`.
    #[test]
    fn capability_statement_search_params_have_their_definitions_type() {
        let found = check_json(
            r#"{"resourceType":"CapabilityStatement","rest":[{"resource":[{"searchParam":[
                {"name":"clinical-status","definition":"http://hl7.org/fhir/SearchParameter/AllergyIntolerance-clinical-status","type":"date"},
                {"name":"code","definition":"http://hl7.org/fhir/SearchParameter/clinical-code","type":"token"}]}]}]}"#,
        );
        assert_eq!(
            found,
            [(
                Severity::Error,
                "CapabilityStatement.rest[0].resource[0].searchParam[0]".to_owned()
            )]
        );
    }
}
