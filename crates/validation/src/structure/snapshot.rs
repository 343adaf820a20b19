//! Snapshot generation for StructureDefinitions published with a
//! differential only (the way FSH/SUSHI-authored national profiles and the
//! fhir-test-cases profiles are often shipped), as the HL7 Java validator
//! does before it validates against them (`ProfileUtilities.generateSnapshot`).
//!
//! The snapshot is the base definition's snapshot (generated first when the
//! base has none either), with each differential element applied in order:
//!
//! | differential element | effect | source |
//! | --- | --- | --- |
//! | an element id already in the snapshot | its members override the base's; `constraint` lists are joined | R4 profiling.html §5.1.0.3 (differential statements constrain the base); ElementDefinition.constraint is cumulative |
//! | a child of an element whose children the snapshot does not list (`Observation.code.coding`) | the parent's datatype (its type profile, else the core type) is expanded below it first | R4 elementdefinition.html#min-max ("the snapshot … includes all the elements"), Java `ProfileUtilities.processPaths` |
//! | a slice (`…:name`) | a copy of the sliced element and its descendants is added after the last slice, named, without `slicing` | R4 profiling.html#slicing |
//!
//! Anything else (re-slicing, `contentReference` targets, renamed choice
//! elements not spelled `[x]`) is reported as a generation failure, never
//! guessed: the profile is then listed as not loadable.
//!
//! Works on raw JSON text: member values are copied byte for byte from the
//! definitions, so nothing is re-rounded or re-escaped.

use ehds_fhir::Node;
use ehds_fhir::json::Json;

/// A StructureDefinition as loaded: its bytes and parsed root.
#[derive(Clone, Copy)]
pub struct Source<'a> {
    /// The resource's JSON bytes.
    pub bytes: &'a [u8],
    /// The parsed root, whose spans index `bytes`.
    pub root: &'a Node,
}

/// One element of a snapshot being built: its id and path, and its other
/// members as (key, raw JSON value).
#[derive(Debug, Clone)]
struct Element {
    id: String,
    path: String,
    members: Vec<(String, String)>,
}

/// How deep bases of bases are followed.
const MAX_DEPTH: usize = 16;

/// Generates the snapshot of `sd` and returns the StructureDefinition's JSON
/// with it; `lookup` finds other StructureDefinitions by canonical URL.
pub fn generate<'a>(
    sd: Source<'a>,
    lookup: &dyn Fn(&str) -> Option<Source<'a>>,
) -> Result<Vec<u8>, String> {
    let elements = snapshot_elements(sd, lookup, 0)?;
    let raw = raw(sd.bytes, sd.root);
    let close = raw
        .rfind('}')
        .ok_or_else(|| "the StructureDefinition is not a JSON object".to_owned())?;
    let mut out = String::with_capacity(raw.len() + elements.len() * 200);
    out.push_str(raw.get(..close).unwrap_or_default().trim_end());
    out.push_str(",\"snapshot\":{\"element\":[");
    for (n, element) in elements.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        write_element(&mut out, element);
    }
    out.push_str("]}}");
    Ok(out.into_bytes())
}

/// The snapshot elements of `sd`: its own snapshot, or generated.
fn snapshot_elements<'a>(
    sd: Source<'a>,
    lookup: &dyn Fn(&str) -> Option<Source<'a>>,
    depth: usize,
) -> Result<Vec<Element>, String> {
    if depth > MAX_DEPTH {
        return Err("base definitions nest too deep (or in a cycle)".to_owned());
    }
    if let Some(snapshot) = sd.root.get("snapshot").and_then(|s| s.get("element")) {
        return snapshot
            .items()
            .iter()
            .map(|e| read_element(sd.bytes, e))
            .collect();
    }
    let base_url = sd
        .root
        .get("baseDefinition")
        .and_then(Node::as_str)
        .ok_or_else(|| "no snapshot and no baseDefinition".to_owned())?;
    let base = lookup(base_url).ok_or_else(|| format!("base {base_url} is not held"))?;
    let mut elements = snapshot_elements(base, lookup, depth + 1)?;
    // New slices start from the base's element, not from this profile's
    // constraints on the sliced element (Java `ProfileUtilities`).
    let original = elements.clone();
    let differential = sd
        .root
        .get("differential")
        .and_then(|d| d.get("element"))
        .map(Node::items)
        .unwrap_or_default();
    for diff in differential {
        let mut diff = read_element(sd.bytes, diff)?;
        let renamed = choice_ids(&diff.id, &elements);
        if renamed.id != diff.id {
            diff.id = renamed.id;
            if let Some(code) = renamed.type_code
                && !diff.members.iter().any(|(k, _)| k == "type")
            {
                diff.members.push((
                    "type".to_owned(),
                    format!("[{{\"code\":{}}}]", quoted(&code)),
                ));
            }
        }
        let at = find_or_create(&mut elements, &original, &diff.id, lookup, depth)?;
        if let Some(element) = elements.get_mut(at) {
            merge(element, &diff);
        }
    }
    Ok(elements)
}

/// An element id with choice elements spelled by their type
/// (`Observation.valueQuantity`) respelled as the snapshot names them
/// (`Observation.value[x]`), and the type the last such segment names.
struct ChoiceIds {
    id: String,
    type_code: Option<String>,
}

fn choice_ids(id: &str, elements: &[Element]) -> ChoiceIds {
    const PRIMITIVES: [&str; 20] = [
        "base64Binary",
        "boolean",
        "canonical",
        "code",
        "date",
        "dateTime",
        "decimal",
        "id",
        "instant",
        "integer",
        "markdown",
        "oid",
        "positiveInt",
        "string",
        "time",
        "unsignedInt",
        "uri",
        "url",
        "uuid",
        "xhtml",
    ];
    let mut out = String::with_capacity(id.len());
    let mut type_code = None;
    for (n, segment) in id.split('.').enumerate() {
        if n > 0 {
            out.push('.');
        }
        let (name, slice) = match segment.split_once(':') {
            Some((name, slice)) => (name, Some(slice)),
            None => (segment, None),
        };
        let candidate = format!("{out}{name}");
        let known = elements.iter().any(|e| e.id == candidate);
        let choice = (!known)
            .then(|| {
                name.char_indices()
                    .filter(|(_, c)| c.is_ascii_uppercase())
                    .find_map(|(at, _)| {
                        let (base, suffix) = (name.get(..at)?, name.get(at..)?);
                        let choice = format!("{out}{base}[x]");
                        elements
                            .iter()
                            .any(|e| e.id == choice)
                            .then(|| (base.to_owned(), suffix.to_owned()))
                    })
            })
            .flatten();
        match choice {
            Some((base, suffix)) => {
                out.push_str(&base);
                out.push_str("[x]");
                let mut chars = suffix.chars();
                let lower: String = chars
                    .next()
                    .map(|c| c.to_ascii_lowercase().to_string() + chars.as_str())
                    .unwrap_or_default();
                type_code = Some(if PRIMITIVES.contains(&lower.as_str()) {
                    lower
                } else {
                    suffix
                });
            }
            None => {
                out.push_str(name);
                type_code = None;
            }
        }
        if let Some(slice) = slice {
            out.push(':');
            out.push_str(slice);
        }
    }
    ChoiceIds { id: out, type_code }
}

/// The raw text of `node` in `bytes`.
fn raw<'a>(bytes: &'a [u8], node: &Node) -> &'a str {
    let (start, end) = (node.span.start as usize, node.span.end as usize);
    bytes
        .get(start..end)
        .and_then(|b| std::str::from_utf8(b).ok())
        .unwrap_or_default()
}

fn read_element(bytes: &[u8], node: &Node) -> Result<Element, String> {
    let Json::Object(members) = &node.value else {
        return Err("an element is not a JSON object".to_owned());
    };
    let text = |key: &str| node.get(key).and_then(Node::as_str).map(str::to_owned);
    let path = text("path").ok_or_else(|| "an element has no path".to_owned())?;
    let id = match (text("id"), text("sliceName")) {
        (Some(id), _) => id,
        (None, Some(slice)) => format!("{path}:{slice}"),
        (None, None) => path.clone(),
    };
    Ok(Element {
        id,
        path,
        members: members
            .iter()
            .filter(|m| !matches!(&*m.key, "id" | "path"))
            .map(|m| (m.key.to_string(), raw(bytes, &m.node).to_owned()))
            .collect(),
    })
}

fn write_element(out: &mut String, element: &Element) {
    out.push_str("{\"id\":");
    json_string(out, &element.id);
    out.push_str(",\"path\":");
    json_string(out, &element.path);
    for (key, value) in &element.members {
        out.push(',');
        json_string(out, key);
        out.push(':');
        out.push_str(value);
    }
    out.push('}');
}

fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The members of `diff` override those of `element`; `constraint` lists
/// are joined.
fn merge(element: &mut Element, diff: &Element) {
    for (key, value) in &diff.members {
        match element.members.iter_mut().find(|(k, _)| k == key) {
            Some((_, existing)) if key == "constraint" => {
                let inner = |v: &str| -> String {
                    let v = v.trim();
                    v.strip_prefix('[')
                        .and_then(|v| v.strip_suffix(']'))
                        .unwrap_or(v)
                        .trim()
                        .to_owned()
                };
                let (a, b) = (inner(existing), inner(value));
                *existing = match (a.is_empty(), b.is_empty()) {
                    (true, _) => format!("[{b}]"),
                    (_, true) => format!("[{a}]"),
                    _ => format!("[{a},{b}]"),
                };
            }
            Some((_, existing)) => existing.clone_from(value),
            None => {
                // A fixed or pattern value of another type replaces the
                // base's (fixedUri instead of fixedString, …).
                for prefix in ["fixed", "pattern"] {
                    if key.starts_with(prefix) {
                        element.members.retain(|(k, _)| !k.starts_with(prefix));
                    }
                }
                element.members.push((key.clone(), value.clone()));
            }
        }
    }
}

/// The parent id and last segment of an id (`A.b:s.c` → `A.b:s`, `c`).
fn split_id(id: &str) -> Option<(&str, &str)> {
    let at = id.rfind('.')?;
    Some((id.get(..at)?, id.get(at + 1..)?))
}

/// Whether `id` is `base` or below it (a child, not a slice of it).
fn is_within(id: &str, base: &str) -> bool {
    id == base
        || id
            .strip_prefix(base)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// Whether `id` is `base`, below it, or one of its slices and below those.
fn is_within_or_slice(id: &str, base: &str) -> bool {
    is_within(id, base)
        || id
            .strip_prefix(base)
            .is_some_and(|rest| rest.starts_with(':'))
}

/// The index of the element with `id`, creating it (expanding a datatype,
/// adding a slice) when the differential names one the snapshot lacks.
fn find_or_create<'a>(
    elements: &mut Vec<Element>,
    original: &[Element],
    id: &str,
    lookup: &dyn Fn(&str) -> Option<Source<'a>>,
    depth: usize,
) -> Result<usize, String> {
    if let Some(at) = elements.iter().position(|e| e.id == id) {
        return Ok(at);
    }
    let (parent, last) =
        split_id(id).ok_or_else(|| format!("element {id} is not in the base snapshot"))?;
    if let Some((name, slice)) = last.split_once(':') {
        // A new slice of `parent.name`.
        let sliced = format!("{parent}.{name}");
        let sliced_at = find_or_create(elements, original, &sliced, lookup, depth)?;
        let end = elements
            .iter()
            .rposition(|e| is_within_or_slice(&e.id, &sliced))
            .unwrap_or(sliced_at);
        let template = if original.iter().any(|e| e.id == sliced) {
            original
        } else {
            elements.as_slice()
        };
        let copies: Vec<Element> = template
            .iter()
            .filter(|e| is_within(&e.id, &sliced))
            .map(|e| {
                let mut copy = e.clone();
                copy.id = format!("{id}{}", e.id.get(sliced.len()..).unwrap_or_default());
                copy
            })
            .collect();
        let mut copies = copies.into_iter();
        let Some(mut root) = copies.next() else {
            return Err(format!("slice {id}: nothing to copy"));
        };
        root.members
            .retain(|(k, _)| k != "slicing" && k != "sliceName");
        root.members.push(("sliceName".to_owned(), quoted(slice)));
        let at = end + 1;
        elements.splice(at..at, std::iter::once(root).chain(copies));
        return Ok(at);
    }
    let parent_at = find_or_create(elements, original, parent, lookup, depth)?;
    let has_children = elements.iter().any(|e| {
        e.id.strip_prefix(parent)
            .is_some_and(|r| r.starts_with('.'))
    });
    if !has_children {
        expand(elements, parent_at, lookup, depth)?;
        if let Some(at) = elements.iter().position(|e| e.id == id) {
            return Ok(at);
        }
    }
    Err(format!("element {id} is not in the base snapshot"))
}

/// A JSON string literal.
fn quoted(text: &str) -> String {
    let mut out = String::new();
    json_string(&mut out, text);
    out
}

/// Inserts the children of the datatype of the element at `at` below it.
fn expand<'a>(
    elements: &mut Vec<Element>,
    at: usize,
    lookup: &dyn Fn(&str) -> Option<Source<'a>>,
    depth: usize,
) -> Result<(), String> {
    let Some(element) = elements.get(at) else {
        return Err("element index out of range".to_owned());
    };
    let type_json = element
        .members
        .iter()
        .find(|(k, _)| k == "type")
        .map(|(_, v)| v.clone())
        .ok_or_else(|| format!("{} has no type to expand", element.id))?;
    // The parser reads resources: wrap the value in one.
    let wrapped = format!("{{\"resourceType\":\"Element\",\"type\":{type_json}}}");
    let wrapper = ehds_fhir::json::parse(wrapped.as_bytes()).map_err(|e| e.to_string())?;
    let types = wrapper
        .get("type")
        .ok_or_else(|| "the type could not be read".to_owned())?;
    let [only] = types.items() else {
        return Err(format!(
            "{} has several types; a child of it cannot be placed",
            element.id
        ));
    };
    let code = only
        .get("code")
        .and_then(Node::as_str)
        .ok_or_else(|| format!("{} has a type without code", element.id))?;
    let url = only
        .get("profile")
        .and_then(|p| p.items().first())
        .and_then(Node::as_str)
        .map_or_else(
            || format!("http://hl7.org/fhir/StructureDefinition/{code}"),
            str::to_owned,
        );
    let datatype = lookup(&url).ok_or_else(|| format!("datatype {url} is not held"))?;
    let children = snapshot_elements(datatype, lookup, depth + 1)?;
    let mut children = children.into_iter();
    let Some(root) = children.next() else {
        return Err(format!("datatype {url} has no elements"));
    };
    let (id, path) = (element.id.clone(), element.path.clone());
    let renamed: Vec<Element> = children
        .map(|mut child| {
            child.id = format!("{id}{}", child.id.get(root.id.len()..).unwrap_or_default());
            child.path = format!(
                "{path}{}",
                child.path.get(root.path.len()..).unwrap_or_default()
            );
            child
        })
        .collect();
    let after = at + 1;
    elements.splice(after..after, renamed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Node {
        ehds_fhir::json::parse(json.as_bytes()).unwrap()
    }

    const BASE: &str = r#"{"resourceType":"StructureDefinition","url":"http://x/Base","kind":"resource","type":"Observation",
      "snapshot":{"element":[
        {"id":"Observation","path":"Observation","min":0,"max":"*"},
        {"id":"Observation.code","path":"Observation.code","min":1,"max":"1","type":[{"code":"CodeableConcept"}],
         "constraint":[{"key":"a-1"}]},
        {"id":"Observation.component","path":"Observation.component","min":0,"max":"*","type":[{"code":"BackboneElement"}]},
        {"id":"Observation.component.code","path":"Observation.component.code","min":1,"max":"1","type":[{"code":"CodeableConcept"}]}]}}"#;

    const CC: &str = r#"{"resourceType":"StructureDefinition","url":"http://hl7.org/fhir/StructureDefinition/CodeableConcept","kind":"complex-type","type":"CodeableConcept",
      "snapshot":{"element":[
        {"id":"CodeableConcept","path":"CodeableConcept","min":0,"max":"*"},
        {"id":"CodeableConcept.coding","path":"CodeableConcept.coding","min":0,"max":"*","type":[{"code":"Coding"}]},
        {"id":"CodeableConcept.text","path":"CodeableConcept.text","min":0,"max":"1","type":[{"code":"string"}]}]}}"#;

    const PROFILE: &str = r#"{"resourceType":"StructureDefinition","url":"http://x/P","kind":"resource","type":"Observation",
      "baseDefinition":"http://x/Base","derivation":"constraint",
      "differential":{"element":[
        {"id":"Observation.code","path":"Observation.code","constraint":[{"key":"p-1"}]},
        {"id":"Observation.code.coding","path":"Observation.code.coding","min":1,"patternCoding":{"system":"http://loinc.org","code":"1.0"}},
        {"id":"Observation.component","path":"Observation.component","slicing":{"rules":"open"}},
        {"id":"Observation.component:sys","path":"Observation.component","sliceName":"sys","min":1},
        {"id":"Observation.component:sys.code","path":"Observation.component.code","short":"S"}]}}"#;

    #[test]
    fn a_differential_over_its_base() {
        let (base, cc, profile) = (parse(BASE), parse(CC), parse(PROFILE));
        let lookup = |url: &str| match url {
            "http://x/Base" => Some(Source {
                bytes: BASE.as_bytes(),
                root: &base,
            }),
            "http://hl7.org/fhir/StructureDefinition/CodeableConcept" => Some(Source {
                bytes: CC.as_bytes(),
                root: &cc,
            }),
            _ => None,
        };
        let out = generate(
            Source {
                bytes: PROFILE.as_bytes(),
                root: &profile,
            },
            &lookup,
        )
        .unwrap();
        let sd = ehds_fhir::json::parse(&out).unwrap();
        let elements = sd.get("snapshot").unwrap().get("element").unwrap().items();
        let ids: Vec<&str> = elements
            .iter()
            .map(|e| e.get("id").unwrap().as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            [
                "Observation",
                "Observation.code",
                "Observation.code.coding",
                "Observation.code.text",
                "Observation.component",
                "Observation.component.code",
                "Observation.component:sys",
                "Observation.component:sys.code",
            ]
        );
        let code = &elements[1];
        assert_eq!(code.get("constraint").unwrap().items().len(), 2);
        let coding = &elements[2];
        assert_eq!(
            coding.get("path").unwrap().as_str(),
            Some("Observation.code.coding")
        );
        // The pattern's number is copied as written.
        assert!(
            std::str::from_utf8(&out)
                .unwrap()
                .contains(r#""patternCoding":{"system":"http://loinc.org","code":"1.0"}"#)
        );
        let slice = &elements[6];
        assert_eq!(slice.get("sliceName").unwrap().as_str(), Some("sys"));
        assert!(slice.get("slicing").is_none());
        assert_eq!(slice.get("min").unwrap().value, Json::Number("1".into()));
        assert_eq!(
            elements[7].get("path").unwrap().as_str(),
            Some("Observation.component.code")
        );
        assert_eq!(elements[7].get("short").unwrap().as_str(), Some("S"));
    }

    #[test]
    fn choice_elements_named_by_their_type() {
        let element = |id: &str| Element {
            id: id.to_owned(),
            path: id.to_owned(),
            members: Vec::new(),
        };
        let elements = [
            element("Observation"),
            element("Observation.value[x]"),
            element("Observation.effective[x]"),
        ];
        let renamed = choice_ids("Observation.valueQuantity", &elements);
        assert_eq!(renamed.id, "Observation.value[x]");
        assert_eq!(renamed.type_code.as_deref(), Some("Quantity"));
        let renamed = choice_ids("Observation.effectiveDateTime.extension", &elements);
        assert_eq!(renamed.id, "Observation.effective[x].extension");
        assert_eq!(renamed.type_code, None);
        assert_eq!(
            choice_ids("Observation.valueString", &elements)
                .type_code
                .as_deref(),
            Some("string")
        );
        assert_eq!(
            choice_ids("Observation.code", &elements).id,
            "Observation.code"
        );
    }

    #[test]
    fn unknown_elements_and_bases_are_reported() {
        let profile = parse(
            r#"{"resourceType":"StructureDefinition","url":"http://x/Q","baseDefinition":"http://x/None",
              "differential":{"element":[{"id":"Observation.nothing","path":"Observation.nothing"}]}}"#,
        );
        let source = Source {
            bytes: b"",
            root: &profile,
        };
        assert!(generate(source, &|_| None).is_err());
    }
}
