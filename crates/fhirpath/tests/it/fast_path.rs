//! `Expression::evaluate_constraint` decides expressions of the shortcut's
//! subset (logic, comparisons, integer arithmetic, `exists()`/`empty()`/
//! `count()`/`hasValue()`/`isDistinct()` on paths, `children().count()`,
//! `where()`, `select()`, `&`, `first()`/`last()`/`tail()`, `is`,
//! `trace()`, `htmlChecks()`) without the interpreter.
//! Here both ways must give the same result — value or error — and make the
//! same `trace()` calls, for every such constraint expression of the
//! packages in `profiles/` and of the corrections table the validator
//! evaluates instead (`profiles/invariant-corrections.toml`), on every
//! element of the example documents (each expression on every element,
//! whatever its type, so that false, empty and error outcomes are met as
//! well as the passes a valid document gives).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use ehds_fhir::Node;
use ehds_fhirpath::{EvalContext, Expression, Hooks, Item, Model};
use ehds_profiles::Registry;
use ehds_test_support::{conformance_dir, files_with_extension, repo_root};

/// Every distinct constraint expression of the packages, and every
/// corrected text of the corrections table, that takes the shortcut.
fn shortcut_expressions(registry: &Registry) -> Vec<Expression> {
    let mut texts = BTreeSet::new();
    let table: toml::Table =
        std::fs::read_to_string(repo_root().join("profiles/invariant-corrections.toml"))
            .unwrap()
            .parse()
            .unwrap();
    let corrected: Vec<&str> = table["correction"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|row| row.get("corrected").and_then(toml::Value::as_str))
        .collect();
    assert!(!corrected.is_empty());
    texts.extend(corrected.iter().map(|t| (*t).to_owned()));
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

/// Hooks that record every `trace()` call (name and items), and fail
/// `htmlChecks()` on some narratives (those of odd length) so that both
/// answers are met.
#[derive(Default)]
struct Traces(RefCell<Vec<String>>);

impl<'a> Hooks<'a> for Traces {
    fn trace(&self, name: &str, items: &[Item<'a>]) {
        self.0.borrow_mut().push(format!("{name}: {items:?}"));
    }

    fn html_checks(&self, div: &Item<'a>) -> bool {
        div.as_str().is_none_or(|s| s.len() % 2 == 0)
    }
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
        "entry.tail().where(resource is Composition).empty()",
    ] {
        assert!(
            expressions.iter().any(|e| e.source() == must),
            "{must} does not take the shortcut"
        );
    }
    // How often the shortcut decided each expression itself.
    let mut decided: BTreeMap<&str, usize> = BTreeMap::new();
    let mut traced = 0usize;
    let mut compared = 0usize;
    let count_children = Expression::parse("children().count()").unwrap();
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
            // `children().count()` counts without typing (ele-1 on every
            // element): it must count what `children()` yields.
            let counted = count_children
                .evaluate(&EvalContext::for_element(
                    &model,
                    item.clone(),
                    root_item.clone(),
                    root_item.clone(),
                ))
                .unwrap();
            assert!(
                matches!(counted.as_slice(), [Item::Integer(n)] if usize::try_from(*n).unwrap() == ehds_fhirpath::children(&model, item).len()),
                "{case}: children().count() on {item:?}"
            );
            for expression in &expressions {
                let (fast_traces, interpreted_traces) = (Traces::default(), Traces::default());
                let ctx = |hooks| {
                    EvalContext::for_element(
                        &model,
                        item.clone(),
                        root_item.clone(),
                        root_item.clone(),
                    )
                    .with_hooks(hooks)
                };
                let fast = expression.evaluate_constraint(&ctx(&fast_traces));
                let interpreted =
                    expression.evaluate_constraint_interpreted(&ctx(&interpreted_traces));
                assert_eq!(
                    fast,
                    interpreted,
                    "{case}: {} on {item:?}",
                    expression.source()
                );
                assert_eq!(
                    fast_traces.0.take(),
                    interpreted_traces.0.borrow().clone(),
                    "{case}: trace() calls of {} on {item:?}",
                    expression.source()
                );
                traced += interpreted_traces.0.borrow().len();
                if expression
                    .evaluate_constraint_shortcut(&ctx(&Traces::default()))
                    .is_some()
                {
                    *decided.entry(expression.source()).or_default() += 1;
                }
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
        "{} shortcut expressions ({} decided by it at least once), {compared} evaluations compared, {traced} trace() calls, outcomes {outcomes:?}",
        expressions.len(),
        decided.len()
    );
    assert!(outcomes.contains("Ok(true)") && outcomes.contains("Ok(false)"));
    assert!(traced > 0, "no trace() call was compared");
    // The shortcut itself decides these forms (on some element at least).
    for must in [
        "entry.tail().where(resource is Composition).empty()",
        "(identifier.count() + name.count()) > 0",
        "where(use = 'home').empty()",
        "type = 'document' implies entry.first().resource.is(Composition)",
        "(type = 'history') or entry.where(fullUrl.exists()).select(fullUrl&resource.meta.versionId).isDistinct()",
        "htmlChecks()",
    ] {
        assert!(
            decided.contains_key(must),
            "the shortcut never decides {must}"
        );
    }
    assert!(
        decided.keys().any(|k| k.contains(".trace(")),
        "the shortcut never decides an expression with trace()"
    );
}

/// Forms the examples rarely make fail: duplicates for `isDistinct()`,
/// several items where one is needed (errors), `&` over numbers, booleans
/// and empties, integer overflow, `trace()` with a projection.
#[test]
fn shortcut_agrees_on_edge_cases() {
    let registry = Registry::load_root(&repo_root().join("profiles")).unwrap();
    let model = Model::from_registry(&registry);
    let bundle = br#"{"resourceType":"Bundle","type":"collection","entry":[
        {"fullUrl":"urn:uuid:a","resource":{"resourceType":"Patient","meta":{"versionId":"1"},"active":true,"multipleBirthInteger":2}},
        {"fullUrl":"urn:uuid:a","resource":{"resourceType":"Patient","meta":{"versionId":"1"}}},
        {"fullUrl":"urn:uuid:b","resource":{"resourceType":"Observation","status":"final"}},
        {"resource":{"resourceType":"Composition","status":"final"}}]}"#;
    let patient =
        br#"{"resourceType":"Patient","name":[{"given":["a","b"],"family":"f"},{"given":["c"]}],
        "active":false,"multipleBirthInteger":9223372036854775807,
        "telecom":[{"use":"home","value":"1"},{"use":"work"}]}"#;
    let expressions = [
        "entry.where(fullUrl.exists()).select(fullUrl&resource.meta.versionId).isDistinct()",
        "entry.select(fullUrl).isDistinct()",
        "entry.select(resource.meta.versionId).isDistinct()",
        "entry.select(fullUrl & resource.active).isDistinct()",
        "entry.select(resource.multipleBirth & fullUrl).count() = 4",
        "(entry.fullUrl & 'x') = 'x'",
        "(name.given & 'x').exists()",
        "(name.family & name.given.first()).exists()",
        "(multipleBirth & active) = '9223372036854775807false'",
        "(multipleBirth + 1) > 0",
        "(multipleBirth * 2).exists()",
        "(telecom.count() - 3) < 0",
        "name.given.tail().count() = 2",
        "name.given.last() = 'c'",
        "name.first().given.first() = 'a'",
        "telecom.where(use = 'home').trace('homes', value).exists()",
        "telecom.where(value.exists()).trace('valued').count() = 1",
        "name.trace('given', given).where(family.exists()).exists()",
        "entry.resource.is(Patient)",
        "entry.first().resource is Patient",
        "entry.tail().where(resource is Composition).empty()",
        "entry.where(resource is Composition).exists()",
        "name.where(given.count() > 1).exists()",
        "name.where(given).exists()",
        "telecom.where(use = 'home' and value.exists()).exists()",
        "name.select(given).isDistinct()",
        "name.select(given.first()).count() = 2",
        // Paths from a variable, met again for every item.
        "entry.all(request.exists() = (%resource.type = 'batch' or %resource.type = 'collection'))",
        "name.all(%resource.name.given.count() = 3 and %context.name.count() = 2)",
        "entry.where(%rootResource.entry.fullUrl.count() = 3).count() = 4",
        "telecom.all(%resource.telecom.use.count() > 1)",
    ];
    for doc in [&bundle[..], &patient[..]] {
        let root = ehds_fhir::json::parse(doc).unwrap();
        let root_item = Item::resource(&root, &model);
        let mut items = Vec::new();
        elements(&model, root_item.clone(), &mut items);
        for text in expressions {
            let expression = Expression::parse(text).unwrap();
            assert!(expression.has_shortcut(), "{text}");
            for item in &items {
                let (fast_traces, interpreted_traces) = (Traces::default(), Traces::default());
                let ctx = |hooks| {
                    EvalContext::for_element(
                        &model,
                        item.clone(),
                        root_item.clone(),
                        root_item.clone(),
                    )
                    .with_hooks(hooks)
                };
                assert_eq!(
                    expression.evaluate_constraint(&ctx(&fast_traces)),
                    expression.evaluate_constraint_interpreted(&ctx(&interpreted_traces)),
                    "{text} on {item:?}"
                );
                assert_eq!(
                    fast_traces.0.take(),
                    interpreted_traces.0.take(),
                    "trace() calls of {text} on {item:?}"
                );
            }
        }
    }
    // The shortcut decides these itself on the root (not by falling back).
    let root = ehds_fhir::json::parse(bundle).unwrap();
    let ctx = EvalContext::new(&model, &root);
    for (text, expected) in [
        (
            "entry.where(fullUrl.exists()).select(fullUrl&resource.meta.versionId).isDistinct()",
            false,
        ),
        ("entry.select(fullUrl).isDistinct()", false),
        ("entry.tail().where(resource is Composition).empty()", false),
        ("entry.first().resource is Patient", true),
        (
            "entry.all(request.exists() = (%resource.type = 'batch' or %resource.type = 'collection'))",
            false,
        ),
        (
            "entry.where(%rootResource.entry.fullUrl.count() = 3).count() = 4",
            true,
        ),
    ] {
        assert_eq!(
            Expression::parse(text)
                .unwrap()
                .evaluate_constraint_shortcut(&ctx),
            Some(expected),
            "{text}"
        );
    }
}
