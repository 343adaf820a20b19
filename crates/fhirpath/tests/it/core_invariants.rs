//! The R4 core invariants (severity `error`) hold on the example documents
//! in `conformance/examples/`, evaluated the way a validator would: each
//! element against the invariants of its type (the root element of the
//! type's core StructureDefinition, or the backbone element's definition),
//! with `%resource` the nearest enclosing resource and `%rootResource` that
//! resource, or its container when it is contained (a Bundle entry is its
//! own root). Documents known to break an invariant are listed in
//! `conformance/fhirpath/invariant-failures.txt` with the reason (a ratchet).
//! This guards against false errors from the engine, and prints how long
//! all invariants of the IPS example take.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use ehds_fhir::Node;
use ehds_fhirpath::{EvalContext, Expression, Hooks, Item, Model, TypeId, TypeKind};
use ehds_profiles::Registry;
use ehds_test_support::{conformance_dir, files_with_extension, repo_root};

struct Invariant {
    key: String,
    expression: Expression,
}

struct Checker {
    model: Model,
    by_type: HashMap<TypeId, Vec<Invariant>>,
    evaluations: std::cell::Cell<usize>,
}

impl Checker {
    fn new() -> Checker {
        let registry = Registry::load_root(&repo_root().join("profiles")).unwrap();
        let model = Model::from_registry(&registry);
        let mut by_type: HashMap<TypeId, Vec<Invariant>> = HashMap::new();
        for sd in registry.of_type("StructureDefinition") {
            let root = sd.resource.root();
            let name = root.get("type").and_then(Node::as_str).unwrap_or("");
            if registry.core_structure(name).map(|c| &c.url) != Some(&sd.url) {
                continue;
            }
            let elements = root
                .get("snapshot")
                .and_then(|s| s.get("element"))
                .map(Node::items)
                .unwrap_or_default();
            for element in elements {
                let path = element.get("path").and_then(Node::as_str).unwrap_or("");
                let ty = if path == name {
                    model.type_named(name)
                } else {
                    backbone(&model, path)
                };
                let Some(ty) = ty else { continue };
                for c in element
                    .get("constraint")
                    .map(Node::items)
                    .unwrap_or_default()
                {
                    let text = |k: &str| c.get(k).and_then(Node::as_str);
                    let (Some(key), Some(expr)) = (text("key"), text("expression")) else {
                        continue;
                    };
                    if text("severity") != Some("error") {
                        continue;
                    }
                    let list = by_type.entry(ty).or_default();
                    if list.iter().any(|i| i.key == key) {
                        continue;
                    }
                    list.push(Invariant {
                        key: key.to_owned(),
                        expression: Expression::parse(expr).unwrap(),
                    });
                }
            }
        }
        Checker {
            model,
            by_type,
            evaluations: std::cell::Cell::new(0),
        }
    }

    /// Every (element path, invariant key, problem) that fails in `root`.
    fn check<'a>(&self, root: &'a Node, hooks: &'a BundleHooks<'a>) -> Vec<String> {
        let mut failures = Vec::new();
        self.for_each_job(root, &mut |job: Job<'a, '_>, path: &[&str]| {
            self.evaluations.set(self.evaluations.get() + 1);
            match job.run(&self.model, hooks) {
                Ok(true) => {}
                Ok(false) => {
                    failures.push(format!("{}: {} failed", path.join("/"), job.invariant.key))
                }
                Err(e) => failures.push(format!(
                    "{}: {} error: {e}",
                    path.join("/"),
                    job.invariant.key
                )),
            }
        });
        failures
    }

    /// Walks `root` and hands every (element, invariant) pair to `visit`.
    fn for_each_job<'a, 's>(
        &'s self,
        root: &'a Node,
        visit: &mut dyn FnMut(Job<'a, 's>, &[&'s str]),
    ) {
        let item = Item::resource(root, &self.model);
        self.walk(item.clone(), item.clone(), item, &mut Vec::new(), visit);
    }

    fn walk<'a, 's>(
        &'s self,
        item: Item<'a>,
        resource: Item<'a>,
        root: Item<'a>,
        path: &mut Vec<&'s str>,
        visit: &mut dyn FnMut(Job<'a, 's>, &[&'s str]),
    ) {
        let Item::Node(n) = &item else { return };
        // `%rootResource` is the resource itself, or for a contained
        // resource its container (FHIRPath R4 `%rootResource`; R4
        // references.html#contained): a Bundle entry is its own root.
        let (resource, root) = match n.value {
            Some(v) if v.get("resourceType").is_some() => {
                let contained = match &resource {
                    Item::Node(container) => container
                        .value
                        .and_then(|c| c.get("contained"))
                        .is_some_and(|c| c.items().iter().any(|x| std::ptr::eq(x, v))),
                    _ => false,
                };
                (item.clone(), if contained { root } else { item.clone() })
            }
            _ => (resource, root),
        };
        let mut ty = n.ty;
        while let Some(t) = ty {
            for invariant in self.by_type.get(&t).map(Vec::as_slice).unwrap_or_default() {
                let job = Job {
                    element: item.clone(),
                    resource: resource.clone(),
                    root: root.clone(),
                    invariant,
                };
                visit(job, path);
            }
            ty = self.model.def(t).and_then(|d| d.base);
        }
        for child in ehds_fhirpath::children(&self.model, &item) {
            let name = match &child {
                Item::Node(c) => c.ty.map(|t| self.model.type_name(t)).unwrap_or("?"),
                _ => "?",
            };
            path.push(name);
            self.walk(child, resource.clone(), root.clone(), path, visit);
            path.pop();
        }
    }
}

/// One invariant to evaluate on one element.
struct Job<'a, 's> {
    element: Item<'a>,
    resource: Item<'a>,
    root: Item<'a>,
    invariant: &'s Invariant,
}

impl<'a> Job<'a, '_> {
    fn run(
        &self,
        model: &Model,
        hooks: &'a BundleHooks<'a>,
    ) -> Result<bool, ehds_fhirpath::EvalError> {
        let ctx = EvalContext::for_element(
            model,
            self.element.clone(),
            self.resource.clone(),
            self.root.clone(),
        )
        .with_hooks(hooks);
        holds(&self.invariant.expression, &ctx)
    }
}

/// Whether an invariant holds with FHIRPath N1 empty propagation: empty or
/// `true` (or one other item) holds. `Expression::evaluate_constraint` now
/// fails an empty result, as the Java validator does; Java first rewrites
/// the published expressions that rely on empty propagation (ref-1, bdl-8,
/// …: `FHIRPathExpressionFixer`, mirrored by ehds-validation's
/// `profiles/invariant-corrections.toml`), which this engine test does not
/// load, so it keeps the N1 reading to check the engine on the published
/// text.
fn holds(
    expression: &Expression,
    ctx: &EvalContext<'_, '_>,
) -> Result<bool, ehds_fhirpath::EvalError> {
    let result = expression.evaluate(ctx)?;
    match result.as_slice() {
        [] => Ok(true),
        [Item::Boolean(b)] => Ok(*b),
        [_] => Ok(true),
        _ => Err(ehds_fhirpath::EvalError::NotSingleton("constraint result")),
    }
}

fn backbone(model: &Model, path: &str) -> Option<TypeId> {
    // Backbone types are not in the by-name index: find the child type by
    // walking the path from its root type.
    let mut parts = path.split('.');
    let mut ty = model.type_named(parts.next()?)?;
    for part in parts {
        let name = part.trim_end_matches("[x]");
        ty = match model.child(ty, name)? {
            ehds_fhirpath::Child::Single(t) => *t,
            ehds_fhirpath::Child::Choice(_) => return None,
        };
    }
    (model.def(ty)?.kind == TypeKind::Backbone).then_some(ty)
}

/// Resolves references inside a Bundle by `fullUrl` and `Type/id`.
struct BundleHooks<'a> {
    by_url: HashMap<String, &'a Node>,
}

impl<'a> BundleHooks<'a> {
    fn new(root: &'a Node) -> BundleHooks<'a> {
        let mut by_url = HashMap::new();
        for entry in root.get("entry").map(Node::items).unwrap_or_default() {
            let Some(resource) = entry.get("resource") else {
                continue;
            };
            if let Some(url) = entry.get("fullUrl").and_then(Node::as_str) {
                by_url.insert(url.to_owned(), resource);
            }
            let text = |k: &str| resource.get(k).and_then(Node::as_str);
            if let (Some(t), Some(id)) = (text("resourceType"), text("id")) {
                by_url.insert(format!("{t}/{id}"), resource);
            }
        }
        BundleHooks { by_url }
    }
}

impl<'a> Hooks<'a> for BundleHooks<'a> {
    fn resolve(&self, reference: &str) -> Option<&'a Node> {
        self.by_url.get(reference).copied().or_else(|| {
            let tail: Vec<&str> = reference.rsplitn(3, '/').collect();
            match tail.as_slice() {
                [id, ty, ..] => self.by_url.get(&format!("{ty}/{id}")).copied(),
                _ => None,
            }
        })
    }
}

fn listed() -> BTreeMap<String, String> {
    let path = conformance_dir().join("fhirpath/invariant-failures.txt");
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (key, reason) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            assert!(!reason.trim().is_empty(), "{key}: needs a reason");
            (key.to_owned(), reason.trim().to_owned())
        })
        .collect()
}

#[test]
fn core_invariants_hold_on_the_examples() {
    let checker = Checker::new();
    let known = listed();
    let mut unexpected = Vec::new();
    let mut now_passing = Vec::new();
    let mut total = 0;
    let examples = conformance_dir().join("examples");
    for path in files_with_extension(&examples, "json") {
        let case = path
            .strip_prefix(conformance_dir())
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let bytes = std::fs::read(&path).unwrap();
        let root = ehds_fhir::json::parse(&bytes).unwrap();
        let hooks = BundleHooks::new(&root);
        let failures = checker.check(&root, &hooks);
        total += 1;
        match (failures.is_empty(), known.contains_key(&case)) {
            (true, true) => now_passing.push(case),
            (false, false) => unexpected.push(format!("{case}:\n    {}", failures.join("\n    "))),
            _ => {}
        }
    }
    println!(
        "core invariants: {total} example documents, {} invariant evaluations over {} types",
        checker.evaluations.get(),
        checker.by_type.len()
    );
    assert!(
        now_passing.is_empty(),
        "now pass: remove from conformance/fhirpath/invariant-failures.txt: {now_passing:?}"
    );
    assert!(
        unexpected.is_empty(),
        "{} documents break core invariants:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
}

#[test]
fn ips_example_invariants_timing() {
    let checker = Checker::new();
    let path = conformance_dir().join("examples/ips/Bundle-IPS-examples-Bundle-01.json");
    let Ok(bytes) = std::fs::read(&path) else {
        return;
    };
    let root = ehds_fhir::json::parse(&bytes).unwrap();
    let hooks = BundleHooks::new(&root);
    let mut jobs = Vec::new();
    checker.for_each_job(&root, &mut |job, _| jobs.push(job));
    let rounds: u32 = 200;
    let start = Instant::now();
    for _ in 0..rounds {
        for job in &jobs {
            assert!(job.run(&checker.model, &hooks).unwrap());
        }
    }
    let per_document = start.elapsed() / rounds;
    println!(
        "IPS example ({} bytes): {} invariant evaluations in {per_document:?} per document",
        bytes.len(),
        jobs.len(),
    );
}

/// The resources of a document: the root, Bundle entries, contained ones.
fn resources(root: &Node) -> Vec<&Node> {
    let mut out = vec![root];
    let mut i = 0;
    while let Some(r) = out.get(i).copied() {
        i += 1;
        for entry in r.get("entry").map(Node::items).unwrap_or_default() {
            if let Some(res) = entry.get("resource") {
                out.push(res);
            }
        }
        out.extend(r.get("contained").map(Node::items).unwrap_or_default());
    }
    out
}

/// Every error-severity invariant of every profile a resource of an example
/// claims in `meta.profile` (outside slices) holds on the elements its path
/// selects, the path evaluated as FHIRPath from the resource.
#[test]
fn claimed_profile_invariants_hold_on_the_examples() {
    let registry = Registry::load_root(&repo_root().join("profiles")).unwrap();
    let model = Model::from_registry(&registry);
    let mut compiled: HashMap<String, Vec<(String, Expression, Expression)>> = HashMap::new();
    let mut evaluations = 0;
    let mut failures = Vec::new();
    let known = listed();
    for path in files_with_extension(&conformance_dir().join("examples"), "json") {
        let case = path
            .strip_prefix(conformance_dir())
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if known.contains_key(&case) {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let root = ehds_fhir::json::parse(&bytes).unwrap();
        let hooks = BundleHooks::new(&root);
        let root_item = Item::resource(&root, &model);
        for resource in resources(&root) {
            let claimed = resource
                .get("meta")
                .and_then(|m| m.get("profile"))
                .map(Node::items)
                .unwrap_or_default();
            for profile in claimed.iter().filter_map(Node::as_str) {
                let Some(sd) = registry.resolve_typed("StructureDefinition", profile) else {
                    continue;
                };
                let invariants = compiled.entry(sd.canonical()).or_insert_with(|| {
                    let mut list = Vec::new();
                    let elements = sd
                        .resource
                        .root()
                        .get("snapshot")
                        .and_then(|s| s.get("element"))
                        .map(Node::items)
                        .unwrap_or_default();
                    for element in elements {
                        let text =
                            |n: &Node, k: &str| n.get(k).and_then(Node::as_str).map(str::to_owned);
                        let (Some(id), Some(path)) = (text(element, "id"), text(element, "path"))
                        else {
                            continue;
                        };
                        if id.contains(':') {
                            continue;
                        }
                        let selector = Expression::parse(&path.replace("[x]", "")).unwrap();
                        for c in element
                            .get("constraint")
                            .map(Node::items)
                            .unwrap_or_default()
                        {
                            if text(c, "severity").as_deref() != Some("error") {
                                continue;
                            }
                            let (Some(key), Some(expr)) = (text(c, "key"), text(c, "expression"))
                            else {
                                continue;
                            };
                            list.push((key, selector.clone(), Expression::parse(&expr).unwrap()));
                        }
                    }
                    list
                });
                let resource_item = Item::resource(resource, &model);
                for (key, selector, invariant) in invariants.iter() {
                    let ctx = EvalContext::for_element(
                        &model,
                        resource_item.clone(),
                        resource_item.clone(),
                        root_item.clone(),
                    );
                    for element in selector.evaluate(&ctx).unwrap() {
                        evaluations += 1;
                        let ctx = EvalContext::for_element(
                            &model,
                            element,
                            resource_item.clone(),
                            root_item.clone(),
                        )
                        .with_hooks(&hooks);
                        match holds(invariant, &ctx) {
                            Ok(true) => {}
                            Ok(false) => failures.push(format!("{case}: {profile} {key} failed")),
                            Err(e) => failures.push(format!("{case}: {profile} {key} error: {e}")),
                        }
                    }
                }
            }
        }
    }
    println!("claimed profile invariants: {evaluations} evaluations");
    assert!(evaluations > 0);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
