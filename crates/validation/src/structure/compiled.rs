//! The [`StructureValidator`]'s compiled form: what [`StructureValidator::new`]
//! builds from a registry, written out and read back without the registry
//! (the validator's compiled form, embedded at build time).
//!
//! Structures are written once each, in [`Structure::id`] order; the maps
//! that share them (`by_url`, `by_canonical`, `core`, the package scopes)
//! are written as structure ids, so reading restores the same sharing.
//! Constraints shared between elements are written once, in
//! [`Constraint::index`] order, and each element lists the indices of its
//! own; an expression is written as the text that was parsed (after the
//! table of corrections) and parsed again on reading, once per distinct
//! text. Primitive value regexes are written as their source and compiled
//! again on reading. The cache of merged children starts empty.

use std::sync::{Arc, RwLock};

use ehds_fhir::outcome::Severity;
use ehds_fhirpath::{Expression, Model};
use rustc_hash::FxHashMap as HashMap;

use super::StructureValidator;
use super::compile::{Constraint, Structure};
use crate::structure::compile::CompileError;

/// One shared constraint as written.
#[derive(serde::Serialize, serde::Deserialize)]
struct ConstraintForm<K> {
    key: K,
    severity: Severity,
    human: K,
    source: K,
    /// The text evaluated (after corrections); `None` when the constraint
    /// is skipped or its expression does not parse.
    evaluated: Option<K>,
    true_when_valued: bool,
}

/// The form as written, borrowing from the validator (`K` = `&str`), and
/// as read (`K` = `Box<str>`, `S` = owned structures and model): both
/// serialise to the same bytes.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Form<K, S, M> {
    /// By [`Constraint::index`] (`None`: an index no element uses).
    constraints: Vec<Option<ConstraintForm<K>>>,
    /// By [`Structure::id`].
    structures: Vec<S>,
    /// Per structure, per element: the number of its constraints then
    /// their indices.
    element_constraints: Vec<Vec<u32>>,
    by_url: Vec<(K, u32)>,
    by_canonical: Vec<(K, u32)>,
    package_of: Vec<u32>,
    /// `(name, version)`.
    packages: Vec<(K, K)>,
    scoped: Vec<Vec<(K, u32)>>,
    core: Vec<(K, u32)>,
    /// `(type name, anchored pattern)`.
    regexes: Vec<(K, K)>,
    model: M,
}

/// The form as written.
pub(crate) type Written<'a> = Form<&'a str, &'a Structure, &'a Model>;

/// The form as read.
pub(crate) type Read = Form<Box<str>, Structure, Model>;

/// A map to structures as (key, structure id) pairs in key order.
fn ids(map: &HashMap<String, Arc<Structure>>) -> Vec<(&str, u32)> {
    let mut pairs: Vec<(&str, u32)> = map.iter().map(|(k, s)| (k.as_str(), s.id)).collect();
    pairs.sort_unstable();
    pairs
}

fn malformed(what: impl Into<String>) -> CompileError {
    CompileError::CompiledForm(what.into())
}

impl StructureValidator {
    /// The compiled form of this validator, borrowing from it.
    pub(crate) fn written(&self) -> Written<'_> {
        let mut constraints: Vec<Option<&Constraint>> = Vec::new();
        let mut element_constraints = Vec::with_capacity(self.all.len());
        for structure in &self.all {
            let mut refs = Vec::new();
            for element in &structure.elements {
                refs.push(u32::try_from(element.constraints.len()).unwrap_or(u32::MAX));
                for constraint in &element.constraints {
                    refs.push(constraint.index);
                    let at = usize::try_from(constraint.index).unwrap_or(usize::MAX);
                    if constraints.len() <= at {
                        constraints.resize(at.saturating_add(1), None);
                    }
                    if let Some(slot) = constraints.get_mut(at) {
                        *slot = Some(constraint);
                    }
                }
            }
            element_constraints.push(refs);
        }
        let mut regexes: Vec<(&str, &str)> = self
            .regexes
            .iter()
            .map(|(type_name, regex)| (type_name.as_str(), regex.as_str()))
            .collect();
        regexes.sort_unstable();
        Form {
            constraints: constraints
                .into_iter()
                .map(|c| {
                    c.map(|c| ConstraintForm {
                        key: &*c.key,
                        severity: c.severity,
                        human: &*c.human,
                        source: &*c.source,
                        evaluated: c.expression.as_deref().map(Expression::source),
                        true_when_valued: c.true_when_valued,
                    })
                })
                .collect(),
            structures: self.all.iter().map(|s| &**s).collect(),
            element_constraints,
            by_url: ids(&self.by_url),
            by_canonical: ids(&self.by_canonical),
            package_of: self.package_of.clone(),
            packages: self
                .packages
                .iter()
                .map(|p| (p.name.as_str(), p.version.as_str()))
                .collect(),
            scoped: self.scoped.iter().map(ids).collect(),
            core: ids(&self.core),
            regexes,
            model: &self.model,
        }
    }

    /// Rebuilds the validator from its compiled form.
    pub(crate) fn from_read(form: Read) -> Result<Self, CompileError> {
        // Constraints: each distinct evaluated text parsed once.
        let mut expressions: HashMap<&str, Arc<Expression>> = HashMap::default();
        let mut constraints = Vec::with_capacity(form.constraints.len());
        for (index, c) in form.constraints.iter().enumerate() {
            let Some(c) = c else {
                constraints.push(None);
                continue;
            };
            let expression = match c.evaluated.as_deref() {
                None => None,
                Some(text) => Some(match expressions.get(text) {
                    Some(parsed) => Arc::clone(parsed),
                    None => {
                        let parsed = Arc::new(Expression::parse(text).map_err(|e| {
                            malformed(format!("invariant {} does not parse: {e}", c.key))
                        })?);
                        expressions.insert(text, Arc::clone(&parsed));
                        parsed
                    }
                }),
            };
            constraints.push(Some(Arc::new(Constraint {
                key: c.key.clone(),
                severity: c.severity,
                human: c.human.clone(),
                source: c.source.clone(),
                expression,
                true_when_valued: c.true_when_valued,
                index: u32::try_from(index).unwrap_or(u32::MAX),
            })));
        }
        drop(expressions);
        if form.element_constraints.len() != form.structures.len() {
            return Err(malformed(
                "constraint lists and structures differ in number",
            ));
        }
        let mut all = Vec::with_capacity(form.structures.len());
        for (mut structure, refs) in form.structures.into_iter().zip(form.element_constraints) {
            let mut refs = refs.into_iter();
            for element in &mut structure.elements {
                let count = refs
                    .next()
                    .ok_or_else(|| malformed("constraint list too short"))?;
                let mut own = Vec::with_capacity(usize::try_from(count).unwrap_or_default());
                for _ in 0..count {
                    let index = refs
                        .next()
                        .ok_or_else(|| malformed("constraint list too short"))?;
                    let constraint = usize::try_from(index)
                        .ok()
                        .and_then(|i| constraints.get(i)?.as_ref())
                        .ok_or_else(|| malformed("constraint index out of range"))?;
                    own.push(Arc::clone(constraint));
                }
                element.constraints = own;
            }
            all.push(Arc::new(structure));
        }
        let structure = |id: u32| -> Result<Arc<Structure>, CompileError> {
            usize::try_from(id)
                .ok()
                .and_then(|i| all.get(i))
                .map(Arc::clone)
                .ok_or_else(|| malformed("structure id out of range"))
        };
        let map =
            |pairs: Vec<(Box<str>, u32)>| -> Result<HashMap<String, Arc<Structure>>, CompileError> {
                pairs
                    .into_iter()
                    .map(|(key, id)| Ok((String::from(key), structure(id)?)))
                    .collect()
            };
        let by_url = map(form.by_url)?;
        let by_canonical = map(form.by_canonical)?;
        let core = map(form.core)?;
        let scoped = form
            .scoped
            .into_iter()
            .map(map)
            .collect::<Result<Vec<_>, _>>()?;
        let mut regexes = HashMap::default();
        for (type_name, pattern) in form.regexes {
            let compiled = super::value_regex::ValueRegex::new(&pattern)
                .map_err(|e| malformed(format!("value regex of {type_name}: {e}")))?;
            regexes.insert(String::from(type_name), compiled);
        }
        Ok(Self {
            by_url,
            by_canonical,
            package_of: form.package_of,
            packages: form
                .packages
                .into_iter()
                .map(|(name, version)| {
                    Arc::new(ehds_profiles::PackageId {
                        name: name.into(),
                        version: version.into(),
                    })
                })
                .collect(),
            scoped,
            core_by_type: super::core_by_type(&core, &form.model),
            core,
            regexes,
            all,
            children: RwLock::new(super::ChildCache::default()),
            model: form.model,
            unknown_extensions: crate::options::UnknownExtensions::default(),
            narrative_links: Severity::Warning,
            now: None,
        })
    }
}
