//! Bundle entries and reference resolution
//! (<http://hl7.org/fhir/R4/bundle.html#references>).
//!
//! [`BundleIndex`] indexes the entries once (by `fullUrl`, and by
//! `resourceType/id`), so resolving every reference of a Bundle costs time
//! linear in the number of entries and references.

use std::collections::{HashMap, HashSet};

/// The index's maps: keyed by what the sender wrote (fullUrls, ids), so
/// with a seeded hash (foldhash; SipHash cost 4 % of a 51 KB summary's
/// validation, issue 15).
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

use crate::json::{Json, Node, PathSegment};

/// One entry of a Bundle.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// Position in `Bundle.entry`.
    pub index: usize,
    /// `Bundle.entry.fullUrl`.
    pub full_url: Option<&'a str>,
    /// `Bundle.entry.resource`.
    pub resource: Option<&'a Node>,
}

impl<'a> Entry<'a> {
    /// `resource.resourceType`.
    pub fn resource_type(&self) -> Option<&'a str> {
        self.resource?.get("resourceType")?.as_str()
    }

    /// `resource.id`.
    pub fn resource_id(&self) -> Option<&'a str> {
        self.resource?.get("id")?.as_str()
    }

    /// `resource.meta.versionId`.
    pub fn version_id(&self) -> Option<&'a str> {
        self.resource?.get("meta")?.get("versionId")?.as_str()
    }
}

/// What a reference points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// An entry of this Bundle (its index).
    Entry(usize),
    /// A contained resource (`#id`) or the container itself (`#`); checked
    /// against the containing resource by the validator.
    Contained,
    /// An absolute URL that is not in the Bundle: outside, not resolvable here.
    External,
    /// A `urn:uuid:`/`urn:oid:` or relative reference that the Bundle should
    /// hold but does not.
    Unresolved,
}

/// Index of a Bundle's entries for reference resolution.
#[derive(Debug)]
pub struct BundleIndex<'a> {
    entries: Vec<Entry<'a>>,
    by_full_url: Map<&'a str, usize>,
    by_type_and_id: Map<(&'a str, &'a str), usize>,
    /// The `fullUrl`s more than one entry carries.
    shared_full_urls: HashSet<&'a str, foldhash::fast::RandomState>,
}

impl<'a> BundleIndex<'a> {
    /// Indexes `bundle.entry`. The first entry wins where `fullUrl`s repeat
    /// (duplicates are the validator's finding, not this index's).
    pub fn new(bundle: &'a Node) -> Self {
        let entries: Vec<Entry<'a>> = bundle
            .get("entry")
            .map(Node::items)
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(index, entry)| Entry {
                index,
                full_url: entry.get("fullUrl").and_then(Node::as_str),
                resource: entry.get("resource"),
            })
            .collect();
        let mut by_full_url = Map::with_capacity_and_hasher(entries.len(), Default::default());
        let mut by_type_and_id = Map::with_capacity_and_hasher(entries.len(), Default::default());
        let mut shared_full_urls = HashSet::default();
        for entry in &entries {
            if let Some(url) = entry.full_url {
                match by_full_url.entry(url) {
                    std::collections::hash_map::Entry::Occupied(_) => {
                        shared_full_urls.insert(url);
                    }
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        slot.insert(entry.index);
                    }
                }
            }
            if let (Some(t), Some(id)) = (entry.resource_type(), entry.resource_id()) {
                by_type_and_id.entry((t, id)).or_insert(entry.index);
            }
        }
        Self {
            entries,
            by_full_url,
            by_type_and_id,
            shared_full_urls,
        }
    }

    /// Whether more than one entry carries `full_url` (versions of one
    /// resource may: bdl-7).
    pub fn is_shared_full_url(&self, full_url: &str) -> bool {
        self.shared_full_urls.contains(full_url)
    }

    /// The entries in order.
    pub fn entries(&self) -> &[Entry<'a>] {
        &self.entries
    }

    /// The entry at `index`.
    pub fn entry(&self, index: usize) -> Option<&Entry<'a>> {
        self.entries.get(index)
    }

    /// Entries whose `fullUrl` and `resource.meta.versionId` are both shared
    /// with an earlier entry, with the earlier entry's index (bdl-7:
    /// `select(fullUrl&resource.meta.versionId).isDistinct()`: versions of one
    /// resource may share a fullUrl).
    pub fn duplicate_full_urls(&self) -> Vec<(usize, usize)> {
        let mut seen: Map<(&str, Option<&str>), usize> = Map::default();
        let mut duplicates = Vec::new();
        for entry in &self.entries {
            let Some(url) = entry.full_url else {
                continue;
            };
            match seen.get(&(url, entry.version_id())) {
                Some(&first) => duplicates.push((entry.index, first)),
                None => {
                    seen.insert((url, entry.version_id()), entry.index);
                }
            }
        }
        duplicates
    }

    /// Resolves `reference`, written in the resource of entry `from`.
    pub fn resolve(&self, from: usize, reference: &str) -> Resolution {
        if reference.starts_with('#') {
            return Resolution::Contained;
        }
        let reference = strip_history(reference);
        if let Some(&index) = self.by_full_url.get(reference) {
            return Resolution::Entry(index);
        }
        if reference.starts_with("urn:uuid:") || reference.starts_with("urn:oid:") {
            return Resolution::Unresolved;
        }
        if is_absolute(reference) {
            return Resolution::External;
        }
        // Relative `Type/id`: against the RESTful base of the referring
        // entry's fullUrl first, then by type and id.
        let Some((resource_type, id)) = reference.split_once('/') else {
            return Resolution::Unresolved;
        };
        if id.contains('/') || resource_type.is_empty() || id.is_empty() {
            return Resolution::Unresolved;
        }
        if let Some(base) = self
            .entries
            .get(from)
            .and_then(|e| e.full_url)
            .and_then(restful_base)
        {
            let absolute = format!("{base}{reference}");
            if let Some(&index) = self.by_full_url.get(absolute.as_str()) {
                return Resolution::Entry(index);
            }
        }
        match self.by_type_and_id.get(&(resource_type, id)) {
            Some(&index) => Resolution::Entry(index),
            None => Resolution::Unresolved,
        }
    }
}

fn strip_history(reference: &str) -> &str {
    // Most references have no `_` at all: a byte scan (memchr) before
    // the substring search, whose set-up costs more than the scan.
    if !reference.as_bytes().contains(&b'_') {
        return reference;
    }
    match reference.find("/_history/") {
        Some(at) => reference.get(..at).unwrap_or(reference),
        None => reference,
    }
}

fn is_absolute(reference: &str) -> bool {
    match reference.split_once(':') {
        Some((scheme, _)) => {
            !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
                && !scheme.contains('/')
        }
        None => false,
    }
}

/// `http://x/fhir/` for `http://x/fhir/Patient/1`.
fn restful_base(full_url: &str) -> Option<&str> {
    if !(full_url.starts_with("http://") || full_url.starts_with("https://")) {
        return None;
    }
    let without_id = full_url.get(..full_url.rfind('/')?)?;
    let type_start = without_id.rfind('/')? + 1;
    let resource_type = without_id.get(type_start..)?;
    resource_type
        .starts_with(|c: char| c.is_ascii_uppercase())
        .then(|| full_url.get(..type_start))
        .flatten()
}

/// A `Reference.reference` found in a resource.
#[derive(Debug, Clone)]
pub struct FoundReference<'a> {
    /// The reference text.
    pub reference: &'a str,
    /// Path from the resource root to the `reference` element.
    pub path: Vec<PathSegment>,
}

/// Every `reference` string of a Reference-shaped object in `resource`
/// (including inside contained resources), in document order.
///
/// Without type information (the validator adds it), a Reference is
/// recognised as an object whose `reference` member is a string; no other
/// R4 element named `reference` is a primitive.
pub fn references(resource: &Node) -> Vec<FoundReference<'_>> {
    let mut found = Vec::new();
    visit_references(resource, &mut |reference, path| {
        found.push(FoundReference {
            reference,
            path: owned_path(path),
        });
    });
    found
}

/// Calls `f` with every `reference` string [`references`] finds and the path
/// to it as borrowed steps, allocating nothing per reference: callers build
/// an owned path ([`owned_path`]) only for the references they report.
pub fn visit_references<'a>(resource: &'a Node, f: &mut dyn FnMut(&'a str, &[PathStep<'a>])) {
    let mut path = Vec::new();
    walk(resource, &mut path, f);
}

/// One step of a path borrowed from the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathStep<'a> {
    /// A member name.
    Key(&'a str),
    /// An array index.
    Index(usize),
}

/// The owned form of borrowed path steps.
pub fn owned_path(steps: &[PathStep<'_>]) -> Vec<PathSegment> {
    steps
        .iter()
        .map(|step| match *step {
            PathStep::Key(k) => PathSegment::Key(k.into()),
            PathStep::Index(i) => PathSegment::Index(i),
        })
        .collect()
}

fn walk<'a>(
    node: &'a Node,
    path: &mut Vec<PathStep<'a>>,
    f: &mut dyn FnMut(&'a str, &[PathStep<'a>]),
) {
    match &node.value {
        Json::Object(members) => {
            for member in members {
                let key: &'a str = &member.key;
                if key == "reference" {
                    if let Some(reference) = member.node.as_str() {
                        path.push(PathStep::Key(key));
                        f(reference, path);
                        path.pop();
                    }
                } else if key != "div"
                    && matches!(member.node.value, Json::Object(_) | Json::Array(_))
                {
                    path.push(PathStep::Key(key));
                    walk(&member.node, path, f);
                    path.pop();
                }
            }
        }
        Json::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                if matches!(item.value, Json::Object(_) | Json::Array(_)) {
                    path.push(PathStep::Index(index));
                    walk(item, path, f);
                    path.pop();
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{parse, render_path};

    const DOC: &[u8] = br##"{"resourceType":"Bundle","type":"document","entry":[
      {"fullUrl":"urn:uuid:c1","resource":{"resourceType":"Composition","subject":{"reference":"urn:uuid:p1"},
        "author":[{"reference":"Practitioner/pr1"},{"reference":"http://elsewhere.example/Practitioner/9"}],
        "section":[{"entry":[{"reference":"urn:uuid:missing"},{"reference":"#c"}]}]}},
      {"fullUrl":"urn:uuid:p1","resource":{"resourceType":"Patient","id":"p1"}},
      {"fullUrl":"http://h.example/fhir/Practitioner/pr1","resource":{"resourceType":"Practitioner","id":"pr1",
        "extension":[{"url":"x","valueReference":{"reference":"Patient/p1/_history/2"}}]}},
      {"fullUrl":"http://h.example/fhir/Organization/o1","resource":{"resourceType":"Organization","id":"o1",
        "partOf":{"reference":"Organization/o2"}}},
      {"fullUrl":"http://h.example/fhir/Organization/o2","resource":{"resourceType":"Organization","id":"o2"}},
      {"fullUrl":"urn:uuid:p1","resource":{"resourceType":"Patient","id":"dup"}}
    ] }"##;

    #[test]
    fn resolves_each_reference_form() {
        let root = parse(DOC).unwrap();
        let index = BundleIndex::new(&root);
        assert_eq!(index.resolve(0, "urn:uuid:p1"), Resolution::Entry(1));
        assert_eq!(index.resolve(0, "urn:uuid:missing"), Resolution::Unresolved);
        assert_eq!(index.resolve(0, "Practitioner/pr1"), Resolution::Entry(2));
        assert_eq!(
            index.resolve(0, "Practitioner/none"),
            Resolution::Unresolved
        );
        assert_eq!(
            index.resolve(0, "http://elsewhere.example/Practitioner/9"),
            Resolution::External
        );
        assert_eq!(index.resolve(0, "#c"), Resolution::Contained);
        assert_eq!(
            index.resolve(2, "Patient/p1/_history/2"),
            Resolution::Entry(1)
        );
        // Relative to the RESTful base of the referring entry.
        assert_eq!(index.resolve(3, "Organization/o2"), Resolution::Entry(4));
        assert_eq!(
            index.resolve(0, "http://h.example/fhir/Organization/o1"),
            Resolution::Entry(3)
        );
        assert_eq!(index.duplicate_full_urls(), vec![(5, 1)]);
    }

    #[test]
    fn finds_references_with_paths() {
        let root = parse(DOC).unwrap();
        let index = BundleIndex::new(&root);
        let composition = index.entry(0).unwrap().resource.unwrap();
        let found: Vec<(String, &str)> = references(composition)
            .iter()
            .map(|r| (render_path("Composition", &r.path), r.reference))
            .collect();
        assert_eq!(
            found,
            vec![
                ("Composition.subject.reference".to_owned(), "urn:uuid:p1"),
                (
                    "Composition.author[0].reference".to_owned(),
                    "Practitioner/pr1"
                ),
                (
                    "Composition.author[1].reference".to_owned(),
                    "http://elsewhere.example/Practitioner/9"
                ),
                (
                    "Composition.section[0].entry[0].reference".to_owned(),
                    "urn:uuid:missing"
                ),
                ("Composition.section[0].entry[1].reference".to_owned(), "#c"),
            ]
        );
    }

    #[test]
    fn restful_base_needs_a_type_segment() {
        assert_eq!(
            restful_base("http://h.example/fhir/Patient/1"),
            Some("http://h.example/fhir/")
        );
        assert_eq!(restful_base("http://h.example/fhir/patient/1"), None);
        assert_eq!(restful_base("urn:uuid:1"), None);
    }
}
