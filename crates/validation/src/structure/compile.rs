//! StructureDefinition snapshots compiled into element trees.
//!
//! Every element of a snapshot becomes an [`ElementDef`]; children are found
//! through element ids (`Observation.component.code`), so slices
//! (`Composition.section:sectionProblems`) stay apart from the unsliced
//! element they constrain. Nothing here restates a profile: every rule the
//! walker applies comes from these definitions.

use std::collections::HashMap;
use std::sync::Arc;

use ehds_fhir::Node;
use ehds_fhir::outcome::Severity;
use ehds_fhirpath::{Expression, TypeId};

/// Upper bound of a cardinality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Max {
    /// `*`.
    Unbounded,
    /// A number (0 prohibits the element).
    N(u32),
}

impl Max {
    fn parse(text: Option<&str>) -> Self {
        match text {
            Some("*") | None => Self::Unbounded,
            Some(n) => n.parse().map_or(Self::Unbounded, Self::N),
        }
    }

    /// Whether the element repeats (is an array in JSON).
    pub fn repeats(self) -> bool {
        !matches!(self, Self::N(0 | 1))
    }

    /// Whether `count` items exceed it.
    pub fn exceeded_by(self, count: usize) -> bool {
        match self {
            Self::Unbounded => false,
            Self::N(n) => count > n as usize,
        }
    }
}

/// One allowed type of an element (`ElementDefinition.type`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TypeRef {
    /// The FHIR type code (`string`, `CodeableConcept`, `Resource`, …);
    /// FHIRPath system types are mapped to the FHIR type they stand for.
    pub code: String,
    /// `type.profile`.
    pub profiles: Vec<String>,
    /// `type.targetProfile`.
    pub target_profiles: Vec<String>,
    /// The FHIRPath model's type for `code` (set when the validator takes
    /// the structure in), typing the element for its invariants.
    pub fhirpath_type: Option<TypeId>,
}

/// `ElementDefinition.constraint` that has an `expression`: a FHIRPath
/// invariant every instance of the element must meet.
#[derive(Debug)]
pub struct Constraint {
    /// `key` (`ele-1`, `dom-3`, `ips-1`).
    pub key: Box<str>,
    /// `severity`: `error` → Error, `warning` → Warning.
    pub severity: Severity,
    /// `human`.
    pub human: Box<str>,
    /// `expression` as published.
    pub source: Box<str>,
    /// The parsed expression (after the table of corrections), shared by
    /// every constraint with the same text; `None` until the validator
    /// compiles it, and when it does not parse or a correction skips it.
    pub expression: Option<Arc<Expression>>,
    /// The expression is true on any element with a primitive value
    /// ([`Expression::is_true_when_context_has_value`]: ele-1), decided once
    /// when it is compiled.
    pub true_when_valued: bool,
    /// Its position among the validator's distinct constraints (set when
    /// compiled): a dense key for the walker's (node, constraint) set.
    pub index: u32,
}

impl Constraint {
    /// Whether the walker evaluates it on an element instance that has a
    /// primitive value (`valued`) or not.
    #[inline]
    pub fn applies(&self, valued: bool) -> bool {
        self.expression.is_some() && !(valued && self.true_when_valued)
    }
}

/// `ElementDefinition.binding`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Binding {
    /// `required`, `extensible`, `preferred` or `example`.
    pub strength: String,
    /// `valueSet` canonical.
    pub value_set: Option<String>,
}

/// `ElementDefinition.slicing.discriminator`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Discriminator {
    /// `value`, `exists`, `pattern`, `type` or `profile`.
    pub kind: String,
    /// FHIRPath-ish path from the sliced element (`code`, `resource`, `$this`).
    pub path: String,
}

/// `ElementDefinition.slicing`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Slicing {
    /// The discriminators.
    pub discriminators: Vec<Discriminator>,
    /// `ordered`.
    pub ordered: bool,
    /// `rules`: `closed`, `open` or `openAtEnd`.
    pub rules: String,
}

/// One element of a snapshot.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ElementDef {
    /// `ElementDefinition.id`.
    pub id: String,
    /// `ElementDefinition.path`.
    pub path: String,
    /// The JSON name: last path segment without `[x]`.
    pub name: String,
    /// `value[x]`-style choice element.
    pub is_choice: bool,
    /// `sliceName`, when this element is a slice.
    pub slice_name: Option<String>,
    /// `min`.
    pub min: u32,
    /// `max`.
    pub max: Max,
    /// `base.max`: whether the element repeats in JSON is fixed by the base
    /// definition, whatever a profile narrows `max` to (R4 json.html §2.6.2).
    pub base_max: Max,
    /// `type`.
    pub types: Vec<TypeRef>,
    /// `binding`.
    pub binding: Option<Binding>,
    /// `constraint`s with an expression (FHIRPath invariants), shared.
    /// Written apart in the validator's compiled form (by
    /// [`Constraint::index`]), so each shared constraint is written once.
    #[serde(skip)]
    pub constraints: Vec<Arc<Constraint>>,
    /// The FHIRPath model's type of the element's instances when it is one
    /// type (a backbone element, a single-typed element, the root); set when
    /// the validator takes the structure in.
    pub fhirpath_type: Option<TypeId>,
    /// `isModifier`.
    pub is_modifier: bool,
    /// `slicing`, on the element that is sliced.
    pub slicing: Option<Slicing>,
    /// `fixed[x]`: the value must be exactly this.
    pub fixed: Option<Node>,
    /// `minValue[x]`: the value must not be below this.
    pub min_value: Option<Node>,
    /// `maxValue[x]`: the value must not be above this.
    pub max_value: Option<Node>,
    /// `pattern[x]`: the value must contain this.
    pub pattern: Option<Node>,
    /// Children (unsliced elements only), by index into the structure.
    pub children: Vec<usize>,
    /// Slices of this element, by index.
    pub slices: Vec<usize>,
    /// `contentReference` resolved to an element of the same structure.
    pub content_reference: Option<usize>,
    /// On a slice: for each discriminator of the sliced element, in order,
    /// the element at the discriminator's path below this slice
    /// (`<slice id>.<path>`, `$this` being the slice itself), resolved once
    /// here rather than per item.
    pub discriminator_elements: Vec<Option<usize>>,
}

impl ElementDef {
    /// Whether a JSON member name belongs to this element, and for a choice
    /// element, which type it names (`valueQuantity` → `Quantity`).
    pub fn matches<'a>(&'a self, key: &str) -> Option<Option<&'a TypeRef>> {
        if !self.is_choice {
            return (key == self.name).then_some(None);
        }
        let suffix = key.strip_prefix(self.name.as_str())?;
        self.types
            .iter()
            .find(|t| type_suffix_matches(&t.code, suffix))
            .map(Some)
    }
}

/// `Quantity` for `valueQuantity`, `dateTime` for `valueDateTime`.
pub(crate) fn type_suffix_matches(code: &str, suffix: &str) -> bool {
    let mut code_chars = code.chars();
    let mut suffix_chars = suffix.chars();
    match (code_chars.next(), suffix_chars.next()) {
        (Some(c), Some(s)) => c.to_ascii_uppercase() == s && code_chars.eq(suffix_chars),
        _ => false,
    }
}

/// What a StructureDefinition defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    /// `primitive-type`.
    PrimitiveType,
    /// `complex-type`.
    ComplexType,
    /// `resource`.
    Resource,
    /// `logical`.
    Logical,
}

/// A compiled StructureDefinition.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Structure {
    /// Position in the validator's table of structures (set when the
    /// validator takes it in; 0 until then).
    pub id: u32,
    /// Canonical URL.
    pub url: String,
    /// `type`: the resource or datatype it defines or constrains.
    pub type_name: String,
    /// `kind`.
    pub kind: Kind,
    /// `derivation = constraint`: a profile.
    pub is_profile: bool,
    /// `abstract`.
    pub is_abstract: bool,
    /// Snapshot elements; index 0 is the root.
    pub elements: Vec<ElementDef>,
    /// Element index by element id.
    #[serde(serialize_with = "crate::sorted::sorted_map")]
    pub by_id: HashMap<String, usize>,
    /// The regex a primitive type's value must match (from
    /// `<type>.value`'s `http://hl7.org/fhir/StructureDefinition/regex`).
    pub value_regex: Option<String>,
    /// An extension's `context`: (`type`, `expression`) pairs.
    pub contexts: Vec<(String, String)>,
}

/// Why a StructureDefinition could not be compiled (or the validator's
/// compiled form not read).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// No snapshot.
    #[error("{0} has no snapshot")]
    NoSnapshot(String),
    /// A required element is missing.
    #[error("{url}: {what}")]
    Malformed {
        /// The StructureDefinition.
        url: String,
        /// What is wrong.
        what: String,
    },
    /// The validator's compiled form (`Validator::from_compiled`)
    /// does not read back: written by another version of this crate, or
    /// damaged.
    #[error("the validator's compiled form does not load: {0}")]
    CompiledForm(String),
}

const REGEX_EXTENSION: &str = "http://hl7.org/fhir/StructureDefinition/regex";
const FHIR_TYPE_EXTENSION: &str =
    "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type";

fn text<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.get(key).and_then(Node::as_str)
}

fn texts(node: &Node, key: &str) -> Vec<String> {
    node.get(key)
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .filter_map(Node::as_str)
        .map(str::to_owned)
        .collect()
}

fn extension_value<'a>(node: &'a Node, url: &str, value_key: &str) -> Option<&'a str> {
    node.get("extension")?
        .items()
        .iter()
        .find(|e| text(e, "url") == Some(url))
        .and_then(|e| text(e, value_key))
}

/// The value of the `fixed[x]`/`pattern[x]` member of an element, if any.
fn prefixed_value(element: &Node, prefix: &str) -> Option<Node> {
    element.as_object()?.iter().find_map(|m| {
        m.key
            .strip_prefix(prefix)
            .filter(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
            .map(|_| m.node.clone())
    })
}

/// Maps a `type.code` to the FHIR type: FHIRPath system types carry the FHIR
/// type in the `structuredefinition-fhir-type` extension (R4 uses them for
/// `Element.id`, `Extension.url` and primitive `value`s).
fn type_code(type_node: &Node) -> Option<String> {
    let code = text(type_node, "code")?;
    if let Some(fhir_type) = extension_value(type_node, FHIR_TYPE_EXTENSION, "valueUrl")
        .or_else(|| extension_value(type_node, FHIR_TYPE_EXTENSION, "valueUri"))
    {
        return Some(fhir_type.to_owned());
    }
    Some(
        match code {
            "http://hl7.org/fhirpath/System.String" => "string",
            "http://hl7.org/fhirpath/System.Boolean" => "boolean",
            "http://hl7.org/fhirpath/System.Integer" => "integer",
            "http://hl7.org/fhirpath/System.Decimal" => "decimal",
            "http://hl7.org/fhirpath/System.Date" => "date",
            "http://hl7.org/fhirpath/System.DateTime" => "dateTime",
            "http://hl7.org/fhirpath/System.Time" => "time",
            other => other,
        }
        .to_owned(),
    )
}

/// The constraints of an element that carry an expression (those without
/// one cannot be evaluated and are left out), not yet parsed.
fn constraints(element: &Node) -> Vec<Arc<Constraint>> {
    element
        .get("constraint")
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .filter_map(|c| {
            let source = text(c, "expression")?;
            Some(Arc::new(Constraint {
                key: text(c, "key").unwrap_or("?").into(),
                severity: match text(c, "severity") {
                    Some("error") => Severity::Error,
                    _ => Severity::Warning,
                },
                human: text(c, "human").unwrap_or_default().into(),
                source: source.into(),
                expression: None,
                true_when_valued: false,
                index: 0,
            }))
        })
        .collect()
}

/// Whether the required binding of `Observation.component.value[x]` to
/// `ucum-vitals-common` in the core vital-signs profiles (`vitalsigns` and
/// the profiles derived from it) is read as extensible, as the Java
/// validator's loader relaxes it (`PackageHackerR5.fixLoadedResource`,
/// hapifhir/org.hl7.fhir.core): a component may be any observation, with
/// any unit. The suite's Java outcomes `obs-fio2` and
/// `obs-vital-signs-mdc` report such a unit as an extensible-binding
/// warning.
fn vitals_units_relaxed(sd: &Node, url: &str, path: &str, binding: &Node) -> bool {
    const VITALSIGNS: &str = "http://hl7.org/fhir/StructureDefinition/vitalsigns";
    path == "Observation.component.value[x]"
        && url.starts_with("http://hl7.org/fhir/StructureDefinition/")
        && (url == VITALSIGNS || text(sd, "baseDefinition") == Some(VITALSIGNS))
        && text(binding, "valueSet")
            .is_some_and(|vs| vs.starts_with("http://hl7.org/fhir/ValueSet/ucum-vitals-common"))
}

/// Compiles one StructureDefinition resource.
pub fn compile(sd: &Node) -> Result<Structure, CompileError> {
    let url = text(sd, "url").unwrap_or_default().to_owned();
    let malformed = |what: &str| CompileError::Malformed {
        url: url.clone(),
        what: what.to_owned(),
    };
    let kind = match text(sd, "kind") {
        Some("primitive-type") => Kind::PrimitiveType,
        Some("complex-type") => Kind::ComplexType,
        Some("resource") => Kind::Resource,
        Some("logical") => Kind::Logical,
        _ => return Err(malformed("kind missing or unknown")),
    };
    let type_name = text(sd, "type")
        .ok_or_else(|| malformed("type missing"))?
        .to_owned();
    let snapshot = sd
        .get("snapshot")
        .and_then(|s| s.get("element"))
        .map(Node::items)
        .ok_or_else(|| CompileError::NoSnapshot(url.clone()))?;
    let mut elements = Vec::with_capacity(snapshot.len());
    let mut by_id: HashMap<String, usize> = HashMap::with_capacity(snapshot.len());
    let mut value_regex = None;
    for element in snapshot {
        let path = text(element, "path")
            .ok_or_else(|| malformed("element without path"))?
            .to_owned();
        let id = text(element, "id").map_or_else(|| path.clone(), str::to_owned);
        let last = path.rsplit('.').next().unwrap_or(&path);
        let (name, is_choice) = match last.strip_suffix("[x]") {
            Some(base) => (base.to_owned(), true),
            None => (last.to_owned(), false),
        };
        // Resource.id is typed System.String in R4's snapshots, but it is an
        // `id` (R4 resource.html#id: [A-Za-z0-9\-\.]{1,64}), as the Java
        // validator checks it.
        let is_resource_id =
            kind == Kind::Resource && path.split('.').count() == 2 && path.ends_with(".id");
        let types: Vec<TypeRef> = element
            .get("type")
            .map(Node::items)
            .unwrap_or_default()
            .iter()
            .filter_map(|t| {
                Some(TypeRef {
                    code: if is_resource_id {
                        "id".to_owned()
                    } else {
                        type_code(t)?
                    },
                    profiles: texts(t, "profile"),
                    target_profiles: texts(t, "targetProfile"),
                    fhirpath_type: None,
                })
            })
            .collect();
        if kind == Kind::PrimitiveType && path == format!("{type_name}.value") {
            value_regex = element
                .get("type")
                .map(Node::items)
                .unwrap_or_default()
                .iter()
                .find_map(|t| extension_value(t, REGEX_EXTENSION, "valueString"))
                .map(str::to_owned);
        }
        let binding = element.get("binding").map(|b| Binding {
            strength: if vitals_units_relaxed(sd, &url, &path, b) {
                "extensible".to_owned()
            } else {
                text(b, "strength").unwrap_or("example").to_owned()
            },
            value_set: text(b, "valueSet").map(str::to_owned),
        });
        by_id.insert(id.clone(), elements.len());
        elements.push(ElementDef {
            id,
            path,
            name,
            is_choice,
            slice_name: text(element, "sliceName").map(str::to_owned),
            min: element
                .get("min")
                .and_then(Node::as_number_text)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
            max: Max::parse(text(element, "max")),
            base_max: Max::parse(
                element
                    .get("base")
                    .and_then(|b| text(b, "max"))
                    .or_else(|| text(element, "max")),
            ),
            types,
            binding,
            constraints: constraints(element),
            fhirpath_type: None,
            is_modifier: matches!(
                element.get("isModifier").map(|n| &n.value),
                Some(ehds_fhir::json::Json::Bool(true))
            ),
            slicing: element.get("slicing").map(|slicing| Slicing {
                discriminators: slicing
                    .get("discriminator")
                    .map(Node::items)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|d| {
                        Some(Discriminator {
                            kind: text(d, "type")?.to_owned(),
                            path: text(d, "path")?.to_owned(),
                        })
                    })
                    .collect(),
                ordered: matches!(
                    slicing.get("ordered").map(|n| &n.value),
                    Some(ehds_fhir::json::Json::Bool(true))
                ),
                rules: text(slicing, "rules").unwrap_or("open").to_owned(),
            }),
            fixed: prefixed_value(element, "fixed"),
            min_value: prefixed_value(element, "minValue"),
            max_value: prefixed_value(element, "maxValue"),
            pattern: prefixed_value(element, "pattern"),
            children: Vec::new(),
            slices: Vec::new(),
            content_reference: None,
            discriminator_elements: Vec::new(),
        });
        if let Some(reference) = text(element, "contentReference") {
            // Resolved by `link`, once every id is known. R4 writes `#id`;
            // later IG Publishers write the base definition's URL before it
            // (`http://hl7.org/fhir/StructureDefinition/Composition#Composition.section`,
            // HL7 Europe Laboratory): the element is the one with that id in
            // this snapshot, which carries the base's elements.
            let target = reference
                .rsplit_once('#')
                .map_or(reference, |(_, id)| id)
                .to_owned();
            let index = elements.len().saturating_sub(1);
            pending_reference(&mut elements, index, target);
        }
    }
    link(&mut elements, &by_id);
    if elements.is_empty() {
        return Err(malformed("empty snapshot"));
    }
    Ok(Structure {
        id: 0,
        url,
        type_name,
        kind,
        is_profile: text(sd, "derivation") == Some("constraint"),
        is_abstract: matches!(
            sd.get("abstract").map(|n| &n.value),
            Some(ehds_fhir::json::Json::Bool(true))
        ),
        elements,
        by_id,
        value_regex,
        contexts: sd
            .get("context")
            .map(Node::items)
            .unwrap_or_default()
            .iter()
            .filter_map(|c| {
                Some((
                    text(c, "type")?.to_owned(),
                    text(c, "expression")?.to_owned(),
                ))
            })
            .collect(),
    })
}

/// A content reference waits as a `#id` pseudo type until [`link`] resolves
/// it to an element index.
fn pending_reference(elements: &mut [ElementDef], index: usize, target: String) {
    if let Some(e) = elements.get_mut(index) {
        e.types = vec![TypeRef {
            code: format!("#{target}"),
            profiles: Vec::new(),
            target_profiles: Vec::new(),
            fhirpath_type: None,
        }];
    }
}

/// Fills `children`, `slices` and `content_reference` from element ids.
fn link(elements: &mut [ElementDef], by_id: &HashMap<String, usize>) {
    let mut relations: Vec<(usize, usize, bool)> = Vec::new();
    let mut references: Vec<(usize, usize)> = Vec::new();
    for (index, element) in elements.iter().enumerate() {
        if let Some(reference) = element.types.first().and_then(|t| t.code.strip_prefix('#'))
            && let Some(&target) = by_id.get(reference)
        {
            references.push((index, target));
        }
        // The parent id is everything before the last '.' that is not inside
        // a slice name; a slice `a.b:s` is a slice of `a.b`.
        let id = element.id.as_str();
        let last_dot = id.rfind('.');
        let last_colon = id.rfind(':');
        match (last_dot, last_colon) {
            (_, Some(colon)) if last_dot.is_none_or(|dot| colon > dot) => {
                if let Some(&parent) = id.get(..colon).and_then(|p| by_id.get(p)) {
                    relations.push((parent, index, true));
                }
            }
            (Some(dot), _) => {
                if let Some(&parent) = id.get(..dot).and_then(|p| by_id.get(p)) {
                    relations.push((parent, index, false));
                }
            }
            _ => {}
        }
    }
    for (parent, child, is_slice) in relations {
        if let Some(p) = elements.get_mut(parent) {
            if is_slice {
                p.slices.push(child);
            } else {
                p.children.push(child);
            }
        }
    }
    for (index, target) in references {
        if let Some(e) = elements.get_mut(index) {
            e.content_reference = Some(target);
            e.types.clear();
        }
    }
    let mut below: Vec<(usize, Vec<Option<usize>>)> = Vec::new();
    for element in elements.iter() {
        let Some(slicing) = &element.slicing else {
            continue;
        };
        for &slice in &element.slices {
            let Some(slice_id) = elements.get(slice).map(|e| e.id.as_str()) else {
                continue;
            };
            let targets = slicing
                .discriminators
                .iter()
                .map(|d| {
                    if d.path == "$this" {
                        return Some(slice);
                    }
                    by_id
                        .get(&format!("{slice_id}.{}", d.path))
                        .or_else(|| by_id.get(&format!("{slice_id}.{}[x]", d.path)))
                        .copied()
                })
                .collect();
            below.push((slice, targets));
        }
    }
    for (slice, targets) in below {
        if let Some(e) = elements.get_mut(slice) {
            e.discriminator_elements = targets;
        }
    }
}

/// A definition in the registry the validator could not use (reported once,
/// at load time, never silently).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoadProblem {
    /// The canonical URL.
    pub url: String,
    /// What is wrong.
    pub problem: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choice_suffixes() {
        assert!(type_suffix_matches("Quantity", "Quantity"));
        assert!(type_suffix_matches("dateTime", "DateTime"));
        assert!(!type_suffix_matches("dateTime", "dateTime"));
        assert!(!type_suffix_matches("string", "Strin"));
    }

    #[test]
    fn compiles_children_slices_and_content_references() {
        let sd = ehds_fhir::json::parse(
            br##"{"resourceType":"StructureDefinition","url":"http://x/Q","kind":"resource","type":"Q",
            "snapshot":{"element":[
              {"id":"Q","path":"Q","min":0,"max":"*"},
              {"id":"Q.item","path":"Q.item","min":1,"max":"*","type":[{"code":"BackboneElement"}]},
              {"id":"Q.item:first","path":"Q.item","sliceName":"first","min":0,"max":"1","type":[{"code":"BackboneElement"}]},
              {"id":"Q.item.value[x]","path":"Q.item.value[x]","min":0,"max":"1","type":[{"code":"string"},{"code":"Quantity"}]},
              {"id":"Q.item.item","path":"Q.item.item","min":0,"max":"*","contentReference":"#Q.item"},
              {"id":"Q.item:first.item","path":"Q.item.item","min":0,"max":"*","contentReference":"http://x/Q#Q.item"}
            ]}}"##,
        )
        .unwrap();
        let s = compile(&sd).unwrap();
        assert_eq!(s.elements[0].children, vec![1]);
        assert_eq!(s.elements[1].slices, vec![2]);
        assert_eq!(s.elements[1].children, vec![3, 4]);
        assert_eq!(s.elements[4].content_reference, Some(1));
        assert_eq!(s.elements[5].content_reference, Some(1), "URL#id form");
        assert_eq!(
            s.elements[3]
                .matches("valueQuantity")
                .unwrap()
                .unwrap()
                .code,
            "Quantity"
        );
        assert!(s.elements[3].matches("valueCoding").is_none());
        assert_eq!(s.elements[1].max, Max::Unbounded);
        assert_eq!(s.elements[2].max, Max::N(1));
    }
}
