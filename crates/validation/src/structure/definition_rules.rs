//! Rules of a StructureDefinition instance (a profile being validated, not
//! one validated against) that Java finds while it generates the profile's
//! snapshot, checked here on the differential against the compiled base.
//!
//! | rule | severity | location | source |
//! | --- | --- | --- | --- |
//! | no `slicing` on the root element of a profile's differential | error | the differential element | Java `StructureDefinitionValidator` ("Slicing is not allowed at the root of a profile") |
//! | the snapshot of a profile (`derivation = constraint`) can be generated: no slicing at the root, and every differential `path` names an element of the base (each segment non-empty; a choice element as `value[x]` or renamed for one of its types; below an element without children, the children of its single type) | error, once (generation stops at the first) | the StructureDefinition | Java `ProfileUtilities.generateSnapshot`, reported by `StructureDefinitionValidator` ("Error generating Snapshot: …") |
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
