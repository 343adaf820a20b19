//! FHIRPath invariants: every R4 core invariant of severity `error` on every
//! complex element (resources, datatypes, backbone elements) of the ~50 KB
//! IPS example, each element against the invariants of its type and of the
//! types it derives from, as a validator applies them — evaluated with
//! `ehds-fhirpath` (expressions parsed once, outside the timing).
//!
//! The peer is fhirpath.js (npm `fhirpath`, the HL7 reference JavaScript
//! engine, with its R4 model), run in Node on the same jobs: this bench
//! writes them to `crates/benches/peer/generated/fhirpath-jobs.json` (JSON
//! pointer of each element, its type path, its resource, the expression),
//! which `crates/benches/peer/fhirpath.mjs` reads. See BENCHMARKS.md.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ehds_benches::{IPS_50KB, conformance_file};
use ehds_fhir::Node;
use ehds_fhir::json::Json;
use ehds_fhirpath::{EvalContext, Expression, Item, Model, TypeId, TypeKind};
use ehds_profiles::Registry;

/// The invariants of each type: core StructureDefinitions' root element
/// (resources, datatypes) and backbone elements.
fn invariants(registry: &Registry, model: &Model) -> HashMap<TypeId, Vec<(String, Expression)>> {
    let mut by_type: HashMap<TypeId, Vec<(String, Expression)>> = HashMap::new();
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
            let Some(ty) = type_of_path(model, path) else {
                continue;
            };
            for c in element
                .get("constraint")
                .map(Node::items)
                .unwrap_or_default()
            {
                let text = |k: &str| c.get(k).and_then(Node::as_str);
                let (Some(key), Some(expr), Some("error")) =
                    (text("key"), text("expression"), text("severity"))
                else {
                    continue;
                };
                let list = by_type.entry(ty).or_default();
                if !list.iter().any(|(k, _)| k == key) {
                    list.push((key.to_owned(), Expression::parse(expr).unwrap()));
                }
            }
        }
    }
    by_type
}

/// The type a snapshot path names: the root type, or a backbone element.
fn type_of_path(model: &Model, path: &str) -> Option<TypeId> {
    let mut parts = path.split('.');
    let mut ty = model.type_named(parts.next()?)?;
    let mut nested = false;
    for part in parts {
        nested = true;
        ty = match model.child(ty, part)? {
            ehds_fhirpath::Child::Single(t) => *t,
            ehds_fhirpath::Child::Choice(_) => return None,
        };
    }
    (!nested || model.def(ty)?.kind == TypeKind::Backbone).then_some(ty)
}

/// One invariant on one element, with the JSON pointers the peer needs.
struct Job<'a> {
    element: Item<'a>,
    resource: Item<'a>,
    pointer: String,
    resource_pointer: String,
    base: String,
    expression: usize,
}

struct Walk<'a, 'm> {
    model: &'m Model,
    invariants: &'m HashMap<TypeId, Vec<(String, Expression)>>,
    expressions: Vec<&'m Expression>,
    jobs: Vec<Job<'a>>,
}

impl<'a, 'm> Walk<'a, 'm> {
    fn node(
        &mut self,
        node: &'a Node,
        ty: Option<TypeId>,
        pointer: &str,
        resource: (&Item<'a>, &str),
    ) {
        let Json::Object(members) = &node.value else {
            return;
        };
        let model = self.model;
        let (ty, resource_item, resource_pointer) =
            match node.get("resourceType").and_then(Node::as_str) {
                Some(rt) => {
                    let item = Item::resource(node, model);
                    (model.type_named(rt), item, pointer.to_owned())
                }
                None => (ty, resource.0.clone(), resource.1.to_owned()),
            };
        let mut current = ty;
        while let Some(t) = current {
            for (_, expression) in self
                .invariants
                .get(&t)
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let index = match self
                    .expressions
                    .iter()
                    .position(|e| std::ptr::eq(*e, expression))
                {
                    Some(i) => i,
                    None => {
                        self.expressions.push(expression);
                        self.expressions.len() - 1
                    }
                };
                self.jobs.push(Job {
                    element: Item::node(node, ty),
                    resource: resource_item.clone(),
                    pointer: pointer.to_owned(),
                    resource_pointer: resource_pointer.clone(),
                    base: ty
                        .and_then(|t| model.def(t))
                        .map(|d| d.name.to_string())
                        .unwrap_or_default(),
                    expression: index,
                });
            }
            current = model.def(t).and_then(|d| d.base);
        }
        for m in members {
            if m.key.starts_with('_') || &*m.key == "resourceType" {
                continue;
            }
            let child = ty
                .and_then(|t| model.child_by_key(t, &m.key))
                .map(|(c, _)| c);
            match &m.node.value {
                Json::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let p = format!("{pointer}/{}/{i}", m.key);
                        self.node(item, child, &p, (&resource_item, &resource_pointer));
                    }
                }
                _ => {
                    let p = format!("{pointer}/{}", m.key);
                    self.node(&m.node, child, &p, (&resource_item, &resource_pointer));
                }
            }
        }
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn bench_fhirpath(c: &mut Criterion) {
    let registry = Registry::load_root(&ehds_test_support::repo_root().join("profiles")).unwrap();
    let model = Model::from_registry(&registry);
    let invariants = invariants(&registry, &model);
    let bytes = conformance_file(IPS_50KB).unwrap();
    let root = ehds_fhir::json::parse(&bytes).unwrap();
    let root_item = Item::resource(&root, &model);
    let mut walk = Walk {
        model: &model,
        invariants: &invariants,
        expressions: Vec::new(),
        jobs: Vec::new(),
    };
    walk.node(&root, None, "", (&root_item, ""));
    let Walk {
        expressions, jobs, ..
    } = walk;

    // Every invariant holds on the example (it validates with no errors),
    // reading an empty result as FHIRPath N1 does: the published ref-1 and
    // bdl-8 rely on it, and the validator evaluates them corrected (Java's
    // FHIRPathExpressionFixer), while `evaluate_constraint` fails an empty
    // result as Java does.
    for job in &jobs {
        let ctx = EvalContext::for_element(
            &model,
            job.element.clone(),
            job.resource.clone(),
            root_item.clone(),
        );
        let expression = &expressions[job.expression];
        assert!(
            expression.evaluate_constraint(&ctx).unwrap()
                || expression.evaluate(&ctx).unwrap().is_empty(),
            "{}",
            job.pointer
        );
    }

    // The same jobs for the peer.
    let mut out = String::from("{\n  \"document\": ");
    out.push_str(&json_string(&format!("../../../conformance/{IPS_50KB}")));
    out.push_str(",\n  \"expressions\": [\n");
    for (i, e) in expressions.iter().enumerate() {
        let comma = if i + 1 < expressions.len() { "," } else { "" };
        writeln!(out, "    {}{comma}", json_string(e.source())).unwrap();
    }
    out.push_str("  ],\n  \"jobs\": [\n");
    for (i, job) in jobs.iter().enumerate() {
        let comma = if i + 1 < jobs.len() { "," } else { "" };
        writeln!(
            out,
            "    [{}, {}, {}, {}]{comma}",
            json_string(&job.pointer),
            json_string(&job.base),
            json_string(&job.resource_pointer),
            job.expression
        )
        .unwrap();
    }
    out.push_str("  ]\n}\n");
    let dir = ehds_test_support::repo_root().join("crates/benches/peer/generated");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("fhirpath-jobs.json"), out).unwrap();
    println!(
        "fhirpath: {} invariant evaluations on {} bytes ({} distinct expressions)",
        jobs.len(),
        bytes.len(),
        expressions.len()
    );

    let mut group = c.benchmark_group("fhirpath_core_invariants");
    group.bench_function("ips_example_51kb", |b| {
        b.iter(|| {
            let mut passed = 0usize;
            for job in &jobs {
                let ctx = EvalContext::for_element(
                    &model,
                    job.element.clone(),
                    job.resource.clone(),
                    root_item.clone(),
                );
                if expressions[job.expression]
                    .evaluate_constraint(&ctx)
                    .unwrap()
                {
                    passed += 1;
                }
            }
            black_box(passed)
        });
    });
    group.finish();
    bench_validator_jobs(c, &registry, &model, &bytes);
}

/// A node by JSON pointer (`/entry/3/resource`), as the validator wrote it.
fn at_pointer<'a>(root: &'a Node, pointer: &str) -> &'a Node {
    root.at_pointer(pointer).unwrap()
}

/// Exactly the invariant evaluations the validator performs when a pushed
/// IPS is validated (every constraint of R4 core, the IPS Bundle profile and
/// every claimed profile, on every element instance incl. primitives, all
/// severities, after the corrections table), timed with `ehds-fhirpath`
/// alone and written to `generated/validator-invariant-jobs.json` for
/// fhirpath.js (`run-fhirpath.sh --jobs generated/validator-invariant-jobs.json`).
fn bench_validator_jobs(c: &mut Criterion, registry: &Registry, model: &Model, bytes: &[u8]) {
    const IPS_BUNDLE: &str = "http://hl7.org/fhir/uv/ips/StructureDefinition/Bundle-uv-ips";
    let validator = ehds_validation::Validator::new(registry);
    let received = ehds_fhir::ReceivedResource::parse(bytes.to_vec().into()).unwrap();
    let jobs = validator.invariant_jobs(&received, &[IPS_BUNDLE]);
    let root = received.root();
    let mut expressions: Vec<String> = Vec::new();
    let mut out = String::from("{\n  \"document\": ");
    out.push_str(&json_string(&format!("../../../conformance/{IPS_50KB}")));
    let mut lines = Vec::new();
    let resolved: Vec<_> = jobs
        .iter()
        .map(|job| {
            let index = match expressions
                .iter()
                .position(|e| e == job.expression.source())
            {
                Some(i) => i,
                None => {
                    expressions.push(job.expression.source().to_owned());
                    expressions.len() - 1
                }
            };
            lines.push(format!(
                "[{}, {}, {}, {index}, {}]",
                json_string(&job.pointer),
                json_string(&job.type_name),
                json_string(&job.resource_pointer),
                json_string(&job.root_pointer)
            ));
            (
                Item::node(at_pointer(root, &job.pointer), job.element_type),
                Item::resource(at_pointer(root, &job.resource_pointer), model),
                Item::resource(at_pointer(root, &job.root_pointer), model),
                &job.expression,
            )
        })
        .collect();
    out.push_str(",\n  \"expressions\": [\n");
    let listed: Vec<String> = expressions
        .iter()
        .map(|e| format!("    {}", json_string(e)))
        .collect();
    out.push_str(&listed.join(",\n"));
    out.push_str("\n  ],\n  \"jobs\": [\n    ");
    out.push_str(&lines.join(",\n    "));
    out.push_str("\n  ]\n}\n");
    let dir = ehds_test_support::repo_root().join("crates/benches/peer/generated");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("validator-invariant-jobs.json"), out).unwrap();
    let run = || {
        let mut passed = 0usize;
        for (element, resource, root, expression) in &resolved {
            let ctx =
                EvalContext::for_element(model, element.clone(), resource.clone(), root.clone());
            if expression.evaluate_constraint(&ctx).unwrap_or(false) {
                passed += 1;
            }
        }
        passed
    };
    println!(
        "validator invariants: {} evaluations ({} distinct expressions), {} passed",
        resolved.len(),
        expressions.len(),
        run()
    );
    let mut group = c.benchmark_group("fhirpath_validator_invariants");
    group.bench_function("ips_example_51kb", |b| b.iter(|| black_box(run())));
    group.finish();
}

criterion_group!(benches, bench_fhirpath);
criterion_main!(benches);
