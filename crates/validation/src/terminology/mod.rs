//! Offline ValueSet membership for binding checks.
//!
//! [`Terminology`] is compiled once from the ValueSets and CodeSystems of a
//! [`Registry`] and answers "is this code in that value set?" with a
//! [`Membership`]: [`Membership::Member`], [`Membership::NotMember`] (with
//! why), or [`Membership::NotChecked`] when the answer needs something the
//! gateway does not hold (SNOMED CT, LOINC, a filter it does not evaluate,
//! a value set it lacks). It never guesses: anything it cannot decide is
//! `NotChecked`, never a false `NotMember`.
//!
//! Work is done at build: a complete expansion becomes sorted sets of codes
//! by system (`code_set`); each `compose.include`/`exclude` becomes a clause
//! whose system part is a sorted set of listed codes, a whole held
//! CodeSystem, or a bit set of the concepts its filters select (every held
//! CodeSystem is finite, so every filter evaluable offline is evaluated
//! once). Imports point at other compiled ValueSets, so a check is a few
//! look-ups (hash or binary search) per clause of the value set and what it
//! imports; it is bounded by a depth limit, a step budget and a guard
//! against value sets importing each other.
//!
//! Sources: the R4 (4.0.1) element definitions in `profiles/hl7.fhir.r4.core-4.0.1`
//! (StructureDefinition-ValueSet/CodeSystem, CodeSystem-filter-operator,
//! CodeSystem-concept-properties), and the R4 pages named.
//!
//! | rule | source |
//! | --- | --- |
//! | a ValueSet with `expansion.contains` (nested `contains` too) is decided by it; entries without `code` are groupings, not members | R4 valueset.html ("Value Set Expansion"); `ValueSet.expansion.contains.code` ("If this code is missing the entry ... does not represent a valid code") |
//! | an expansion is incomplete when `total` exceeds the codes it holds, when it is a page (`offset` > 0), or when marked limited (parameter `limitedExpansion`, extension `valueset-toocostly`); then `compose` decides, and a code found in the partial expansion is still a member | `ValueSet.expansion.total`/`offset` definitions (paging); R4 extension `valueset-toocostly`; `limitedExpansion` (the STU3 $expand parameter, still written by some servers) |
//! | from `compose`: a member matches some `include` and no `exclude` | `ValueSet.compose.include`/`exclude` definitions |
//! | within one include every condition holds: the `system` part and each imported `valueSet` | `ValueSet.compose.include` comment ("All the conditions in an include must be true") |
//! | several `valueSet`s in one include: R4 is self-contradictory (the include comment says "the codes must be in all the value sets", the `include.valueSet` definition says "union"). Member when in all, not a member when in none, otherwise NotChecked | `ValueSet.compose.include` comment vs `ValueSet.compose.include.valueSet` definition |
//! | `system` without `concept`/`filter` includes the whole CodeSystem: a member iff the held CodeSystem defines the code (nested `concept.concept` included) | `ValueSet.compose.include.system` comment ("If there are no codes or filters, the entire code system is included"); `CodeSystem.concept.concept` |
//! | listed `concept`s decide by the list alone (the CodeSystem need not be held) | `ValueSet.compose.include.concept` ("Specifies a concept to be included or excluded") |
//! | a CodeSystem with `content` `not-present` defines no codes: NotChecked; `example`/`fragment`: a code it defines is a member, others NotChecked; filters need `complete` | R4 CodeSystem-codesystem-content-mode definitions |
//! | a CodeSystem with `supplements` (`content` `supplement`) is not a code system of its own | `CodeSystem.supplements`; content mode `supplement` ("doesn't define any new concepts") |
//! | filters `is-a`, `descendent-of`, `is-not-a`, `generalizes` on `concept`; `=`, `in`, `not-in`, `regex` on `concept`/`code` or a property; `exists` on a property; several filters all apply | R4 CodeSystem-filter-operator; `ValueSet.compose.include.filter` ("If multiple filters are specified, they SHALL all be true"); `filter.value` (comma-separated for `in`/`not-in`, `true`/`false` for `exists`) |
//! | the hierarchy is nested `concept`s plus the `parent`/`child` properties; subsumption filters need `hierarchyMeaning` `is-a` or none stated | `CodeSystem.concept.concept`, `CodeSystem.hierarchyMeaning`; R4 concept-properties `parent`, `child` |
//! | `regex` matches the whole value | filter-operator `regex` ("matches the regex"); anchored like XML Schema patterns, which FHIR regexes follow |
//! | an unknown operator, a property the CodeSystem does not have, a system-specific `CodeSystem.filter`, a filter value naming an unknown code: NotChecked | never a false NotMember (this module's contract) |
//! | `compose.inactive = false` excludes concepts marked inactive (`inactive` true; `status` `retired`, as the v3 code systems mark them) | `ValueSet.compose.inactive`; R4 concept-properties `inactive` |
//! | codes compare by `CodeSystem.caseSensitive` when stated; when not stated, codes of HL7 systems (`http://hl7.org/fhir/`, `http://terminology.hl7.org/`) and UCUM are case-sensitive, BCP 47 language tags are not, and any other code is accepted in any case | `CodeSystem.caseSensitive` comment ("When the rule is not known, Postel's law should be followed: ... accept codes in any case"); R4 terminologies.html §4.1 ("all the codes defined by FHIR itself are case sensitive"); R4 ucum.html (UCUM case-sensitive form); RFC 5646 §2.1.1 (tags are case-insensitive) |
//! | system URIs compare exactly | R4 terminologies.html §4.1 ("system values are always case sensitive") |
//! | a bare `code` (datatype `code`, no system) takes its system from the value set: a member when (system, code) is a member for some system the value set draws codes from (its includes, its expansion, what it imports) | R4 datatypes.html `code` ("a set of controlled strings defined elsewhere"): the element carries no system, so only the bound value set supplies one (no verbatim R4 sentence found) |
//! | `include.version`, and the version of a ValueSet canonical: the pinned version when held, else the latest held (without remark) | this gateway's policy: decide offline with what is held |
//! | `CodeSystem.valueSet` names the value set of all its codes when no ValueSet resource has that URL | `CodeSystem.valueSet` definition |

mod code_set;
mod code_system;
pub mod recorded;
mod value_set;

#[cfg(test)]
mod tests;

use rustc_hash::FxHashMap as HashMap;
use std::borrow::Cow;
use std::fmt;

use ehds_profiles::Registry;

use code_system::{CodeSystemIndex, code_key};
use value_set::{Body, Clause, Compiler, Expansion, Import, Matcher, ValueSetDef};

/// Deepest chain of value sets importing value sets followed in one check.
const MAX_IMPORT_DEPTH: usize = 32;

/// Most value sets evaluated in one check (imports counted each time).
const MAX_STEPS: usize = 4096;

/// Compiled, immutable terminology from a [`Registry`]: ValueSet membership
/// and CodeSystem displays, decided offline. Shareable (`Send + Sync`);
/// build once at start-up, or read it from a validator's compiled form
/// (maps written in key order).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Terminology {
    systems: Systems,
    value_sets: Vec<ValueSetDef>,
    /// ValueSet index by `url` (the latest version) and `url|version`.
    #[serde(serialize_with = "crate::sorted::sorted_map")]
    vs_by_canonical: HashMap<String, usize>,
    /// By ValueSet index: the systems its members can come from (its
    /// includes, its expansion, and what it imports), for bare codes.
    systems_of: Vec<Vec<Box<str>>>,
    /// A terminology server's recorded answers about codes of code systems
    /// not held ([`recorded`]); the operator's, never part of the compiled
    /// form.
    #[serde(skip)]
    recorded: Option<std::sync::Arc<recorded::RecordedAnswers>>,
}

/// Whether a code is in a value set, as far as can be decided offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    /// In the value set.
    Member,
    /// Not in it; the message says why (unknown code in a held CodeSystem,
    /// system not included by the value set, excluded, …).
    NotMember(String),
    /// Could not be decided offline; the reason names what is missing (the
    /// ValueSet itself, a CodeSystem not held such as SNOMED CT or LOINC, a
    /// filter not supported, a value set imported from an unknown
    /// canonical, …).
    NotChecked(String),
}

/// Held CodeSystems (supplements left out) by canonical.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Systems {
    list: Vec<CodeSystemIndex>,
    /// Index by `url` (the latest version) and `url|version`.
    #[serde(serialize_with = "crate::sorted::sorted_map")]
    by_canonical: HashMap<String, usize>,
}

impl Systems {
    fn build(registry: &Registry) -> Self {
        let mut systems = Self::default();
        for loaded in registry.of_type("CodeSystem") {
            let root = loaded.resource.root();
            if root.get("supplements").is_some()
                || code_system::text(root, "content") == Some("supplement")
            {
                continue;
            }
            let stated = code_system::boolean(root, "caseSensitive");
            let index = CodeSystemIndex::new(root, &loaded.url, case_rule(&loaded.url, stated));
            systems
                .by_canonical
                .insert(loaded.canonical(), systems.list.len());
            systems.list.push(index);
        }
        // A version-less URL means the latest version the registry holds.
        let urls: Vec<String> = systems.list.iter().map(|c| c.url.clone()).collect();
        for url in urls {
            if let Some(latest) = registry.resolve_typed("CodeSystem", &url)
                && let Some(&id) = systems.by_canonical.get(&latest.canonical())
            {
                systems.by_canonical.insert(url, id);
            }
        }
        systems
    }

    fn get(&self, id: usize) -> Option<&CodeSystemIndex> {
        self.list.get(id)
    }

    /// The held CodeSystem `url`, the pinned `version` when held, else the
    /// latest held.
    fn lookup(&self, url: &str, version: Option<&str>) -> Option<usize> {
        version
            .and_then(|v| self.by_canonical.get(&format!("{url}|{v}")))
            .or_else(|| self.by_canonical.get(url))
            .copied()
    }

    /// Whether codes of `system` compare case-sensitively.
    fn case_sensitive(&self, system: &str) -> bool {
        self.lookup(system, None)
            .and_then(|id| self.get(id))
            .map_or_else(|| case_rule(system, None), |cs| cs.case_sensitive)
    }

    /// The key `code` of `system` is stored and looked up under.
    fn key<'c>(&self, system: &str, code: &'c str) -> Cow<'c, str> {
        code_key(self.case_sensitive(system), code)
    }
}

/// The case rule of a code system: `caseSensitive` when stated; otherwise
/// case-sensitive for HL7-defined systems and UCUM, and case-insensitive for
/// BCP 47 and any other system (Postel's law, as `CodeSystem.caseSensitive`
/// asks when the rule is not known).
fn case_rule(url: &str, stated: Option<bool>) -> bool {
    if let Some(stated) = stated {
        return stated;
    }
    url.starts_with("http://hl7.org/fhir/")
        || url.starts_with("http://terminology.hl7.org/")
        || url == "http://unitsofmeasure.org"
}

/// The ValueSet `canonical` names: `url|version` exactly, else the `url`
/// (latest held version).
fn find_value_set(index: &HashMap<String, usize>, canonical: &str) -> Option<usize> {
    index.get(canonical).copied().or_else(|| {
        let (url, _) = canonical.split_once('|')?;
        index.get(url).copied()
    })
}

/// A three-valued answer inside the evaluation.
#[derive(Debug)]
enum Tri {
    Yes,
    /// Not a member: why, or `None` when the clause or expansion does not
    /// cover the code's system at all (no message is built for that common
    /// case).
    No(Option<String>),
    Unknown(String),
}

impl Tri {
    fn no(reason: String) -> Self {
        Self::No(Some(reason))
    }
}

/// Bounds of one check: the value sets being evaluated (innermost last)
/// and how many were evaluated.
struct Walk {
    stack: [usize; MAX_IMPORT_DEPTH],
    depth: usize,
    steps: usize,
}

impl Walk {
    fn new() -> Self {
        Self {
            stack: [0; MAX_IMPORT_DEPTH],
            depth: 0,
            steps: 0,
        }
    }

    fn active(&self) -> &[usize] {
        self.stack.get(..self.depth).unwrap_or_default()
    }
}

impl Terminology {
    /// Builds from the registry's ValueSets and CodeSystems: every ValueSet
    /// is compiled (expansions into code sets, filters on held CodeSystems
    /// into concept sets) here, once, never per check.
    pub fn new(registry: &Registry) -> Terminology {
        let systems = Systems::build(registry);

        let mut by_canonical: HashMap<String, usize> = HashMap::default();
        let loaded: Vec<_> = registry.of_type("ValueSet").collect();
        for (id, vs) in loaded.iter().enumerate() {
            by_canonical.insert(vs.canonical(), id);
        }
        for vs in &loaded {
            if let Some(latest) = registry.resolve_typed("ValueSet", &vs.url)
                && let Some(&id) = by_canonical.get(&latest.canonical())
            {
                by_canonical.insert(vs.url.clone(), id);
            }
        }
        // `CodeSystem.valueSet` with no ValueSet resource of that URL.
        let mut implicit = Vec::new();
        for (cs, index) in systems.list.iter().enumerate() {
            if let Some(url) = &index.value_set
                && find_value_set(&by_canonical, url).is_none()
            {
                by_canonical.insert(url.clone(), loaded.len() + implicit.len());
                implicit.push((cs, url.clone()));
            }
        }

        let compiler = Compiler {
            systems: &systems,
            value_sets: &by_canonical,
        };
        let mut value_sets: Vec<ValueSetDef> = loaded
            .iter()
            .map(|vs| compiler.value_set(vs.resource.root(), vs.canonical()))
            .collect();
        value_sets.extend(
            implicit
                .into_iter()
                .map(|(cs, url)| compiler.whole_system(cs, url)),
        );
        let mut systems = systems;
        for cs in &mut systems.list {
            cs.strip();
        }
        let systems_of = (0..value_sets.len())
            .map(|id| member_systems(&value_sets, id))
            .collect();
        Terminology {
            systems,
            value_sets,
            vs_by_canonical: by_canonical,
            systems_of,
            recorded: None,
        }
    }

    /// Consults `answers` for the codes of code systems not held
    /// ([`Terminology::recorded_answer`]).
    pub fn set_recorded_answers(&mut self, answers: std::sync::Arc<recorded::RecordedAnswers>) {
        self.recorded = Some(answers);
    }

    /// Whether recorded answers are consulted at all.
    pub fn has_recorded_answers(&self) -> bool {
        self.recorded.is_some()
    }

    /// What the recorded terminology server said about (`system`, `code`,
    /// `display`) in display language `langs`, when the question was
    /// recorded and the code is not defined by a held CodeSystem (a
    /// complete one, or a fragment that lists the code, is decided here;
    /// one with `content` `not-present`, as R4 core's SNOMED CT and LOINC
    /// entries are, defines nothing).
    pub fn recorded_answer(
        &self,
        system: &str,
        code: &str,
        display: Option<&str>,
        langs: &str,
    ) -> Option<&[recorded::RecordedIssue]> {
        let answers = self.recorded.as_deref()?;
        let held = self
            .systems
            .lookup(system, None)
            .and_then(|id| self.systems.get(id));
        let decided_here = held.is_some_and(|cs| match cs.content {
            code_system::Content::Complete => true,
            code_system::Content::Partial(_) => cs.find(code).is_some(),
            code_system::Content::Absent(_) => false,
        });
        if decided_here {
            return None;
        }
        answers.answer(system, code, display, langs)
    }

    /// Is (`system`, `code`) in the ValueSet `value_set` (canonical, optional
    /// `|version`: that version when held, else the latest held)? Without a
    /// system this is [`Terminology::check_bare_code`].
    pub fn check_code(&self, value_set: &str, system: Option<&str>, code: &str) -> Membership {
        let Some(id) = find_value_set(&self.vs_by_canonical, value_set) else {
            return Membership::NotChecked(format!("ValueSet {value_set} is not held"));
        };
        let mut walk = Walk::new();
        let canonical = self
            .value_sets
            .get(id)
            .map_or(value_set, |vs| vs.canonical.as_str());
        let what = || match system {
            Some(system) => format!("code '{code}' of system {system}"),
            None => format!("code '{code}'"),
        };
        let found = match (system, self.systems_of.get(id)) {
            (None, Some(systems)) if !systems.is_empty() => any(systems
                .iter()
                .map(|s| self.value_set(id, Some(s), code, &mut walk))),
            _ => self.value_set(id, system, code, &mut walk),
        };
        match found {
            Tri::Yes => Membership::Member,
            Tri::No(reason) => {
                let reason = match (reason, system) {
                    (Some(reason), _) => reason,
                    (None, Some(system)) => format!("it includes no codes of system {system}"),
                    (None, None) => "it includes no such code".to_owned(),
                };
                Membership::NotMember(format!(
                    "{} is not in ValueSet {canonical}: {reason}",
                    what()
                ))
            }
            Tri::Unknown(reason) => Membership::NotChecked(format!(
                "{} could not be checked against ValueSet {canonical} offline: {reason}",
                what()
            )),
        }
    }

    /// Is the code (of an element of type `code`, which carries no system) in
    /// the ValueSet? The systems are those of the value set: a member when
    /// (system, code) is in it for any system it draws codes from.
    pub fn check_bare_code(&self, value_set: &str, code: &str) -> Membership {
        self.check_code(value_set, None, code)
    }

    /// The display of (`system`, `code`) when the CodeSystem is held and
    /// defines the code, for display checks.
    pub fn display(&self, system: &str, code: &str) -> Option<&str> {
        let cs = self.systems.get(self.systems.lookup(system, None)?)?;
        cs.concept(cs.find(code)?)?.display.as_deref()
    }

    /// Whether a CodeSystem with this canonical (optional `|version`) is held.
    pub fn knows_code_system(&self, code_system: &str) -> bool {
        let (url, version) = match code_system.split_once('|') {
            Some((url, version)) => (url, Some(version)),
            None => (code_system, None),
        };
        self.systems.lookup(url, version).is_some()
    }

    /// Whether a ValueSet with this canonical (optional `|version`) is held.
    pub fn knows_value_set(&self, value_set: &str) -> bool {
        find_value_set(&self.vs_by_canonical, value_set).is_some()
    }

    /// Membership in the value set `id`. `system` `None`: any system of the
    /// value set.
    fn value_set(&self, id: usize, system: Option<&str>, code: &str, walk: &mut Walk) -> Tri {
        let Some(vs) = self.value_sets.get(id) else {
            return Tri::Unknown("ValueSet index out of range".to_owned());
        };
        if let Some(at) = walk.active().iter().position(|&v| v == id) {
            let mut cycle: Vec<&str> = walk
                .active()
                .get(at..)
                .unwrap_or_default()
                .iter()
                .filter_map(|&v| self.value_sets.get(v))
                .map(|v| v.canonical.as_str())
                .collect();
            cycle.push(&vs.canonical);
            return Tri::Unknown(format!(
                "value sets import each other in a cycle: {}",
                cycle.join(" → ")
            ));
        }
        let Some(slot) = walk.stack.get_mut(walk.depth) else {
            return Tri::Unknown(format!(
                "imports nested deeper than {MAX_IMPORT_DEPTH} value sets at {}",
                vs.canonical
            ));
        };
        *slot = id;
        walk.steps += 1;
        if walk.steps > MAX_STEPS {
            return Tri::Unknown(format!(
                "more than {MAX_STEPS} value sets to evaluate (imports of imports)"
            ));
        }
        walk.depth += 1;
        let result = match &vs.body {
            Body::Expansion(expansion) => self.in_expansion(expansion, system, code),
            Body::PartialExpansion(expansion) => match self.in_expansion(expansion, system, code) {
                Tri::Yes => Tri::Yes,
                _ => Tri::Unknown(format!(
                    "the expansion of ValueSet {} is incomplete and it has no compose",
                    vs.canonical
                )),
            },
            Body::Compose(compose) => {
                let found = compose
                    .partial
                    .as_ref()
                    .map(|e| self.in_expansion(e, system, code));
                if let Some(Tri::Yes) = found {
                    Tri::Yes
                } else {
                    self.compose(
                        &compose.includes,
                        &compose.excludes,
                        compose.inactive,
                        system,
                        code,
                        walk,
                    )
                }
            }
            Body::Undefined(reason) => Tri::Unknown(reason.clone()),
        };
        walk.depth -= 1;
        result
    }

    fn in_expansion(&self, expansion: &Expansion, system: Option<&str>, code: &str) -> Tri {
        match system {
            Some(system) => match expansion.by_system.get(system) {
                Some(codes) if codes.contains(self.systems.key(system, code).as_ref()) => Tri::Yes,
                Some(_) => Tri::no(format!("the expansion has no code '{code}' of {system}")),
                None => Tri::No(None),
            },
            None => {
                let found = expansion
                    .by_system
                    .iter()
                    .any(|(system, codes)| codes.contains(self.systems.key(system, code).as_ref()));
                if found {
                    Tri::Yes
                } else {
                    Tri::no(format!("the expansion has no code '{code}'"))
                }
            }
        }
    }

    fn compose(
        &self,
        includes: &[Clause],
        excludes: &[Clause],
        inactive: Option<bool>,
        system: Option<&str>,
        code: &str,
        walk: &mut Walk,
    ) -> Tri {
        let included = any(includes
            .iter()
            .map(|c| self.clause(c, system, code, inactive, walk)));
        if let Tri::No(miss) = included {
            return Tri::No(miss);
        }
        if excludes.is_empty() {
            return included;
        }
        let excluded = any(excludes
            .iter()
            .map(|c| self.clause(c, system, code, None, walk)));
        match (included, excluded) {
            (_, Tri::Yes) => Tri::no("it is excluded by compose.exclude".to_owned()),
            (Tri::Unknown(reason), _) => Tri::Unknown(reason),
            (_, Tri::Unknown(reason)) => Tri::Unknown(format!(
                "it is included, but whether compose.exclude removes it cannot be decided: {reason}"
            )),
            _ => Tri::Yes,
        }
    }

    /// One include/exclude: the system part and every import must hold.
    fn clause(
        &self,
        clause: &Clause,
        system: Option<&str>,
        code: &str,
        inactive: Option<bool>,
        walk: &mut Walk,
    ) -> Tri {
        let mut system = system;
        let mut found = Tri::Yes;
        if let Some(part) = &clause.system {
            if let Some(given) = system
                && given != &*part.system
            {
                return Tri::No(None);
            }
            system = Some(&part.system);
            found = self.matcher(&part.matcher, &part.system, code, inactive);
            if let Tri::No(_) = found {
                return found;
            }
        }
        match clause.imports.as_slice() {
            [] if clause.system.is_none() => {
                Tri::Unknown("an include/exclude has neither system nor valueSet".to_owned())
            }
            [] => found,
            [one] => both(found, self.import(one, system, code, walk)),
            several => {
                let each: Vec<Tri> = several
                    .iter()
                    .map(|i| self.import(i, system, code, walk))
                    .collect();
                let all_yes = each.iter().all(|t| matches!(t, Tri::Yes));
                let any_yes = each.iter().any(|t| matches!(t, Tri::Yes));
                let unknown = each.into_iter().find_map(|t| match t {
                    Tri::Unknown(reason) => Some(reason),
                    _ => None,
                });
                let imported = if all_yes {
                    Tri::Yes
                } else if let Some(reason) = unknown {
                    Tri::Unknown(reason)
                } else if !any_yes {
                    Tri::no("it is in none of the value sets the include imports".to_owned())
                } else {
                    Tri::Unknown(
                        "it is in some but not all of the value sets one include imports, and R4 \
                         says both 'intersection' (ValueSet.compose.include) and 'union' \
                         (include.valueSet)"
                            .to_owned(),
                    )
                };
                both(found, imported)
            }
        }
    }

    fn import(&self, import: &Import, system: Option<&str>, code: &str, walk: &mut Walk) -> Tri {
        match import {
            Import::Held(id) => self.value_set(*id, system, code, walk),
            Import::Missing(canonical) => {
                Tri::Unknown(format!("the imported ValueSet {canonical} is not held"))
            }
        }
    }

    fn matcher(&self, matcher: &Matcher, system: &str, code: &str, inactive: Option<bool>) -> Tri {
        let found = match matcher {
            Matcher::Listed { codes, cs } => {
                if !codes.contains(self.systems.key(system, code).as_ref()) {
                    return Tri::no(format!(
                        "it is not among the codes of {system} the value set lists"
                    ));
                }
                cs.and_then(|cs| {
                    let index = self.systems.get(cs)?;
                    Some((index, index.find(code)?))
                })
            }
            Matcher::All(cs) | Matcher::Partial(cs) | Matcher::Filtered { cs, .. } => {
                let Some(index) = self.systems.get(*cs) else {
                    return Tri::Unknown(format!("CodeSystem {system} is not held"));
                };
                let Some(concept) = index.find(code) else {
                    return match matcher {
                        Matcher::Partial(_) => Tri::Unknown(format!(
                            "CodeSystem {} is held only in part and does not define '{code}'",
                            index.canonical()
                        )),
                        _ => Tri::no(format!(
                            "'{code}' is not defined in CodeSystem {}",
                            index.canonical()
                        )),
                    };
                };
                if let Matcher::Filtered {
                    bits, description, ..
                } = matcher
                    && !bits.get(concept as usize)
                {
                    return Tri::no(format!(
                        "'{code}' of {system} does not match the filter '{description}'"
                    ));
                }
                Some((index, concept))
            }
            Matcher::Unknown(reason) => return Tri::Unknown(reason.clone()),
        };
        if inactive == Some(false)
            && let Some((index, id)) = found
            && index.concept(id).is_some_and(|c| c.inactive)
        {
            return Tri::no(format!(
                "'{code}' is inactive in CodeSystem {} and the value set leaves out inactive codes (compose.inactive = false)",
                index.canonical()
            ));
        }
        Tri::Yes
    }
}

/// The systems the members of value set `id` can come from: the systems of
/// its includes and expansion, and of the value sets it imports.
fn member_systems(value_sets: &[ValueSetDef], id: usize) -> Vec<Box<str>> {
    let mut systems: Vec<Box<str>> = Vec::new();
    let mut add = |system: &str| {
        if !systems.iter().any(|s| &**s == system) {
            systems.push(system.into());
        }
    };
    let mut seen = rustc_hash::FxHashSet::default();
    let mut stack = vec![id];
    while let Some(vs) = stack.pop() {
        if !seen.insert(vs) {
            continue;
        }
        let Some(vs) = value_sets.get(vs) else {
            continue;
        };
        let (includes, expansion) = match &vs.body {
            Body::Expansion(e) | Body::PartialExpansion(e) => (&[][..], Some(e)),
            Body::Compose(c) => (c.includes.as_slice(), c.partial.as_ref()),
            Body::Undefined(_) => (&[][..], None),
        };
        for system in expansion.into_iter().flat_map(|e| e.by_system.keys()) {
            add(system);
        }
        for clause in includes {
            if let Some(part) = &clause.system {
                add(&part.system);
            }
            for import in &clause.imports {
                if let Import::Held(imported) = import {
                    stack.push(*imported);
                }
            }
        }
    }
    systems
}

/// Union: yes if any is, else undecided if any is, else no (a reason about
/// the code rather than about other systems when there is one).
fn any(results: impl Iterator<Item = Tri>) -> Tri {
    let mut unknown = None;
    let mut miss: Option<String> = None;
    let mut empty = true;
    for result in results {
        empty = false;
        match result {
            Tri::Yes => return Tri::Yes,
            Tri::Unknown(reason) => {
                unknown.get_or_insert(reason);
            }
            Tri::No(reason) => {
                if miss.is_none() {
                    miss = reason;
                }
            }
        }
    }
    match (unknown, miss) {
        (Some(reason), _) => Tri::Unknown(reason),
        (None, Some(reason)) => Tri::no(reason),
        (None, None) if empty => Tri::no("the value set includes nothing".to_owned()),
        (None, None) => Tri::No(None),
    }
}

/// Intersection of two answers: no if either is, else undecided if either
/// is, else yes.
fn both(a: Tri, b: Tri) -> Tri {
    match (a, b) {
        (Tri::No(reason), _) | (_, Tri::No(reason)) => Tri::No(reason),
        (Tri::Unknown(reason), _) | (_, Tri::Unknown(reason)) => Tri::Unknown(reason),
        (Tri::Yes, Tri::Yes) => Tri::Yes,
    }
}

impl fmt::Debug for Terminology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Terminology")
            .field("code_systems", &self.systems.list.len())
            .field("value_sets", &self.value_sets.len())
            .field(
                "recorded_answers",
                &self.recorded.as_ref().map_or(0, |r| r.len()),
            )
            .finish()
    }
}
