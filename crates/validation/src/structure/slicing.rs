//! Slicing (<http://hl7.org/fhir/R4/profiling.html#slicing>) and fixed /
//! pattern values (<http://hl7.org/fhir/R4/elementdefinition-definitions.html#ElementDefinition.fixed_x__>).
//!
//! | check | source |
//! | --- | --- |
//! | an item belongs to the slice whose discriminators it meets: `value`/`pattern` (fixed or pattern value at the discriminator path), `type`, `profile` (the resource conforms to the profile: validated against it, Java `InstanceValidator.sliceMatches` / `conformsToProfile`), `exists` | ElementDefinition.slicing.discriminator, R4 profiling.html §5.1.0.6 |
//! | each slice's `min`/`max` | ElementDefinition.min/max of the slice |
//! | `rules = closed`: every item belongs to a slice; with `open` an item in no slice is checked against the sliced element only (information naming the profiles it does not conform to) | ElementDefinition.slicing.rules; Java `VALIDATION_VAL_PROFILE_NOTSLICE` |
//! | items of a slice meet the slice's constraints | the slice's element subtree |
//! | `fixed[x]`: the value is exactly the fixed value | ElementDefinition.fixed[x] |
//! | `pattern[x]`: the value contains the pattern | ElementDefinition.pattern[x] |
//!
//! A discriminator the gateway cannot evaluate offline (`resolve()` paths,
//! FHIRPath functions) makes the slicing "not evaluated": slice cardinality
//! and closed rules are then reported as information, never as false errors.

use ehds_fhir::Node;
use ehds_fhir::json::Json;

use super::compile::{ElementDef, Structure};

/// Whether `value` equals `fixed` exactly (members in any order).
pub fn equals_fixed(value: &Node, fixed: &Node) -> bool {
    match (&value.value, &fixed.value) {
        (Json::Object(a), Json::Object(b)) => {
            a.len() == b.len()
                && b.iter().all(|fm| {
                    a.iter()
                        .find(|vm| vm.key == fm.key)
                        .is_some_and(|vm| equals_fixed(&vm.node, &fm.node))
                })
        }
        (Json::Array(a), Json::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| equals_fixed(x, y))
        }
        (a, b) => primitive_equal(a, b),
    }
}

/// Whether `value` contains `pattern`: every member of the pattern is in the
/// value with a matching value, every pattern array item matches some item.
pub fn matches_pattern(value: &Node, pattern: &Node) -> bool {
    match (&value.value, &pattern.value) {
        (Json::Object(a), Json::Object(b)) => b.iter().all(|pm| {
            a.iter()
                .find(|vm| vm.key == pm.key)
                .is_some_and(|vm| matches_pattern(&vm.node, &pm.node))
        }),
        (Json::Array(a), Json::Array(b)) => {
            b.iter().all(|p| a.iter().any(|v| matches_pattern(v, p)))
        }
        // A single pattern value against a repeating instance element.
        (Json::Array(a), _) => a.iter().any(|v| matches_pattern(v, pattern)),
        (a, b) => primitive_equal(a, b),
    }
}

fn primitive_equal(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => {
            x == y || matches!((x.parse::<f64>(), y.parse::<f64>()), (Ok(p), Ok(q)) if p == q)
        }
        _ => a == b,
    }
}

/// Whether `resource` visibly breaks a fixed or pattern value the
/// structure sets on one of its root's children (`Observation.code` with a
/// LOINC pattern), or lacks such a child the structure requires: a cheap
/// "does not conform" before a full conformance walk, which would report
/// the same error (the walk checks every item of an element against its
/// `fixed[x]`/`pattern[x]`, and its minimum).
pub fn breaks_root_values(resource: &Node, structure: &Structure) -> bool {
    let Some(root) = structure.elements.first() else {
        return false;
    };
    root.children.iter().any(|&child| {
        let Some(def) = structure.elements.get(child) else {
            return false;
        };
        if def.is_choice
            || def.slice_name.is_some()
            || (def.fixed.is_none() && def.pattern.is_none())
        {
            return false;
        }
        let items: Vec<&Node> = resource
            .get(&def.name)
            .map(Node::items)
            .unwrap_or_default()
            .iter()
            .filter(|n| n.value != Json::Null)
            .collect();
        if items.is_empty() {
            return def.min > 0;
        }
        items.iter().any(|item| {
            def.fixed.as_ref().is_some_and(|f| !equals_fixed(item, f))
                || def
                    .pattern
                    .as_ref()
                    .is_some_and(|p| !matches_pattern(item, p))
        })
    })
}

/// The outcome of matching one item against one slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceMatch {
    /// The item belongs to the slice.
    Yes,
    /// It does not.
    No,
    /// A discriminator cannot be evaluated offline.
    Unknown,
}

/// Answers whether a resource conforms to a profile; `None` when that
/// cannot be decided (the profile is unknown).
pub type Conforms<'a, 'f> = dyn FnMut(&'a Node, &str) -> Option<bool> + 'f;

/// Whether any node at the dotted discriminator `path` below `item` (`$this`
/// is the item) satisfies `f`, without collecting them; `None` for paths with
/// FHIRPath functions, which are not evaluated offline.
fn any_at<'a>(item: &'a Node, path: &str, f: &mut dyn FnMut(&'a Node) -> bool) -> Option<bool> {
    if path == "$this" {
        return Some(f(item));
    }
    // A byte scan: paths are short, and `str::contains(char)` sets up a
    // searcher per call (this runs for every item of every sliced list).
    if path.bytes().any(|b| b == b'(' || b == b'[') {
        return None;
    }
    Some(any_below(item, path, f))
}

fn any_below<'a>(node: &'a Node, rest: &str, f: &mut dyn FnMut(&'a Node) -> bool) -> bool {
    let (segment, tail) = match rest.bytes().position(|b| b == b'.') {
        Some(dot) => (
            rest.get(..dot).unwrap_or_default(),
            rest.get(dot.saturating_add(1)..),
        ),
        None => (rest, None),
    };
    let Some(child) = node.get(segment) else {
        return false;
    };
    child
        .items()
        .iter()
        .filter(|n| n.value != Json::Null)
        .any(|n| match tail {
            Some(tail) => any_below(n, tail, f),
            None => f(n),
        })
}

/// The first node at `path` below `item` (see [`any_at`]).
fn first_at<'a>(item: &'a Node, path: &str) -> Option<Option<&'a Node>> {
    let mut first = None;
    any_at(item, path, &mut |n| {
        first = Some(n);
        true
    })
    .map(|_| first)
}

/// The element of `structure` at the path of the slicing's discriminator
/// number `discriminator`, below the slice element `slice` (resolved when the
/// structure was compiled).
fn element_below<'s>(
    structure: &'s Structure,
    slice: &ElementDef,
    discriminator: usize,
) -> Option<&'s ElementDef> {
    let index = slice.discriminator_elements.get(discriminator).copied()??;
    structure.elements.get(index)
}

/// Decides whether `item` belongs to `slice` by the slicing's discriminators.
/// `profile_type` names the resource or datatype a profile constrains;
/// `conforms` decides whether a resource conforms to a profile.
pub fn item_matches<'a, 'p>(
    item: &'a Node,
    chosen_type: Option<&str>,
    structure: &Structure,
    sliced: &ElementDef,
    slice: &ElementDef,
    profile_type: &dyn Fn(&str) -> Option<&'p str>,
    conforms: &mut Conforms<'a, '_>,
) -> SliceMatch {
    let Some(slicing) = &sliced.slicing else {
        return SliceMatch::Unknown;
    };
    if slicing.discriminators.is_empty() {
        return SliceMatch::Unknown;
    }
    // Every discriminator but `profile` first: they are cheap, and an item
    // they rule out is never validated against the slice's profile.
    let mut result = SliceMatch::Yes;
    let mut profiles = Vec::new();
    for (number, discriminator) in slicing.discriminators.iter().enumerate() {
        let below = element_below(structure, slice, number);
        let path = discriminator.path.as_str();
        let outcome = match discriminator.kind.as_str() {
            "value" | "pattern" => value_discriminator(item, below, slice, path),
            "type" => type_discriminator(item, chosen_type, below, slice, path),
            "profile" => {
                profiles.push((below, path));
                continue;
            }
            "exists" => exists_discriminator(item, below, path),
            _ => SliceMatch::Unknown,
        };
        match outcome {
            SliceMatch::No => return SliceMatch::No,
            SliceMatch::Unknown => result = SliceMatch::Unknown,
            SliceMatch::Yes => {}
        }
    }
    for (below, path) in profiles {
        match profile_discriminator(item, below, path, profile_type, conforms) {
            SliceMatch::No => return SliceMatch::No,
            SliceMatch::Unknown => result = SliceMatch::Unknown,
            SliceMatch::Yes => {}
        }
    }
    result
}

fn value_discriminator(
    item: &Node,
    below: Option<&ElementDef>,
    slice: &ElementDef,
    path: &str,
) -> SliceMatch {
    if let Some(def) = below {
        if let Some(fixed) = &def.fixed {
            return any_at(item, path, &mut |n| equals_fixed(n, fixed))
                .map_or(SliceMatch::Unknown, verdict);
        }
        if let Some(pattern) = &def.pattern {
            return any_at(item, path, &mut |n| matches_pattern(n, pattern))
                .map_or(SliceMatch::Unknown, verdict);
        }
    }
    // The slice's own fixed or pattern value, read at the discriminator
    // path (`fixedContactPoint: {use: home}` with discriminator `use`), when
    // the snapshot lists no element there (Java reads the value the same
    // way: `InstanceValidator.getCriteriaForDiscriminator` falls back to the
    // slice's fixed/pattern).
    if below.is_none_or(|d| d.fixed.is_none() && d.pattern.is_none())
        && path != "$this"
        && !path.bytes().any(|b| b == b'(' || b == b'[')
    {
        if let Some(value) = slice.fixed.as_ref().and_then(|f| node_at(f, path)) {
            return any_at(item, path, &mut |n| equals_fixed(n, value))
                .map_or(SliceMatch::Unknown, verdict);
        }
        if let Some(value) = slice.pattern.as_ref().and_then(|p| node_at(p, path)) {
            return any_at(item, path, &mut |n| matches_pattern(n, value))
                .map_or(SliceMatch::Unknown, verdict);
        }
    }
    // Extension slices by url: the url is the extension definition's
    // canonical, named by the slice's type profile.
    if path == "url"
        && let Some(url) = slice.types.first().and_then(|t| t.profiles.first())
    {
        return any_at(item, path, &mut |n| n.as_str() == Some(url.as_str()))
            .map_or(SliceMatch::Unknown, verdict);
    }
    SliceMatch::Unknown
}

/// The node at a dotted path inside a fixed or pattern value (the first
/// item of arrays).
fn node_at<'a>(value: &'a Node, path: &str) -> Option<&'a Node> {
    path.split('.').try_fold(value, |node, key| {
        let child = node.get(key)?;
        match &child.value {
            Json::Array(items) => items.first(),
            _ => Some(child),
        }
    })
}

fn type_discriminator(
    item: &Node,
    chosen_type: Option<&str>,
    below: Option<&ElementDef>,
    slice: &ElementDef,
    path: &str,
) -> SliceMatch {
    // A choice element's type is named by its JSON key (`medicationReference`).
    if path == "$this"
        && let Some(chosen) = chosen_type
        && item.get("resourceType").is_none()
    {
        return match slice.types.first() {
            Some(t) => verdict(t.code == chosen),
            None => SliceMatch::Unknown,
        };
    }
    let Some(def) = below else {
        return SliceMatch::Unknown;
    };
    // A choice element below the item (`value` → `valueQuantity`): its type
    // is named by the JSON key.
    if !path.contains('.')
        && path != "$this"
        && let Some(members) = item.as_object()
        && let Some(suffix) = members.iter().find_map(|m| {
            m.key
                .strip_prefix(path)
                .filter(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
        })
    {
        return verdict(
            def.types
                .iter()
                .any(|t| super::compile::type_suffix_matches(&t.code, suffix)),
        );
    }
    let Some(found) = first_at(item, path) else {
        return SliceMatch::Unknown;
    };
    if def.types.is_empty() {
        return SliceMatch::Unknown;
    }
    match found {
        // A resource names its type, which must be one of the slice's
        // types (a slice may allow several: Practitioner or
        // PractitionerRole); a datatype is known by the element's declared
        // type only when it has one.
        Some(node) => match node.get("resourceType").and_then(Node::as_str) {
            Some(resource_type) => verdict(def.types.iter().any(|t| t.code == resource_type)),
            None => SliceMatch::Unknown,
        },
        None => SliceMatch::No,
    }
}

/// A `profile` discriminator: the item (or the resource at `path`) is in
/// the slice when it conforms to one of the slice's profiles (Java
/// `InstanceValidator.sliceMatches`: `<path>.conformsTo('<profile>')`, or
/// the profiles joined with `or`). Claiming the profile in `meta.profile` is
/// not enough, and not claiming it does not rule the item out.
fn profile_discriminator<'a, 'p>(
    item: &'a Node,
    below: Option<&ElementDef>,
    path: &str,
    profile_type: &dyn Fn(&str) -> Option<&'p str>,
    conforms: &mut Conforms<'a, '_>,
) -> SliceMatch {
    let Some(found) = first_at(item, path) else {
        return SliceMatch::Unknown;
    };
    let Some(def) = below else {
        return SliceMatch::Unknown;
    };
    let Some(node) = found else {
        return SliceMatch::No;
    };
    // Datatype profiles (e.g. extensions sliced by profile) are not
    // decided here.
    let Some(resource_type) = node.get("resourceType").and_then(Node::as_str) else {
        return SliceMatch::Unknown;
    };
    let mut any = false;
    let mut unknown = false;
    for profile in def.types.iter().flat_map(|t| t.profiles.iter()) {
        any = true;
        match profile_type(profile) {
            Some(t) if t == resource_type => match conforms(node, profile) {
                Some(true) => return SliceMatch::Yes,
                Some(false) => {}
                None => unknown = true,
            },
            Some(_) => {}
            None => unknown = true,
        }
    }
    if unknown || !any {
        SliceMatch::Unknown
    } else {
        SliceMatch::No
    }
}

fn exists_discriminator(item: &Node, below: Option<&ElementDef>, path: &str) -> SliceMatch {
    let Some(found) = any_at(item, path, &mut |_| true) else {
        return SliceMatch::Unknown;
    };
    let Some(def) = below else {
        return SliceMatch::Unknown;
    };
    let must_exist = def.min > 0;
    let must_not_exist = matches!(def.max, super::compile::Max::N(0));
    match (must_exist, must_not_exist) {
        (true, _) => verdict(found),
        (_, true) => verdict(!found),
        _ => SliceMatch::Unknown,
    }
}

fn verdict(yes: bool) -> SliceMatch {
    if yes { SliceMatch::Yes } else { SliceMatch::No }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(json: &str) -> Node {
        let wrapped = format!("{{\"resourceType\":\"X\",\"v\":{json}}}");
        ehds_fhir::json::parse(wrapped.as_bytes())
            .unwrap()
            .get("v")
            .unwrap()
            .clone()
    }

    #[test]
    fn patterns_and_fixed_values() {
        let value = node(
            r#"{"coding":[{"system":"http://loinc.org","code":"11450-4","display":"x"}],"text":"t"}"#,
        );
        let pattern = node(r#"{"coding":[{"system":"http://loinc.org","code":"11450-4"}]}"#);
        let other = node(r#"{"coding":[{"system":"http://loinc.org","code":"10160-0"}]}"#);
        assert!(matches_pattern(&value, &pattern));
        assert!(!matches_pattern(&value, &other));
        assert!(!equals_fixed(&value, &pattern));
        assert!(equals_fixed(&node(r#""a""#), &node(r#""a""#)));
        assert!(equals_fixed(&node("1.0"), &node("1.00")));
        assert!(!equals_fixed(&node(r#""a""#), &node(r#""b""#)));
    }

    #[test]
    fn discriminator_paths() {
        let item = node(r#"{"code":{"coding":[{"code":"a"},{"code":"b"}]}}"#);
        let count = |path: &str| {
            let mut n = 0;
            any_at(&item, path, &mut |_| {
                n += 1;
                false
            })
            .map(|_| n)
        };
        assert_eq!(count("code.coding.code"), Some(2));
        assert_eq!(count("$this"), Some(1));
        assert_eq!(count("resolve()"), None);
        assert_eq!(count("missing"), Some(0));
        assert_eq!(
            first_at(&item, "code.coding.code")
                .unwrap()
                .unwrap()
                .as_str(),
            Some("a")
        );
    }
}
