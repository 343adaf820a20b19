//! The compact form of a conformance resource: its JSON without what only a
//! person reads (narrative, descriptions, definitions, comments, mappings,
//! examples, designations), minified. The validator never reads those
//! members (structure compilation, snapshot generation, FHIRPath model and
//! terminology read ids, paths, types, cardinalities, slicing, bindings,
//! constraints, fixed/pattern values, `short`, code system concepts with
//! their `display` and properties, the codes of value sets); leaving them
//! out makes the shipped packages less than half their size and their
//! parsing at start-up as much shorter.
//!
//! Shared by loading at run time (operator-added packages) and the build
//! script that compiles the shipped packages (it includes this file), so
//! both produce the same bytes.

use ehds_fhir::json::{Json, Node};

/// Members of a resource (the root object) only a person reads (R4
/// resource pages: `text` is the narrative; the others are the
/// `description`/`purpose`/`copyright`/`contact`/`useContext`/
/// `jurisdiction` of every canonical resource, `mapping` of a
/// StructureDefinition).
const RESOURCE_DOCUMENTATION: [&str; 8] = [
    "text",
    "description",
    "purpose",
    "copyright",
    "contact",
    "useContext",
    "jurisdiction",
    "mapping",
];

/// Members of an ElementDefinition only a person reads (R4
/// elementdefinition.html: definition, comment, requirements, alias,
/// meaningWhenMissing, orderMeaning, isModifierReason, example, mapping).
const ELEMENT_DOCUMENTATION: [&str; 9] = [
    "definition",
    "comment",
    "requirements",
    "alias",
    "meaningWhenMissing",
    "orderMeaning",
    "isModifierReason",
    "example",
    "mapping",
];

/// Where a member sits, which decides what of it is documentation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// The resource itself.
    Resource,
    /// `snapshot` or `differential` of a StructureDefinition.
    ElementList,
    /// An ElementDefinition.
    Element,
    /// `ElementDefinition.constraint`.
    Constraint,
    /// `ElementDefinition.binding`.
    Binding,
    /// `CodeSystem.concept` (nested).
    Concept,
    /// `ValueSet.compose`.
    Compose,
    /// `ValueSet.compose.include` / `exclude`.
    Include,
    /// `ValueSet.compose.include.concept`, `ValueSet.expansion`'s
    /// `contains` (nested): their display and designations (a value set
    /// says which codes; the display a code has is its code system's,
    /// `CodeSystem.concept.display`, which is kept).
    Designated,
    /// `ValueSet.expansion`.
    Expansion,
    /// Anything else: kept whole.
    Other,
}

/// What `key` inside `place` is, or `None` when it is documentation left out.
fn child(place: Place, key: &str) -> Option<Place> {
    let documentation: &[&str] = match place {
        Place::Resource => &RESOURCE_DOCUMENTATION,
        Place::Element => &ELEMENT_DOCUMENTATION,
        Place::Constraint => &["xpath", "requirements"],
        Place::Binding => &["description"],
        Place::Concept => &["definition", "designation"],
        Place::Designated => &["designation", "display"],
        _ => &[],
    };
    if documentation.contains(&key) {
        return None;
    }
    Some(match (place, key) {
        (Place::Resource, "snapshot" | "differential") => Place::ElementList,
        (Place::Resource, "concept") => Place::Concept,
        (Place::Resource, "compose") => Place::Compose,
        (Place::Resource, "expansion") => Place::Expansion,
        (Place::ElementList, "element") => Place::Element,
        (Place::Element, "constraint") => Place::Constraint,
        (Place::Element, "binding") => Place::Binding,
        (Place::Concept, "concept") => Place::Concept,
        (Place::Compose, "include" | "exclude") => Place::Include,
        (Place::Include, "concept") => Place::Designated,
        (Place::Expansion | Place::Designated, "contains") => Place::Designated,
        _ => Place::Other,
    })
}

/// The compact JSON of a parsed resource whose source is `bytes` (the
/// bytes `root` was parsed from): members in source order, strings and
/// numbers exactly as written, no insignificant whitespace.
pub fn compact(bytes: &[u8], root: &Node) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() / 3);
    write(bytes, root, Place::Resource, &mut out);
    out
}

fn write(bytes: &[u8], node: &Node, place: Place, out: &mut Vec<u8>) {
    match &node.value {
        Json::Object(members) => {
            out.push(b'{');
            let mut first = true;
            for member in members {
                let Some(inner) = child(place, &member.key) else {
                    continue;
                };
                if !first {
                    out.push(b',');
                }
                first = false;
                out.extend_from_slice(raw(bytes, member.key_span.start, member.key_span.end));
                out.push(b':');
                write(bytes, &member.node, inner, out);
            }
            out.push(b'}');
        }
        Json::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(bytes, item, place, out);
            }
            out.push(b']');
        }
        _ => out.extend_from_slice(raw(bytes, node.span.start, node.span.end)),
    }
}

/// The source text of a span (empty if it does not lie in `bytes`, which a
/// span from parsing `bytes` always does).
fn raw(bytes: &[u8], start: u32, end: u32) -> &[u8] {
    let (Ok(start), Ok(end)) = (usize::try_from(start), usize::try_from(end)) else {
        return &[];
    };
    bytes.get(start..end).unwrap_or_default()
}
