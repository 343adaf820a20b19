//! FHIRPath invariants (`ElementDefinition.constraint`): compiled once when
//! the validator takes the structures in, evaluated by the walker on every
//! element instance.
//!
//! * Every constraint with an expression is parsed once; the same text
//!   (ele-1, dom-3, … repeat thousands of times across snapshots) shares one
//!   [`Expression`], and equal constraints share one [`Constraint`], so the
//!   walker can tell a constraint it already evaluated on a node (core and
//!   profile walks meet the same nodes) by its address.
//! * Expressions broken as published in R4 are replaced first, from the
//!   table in `profiles/invariant-corrections.toml` ([`Corrections`]); the
//!   table names its source for each.
//! * Elements are typed for the engine from the FHIRPath [`Model`] (built
//!   from the same core StructureDefinitions), so choice elements, `is`,
//!   `as` and `ofType` work.
//!
//! Variables (<https://hl7.org/fhir/R4/fhirpath.html#variables>; `%rootResource` is
//! the 4.0.1 technical correction, <https://hl7.org/fhir/R4B/history.html#v4.0.1>):
//! `%context` is the element, `%resource` the resource that holds it (a
//! Bundle entry's resource, or a contained resource), `%rootResource` the
//! container of a contained resource and otherwise `%resource` itself (a
//! Bundle entry is not contained: its root is itself, as in the Java
//! validator).

use std::collections::HashMap;
use std::sync::Arc;

use ehds_fhir::Node;
use ehds_fhir::bundle::{BundleIndex, Resolution};
use ehds_fhirpath::{Expression, Hooks, Item, Model, TypeId};
use serde::Deserialize;

use super::compile::{Constraint, ElementDef, LoadProblem, Structure};
use crate::terminology::{Membership, Terminology};

/// The table of corrections, compiled in.
const CORRECTIONS: &str = include_str!("../../../../profiles/invariant-corrections.toml");

/// One row of `profiles/invariant-corrections.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Correction {
    /// The constraint key, or `*` for any key with that expression.
    pub key: String,
    /// Where R4 declares it (documentation).
    pub element: String,
    /// The expression as published.
    pub original: String,
    /// The expression evaluated instead.
    pub corrected: Option<String>,
    /// Why the constraint is not evaluated at all (instead of `corrected`).
    pub skip: Option<String>,
    /// Why the published expression is wrong.
    pub reason: String,
    /// Where the correction comes from.
    pub source: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    correction: Vec<Correction>,
}

/// The table of corrections, by published expression.
#[derive(Debug, Clone, Default)]
pub struct Corrections {
    rows: Vec<Correction>,
}

/// What a correction says to do with a constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corrected<'c> {
    /// Evaluate this text (the published one when no row matches).
    Evaluate(&'c str),
    /// Do not evaluate, for this reason.
    Skip(&'c str),
}

impl Corrections {
    /// The table shipped in `profiles/invariant-corrections.toml`.
    pub fn shipped() -> Result<Corrections, String> {
        Self::parse(CORRECTIONS)
    }

    /// Parses a table (TOML, `[[correction]]` rows).
    pub fn parse(text: &str) -> Result<Corrections, String> {
        let table: Table = toml::from_str(text).map_err(|e| e.to_string())?;
        for row in &table.correction {
            if row.corrected.is_some() == row.skip.is_some() {
                return Err(format!(
                    "{}: give either 'corrected' or 'skip'",
                    row.original
                ));
            }
        }
        Ok(Corrections {
            rows: table.correction,
        })
    }

    /// The rows.
    pub fn rows(&self) -> &[Correction] {
        &self.rows
    }

    /// What to evaluate for constraint `key` published as `expression`.
    pub fn apply<'c>(&'c self, key: &str, expression: &'c str) -> Corrected<'c> {
        match self
            .rows
            .iter()
            .find(|r| r.original == expression && (r.key == "*" || r.key == key))
        {
            Some(Correction {
                corrected: Some(text),
                ..
            }) => Corrected::Evaluate(text),
            Some(Correction {
                skip: Some(reason), ..
            }) => Corrected::Skip(reason),
            _ => Corrected::Evaluate(expression),
        }
    }
}

/// Parses every constraint of the structures once and types their elements
/// for the engine.
pub(super) struct Compiler<'m> {
    model: &'m Model,
    corrections: Corrections,
    /// Parsed expressions by the text evaluated (`None`: does not parse).
    expressions: HashMap<Box<str>, Option<Arc<Expression>>>,
    /// Compiled constraints by (key, severity, human, published text).
    constraints: HashMap<ConstraintId, Arc<Constraint>>,
}

/// (key, severity, human, published text): what makes two constraints the
/// same.
type ConstraintId = (Box<str>, u8, Box<str>, Box<str>);

impl<'m> Compiler<'m> {
    pub(super) fn new(model: &'m Model, corrections: Corrections) -> Self {
        Self {
            model,
            corrections,
            expressions: HashMap::new(),
            constraints: HashMap::new(),
        }
    }

    /// Parses the constraints of `structure` (sharing equal ones) and sets
    /// the FHIRPath types of its elements and type references.
    pub(super) fn prepare(&mut self, structure: &mut Structure, problems: &mut Vec<LoadProblem>) {
        let root_type = self.model.type_named(&structure.type_name);
        let paths: Vec<String> = structure.elements.iter().map(|e| e.path.clone()).collect();
        let references: Vec<Option<usize>> = structure
            .elements
            .iter()
            .map(|e| e.content_reference)
            .collect();
        for (index, element) in structure.elements.iter_mut().enumerate() {
            for type_ref in &mut element.types {
                type_ref.fhirpath_type = self.model.type_named(&type_ref.code);
            }
            let typed_path = references
                .get(index)
                .copied()
                .flatten()
                .and_then(|target| paths.get(target))
                .unwrap_or(&element.path);
            element.fhirpath_type = if index == 0 {
                root_type
            } else {
                element_type(self.model, element, typed_path)
            };
            let url = structure.url.as_str();
            for constraint in &mut element.constraints {
                *constraint = self.compile(constraint, url, problems);
            }
        }
    }

    fn compile(
        &mut self,
        raw: &Constraint,
        url: &str,
        problems: &mut Vec<LoadProblem>,
    ) -> Arc<Constraint> {
        let severity = u8::from(raw.severity == ehds_fhir::outcome::Severity::Error);
        let id = (
            raw.key.clone(),
            severity,
            raw.human.clone(),
            raw.source.clone(),
        );
        if let Some(shared) = self.constraints.get(&id) {
            return Arc::clone(shared);
        }
        let expression = match self.corrections.apply(&raw.key, &raw.source) {
            Corrected::Skip(_) => None,
            Corrected::Evaluate(text) => {
                let parsed = self
                    .expressions
                    .entry(text.into())
                    .or_insert_with(|| Expression::parse(text).ok().map(Arc::new))
                    .clone();
                if parsed.is_none() {
                    let error = Expression::parse(text).err().map(|e| e.to_string());
                    problems.push(LoadProblem {
                        url: url.to_owned(),
                        problem: format!(
                            "invariant {} does not parse ({}): {text}",
                            raw.key,
                            error.unwrap_or_default()
                        ),
                    });
                }
                parsed
            }
        };
        let compiled = Arc::new(Constraint {
            key: raw.key.clone(),
            severity: raw.severity,
            human: raw.human.clone(),
            source: raw.source.clone(),
            true_when_valued: expression
                .as_deref()
                .is_some_and(Expression::is_true_when_context_has_value),
            expression,
            index: u32::try_from(self.constraints.len()).unwrap_or(u32::MAX),
        });
        self.constraints.insert(id, Arc::clone(&compiled));
        compiled
    }
}

/// The model type of an element's instances: its single type, or for a
/// backbone element (or a content reference) the type found by walking its
/// path from the root type.
fn element_type(model: &Model, element: &ElementDef, path: &str) -> Option<TypeId> {
    match element.types.as_slice() {
        [only] if !matches!(only.code.as_str(), "BackboneElement" | "Element") => {
            model.type_named(&only.code)
        }
        [] | [_] => {
            let mut parts = path.split('.');
            let mut ty = model.type_named(parts.next()?)?;
            for part in parts {
                ty = match model.child(ty, part.trim_end_matches("[x]"))? {
                    ehds_fhirpath::Child::Single(t) => *t,
                    ehds_fhirpath::Child::Choice(_) => return None,
                };
            }
            Some(ty)
        }
        _ => None,
    }
}

/// What the engine asks of the validator while it walks one document.
pub(super) struct WalkHooks<'h, 'd> {
    /// The root Bundle's entries.
    pub bundle: Option<&'h BundleIndex<'d>>,
    /// The entry being walked.
    pub entry: Option<usize>,
    /// ValueSets and CodeSystems for `memberOf()`.
    pub terminology: &'h Terminology,
    /// Profiles for `conformsTo()`, and how deep conformance checks nest.
    pub conformance: Option<(&'h dyn Profiles, u8)>,
}

/// The validator as `conformsTo()` sees it: the profiles it knows and a
/// nested validation against one of them. The structure validator
/// implements it, so this module needs nothing from the one above it.
pub(super) trait Profiles {
    /// The compiled profile of `canonical` (`url` or `url|version`).
    fn profile(&self, canonical: &str) -> Option<&Structure>;

    /// Whether `resource` conforms to the profile `url` (no error when
    /// validated against it, checks nested `depth` deep).
    fn conforms(&self, resource: &Node, url: &str, terminology: &Terminology, depth: u8) -> bool;
}

impl<'d> Hooks<'d> for WalkHooks<'_, 'd> {
    /// Inside the Bundle being validated only (by fullUrl, or `Type/id`
    /// relative to the referring entry), as R4 bundle.html#references
    /// resolves them; nothing outside it is fetched.
    fn resolve(&self, reference: &str) -> Option<&'d Node> {
        let bundle = self.bundle?;
        let from = match self.entry {
            Some(entry) => entry,
            // From the Bundle itself: only absolute references.
            None if reference.contains(':') => 0,
            None => return None,
        };
        match bundle.resolve(from, reference) {
            Resolution::Entry(index) => bundle.entry(index)?.resource,
            _ => None,
        }
    }

    /// Membership decided offline by the validator's terminology; `None`
    /// (empty) when it cannot be decided.
    fn member_of(&self, item: &Item<'d>, type_name: &str, value_set: &str) -> Option<bool> {
        let terminology = self.terminology;
        let Item::Node(node) = item else {
            return item
                .as_str()
                .and_then(|code| decided(terminology.check_bare_code(value_set, code)));
        };
        let node = node.value?;
        let coding = |coding: &Node| -> Option<bool> {
            let code = coding.get("code").and_then(Node::as_str)?;
            let system = coding.get("system").and_then(Node::as_str);
            decided(terminology.check_code(value_set, system, code))
        };
        match type_name {
            "Coding" => coding(node),
            "CodeableConcept" => {
                let results: Vec<Option<bool>> = node
                    .get("coding")
                    .map(Node::items)
                    .unwrap_or_default()
                    .iter()
                    .map(coding)
                    .collect();
                if results.contains(&Some(true)) {
                    Some(true)
                } else if !results.is_empty() && results.iter().all(|r| *r == Some(false)) {
                    Some(false)
                } else {
                    None
                }
            }
            _ => node
                .as_str()
                .and_then(|code| decided(terminology.check_bare_code(value_set, code))),
        }
    }

    /// Validates the resource against the profile (structure, slicing,
    /// bindings, invariants) with the same validator; `None` when the
    /// profile is unknown or checks nest too deep.
    fn conforms_to(&self, resource: &Item<'d>, url: &str) -> Option<bool> {
        let (validator, depth) = self.conformance?;
        let Item::Node(node) = resource else {
            return Some(false);
        };
        let node = node.value?;
        let structure = validator.profile(url)?;
        if depth >= 2 {
            return None;
        }
        if node.get("resourceType").and_then(Node::as_str) != Some(structure.type_name.as_str()) {
            return Some(false);
        }
        Some(validator.conforms(node, url, self.terminology, depth + 1))
    }

    /// The narrative checker ([`crate::narrative`]) reports txt-1 and txt-2
    /// itself, with the rule broken and where; answering true here keeps
    /// the same finding from being reported twice.
    fn html_checks(&self, _div: &Item<'d>) -> bool {
        true
    }
}

/// A set of (node position, constraint index) pairs packed into one word
/// each ([`pair`]): the walker asks it once per constraint it meets on a
/// node, ~2 000 times per 50 KB document, so it is a plain open-addressing
/// table (linear probing, multiplicative hash, at most half full) rather
/// than a general hash set.
#[derive(Debug, Clone)]
pub(super) struct PairSet {
    /// `pair + 1` per occupied slot, 0 when free; a power-of-two length.
    slots: Vec<u64>,
    /// 64 - log2(slots.len()): the product's bits that pick a slot.
    shift: u32,
    len: usize,
    /// The pairs added, in order, when kept ([`PairSet::logged`]): a
    /// probe's set, merged into its walk's when the probe is adopted, is
    /// read from here rather than by scanning every slot.
    log: Option<Vec<u64>>,
}

/// The word for a pair: the node position low, the constraint index high.
pub(super) fn pair(node_position: u32, constraint_index: u32) -> u64 {
    u64::from(node_position) | (u64::from(constraint_index) << 32)
}

impl Default for PairSet {
    /// An empty set that allocates on its first insert.
    fn default() -> Self {
        PairSet {
            slots: Vec::new(),
            shift: 64,
            len: 0,
            log: None,
        }
    }
}

impl PairSet {
    /// An empty set with room for `n` pairs before it grows.
    pub(super) fn with_capacity(n: usize) -> PairSet {
        let size = (n.max(4) * 2).next_power_of_two();
        PairSet {
            slots: vec![0; size],
            shift: 64 - size.trailing_zeros(),
            len: 0,
            log: None,
        }
    }

    /// This set, keeping the pairs added in order ([`Self::extend_from`]
    /// reads them).
    pub(super) fn logged(mut self) -> PairSet {
        self.log = Some(Vec::new());
        self
    }

    /// Adds `pair`; false when it was there already.
    #[inline]
    pub(super) fn insert(&mut self, pair: u64) -> bool {
        if self.len * 2 >= self.slots.len() {
            self.grow();
        }
        let stored = pair.wrapping_add(1);
        let mask = self.slots.len() - 1;
        // Fibonacci hashing: the high bits of the product mix every bit of
        // the pair.
        let mut at =
            usize::try_from(pair.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift).unwrap_or(0);
        loop {
            match self.slots.get_mut(at) {
                Some(slot) if *slot == stored => return false,
                Some(slot) if *slot == 0 => {
                    *slot = stored;
                    self.len += 1;
                    if let Some(log) = &mut self.log {
                        log.push(pair);
                    }
                    return true;
                }
                Some(_) => at = (at + 1) & mask,
                // Unreachable (`at` < the length); counted as new, so the
                // constraint is evaluated rather than skipped.
                None => return true,
            }
        }
    }

    /// Whether `pair` is in the set.
    #[inline]
    pub(super) fn contains(&self, pair: u64) -> bool {
        if self.len == 0 {
            return false;
        }
        let stored = pair.wrapping_add(1);
        let mask = self.slots.len() - 1;
        let mut at =
            usize::try_from(pair.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift).unwrap_or(0);
        loop {
            match self.slots.get(at) {
                Some(slot) if *slot == stored => return true,
                Some(slot) if *slot == 0 => return false,
                Some(_) => at = (at + 1) & mask,
                None => return false,
            }
        }
    }

    /// Removes every pair, keeping the table.
    pub(super) fn clear(&mut self) {
        if self.len > 0 {
            self.slots.fill(0);
            self.len = 0;
        }
        if let Some(log) = &mut self.log {
            log.clear();
        }
    }

    /// Adds every pair of `other`.
    pub(super) fn extend_from(&mut self, other: &PairSet) {
        if let Some(log) = &other.log {
            for &pair in log {
                self.insert(pair);
            }
            return;
        }
        for stored in other.slots.iter().filter(|s| **s != 0) {
            self.insert(stored.wrapping_sub(1));
        }
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(8);
        let old = std::mem::replace(&mut self.slots, vec![0; size]);
        self.shift = 64 - size.trailing_zeros();
        self.len = 0;
        // Moved, not added: not logged again.
        let log = self.log.take();
        for stored in old.into_iter().filter(|s| *s != 0) {
            self.insert(stored.wrapping_sub(1));
        }
        self.log = log;
    }
}

fn decided(membership: Membership) -> Option<bool> {
    match membership {
        Membership::Member => Some(true),
        Membership::NotMember(_) => Some(false),
        Membership::NotChecked(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ehds_profiles::Registry;
    use ehds_test_support::repo_root;

    #[test]
    fn every_correction_applies_to_a_constraint_in_the_profiles() {
        let corrections = Corrections::shipped().unwrap();
        assert!(!corrections.rows().is_empty());
        let registry = Registry::load_root(&repo_root().join("profiles")).unwrap();
        let mut published = std::collections::HashSet::new();
        for sd in registry.of_type("StructureDefinition") {
            for element in sd
                .resource
                .root()
                .get("snapshot")
                .and_then(|s| s.get("element"))
                .map(Node::items)
                .unwrap_or_default()
            {
                for c in element
                    .get("constraint")
                    .map(Node::items)
                    .unwrap_or_default()
                {
                    let text = |k: &str| c.get(k).and_then(Node::as_str).unwrap_or_default();
                    published.insert((text("key").to_owned(), text("expression").to_owned()));
                }
            }
        }
        for row in corrections.rows() {
            assert!(
                published
                    .iter()
                    .any(|(k, e)| *e == row.original && (row.key == "*" || *k == row.key)),
                "correction {} matches no published constraint: {}",
                row.key,
                row.original
            );
            assert!(!row.source.is_empty() && !row.reason.is_empty());
            if let Some(corrected) = &row.corrected {
                Expression::parse(corrected)
                    .unwrap_or_else(|e| panic!("{}: corrected text does not parse: {e}", row.key));
            }
        }
    }

    #[test]
    fn pair_set_tells_pairs_apart_and_grows() {
        let mut set = PairSet::with_capacity(2);
        let mut expected = std::collections::HashSet::new();
        // Positions and indexes at both ends of their ranges, and 0 (stored
        // as 1) beside u64::MAX - 1.
        let mut pairs = vec![pair(0, 0), pair(u32::MAX, u32::MAX - 1), pair(u32::MAX, 0)];
        for position in (0..5_000u32).step_by(7) {
            for index in [0u32, 1, 2, 1_000, 70_000] {
                pairs.push(pair(position, index));
            }
        }
        for round in 0..2 {
            for p in &pairs {
                assert_eq!(set.insert(*p), expected.insert(*p), "round {round}: {p:#x}");
            }
        }
        assert_eq!(set.len, expected.len());
        assert!(set.slots.len() >= 2 * set.len);
        for p in &pairs {
            assert!(set.contains(*p));
        }
        assert!(!set.contains(pair(1, 3)));
        assert!(!PairSet::default().contains(pair(0, 0)));
        let mut copy = PairSet::with_capacity(2);
        copy.extend_from(&set);
        assert_eq!(copy.len, set.len);
        assert!(pairs.iter().all(|p| copy.contains(*p)));
    }

    #[test]
    fn corrections_apply_by_text_and_key() {
        let corrections = Corrections::parse(
            r#"
[[correction]]
key = "x-1"
element = "X"
original = "a.b"
corrected = "a.c"
reason = "r"
source = "s"

[[correction]]
key = "*"
element = "X"
original = "skip.me"
skip = "no"
reason = "r"
source = "s"
"#,
        )
        .unwrap();
        assert_eq!(corrections.apply("x-1", "a.b"), Corrected::Evaluate("a.c"));
        assert_eq!(corrections.apply("x-2", "a.b"), Corrected::Evaluate("a.b"));
        assert_eq!(corrections.apply("y-9", "skip.me"), Corrected::Skip("no"));
        assert!(
            Corrections::parse(
                "[[correction]]\nkey='k'\nelement='e'\noriginal='o'\nreason='r'\nsource='s'\n"
            )
            .is_err()
        );
    }
}
