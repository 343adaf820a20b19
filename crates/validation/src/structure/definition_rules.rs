//! Rules of a StructureDefinition instance (a profile being validated, not
//! one validated against) that Java finds while it generates the profile's
//! snapshot, checked here on the differential against the compiled base.
//!
//! | rule | severity | location | source |
//! | --- | --- | --- | --- |
//! | no `slicing` on the root element of a profile's differential | error | the differential element | Java `StructureDefinitionValidator` ("Slicing is not allowed at the root of a profile") |
//! | the snapshot of a profile (`derivation = constraint`) can be generated: no slicing at the root, and every differential `path` names an element of the base (each segment non-empty; a choice element as `value[x]` or renamed for one of its types; below an element without children, the children of its single type) | error, once (generation stops at the first) | the StructureDefinition | Java `ProfileUtilities.generateSnapshot`, reported by `StructureDefinitionValidator` ("Error generating Snapshot: …") |
//! | the differential of a profile lists its elements in the base's order: an element that comes after one the base puts later has no match in the generated snapshot (judged when every element is the root or one of its children, none sliced or repeated; then the snapshot generator's walk is plain: each base element, in order, takes its differential match from the cursor on and moves the cursor past it) | error at each element left unmatched, and one error for the profile | the differential element; the StructureDefinition | Java `ProfileUtilities.processPaths`/`getDiffMatches` ("No match found for … in the generated snapshot", "… has N element(s) in the differential … that don't have a matching element in the snapshot"), added by `StructureDefinitionValidator.validateStructureDefinition`; fhir-test-cases `ai8` |
//! | a `binding`, `maxLength`, `minValue[x]`/`maxValue[x]`, `minLength`, `maxDecimalPlaces` or `maxSize` only on an element one of whose types can carry it (`can-bind`, `has-length`, `has-range`, `is-continuous`, `has-size`), for elements whose types are listed and at least one known | error | the element (differential or snapshot) | Java `StructureDefinitionValidator.validateElementDefinition` (`SD_ILLEGAL_CHARACTERISTICS`, "This element has a Binding but the types [date] do not make this kind of constraint relevant"), characteristics as its `addCharacteristics`; fhir-test-cases `ai8` |
//!
//! A base the gateway does not hold, a logical model, or a path below an
//! element with several types or a `contentReference` is not judged.

use ehds_fhir::Node;
use ehds_fhir::outcome::{Issue, IssueType};

use super::compile::Structure;

/// The compiled definitions the rules read: implemented by the structure
/// validator, so that this module does not import its parent.
pub(super) trait Definitions {
    /// The definition of `canonical` (a profile's `baseDefinition`).
    fn definition(&self, canonical: &str) -> Option<&Structure>;
    /// The core definition of the datatype `name`.
    fn core_type(&self, name: &str) -> Option<&Structure>;
}

/// Checks the StructureDefinition `sd` (at `path`) and appends issues.
pub(super) fn check(validator: &impl Definitions, sd: &Node, path: &str, issues: &mut Vec<Issue>) {
    for list in ["differential", "snapshot"] {
        let elements = sd
            .get(list)
            .and_then(|d| d.get("element"))
            .map(Node::items)
            .unwrap_or_default();
        for (index, element) in elements.iter().enumerate() {
            characteristics(
                validator,
                element,
                &format!("{path}.{list}.element[{index}]"),
                issues,
            );
        }
    }
    if sd.get("derivation").and_then(Node::as_str) != Some("constraint") {
        return;
    }
    let elements = sd
        .get("differential")
        .and_then(|d| d.get("element"))
        .map(Node::items)
        .unwrap_or_default();
    let base = sd
        .get("baseDefinition")
        .and_then(Node::as_str)
        .and_then(|url| validator.definition(url));
    let mut snapshot_problem: Option<String> = None;
    for (index, element) in elements.iter().enumerate() {
        let Some(element_path) = element.get("path").and_then(Node::as_str) else {
            continue;
        };
        if !element_path.contains('.') && element.get("slicing").is_some() {
            issues.push(
                Issue::error(
                    IssueType::Invalid,
                    "slicing is not allowed at the root of a profile",
                )
                .at(format!("{path}.differential.element[{index}]")),
            );
            snapshot_problem.get_or_insert_with(|| {
                format!("the profile slices its root element ('{element_path}')")
            });
        }
        if snapshot_problem.is_none()
            && let Some(base) = base
            && let Err(problem) = resolve(validator, base, element_path)
        {
            snapshot_problem = Some(format!(
                "differential element {index}: the path '{element_path}' {problem}"
            ));
        }
    }
    if let Some(problem) = snapshot_problem {
        issues.push(
            Issue::error(
                IssueType::Exception,
                format!("the snapshot of this profile cannot be generated from its differential: {problem}"),
            )
            .at(path),
        );
    } else if let Some(base) = base {
        let url = sd.get("url").and_then(Node::as_str).unwrap_or_default();
        out_of_order(base, url, elements, path, issues);
    }
}

/// The differential elements a snapshot generator leaves unmatched because
/// they are out of the base's order (see the module's table), reported as
/// Java reports them. Only a differential of the root and its children,
/// none sliced or repeated, is judged.
fn out_of_order(
    base: &Structure,
    url: &str,
    elements: &[Node],
    path: &str,
    issues: &mut Vec<Issue>,
) {
    let Some(root) = base.elements.first() else {
        return;
    };
    // The base position of each differential element.
    let mut positions = Vec::with_capacity(elements.len());
    for element in elements {
        let text = |key: &str| element.get(key).and_then(Node::as_str);
        if element.get("sliceName").is_some() || text("id").is_some_and(|id| id.contains(':')) {
            return;
        }
        let Some(element_path) = text("path") else {
            return;
        };
        let position = if element_path == root.path {
            Some(0)
        } else {
            element_path
                .strip_prefix(root.path.as_str())
                .and_then(|rest| rest.strip_prefix('.'))
                .filter(|name| !name.contains('.'))
                .and_then(|name| {
                    root.children.iter().copied().find(|&c| {
                        base.elements.get(c).is_some_and(|e| {
                            e.matches(name).is_some()
                                || (e.is_choice
                                    && name.strip_suffix("[x]") == Some(e.name.as_str()))
                        })
                    })
                })
        };
        let Some(position) = position else {
            return;
        };
        if positions.contains(&position) {
            return;
        }
        positions.push(position);
    }
    // Each base element in order takes its match from the cursor on.
    let mut order: Vec<(usize, usize)> = positions.iter().copied().zip(0..).collect();
    order.sort_unstable();
    let mut cursor = 0;
    let mut unmatched = Vec::new();
    for (_, at) in order {
        if at >= cursor {
            cursor = at + 1;
        } else {
            unmatched.push(at);
        }
    }
    if unmatched.is_empty() {
        return;
    }
    unmatched.sort_unstable();
    let mut ids = Vec::new();
    for &at in &unmatched {
        let element = elements.get(at);
        let element_path = element
            .and_then(|e| e.get("path"))
            .and_then(Node::as_str)
            .unwrap_or_default();
        ids.push(
            element
                .and_then(|e| e.get("id"))
                .and_then(Node::as_str)
                .unwrap_or(element_path)
                .to_owned(),
        );
        issues.push(
            Issue::error(
                IssueType::Structure,
                format!(
                    "no match found for {element_path} in the generated snapshot: the differential lists it after an element the base puts later (the differential must follow the base's order)"
                ),
            )
            .at(format!("{path}.differential.element[{at}]")),
        );
    }
    issues.push(
        Issue::error(
            IssueType::Structure,
            format!(
                "the profile {url} has {} element(s) in the differential ({}) that have no matching element in the snapshot",
                unmatched.len(),
                ids.join(", ")
            ),
        )
        .at(path),
    );
}

/// The characteristics of a datatype as Java infers them for a type whose
/// definition does not declare them (R4 core declares none):
/// `StructureDefinitionValidator.addCharacteristics`.
fn type_characteristics(code: &str) -> &'static [&'static str] {
    match code {
        "integer" | "integer64" | "date" | "positiveInt" | "unsignedInt" => {
            &["has-range", "has-length"]
        }
        "decimal" | "instant" | "dateTime" | "time" => {
            &["has-range", "is-continuous", "has-length"]
        }
        "base64Binary" => &["has-size"],
        "string" => &["has-length", "do-translations", "can-bind"],
        "uri" | "code" | "oid" | "url" | "uuid" => &["has-length", "can-bind"],
        "canonical" => &["has-target", "has-length"],
        "id" => &["has-length"],
        "markdown" => &["do-translations", "has-length"],
        "Address" => &["do-translations"],
        "Age" | "Distance" | "Duration" | "Quantity" | "MoneyQuantity" | "SimpleQuantity" => {
            &["has-range", "is-continuous", "can-bind", "has-units"]
        }
        "Attachment" => &["has-size", "do-translations"],
        "CodeableConcept" | "Coding" => &["can-bind", "do-translations"],
        "CodeableReference" => &["has-target", "can-bind", "do-translations"],
        "Count" => &["has-range"],
        "Money" => &["has-range", "is-continuous"],
        "Range" => &["has-units", "can-bind"],
        "Ratio" | "RatioRange" => &["has-units"],
        "Reference" => &["has-target"],
        "Extension" => &["can-bind"],
        _ => &[],
    }
}

/// The constraints of an element that need a characteristic of its types
/// (see the module's table), as Java checks them in
/// `StructureDefinitionValidator.validateElementDefinition`.
fn characteristics(
    validator: &impl Definitions,
    element: &Node,
    at: &str,
    issues: &mut Vec<Issue>,
) {
    let Some(element_path) = element.get("path").and_then(Node::as_str) else {
        return;
    };
    let mut codes: Vec<&str> = Vec::new();
    let mut known = false;
    let mut held: Vec<&'static str> = Vec::new();
    if !element_path.contains('.') {
        // The root's type is the path.
        codes.push(element_path);
        known = true;
        held.extend(type_characteristics(element_path));
    }
    for type_node in element.get("type").map(Node::items).unwrap_or_default() {
        let fhir_type = type_node
            .get("extension")
            .map(Node::items)
            .unwrap_or_default()
            .iter()
            .find(|e| {
                e.get("url").and_then(Node::as_str)
                    == Some("http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type")
            })
            .and_then(|e| {
                e.get("valueUrl")
                    .or_else(|| e.get("valueUri"))
                    .and_then(Node::as_str)
            });
        let Some(code) = fhir_type.or_else(|| type_node.get("code").and_then(Node::as_str)) else {
            continue;
        };
        if code.is_empty() {
            continue;
        }
        codes.push(code);
        if validator.core_type(code).is_some() {
            known = true;
            held.extend(type_characteristics(code));
        }
    }
    if codes.is_empty() || !known {
        return;
    }
    let has_extension = |url: &str| {
        element
            .get("extension")
            .map(Node::items)
            .unwrap_or_default()
            .iter()
            .any(|e| e.get("url").and_then(Node::as_str) == Some(url))
    };
    let has_prefixed = |prefix: &str| {
        element.as_object().is_some_and(|members| {
            members.iter().any(|m| {
                m.key
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
            })
        })
    };
    let constraints = [
        ("Binding", element.get("binding").is_some(), "can-bind"),
        (
            "MaxLength",
            element.get("maxLength").is_some(),
            "has-length",
        ),
        (
            "MinLength Extension",
            has_extension("http://hl7.org/fhir/StructureDefinition/minLength"),
            "has-length",
        ),
        ("MinValue", has_prefixed("minValue"), "has-range"),
        ("MaxValue", has_prefixed("maxValue"), "has-range"),
        (
            "Max Decimal Places Extension",
            has_extension("http://hl7.org/fhir/StructureDefinition/maxDecimalPlaces"),
            "is-continuous",
        ),
        (
            "Max Size",
            has_extension("http://hl7.org/fhir/StructureDefinition/maxSize"),
            "has-size",
        ),
    ];
    for (what, present, needed) in constraints {
        if present && !held.contains(&needed) {
            issues.push(
                Issue::error(
                    IssueType::BusinessRule,
                    format!(
                        "{element_path}: this element has a {what} but the types [{}] do not make this kind of constraint relevant",
                        codes.join(", ")
                    ),
                )
                .at(at),
            );
        }
    }
}

/// Whether `path` names an element of `base` (see the module's table);
/// `Ok` when it cannot be judged.
fn resolve(validator: &impl Definitions, base: &Structure, path: &str) -> Result<(), String> {
    let mut segments = path.split('.');
    let Some(root) = base.elements.first() else {
        return Ok(());
    };
    if segments.next() != Some(root.path.as_str()) {
        // sdf rules report a differential of another type.
        return Ok(());
    }
    let mut structure = base;
    let mut at = 0usize;
    for segment in segments {
        if segment.is_empty() {
            return Err("has an empty name portion ('..')".into());
        }
        let Some(element) = structure.elements.get(at) else {
            return Ok(());
        };
        if element.content_reference.is_some() {
            return Ok(());
        }
        if element.children.is_empty() {
            // Below a datatype: its own definition's children.
            let [only] = element.types.as_slice() else {
                return Ok(());
            };
            let Some(datatype) = validator.core_type(&only.code) else {
                return Ok(());
            };
            structure = datatype;
            at = 0;
        }
        let Some(parent) = structure.elements.get(at) else {
            return Ok(());
        };
        let child = parent.children.iter().copied().find(|&c| {
            structure.elements.get(c).is_some_and(|e| {
                e.matches(segment).is_some()
                    || (e.is_choice && segment.strip_suffix("[x]") == Some(e.name.as_str()))
            })
        });
        match child {
            Some(c) => at = c,
            None => {
                return Err(format!(
                    "names no element of the base ('{segment}' is not a child of '{}')",
                    parent.path
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structure::StructureValidator;

    fn validator() -> StructureValidator {
        let registry =
            ehds_profiles::Registry::load_root(&ehds_test_support::repo_root().join("profiles"))
                .unwrap();
        StructureValidator::new(&registry).0
    }

    fn profile(differential: &str) -> Node {
        let text = format!(
            r#"{{"resourceType":"StructureDefinition","url":"http://example.org/p","type":"Patient","kind":"resource","derivation":"constraint","baseDefinition":"http://hl7.org/fhir/StructureDefinition/Patient","differential":{{"element":[{differential}]}}}}"#
        );
        ehds_fhir::json::parse(text.as_bytes()).unwrap()
    }

    fn located(issues: &[Issue]) -> Vec<(String, &str)> {
        issues
            .iter()
            .map(|i| {
                let rule = if i.diagnostics.contains("do not make this kind") {
                    "characteristics"
                } else if i.diagnostics.contains("no match")
                    || i.diagnostics.contains("no matching")
                {
                    "order"
                } else {
                    "other"
                };
                (i.expression.clone().unwrap_or_default(), rule)
            })
            .collect()
    }

    #[test]
    fn a_differential_out_of_the_base_order_and_a_binding_on_a_date() {
        let validator = validator();
        // fhir-test-cases ai8: birthDate before identifier, bound.
        let sd = profile(
            r#"{"id":"Patient.birthDate","path":"Patient.birthDate","type":[{"code":"date"}],"binding":{"strength":"required","valueSet":"http://hl7.org/fhir/ValueSet/birthDate"}},
               {"id":"Patient.identifier","path":"Patient.identifier","min":1}"#,
        );
        let mut issues = Vec::new();
        check(&validator, &sd, "StructureDefinition", &mut issues);
        let mut found = located(&issues);
        found.sort();
        assert_eq!(
            found,
            vec![
                ("StructureDefinition".to_owned(), "order"),
                (
                    "StructureDefinition.differential.element[0]".to_owned(),
                    "characteristics"
                ),
                (
                    "StructureDefinition.differential.element[0]".to_owned(),
                    "order"
                ),
            ],
            "{issues:#?}"
        );
    }

    #[test]
    fn an_ordered_differential_with_bindable_types_passes() {
        let validator = validator();
        let sd = profile(
            r#"{"id":"Patient","path":"Patient"},
               {"id":"Patient.identifier","path":"Patient.identifier","min":1},
               {"id":"Patient.gender","path":"Patient.gender","type":[{"code":"code"}],"binding":{"strength":"required","valueSet":"http://hl7.org/fhir/ValueSet/administrative-gender"}},
               {"id":"Patient.birthDate","path":"Patient.birthDate","minValueDate":"1900-01-01"},
               {"id":"Patient.deceased[x]","path":"Patient.deceased[x]","type":[{"code":"boolean"},{"code":"dateTime"}],"maxValueDateTime":"2100-01-01"}"#,
        );
        let mut issues = Vec::new();
        check(&validator, &sd, "StructureDefinition", &mut issues);
        assert!(issues.is_empty(), "{issues:#?}");
    }

    #[test]
    fn sliced_or_nested_differentials_are_not_judged_for_order() {
        let validator = validator();
        for differential in [
            r#"{"id":"Patient.name","path":"Patient.name"},
               {"id":"Patient.identifier:a","path":"Patient.identifier","sliceName":"a"}"#,
            r#"{"id":"Patient.name","path":"Patient.name"},
               {"id":"Patient.identifier.system","path":"Patient.identifier.system"}"#,
        ] {
            let mut issues = Vec::new();
            check(
                &validator,
                &profile(differential),
                "StructureDefinition",
                &mut issues,
            );
            assert!(issues.is_empty(), "{differential}: {issues:#?}");
        }
        // A length limit on a Reference is reported wherever it is.
        let mut issues = Vec::new();
        let sd = profile(
            r#"{"id":"Patient.managingOrganization","path":"Patient.managingOrganization","type":[{"code":"Reference"}],"maxLength":10}"#,
        );
        check(&validator, &sd, "StructureDefinition", &mut issues);
        assert_eq!(
            located(&issues),
            vec![(
                "StructureDefinition.differential.element[0]".to_owned(),
                "characteristics"
            )]
        );
    }
}
