//! Time per constraint key of the invariant evaluations the validator
//! performs on one document (engine alone, no hooks), for deciding where the
//! FHIRPath engine's time goes:
//!
//! `cargo run --release -p ehds-benches --example invariant_costs -- [FILE] [N]`
//!
//! Instructions per job: `LIST=1 valgrind --tool=callgrind
//! --toggle-collect='*measure*' --dump-after='*measure*' …` writes one
//! profile per job (each N evaluations), in the order the jobs are listed
//! on stderr (`job <key> <type>`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::print_stdout,
    missing_docs
)]

use std::collections::HashMap;

use ehds_fhir::Node;
use ehds_fhirpath::{EvalContext, Item, Model};
use ehds_profiles::Registry;

const IPS_BUNDLE: &str = "http://hl7.org/fhir/uv/ips/StructureDefinition/Bundle-uv-ips";

/// A node by JSON pointer (`/entry/3/resource`), as the validator wrote it.
fn at_pointer<'a>(root: &'a Node, pointer: &str) -> &'a Node {
    root.at_pointer(pointer).unwrap()
}

/// The timed loop (a function of its own for `valgrind --toggle-collect='*measure*'`).
#[inline(never)]
fn measure(
    model: &Model,
    element: &Item<'_>,
    resource: &Item<'_>,
    root: &Item<'_>,
    expression: &ehds_fhirpath::Expression,
    rounds: u32,
) {
    for _ in 0..rounds {
        let ctx = EvalContext::for_element(model, element.clone(), resource.clone(), root.clone());
        std::hint::black_box(expression.evaluate_constraint(&ctx).ok());
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let bytes = match args.next() {
        Some(file) => std::fs::read(file).unwrap(),
        None => ehds_benches::conformance_file(ehds_benches::IPS_50KB).unwrap(),
    };
    let rounds: u32 = args.next().map_or(2000, |n| n.parse().unwrap());
    let registry = Registry::load_root(&ehds_test_support::repo_root().join("profiles")).unwrap();
    let model = Model::from_registry(&registry);
    let validator = ehds_validation::Validator::new(&registry);
    let received = ehds_fhir::ReceivedResource::parse(bytes.into()).unwrap();
    let jobs = validator.invariant_jobs(&received, &[IPS_BUNDLE]);
    let root = received.root();
    let distinct: std::collections::HashSet<(&str, *const ehds_fhirpath::Expression)> = jobs
        .iter()
        .map(|j| (j.pointer.as_str(), std::sync::Arc::as_ptr(&j.expression)))
        .collect();
    println!(
        "{} distinct (element, expression) pairs among the jobs",
        distinct.len()
    );
    let mut by_key: HashMap<String, (usize, std::time::Duration, String, bool)> = HashMap::new();
    let only = std::env::var("KEY").ok();
    let list = std::env::var_os("LIST").is_some();
    for job in &jobs {
        if only.as_deref().is_some_and(|k| k != job.key) {
            continue;
        }
        if list {
            eprintln!("job\t{}\t{}", job.key, job.type_name);
        }
        let element = Item::node(at_pointer(root, &job.pointer), job.element_type);
        let resource = Item::resource(at_pointer(root, &job.resource_pointer), &model);
        let root_item = Item::resource(at_pointer(root, &job.root_pointer), &model);
        let started = std::time::Instant::now();
        measure(
            &model,
            &element,
            &resource,
            &root_item,
            &job.expression,
            rounds,
        );
        let spent = started.elapsed() / rounds;
        let entry = by_key
            .entry(format!("{} {}", job.key, job.type_name))
            .or_insert((
                0,
                std::time::Duration::ZERO,
                job.expression.source().to_owned(),
                false,
            ));
        // Whether the shortcut decides it (on this element).
        let ctx =
            EvalContext::for_element(&model, element.clone(), resource.clone(), root_item.clone());
        entry.3 |= job.expression.evaluate_constraint_shortcut(&ctx).is_some();
        entry.0 += 1;
        entry.1 += spent;
    }
    let mut rows: Vec<_> = by_key.into_iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1.1));
    let total: std::time::Duration = rows.iter().map(|r| r.1.1).sum();
    println!("{} jobs, {total:?} per document", jobs.len());
    // `s`: the interpreter-free shortcut decides it (on one element at least).
    for (key, (count, spent, source, shortcut)) in &rows {
        let short: String = source.chars().take(90).collect();
        let s = if *shortcut { 's' } else { ' ' };
        println!("{spent:>10.1?} {count:>4} {s} {key:<40} {short}");
    }
}
