//! `Expression::evaluate_constraint` decides expressions of the
//! allocation-free subset (logic, comparisons, `exists()`/`empty()`/
//! `count()`/`hasValue()` on paths, `children().count()`) without the
//! interpreter. Here both ways must give the same result — value or error —
//! for every such constraint expression of the packages in `profiles/`, on
//! every element of the example documents (each expression on every
//! element, whatever its type, so that false, empty and error outcomes are
//! met as well as the passes a valid document gives).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeSet;

use ehds_fhir::Node;
use ehds_fhirpath::{EvalContext, Expression, Item, Model};
use ehds_profiles::Registry;
use ehds_test_support::{conformance_dir, files_with_extension, repo_root};

/// Every distinct constraint expression of the packages that takes the shortcut.
fn shortcut_expressions(registry: &Registry) -> Vec<Expression> {
    let mut texts = BTreeSet::new();
    for sd in registry.of_type("StructureDefinition") {
        let elements = sd
            .resource
            .root()
            .get("snapshot")
            .and_then(|s| s.get("element"))
            .map(Node::items)
            .unwrap_or_default();
        for element in elements {
            for c in element
                .get("constraint")
                .map(Node::items)
                .unwrap_or_default()
            {
                if let Some(text) = c.get("expression").and_then(Node::as_str) {
                    texts.insert(text.to_owned());
                }
            }
        }
    }
    texts
        .iter()
        .filter_map(|t| Expression::parse(t).ok())
        .filter(Expression::has_shortcut)
        .collect()
}

fn elements<'a>(model: &Model, item: Item<'a>, out: &mut Vec<Item<'a>>) {
    for child in ehds_fhirpath::children(model, &item) {
        elements(model, child, out);
    }
    out.push(item);
}

#[test]
fn shortcut_agrees_with_the_interpreter() {
    let registry = Registry::load_root(&repo_root().join("profiles")).unwrap();
    let model = Model::from_registry(&registry);
    let expressions = shortcut_expressions(&registry);
    assert!(
        expressions.len() >= 20,
        "only {} expressions take the shortcut",
        expressions.len()
    );
    for must in [
        "hasValue() or (children().count() > id.count())",
        "extension.exists() != value.exists()",
        "contained.contained.empty()",
    ] {
        assert!(
            expressions.iter().any(|e| e.source() == must),
            "{must} does not take the shortcut"
        );
    }
    let mut compared = 0usize;
    let mut outcomes = BTreeSet::new();
    let mut files = files_with_extension(&conformance_dir().join("examples"), "json");
    files.sort();
    for (i, path) in files.iter().enumerate() {
        // A sample (time): every fourth IPS example, every sixteenth other.
        let case = path.to_string_lossy();
        let step = if case.contains("/ips/") { 4 } else { 16 };
        if i % step != 0 {
            continue;
        }
        let bytes = std::fs::read(path).unwrap();
        let root = ehds_fhir::json::parse(&bytes).unwrap();
        let root_item = Item::resource(&root, &model);
        let mut items = Vec::new();
        elements(&model, root_item.clone(), &mut items);
        for item in &items {
            for expression in &expressions {
                let ctx = EvalContext::for_element(
                    &model,
                    item.clone(),
                    root_item.clone(),
                    root_item.clone(),
                );
                let fast = expression.evaluate_constraint(&ctx);
                let interpreted = expression.evaluate_constraint_interpreted(&ctx);
                assert_eq!(
                    fast,
                    interpreted,
                    "{case}: {} on {item:?}",
                    expression.source()
                );
                outcomes.insert(
                    format!("{interpreted:?}")
                        .chars()
                        .take(12)
                        .collect::<String>(),
                );
                compared += 1;
            }
        }
    }
    println!(
        "{} shortcut expressions, {compared} evaluations compared, outcomes {outcomes:?}",
        expressions.len()
    );
    assert!(outcomes.contains("Ok(true)") && outcomes.contains("Ok(false)"));
}
