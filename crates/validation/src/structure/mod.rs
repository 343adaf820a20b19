//! Structural validation from StructureDefinition snapshots.
//!
//! Walks the lossless JSON view of a resource against the compiled snapshot
//! of its core StructureDefinition and of every profile it claims or the
//! endpoint requires. Every rule comes from the definitions in `profiles/`:
//!
//! | check | source |
//! | --- | --- |
//! | `resourceType` present and a known, concrete resource | R4 json.html §2.6.1; the core StructureDefinitions |
//! | no element the definition does not define (unknown or prohibited, `max = 0`) | ElementDefinition.path / max |
//! | cardinality `min`..`max` of every element | ElementDefinition.min/max |
//! | repeating elements are arrays, single ones are not | R4 json.html §2.6.2 |
//! | choice elements `[x]`: the suffix names an allowed type; only one choice present | ElementDefinition.type, R4 formats.html#choice |
//! | primitive values: JSON kind, the type's regex, ranges and calendar days | [`primitive`] |
//! | primitive values at most 1 MB | R4 datatypes.html#primitive; Java `checkPrimitive` (`TYPE_SPECIFIC_CHECKS_DT_PRIMITIVE_LENGTH`) |
//! | `Attachment.size` equals the length of the decoded `data` | R4 datatypes.html#Attachment; Java `checkAttachment` |
//! | `Coding.system` absolute, and not the canonical of a held ValueSet (unless a CodeSystem has it too) | R4 datatypes.html#Coding; Java `checkCoding` (`TERMINOLOGY_TX_SYSTEM_RELATIVE`, `TERMINOLOGY_TX_SYSTEM_VALUESET2`) |
//! | a local reference `#id` resolves: reported as unresolvable and as ref-1, as Java does | R4 references.html#contained; Java `checkReference` (`REFERENCE_REF_CANTRESOLVE`) and ref-1 |
//! | `Extension.url` present (besides its cardinality), and without a `|version` | Java `checkExtension` (`EXTENSION_EXT_URL_NOTFOUND`, `EXTENSION_EXT_VERSION_*`) |
//! | minimum and maximum cardinality, named with the definition walked (`(from <url>)`): the same fault against R4 core and a profile is reported once for each, as Java does | ElementDefinition.min/max; Java `VALIDATION_VAL_PROFILE_MINIMUM`/`MAXIMUM` |
//! | `_x` primitive extensions: only `id` and `extension` | R4 json.html §2.6.2 |
//! | contained and Bundle entry resources validated as resources | ElementDefinition.type `Resource` |
//! | a resource element with several `type.profile`s meets one of them (the first that adds no error) | R4 ElementDefinition.type.profile ("must conform to at least one of them"); Java InstanceValidator (BUNDLE_BUNDLE_ENTRY_MULTIPLE_PROFILES_NO_MATCH) |
//! | `modifierExtension` the gateway holds no definition for is an error | R4 extensibility.html#modifierExtension (safety checklist) |
//! | an extension the gateway holds no definition for is reported as not checked, at the severity of the operator's policy ([`crate::options::UnknownExtensions`], information by default; core `hl7.org/fhir/StructureDefinition/` extensions, which the gateway does not hold, always information) | R4 extensibility.html; Java `EXTENSION_EXT_UNKNOWN_NOTHERE` |
//! | an extension is used where its `StructureDefinition.context` allows it (the cases that can be decided for certain, `context_refused`) | R4 extensibility.html#context; Java `InstanceValidator.checkExtensionContext` |
//! | claimed profiles (`meta.profile`) unknown to the gateway are reported | R4 profiling.html |
//! | an Observation whose code is a vital-sign code is also walked against the vital-signs profile it implies | R4 observation-vitalsigns.html; Java `BasePolicyAdvisorForFullValidation.getImpliedProfilesForObservation` (`implied.rs`) |
//! | which version: `url\|version` exactly, `url` the registry's default; the canonicals a profile names resolve in its package's dependency scope (`structure/versions.rs`) | Java `BaseWorkerContext.fetchResourceWithExceptionByVersion`, `CanonicalResourceManager` |
//!
//! | FHIRPath invariants (`ElementDefinition.constraint`) of every element instance, the root element of each resource and of each datatype | ElementDefinition.constraint, corrected by `profiles/invariant-corrections.toml` ([`invariants`]) |
//!
//! Slicing ([`slicing`]), bindings ([`crate::terminology`]) and fixed/pattern
//! values are checked on the same walk.

pub mod compile;
pub(crate) mod compiled;
mod definition_rules;
mod implied;
pub mod invariants;
pub mod primitive;
pub mod slicing;
pub mod snapshot;
mod value_regex;
mod versions;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::rc::Rc;
use std::sync::{Arc, RwLock};

use crate::narrative::links;
use ehds_fhir::Node;
use ehds_fhir::bundle::{BundleIndex, Resolution};
use ehds_fhir::json::Json;
use ehds_fhir::outcome::{Issue, IssueType, Severity};
use ehds_fhirpath::{EvalContext, Item, Model};
use ehds_profiles::Registry;

pub use compile::LoadProblem;
use compile::{Constraint, Kind, Structure, TypeRef};

/// Compiled StructureDefinitions and primitive regexes, ready to validate.
#[derive(Debug)]
pub struct StructureValidator {
    /// The default version of every StructureDefinition, by `url` (the one
    /// the registry resolves a version-less `url` to).
    by_url: HashMap<String, Arc<Structure>>,
    /// Every version by `url|version`, and by `url|major.minor` for the
    /// highest of each major.minor (Java `CanonicalResourceManager`).
    by_canonical: HashMap<String, Arc<Structure>>,
    /// By [`Structure::id`]: the index of its package in `packages`.
    package_of: Vec<u32>,
    /// The registry's packages, in load order.
    packages: Vec<Arc<ehds_profiles::PackageId>>,
    /// By package index: the version-less StructureDefinition URLs its
    /// dependency scope resolves to another version than the default
    /// ([`Registry::resolve_in`]).
    scoped: Vec<HashMap<String, Arc<Structure>>>,
    /// Core (base) definitions by type name: `Patient`, `string`, `CodeableConcept`.
    core: HashMap<String, Arc<Structure>>,
    /// The same, by the FHIRPath model's type of that name
    /// ([`TypeRef::fhirpath_type`]): the walk looks up the definition of
    /// every value's type, and indexing by type skips hashing its name.
    core_by_type: Vec<Option<Arc<Structure>>>,
    /// Compiled value regexes of primitive types, by type name. Byte regexes
    /// without Unicode classes: the regexes are written for Java, where `\s`
    /// and `\S` are ASCII classes (a no-break space is not whitespace).
    regexes: HashMap<String, value_regex::ValueRegex>,
    /// Every compiled structure, by [`Structure::id`].
    all: Vec<Arc<Structure>>,
    /// The children of (structure id, element, chosen type) as
    /// [`Walker::child_definitions`] merges them, as (structure id, element)
    /// pairs: the same datatypes recur all over every document, so each
    /// merge is done once per process, not once per object.
    children: RwLock<ChildCache>,
    /// The FHIRPath model (types from the core StructureDefinitions) the
    /// invariants are evaluated with.
    model: Model,
    /// How extensions without a definition are reported.
    unknown_extensions: crate::options::UnknownExtensions,
    /// The severity of a narrative `#` link that names nothing
    /// ([`crate::ValidationOptions::narrative_links`]).
    narrative_links: Severity,
    /// The current time of the bounds relative to it
    /// ([`crate::ValidationOptions::now`]); `None`: the system clock.
    now: Option<std::time::SystemTime>,
}

/// A resource being walked: `%resource` and `%rootResource` of the
/// invariants evaluated in it, and the values those evaluations share
/// ([`ehds_fhirpath::ResourceScope`]: its own, and its root's, which its
/// contained resources share).
struct ResourceFrame<'d> {
    resource: Item<'d>,
    root: Item<'d>,
    scope: std::rc::Rc<ehds_fhirpath::ResourceScope<'d>>,
    root_scope: std::rc::Rc<ehds_fhirpath::ResourceScope<'d>>,
}

/// The targets of `#` links in one resource ([`links::collect_targets`]),
/// each kind collected on first use: with the narratives' `a` names (for
/// anchors) and without (for images).
#[derive(Default)]
struct LinkTargets<'d> {
    anchors: Option<links::Targets<'d>>,
    images: Option<links::Targets<'d>>,
}

impl<'d> LinkTargets<'d> {
    /// The targets a link of `kind` may name in `resource`.
    fn of(&mut self, resource: &'d Node, kind: links::LinkKind) -> &links::Targets<'d> {
        let (slot, names) = match kind {
            links::LinkKind::Anchor => (&mut self.anchors, true),
            links::LinkKind::Image => (&mut self.images, false),
        };
        slot.get_or_insert_with(|| {
            let mut targets = links::Targets::default();
            links::collect_targets(resource, names, &mut targets);
            targets
        })
    }
}

/// Identity of a `child_definitions` question: the structure id, the element
/// and the chosen type (by address inside the validator's own structures,
/// which never move; 0 for the element's own first type).
type ChildKey = (u32, usize, usize);

/// Merged children as (structure id, element) pairs, the number of that
/// list (equal lists share one number, [`ChildCache`]) and its member
/// index.
type ChildPairs = (Arc<[(u32, u32)]>, u32, Arc<ChildIndex>);

/// Which child of a merged list a JSON member names, without comparing
/// the member with every child in turn ([`Walker::object_as`]): the first
/// child that is not a choice by name, and the choice children in order
/// (their names are prefixes), so the first child that matches is found as
/// by a scan of the list.
#[derive(Debug, Default)]
pub(super) struct ChildIndex {
    by_name: HashMap<Box<str>, usize>,
    choices: Vec<usize>,
    /// Whether a child is sliced (else the object has no slices to check).
    sliced: bool,
}

impl ChildIndex {
    fn new(children: &[Context<'_>]) -> ChildIndex {
        let mut index = ChildIndex::default();
        for (slot, child) in children.iter().enumerate() {
            let Some(def) = child.structure.elements.get(child.element) else {
                continue;
            };
            if def.is_choice {
                index.choices.push(slot);
            } else {
                index
                    .by_name
                    .entry(def.name.as_str().into())
                    .or_insert(slot);
            }
            index.sliced |= def.slicing.is_some() && !def.slices.is_empty();
        }
        index
    }

    /// The first child that `name` names (slot, and for a choice the type
    /// its suffix names), as [`compile::ElementDef::matches`] over the
    /// list in order.
    fn find<'c, 'v>(
        &self,
        children: &'c [Context<'v>],
        name: &str,
    ) -> Option<(usize, &'c Context<'v>, Option<&'v TypeRef>)> {
        let exact = self.by_name.get(name).copied();
        for &slot in &self.choices {
            if exact.is_some_and(|e| e < slot) {
                break;
            }
            let Some(child) = children.get(slot) else {
                continue;
            };
            let structure: &'v Structure = child.structure;
            let Some(def) = structure.elements.get(child.element) else {
                continue;
            };
            if let Some(choice) = def.matches(name) {
                return Some((slot, child, choice));
            }
        }
        let slot = exact?;
        children.get(slot).map(|child| (slot, child, None))
    }
}

/// [`Walker::child_definitions`]'s answers, and a number per distinct list:
/// an element a profile leaves as its core type (`Condition.code` of the
/// IPS Condition profile is a plain CodeableConcept) gets the same list as
/// in the core definition, so a walk knows an object was already walked
/// with exactly these children ([`Walker::object_as`]).
#[derive(Debug, Default)]
pub(super) struct ChildCache {
    by_key: HashMap<ChildKey, ChildPairs>,
    numbers: HashMap<Arc<[(u32, u32)]>, u32>,
}

/// The list number of children not cached (never remembered as walked).
const UNNUMBERED: u32 = u32::MAX;

const CORE_PREFIX: &str = "http://hl7.org/fhir/StructureDefinition/";

impl definition_rules::Definitions for StructureValidator {
    fn definition(&self, canonical: &str) -> Option<&Structure> {
        self.structure(canonical).map(|structure| &**structure)
    }

    fn core_type(&self, name: &str) -> Option<&Structure> {
        self.core.get(name).map(|structure| &**structure)
    }
}

impl invariants::Profiles for StructureValidator {
    fn profile(&self, canonical: &str) -> Option<&Structure> {
        self.structure(canonical).map(|structure| &**structure)
    }

    fn conforms(
        &self,
        resource: &Node,
        url: &str,
        terminology: &crate::terminology::Terminology,
        depth: u8,
    ) -> bool {
        let mut issues = Vec::new();
        self.validate_nested(resource, &[url], terminology, &mut issues, depth);
        !issues.iter().any(|i| i.severity.is_error())
    }
}

/// [`StructureValidator::core_by_type`]: the core definition named as
/// each type of `model` is (a type's name is unique among its
/// [`Model::type_named`] answers, so this agrees with `core` by name).
fn core_by_type(
    core: &HashMap<String, Arc<Structure>>,
    model: &Model,
) -> Vec<Option<Arc<Structure>>> {
    model
        .types()
        .iter()
        .map(|def| core.get(&*def.name).cloned())
        .collect()
}

impl StructureValidator {
    /// The core definition of the type `type_ref` names.
    #[inline]
    fn core_of(&self, type_ref: &TypeRef) -> Option<&Arc<Structure>> {
        match type_ref.fhirpath_type {
            Some(id) => self.core_by_type.get(id.index()).and_then(Option::as_ref),
            None => self.core.get(&type_ref.code),
        }
    }

    /// Compiles every StructureDefinition in `registry`.
    pub fn new(registry: &Registry) -> (Self, Vec<LoadProblem>) {
        let mut problems = Vec::new();
        let mut by_url = HashMap::default();
        let mut core = HashMap::default();
        let mut regexes = HashMap::default();
        let mut all = Vec::new();
        let model = Model::from_registry(registry);
        let corrections = invariants::Corrections::shipped().unwrap_or_else(|e| {
            problems.push(LoadProblem {
                url: "profiles/invariant-corrections.toml".into(),
                problem: format!("the table of invariant corrections does not load: {e}"),
            });
            invariants::Corrections::default()
        });
        let mut constraints = invariants::Compiler::new(&model, corrections);
        let packages: Vec<Arc<ehds_profiles::PackageId>> = registry.packages().to_vec();
        let pins = versions::pins(registry);
        let mut by_canonical = HashMap::default();
        let mut package_of = Vec::new();
        // Definitions by canonical, for generating the snapshots of those
        // published with a differential only.
        let sources: HashMap<&str, snapshot::Source<'_>> = registry
            .of_type("StructureDefinition")
            .map(|loaded| {
                (
                    loaded.url.as_str(),
                    snapshot::Source {
                        bytes: loaded.resource.bytes(),
                        root: loaded.resource.root(),
                    },
                )
            })
            .collect();
        let lookup = |url: &str| sources.get(url.split('|').next().unwrap_or(url)).copied();
        for loaded in registry.of_type("StructureDefinition") {
            let compiled = match compile::compile(loaded.resource.root()) {
                Err(compile::CompileError::NoSnapshot(url)) => {
                    let source = snapshot::Source {
                        bytes: loaded.resource.bytes(),
                        root: loaded.resource.root(),
                    };
                    snapshot::generate(source, &lookup)
                        .and_then(|bytes| {
                            ehds_fhir::json::parse(&bytes).map_err(|e| e.to_string())
                        })
                        .map_err(|e| compile::CompileError::Malformed {
                            url: url.clone(),
                            what: format!("has no snapshot, and generating it from the differential failed: {e}"),
                        })
                        .and_then(|generated| compile::compile(&generated))
                }
                other => other,
            };
            match compiled {
                Ok(mut structure) => {
                    structure.id = u32::try_from(all.len()).unwrap_or(u32::MAX);
                    let package = packages
                        .iter()
                        .position(|p| Arc::ptr_eq(p, &loaded.package))
                        .unwrap_or_default();
                    if let Some(pins) = pins.get(package) {
                        versions::pin(&mut structure, pins);
                    }
                    package_of.push(u32::try_from(package).unwrap_or(u32::MAX));
                    constraints.prepare(&mut structure, &mut problems);
                    let structure = Arc::new(structure);
                    all.push(Arc::clone(&structure));
                    by_canonical.insert(loaded.canonical(), Arc::clone(&structure));
                    if let Some(type_name) = structure.url.strip_prefix(CORE_PREFIX)
                        && type_name == structure.type_name
                        && !structure.is_profile
                    {
                        if let Some(re) = &structure.value_regex {
                            match value_regex::ValueRegex::new(re) {
                                Ok(compiled) => {
                                    regexes.insert(structure.type_name.clone(), compiled);
                                }
                                Err(e) => problems.push(LoadProblem {
                                    url: structure.url.clone(),
                                    problem: format!("value regex does not compile: {e}"),
                                }),
                            }
                        }
                        core.entry(structure.type_name.clone())
                            .or_insert_with(|| Arc::clone(&structure));
                    }
                    // The default version of the URL (another version
                    // may come before it in load order).
                    let is_default = registry
                        .resolve_typed("StructureDefinition", &loaded.url)
                        .is_some_and(|d| std::ptr::eq(d, loaded));
                    if is_default {
                        by_url.insert(structure.url.clone(), structure);
                    } else {
                        by_url.entry(structure.url.clone()).or_insert(structure);
                    }
                }
                Err(e) => problems.push(LoadProblem {
                    url: loaded.url.clone(),
                    problem: e.to_string(),
                }),
            }
        }
        drop(constraints);
        versions::index_major_minor(registry, &mut by_canonical);
        let scoped = versions::scoped(&pins, &by_canonical);
        (
            Self {
                by_url,
                by_canonical,
                package_of,
                packages,
                scoped,
                core_by_type: core_by_type(&core, &model),
                core,
                regexes,
                all,
                children: RwLock::new(ChildCache::default()),
                model,
                unknown_extensions: crate::options::UnknownExtensions::default(),
                narrative_links: Severity::Warning,
                now: None,
            },
            problems,
        )
    }

    /// Whether a constraint of any compiled definition has key `key`.
    pub fn has_constraint_key(&self, key: &str) -> bool {
        self.all.iter().any(|structure| {
            structure
                .elements
                .iter()
                .any(|element| element.constraints.iter().any(|c| &*c.key == key))
        })
    }

    /// Sets how extensions without a definition are reported.
    pub fn set_unknown_extensions(&mut self, policy: crate::options::UnknownExtensions) {
        self.unknown_extensions = policy;
    }

    /// How a narrative `#` link that names nothing is reported
    /// ([`crate::ValidationOptions::narrative_links`]).
    pub fn set_narrative_links(&mut self, severity: Severity) {
        self.narrative_links = severity;
    }

    /// Sets the current time of the bounds relative to it
    /// ([`crate::ValidationOptions::now`]; `None`: the system clock).
    pub fn set_clock(&mut self, now: Option<std::time::SystemTime>) {
        self.now = now;
    }

    /// The current time in milliseconds since 1970 UTC: the set clock, else
    /// the system clock (a clock before 1970 reads as negative).
    fn now_millis(&self) -> i64 {
        let now = self.now.unwrap_or_else(std::time::SystemTime::now);
        match now.duration_since(std::time::UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_millis())
                .map(|ms| -ms)
                .unwrap_or(i64::MIN),
        }
    }

    /// The compiled structure with [`Structure::id`] `id`.
    fn by_id(&self, id: u32) -> Option<&Structure> {
        self.all.get(usize::try_from(id).ok()?).map(|s| &**s)
    }

    /// The compiled StructureDefinition with canonical `url` (the default
    /// version) or `url|version` (that version; failing that, for a plain
    /// release, the highest of its major.minor).
    pub fn structure(&self, canonical: &str) -> Option<&Arc<Structure>> {
        // memchr: asked hundreds of times per document, mostly of URLs
        // without a version.
        let Some(bar) = memchr::memchr(b'|', canonical.as_bytes()) else {
            return self.by_url.get(canonical);
        };
        let (Some(url), Some(version)) = (canonical.get(..bar), canonical.get(bar + 1..)) else {
            return None;
        };
        self.by_canonical.get(canonical).or_else(|| {
            let (major, minor) = ehds_profiles::major_minor(version)?;
            self.by_canonical.get(&format!("{url}|{major}.{minor}"))
        })
    }

    /// [`Self::structure`] for a canonical written in a resource of the
    /// package `package` (index into the registry's packages): a
    /// version-less URL resolves in that package's dependency scope first.
    fn structure_in(&self, canonical: &str, package: Option<u32>) -> Option<&Arc<Structure>> {
        package
            .and_then(|p| self.scoped.get(usize::try_from(p).ok()?))
            .and_then(|scoped| scoped.get(canonical))
            .or_else(|| self.structure(canonical))
    }

    /// The package a compiled structure came from (index into the registry's
    /// packages).
    fn package_of(&self, structure: &Structure) -> Option<u32> {
        self.package_of
            .get(usize::try_from(structure.id).ok()?)
            .copied()
    }

    /// The index of a loaded package, for [`Self::validate_in_package`].
    pub fn package_index(&self, package: &ehds_profiles::PackageId) -> Option<u32> {
        let index = self.packages.iter().position(|p| **p == *package)?;
        u32::try_from(index).ok()
    }

    /// Validates one resource against its core definition, the profiles it
    /// claims in `meta.profile`, and `required_profiles`; appends issues.
    pub fn validate(
        &self,
        resource: &Node,
        required_profiles: &[&str],
        terminology: &crate::terminology::Terminology,
        issues: &mut Vec<Issue>,
    ) {
        self.validate_nested(resource, required_profiles, terminology, issues, 0);
    }

    /// [`Self::validate`] for a caller that downgrades `downgraded` rules
    /// (constraint keys, [`crate::rule_of`]): their errors are reported as
    /// found, but do not decide whether a resource conforms to a profile
    /// (slice membership by profile), as if the rules were declared
    /// warnings, so the caller's downgrade leaves no error behind.
    pub fn validate_downgrading(
        &self,
        resource: &Node,
        required_profiles: &[&str],
        terminology: &crate::terminology::Terminology,
        issues: &mut Vec<Issue>,
        downgraded: &[String],
    ) {
        self.validate_scoped(
            resource,
            required_profiles,
            terminology,
            issues,
            WalkScope {
                depth: 0,
                package: None,
                downgraded,
            },
        );
    }

    /// [`Self::validate`] as the publisher of package `package` (see
    /// [`Self::package_index`]) would: version-less profiles claimed or
    /// required resolve in that package's dependency scope before the
    /// default (the IG Publisher validates an IG's examples against the
    /// IG's own versions).
    pub fn validate_in_package(
        &self,
        resource: &Node,
        required_profiles: &[&str],
        terminology: &crate::terminology::Terminology,
        issues: &mut Vec<Issue>,
        package: u32,
    ) {
        self.validate_scoped(
            resource,
            required_profiles,
            terminology,
            issues,
            WalkScope {
                depth: 0,
                package: Some(package),
                downgraded: &[],
            },
        );
    }

    /// [`Self::validate`] from inside an invariant (`conformsTo()`), `depth`
    /// levels down.
    fn validate_nested(
        &self,
        resource: &Node,
        required_profiles: &[&str],
        terminology: &crate::terminology::Terminology,
        issues: &mut Vec<Issue>,
        depth: u8,
    ) {
        self.validate_scoped(
            resource,
            required_profiles,
            terminology,
            issues,
            WalkScope {
                depth,
                package: None,
                downgraded: &[],
            },
        );
    }

    /// [`Self::validate_nested`] in `scope`: claims resolved in its
    /// package's scope when given, its downgraded rules.
    fn validate_scoped(
        &self,
        resource: &Node,
        required_profiles: &[&str],
        terminology: &crate::terminology::Terminology,
        issues: &mut Vec<Issue>,
        scope: WalkScope<'_>,
    ) {
        let bundle = (resource.get("resourceType").and_then(Node::as_str) == Some("Bundle"))
            .then(|| Rc::new(BundleIndex::new(resource)));
        let mut walker = Walker::new(self, terminology, bundle, scope.depth);
        walker.package = scope.package;
        walker.downgraded = scope.downgraded;
        walker.resource(resource, None, required_profiles);
        let invariant_issues = std::mem::take(&mut walker.scratch.invariant_issues);
        dedupe_into(walker.scratch.issues, issues);
        let dedicated = DedicatedFindings::of(issues);
        let kept: Vec<Issue> = invariant_issues
            .into_iter()
            .filter(|issue| !dedicated.cover(issue))
            .collect();
        issues.extend(kept);
    }
}

/// Where a walk starts ([`StructureValidator::validate_scoped`]).
struct WalkScope<'a> {
    /// How many `conformsTo()` checks it is nested in.
    depth: u8,
    /// The package whose dependency scope claims resolve in.
    package: Option<u32>,
    /// The rules the caller downgrades ([`Walker`]'s `downgraded`).
    downgraded: &'a [String],
}

/// The findings of the validator's own code for a rule (the document
/// Bundle rules, ref-1, the narrative checker's txt-1/txt-2: messages
/// `"<key>: …"`), by severity and rule, their places sorted: a failed
/// invariant they already report at the same element or below it, where
/// that code says more precisely what is wrong, is left out
/// ([`DedicatedFindings::cover`]). Indexed, so that a document with many
/// of both costs a look-up per invariant, not a scan of every finding (a
/// Bundle of 4 000 entries with 16 000 findings spent most of its
/// validation here).
struct DedicatedFindings<'i> {
    by_rule: HashMap<(Severity, &'i str), Vec<&'i str>>,
    /// Findings whose key holds a `:` (none of FHIR's), checked one by one.
    all: &'i [Issue],
}

impl<'i> DedicatedFindings<'i> {
    fn of(dedicated: &'i [Issue]) -> Self {
        let mut by_rule: HashMap<(Severity, &'i str), Vec<&'i str>> = HashMap::default();
        for finding in dedicated {
            if let (Some((key, _)), Some(at)) = (
                finding.diagnostics.split_once(':'),
                finding.expression.as_deref(),
            ) {
                by_rule.entry((finding.severity, key)).or_default().push(at);
            }
        }
        for places in by_rule.values_mut() {
            places.sort_unstable();
        }
        DedicatedFindings {
            by_rule,
            all: dedicated,
        }
    }

    /// Whether a finding of the same severity and rule stands at the failed
    /// invariant's element or below it.
    fn cover(&self, issue: &Issue) -> bool {
        let Some((key, _)) = issue.diagnostics.split_once(": ") else {
            return false;
        };
        let at = issue.expression.as_deref().unwrap_or_default();
        let at_or_below = |place: &str| {
            place
                .strip_prefix(at)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        };
        if key.contains(':') {
            return self.all.iter().any(|d| {
                d.severity == issue.severity
                    && d.diagnostics
                        .strip_prefix(key)
                        .is_some_and(|rest| rest.starts_with(':'))
                    && d.expression.as_deref().is_some_and(at_or_below)
            });
        }
        let Some(places) = self.by_rule.get(&(issue.severity, key)) else {
            return false;
        };
        // The places starting with `at` sit together from its rank on.
        let first = places.partition_point(|place| *place < at);
        places
            .get(first..)
            .unwrap_or_default()
            .iter()
            .take_while(|place| place.starts_with(at))
            .any(|place| at_or_below(place))
    }
}

/// One invariant evaluation of a walk, for benchmarks that time another
/// FHIRPath engine on exactly what the validator evaluates.
#[derive(Debug, Clone)]
pub struct InvariantJob {
    /// JSON pointer of the element (`/entry/3/resource/code`).
    pub pointer: String,
    /// The element's type in the FHIRPath model.
    pub element_type: Option<ehds_fhirpath::TypeId>,
    /// Its type name (`CodeableConcept`, `Bundle.entry` for a backbone).
    pub type_name: String,
    /// JSON pointer of `%resource`.
    pub resource_pointer: String,
    /// JSON pointer of `%rootResource`.
    pub root_pointer: String,
    /// The constraint key.
    pub key: String,
    /// The expression evaluated (after corrections).
    pub expression: Arc<ehds_fhirpath::Expression>,
}

impl StructureValidator {
    /// The invariant evaluations validating `resource` against
    /// `required_profiles` performs, in order.
    pub fn invariant_jobs(
        &self,
        resource: &Node,
        required_profiles: &[&str],
        terminology: &crate::terminology::Terminology,
    ) -> Vec<InvariantJob> {
        let bundle = (resource.get("resourceType").and_then(Node::as_str) == Some("Bundle"))
            .then(|| Rc::new(BundleIndex::new(resource)));
        let mut walker = Walker::new(self, terminology, bundle, 0);
        walker.jobs = Some((Vec::new(), Vec::new()));
        walker.resource(resource, None, required_profiles);
        walker.jobs.map(|(jobs, _)| jobs).unwrap_or_default()
    }
}

/// Appends `found` to `issues`, dropping exact repeats (the same finding from
/// the core definition and from a profile). Keyed by a hash of the finding,
/// its text compared only on a hash match: a `$validate` of a large Bundle
/// can report 150 000 findings, and a set of their cloned texts doubled
/// what they took at the request's peak.
fn dedupe_into(found: Vec<Issue>, issues: &mut Vec<Issue>) {
    use std::hash::BuildHasher;
    // std SipHash, randomly keyed: the texts are sender-controlled.
    let hasher = std::collections::hash_map::RandomState::new();
    let key = |issue: &Issue| {
        hasher.hash_one((
            issue.severity,
            issue.code,
            issue.expression.as_deref(),
            issue.diagnostics.as_str(),
        ))
    };
    let same = |a: &Issue, b: &Issue| {
        a.severity == b.severity
            && a.code == b.code
            && a.expression == b.expression
            && a.diagnostics == b.diagnostics
    };
    // Hash → the first kept finding with it, and any others (rare).
    let mut seen: std::collections::HashMap<u64, smallvec::SmallVec<[usize; 1]>> =
        std::collections::HashMap::with_capacity(found.len());
    issues.reserve(found.len());
    for issue in found {
        let kept = seen.entry(key(&issue)).or_default();
        if kept
            .iter()
            .any(|&at| issues.get(at).is_some_and(|k| same(k, &issue)))
        {
            continue;
        }
        kept.push(issues.len());
        issues.push(issue);
    }
}

/// Recorded jobs, and per resource being walked the JSON pointers of
/// `%resource` and `%rootResource`.
type JobRecorder = (Vec<InvariantJob>, Vec<(String, String)>);

/// Where the walk is, built only when a finding needs it: a chain of
/// segments on the stack, rendered as `Bundle.entry[3].resource.code`.
#[derive(Clone, Copy)]
struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    segment: Segment<'a>,
}

#[derive(Clone, Copy)]
enum Segment<'a> {
    Root(&'a str),
    Key(&'a str),
    Index(usize),
}

impl<'a> Path<'a> {
    fn root(resource_type: &'a str) -> Self {
        Self {
            parent: None,
            segment: Segment::Root(resource_type),
        }
    }

    fn key(&'a self, key: &'a str) -> Path<'a> {
        Path {
            parent: Some(self),
            segment: Segment::Key(key),
        }
    }

    fn index(&'a self, index: usize) -> Path<'a> {
        Path {
            parent: Some(self),
            segment: Segment::Index(index),
        }
    }

    /// The root resource of this type itself.
    fn is_root(&self, resource_type: &str) -> bool {
        matches!((self.parent, self.segment), (None, Segment::Root(t)) if t == resource_type)
    }

    /// The JSON pointer of this place (`/entry/3/resource`).
    fn pointer(&self) -> String {
        let mut out = self.parent.map(Path::pointer).unwrap_or_default();
        match self.segment {
            Segment::Root(_) => {}
            Segment::Key(key) => {
                out.push('/');
                out.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            Segment::Index(index) => {
                out.push('/');
                out.push_str(&index.to_string());
            }
        }
        out
    }

    /// A contained resource: `….contained[n]` (or `….contained`).
    fn is_contained(&self) -> bool {
        match self.segment {
            Segment::Key(key) => key == "contained",
            Segment::Index(_) => self
                .parent
                .is_some_and(|p| matches!(p.segment, Segment::Key("contained"))),
            Segment::Root(_) => false,
        }
    }

    /// `Bundle.entry` of the root Bundle.
    fn is_root_bundle_entry(&self) -> bool {
        matches!(self.segment, Segment::Key("entry"))
            && self.parent.is_some_and(|p| p.is_root("Bundle"))
    }
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(parent) = self.parent {
            parent.fmt(f)?;
        }
        match self.segment {
            Segment::Root(name) => f.write_str(name),
            Segment::Key(key) => write!(f, ".{key}"),
            Segment::Index(index) => write!(f, "[{index}]"),
        }
    }
}

/// The items of one sliced element: its path, whether it is an array, and
/// each non-null item with its index.
type SlicedItems<'a, 't> = (&'a str, bool, Vec<(usize, &'a Node)>, Option<&'t str>);

struct Walker<'v, 'd> {
    /// The package whose dependency scope version-less claimed and required
    /// profiles resolve in ([`StructureValidator::validate_in_package`]).
    package: Option<u32>,
    validator: &'v StructureValidator,
    terminology: &'v crate::terminology::Terminology,
    /// The tables and buffers a probe of [`Walker::conforms`] takes over
    /// from the last finished one ([`Scratch`]).
    scratch: Scratch<'v, 'd>,
    /// The root Bundle's entries, for reference targets (shared with the
    /// walks that decide slice membership by conformance).
    bundle: Option<Rc<BundleIndex<'d>>>,
    /// The root Bundle entry being walked.
    entry: Option<usize>,
    /// How many `conformsTo()` checks this walk is nested in.
    depth: u8,
    /// The ids of the contained resources of a resource (by position),
    /// sorted, once local references to it have asked for them
    /// ([`Walker::contains_id`]).
    contained_ids: HashMap<u32, Vec<&'d str>>,
    /// The targets of `#` links in a resource (by position), once one of
    /// its narratives has a link ([`Walker::narrative_links`]).
    link_targets: HashMap<u32, LinkTargets<'d>>,
    /// When recording ([`StructureValidator::invariant_jobs`]): the jobs,
    /// and the JSON pointers of `%resource` and `%rootResource` per resource.
    jobs: Option<JobRecorder>,
    /// The errors that made a resource not conform to a structure, from the
    /// separate walks of [`Walker::conforms`] (paths from the resource).
    conformance_notes: HashMap<(u32, *const Structure), Vec<Issue>>,
    /// A walk that only answers "does it conform?" stops at its first error
    /// ([`Walker::conforms`]): the walk's entry points return at once once
    /// `failed` is set.
    stop_at_first_error: bool,
    /// Whether this walk found an error (or a failed error invariant).
    failed: bool,
    /// In a probe of [`Walker::conforms`]: the pairs and primitives the
    /// walk that started it had already checked (lent for the probe's
    /// duration and handed back). A probe skips those that passed there:
    /// the outcome of a (node, constraint) pair or of a primitive's format
    /// does not depend on the walk that meets it.
    outer_evaluated: invariants::PairSet,
    outer_primitives: HashSet<u32>,
    /// (node, constraint) pairs whose evaluation failed with an error, and
    /// primitives whose format is in error: a probe checks those itself
    /// (it must fail on them, and name them in its notes).
    failed_pairs: Vec<u64>,
    failed_primitives: Vec<u32>,
    /// In a probe: the walk that started it's `walked_objects` (lent, as
    /// `outer_evaluated`; only when that walk has no failed pair or
    /// primitive, which a probe must meet again itself).
    outer_objects: invariants::PairSet,
    /// The tables and buffers of this walk's last finished probe, emptied,
    /// for its next one ([`Walker::conforms`] probes each unclaimed entry
    /// against every slice profile of its type: dozens per document).
    spare: Option<Box<Scratch<'v, 'd>>>,
    /// How many resources and conformance probes this walk has started
    /// (an object whose walk started one is not remembered as walked: the
    /// nested walks depend on more than the object and its children).
    nested: u32,
    /// Rules the caller downgrades (`bdl-7`, `per-1`; [`crate::rule_of`]):
    /// their errors are still reported as errors, but do not make a
    /// resource fail to conform (slice membership by profile), as if the
    /// rule were declared a warning.
    downgraded: &'v [String],
    /// The targets of narrative `#` links in the root Bundle (built on the
    /// first link that its own resource does not resolve).
    bundle_targets: Option<links::Targets<'d>>,
}

/// [`Walker::first_evaluation`] on the walker's fields (callers hold other
/// fields borrowed).
#[inline]
fn first_evaluation(
    evaluated: &mut invariants::PairSet,
    outer_evaluated: &invariants::PairSet,
    failed_pairs: &[u64],
    pair: u64,
) -> bool {
    if outer_evaluated.contains(pair) && !failed_pairs.contains(&pair) {
        return false;
    }
    evaluated.insert(pair)
}

/// A walk's tables and buffers that a probe of [`Walker::conforms`] takes
/// over, emptied, from the last finished probe ([`Walker::probe`],
/// [`Walker::recycle`]) instead of allocating its own.
struct Scratch<'v, 'd> {
    /// (node position, constraint index) pairs already evaluated, in one
    /// word each: the core and profile walks meet the same nodes with the
    /// same shared constraints.
    evaluated: invariants::PairSet,
    /// Objects already walked with a given list of children, as (node
    /// position, list number) pairs ([`ChildCache`]), whose walk found no
    /// error and started no other walk (no resource, no conformance
    /// probe): walking one again with the same children finds the same
    /// issues at the same places (the core and profile walks meet every
    /// element a profile leaves as its core type), which the final
    /// de-duplication would drop, so it is not walked again.
    walked_objects: invariants::PairSet,
    /// (resource position, structure) pairs already walked: a resource that
    /// claims a profile and also fills a slice of that profile is walked
    /// against it once.
    walked: HashSet<(u32, *const Structure)>,
    /// Primitive values whose format was already checked, by position (the
    /// core and profile walks meet the same values; formats depend on the
    /// type only).
    checked_primitives: HashSet<u32>,
    /// Spare child-definition lists (objects nest, so a stack).
    context_buffers: Vec<Vec<Context<'v>>>,
    /// Spare per-object occurrence counters (objects nest, so a stack).
    count_buffers: Vec<Vec<usize>>,
    /// The resources being walked, outermost first (for `#id` references).
    resources: Vec<&'d Node>,
    /// `%resource` and `%rootResource` of the resources being walked.
    resource_items: Vec<ResourceFrame<'d>>,
    /// What this walk found (failed invariants apart).
    issues: Vec<Issue>,
    /// Failed invariants, kept apart until the dedicated checks are known.
    invariant_issues: Vec<Issue>,
    /// Whether a resource (by position) conforms to a structure: known from
    /// this walk (no error while walking the resource against its core
    /// definition and that structure) or from a separate walk
    /// ([`Walker::conforms`]), for slices discriminated by profile.
    conformance: HashMap<(u32, *const Structure), bool>,
    /// Whether a resource (by position) met its core definition.
    core_conformance: HashMap<u32, bool>,
}

impl<'v, 'd> Scratch<'v, 'd> {
    /// Empty tables, sized for a document's walk at `depth` 0.
    fn new(depth: u8) -> Self {
        Scratch {
            // A document's walk meets ~2 000 pairs; nested walks (one
            // resource against one profile) far fewer, and there may be
            // dozens of them per document: [`Walker::probe`] gives them a
            // table.
            evaluated: if depth == 0 {
                invariants::PairSet::with_capacity(2048)
            } else {
                invariants::PairSet::default()
            },
            // A document's walk remembers a few hundred objects.
            walked_objects: if depth == 0 {
                invariants::PairSet::with_capacity(512)
            } else {
                invariants::PairSet::default()
            },
            walked: HashSet::default(),
            // Sized for a document's walk (a 50 KB document has ~500
            // primitives), so that it does not grow step by step.
            checked_primitives: if depth == 0 {
                HashSet::with_capacity_and_hasher(512, Default::default())
            } else {
                HashSet::default()
            },
            context_buffers: Vec::new(),
            count_buffers: Vec::new(),
            resources: Vec::new(),
            resource_items: Vec::new(),
            issues: Vec::new(),
            invariant_issues: Vec::new(),
            conformance: HashMap::default(),
            core_conformance: HashMap::default(),
        }
    }

    /// Empties what a finished probe found and walked; the spare buffer
    /// stacks are kept as they are (they hold empty buffers only).
    fn clear(&mut self) {
        self.evaluated.clear();
        self.walked_objects.clear();
        self.walked.clear();
        self.checked_primitives.clear();
        self.resources.clear();
        self.resource_items.clear();
        self.issues.clear();
        self.invariant_issues.clear();
        self.conformance.clear();
        self.core_conformance.clear();
    }
}

/// Where the children of an element are defined.
#[derive(Clone, Copy)]
struct Context<'v> {
    structure: &'v Structure,
    element: usize,
}

impl<'v, 'd> Walker<'v, 'd> {
    fn new(
        validator: &'v StructureValidator,
        terminology: &'v crate::terminology::Terminology,
        bundle: Option<Rc<BundleIndex<'d>>>,
        depth: u8,
    ) -> Self {
        Walker {
            package: None,
            validator,
            terminology,
            scratch: Scratch::new(depth),
            bundle,
            entry: None,
            depth,
            contained_ids: HashMap::default(),
            link_targets: HashMap::default(),
            jobs: None,
            conformance_notes: HashMap::default(),
            stop_at_first_error: false,
            failed: false,
            outer_evaluated: invariants::PairSet::default(),
            outer_primitives: HashSet::default(),
            failed_pairs: Vec::new(),
            failed_primitives: Vec::new(),
            outer_objects: invariants::PairSet::default(),
            nested: 0,
            spare: None,
            downgraded: &[],
            bundle_targets: None,
        }
    }

    /// Whether `issue` makes what is walked fail: an error not of a
    /// downgraded rule.
    #[inline]
    fn counts(&self, issue: &Issue) -> bool {
        issue.severity.is_error()
            && (self.downgraded.is_empty()
                || !crate::options::rule_of(issue)
                    .is_some_and(|rule| self.downgraded.iter().any(|d| d == rule)))
    }

    /// Whether the pair (node position, constraint index) is met for the
    /// first time: not evaluated by this walk, nor passed in the walk that
    /// started this probe.
    #[inline]
    fn first_evaluation(&mut self, pair: u64) -> bool {
        first_evaluation(
            &mut self.scratch.evaluated,
            &self.outer_evaluated,
            &self.failed_pairs,
            pair,
        )
    }

    /// Where the issue lists stand, to ask later whether an error was
    /// found since ([`Self::errors_since`]).
    fn mark(&self) -> (usize, usize) {
        (
            self.scratch.issues.len(),
            self.scratch.invariant_issues.len(),
        )
    }

    fn errors_since(&self, (issues, invariant_issues): (usize, usize)) -> bool {
        let found = |list: &[Issue]| list.iter().any(|i| self.counts(i));
        found(self.scratch.issues.get(issues..).unwrap_or_default())
            || found(
                self.scratch
                    .invariant_issues
                    .get(invariant_issues..)
                    .unwrap_or_default(),
            )
    }

    /// Whether an error of any rule (downgraded or not) was found since
    /// `mark`.
    fn any_error_since(&self, (issues, invariant_issues): (usize, usize)) -> bool {
        let found = |list: &[Issue]| list.iter().any(|i| i.severity.is_error());
        found(self.scratch.issues.get(issues..).unwrap_or_default())
            || found(
                self.scratch
                    .invariant_issues
                    .get(invariant_issues..)
                    .unwrap_or_default(),
            )
    }

    /// Whether the resource `node` conforms to the profile `url` (`None`
    /// when the gateway does not hold it, or conformance checks nest too
    /// deep): Java decides membership of a slice discriminated by
    /// `profile` this way (`InstanceValidator.sliceMatches` builds
    /// `<path>.conformsTo('<profile>')`; `conformsToProfile` validates the
    /// element against the profile in the same validation context, and any
    /// error means it does not conform). Answered from this walk when the
    /// resource was already walked against the profile (it claims it), else
    /// by walking it in a separate walker whose issues are dropped.
    ///
    /// `at`, when known, is where the resource is in this walk: a probe
    /// that conforms then walks it there, and its findings (warnings and
    /// information only, since it conforms) are this walk's, so the
    /// resource is not walked against the profile a second time.
    fn conforms(&mut self, node: &'d Node, url: &str, at: Option<&str>) -> Option<bool> {
        self.nested = self.nested.wrapping_add(1);
        let validator: &'v StructureValidator = self.validator;
        let structure = validator.structure(url)?;
        if node.get("resourceType").and_then(Node::as_str) != Some(structure.type_name.as_str()) {
            return Some(false);
        }
        let key = (node.span.start, Arc::as_ptr(structure));
        if let Some(&known) = self.scratch.conformance.get(&key) {
            return Some(known);
        }
        if self.depth >= 2 {
            return None;
        }
        if slicing::breaks_root_values(node, structure) {
            self.scratch.conformance.insert(key, false);
            return Some(false);
        }
        let mut probe = self.probe();
        probe.entry = self.entry;
        probe.stop_at_first_error = true;
        probe.downgraded = self.downgraded;
        // The resource's core definition was walked by this walk: a core
        // error already rules out every profile, and otherwise the probe
        // walks the profile only.
        let resource_type = structure.type_name.as_str();
        if let Some(&core_conforms) = self.scratch.core_conformance.get(&node.span.start) {
            if !core_conforms {
                self.scratch.conformance.insert(key, false);
                return Some(false);
            }
            if let Some(core) = validator.core.get(resource_type) {
                probe
                    .scratch
                    .walked
                    .insert((node.span.start, Arc::as_ptr(core)));
            }
        }
        let place = at.map(Path::root);
        let from_type = Path::root(resource_type);
        if probe.breaks_root_bindings(node, structure, place.as_ref().unwrap_or(&from_type)) {
            // As the walk would have found first: no full walk.
            self.scratch.conformance.insert(key, false);
            let errors = probe
                .scratch
                .issues
                .drain(..)
                .filter(|i| i.severity.is_error());
            self.conformance_notes.insert(key, errors.collect());
            self.recycle(probe);
            return Some(false);
        }
        // What this walk already checked is lent to the probe, which skips
        // what passed here (the core definition's invariants and formats,
        // met again under the profile) and hands it back.
        // Facts about the root Bundle, lent to the probe and handed back.
        probe.bundle_targets = self.bundle_targets.take();
        probe.outer_evaluated = std::mem::take(&mut self.scratch.evaluated);
        probe.outer_primitives = std::mem::take(&mut self.scratch.checked_primitives);
        probe.failed_pairs = std::mem::take(&mut self.failed_pairs);
        probe.failed_primitives = std::mem::take(&mut self.failed_primitives);
        // Objects this walk already walked without error, when the probe
        // walks at the same places and no pair or primitive failed here
        // (an object walked after one failed may have skipped it).
        let lend_objects =
            at.is_some() && probe.failed_pairs.is_empty() && probe.failed_primitives.is_empty();
        if lend_objects {
            probe.outer_objects = std::mem::take(&mut self.scratch.walked_objects);
        }
        probe.resource(node, place.as_ref(), &[url]);
        if lend_objects {
            self.scratch.walked_objects = std::mem::take(&mut probe.outer_objects);
        }
        self.bundle_targets = probe.bundle_targets.take();
        self.scratch.evaluated = std::mem::take(&mut probe.outer_evaluated);
        self.scratch.checked_primitives = std::mem::take(&mut probe.outer_primitives);
        self.failed_pairs = std::mem::take(&mut probe.failed_pairs);
        self.failed_primitives = std::mem::take(&mut probe.failed_primitives);
        let conforms = !probe.errors_since((0, 0));
        self.scratch.conformance.insert(key, conforms);
        if conforms && at.is_some() {
            self.scratch
                .walked
                .insert((node.span.start, Arc::as_ptr(structure)));
            self.scratch.issues.append(&mut probe.scratch.issues);
            self.scratch
                .invariant_issues
                .append(&mut probe.scratch.invariant_issues);
            // Its pairs and primitives are this walk's now (no later walk
            // of this resource evaluates them again).
            self.scratch.evaluated.extend_from(&probe.scratch.evaluated);
            self.scratch
                .checked_primitives
                .extend(probe.scratch.checked_primitives.drain());
        }
        if !conforms {
            let errors = probe
                .scratch
                .issues
                .drain(..)
                .chain(probe.scratch.invariant_issues.drain(..))
                .filter(|i| i.severity.is_error())
                .collect();
            self.conformance_notes.insert(key, errors);
        }
        self.recycle(probe);
        Some(conforms)
    }

    /// A walker for a probe of [`Self::conforms`], one level deeper, with
    /// the tables and buffers the last probe left, if any.
    fn probe(&mut self) -> Walker<'v, 'd> {
        let mut probe = Walker::new(
            self.validator,
            self.terminology,
            self.bundle.clone(),
            self.depth.saturating_add(1),
        );
        match self.spare.take() {
            Some(spare) => probe.scratch = *spare,
            None => probe.scratch.evaluated = invariants::PairSet::with_capacity(128).logged(),
        }
        probe
    }

    /// Keeps a finished probe's tables and buffers, emptied, for the next
    /// probe ([`Self::probe`]); what it found was taken before.
    fn recycle(&mut self, probe: Walker<'v, 'd>) {
        let mut spare = probe.scratch;
        spare.clear();
        self.spare = Some(Box::new(spare));
    }

    /// Whether `resource` has a code outside a required binding that
    /// `structure` sets on one of its root's children (the IPS pregnancy
    /// Observation profiles bind `Observation.code` to a few LOINC codes):
    /// a probe of [`Self::conforms`] asks this first, with the checks the
    /// full walk makes on those items ([`Self::binding`], under the same
    /// definitions), so a resource visibly outside the profile is ruled out
    /// without walking it. The errors found stay in this walk's issues;
    /// anything else found is dropped (the full walk finds it again).
    fn breaks_root_bindings(
        &mut self,
        resource: &'d Node,
        structure: &'v Structure,
        path: &Path<'_>,
    ) -> bool {
        let Some(root) = structure.elements.first() else {
            return false;
        };
        let mark = self.mark();
        for &child in &root.children {
            let Some(def) = structure.elements.get(child) else {
                continue;
            };
            let Some(binding) = &def.binding else {
                continue;
            };
            let [type_ref] = def.types.as_slice() else {
                continue;
            };
            if def.is_choice || def.slice_name.is_some() || binding.strength != "required" {
                continue;
            }
            let Some(member) = resource.get(&def.name) else {
                continue;
            };
            let is_array = matches!(member.value, Json::Array(_));
            let member_path = path.key(&def.name);
            let context = Context {
                structure,
                element: child,
            };
            for (index, item) in member.items().iter().enumerate() {
                if item.value == Json::Null {
                    continue;
                }
                let indexed = member_path.index(index);
                let item_path = if is_array { indexed } else { member_path };
                self.binding(item, &context, type_ref, &item_path);
            }
        }
        let broken = self.errors_since(mark);
        if !broken {
            self.scratch.issues.truncate(mark.0);
        }
        broken
    }

    fn issue(&mut self, severity: Severity, code: IssueType, path: &Path<'_>, message: String) {
        let issue = Issue::new(severity, code, message).at(path.to_string());
        self.failed |= self.counts(&issue);
        self.scratch.issues.push(issue);
    }

    /// A conformance-only walk that already failed: nothing more to learn.
    #[inline]
    fn done(&self) -> bool {
        self.stop_at_first_error && self.failed
    }

    fn error(&mut self, code: IssueType, path: &Path<'_>, message: String) {
        self.issue(Severity::Error, code, path, message);
    }

    /// A resource at `path` (`None` for the root), against its core
    /// definition and its profiles.
    fn resource(&mut self, node: &'d Node, path: Option<&Path<'_>>, extra_profiles: &[&str]) {
        self.nested = self.nested.wrapping_add(1);
        let Some(resource_type) = node.get("resourceType").and_then(Node::as_str) else {
            let unnamed = Path::root("Resource");
            self.error(
                IssueType::Structure,
                path.unwrap_or(&unnamed),
                "a resource must have a resourceType".into(),
            );
            return;
        };
        let root = Path::root(resource_type);
        let path = path.unwrap_or(&root);
        let validator: &'v StructureValidator = self.validator;
        let core: &'v Structure = match validator.core.get(resource_type) {
            Some(s) if s.kind == Kind::Resource && !s.is_abstract => s.as_ref(),
            _ => {
                self.error(
                    IssueType::Structure,
                    path,
                    format!("'{resource_type}' is not a known FHIR R4 resource type"),
                );
                return;
            }
        };
        self.scratch.resources.push(node);
        let item = Item::resource(node, &validator.model);
        let scope = std::rc::Rc::new(ehds_fhirpath::ResourceScope::new());
        let (root, root_scope) = match self.scratch.resource_items.last() {
            Some(container) if path.is_contained() => (
                container.root.clone(),
                std::rc::Rc::clone(&container.root_scope),
            ),
            _ => (item.clone(), std::rc::Rc::clone(&scope)),
        };
        if let Some((_, pointers)) = &mut self.jobs {
            let own = path.pointer();
            let root = match pointers.last() {
                Some((_, container_root)) if path.is_contained() => container_root.clone(),
                _ => own.clone(),
            };
            pointers.push((own, root));
        }
        self.scratch.resource_items.push(ResourceFrame {
            resource: item.clone(),
            root,
            scope,
            root_scope,
        });
        let first_visit = self
            .scratch
            .walked
            .insert((node.span.start, std::ptr::from_ref(core)));
        if first_visit {
            let mark = self.mark();
            self.object(
                node,
                &Context {
                    structure: core,
                    element: 0,
                },
                path,
                true,
            );
            if let Some(root) = core.elements.first() {
                self.invariants(node, &item, &root.constraints, path);
            }
            if resource_type == "StructureDefinition" && !self.stop_at_first_error {
                let mut found = Vec::new();
                definition_rules::check(validator, node, &path.to_string(), &mut found);
                for issue in found {
                    self.failed |= self.counts(&issue);
                    self.scratch.issues.push(issue);
                }
            }
            if matches!(resource_type, "SearchParameter" | "CapabilityStatement")
                && !self.stop_at_first_error
            {
                let is_resource_type = |name: &str| {
                    validator
                        .core
                        .get(name)
                        .is_some_and(|s| s.kind == Kind::Resource)
                };
                let mut found = Vec::new();
                crate::search_parameters::check(
                    node,
                    resource_type,
                    &path.to_string(),
                    &is_resource_type,
                    &mut found,
                );
                for issue in found {
                    self.failed |= self.counts(&issue);
                    self.scratch.issues.push(issue);
                }
            }
            let conforms = !self.errors_since(mark);
            self.scratch
                .core_conformance
                .insert(node.span.start, conforms);
        }
        let claimed: Vec<&str> = node
            .get("meta")
            .and_then(|m| m.get("profile"))
            .map(Node::items)
            .unwrap_or_default()
            .iter()
            .filter_map(Node::as_str)
            .collect();
        // The vital-signs profile an Observation's code implies, as Java
        // validates it (`implied`); not in a conformance probe, which
        // Java's `conformsTo()` runs against the named profile only. Looked
        // up on the walk's first visit of the resource only: that visit
        // walks it, so later visits would find it walked.
        let implied = (first_visit && resource_type == "Observation" && !self.stop_at_first_error)
            .then(|| implied::vital_signs_profile(node))
            .flatten()
            .filter(|url| validator.structure_in(url, self.package).is_some());
        for profile in claimed
            .iter()
            .chain(extra_profiles)
            .chain(implied.as_deref().as_slice())
        {
            match validator.structure_in(profile, self.package) {
                Some(s) if s.type_name == resource_type => {
                    if self.scratch.walked.insert((node.span.start, Arc::as_ptr(s))) {
                        let mark = self.mark();
                        let context = Context {
                            structure: s.as_ref(),
                            element: 0,
                        };
                        self.object(node, &context, path, true);
                        if let Some(root) = s.elements.first() {
                            self.invariants(node, &item, &root.constraints, path);
                        }
                        if let Some(&core) = self.scratch.core_conformance.get(&node.span.start) {
                            let conforms = core && !self.errors_since(mark);
                            self.scratch.conformance
                                .insert((node.span.start, Arc::as_ptr(s)), conforms);
                        }
                    }
                }
                Some(s) => {
                    let message = format!(
                        "the profile {profile} constrains {}, not {resource_type}",
                        s.type_name
                    );
                    self.error(IssueType::Invalid, path, message);
                }
                None => self.issue(
                    Severity::Warning,
                    IssueType::NotFound,
                    path,
                    format!(
                        "the profile {profile} is not known to this gateway; the resource was not checked against it"
                    ),
                ),
            }
        }
        if let Some((_, pointers)) = &mut self.jobs {
            pointers.pop();
        }
        self.scratch.resource_items.pop();
        self.scratch.resources.pop();
    }

    /// Evaluates `constraints` on the element instance `item` (whose node is
    /// `node`) at `path`, each (node, constraint) pair once per walk.
    ///
    /// Most calls evaluate nothing: a primitive value meets every
    /// `hasValue() or …` constraint (ele-1, see
    /// `Expression::is_true_when_context_has_value`), and the core and
    /// profile walks meet the same nodes with the same shared constraints.
    /// Both are decided here, before any evaluation context is built.
    #[inline]
    fn invariants(
        &mut self,
        node: &'d Node,
        item: &Item<'d>,
        constraints: &'v [Arc<Constraint>],
        path: &Path<'_>,
    ) {
        if self.done() {
            return;
        }
        let valued = matches!(
            item,
            Item::Node(n) if n.value.is_some_and(|v| !matches!(v.value, Json::Object(_) | Json::Array(_)))
        );
        if let Some(first) = constraints.iter().position(|c| c.applies(valued)) {
            self.new_invariants(
                node,
                item,
                constraints.get(first..).unwrap_or_default(),
                valued,
                path,
            );
        }
    }

    /// [`Self::invariants`] from the first constraint that applies: finds
    /// the first not yet evaluated on `node`.
    #[inline(never)]
    fn new_invariants(
        &mut self,
        node: &'d Node,
        item: &Item<'d>,
        constraints: &'v [Arc<Constraint>],
        valued: bool,
        path: &Path<'_>,
    ) {
        let mut rest = constraints;
        while let Some((first, tail)) = rest.split_first() {
            if first.applies(valued)
                && self.first_evaluation(invariants::pair(node.span.start, first.index))
            {
                self.evaluate_invariants(item, first, tail, valued, node, path);
                return;
            }
            rest = tail;
        }
    }

    /// Evaluates `first` (not yet evaluated on `node`), then those of
    /// `rest` that apply and are not either: one evaluation context for all.
    #[inline(never)]
    fn evaluate_invariants(
        &mut self,
        item: &Item<'d>,
        first: &'v Arc<Constraint>,
        rest: &'v [Arc<Constraint>],
        valued: bool,
        node: &'d Node,
        path: &Path<'_>,
    ) {
        let Some(frame) = self.scratch.resource_items.last() else {
            return;
        };
        let (resource, root) = (frame.resource.clone(), frame.root.clone());
        let scope = std::rc::Rc::clone(&frame.scope);
        let root_scope = std::rc::Rc::clone(&frame.root_scope);
        let validator: &'v StructureValidator = self.validator;
        let hooks = invariants::WalkHooks {
            bundle: self.bundle.as_deref(),
            entry: self.entry,
            terminology: self.terminology,
            conformance: Some((validator, self.depth)),
        };
        let context = EvalContext::for_element(&validator.model, item.clone(), resource, root)
            .with_hooks(&hooks)
            .with_now(validator.now)
            .with_resource_scopes(&scope, &root_scope);
        let pairs = std::iter::once(first).chain(rest.iter().filter(|c| c.applies(valued)));
        for (n, constraint) in pairs.enumerate() {
            let pair = invariants::pair(node.span.start, constraint.index);
            // `first` was found new by the caller.
            if n > 0
                && !first_evaluation(
                    &mut self.scratch.evaluated,
                    &self.outer_evaluated,
                    &self.failed_pairs,
                    pair,
                )
            {
                continue;
            }
            let Some(expression) = &constraint.expression else {
                continue;
            };
            if let Some((jobs, pointers)) = &mut self.jobs
                && let Some((resource_pointer, root_pointer)) = pointers.last()
            {
                let element_type = match item {
                    Item::Node(n) => n.ty,
                    _ => None,
                };
                jobs.push(InvariantJob {
                    pointer: path.pointer(),
                    element_type,
                    type_name: element_type
                        .map(|t| validator.model.type_name(t).to_owned())
                        .unwrap_or_default(),
                    resource_pointer: resource_pointer.clone(),
                    root_pointer: root_pointer.clone(),
                    key: constraint.key.to_string(),
                    expression: Arc::clone(expression),
                });
            }
            match expression.evaluate_constraint(&context) {
                Ok(true) => {}
                Ok(false) => {
                    if constraint.severity.is_error()
                        && !self.downgraded.iter().any(|d| **d == *constraint.key)
                    {
                        self.failed = true;
                        self.failed_pairs.push(pair);
                    }
                    self.scratch.invariant_issues.push(
                        Issue::new(
                            constraint.severity,
                            IssueType::Invariant,
                            format!("{}: {}", constraint.key, constraint.human),
                        )
                        .at(path.to_string()),
                    );
                }
                Err(e) => self.scratch.invariant_issues.push(
                    Issue::new(
                        Severity::Information,
                        IssueType::Informational,
                        format!("invariant {} not evaluated: {e}", constraint.key),
                    )
                    .at(path.to_string()),
                ),
            }
        }
    }

    /// The child element definitions of `context`'s element: those of its
    /// content reference; else its own children in the snapshot, completed
    /// by its datatype's definition for elements the snapshot does not list
    /// (a profile's snapshot may list only `id` and `extension` under a
    /// choice); else its datatype's (`type_ref`: the type chosen for a
    /// choice element; a type profile first).
    ///
    /// Merged once per process and kept in the validator; the returned list
    /// comes from a pool: hand it back with `self.scratch.context_buffers.push`.
    fn child_definitions(
        &mut self,
        context: &Context<'v>,
        type_ref: Option<&'v TypeRef>,
    ) -> (Vec<Context<'v>>, u32, Option<Arc<ChildIndex>>) {
        let validator: &'v StructureValidator = self.validator;
        let key: ChildKey = (
            context.structure.id,
            context.element,
            type_ref.map_or(0, |t| std::ptr::from_ref(t).addr()),
        );
        let cached = validator
            .children
            .read()
            .ok()
            .and_then(|cache| cache.by_key.get(&key).cloned());
        let (pairs, number, index) = match cached {
            Some(found) => found,
            None => {
                let merged = self.merge_child_definitions(context, type_ref);
                let pairs: Arc<[(u32, u32)]> = merged
                    .iter()
                    .map(|c| (c.structure.id, u32::try_from(c.element).unwrap_or(u32::MAX)))
                    .collect();
                // Only when every structure is the validator's own (ids are
                // positions in `all`), which they always are.
                let mut number = UNNUMBERED;
                let mut index = None;
                if merged.iter().all(|c| {
                    validator
                        .by_id(c.structure.id)
                        .is_some_and(|s| std::ptr::eq(s, c.structure))
                }) && let Ok(mut cache) = validator.children.write()
                {
                    let next = u32::try_from(cache.numbers.len()).unwrap_or(UNNUMBERED);
                    number = *cache.numbers.entry(Arc::clone(&pairs)).or_insert(next);
                    let built = Arc::new(ChildIndex::new(&merged));
                    cache
                        .by_key
                        .insert(key, (pairs, number, Arc::clone(&built)));
                    index = Some(built);
                }
                let mut out = self.scratch.context_buffers.pop().unwrap_or_default();
                out.clear();
                out.extend(merged);
                return (out, number, index);
            }
        };
        let mut out = self.scratch.context_buffers.pop().unwrap_or_default();
        out.clear();
        out.extend(pairs.iter().filter_map(|&(id, element)| {
            Some(Context {
                structure: validator.by_id(id)?,
                element: usize::try_from(element).ok()?,
            })
        }));
        (out, number, Some(index))
    }

    fn merge_child_definitions(
        &self,
        context: &Context<'v>,
        type_ref: Option<&TypeRef>,
    ) -> Vec<Context<'v>> {
        let Some(element) = context.structure.elements.get(context.element) else {
            return Vec::new();
        };
        let own = |structure: &'v Structure, element: usize| -> Vec<Context<'v>> {
            structure
                .elements
                .get(element)
                .map(|e| e.children.as_slice())
                .unwrap_or_default()
                .iter()
                .map(|&child| Context {
                    structure,
                    element: child,
                })
                .collect()
        };
        if let Some(target) = element.content_reference {
            return own(context.structure, target);
        }
        let mut children = own(context.structure, context.element);
        if context.element == 0 {
            return children;
        }
        let Some(type_ref) = type_ref.or_else(|| element.types.first()) else {
            return children;
        };
        if matches!(type_ref.code.as_str(), "BackboneElement" | "Element") {
            return children;
        }
        let validator: &'v StructureValidator = self.validator;
        let Some(structure) = type_ref
            .profiles
            .iter()
            .find_map(|p| validator.structure(p))
            .or_else(|| validator.core_of(type_ref))
        else {
            return children;
        };
        for inherited in own(structure, 0) {
            let name = inherited
                .structure
                .elements
                .get(inherited.element)
                .map(|e| e.name.as_str());
            let listed = children
                .iter()
                .any(|c| c.structure.elements.get(c.element).map(|e| e.name.as_str()) == name);
            if !listed {
                children.push(inherited);
            }
        }
        children
    }

    fn object(
        &mut self,
        node: &'d Node,
        context: &Context<'v>,
        path: &Path<'_>,
        resource_root: bool,
    ) {
        self.object_as(node, context, None, path, resource_root);
    }

    /// An object for the element of `context`, of type `type_ref`.
    fn object_as(
        &mut self,
        node: &'d Node,
        context: &Context<'v>,
        type_ref: Option<&'v TypeRef>,
        path: &Path<'_>,
        resource_root: bool,
    ) {
        if self.done() {
            return;
        }
        let Some(members) = node.as_object() else {
            self.error(
                IssueType::Structure,
                path,
                "expected a JSON object here".into(),
            );
            return;
        };
        let (children, number, index) = self.child_definitions(context, type_ref);
        // Walked already with these children (see `walked_objects`).
        let remembered = (!resource_root && number != UNNUMBERED && self.jobs.is_none())
            .then(|| invariants::pair(node.span.start, number));
        if let Some(key) = remembered
            && (self.scratch.walked_objects.contains(key) || self.outer_objects.contains(key))
        {
            self.scratch.context_buffers.push(children);
            return;
        }
        let start = (self.mark(), self.nested);
        // Occurrences per child; buffers are reused across objects.
        let mut counts = self.scratch.count_buffers.pop().unwrap_or_default();
        counts.clear();
        counts.resize(children.len(), 0);
        // Items per sliced child, for slicing: (slot, (member path, is
        // array, items, chosen type)).
        let mut sliced_items: Vec<(usize, SlicedItems<'_, 'v>)> = Vec::new();
        // The member naming each choice element seen (by slot): few.
        let mut choice_keys: Vec<(usize, &str)> = Vec::new();
        for member in members {
            let key = &*member.key;
            if resource_root && key == "resourceType" {
                continue;
            }
            let (name, is_primitive_extension) = match key.strip_prefix('_') {
                Some(base) => (base, true),
                None => (key, false),
            };
            let found = match &index {
                Some(index) => index.find(&children, name),
                None => children.iter().enumerate().find_map(|(slot, child)| {
                    let def = child.structure.elements.get(child.element)?;
                    def.matches(name).map(|choice| (slot, child, choice))
                }),
            };
            let member_path = path.key(key);
            let Some((slot, child, choice_type)) = found else {
                // A choice element written with a type it does not allow
                // (`valueUri` where only `url` is allowed): one finding, and
                // the element counts as present.
                let choice = children.iter().enumerate().find_map(|(slot, child)| {
                    let def = child.structure.elements.get(child.element)?;
                    let suffix = name.strip_prefix(def.name.as_str())?;
                    (def.is_choice && suffix.starts_with(|c: char| c.is_ascii_uppercase()))
                        .then_some((slot, def))
                });
                if let Some((slot, def)) = choice {
                    if let Some(count) = counts.get_mut(slot) {
                        *count += 1;
                    }
                    let allowed: Vec<&str> = def.types.iter().map(|t| t.code.as_str()).collect();
                    let message = format!(
                        "{}[x] does not allow the type named by '{key}' (allowed: {})",
                        def.name,
                        allowed.join(", ")
                    );
                    self.error(IssueType::Structure, &member_path, message);
                    continue;
                }
                self.error(
                    IssueType::Structure,
                    &member_path,
                    format!("unrecognized element '{key}': it is not defined here (or the profile prohibits it)"),
                );
                continue;
            };
            let Some(def) = child.structure.elements.get(child.element) else {
                continue;
            };
            if def.is_choice {
                match choice_keys.iter().find(|(s, _)| *s == slot).map(|(_, k)| k) {
                    Some(first) if *first != name => {
                        let message = format!(
                            "only one of the choices of {}[x] may be present ('{first}' and '{name}' found)",
                            def.name
                        );
                        self.error(IssueType::Structure, &member_path, message);
                    }
                    _ => {
                        if !choice_keys.iter().any(|(s, _)| *s == slot) {
                            choice_keys.push((slot, name));
                        }
                    }
                }
            }
            let items = member.node.items();
            let present = items.iter().filter(|n| n.value != Json::Null).count();
            if is_primitive_extension {
                // `_x` alone still makes the element present.
                if !members.iter().any(|m| &*m.key == name)
                    && let Some(count) = counts.get_mut(slot)
                {
                    *count += present;
                }
            } else if let Some(count) = counts.get_mut(slot) {
                *count += present;
            }
            let is_array = matches!(member.node.value, Json::Array(_));
            if def.base_max.repeats() && !is_array {
                self.error(
                    IssueType::Structure,
                    &member_path,
                    format!("'{key}' repeats, so it must be a JSON array"),
                );
            } else if !def.base_max.repeats() && is_array {
                self.error(
                    IssueType::Structure,
                    &member_path,
                    format!("'{key}' does not repeat, so it must not be a JSON array"),
                );
            }
            let type_ref: Option<&'v TypeRef> = choice_type.or_else(|| def.types.first());
            let child_context = *child;
            for (index, item) in items.iter().enumerate() {
                if item.value == Json::Null {
                    continue;
                }
                let indexed = member_path.index(index);
                let item_path = if is_array { indexed } else { member_path };
                if !is_primitive_extension {
                    self.fixed_and_pattern(item, def, &item_path);
                }
                // Entries of the root Bundle: references inside resolve from here.
                let root_entry = resource_root && path.is_root("Bundle") && key == "entry";
                if root_entry {
                    self.entry = Some(index);
                }
                // A resource element allowing several resource types (each
                // with its profiles): the type the resource names.
                // (`resourceType` read only then: objects of every other
                // element would be scanned for it in vain.)
                let several = def.types.len() > 1 && !def.is_choice;
                let named = several
                    .then(|| item.get("resourceType").and_then(Node::as_str))
                    .flatten();
                let type_ref = match named {
                    Some(resource_type) => def
                        .types
                        .iter()
                        .find(|t| t.code == resource_type)
                        .or(type_ref),
                    None => type_ref,
                };
                if is_primitive_extension {
                    self.primitive_extension(item, type_ref, &item_path);
                } else if let Some(type_ref) = &type_ref {
                    self.value(item, &child_context, type_ref, &item_path);
                } else if def.content_reference.is_some() || !def.children.is_empty() {
                    self.object(item, &child_context, &item_path, false);
                    let typed = Item::node(item, def.fhirpath_type);
                    self.invariants(item, &typed, &def.constraints, &item_path);
                }
                if root_entry {
                    self.entry = None;
                }
            }
            if !is_primitive_extension && def.slicing.is_some() && !def.slices.is_empty() {
                let collected = items
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| n.value != Json::Null)
                    .collect();
                let chosen_type = def
                    .is_choice
                    .then(|| type_ref.map(|t| t.code.as_str()))
                    .flatten();
                sliced_items.push((slot, (key, is_array, collected, chosen_type)));
            }
        }
        let sliced = index.as_ref().is_none_or(|index| index.sliced);
        for (slot, child) in children.iter().enumerate().filter(|_| sliced) {
            let Some(def) = child.structure.elements.get(child.element) else {
                continue;
            };
            if def.slicing.is_none() || def.slices.is_empty() {
                continue;
            }
            let (key, is_array, items, chosen_type) = sliced_items
                .iter()
                .position(|(s, _)| *s == slot)
                .map(|at| sliced_items.swap_remove(at).1)
                .unwrap_or((def.name.as_str(), true, Vec::new(), None));
            let member_path = path.key(key);
            self.slices(child, &member_path, is_array, &items, chosen_type);
        }
        for (slot, child) in children.iter().enumerate() {
            let (Some(def), Some(&count)) = (
                child.structure.elements.get(child.element),
                counts.get(slot),
            ) else {
                continue;
            };
            if (count as u64) < u64::from(def.min) {
                let name = if def.is_choice {
                    format!("{}[x]", def.name)
                } else {
                    def.name.clone()
                };
                // Named with the definition walked, so the same fault found
                // against R4 core and against a profile is reported once
                // per profile, as Java does (`... (from <profile>)`).
                let message = format!(
                    "{}: minimum required = {}, but only found {count} (from {})",
                    def.path, def.min, context.structure.url
                );
                self.error(IssueType::Required, &path.key(&name), message);
            } else if def.max.exceeded_by(count) {
                let message = format!(
                    "{}: maximum allowed = {}, but found {count} (from {})",
                    def.path,
                    match def.max {
                        compile::Max::N(n) => n.to_string(),
                        compile::Max::Unbounded => "*".into(),
                    },
                    context.structure.url
                );
                self.error(IssueType::Structure, &path.key(&def.name), message);
            }
        }
        self.scratch.count_buffers.push(counts);
        self.scratch.context_buffers.push(children);
        if let Some(key) = remembered
            && self.nested == start.1
            && !self.any_error_since(start.0)
        {
            self.scratch.walked_objects.insert(key);
        }
    }

    /// The profiles a resource in an element of type `type_ref` is walked
    /// against. `type.profile` lists alternatives (R4
    /// elementdefinition-definitions.html#ElementDefinition.type.profile:
    /// "the element SHALL conform to at least one"): only those of the
    /// resource's type apply, and of several the first it conforms to (Java
    /// `InstanceValidator.checkChildByDefinition`, `VALIDATION_VAL_PROFILE_NOMATCH`
    /// when none does, reported with the reasons as information).
    fn resource_profiles(
        &mut self,
        item: &'d Node,
        type_ref: &'v TypeRef,
        path: &Path<'_>,
    ) -> Vec<&'v str> {
        let validator: &'v StructureValidator = self.validator;
        let resource_type = item.get("resourceType").and_then(Node::as_str);
        let applicable: Vec<&'v str> = type_ref
            .profiles
            .iter()
            .map(String::as_str)
            .filter(|p| {
                validator
                    .structure_in(p, self.package)
                    .is_none_or(|s| Some(s.type_name.as_str()) == resource_type)
            })
            .collect();
        match applicable.as_slice() {
            [] if !type_ref.profiles.is_empty() => {
                let message = format!(
                    "a {} is not allowed here: the element's profiles are {}",
                    resource_type.unwrap_or("resource"),
                    type_ref.profiles.join(", ")
                );
                self.error(IssueType::Structure, path, message);
                Vec::new()
            }
            [] | [_] => applicable,
            several => {
                let several = several.to_vec();
                for profile in &several {
                    if self.conforms(item, profile, None) == Some(true) {
                        return vec![profile];
                    }
                }
                if several
                    .iter()
                    .any(|p| self.conforms(item, p, None).is_none())
                {
                    // Undecidable (a profile too deep to check): not checked.
                    return Vec::new();
                }
                let message = format!(
                    "the resource conforms to none of the profiles this element allows: {}",
                    several.join(", ")
                );
                self.error(IssueType::Structure, path, message);
                // The reasons, as information (Java reports each profile's
                // findings with its VALIDATION_VAL_PROFILE_NOMATCH).
                let at = path.to_string();
                for profile in &several {
                    let Some(structure) = validator.structure_in(profile, self.package) else {
                        continue;
                    };
                    let key = (item.span.start, Arc::as_ptr(structure));
                    let notes: Vec<Issue> = self
                        .conformance_notes
                        .get(&key)
                        .map(Vec::as_slice)
                        .unwrap_or_default()
                        .iter()
                        .map(|note| {
                            let place = note.expression.as_deref().unwrap_or_default();
                            let place = match resource_type.and_then(|t| place.strip_prefix(t)) {
                                Some(rest) => format!("{at}{rest}"),
                                None => at.clone(),
                            };
                            Issue::new(
                                Severity::Information,
                                IssueType::Informational,
                                format!(
                                    "does not conform to {profile} because: {}",
                                    note.diagnostics
                                ),
                            )
                            .at(place)
                        })
                        .collect();
                    self.scratch.issues.extend(notes);
                }
                Vec::new()
            }
        }
    }

    /// `Attachment.size` states the number of bytes of the decoded `data`
    /// (R4 datatypes.html#Attachment: "The number of bytes of data that
    /// make up this attachment (before base64 encoding, if that is done)");
    /// Java `InstanceValidator.checkAttachment` (`TYPE_SPECIFIC_CHECKS_DT_ATT_SIZE_CORRECT`).
    fn attachment_size(&mut self, item: &'d Node, path: &Path<'_>) {
        let (Some(size), Some(data)) = (
            item.get("size").and_then(|n| match &n.value {
                Json::Number(text) => text.parse::<u64>().ok(),
                _ => None,
            }),
            item.get("data").and_then(Node::as_str),
        ) else {
            return;
        };
        let Some(actual) = primitive::base64_decoded_len(data) else {
            return; // not base64: the base64Binary format check reports it
        };
        if actual != size {
            self.error(
                IssueType::Structure,
                path,
                format!(
                    "stated Attachment size {size} does not match the actual size of the data, {actual} bytes"
                ),
            );
        }
    }

    /// `Coding.system` is an absolute URI naming a code system, not a value
    /// set (R4 datatypes.html#Coding and terminologies.html#4.1; Java
    /// `InstanceValidator.checkCoding`: `TERMINOLOGY_TX_SYSTEM_RELATIVE`,
    /// `TERMINOLOGY_TX_SYSTEM_VALUESET2`).
    fn coding_system(&mut self, item: &'d Node, path: &Path<'_>) {
        let Some(system) = item.get("system").and_then(Node::as_str) else {
            return;
        };
        let at = path.key("system");
        if !primitive::is_absolute_uri(system) {
            self.error(
                IssueType::CodeInvalid,
                &at,
                "Coding.system must be an absolute reference, not a local reference".into(),
            );
        } else if self.terminology.knows_value_set(system)
            && !self.terminology.knows_code_system(system)
        {
            self.error(
                IssueType::CodeInvalid,
                &at,
                format!("the Coding references a value set, not a code system ('{system}')"),
            );
        }
    }

    /// A terminology server's recorded verdict on this Coding's code and
    /// display, for a code system the gateway does not hold
    /// ([`crate::terminology::recorded`]; Java checks every Coding on its
    /// server, `InstanceValidator.checkCoding`). The display language asked
    /// for is the `language` of the nearest resource that states one (Java's
    /// working language, `NodeStack.workingLang`, inherited by contained and
    /// entry resources).
    fn coding_answer(&mut self, item: &'d Node, path: &Path<'_>) {
        let terminology = self.terminology;
        if !terminology.has_recorded_answers() {
            return;
        }
        let (Some(system), Some(code)) = (
            item.get("system").and_then(Node::as_str),
            item.get("code").and_then(Node::as_str),
        ) else {
            return;
        };
        let display = item.get("display").and_then(Node::as_str);
        let langs = self
            .scratch
            .resources
            .iter()
            .rev()
            .find_map(|r| r.get("language").and_then(Node::as_str))
            .unwrap_or("");
        let Some(issues) = terminology.recorded_answer(system, code, display, langs) else {
            return;
        };
        for issue in issues {
            let child;
            let at = match issue.part.key() {
                Some(key) => {
                    child = path.key(key);
                    &child
                }
                None => path,
            };
            self.issue(
                issue.severity,
                IssueType::CodeInvalid,
                at,
                issue.message.clone(),
            );
        }
    }

    /// ref-1: a local reference `#id` names a resource contained in this
    /// resource or one that contains it (`#` alone is the container).
    fn local_reference(&mut self, item: &'d Node, path: &Path<'_>) {
        let Some(id) = item
            .get("reference")
            .and_then(Node::as_str)
            .and_then(|r| r.strip_prefix('#'))
        else {
            return;
        };
        if id.is_empty() {
            return;
        }
        let resources: smallvec::SmallVec<[&'d Node; 4]> =
            self.scratch.resources.iter().rev().copied().collect();
        let found = resources
            .into_iter()
            .any(|resource| self.contains_id(resource, id));
        if !found {
            // Java reports both: the reference cannot be resolved
            // (`InstanceValidator.checkReference`, `REFERENCE_REF_CANTRESOLVE`)
            // and the ref-1 invariant fails.
            let message = format!("unable to resolve the local reference '#{id}'");
            self.error(IssueType::NotFound, path, message);
            let message = format!("ref-1: the local reference '#{id}' names no contained resource");
            self.error(IssueType::Invariant, &path.key("reference"), message);
        }
    }

    /// Whether `resource` contains a resource with this `id`: a scan of a
    /// few, a binary search of the ids sorted once for many (a resource
    /// with N contained resources referenced N times would otherwise cost
    /// N² comparisons).
    fn contains_id(&mut self, resource: &'d Node, id: &str) -> bool {
        let contained: &'d [Node] = resource
            .get("contained")
            .map(Node::items)
            .unwrap_or_default();
        let id_of = |c: &'d Node| c.get("id").and_then(Node::as_str);
        if contained.len() <= 8 {
            return contained.iter().any(|c| id_of(c) == Some(id));
        }
        self.contained_ids
            .entry(resource.span.start)
            .or_insert_with(|| {
                let mut ids: Vec<&'d str> = contained.iter().filter_map(id_of).collect();
                ids.sort_unstable();
                ids
            })
            .binary_search(&id)
            .is_ok()
    }

    /// A reference that resolves inside the root Bundle points at a
    /// resource of a type its element's `targetProfile`s allow
    /// (ElementDefinition.type.targetProfile).
    fn reference_target(&mut self, item: &'d Node, type_ref: &TypeRef, path: &Path<'_>) {
        let (Some(bundle), Some(entry)) = (self.bundle.clone(), self.entry) else {
            return;
        };
        let Some(reference) = item.get("reference").and_then(Node::as_str) else {
            return;
        };
        let Resolution::Entry(target) = bundle.resolve(entry, reference) else {
            return;
        };
        // Versions of one resource may share a fullUrl (bdl-7): a reference
        // without a version then matches several entries (Java
        // `BaseValidator.getFromBundle`, `BUNDLE_BUNDLE_MULTIPLEMATCHES`, on
        // every reference; the document rules report the Composition's
        // again, as Java's BundleValidator does).
        // (`_` first: a byte scan, cheaper than the substring search's
        // set-up, and most references have none.)
        let versioned = reference.as_bytes().contains(&b'_') && reference.contains("/_history/");
        if !versioned
            && let Some(full_url) = bundle.entry(target).and_then(|e| e.full_url)
            && bundle.is_shared_full_url(full_url)
        {
            let message = format!(
                "the reference '{reference}' matches several entries of this Bundle (versions sharing the fullUrl {full_url}); name the version"
            );
            self.error(IssueType::Forbidden, path, message);
        }
        let Some(target_type) = bundle.entry(target).and_then(|e| e.resource_type()) else {
            return;
        };
        let validator: &'v StructureValidator = self.validator;
        let allowed_type = |p: &String| validator.structure(p).map(|s| s.type_name.as_str());
        // Unknown target profiles, or `Resource`: nothing to check against.
        // (Decided without collecting: most references pass.)
        if type_ref
            .target_profiles
            .iter()
            .any(|p| allowed_type(p).is_none_or(|t| t == "Resource" || t == target_type))
        {
            return;
        }
        let allowed: Vec<&str> = type_ref
            .target_profiles
            .iter()
            .filter_map(allowed_type)
            .collect();
        let message = format!(
            "the reference points at a {target_type}, but this element allows only {}",
            allowed.join(", ")
        );
        self.error(IssueType::Structure, &path.key("reference"), message);
    }

    /// A coded value against its element's required or extensible binding
    /// (ElementDefinition.binding; R4 terminologies.html#strength): a code
    /// outside a required value set is an error, outside an extensible one a
    /// warning; a code the gateway cannot decide offline (SNOMED CT, LOINC, an
    /// unknown value set) is reported as not checked.
    fn binding(
        &mut self,
        item: &'d Node,
        context: &Context<'v>,
        type_ref: &TypeRef,
        path: &Path<'_>,
    ) {
        use crate::terminology::Membership;
        let Some(binding) = context
            .structure
            .elements
            .get(context.element)
            .and_then(|e| e.binding.as_ref())
        else {
            return;
        };
        let required = match binding.strength.as_str() {
            "required" => true,
            "extensible" => false,
            _ => return,
        };
        let Some(value_set) = binding.value_set.as_deref() else {
            return;
        };
        let terminology = self.terminology;
        let coding = |coding: &Node| -> Option<Membership> {
            let code = coding.get("code").and_then(Node::as_str)?;
            let system = coding.get("system").and_then(Node::as_str);
            Some(terminology.check_code(value_set, system, code))
        };
        let membership = match type_ref.code.as_str() {
            "code" => item
                .as_str()
                .map(|code| terminology.check_bare_code(value_set, code)),
            // A Quantity's unit is coded by `system` and `code` (R4
            // datatypes.html#Quantity; Java `checkQuantity` binds them).
            "Coding" | "Quantity" | "Age" | "Count" | "Distance" | "Duration"
            | "SimpleQuantity" | "MoneyQuantity" => coding(item),
            "CodeableConcept" => {
                let results: Vec<Membership> = item
                    .get("coding")
                    .map(Node::items)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(coding)
                    .collect();
                if results.is_empty() {
                    Some(Membership::NotMember(
                        "no code is given, only text".to_owned(),
                    ))
                } else if results.contains(&Membership::Member) {
                    Some(Membership::Member)
                } else {
                    results
                        .iter()
                        .find(|m| matches!(m, Membership::NotChecked(_)))
                        .or(results.first())
                        .cloned()
                }
            }
            _ => None,
        };
        let strength = if required { "required" } else { "extensible" };
        match membership {
            None | Some(Membership::Member) => {}
            Some(Membership::NotMember(why)) => {
                let message = format!(
                    "the code is not in the value set {value_set} ({strength} binding): {why}"
                );
                let severity = if required {
                    Severity::Error
                } else {
                    Severity::Warning
                };
                // A bare `code` carries no system: Java infers it from the
                // value set's expansion and, when the code is not there,
                // reports that first (`Terminology_TX_System_Unknown`-style
                // "The System URI could not be determined for the code … in
                // the ValueSet"), then the binding: the same fault twice.
                if type_ref.code == "code"
                    && let Some(code) = item.as_str()
                {
                    let message = format!(
                        "the system URI could not be determined for the code '{}' in the value set {value_set}",
                        shorten(code)
                    );
                    self.issue(severity, IssueType::CodeInvalid, path, message);
                }
                self.issue(severity, IssueType::CodeInvalid, path, message);
            }
            Some(Membership::NotChecked(why)) => {
                let message =
                    format!("the {strength} binding to {value_set} was not checked: {why}");
                self.issue(
                    Severity::Information,
                    IssueType::Informational,
                    path,
                    message,
                );
            }
        }
    }

    /// `fixed[x]` and `pattern[x]` of the element an item belongs to, and
    /// its `minValue[x]`/`maxValue[x]` (ElementDefinition.minValue[x]; Java
    /// `InstanceValidator.checkPrimitive`/`checkQuantity`,
    /// `TYPE_SPECIFIC_CHECKS_DT_*_MIN/MAX`), where the comparison is
    /// decidable offline ([`primitive::compare_bound`]).
    fn fixed_and_pattern(&mut self, item: &'d Node, def: &compile::ElementDef, path: &Path<'_>) {
        for (bound, below) in [(&def.min_value, true), (&def.max_value, false)] {
            let Some(bound) = bound else {
                continue;
            };
            // A Duration bound on a date, dateTime or instant is relative
            // to the current time (R4 ElementDefinition.minValue[x]).
            let order = match (&item.value, &bound.value) {
                (Json::String(_), Json::Object(_)) => self.duration_bound(item, bound, below),
                _ => primitive::compare_bound(item, bound),
            };
            let broken = match order {
                Some(std::cmp::Ordering::Less) => below,
                Some(std::cmp::Ordering::Greater) => !below,
                _ => false,
            };
            if broken {
                let message = format!(
                    "{}: the value is {} the {} the profile allows",
                    def.path,
                    if below { "less than" } else { "greater than" },
                    if below { "minimum" } else { "maximum" }
                );
                self.error(IssueType::Value, path, message);
            }
        }
        if let Some(fixed) = &def.fixed
            && !slicing::equals_fixed(item, fixed)
            && self.fixed_differences(item, fixed, path, &def.path) == 0
        {
            let message = format!(
                "{}: the value must be exactly the fixed value of the profile",
                def.path
            );
            self.error(IssueType::Value, path, message);
        }
        if let Some(pattern) = &def.pattern
            && !slicing::matches_pattern(item, pattern)
        {
            let message = format!(
                "{}: the value does not match the pattern the profile requires",
                def.path
            );
            self.error(IssueType::Value, path, message);
        }
    }

    /// How a date-like `item` compares with a Duration bound relative to
    /// the clock ([`primitive::compare_duration_bound`]). Kept out of
    /// [`Walker::fixed_and_pattern`], which every item passes through:
    /// Duration bounds are rare, and the clock reading would otherwise
    /// weigh on that function's every call.
    #[cold]
    #[inline(never)]
    fn duration_bound(
        &self,
        item: &Node,
        bound: &Node,
        minimum: bool,
    ) -> Option<std::cmp::Ordering> {
        primitive::compare_duration_bound(item, bound, minimum, self.validator.now_millis())
    }

    /// Where a complex value differs from the `fixed[x]` value of `def_path`,
    /// each difference reported at the element it is in, as Java does
    /// (`InstanceValidator.checkFixedValue` recurses into the fixed value's
    /// children: `PROFILE_VAL_MISSINGELEMENT` for a child the instance lacks,
    /// `PROFILE_VAL_NOTALLOWED` for one the fixed value does not have, a
    /// wrong primitive at the primitive). Returns how many were reported;
    /// 0 when `item` and `fixed` are not both objects (the caller reports
    /// the value once).
    fn fixed_differences(
        &mut self,
        item: &'d Node,
        fixed: &Node,
        path: &Path<'_>,
        def_path: &str,
    ) -> usize {
        let (Json::Object(members), Json::Object(fixed_members)) = (&item.value, &fixed.value)
        else {
            return 0;
        };
        let mut reported = 0;
        for wanted in fixed_members.iter() {
            let at = path.key(&wanted.key);
            match members.iter().find(|m| m.key == wanted.key) {
                None => {
                    self.error(
                        IssueType::Value,
                        &at,
                        format!(
                            "{def_path}: the element {} is missing, but the fixed value of the profile has it",
                            wanted.key
                        ),
                    );
                    reported += 1;
                }
                Some(member) => {
                    reported += self.fixed_child(&member.node, &wanted.node, &at, def_path)
                }
            }
        }
        for member in members.iter() {
            if !fixed_members.iter().any(|f| f.key == member.key) {
                self.error(
                    IssueType::Value,
                    &path.key(&member.key),
                    format!(
                        "{def_path}: the element {} is present in the instance but not allowed in the fixed value of the profile",
                        member.key
                    ),
                );
                reported += 1;
            }
        }
        reported
    }

    /// One child of a fixed complex value ([`Self::fixed_differences`]).
    fn fixed_child(
        &mut self,
        item: &'d Node,
        fixed: &Node,
        path: &Path<'_>,
        def_path: &str,
    ) -> usize {
        if slicing::equals_fixed(item, fixed) {
            return 0;
        }
        let nested = match (&item.value, &fixed.value) {
            (Json::Array(items), Json::Array(fixed_items)) if items.len() == fixed_items.len() => {
                items
                    .iter()
                    .zip(fixed_items.iter())
                    .enumerate()
                    .map(|(i, (item, fixed))| {
                        self.fixed_child(item, fixed, &path.index(i), def_path)
                    })
                    .sum()
            }
            _ => self.fixed_differences(item, fixed, path, def_path),
        };
        if nested > 0 {
            return nested;
        }
        self.error(
            IssueType::Value,
            path,
            format!("{def_path}: the value must be exactly the fixed value of the profile"),
        );
        1
    }

    /// The items of a sliced element: each assigned to the slice whose
    /// discriminators it meets and checked against it; slice cardinality;
    /// closed slicing.
    fn slices(
        &mut self,
        sliced: &Context<'v>,
        path: &Path<'_>,
        is_array: bool,
        items: &[(usize, &'d Node)],
        chosen_type: Option<&str>,
    ) {
        let structure: &'v Structure = sliced.structure;
        let Some(def) = structure.elements.get(sliced.element) else {
            return;
        };
        let Some(slicing) = &def.slicing else {
            return;
        };
        let slices: Vec<usize> = def.slices.clone();
        let mut counts = vec![0usize; slices.len()];
        let mut evaluable = true;
        let validator = self.validator;
        let profile_type = |url: &str| validator.structure(url).map(|s| s.type_name.as_str());
        for &(index, item) in items {
            let indexed = path.index(index);
            let item_path = if is_array { indexed } else { *path };
            // Entries of the root Bundle: references inside resolve from here.
            if path.is_root_bundle_entry() && self.bundle.is_some() {
                self.entry = Some(index);
            }
            let mut matched = None;
            let mut item_evaluable = true;
            // Profiles of slices the item has the type of but does not
            // conform to: the reasons it is in none.
            let mut not_conforming: Vec<String> = Vec::new();
            // Where the resource a profile discriminator reads is.
            let resource_at = slicing
                .discriminators
                .iter()
                .find(|d| d.kind == "profile")
                .and_then(|d| match d.path.as_str() {
                    "$this" => Some(item_path.to_string()),
                    "resource" => Some(format!("{item_path}.resource")),
                    _ => None,
                });
            for (k, &slice_index) in slices.iter().enumerate() {
                let Some(slice) = structure.elements.get(slice_index) else {
                    continue;
                };
                let mut conforms = |node: &'d Node, url: &str| -> Option<bool> {
                    let answer = self.conforms(node, url, resource_at.as_deref());
                    if answer == Some(false)
                        && profile_type(url) == node.get("resourceType").and_then(Node::as_str)
                    {
                        not_conforming.push(url.to_owned());
                    }
                    answer
                };
                match slicing::item_matches(
                    item,
                    chosen_type,
                    structure,
                    def,
                    slice,
                    &profile_type,
                    &mut conforms,
                ) {
                    slicing::SliceMatch::Yes => {
                        matched = Some((k, slice_index));
                        break;
                    }
                    slicing::SliceMatch::Unknown => item_evaluable = false,
                    slicing::SliceMatch::No => {}
                }
            }
            evaluable &= item_evaluable || matched.is_some();
            match matched {
                Some((k, slice_index)) => {
                    if let Some(count) = counts.get_mut(k) {
                        *count += 1;
                    }
                    let slice_context = Context {
                        structure,
                        element: slice_index,
                    };
                    let slice_type = structure
                        .elements
                        .get(slice_index)
                        .and_then(|s| s.types.first());
                    if let Some(slice_def) = structure.elements.get(slice_index) {
                        self.fixed_and_pattern(item, slice_def, &item_path);
                    }
                    match slice_type {
                        Some(type_ref) => self.value(item, &slice_context, type_ref, &item_path),
                        None => {
                            self.object(item, &slice_context, &item_path, false);
                            if let Some(slice_def) = structure.elements.get(slice_index) {
                                let typed = Item::node(item, slice_def.fhirpath_type);
                                self.invariants(item, &typed, &slice_def.constraints, &item_path);
                            }
                        }
                    }
                }
                None if slicing.rules == "closed" && item_evaluable => {
                    let message = format!(
                        "{}: this item matches none of the slices, and the slicing is closed",
                        def.path
                    );
                    self.error(IssueType::Structure, &item_path, message);
                }
                // Open slicing: an item in no slice is only checked against
                // the sliced element (Java: `VALIDATION_VAL_PROFILE_NOTSLICE`,
                // a hint carrying the slice notes).
                None if !not_conforming.is_empty() => {
                    not_conforming.dedup();
                    let message = format!(
                        "{}: this item is in none of the slices: it does not conform to {}",
                        def.path,
                        not_conforming.join(", ")
                    );
                    self.issue(
                        Severity::Information,
                        IssueType::Informational,
                        &item_path,
                        message,
                    );
                    self.slice_notes(item, slicing, &item_path, &not_conforming);
                }
                None => {}
            }
        }
        self.entry = None;
        for (k, &slice_index) in slices.iter().enumerate() {
            let (Some(slice), Some(&count)) = (structure.elements.get(slice_index), counts.get(k))
            else {
                continue;
            };
            let name = slice.slice_name.as_deref().unwrap_or("?");
            if (count as u64) < u64::from(slice.min) {
                let message = format!(
                    "{}: slice '{name}' requires at least {}, but found {count}",
                    def.path, slice.min
                );
                if evaluable {
                    self.error(IssueType::Required, path, message);
                } else {
                    self.issue(
                        Severity::Information,
                        IssueType::Informational,
                        path,
                        format!("{message} (some items could not be assigned to slices offline; not checked)"),
                    );
                }
            } else if slice.max.exceeded_by(count) && evaluable {
                let message = format!(
                    "{}: slice '{name}' allows at most {}, but found {count}",
                    def.path,
                    match slice.max {
                        compile::Max::N(n) => n.to_string(),
                        compile::Max::Unbounded => "*".into(),
                    }
                );
                self.error(IssueType::Structure, path, message);
            }
        }
    }

    /// Why an item is in no slice: the errors of the separate walks against
    /// each slice profile it has the type of, as information at their
    /// places (Java attaches them to its hint as slice notes).
    fn slice_notes(
        &mut self,
        item: &'d Node,
        slicing: &compile::Slicing,
        item_path: &Path<'_>,
        profiles: &[String],
    ) {
        /// At most this many reasons per profile.
        const MOST: usize = 10;
        let Some(discriminator) = slicing.discriminators.iter().find(|d| d.kind == "profile")
        else {
            return;
        };
        let resource = match discriminator.path.as_str() {
            "$this" => Some(item),
            path => item.get(path),
        };
        let Some(resource) = resource else {
            return;
        };
        let Some(resource_type) = resource.get("resourceType").and_then(Node::as_str) else {
            return;
        };
        let at = match discriminator.path.as_str() {
            "$this" => item_path.to_string(),
            path => format!("{item_path}.{path}"),
        };
        let validator: &'v StructureValidator = self.validator;
        for profile in profiles {
            let Some(structure) = validator.structure(profile) else {
                continue;
            };
            let key = (resource.span.start, Arc::as_ptr(structure));
            let Some(notes) = self.conformance_notes.get(&key) else {
                continue;
            };
            let notes: Vec<Issue> = notes
                .iter()
                .take(MOST)
                .map(|note| {
                    let place = note.expression.as_deref().unwrap_or(resource_type);
                    // Probes walk at the resource's place when it is known,
                    // else from its type.
                    let place = if place.starts_with(at.as_str()) {
                        place.to_owned()
                    } else {
                        match place.strip_prefix(resource_type) {
                            Some(rest) => format!("{at}{rest}"),
                            None => at.clone(),
                        }
                    };
                    Issue::new(
                        Severity::Information,
                        IssueType::Informational,
                        format!(
                            "not in the slice for {profile} because: {}",
                            note.diagnostics
                        ),
                    )
                    .at(place)
                })
                .collect();
            self.scratch.issues.extend(notes);
        }
    }

    /// One value of an element of type `type_ref`.
    fn value(
        &mut self,
        item: &'d Node,
        context: &Context<'v>,
        type_ref: &'v TypeRef,
        path: &Path<'_>,
    ) {
        if self.done() {
            return;
        }
        self.binding(item, context, type_ref, path);
        let code = type_ref.code.as_str();
        let validator: &'v StructureValidator = self.validator;
        let core = validator.core_of(type_ref);
        let own: &'v [Arc<Constraint>] = context
            .structure
            .elements
            .get(context.element)
            .map(|e| e.constraints.as_slice())
            .unwrap_or_default();
        match core.map(|s| s.kind) {
            Some(Kind::PrimitiveType) => {
                self.primitive(item, code, path);
                // The `_x` partner is not looked up: hasValue() (ele-1) is
                // true for any primitive walked here.
                let typed = Item::primitive(Some(item), None, type_ref.fhirpath_type);
                self.invariants(item, &typed, own, path);
                if let Some(root) = core.and_then(|s| s.elements.first()) {
                    self.invariants(item, &typed, &root.constraints, path);
                }
            }
            Some(Kind::Resource) => {
                let profiles = self.resource_profiles(item, type_ref, path);
                self.resource(item, Some(path), &profiles);
                let typed = Item::resource(item, &validator.model);
                self.invariants(item, &typed, own, path);
            }
            _ => {
                if code == "Extension" {
                    self.extension(item, context, path);
                }
                if code == "Attachment" {
                    self.attachment_size(item, path);
                }
                if code == "Coding" {
                    self.coding_system(item, path);
                    self.coding_answer(item, path);
                }
                if code == "Reference" {
                    self.local_reference(item, path);
                    if !type_ref.target_profiles.is_empty() {
                        self.reference_target(item, type_ref, path);
                    }
                }
                self.object_as(item, context, Some(type_ref), path, false);
                let typed = Item::node(
                    item,
                    match code {
                        "BackboneElement" | "Element" => context
                            .structure
                            .elements
                            .get(context.element)
                            .and_then(|e| e.fhirpath_type),
                        _ => type_ref.fhirpath_type,
                    },
                );
                self.invariants(item, &typed, own, path);
                // The datatype's own invariants (per-1 on Period, …), from
                // its profile when the element names one the gateway holds.
                let datatype = type_ref
                    .profiles
                    .iter()
                    .find_map(|p| validator.structure(p).map(|s| &**s))
                    .or(core.map(|s| &**s));
                if let Some(root) = datatype.and_then(|s| s.elements.first()) {
                    self.invariants(item, &typed, &root.constraints, path);
                }
            }
        }
    }

    fn primitive(&mut self, item: &'d Node, fhir_type: &str, path: &Path<'_>) {
        let position = item.span.start;
        if (self.outer_primitives.contains(&position)
            && !self.failed_primitives.contains(&position))
            || !self.scratch.checked_primitives.insert(position)
        {
            return;
        }
        let errors = self.mark();
        self.check_primitive(item, fhir_type, path);
        if self.errors_since(errors) {
            self.failed_primitives.push(position);
        }
    }

    fn check_primitive(&mut self, item: &'d Node, fhir_type: &str, path: &Path<'_>) {
        let text = match primitive::lexical(fhir_type, &item.value) {
            Ok(text) => text,
            Err(message) => {
                self.error(IssueType::Structure, path, message);
                return;
            }
        };
        // Only `string` values (Java `InstanceValidator.checkPrimitive`,
        // TYPE_SPECIFIC_CHECKS_DT_STRING_LENGTH; see
        // [`primitive::over_max_length`]).
        if primitive::over_max_length(fhir_type, text) {
            self.error(
                IssueType::TooLong,
                path,
                format!(
                    "value is longer than permitted maximum length of 1 MB ({} bytes)",
                    primitive::MAX_LENGTH
                ),
            );
            return;
        }
        // R4 datatypes.html#string; Java warns for every primitive
        // (InstanceValidator.checkPrimitive, UNICODE_XML_BAD_CHARS). The
        // type's regex below may refuse the same characters (an id): an error.
        let controls = primitive::control_characters(text);
        if !controls.is_empty() {
            self.issue(
                Severity::Warning,
                IssueType::Invalid,
                path,
                primitive::control_characters_message(&controls),
            );
        }
        if let Some(re) = self.validator.regexes.get(fhir_type)
            && !re.is_match(text.as_bytes())
        {
            self.error(
                IssueType::Value,
                path,
                format!("'{}' is not a valid {fhir_type}", shorten(text)),
            );
            return;
        }
        if let Err(message) = primitive::semantic_check(fhir_type, text) {
            self.error(IssueType::Value, path, message);
        }
        if fhir_type == "xhtml" {
            let mut well_formed = true;
            for finding in crate::narrative::check_div(text) {
                let code = if finding.rule == "xhtml" {
                    well_formed &= !finding.severity.is_error();
                    IssueType::Structure
                } else {
                    IssueType::Invariant
                };
                let message = format!("{}: {}", finding.rule, finding.message);
                self.issue(finding.severity, code, path, message);
            }
            if well_formed && links::may_link(text) {
                self.narrative_links(text, path);
            }
        }
    }

    /// The `#` hyperlinks of a narrative div resolve
    /// ([`crate::narrative::links`]): an `a` in the resource or, failing
    /// that, in the root Bundle (Java `InstanceValidator.checkReferences`,
    /// `countTargetMatches`); an `img` in the resource
    /// (`checkImageSources`).
    fn narrative_links(&mut self, div: &str, path: &Path<'_>) {
        let Some(&resource) = self.scratch.resources.last() else {
            return;
        };
        // The resource's targets are collected once for all its
        // narratives (a Composition of N sections, each with a link, would
        // otherwise cost N walks of the whole Composition).
        let mut targets = self
            .link_targets
            .remove(&resource.span.start)
            .unwrap_or_default();
        for (n, link) in links::fragment_links(div).into_iter().enumerate() {
            let count = match link.kind {
                links::LinkKind::Anchor => {
                    match targets
                        .of(resource, link.kind)
                        .get(link.fragment.as_str())
                        .copied()
                        .unwrap_or(0)
                    {
                        0 => self.bundle_target_count(&link.fragment),
                        count => count,
                    }
                }
                links::LinkKind::Image => targets
                    .of(resource, link.kind)
                    .get(link.fragment.as_str())
                    .copied()
                    .unwrap_or(0),
            };
            let severity = self.validator.narrative_links;
            let (severity, problem) = match (link.kind, count) {
                (_, 1) => continue,
                (links::LinkKind::Anchor, 0) => (
                    severity,
                    "names no id in this resource or its Bundle (TYPE_SPECIFIC_CHECKS_DT_XHTML_RESOLVE)",
                ),
                (links::LinkKind::Anchor, _) => (
                    Severity::Warning,
                    "names an id that several elements carry (TYPE_SPECIFIC_CHECKS_DT_XHTML_MULTIPLE_MATCHES)",
                ),
                (links::LinkKind::Image, 0) => (
                    severity,
                    "names no id in this resource (TYPE_SPECIFIC_CHECKS_DT_XHTML_RESOLVE_IMG)",
                ),
                (links::LinkKind::Image, _) => (
                    severity,
                    "names an id that several elements carry (TYPE_SPECIFIC_CHECKS_DT_XHTML_MULTIPLE_MATCHES)",
                ),
            };
            let element = match link.kind {
                links::LinkKind::Anchor => "a href",
                links::LinkKind::Image => "img src",
            };
            // The link's place (never its value: narratives hold patient
            // data) keeps two links at the same path apart.
            let message = format!(
                "link {} of the narrative ({element} starting with '#', at '{}') {problem}",
                n.saturating_add(1),
                link.xpath
            );
            self.issue(severity, IssueType::Invalid, path, message);
        }
        self.link_targets.insert(resource.span.start, targets);
    }

    /// How many elements of the root Bundle carry `fragment` as their id
    /// (or `a` name), from an index built on the first call
    /// ([`links::collect_targets`] over the entries' resources).
    fn bundle_target_count(&mut self, fragment: &str) -> usize {
        let Some(bundle) = &self.bundle else {
            return 0;
        };
        self.bundle_targets
            .get_or_insert_with(|| {
                let mut targets = links::Targets::default();
                for resource in bundle.entries().iter().filter_map(|e| e.resource) {
                    links::collect_targets(resource, true, &mut targets);
                }
                targets
            })
            .get(fragment)
            .copied()
            .unwrap_or(0)
    }

    /// `_x`: an object with `id` and `extension` only.
    fn primitive_extension(&mut self, item: &'d Node, type_ref: Option<&TypeRef>, path: &Path<'_>) {
        let validator: &'v StructureValidator = self.validator;
        let Some(structure) = type_ref.and_then(|t| validator.core_of(t)) else {
            return;
        };
        if structure.kind != Kind::PrimitiveType {
            self.error(
                IssueType::Structure,
                path,
                "a '_' property is only allowed for primitive elements".into(),
            );
            return;
        }
        if let Some(members) = item.as_object()
            && let Some(value) = members.iter().find(|m| &*m.key == "value")
        {
            let at = path.key(&value.key);
            self.error(
                IssueType::Structure,
                &at,
                "a '_' property carries only id and extension, not a value".into(),
            );
        }
        self.object(
            item,
            &Context {
                structure,
                element: 0,
            },
            path,
            false,
        );
    }

    /// An extension: checked against its definition when the gateway holds
    /// it; otherwise reported as not checked (an error for modifiers).
    fn extension(&mut self, item: &'d Node, context: &Context<'v>, path: &Path<'_>) {
        let Some(url) = item.get("url").and_then(Node::as_str) else {
            // Besides Extension.url 1..1 (the structural walk), Java says the
            // extension cannot be identified (`InstanceValidator.checkExtension`,
            // `EXTENSION_EXT_URL_NOTFOUND`).
            if item.get("url").is_none() {
                self.error(
                    IssueType::Structure,
                    path,
                    "Extension.url is required in order to identify, use and validate the extension"
                        .into(),
                );
            }
            return;
        };
        if url.contains('|') {
            // Java `EXTENSION_EXT_VERSION_INTERNAL`/`_EXTERNAL`: an extension
            // URL names the definition, not a version of it.
            self.error(
                IssueType::Structure,
                path,
                format!("the extension URL '{url}' must not contain a version"),
            );
        }
        let is_modifier = context
            .structure
            .elements
            .get(context.element)
            .is_some_and(|e| e.name == "modifierExtension");
        let validator: &'v StructureValidator = self.validator;
        // The extension's definition as the package of the profile being
        // walked sees it (its dependency scope first).
        match validator.structure_in(url, validator.package_of(context.structure)) {
            Some(definition) if definition.type_name == "Extension" => {
                if !context.structure.is_profile
                    && let Some(allowed) = context_refused(definition, context, path)
                {
                    self.error(
                        IssueType::Extension,
                        path,
                        format!(
                            "the extension {url} is not allowed to be used at this point (allowed: {allowed})"
                        ),
                    );
                }
                self.object(
                    item,
                    &Context {
                        structure: definition,
                        element: 0,
                    },
                    path,
                    false,
                );
                if let Some(root) = definition.elements.first() {
                    let typed = Item::node(item, root.fhirpath_type);
                    self.invariants(item, &typed, &root.constraints, path);
                }
            }
            _ if is_modifier => self.error(
                IssueType::Extension,
                path,
                format!(
                    "the modifier extension {url} is not known to this gateway; content it modifies cannot be processed safely"
                ),
            ),
            _ if url.starts_with("http://hl7.org/fhir/StructureDefinition/")
                || !url.contains("://") =>
            {
                // Core extensions live in the extensions pack, which the
                // gateway does not hold; relative URLs are nested extensions.
                if url.contains("://") {
                    self.issue(
                        Severity::Information,
                        IssueType::Informational,
                        path,
                        crate::options::unknown_extension_message(url),
                    );
                }
            }
            _ => {
                let severity = validator.unknown_extensions.severity_for(url);
                let code = if severity == Severity::Information {
                    IssueType::Informational
                } else {
                    IssueType::Extension
                };
                self.issue(
                    severity,
                    code,
                    path,
                    crate::options::unknown_extension_message(url),
                );
            }
        }
    }
}

/// The name of the element an extension at `path` (`….extension[n]`)
/// sits on, without the `_` of a primitive's extensions; `None` when it is
/// a resource root or not known.
fn host_name<'a>(path: &Path<'a>) -> Option<&'a str> {
    let mut at = path;
    if let Segment::Index(_) = at.segment {
        at = at.parent?;
    }
    if !matches!(at.segment, Segment::Key("extension" | "modifierExtension")) {
        return None;
    }
    at = at.parent?;
    if let Segment::Index(_) = at.segment {
        at = at.parent?;
    }
    match at.segment {
        Segment::Key(key) => Some(key.strip_prefix('_').unwrap_or(key)),
        _ => None,
    }
}

/// Whether an extension whose definition is `definition` may be used where
/// `context` (the core definition of the `extension` element) and `path`
/// put it: `StructureDefinition.context` (R4 extensibility.html#context;
/// Java `InstanceValidator.checkExtensionContext`,
/// `EXTENSION_EXT_CONTEXT_WRONG`). `Some(allowed contexts)` when it may
/// not. Only what can be decided for certain is refused: every context is
/// of type `element`, and each names either a type other than the one the
/// extension sits on (when that is the root of the definition walked) or
/// a path whose last element is not the one it sits on. Contexts of type
/// `fhirpath` or `extension`, generic types (`Element`, `Resource`, …)
/// and expressions this cannot read allow it.
fn context_refused(
    definition: &Structure,
    context: &Context<'_>,
    path: &Path<'_>,
) -> Option<String> {
    const GENERIC: &[&str] = &[
        "Element",
        "Base",
        "BackboneElement",
        "DataType",
        "PrimitiveType",
        "Resource",
        "DomainResource",
        "CanonicalResource",
        "MetadataResource",
    ];
    const QUANTITIES: &[&str] = &[
        "Age",
        "Count",
        "Distance",
        "Duration",
        "SimpleQuantity",
        "MoneyQuantity",
    ];
    if definition.contexts.is_empty() {
        return None;
    }
    let structure = context.structure;
    let at_root = structure
        .elements
        .get(context.element)
        .is_some_and(|e| e.path.split('.').count() == 2);
    let host_type = structure.type_name.as_str();
    let host = host_name(path);
    let allows = |kind: &str, expression: &str| -> bool {
        if kind != "element" || expression.contains(['#', ':', '(', ' ', '/']) {
            return true;
        }
        match expression.rsplit_once('.') {
            None => {
                GENERIC.contains(&expression)
                    || !at_root
                    || expression == host_type
                    || (expression == "Quantity" && QUANTITIES.contains(&host_type))
            }
            Some((parent, last)) => {
                // A context naming a child of the element the extension
                // sits on is accepted: R4's own snapshots put
                // structuredefinition-fhir-type (context
                // ElementDefinition.type.code) on ElementDefinition.type,
                // and Java accepts them (suite case
                // structureDefinition-11179-objectClass-R4).
                if host.is_some_and(|h| parent.rsplit('.').next() == Some(h)) {
                    return true;
                }
                if at_root && structure.kind == Kind::Resource {
                    // On a resource itself: only a type context names it.
                    return false;
                }
                let Some(host) = host else {
                    return true;
                };
                match last.strip_suffix("[x]") {
                    Some(choice) => host.starts_with(choice),
                    None => host == last,
                }
            }
        }
    };
    if definition
        .contexts
        .iter()
        .any(|(kind, expression)| allows(kind, expression))
    {
        return None;
    }
    Some(
        definition
            .contexts
            .iter()
            .map(|(_, e)| e.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// At most 40 characters of a value in a message (values may be long; the
/// OperationOutcome goes back to the sender only).
fn shorten(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((at, _)) => format!("{}…", text.get(..at).unwrap_or(text)),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod dedicated_findings_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn finding(severity: Severity, message: &str, at: &str) -> Issue {
        Issue::new(severity, IssueType::Invariant, message).at(at)
    }

    /// A failed invariant is left out exactly where the validator's own
    /// finding for the same rule and severity stands at its element or
    /// below it, as the scan it replaces decided.
    #[test]
    fn an_invariant_is_covered_by_a_finding_of_its_rule_at_or_below_it() {
        let dedicated = vec![
            finding(
                Severity::Error,
                "ref-1: the local reference '#x' names no contained resource",
                "Bundle.entry[1].resource.subject",
            ),
            finding(
                Severity::Warning,
                "txt-1: element <u> is not permitted",
                "Patient.text.div",
            ),
            finding(Severity::Error, "a:b: a key with a colon", "Basic.code"),
        ];
        let index = DedicatedFindings::of(&dedicated);
        for (severity, message, at, covered) in [
            (
                Severity::Error,
                "ref-1: failed",
                "Bundle.entry[1].resource",
                true,
            ),
            (
                Severity::Error,
                "ref-1: failed",
                "Bundle.entry[1].resource.subject",
                true,
            ),
            (Severity::Error, "ref-1: failed", "Bundle.entry[1]", true),
            (
                Severity::Error,
                "ref-1: failed",
                "Bundle.entry[1].resource.subject.reference",
                false,
            ),
            (
                Severity::Error,
                "ref-1: failed",
                "Bundle.entry[1].res",
                false,
            ),
            (
                Severity::Error,
                "ref-1: failed",
                "Bundle.entry[10].resource",
                false,
            ),
            (
                Severity::Warning,
                "ref-1: failed",
                "Bundle.entry[1].resource",
                false,
            ),
            (
                Severity::Error,
                "dom-3: failed",
                "Bundle.entry[1].resource",
                false,
            ),
            (Severity::Warning, "txt-1: failed", "Patient", true),
            (Severity::Error, "a:b: failed", "Basic", true),
            // "a:b: …" starts with "a" and a colon: the rule `a`, as the
            // scan read it.
            (Severity::Error, "a: failed", "Basic", true),
            (Severity::Error, "no rule here", "Basic", false),
        ] {
            let issue = finding(severity, message, at);
            assert_eq!(index.cover(&issue), covered, "{message} at {at}");
        }
    }
}

#[cfg(test)]
mod dedupe_tests {
    use super::*;

    fn finding(severity: Severity, message: &str, at: Option<&str>) -> Issue {
        let issue = Issue::new(severity, IssueType::Invariant, message);
        match at {
            Some(at) => issue.at(at),
            None => issue,
        }
    }

    /// Exact repeats among the new findings are dropped, the first kept in
    /// place; findings that differ in severity, code, place or text all
    /// stay, and what `issues` held before is left as it was.
    #[test]
    fn only_exact_repeats_are_dropped_in_order() {
        let before = finding(Severity::Error, "ele-1", Some("Patient"));
        let mut issues = vec![before.clone()];
        let found = vec![
            finding(Severity::Error, "ele-1", Some("Patient")),
            finding(Severity::Error, "ele-1", Some("Patient.name")),
            finding(Severity::Error, "ele-1", Some("Patient")),
            finding(Severity::Warning, "ele-1", Some("Patient")),
            finding(Severity::Error, "ele-1", None),
            finding(Severity::Error, "ele-1", None),
            Issue::new(Severity::Error, IssueType::Structure, "ele-1").at("Patient"),
            finding(Severity::Error, "ele-2", Some("Patient")),
        ];
        dedupe_into(found, &mut issues);
        let expected = vec![
            before.clone(),
            before.clone(),
            finding(Severity::Error, "ele-1", Some("Patient.name")),
            finding(Severity::Warning, "ele-1", Some("Patient")),
            finding(Severity::Error, "ele-1", None),
            Issue::new(Severity::Error, IssueType::Structure, "ele-1").at("Patient"),
            finding(Severity::Error, "ele-2", Some("Patient")),
        ];
        assert_eq!(issues, expected);
    }
}
