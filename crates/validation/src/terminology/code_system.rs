//! CodeSystems indexed for membership: codes (with the system's case rule),
//! displays, the concept hierarchy and properties, and filters evaluated
//! into bit sets over the concepts.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::borrow::Cow;

use ehds_fhir::Node;
use ehds_fhir::json::Json;

use super::code_set::CodeIndex;

/// `CodeSystem.content`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) enum Content {
    /// `complete`: every concept is in the resource.
    Complete,
    /// `example`, `fragment`: some concepts are, so a code found is real but
    /// a code not found may exist.
    Partial(String),
    /// `not-present` or anything else: the resource defines no concepts
    /// usable here.
    Absent(String),
}

/// One concept of a CodeSystem.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct Concept {
    /// `code` as written.
    pub code: Box<str>,
    /// `display`.
    pub display: Option<Box<str>>,
    /// Direct parents (nested `concept` and `parent`/`child` properties).
    pub parents: Vec<u32>,
    /// Direct children.
    pub children: Vec<u32>,
    /// `property` as (code, value text): `valueCode`, `valueString`,
    /// `valueBoolean`, numbers, `valueDateTime`, and the code of
    /// `valueCoding`.
    pub properties: Vec<(Box<str>, Box<str>)>,
    /// The `inactive` property is true, or `status` is `retired`/`inactive`
    /// (R4 concept-properties).
    pub inactive: bool,
}

/// A CodeSystem ready for membership checks.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct CodeSystemIndex {
    /// `url`.
    pub url: String,
    /// `version`.
    pub version: Option<String>,
    /// `content`.
    pub content: Content,
    /// Effective case rule for its codes (see [`super::case_rule`]).
    pub case_sensitive: bool,
    /// `hierarchyMeaning`.
    pub hierarchy_meaning: Option<String>,
    /// `valueSet`: the value set of all its codes.
    pub value_set: Option<String>,
    /// The concepts, nested ones flattened (depth first).
    pub concepts: Vec<Concept>,
    /// Concept index by code key (the code, lower-cased when not
    /// case-sensitive).
    index: CodeIndex,
    /// Declared `property` codes with their `uri`.
    #[serde(serialize_with = "crate::sorted::sorted_map")]
    declared_properties: HashMap<Box<str>, Option<Box<str>>>,
    /// Declared `filter` codes (system-specific filters).
    #[serde(serialize_with = "crate::sorted::sorted_set")]
    declared_filters: HashSet<Box<str>>,
}

/// The key a code is stored and looked up under.
pub(super) fn code_key(case_sensitive: bool, code: &str) -> Cow<'_, str> {
    if case_sensitive || !code.chars().any(char::is_uppercase) {
        Cow::Borrowed(code)
    } else {
        Cow::Owned(code.to_lowercase())
    }
}

pub(super) fn text<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.get(key).and_then(Node::as_str)
}

pub(super) fn boolean(node: &Node, key: &str) -> Option<bool> {
    match node.get(key).map(|n| &n.value) {
        Some(Json::Bool(b)) => Some(*b),
        _ => None,
    }
}

/// The text of a `property.value[x]`.
fn property_value(property: &Node) -> Option<Box<str>> {
    for key in ["valueCode", "valueString", "valueDateTime"] {
        if let Some(value) = text(property, key) {
            return Some(value.into());
        }
    }
    if let Some(b) = boolean(property, "valueBoolean") {
        return Some(if b { "true" } else { "false" }.into());
    }
    for key in ["valueInteger", "valueDecimal"] {
        if let Some(n) = property.get(key).and_then(Node::as_number_text) {
            return Some(n.into());
        }
    }
    property
        .get("valueCoding")
        .and_then(|coding| text(coding, "code"))
        .map(Into::into)
}

/// How the property `code` relates concepts, by its code or declared URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Parent,
    Child,
}

impl CodeSystemIndex {
    /// Indexes a CodeSystem resource. `case_sensitive` is the effective case
    /// rule, decided by the caller from `caseSensitive` and the URL.
    pub(super) fn new(root: &Node, url: &str, case_sensitive: bool) -> Self {
        let content = match text(root, "content") {
            Some("complete") => Content::Complete,
            Some(mode @ ("example" | "fragment")) => Content::Partial(mode.to_owned()),
            Some(mode) => Content::Absent(mode.to_owned()),
            None => Content::Absent("(none)".to_owned()),
        };
        let declared_properties = root
            .get("property")
            .map(Node::items)
            .unwrap_or_default()
            .iter()
            .filter_map(|p| {
                let code = text(p, "code")?;
                Some((code.into(), text(p, "uri").map(Into::into)))
            })
            .collect();
        let declared_filters = root
            .get("filter")
            .map(Node::items)
            .unwrap_or_default()
            .iter()
            .filter_map(|f| text(f, "code").map(Into::into))
            .collect();
        let mut index = Self {
            url: url.to_owned(),
            version: text(root, "version").map(str::to_owned),
            content,
            case_sensitive,
            hierarchy_meaning: text(root, "hierarchyMeaning").map(str::to_owned),
            value_set: text(root, "valueSet").map(str::to_owned),
            concepts: Vec::new(),
            index: CodeIndex::default(),
            declared_properties,
            declared_filters,
        };
        let mut keys = Vec::new();
        if let Some(concepts) = root.get("concept") {
            index.add_concepts(concepts, None, &mut keys);
        }
        match CodeIndex::from_pairs(keys) {
            Ok(keys) => index.index = keys,
            // Codes that cannot be indexed (over 4 GiB): none is usable.
            Err(_) => index.content = Content::Absent("(codes over 4 GiB)".to_owned()),
        }
        index.link_properties();
        index
    }

    /// Adds `concepts` (and nested ones) under `parent`, and their code keys
    /// to `keys`.
    fn add_concepts<'n>(
        &mut self,
        concepts: &'n Node,
        parent: Option<u32>,
        keys: &mut Vec<(Cow<'n, str>, u32)>,
    ) {
        for node in concepts.items() {
            let Some(code) = text(node, "code") else {
                continue;
            };
            let Ok(id) = u32::try_from(self.concepts.len()) else {
                return;
            };
            let properties: Vec<(Box<str>, Box<str>)> = node
                .get("property")
                .map(Node::items)
                .unwrap_or_default()
                .iter()
                .filter_map(|p| Some((text(p, "code")?.into(), property_value(p)?)))
                .collect();
            let inactive = properties.iter().any(|(name, value)| {
                (&**name == "inactive" && &**value == "true")
                    || (&**name == "status" && matches!(&**value, "retired" | "inactive"))
            });
            self.concepts.push(Concept {
                code: code.into(),
                display: text(node, "display").map(Into::into),
                parents: parent.into_iter().collect(),
                children: Vec::new(),
                properties,
                inactive,
            });
            if let Some(parent) = parent
                && let Some(p) = self.concepts.get_mut(parent as usize)
            {
                p.children.push(id);
            }
            keys.push((code_key(self.case_sensitive, code), id));
            if let Some(nested) = node.get("concept") {
                self.add_concepts(nested, Some(id), keys);
            }
        }
    }

    /// What the property `name` means for the hierarchy: the standard
    /// `parent`/`child` properties (R4 concept-properties), by URI or code.
    fn link(&self, name: &str) -> Option<Link> {
        let uri = self
            .declared_properties
            .get(name)
            .and_then(Option::as_deref);
        match (uri, name) {
            (Some("http://hl7.org/fhir/concept-properties#parent"), _) => Some(Link::Parent),
            (Some("http://hl7.org/fhir/concept-properties#child"), _) => Some(Link::Child),
            (_, "parent") => Some(Link::Parent),
            (_, "child") => Some(Link::Child),
            _ => None,
        }
    }

    /// Adds the hierarchy links given as `parent`/`child` properties.
    fn link_properties(&mut self) {
        let mut edges = Vec::new();
        for (id, concept) in self.concepts.iter().enumerate() {
            let Ok(id) = u32::try_from(id) else {
                break;
            };
            for (name, value) in &concept.properties {
                let Some(link) = self.link(name) else {
                    continue;
                };
                let Some(other) = self.find(value) else {
                    continue;
                };
                match link {
                    Link::Parent => edges.push((other, id)),
                    Link::Child => edges.push((id, other)),
                }
            }
        }
        for (parent, child) in edges {
            if parent == child {
                continue;
            }
            if let Some(p) = self.concepts.get_mut(parent as usize)
                && !p.children.contains(&child)
            {
                p.children.push(child);
            }
            if let Some(c) = self.concepts.get_mut(child as usize)
                && !c.parents.contains(&parent)
            {
                c.parents.push(parent);
            }
        }
    }

    /// Drops what only filters need (properties, hierarchy, declarations)
    /// once every ValueSet is compiled.
    pub(super) fn strip(&mut self) {
        for concept in &mut self.concepts {
            concept.properties = Vec::new();
            concept.parents = Vec::new();
            concept.children = Vec::new();
        }
        self.declared_properties = HashMap::default();
        self.declared_filters = HashSet::default();
    }

    /// The concept with `code`, by the system's case rule.
    pub(super) fn find(&self, code: &str) -> Option<u32> {
        self.index.get(code_key(self.case_sensitive, code).as_ref())
    }

    /// The concept with index `id`.
    pub(super) fn concept(&self, id: u32) -> Option<&Concept> {
        self.concepts.get(id as usize)
    }

    /// `url|version` or `url`, for messages.
    pub(super) fn canonical(&self) -> String {
        match &self.version {
            Some(v) => format!("{}|{v}", self.url),
            None => self.url.clone(),
        }
    }

    /// The concepts matching one `compose.include.filter`, or why it cannot
    /// be evaluated offline. Only called for `content = complete`.
    pub(super) fn filter(&self, property: &str, op: &str, value: &str) -> Result<Bits, String> {
        let n = self.concepts.len();
        let on_code = matches!(property, "concept" | "code");
        match op {
            "is-a" | "descendent-of" | "is-not-a" | "generalizes" => {
                if !on_code {
                    return Err(format!(
                        "filter '{property} {op} {value}': '{op}' is only supported on property 'concept'"
                    ));
                }
                if let Some(meaning) = self.hierarchy_meaning.as_deref()
                    && meaning != "is-a"
                {
                    return Err(format!(
                        "filter '{property} {op} {value}': CodeSystem {} has hierarchyMeaning '{meaning}', not 'is-a'",
                        self.canonical()
                    ));
                }
                let root = self.find(value).ok_or_else(|| {
                    format!(
                        "filter '{property} {op} {value}': '{value}' is not defined in CodeSystem {}",
                        self.canonical()
                    )
                })?;
                let mut bits = match op {
                    "generalizes" => self.closure(root, |c| &c.parents),
                    _ => self.closure(root, |c| &c.children),
                };
                match op {
                    "descendent-of" => bits.clear(root as usize),
                    "is-not-a" => bits.invert(n),
                    _ => {}
                }
                Ok(bits)
            }
            "=" | "in" | "not-in" => {
                let wanted: Vec<&str> = if op == "=" {
                    vec![value]
                } else {
                    value.split(',').map(str::trim).collect()
                };
                let mut bits = if on_code {
                    let mut bits = Bits::new(n);
                    for code in &wanted {
                        if let Some(id) = self.find(code) {
                            bits.set(id as usize);
                        }
                    }
                    bits
                } else {
                    self.by_property(property, op, value, |v| wanted.contains(&v))?
                };
                if op == "not-in" {
                    bits.invert(n);
                }
                Ok(bits)
            }
            "regex" => {
                let regex = regex::Regex::new(&format!("^(?:{value})$")).map_err(|e| {
                    format!("filter '{property} regex {value}': the regex does not compile: {e}")
                })?;
                if on_code {
                    Ok(self.matching(|c| regex.is_match(&c.code)))
                } else {
                    self.by_property(property, op, value, |v| regex.is_match(v))
                }
            }
            "exists" => {
                let wanted = match value {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(format!(
                            "filter '{property} exists {value}': the value must be 'true' or 'false'"
                        ));
                    }
                };
                if on_code {
                    return Err(format!(
                        "filter '{property} exists {value}' is not supported on '{property}'"
                    ));
                }
                let mut bits = self.by_property(property, op, value, |_| true)?;
                if !wanted {
                    bits.invert(n);
                }
                Ok(bits)
            }
            _ => Err(format!(
                "filter '{property} {op} {value}': operator '{op}' is not supported"
            )),
        }
    }

    /// Concepts with a value of `property` that `accept`s. The hierarchy
    /// properties `parent`/`child` use the hierarchy (nested concepts too).
    fn by_property(
        &self,
        property: &str,
        op: &str,
        value: &str,
        accept: impl Fn(&str) -> bool,
    ) -> Result<Bits, String> {
        let used = self
            .concepts
            .iter()
            .any(|c| c.properties.iter().any(|(name, _)| &**name == property));
        if !used && !self.declared_properties.contains_key(property) {
            let kind = if self.declared_filters.contains(property) {
                "is a filter specific to"
            } else {
                "is not a property of"
            };
            return Err(format!(
                "filter '{property} {op} {value}': '{property}' {kind} CodeSystem {}",
                self.canonical()
            ));
        }
        let link = self.link(property);
        Ok(self.matching(|c| match link {
            Some(Link::Parent) => c
                .parents
                .iter()
                .filter_map(|&p| self.concept(p))
                .any(|p| accept(&p.code)),
            Some(Link::Child) => c
                .children
                .iter()
                .filter_map(|&p| self.concept(p))
                .any(|p| accept(&p.code)),
            None => c
                .properties
                .iter()
                .any(|(name, v)| &**name == property && accept(v)),
        }))
    }

    fn matching(&self, accept: impl Fn(&Concept) -> bool) -> Bits {
        let mut bits = Bits::new(self.concepts.len());
        for (id, concept) in self.concepts.iter().enumerate() {
            if accept(concept) {
                bits.set(id);
            }
        }
        bits
    }

    /// `root` and everything reachable through `next` (children for is-a,
    /// parents for generalizes); cycles in property links are harmless.
    fn closure(&self, root: u32, next: impl Fn(&Concept) -> &Vec<u32>) -> Bits {
        let mut bits = Bits::new(self.concepts.len());
        let mut stack = vec![root];
        while let Some(id) = stack.pop() {
            if bits.get(id as usize) {
                continue;
            }
            bits.set(id as usize);
            if let Some(concept) = self.concept(id) {
                stack.extend(next(concept).iter().copied());
            }
        }
        bits
    }
}

/// A set of concept indices of one CodeSystem.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct Bits(Vec<u64>);

impl Bits {
    /// An empty set over `n` concepts.
    pub(super) fn new(n: usize) -> Self {
        Self(vec![0; n.div_ceil(64)])
    }

    pub(super) fn set(&mut self, i: usize) {
        if let Some(word) = self.0.get_mut(i / 64) {
            *word |= 1 << (i % 64);
        }
    }

    fn clear(&mut self, i: usize) {
        if let Some(word) = self.0.get_mut(i / 64) {
            *word &= !(1 << (i % 64));
        }
    }

    pub(super) fn get(&self, i: usize) -> bool {
        self.0
            .get(i / 64)
            .is_some_and(|word| word >> (i % 64) & 1 == 1)
    }

    /// Keeps only what is also in `other`.
    pub(super) fn intersect(&mut self, other: &Bits) {
        for (word, other) in self.0.iter_mut().zip(&other.0) {
            *word &= other;
        }
    }

    /// The complement within `n` concepts.
    fn invert(&mut self, n: usize) {
        for word in &mut self.0 {
            *word = !*word;
        }
        let tail = n % 64;
        if tail != 0
            && let Some(last) = self.0.last_mut()
        {
            *last &= (1u64 << tail) - 1;
        }
    }
}
