//! Deriving, from a stored FHIR document, the variant that may cross the
//! border once the patient has restricted parts of it (EHDS: the patient's
//! right to restrict access to parts of their data).
//!
//! The variant is a new document (its own `Bundle.id`, `Bundle.identifier`
//! and `Bundle.timestamp`), assembled from the original's bytes: every entry
//! that stays is copied byte for byte (no value re-serialised or re-rounded);
//! only the Bundle's identity members, the Composition's restricted sections
//! and, when something was withheld, the Composition's own narrative are
//! written anew.
//!
//! What is withheld
//! (<http://hl7.org/fhir/R4/documents.html#content>: a document's content is
//! the Composition and what it references):
//! 1. the entries a restriction names: by `fullUrl` or `Type/id`, by a
//!    business identifier of the resource, or every entry a section with a
//!    given code references (sub-sections included);
//! 2. every entry that references a withheld entry (a MedicationStatement
//!    whose reason is a withheld Condition would tell what the Condition said),
//!    repeated until nothing changes;
//! 3. every entry that only a withheld entry made part of the document (the
//!    Medication of a withheld MedicationStatement): reachable from the
//!    Composition in the original, no longer reachable in the variant.
//!
//! The Composition, its subject, authors, attesters and custodian, and what
//! they reference, are never withheld: without them there is no document.
//!
//! The variant gives no sign that something was withheld: a section that
//! loses entries gets a generated narrative listing what it still holds, and
//! one that loses all of them keeps its title and code with
//! `emptyReason` = `unavailable` (list-empty-reason: "the information is not
//! available") and a narrative saying no information is available — what a
//! sender writes for a section it has nothing for, and what IPS's required
//! sections need (ips-comp-1: `entry.reference.exists() or
//! emptyReason.exists()`; cmp-2: not both). A `Bundle.signature` is dropped
//! (it signed the original). Free text inside the entries that stay is the
//! sender's and is not rewritten.
//!
//! Must not know about: which profile the document meets (the caller
//! validates the variant against the profiles it must meet), storage or
//! who asked.

use std::collections::HashSet;

use crate::bundle::{BundleIndex, Resolution, visit_references};
use crate::json::{Member, Node};

/// One part of a patient's summary the patient has restricted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RestrictedPart {
    /// Every entry of the section whose `code` has this coding (and of its
    /// sub-sections).
    Section {
        /// `Composition.section.code.coding.system`.
        system: String,
        /// `Composition.section.code.coding.code`.
        code: String,
    },
    /// The entry with this `fullUrl`, or whose resource is `Type/id`.
    Entry(String),
    /// Every entry whose resource has this business identifier.
    Identifier {
        /// `identifier.system`.
        system: String,
        /// `identifier.value`.
        value: String,
    },
}

/// The identity of the variant document.
#[derive(Debug, Clone, Copy)]
pub struct VariantIdentity<'a> {
    /// `Bundle.id`.
    pub id: &'a str,
    /// `Bundle.identifier.system`.
    pub identifier_system: &'a str,
    /// `Bundle.identifier.value`.
    pub identifier_value: &'a str,
    /// `Bundle.timestamp` (an R4 instant).
    pub timestamp: &'a str,
}

/// What restricting a document gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restricted {
    /// No restriction touches this document: the original may be released
    /// as it is.
    Unchanged,
    /// The variant's bytes, and how many entries it leaves out.
    Variant {
        /// The new document.
        content: Vec<u8>,
        /// Entries of the original left out.
        withheld_entries: usize,
    },
    /// The stored resource is not a document Bundle whose first entry is a
    /// Composition: nothing can be derived from it (bdl-11).
    NotADocument,
}

/// `urn:ietf:rfc:3986`: the identifier system of a `urn:uuid:` identifier.
pub const URI_IDENTIFIER_SYSTEM: &str = "urn:ietf:rfc:3986";

const XHTML_OPEN: &str = "<div xmlns=\"http://www.w3.org/1999/xhtml\">";
const EMPTY_REASON_UNAVAILABLE: &str = "{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/list-empty-reason\",\"code\":\"unavailable\",\"display\":\"Unavailable\"}]}";

/// Derives the variant of `bundle` (parsed from `source`) without the
/// `parts`. [`Restricted::Unchanged`] when no part names anything in it.
pub fn restrict_document(
    bundle: &Node,
    source: &[u8],
    parts: &[RestrictedPart],
    identity: VariantIdentity<'_>,
) -> Restricted {
    if bundle.get("resourceType").and_then(Node::as_str) != Some("Bundle")
        || bundle.get("type").and_then(Node::as_str) != Some("document")
    {
        return Restricted::NotADocument;
    }
    let index = BundleIndex::new(bundle);
    let Some(composition) = index
        .entry(0)
        .and_then(|e| e.resource)
        .filter(|r| r.get("resourceType").and_then(Node::as_str) == Some("Composition"))
    else {
        return Restricted::NotADocument;
    };
    let plan = Plan::new(&index, composition, parts);
    if plan.withheld.is_empty() && plan.restricted_sections.is_empty() {
        return Restricted::Unchanged;
    }
    let mut writer = Writer {
        source,
        out: Vec::with_capacity(source.len()),
        index: &index,
        plan: &plan,
    };
    if writer.bundle(bundle, composition, identity).is_none() {
        return Restricted::NotADocument;
    }
    Restricted::Variant {
        content: writer.out,
        withheld_entries: plan.withheld.len(),
    }
}

/// Which entries are withheld and which sections are restricted as a whole.
struct Plan {
    withheld: HashSet<usize>,
    /// Spans of the section objects a [`RestrictedPart::Section`] names.
    restricted_sections: HashSet<(u32, u32)>,
}

impl Plan {
    fn new(index: &BundleIndex<'_>, composition: &Node, parts: &[RestrictedPart]) -> Self {
        let mut protected: HashSet<usize> = HashSet::from([0]);
        for key in ["subject", "author", "attester", "custodian"] {
            if let Some(node) = composition.get(key) {
                visit_references(node, &mut |reference, _| {
                    if let Resolution::Entry(i) = index.resolve(0, reference) {
                        protected.insert(i);
                    }
                });
            }
        }
        // What the document's header needs stays too (the Practitioner of
        // an authoring PractitionerRole).
        let edges = reference_edges(index);
        let mut stack: Vec<usize> = protected.iter().copied().filter(|&i| i != 0).collect();
        while let Some(at) = stack.pop() {
            for &next in edges.get(at).map(Vec::as_slice).unwrap_or(&[]) {
                if protected.insert(next) {
                    stack.push(next);
                }
            }
        }
        let mut plan = Plan {
            withheld: HashSet::new(),
            restricted_sections: HashSet::new(),
        };
        let mut named: HashSet<usize> = HashSet::new();
        for part in parts {
            match part {
                RestrictedPart::Section { system, code } => {
                    for section in composition.get("section").map(Node::items).unwrap_or(&[]) {
                        plan.section_named(index, section, system, code, &mut named);
                    }
                }
                RestrictedPart::Entry(reference) => {
                    for entry in index.entries() {
                        let by_type_and_id = match (entry.resource_type(), entry.resource_id()) {
                            (Some(t), Some(id)) => reference.split_once('/') == Some((t, id)),
                            _ => false,
                        };
                        if entry.full_url == Some(reference.as_str()) || by_type_and_id {
                            named.insert(entry.index);
                        }
                    }
                }
                RestrictedPart::Identifier { system, value } => {
                    for entry in index.entries() {
                        let has = entry
                            .resource
                            .and_then(|r| r.get("identifier"))
                            .map(Node::items)
                            .unwrap_or(&[])
                            .iter()
                            .any(|id| {
                                id.get("system").and_then(Node::as_str) == Some(system)
                                    && id.get("value").and_then(Node::as_str) == Some(value)
                            });
                        if has {
                            named.insert(entry.index);
                        }
                    }
                }
            }
        }
        plan.withheld = named.difference(&protected).copied().collect();
        if plan.withheld.is_empty() {
            return plan;
        }
        let reachable_before = reachable(&edges, &HashSet::new());
        loop {
            let before = plan.withheld.len();
            // 2. whatever references a withheld entry.
            for (from, targets) in edges.iter().enumerate() {
                if from != 0
                    && !protected.contains(&from)
                    && targets.iter().any(|t| plan.withheld.contains(t))
                {
                    plan.withheld.insert(from);
                }
            }
            // 3. whatever only withheld entries brought into the document.
            let reachable_after = reachable(&edges, &plan.withheld);
            for &i in &reachable_before {
                if !reachable_after.contains(&i) && !protected.contains(&i) {
                    plan.withheld.insert(i);
                }
            }
            if plan.withheld.len() == before {
                break;
            }
        }
        plan
    }

    fn section_named(
        &mut self,
        index: &BundleIndex<'_>,
        section: &Node,
        system: &str,
        code: &str,
        named: &mut HashSet<usize>,
    ) {
        let matches = section
            .get("code")
            .and_then(|c| c.get("coding"))
            .map(Node::items)
            .unwrap_or(&[])
            .iter()
            .any(|c| {
                c.get("system").and_then(Node::as_str) == Some(system)
                    && c.get("code").and_then(Node::as_str) == Some(code)
            });
        if matches {
            self.restricted_sections
                .insert((section.span.start, section.span.end));
            collect_section_entries(index, section, named);
        } else {
            for sub in section.get("section").map(Node::items).unwrap_or(&[]) {
                self.section_named(index, sub, system, code, named);
            }
        }
    }
}

fn collect_section_entries(index: &BundleIndex<'_>, section: &Node, into: &mut HashSet<usize>) {
    for entry in section.get("entry").map(Node::items).unwrap_or(&[]) {
        if let Some(Resolution::Entry(i)) = entry
            .get("reference")
            .and_then(Node::as_str)
            .map(|r| index.resolve(0, r))
        {
            into.insert(i);
        }
    }
    for sub in section.get("section").map(Node::items).unwrap_or(&[]) {
        collect_section_entries(index, sub, into);
    }
}

/// For each entry, the entries its resource references.
fn reference_edges(index: &BundleIndex<'_>) -> Vec<Vec<usize>> {
    index
        .entries()
        .iter()
        .map(|entry| {
            let mut targets = Vec::new();
            if let Some(resource) = entry.resource {
                visit_references(resource, &mut |reference, _| {
                    if let Resolution::Entry(i) = index.resolve(entry.index, reference)
                        && i != entry.index
                    {
                        targets.push(i);
                    }
                });
            }
            targets
        })
        .collect()
}

/// Entries reachable from the Composition (entry 0) without passing through
/// `withheld`.
fn reachable(edges: &[Vec<usize>], withheld: &HashSet<usize>) -> HashSet<usize> {
    let mut seen = HashSet::from([0]);
    let mut stack = vec![0];
    while let Some(at) = stack.pop() {
        for &next in edges.get(at).map(Vec::as_slice).unwrap_or(&[]) {
            if !withheld.contains(&next) && seen.insert(next) {
                stack.push(next);
            }
        }
    }
    seen
}

struct Writer<'a, 'i> {
    source: &'a [u8],
    out: Vec<u8>,
    index: &'a BundleIndex<'i>,
    plan: &'a Plan,
}

impl Writer<'_, '_> {
    /// The bytes of `node` as the sender wrote them.
    fn verbatim(&mut self, node: &Node) -> Option<()> {
        let bytes = self
            .source
            .get(node.span.start as usize..node.span.end as usize)?;
        self.out.extend_from_slice(bytes);
        Some(())
    }

    fn key(&mut self, first: &mut bool, key: &str) {
        if !*first {
            self.out.push(b',');
        }
        *first = false;
        self.string(key);
        self.out.push(b':');
    }

    fn string(&mut self, text: &str) {
        self.out.extend_from_slice(json_string(text).as_bytes());
    }

    fn bundle(
        &mut self,
        bundle: &Node,
        composition: &Node,
        identity: VariantIdentity<'_>,
    ) -> Option<()> {
        let members = bundle.as_object()?;
        self.out.push(b'{');
        let mut first = true;
        self.key(&mut first, "resourceType");
        self.string("Bundle");
        self.key(&mut first, "id");
        self.string(identity.id);
        let mut wrote_identifier = false;
        for member in members {
            match &*member.key {
                "resourceType" | "id" | "signature" => {}
                "identifier" | "timestamp" => {
                    if !wrote_identifier {
                        self.identity(&mut first, identity);
                        wrote_identifier = true;
                    }
                }
                "entry" => {
                    self.key(&mut first, "entry");
                    self.entries(&member.node, composition)?;
                }
                _ => self.member(&mut first, member)?,
            }
        }
        if !wrote_identifier {
            self.identity(&mut first, identity);
        }
        self.out.push(b'}');
        Some(())
    }

    fn identity(&mut self, first: &mut bool, identity: VariantIdentity<'_>) {
        self.key(first, "identifier");
        self.out.push(b'{');
        let mut inner = true;
        self.key(&mut inner, "system");
        self.string(identity.identifier_system);
        self.key(&mut inner, "value");
        self.string(identity.identifier_value);
        self.out.push(b'}');
        self.key(first, "timestamp");
        self.string(identity.timestamp);
    }

    fn member(&mut self, first: &mut bool, member: &Member) -> Option<()> {
        self.key(first, &member.key);
        self.verbatim(&member.node)
    }

    fn entries(&mut self, entries: &Node, composition: &Node) -> Option<()> {
        self.out.push(b'[');
        let mut first = true;
        for (i, entry) in entries.items().iter().enumerate() {
            if self.plan.withheld.contains(&i) {
                continue;
            }
            if !first {
                self.out.push(b',');
            }
            first = false;
            if i == 0 {
                self.out.push(b'{');
                let mut inner = true;
                for member in entry.as_object()? {
                    if &*member.key == "resource" {
                        self.key(&mut inner, "resource");
                        self.composition(composition)?;
                    } else {
                        self.member(&mut inner, member)?;
                    }
                }
                self.out.push(b'}');
            } else {
                self.verbatim(entry)?;
            }
        }
        self.out.push(b']');
        Some(())
    }

    fn composition(&mut self, composition: &Node) -> Option<()> {
        self.out.push(b'{');
        let mut first = true;
        for member in composition.as_object()? {
            match &*member.key {
                "text" => {
                    self.key(&mut first, "text");
                    let div = composition_narrative(composition);
                    self.narrative(&div);
                }
                "section" => {
                    self.key(&mut first, "section");
                    self.sections(&member.node)?;
                }
                _ => self.member(&mut first, member)?,
            }
        }
        self.out.push(b'}');
        Some(())
    }

    fn narrative(&mut self, div: &str) {
        self.out.push(b'{');
        let mut first = true;
        self.key(&mut first, "status");
        self.string("generated");
        self.key(&mut first, "div");
        self.string(div);
        self.out.push(b'}');
    }

    fn sections(&mut self, sections: &Node) -> Option<()> {
        self.out.push(b'[');
        for (i, section) in sections.items().iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.section(section)?;
        }
        self.out.push(b']');
        Some(())
    }

    /// Whether `section` (or one of its sub-sections) loses anything.
    fn section_changes(&self, section: &Node) -> bool {
        self.plan
            .restricted_sections
            .contains(&(section.span.start, section.span.end))
            || self.kept_entries(section).len()
                != section.get("entry").map_or(0, |e| e.items().len())
            || section
                .get("section")
                .map(Node::items)
                .unwrap_or(&[])
                .iter()
                .any(|s| self.section_changes(s))
    }

    fn kept_entries<'n>(&self, section: &'n Node) -> Vec<&'n Node> {
        section
            .get("entry")
            .map(Node::items)
            .unwrap_or(&[])
            .iter()
            .filter(|entry| {
                match entry
                    .get("reference")
                    .and_then(Node::as_str)
                    .map(|r| self.index.resolve(0, r))
                {
                    Some(Resolution::Entry(i)) => !self.plan.withheld.contains(&i),
                    _ => true,
                }
            })
            .collect()
    }

    fn section(&mut self, section: &Node) -> Option<()> {
        if !self.section_changes(section) {
            return self.verbatim(section);
        }
        let kept = self.kept_entries(section);
        let subsections = section.get("section").map(Node::items).unwrap_or(&[]);
        let empty = kept.is_empty() && subsections.is_empty();
        let div = self.section_narrative(&kept);
        self.out.push(b'{');
        let mut first = true;
        let mut wrote_text = false;
        let mut wrote_content = false;
        for member in section.as_object()? {
            match &*member.key {
                "text" => {
                    self.key(&mut first, "text");
                    self.narrative(&div);
                    wrote_text = true;
                }
                "entry" | "emptyReason" => {
                    if !wrote_content {
                        self.section_content(&mut first, &kept, empty)?;
                        wrote_content = true;
                    }
                }
                "section" => {
                    if !wrote_content {
                        self.section_content(&mut first, &kept, empty)?;
                        wrote_content = true;
                    }
                    self.key(&mut first, "section");
                    self.sections(&member.node)?;
                }
                _ => self.member(&mut first, member)?,
            }
        }
        if !wrote_text {
            self.key(&mut first, "text");
            self.narrative(&div);
        }
        if !wrote_content {
            self.section_content(&mut first, &kept, empty)?;
        }
        self.out.push(b'}');
        Some(())
    }

    fn section_content(&mut self, first: &mut bool, kept: &[&Node], empty: bool) -> Option<()> {
        if !kept.is_empty() {
            self.key(first, "entry");
            self.out.push(b'[');
            for (i, entry) in kept.iter().enumerate() {
                if i > 0 {
                    self.out.push(b',');
                }
                self.verbatim(entry)?;
            }
            self.out.push(b']');
        } else if empty {
            self.key(first, "emptyReason");
            self.out
                .extend_from_slice(EMPTY_REASON_UNAVAILABLE.as_bytes());
        }
        Some(())
    }

    /// A generated narrative listing what the section still holds.
    fn section_narrative(&self, kept: &[&Node]) -> String {
        let mut div = String::from(XHTML_OPEN);
        if kept.is_empty() {
            div.push_str("<p>No information available.</p>");
        } else {
            div.push_str("<ul>");
            for entry in kept {
                let text = match entry
                    .get("reference")
                    .and_then(Node::as_str)
                    .map(|r| self.index.resolve(0, r))
                {
                    Some(Resolution::Entry(i)) => self
                        .index
                        .entry(i)
                        .and_then(|e| e.resource)
                        .map(|r| describe(self.index, i, r))
                        .unwrap_or_default(),
                    _ => entry
                        .get("display")
                        .and_then(Node::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                };
                div.push_str("<li>");
                div.push_str(&xml_escape(&text));
                div.push_str("</li>");
            }
            div.push_str("</ul>");
        }
        div.push_str("</div>");
        div
    }
}

/// A generated narrative of the Composition: its title and the titles of its
/// sections.
fn composition_narrative(composition: &Node) -> String {
    let mut div = String::from(XHTML_OPEN);
    if let Some(title) = composition.get("title").and_then(Node::as_str) {
        div.push_str("<p>");
        div.push_str(&xml_escape(title));
        div.push_str("</p>");
    }
    let titles: Vec<&str> = composition
        .get("section")
        .map(Node::items)
        .unwrap_or(&[])
        .iter()
        .filter_map(|s| s.get("title").and_then(Node::as_str))
        .collect();
    if !titles.is_empty() {
        div.push_str("<ul>");
        for title in titles {
            div.push_str("<li>");
            div.push_str(&xml_escape(title));
            div.push_str("</li>");
        }
        div.push_str("</ul>");
    }
    if !div.ends_with("</p>") && !div.ends_with("</ul>") {
        div.push_str("<p>Patient summary</p>");
    }
    div.push_str("</div>");
    div
}

/// What a clinical resource is about, in words: the display of its main code
/// (or of its Medication), else its resource type.
fn describe(index: &BundleIndex<'_>, at: usize, resource: &Node) -> String {
    for key in [
        "code",
        "medicationCodeableConcept",
        "vaccineCode",
        "type",
        "valueCodeableConcept",
    ] {
        if let Some(text) = resource.get(key).and_then(concept_text) {
            return text.to_owned();
        }
    }
    if let Some(medication) = resource.get("medicationReference") {
        if let Some(Resolution::Entry(i)) = medication
            .get("reference")
            .and_then(Node::as_str)
            .map(|r| index.resolve(at, r))
            && let Some(text) = index
                .entry(i)
                .and_then(|e| e.resource)
                .and_then(|m| m.get("code"))
                .and_then(concept_text)
        {
            return text.to_owned();
        }
        if let Some(display) = medication.get("display").and_then(Node::as_str) {
            return display.to_owned();
        }
    }
    resource
        .get("resourceType")
        .and_then(Node::as_str)
        .unwrap_or("Entry")
        .to_owned()
}

/// `CodeableConcept.text`, else the first `coding.display`.
fn concept_text(concept: &Node) -> Option<&str> {
    concept.get("text").and_then(Node::as_str).or_else(|| {
        concept
            .get("coding")
            .map(Node::items)
            .unwrap_or(&[])
            .iter()
            .find_map(|c| c.get("display").and_then(Node::as_str))
    })
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` as a JSON string.
fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::json::parse;

    const IPS: &[u8] =
        include_bytes!("../../../conformance/examples/ips/Bundle-IPS-examples-Bundle-01.json");

    const IDENTITY: VariantIdentity<'static> = VariantIdentity {
        id: "variant-1",
        identifier_system: URI_IDENTIFIER_SYSTEM,
        identifier_value: "urn:uuid:0b3d1f0e-8f7a-4c39-9d8e-3c1b2a4d5e6f",
        timestamp: "2026-11-24T12:00:00Z",
    };

    fn restrict(parts: &[RestrictedPart]) -> (serde_json::Value, usize) {
        let root = parse(IPS).unwrap();
        match restrict_document(&root, IPS, parts, IDENTITY) {
            Restricted::Variant {
                content,
                withheld_entries,
            } => (serde_json::from_slice(&content).unwrap(), withheld_entries),
            other => panic!("expected a variant, got {other:?}"),
        }
    }

    fn full_urls(bundle: &serde_json::Value) -> Vec<String> {
        bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["fullUrl"].as_str().unwrap().to_owned())
            .collect()
    }

    fn section<'a>(bundle: &'a serde_json::Value, code: &str) -> &'a serde_json::Value {
        bundle["entry"][0]["resource"]["section"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["code"]["coding"][0]["code"] == code)
            .unwrap()
    }

    #[test]
    fn nothing_named_leaves_the_document_unchanged() {
        let root = parse(IPS).unwrap();
        let parts = [
            RestrictedPart::Entry("Condition/not-in-this-document".into()),
            RestrictedPart::Section {
                system: "http://loinc.org".into(),
                code: "47420-5".into(),
            },
        ];
        assert_eq!(
            restrict_document(&root, IPS, &parts, IDENTITY),
            Restricted::Unchanged
        );
    }

    #[test]
    fn a_withheld_condition_leaves_no_trace() {
        let condition = "urn:uuid:c64139e7-f02d-409c-bf34-75e8bf23bc80";
        let (variant, withheld) = restrict(&[RestrictedPart::Entry(condition.into())]);
        assert_eq!(withheld, 1);
        assert!(!full_urls(&variant).contains(&condition.to_owned()));
        assert_eq!(variant["id"], "variant-1");
        assert_eq!(variant["identifier"]["value"], IDENTITY.identifier_value);
        assert_eq!(variant["timestamp"], IDENTITY.timestamp);
        let problems = section(&variant, "11450-4");
        assert!(problems.get("entry").is_none());
        assert_eq!(problems["emptyReason"]["coding"][0]["code"], "unavailable");
        assert_eq!(problems["text"]["status"], "generated");
        // Nothing of the withheld Condition remains anywhere in the bytes.
        let text = serde_json::to_string(&variant).unwrap();
        assert!(!text.contains("c64139e7"));
        let original: serde_json::Value = serde_json::from_slice(IPS).unwrap();
        let condition_display = original["entry"][4]["resource"]["code"]["coding"][0]["display"]
            .as_str()
            .unwrap();
        assert!(!text.contains(condition_display), "{condition_display}");
    }

    #[test]
    fn entries_that_stay_are_copied_byte_for_byte() {
        let root = parse(IPS).unwrap();
        let Restricted::Variant { content, .. } = restrict_document(
            &root,
            IPS,
            &[RestrictedPart::Entry(
                "AllergyIntolerance/72884cad-ebe6-4f43-a51a-2f978275f132".into(),
            )],
            IDENTITY,
        ) else {
            panic!("expected a variant");
        };
        let variant = parse(&content).unwrap();
        let original_entries = root.get("entry").unwrap().items();
        for entry in variant.get("entry").unwrap().items().iter().skip(1) {
            let bytes = &content[entry.span.start as usize..entry.span.end as usize];
            assert!(
                original_entries
                    .iter()
                    .any(|o| &IPS[o.span.start as usize..o.span.end as usize] == bytes),
                "an entry that stays was rewritten"
            );
        }
        // The other allergy stays, with its own narrative line.
        let (json, _) = restrict(&[RestrictedPart::Entry(
            "AllergyIntolerance/72884cad-ebe6-4f43-a51a-2f978275f132".into(),
        )]);
        let allergies = section(&json, "48765-2");
        assert_eq!(allergies["entry"].as_array().unwrap().len(), 1);
        assert!(allergies.get("emptyReason").is_none());
    }

    #[test]
    fn a_withheld_medication_statement_takes_its_medication_along() {
        let statement = "urn:uuid:c220e36c-eb67-4fc4-9ba1-2fabc52acec6";
        let original: serde_json::Value = serde_json::from_slice(IPS).unwrap();
        let medication_ref = original["entry"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["fullUrl"] == statement)
            .unwrap()["resource"]["medicationReference"]["reference"]
            .as_str()
            .unwrap()
            .to_owned();
        let (variant, withheld) = restrict(&[RestrictedPart::Entry(statement.into())]);
        assert_eq!(withheld, 2);
        let urls = full_urls(&variant);
        assert!(!urls.contains(&statement.to_owned()));
        assert!(!urls.contains(&medication_ref));
        assert_eq!(
            section(&variant, "10160-0")["entry"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn by_identifier_and_by_section() {
        let (variant, withheld) = restrict(&[RestrictedPart::Identifier {
            system: "urn:oid:1.2.3.999".into(),
            value: "66d4a8c7-9081-43e0-a63f-489c2ae6edd6".into(),
        }]);
        assert_eq!(withheld, 1);
        assert!(section(&variant, "11348-0").get("entry").is_none());

        let (variant, _) = restrict(&[RestrictedPart::Section {
            system: "http://loinc.org".into(),
            code: "30954-2".into(),
        }]);
        let results = section(&variant, "30954-2");
        assert!(results.get("entry").is_none());
        assert_eq!(results["emptyReason"]["coding"][0]["code"], "unavailable");
        // The results' member observations went with them.
        let observations = variant["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["resource"]["resourceType"] == "Observation")
            .count();
        assert_eq!(observations, 0);
    }

    #[test]
    fn the_patient_and_authors_cannot_be_withheld() {
        let root = parse(IPS).unwrap();
        let parts = [
            RestrictedPart::Entry("Patient/2b90dd2b-2dab-4c75-9bb9-a355e07401e8".into()),
            RestrictedPart::Entry("urn:uuid:1c616b24-3895-48c4-9a02-9a64110351ef".into()),
        ];
        assert_eq!(
            restrict_document(&root, IPS, &parts, IDENTITY),
            Restricted::Unchanged
        );
    }

    #[test]
    fn not_a_document() {
        let bytes = br#"{"resourceType":"Bundle","type":"collection"}"#;
        let root = parse(bytes).unwrap();
        assert_eq!(
            restrict_document(&root, bytes, &[], IDENTITY),
            Restricted::NotADocument
        );
    }
}
